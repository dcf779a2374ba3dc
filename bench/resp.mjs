// resp.mjs - a minimal Redis-protocol client over a Unix socket for the
// benchmark's correctness gates (not for timing): RESP2 and RESP3 replies,
// pipelining (requests answered in order). Integers past 2^53 become BigInt.
import { createConnection } from 'node:net';

const INCOMPLETE = Symbol('incomplete');

// Parses one reply at buf[at...]: [value, next offset] or INCOMPLETE.
function parse(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return INCOMPLETE;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  let next = eol + 2;
  const aggregate = (n, pairs) => {
    const items = [];
    for (let i = 0; i < n * (pairs ? 2 : 1); i++) {
      const r = parse(buf, next);
      if (r === INCOMPLETE) return INCOMPLETE;
      items.push(r[0]);
      next = r[1];
    }
    if (!pairs) return [items, next];
    const map = {};
    for (let i = 0; i < items.length; i += 2) map[items[i]] = items[i + 1];
    return [map, next];
  };
  switch (type) {
    case '+': return [line, next];
    case '-': return [new RespError(line), next];
    case ':': case '(': {
      const n = BigInt(line);
      return [n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, next];
    }
    case ',': return [Number(line), next];
    case '#': return [line === 't', next];
    case '_': return [null, next];
    case '$': case '=': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return INCOMPLETE;
      let s = buf.toString('utf8', next, next + len);
      if (type === '=') s = s.slice(4);
      return [s, next + len + 2];
    }
    case '*': case '~': case '>': {
      const n = Number(line);
      return n < 0 ? [null, next] : aggregate(n, false);
    }
    case '%': return aggregate(Number(line), true);
    default: throw new Error(`resp: unexpected reply type '${type}'`);
  }
}

export class RespError extends Error {}

const encode = (args) => {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const s = String(a);
    parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
  }
  return parts.join('');
};

export async function connect(path) {
  const sock = createConnection(path);
  await new Promise((ok, fail) => { sock.once('connect', ok); sock.once('error', fail); });
  const waiting = [];
  let chunks = [], buf = Buffer.alloc(0);
  sock.on('data', (data) => {
    chunks.push(data);
    if (data.length < 2 || data[data.length - 2] !== 13 || data[data.length - 1] !== 10) return;
    buf = chunks.length === 1 && buf.length === 0 ? chunks[0] : Buffer.concat([buf, ...chunks]);
    chunks = [];
    let at = 0;
    while (waiting.length && at < buf.length) {
      const r = parse(buf, at);
      if (r === INCOMPLETE) break;
      at = r[1];
      waiting.shift().resolve(r[0]);
    }
    buf = buf.subarray(at);
  });
  sock.on('error', (e) => { while (waiting.length) waiting.shift().reject(e); });
  return {
    // One request; resolves to its reply (a RespError for -ERR).
    call(...args) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        sock.write(encode(args));
      });
    },
    close() { sock.end(); },
  };
}
