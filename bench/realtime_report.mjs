// realtime_report.mjs - the figures of bench/realtime: reads its
// measurements (one JSON line each), writes the summary JSON (medians with
// min and max over the runs) and prints the Markdown section.
//
//   node realtime_report.mjs MEASUREMENTS.jsonl OUT.json --rows N ...
//
// realtimeMarkdown(summary) is the same section for bench/run's summary.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1],
           runs: xs };
};
// redis-benchmark's percentile distribution: the smallest latency whose
// cumulative share reaches p percent (its HDR histogram's value there).
const percentileMs = (dist, p) => (dist.find(([pct]) => pct >= p) ?? dist[dist.length - 1])[1];

export function summarize(lines, meta) {
  const m = lines.map((l) => JSON.parse(l));
  const pick = (f) => m.filter(f);
  const sys = ['paretod', 'redis'];
  // Ingest alone and beside 4 query clients (queries 1: as fast as answers
  // come; 2: paced), in a scenario: 'ingest' (an empty server) or
  // 'loaded_ingest' (new records into the loaded paretod).
  const ingestOf = (scenario, s) => {
    const alone = pick((x) => x.scenario === scenario && x.system === s && !x.queries);
    if (!alone.length)
      return undefined;
    const a = stats(alone.map((x) => x.result.ingest.records_per_s));
    const withQueries = (kind) => {
      const loaded = pick((x) => x.scenario === scenario && x.system === s && x.queries === kind);
      if (!loaded.length)
        return undefined;
      const w = stats(loaded.map((x) => x.result.ingest.records_per_s));
      const lat = (k) => stats(loaded.map((x) => x.result.queries.latency[k])).median;
      return {
        records_per_s: w, slowdown: 1 - w.median / a.median,
        query: s === 'paretod' ? 'RANK' : 'ZREVRANK',
        queries_per_s: stats(loaded.map((x) => x.result.queries.rps)).median,
        latency_us: { p50: lat('p50_us'), p90: lat('p90_us'), p99: lat('p99_us'), p999: lat('p999_us'),
                      max: lat('max_us') },
        samples_per_run: stats(loaded.map((x) => x.result.queries.latency.n)).median };
    };
    return { records_per_s: a, with_4_query_clients: withQueries(1),
             with_4_paced_query_clients: withQueries(2) };
  };
  const ingest = Object.fromEntries(sys.map((s) => [s, ingestOf('ingest', s)]));
  const loadedIngest = ingestOf('loaded_ingest', 'paretod');
  // A producer streaming into the loaded paretod, alone and beside 4 SCORE
  // clients (scenario 'stream_score').
  // (queries 1: SCORE, 2: LAPSED 10; older files have SCORE only).
  const streamScore = (() => {
    const runs = (w) => pick((x) => x.scenario === 'stream_score' && x.queries === w);
    const alone = runs(0);
    if (!alone.length || !runs(1).length)
      return undefined;
    const rate = (xs) => stats(xs.map((x) => x.result.stream.records_sent / x.result.stream.seconds));
    const a = rate(alone);
    const beside = (kind) => {
      const b = runs(kind);
      if (!b.length || !b[0].result.queries)
        return undefined;
      const w = rate(b);
      const lat = (k) => stats(b.map((x) => x.result.queries.latency[k])).median;
      return {
        command: b[0].command ?? 'SCORE', records_per_s: w, slowdown: 1 - w.median / a.median,
        queries_per_s: stats(b.map((x) => x.result.queries.rps)).median,
        latency_us: { p50: lat('p50_us'), p90: lat('p90_us'), p99: lat('p99_us'), p999: lat('p999_us'),
                      max: lat('max_us') } };
    };
    const sub = runs(3);
    const subscriber = sub.length ? (() => {
      const w = rate(sub);
      return { records_per_s: w, slowdown: 1 - w.median / a.median,
               pushes: stats(sub.map((x) => x.result.pushes)).median };
    })() : undefined;
    return { seconds: alone[0].seconds, records_per_s: a,
             with_4_score_clients: beside(1), with_4_lapsed_clients: beside(2),
             with_an_alert_subscriber: subscriber };
  })();
  // The first rankings of a fresh paretod while a producer streams
  // (scenario 'first_rankings'): each asked's ms, PINGs meanwhile.
  const firstRankings = (() => {
    const runs = pick((x) => x.scenario === 'first_rankings');
    if (!runs.length)
      return undefined;
    const asked = runs[0].result.asked.map((a, i) => ({
      command: a.command, ms: stats(runs.map((x) => x.result.asked[i].ms)) }));
    const ping = (k) => stats(runs.map((x) => x.result.ping.latency[k]));
    return { runs: runs.length, asked, ping_us: { p50: ping('p50_us'), p99: ping('p99_us'), max: ping('max_us') },
             waited: stats(runs.map((x) => x.result.waited)).median };
  })();
  // INGEST from one connection, without and with an alert subscriber.
  const ingestCommand = (() => {
    const at = (sub) => pick((x) => x.scenario === 'ingest_command' && x.subscriber === sub)[0];
    return at(0) && at(1) ? { alone_rps: at(0).result.rps, with_subscriber_rps: at(1).result.rps } : undefined;
  })();
  const load = Object.fromEntries(pick((x) => x.scenario === 'load').map((x) => [x.system, x.result]));
  const queries = {};
  for (const q of ['rank', 'top10']) {
    queries[q] = {};
    for (const s of sys) {
      const one = pick((x) => x.scenario === 'query' && x.query === q && x.system === s && x.mode === 'one');
      const piped = pick((x) => x.scenario === 'query' && x.query === q && x.system === s && x.mode === 'piped');
      const pct = (p) => stats(one.map((x) => percentileMs(x.result.dist, p)));
      const exact = pick((x) => x.scenario === 'query' && x.query === q && x.system === s && x.mode === 'exact');
      const ex = (k) => stats(exact.map((x) => x.result.latency[k]));
      // CPU microseconds a request: the server's, and redis-benchmark's own.
      const cpu = (runs) => runs.length && runs[0].result.server_cpu_s !== undefined ? {
        server_us: stats(runs.map((x) => x.result.server_cpu_s / x.result.requests * 1e6)),
        client_us: stats(runs.map((x) => x.result.client_cpu_s / x.result.requests * 1e6)),
      } : undefined;
      queries[q][s] = {
        command: { rank: { paretod: 'RANK C__rand_int__', redis: 'ZREVRANK z C__rand_int__' },
                   top10: { paretod: 'TOP 10', redis: 'ZREVRANGE z 0 9 WITHSCORES' } }[q][s],
        one_connection: { p50_ms: pct(50), p99_ms: pct(99), p999_ms: pct(99.9),
                          requests_per_s: stats(one.map((x) => x.result.rps)),
                          distribution: one[one.length - 1]?.result.dist ?? [] },
        one_connection_exact: exact.length ? { p50_us: ex('p50_us'), p99_us: ex('p99_us'), p999_us: ex('p999_us'),
          requests_per_s: stats(exact.map((x) => x.result.rps)),
          samples_per_run: stats(exact.map((x) => x.result.latency.n)).median } : undefined,
        pipelined_4x32: { requests_per_s: stats(piped.map((x) => x.result.rps)) },
        cpu_per_request: { one_connection: cpu(one), pipelined_4x32: cpu(piped) },
      };
    }
  }
  const freshness = Object.fromEntries(pick((x) => x.scenario === 'freshness').map((x) => [x.system, {
    probes: x.result.probes,
    applied_ms: Object.fromEntries(['p50', 'p90', 'p99', 'max'].map((k) => [k, x.result.applied[`${k}_us`] / 1e3])),
    visible_ms: Object.fromEntries(['p50', 'p90', 'p99', 'max'].map((k) => [k, x.result.visible[`${k}_us`] / 1e3])),
    ingest_records_per_s: x.records_applied / x.stream.seconds,
    ...(x.rate ? { paced_records_per_s: x.rate } : {}),
  }]));
  const gate = pick((x) => x.scenario === 'gate')[0]?.result;
  // The round trip with no server work (rtprobe floor): an echo thread
  // that polls, and one that blocks.
  const floors = pick((x) => x.scenario === 'floor');
  const floor = floors.length ? Object.fromEntries(['polling', 'blocking'].map((k) => [k, {
    p50_us: stats(floors.map((x) => x.result[k].p50_us)),
    p99_us: stats(floors.map((x) => x.result[k].p99_us)),
  }])) : undefined;
  return {
    ...meta, gate, ingest, ...(loadedIngest ? { loaded_ingest: { paretod: loadedIngest } } : {}),
    ...(streamScore ? { stream_score: streamScore } : {}),
    ...(firstRankings ? { first_rankings: firstRankings } : {}),
    ...(ingestCommand ? { ingest_command: ingestCommand } : {}),
    load, queries, floor, freshness,
    method: 'servers and clients on the same machine (2 shared cores), all under nice -n 5, over Unix ' +
      'sockets; query latency by redis-benchmark (its HDR histogram, about 8 us buckets at these ' +
      'latencies) for both servers; latency under ingest and freshness by bench/rtprobe.c (hiredis, ' +
      'every sample kept and sorted, nearest rank); ids drawn uniformly from the workload\'s card ' +
      'numbers, including those that never bought (ZREVRANK nil, RANK unranked)',
  };
}

export function realtimeMarkdown(r) {
  const f = (x, d = 0) => Number(x).toFixed(d);
  const k = (x) => `${f(x / 1e3, 0)}K`;
  const M = (x) => `${f(x / 1e6, 2)}M`;
  // Rows of ingest alone and beside queries, per system.
  const ingestTable = (bySystem) => [
    '| system | records/s alone (min-max) | 4 query clients | records/s with them | slowdown | their p50 / p99 / p99.9 us | queries/s |',
    '|---|---|---|---|---|---|---|',
    ...['paretod', 'redis'].filter((s) => bySystem[s]).flatMap((s) => [
      ['as fast as answered', bySystem[s].with_4_query_clients],
      [`paced at ${r.paced_queries ?? 5000} requests/s`, bySystem[s].with_4_paced_query_clients],
    ].filter(([, w]) => w).map(([how, w]) => {
      const a = bySystem[s].records_per_s;
      return `| ${s === 'paretod' ? 'paretod (producer socket)' : 'Redis ZINCRBY (redis-cli --pipe)'} | ` +
        `${M(a.median)} (${M(a.min)}-${M(a.max)}) | ${how} | ${M(w.records_per_s.median)} | ${f(w.slowdown * 100, 1)}% | ` +
        `${f(w.latency_us.p50)} / ${f(w.latency_us.p99)} / ${f(w.latency_us.p999)} (${w.query}) | ${k(w.queries_per_s)} |`;
    }))];
  const us = (ms) => f(ms * 1e3, 0);
  const q = r.queries, i = r.ingest, fr = r.freshness;
  const ratio = (a, b) => `${f(a / b, 2)}x`;
  return [
    `## Real time: paretod vs Redis ${r.redis_version} sorted sets (${r.rows} records, ` +
    `${r.customers} card numbers)`, '',
    `Gate passed before timing: paretod's PARETO and TOP 10 equal \`pareto report --json\`; ` +
    `N ${r.gate.customers}, revenue and every one of ${r.gate.sampled} sampled ranks equal Redis' totals ` +
    `ordered by Pareto's tie rule (${r.gate.sampled_in_ties} of the ${r.gate.sampled_ranked} ranked samples ` +
    `sit in ties, where Redis' ZREVRANK orders ids the other way: it differed for ` +
    `${r.gate.zrevrank_differs_in_ties}).`, '',
    `### Ingest (first ${r.ingest_rows} records into an empty server, ${r.runs} runs, median)`, '',
    ...ingestTable(i), '',
    `paretod / Redis ingest: ${ratio(i.paretod.records_per_s.median, i.redis.records_per_s.median)}. ` +
    `Whole workload (one run each): paretod ${M(r.load.paretod.records_per_s)} records/s ` +
    `(${f(r.load.paretod.seconds, 2)} s), Redis ${M(r.load.redis.records_per_s)} records/s ` +
    `(${f(r.load.redis.seconds, 1)} s).`, '',
    `### Queries (redis-benchmark, loaded servers, ${r.runs} runs, median)`, '',
    '| query | 1 conn p50 / p99 / p99.9 us | 1 conn req/s | same, every sample (rtprobe) p50 / p99 / p99.9 us | 4 conn x 32 pipelined req/s (min-max) |',
    '|---|---|---|---|---|',
    ...['rank', 'top10'].flatMap((n) => ['paretod', 'redis'].map((s) => {
      const x = q[n][s], o = x.one_connection, p = x.pipelined_4x32.requests_per_s, e = x.one_connection_exact;
      return `| \`${x.command}\` | ${us(o.p50_ms.median)} / ${us(o.p99_ms.median)} / ${us(o.p999_ms.median)} | ` +
        `${k(o.requests_per_s.median)} | ${e ? `${f(e.p50_us.median, 1)} / ${f(e.p99_us.median, 1)} / ${f(e.p999_us.median, 1)}` : '-'} | ` +
        `${M(p.median)} (${M(p.min)}-${M(p.max)}) |`;
    })), '',
    `Pipelined paretod / Redis: RANK ${ratio(q.rank.paretod.pipelined_4x32.requests_per_s.median,
      q.rank.redis.pipelined_4x32.requests_per_s.median)}, TOP 10 ${ratio(
      q.top10.paretod.pipelined_4x32.requests_per_s.median, q.top10.redis.pipelined_4x32.requests_per_s.median)}.`, '',
    ...(q.rank.paretod.cpu_per_request?.pipelined_4x32 ? [
      'CPU per request, µs (median; the server\'s from its /proc ticks, redis-benchmark\'s own from bash `time`; ' +
      'both share the 2 cores):', '',
      '| query | 1 conn: server / redis-benchmark | 4 conn x 32 pipelined: server / redis-benchmark |',
      '|---|---|---|',
      ...['rank', 'top10'].flatMap((n) => ['paretod', 'redis'].map((s) => {
        const c = q[n][s].cpu_per_request;
        const pair = (x) => `${f(x.server_us.median, 2)} / ${f(x.client_us.median, 2)}`;
        return `| \`${q[n][s].command}\` | ${pair(c.one_connection)} | ${pair(c.pipelined_4x32)} |`;
      })), ''] : []),
    ...(r.floor ? [
      `The round trip this machine allows (\`rtprobe floor\`: "PING" over a socketpair, the client blocking ` +
      `in read, answered by a thread that does nothing else): p50 / p99 ${f(r.floor.polling.p50_us.median, 1)} / ` +
      `${f(r.floor.polling.p99_us.median, 1)} us when that thread polls (as paretod's --busy-poll-us), ` +
      `${f(r.floor.blocking.p50_us.median, 1)} / ${f(r.floor.blocking.p99_us.median, 1)} us when it blocks in recv.`,
      ''] : []),
    ...(r.loaded_ingest ? [
      `### Ingest into the loaded paretod (${r.ingest_rows} new records a run, ${r.runs} runs, median)`, '',
      'paretod holds the whole workload and its ranker has kept rankings since the queries above, in ' +
      'every run (above, the first query also starts the ranker): each run\'s records are the ' +
      'workload\'s first, dated 4 years after the run before (`rtprobe ingest --years-later`).', '',
      ...ingestTable(r.loaded_ingest), ''] : []),
    ...(r.stream_score ? (() => {
      const x = r.stream_score, a = x.records_per_s;
      return [
        `### A producer streaming into the loaded paretod beside SCORE, LAPSED and alerts (${x.seconds} s a run, ${r.runs} runs, median)`, '',
        'SCORE reads the customer\'s history on the apply thread that owns him, and its store flags come ' +
        'from store rankings made again beside ingest while the feed streams, as LAPSED\'s list is, and alerts are evaluated from the rankings published; ' +
        '4 query clients ask as fast as answered, or one subscriber reads every push, from 0.2 s after the ' +
        'stream starts until 0.5 s before it ends.', '',
        '| records/s alone (min-max) | beside | records/s with them | slowdown | their p50 / p99 / p99.9 / max us | queries/s |',
        '|---|---|---|---|---|---|',
        ...[x.with_4_score_clients, x.with_4_lapsed_clients].filter((w) => w).map((w) => {
          const l = w.latency_us;
          return `| ${M(a.median)} (${M(a.min)}-${M(a.max)}) | 4 clients asking ${w.command} | ${M(w.records_per_s.median)} | ` +
            `${f(w.slowdown * 100, 1)}% | ${f(l.p50)} / ${f(l.p99)} / ${f(l.p999)} / ${f(l.max)} | ${k(w.queries_per_s)} |`;
        }),
        ...(x.with_an_alert_subscriber ? [(() => {
          const w = x.with_an_alert_subscriber;
          return `| ${M(a.median)} (${M(a.min)}-${M(a.max)}) | SUBSCRIBE alerts (1 client) | ` +
            `${M(w.records_per_s.median)} | ${f(w.slowdown * 100, 1)}% | - | ${f(w.pushes)} pushes a run |`;
        })()] : []), ''];
    })() : []),
    ...(r.ingest_command ? [
      `INGEST of one line at a time from one connection (redis-benchmark, loaded server): ` +
      `${k(r.ingest_command.alone_rps)} a second alone, ${f(r.ingest_command.with_subscriber_rps)} a second ` +
      'with one alert subscriber (each INGEST\'s alerts are told before its reply: the stores it named are ' +
      'evaluated, from a pass over every pair).', ''] : []),
    ...(r.first_rankings ? (() => {
      const x = r.first_rankings, p = x.ping_us;
      return [
        `### The first rankings, asked while a producer streams (${x.runs} runs, median)`, '',
        'A paretod started afresh holds the workload and has answered nothing: each request below is the ' +
        'first of its kind, its ranking or list made beside ingest while its client waits ' +
        `(${f(x.waited)} such waits a run). Meanwhile one client sends PINGs one at a time: p50 / p99 / slowest ` +
        `${f(p.p50.median / 1000, 2)} / ${f(p.p99.median / 1000, 2)} / ${f(p.max.median / 1000, 1)} ms ` +
        `(slowest over the runs ${f(p.max.min / 1000, 1)}-${f(p.max.max / 1000, 1)} ms).`, '',
        '| asked | answered in ms (min-max) |', '|---|---|',
        ...x.asked.map((a) => `| ${a.command} | ${f(a.ms.median)} (${f(a.ms.min)}-${f(a.ms.max)}) |`), ''];
    })() : []),
    '### Freshness (record written -> visible to a query), under full ingest load and paced', '',
    '| system | probes | applied p50 / p99 ms | in the published ranking p50 / p99 ms | ingest meanwhile |',
    '|---|---|---|---|---|',
    ...['paretod', 'redis', 'paretod-paced'].filter((s) => fr[s]).map((s) => `| ${
      s === 'paretod' ? 'paretod: CUSTOMER known / RANK not null'
      : s === 'redis' ? 'Redis: ZREVRANK not nil'
      : `paretod, producer paced at ${M(fr[s].paced_records_per_s)} records/s`} | ${fr[s].probes} | ` +
      `${f(fr[s].applied_ms.p50, 2)} / ${f(fr[s].applied_ms.p99, 2)} | ` +
      `${f(fr[s].visible_ms.p50, 2)} / ${f(fr[s].visible_ms.p99, 2)} | ${M(fr[s].ingest_records_per_s)} records/s |`), '',
    `Method: ${r.method}. With fewer than 100 probes, p99 is the largest.`, '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [input, output, ...rest] = process.argv.slice(2);
  const meta = { redis_version: process.env.BR_REDIS_VERSION ?? 'unknown' };
  for (let a = 0; a < rest.length; a += 2)
    meta[rest[a].replace(/^--/, '').replaceAll('-', '_')] = Number(rest[a + 1]);
  const lines = readFileSync(input, 'utf8').split('\n').filter(Boolean);
  const r = summarize(lines, meta);
  writeFileSync(output, JSON.stringify(r, null, 2) + '\n');
  process.stdout.write(realtimeMarkdown(r));
}
