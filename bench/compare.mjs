// compare.mjs PARETO.json DUCKDB.json - the correctness gate of the benchmarks:
// exact integers (as BigInt: JSON.parse would round past 2^53), doubles
// within 1e-9 relative. Exits 1 listing every difference.
// compareReports(a, b, names) is the same check on parsed objects (the
// real-time gate compares paretod's replies with pareto report's JSON).
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// Every difference between two reports, as lines of text.
export function compareReports(p, d, [pn, dn] = ['pareto', 'duckdb']) {
  const bad = [];
  const exact = (path, get) => {
    let a, b;
    try { a = BigInt(get(p)); b = BigInt(get(d)); } catch { a = get(p); b = get(d); }
    if (a === undefined || b === undefined || a !== b)
      bad.push(`${path}: ${pn} ${a} ${dn} ${b}`);
  };
  const close = (path, get) => {
    const a = Number(get(p)), b = Number(get(d));
    const ok = a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
    if (!ok || Number.isNaN(a) || Number.isNaN(b))
      bad.push(`${path}: ${pn} ${get(p)} ${dn} ${get(d)}`);
  };
  exact('records', (x) => x.records);
  exact('customers', (x) => x.customers);
  exact('revenue_minor', (x) => x.revenue_minor);
  exact('top_tier.customers', (x) => x.top_tier?.customers);
  exact('top_tier.revenue_minor', (x) => x.top_tier?.revenue_minor);
  close('top_tier.share', (x) => x.top_tier?.share);
  for (const t of ['A', 'B', 'C']) {
    exact(`tiers.${t}.customers`, (x) => x.tiers?.[t]?.customers);
    exact(`tiers.${t}.revenue_minor`, (x) => x.tiers?.[t]?.revenue_minor);
    close(`tiers.${t}.share`, (x) => x.tiers?.[t]?.share);
  }
  for (const k of ['pareto_point', 'cr1', 'cr5', 'cr10', 'hhi', 'gini'])
    close(k, (x) => x[k]);
  const n = Math.max(p.top?.length ?? 0, d.top?.length ?? 0);
  if ((p.top?.length ?? -1) !== (d.top?.length ?? -2))
    bad.push(`top: ${pn} lists ${p.top?.length} ${dn} ${d.top?.length}`);
  for (let i = 0; i < n; i++) {
    exact(`top[${i}].rank`, (x) => x.top?.[i]?.rank);
    exact(`top[${i}].customer`, (x) => x.top?.[i]?.customer);
    exact(`top[${i}].revenue_minor`, (x) => x.top?.[i]?.revenue_minor);
  }
  return bad;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const load = (f) => JSON.parse(readFileSync(f, 'utf8')
    .replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"'));
  const [p, d] = process.argv.slice(2).map(load);
  const bad = compareReports(p, d);
  if (bad.length) {
    console.error('compare: MISMATCH between pareto and duckdb:');
    for (const b of bad) console.error('  ' + b);
    process.exit(1);
}
console.log(`compare: results agree (N ${d.customers}, revenue ${d.revenue_minor}, ` +
  `top 20% share ${Number(d.top_tier.share).toFixed(6)}, gini ${Number(d.gini).toFixed(6)})`);
}
