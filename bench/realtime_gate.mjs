// realtime_gate.mjs - the correctness gate of the real-time scenarios, run
// after paretod and Redis have ingested the same records:
//
//   node realtime_gate.mjs --pareto SOCK --redis SOCK --report REPORT.json
//                          --keys K [--sample N]
//
// 1. paretod's PARETO summary and TOP 10 equal `pareto report --json` on the
//    same feed (compare.mjs: exact integers, doubles within 1e-9).
// 2. Every customer's total in Redis (ZRANGE z 0 -1 WITHSCORES, scores in
//    minor units) gives paretod's N and revenue: the customers with a
//    positive total, ordered by total descending then id in byte order
//    (Pareto's tie rule, DESIGN.md), are the reference ranking.
// 3. paretod's TOP 10 is that reference's first 10 (rank, competition rank,
//    id, revenue); Redis' ZREVRANGE 0 9 has the same scores in the same
//    order (its ids may differ only inside a tie: Redis orders equal scores
//    by id descending there).
// 4. RANK for N sampled ids of the query key space (C + 12 digits below K,
//    what the timed queries ask) and the top ids: rank, competition rank
//    and revenue as the reference says; customers without a positive total
//    unranked. ZREVRANK + 1 equals Pareto's rank except inside ties, where it
//    must stay within the tied block; the count of such ties is reported.
//
// Prints one JSON line; exits 1 listing the differences.
import { readFileSync } from 'node:fs';
import { compareReports } from './compare.mjs';
import { connect, RespError } from './resp.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const sampleN = Number(args.sample ?? 1000), keys = Number(args.keys);
const bad = [];
const check = (ok, what) => { if (!ok && bad.length < 50) bad.push(what); };

const pd = await connect(args.pareto), rd = await connect(args.redis);
await pd.call('HELLO', '3');
const unwrap = (x, what) => { if (x instanceof RespError) throw new Error(`${what}: ${x.message}`); return x; };

// 1. Summary and top 10 against the report.
const summary = unwrap(await pd.call('PARETO'), 'PARETO');
const top = unwrap(await pd.call('TOP', '10'), 'TOP');
const report = JSON.parse(readFileSync(args.report, 'utf8'));
check(summary.records === report.records, `records: paretod ${summary.records} report ${report.records}`);
for (const b of compareReports({ ...summary, top: top.top }, report, ['paretod', 'report']))
  check(false, b);

// 2. Redis' totals, in pages (the replies stay small).
const totals = new Map();
const card = unwrap(await rd.call('ZCARD', 'z'), 'ZCARD');
for (let at = 0; at < card; at += 50000) {
  const page = unwrap(await rd.call('ZRANGE', 'z', at, at + 49999, 'WITHSCORES'), 'ZRANGE');
  for (let i = 0; i < page.length; i += 2) totals.set(page[i], Number(page[i + 1]));
}
const byte = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const ranked = [...totals].filter(([, v]) => v > 0)
  .sort((a, b) => (b[1] - a[1]) || byte(a[0], b[0]));
const position = new Map(ranked.map(([id], i) => [id, i]));
// Competition rank: 1 + customers with a strictly greater total.
const competition = new Array(ranked.length);
for (let i = 0; i < ranked.length; i++)
  competition[i] = i && ranked[i][1] === ranked[i - 1][1] ? competition[i - 1] : i + 1;
const revenue = ranked.reduce((s, [, v]) => s + BigInt(v), 0n);
check(summary.customers === ranked.length, `N: paretod ${summary.customers} redis ${ranked.length}`);
check(BigInt(summary.revenue_minor) === revenue, `revenue: paretod ${summary.revenue_minor} redis ${revenue}`);

// 3. Top 10.
const zrev = unwrap(await rd.call('ZREVRANGE', 'z', '0', '9', 'WITHSCORES'), 'ZREVRANGE');
top.top.forEach((e, i) => {
  const [id, total] = ranked[i] ?? [];
  check(e.rank === i + 1 && e.customer === id && e.revenue_minor === total &&
        e.competition_rank === competition[i],
        `TOP[${i}]: paretod ${e.rank} ${e.customer} ${e.revenue_minor} reference ${i + 1} ${id} ${total}`);
  check(Number(zrev[2 * i + 1]) === e.revenue_minor,
        `ZREVRANGE[${i}] score ${zrev[2 * i + 1]} vs paretod ${e.revenue_minor}`);
});
const topTiesReordered = top.top.filter((e, i) => zrev[2 * i] !== e.customer).length;

// 4. Sampled ranks, pipelined.
let seed = 12345;
const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const ids = top.top.map((e) => e.customer);
for (let i = 0; i < sampleN; i++)
  ids.push('C' + String(Math.floor(random() * keys)).padStart(12, '0'));
const [ranks, zranks] = await Promise.all([
  Promise.all(ids.map((id) => pd.call('RANK', id))),
  Promise.all(ids.map((id) => rd.call('ZREVRANK', 'z', id))),
]);
let rankedSampled = 0, tiesSampled = 0, zrevrankDiffers = 0;
ids.forEach((id, k) => {
  const r = unwrap(ranks[k], `RANK ${id}`), z = zranks[k];
  const i = position.get(id);
  if (i === undefined) {
    check(r.rank === null && r.revenue_minor === (totals.get(id) ?? 0),
          `RANK ${id}: paretod rank ${r.rank} revenue ${r.revenue_minor}, redis total ${totals.get(id)}`);
    return;
  }
  rankedSampled++;
  const total = ranked[i][1];
  check(r.rank === i + 1 && r.competition_rank === competition[i] && r.revenue_minor === total,
        `RANK ${id}: paretod ${r.rank}/${r.competition_rank}/${r.revenue_minor} ` +
        `reference ${i + 1}/${competition[i]}/${total}`);
  let last = i; // the tied block is competition[i] .. last + 1
  while (last + 1 < ranked.length && ranked[last + 1][1] === total) last++;
  if (last + 1 > competition[i]) tiesSampled++;
  if (z + 1 !== i + 1) zrevrankDiffers++;
  check(z + 1 >= competition[i] && z + 1 <= last + 1,
        `ZREVRANK ${id}: ${z} outside the tied block ${competition[i]}..${last + 1}`);
});
pd.close();
rd.close();
const result = { ok: bad.length === 0, records: summary.records, customers: ranked.length,
  redis_members: card, revenue_minor: String(revenue), sampled: ids.length,
  sampled_ranked: rankedSampled, sampled_in_ties: tiesSampled,
  zrevrank_differs_in_ties: zrevrankDiffers, top10_ids_reordered_by_redis_ties: topTiesReordered };
console.log(JSON.stringify(result));
if (bad.length) {
  console.error('realtime_gate: MISMATCH between paretod, pareto report and Redis:');
  for (const b of bad) console.error('  ' + b);
  process.exit(1);
}
