#!/usr/bin/env node
// duckdb_report.mjs - the peer of `pareto report --json` for window `all` on
// the whole company, computed in SQL by DuckDB straight from the CSV feed.
//
//   node bench/duckdb_report.mjs FILE [--threads N] [--json] [--top K]
//
// It prints the same keys as pareto's JSON (customers, revenue_minor,
// top_tier, pareto_point, tiers, cr1/cr5/cr10, hhi, gini, top) plus
// "records" and "elapsed_s" (reading the CSV and computing, measured inside
// this process, without node's start-up and module loading).
//
// Exactness, so that the comparison can demand equality:
// - amounts are read as DECIMAL(18,2) and summed as DECIMAL(38,2), then
//   turned into HUGEINT cents: no double ever touches money;
// - ranks order revenue descending, then customer id ascending (DuckDB's
//   default VARCHAR collation compares bytes, as pareto does);
// - tier cuts are integer ceilings: ceil(0.2 N) = (2N + 9) div 10,
//   ceil(0.5 N) = (5N + 9) div 10, and the Pareto point compares
//   10 x cumulative >= 8 x total in HUGEINT;
// - HHI and Gini have exact HUGEINT numerators and denominators, divided
//   once as doubles at the end.
// The feed must have the header ts,customer_id,store_id,amount (pareto-gen's).

import { DuckDBInstance } from '@duckdb/node-api';

const usage = `Usage: node bench/duckdb_report.mjs FILE [--threads N] [--json] [--top K]

Exact Pareto figures (window all, whole company) of a CSV feed with the
header ts,customer_id,store_id,amount, computed by DuckDB in SQL.
  --threads N   DuckDB worker threads (SET threads = N; default: DuckDB's)
  --json        one JSON object with pareto's key names (default: text)
  --top K       customers listed (default 10)
`;

function fail(message) {
  process.stderr.write(`duckdb_report: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opt = { file: null, threads: null, json: false, top: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--threads') {
      opt.threads = Number(value());
      if (!Number.isInteger(opt.threads) || opt.threads < 1) fail('--threads: expected an integer >= 1');
    } else if (a === '--top') {
      opt.top = Number(value());
      if (!Number.isInteger(opt.top) || opt.top < 0) fail('--top: expected an integer >= 0');
    } else if (a === '--json') {
      opt.json = true;
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(usage);
      process.exit(0);
    } else if (a.startsWith('-') && a !== '-') {
      fail(`unknown option ${a}\n${usage}`);
    } else if (opt.file === null) {
      opt.file = a;
    } else {
      fail(`one FILE only\n${usage}`);
    }
  }
  if (opt.file === null) fail(`no input file\n${usage}`);
  return opt;
}

// One statement, so DuckDB plans the whole thing: the CSV is scanned once,
// the per-customer sums and the ranking are materialized once.
const SQL = `
WITH per_customer AS MATERIALIZED (
  SELECT customer_id,
         CAST(sum(amount) * 100 AS HUGEINT) AS c,
         count(*) AS records
  FROM read_csv($file,
                header = true, auto_detect = false, delim = ',', quote = '"',
                columns = {'ts': 'TIMESTAMP', 'customer_id': 'VARCHAR',
                           'store_id': 'VARCHAR', 'amount': 'DECIMAL(18,2)'})
  GROUP BY customer_id
),
ranked AS MATERIALIZED (
  SELECT customer_id, c,
         row_number() OVER w AS rk,
         rank() OVER (ORDER BY c DESC) AS competition_rank,
         sum(c) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
  FROM per_customer
  WHERE c > 0
  WINDOW w AS (ORDER BY c DESC, customer_id ASC)
),
totals AS (
  SELECT CAST(count(*) AS HUGEINT) AS n,
         coalesce(sum(c), 0::HUGEINT) AS total,
         coalesce(sum(c * c), 0::HUGEINT) AS squares
  FROM ranked
),
cuts AS (
  SELECT n, total, squares, (n * 2 + 9) // 10 AS a_cut, (n * 5 + 9) // 10 AS b_cut
  FROM totals
),
figures AS (
  SELECT any_value(cuts.n) AS n, any_value(total) AS total, any_value(squares) AS squares,
         any_value(a_cut) AS a_cut, any_value(b_cut) AS b_cut,
         coalesce(sum(c) FILTER (WHERE rk <= a_cut), 0::HUGEINT) AS a_rev,
         coalesce(sum(c) FILTER (WHERE rk > a_cut AND rk <= b_cut), 0::HUGEINT) AS b_rev,
         coalesce(sum(c) FILTER (WHERE rk > b_cut), 0::HUGEINT) AS c_rev,
         min(rk) FILTER (WHERE cum * 10 >= total * 8) AS pareto_m,
         coalesce(sum(c) FILTER (WHERE rk <= 1), 0::HUGEINT) AS top1,
         coalesce(sum(c) FILTER (WHERE rk <= 5), 0::HUGEINT) AS top5,
         coalesce(sum(c) FILTER (WHERE rk <= 10), 0::HUGEINT) AS top10,
         -- x ascending has index i = N + 1 - rk (equal revenues may swap,
         -- which leaves the sum unchanged)
         coalesce(sum((cuts.n + 1 - rk) * c), 0::HUGEINT) AS weighted,
         list({'rank': rk, 'competition_rank': competition_rank,
               'customer': customer_id, 'revenue_minor': c} ORDER BY rk)
           FILTER (WHERE rk <= $top) AS top
  FROM cuts LEFT JOIN ranked ON true
)
SELECT n, total, a_cut, b_cut, a_rev, b_rev, c_rev, pareto_m, top1, top5, top10,
       squares, weighted,
       2 * weighted - (n + 1) * total AS gini_num,
       n * total AS gini_den,
       (SELECT coalesce(sum(records), 0) FROM per_customer) AS records,
       top
FROM figures
`;

function ratio(part, whole) {
  // Both are exact BigInts; one rounding each to double, then a division:
  // well within the 1e-9 relative tolerance of the comparison.
  return whole > 0n ? Number(part) / Number(whole) : 0;
}

function tier(customers, revenue, total) {
  return { customers, revenue_minor: revenue, share: ratio(revenue, total) };
}

// JSON with BigInts written as exact integers.
function toJson(value) {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `@@${v}@@` : v))
    .replace(/"@@(-?\d+)@@"/g, '$1');
}

function money(cents) {
  const neg = cents < 0n;
  const abs = neg ? -cents : cents;
  return `${neg ? '-' : ''}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const instance = await DuckDBInstance.create(':memory:');
  const con = await instance.connect();
  if (opt.threads !== null) await con.run(`SET threads = ${opt.threads}`);

  const t0 = process.hrtime.bigint();
  let reader;
  try {
    reader = await con.runAndReadAll(SQL, { file: opt.file, top: opt.top });
  } catch (e) {
    process.stderr.write(`duckdb_report: ${opt.file}: ${e.message}\n`);
    process.exit(1);
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;

  const row = reader.getRowObjects()[0];
  const big = (v) => (v === null ? 0n : BigInt(v));
  const n = big(row.n), total = big(row.total);
  const aCut = big(row.a_cut), bCut = big(row.b_cut);
  const aRev = big(row.a_rev), bRev = big(row.b_rev), cRev = big(row.c_rev);
  const paretoM = big(row.pareto_m);
  const top = (row.top === null ? [] : row.top.items).map((item) => {
    const e = item.entries;
    return {
      rank: BigInt(e.rank),
      competition_rank: BigInt(e.competition_rank),
      customer: e.customer,
      revenue_minor: BigInt(e.revenue_minor),
    };
  });

  const report = {
    engine: 'duckdb',
    duckdb_version: (await con.runAndReadAll('SELECT version() AS v')).getRowObjects()[0].v,
    threads: opt.threads,
    records: big(row.records),
    window: 'all',
    customers: n,
    revenue_minor: total,
    top_tier: { fraction: 0.2, ...tier(aCut, aRev, total) },
    pareto_point: n > 0n ? Number(paretoM) / Number(n) : 0,
    tiers: {
      A: tier(aCut, aRev, total),
      B: tier(bCut - aCut, bRev, total),
      C: tier(n - bCut, cRev, total),
    },
    cr1: ratio(big(row.top1), total),
    cr5: ratio(big(row.top5), total),
    cr10: ratio(big(row.top10), total),
    hhi: total > 0n ? (Number(big(row.squares)) * 10000) / (Number(total) * Number(total)) : 0,
    gini: ratio(big(row.gini_num), big(row.gini_den)),
    top,
    elapsed_s: elapsed,
  };

  if (opt.json) {
    process.stdout.write(toJson(report) + '\n');
  } else {
    const pct = (x) => `${(100 * x).toFixed(2)}%`;
    const lines = [
      `records          ${report.records}`,
      `customers (N)    ${n}`,
      `revenue          ${money(total)}`,
      `top 20%          ${aCut} customers, ${money(aRev)}, ${pct(report.top_tier.share)}`,
      `pareto point     ${(100 * report.pareto_point).toFixed(2)}% of customers bring 80%`,
      ...['A', 'B', 'C'].map((t) => {
        const x = report.tiers[t];
        return `tier ${t}           ${x.customers} customers, ${money(x.revenue_minor)}, ${pct(x.share)}`;
      }),
      `CR1/CR5/CR10     ${pct(report.cr1)} ${pct(report.cr5)} ${pct(report.cr10)}`,
      `HHI              ${report.hhi.toFixed(4)}`,
      `Gini             ${report.gini.toFixed(6)}`,
      ...top.map((t) => `  #${t.rank} ${t.customer} ${money(t.revenue_minor)}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  process.stderr.write(`duckdb_report: ${elapsed.toFixed(3)} s (load + compute, threads ${opt.threads ?? 'default'})\n`);
}

await main();
