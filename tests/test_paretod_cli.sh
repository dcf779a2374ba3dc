#!/bin/sh
# test_paretod_cli.sh - paretod through redis-cli, as an operator would use
# it: run from test_paretod.c (PARETOD is the daemon's path). Exits non-zero
# with a message on the first wrong answer.
set -eu
dir=$(mktemp -d /tmp/paretod-cli-XXXXXX)
sock="$dir/p.sock"
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "test_paretod_cli.sh: $*" >&2; [ -f "$dir/log" ] && cat "$dir/log" >&2; exit 1; }

cat > "$dir/feed.csv" <<'CSV'
ts,customer_id,store_id,amount
2024-01-05,C1,S1,100.00
2024-01-06,C2,S1,50.00
2024-02-01,C3,S2,25.50
CSV
"$PARETOD" --socket "$sock" --feed "$dir/feed.csv" 2>"$dir/log" &
pid=$!
i=0
until redis-cli -s "$sock" PING >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "no answer on $sock"; sleep 0.02
done

[ "$(redis-cli -s "$sock" PING)" = PONG ] || fail "PING"
[ "$(redis-cli -s "$sock" ECHO 'hi there')" = "hi there" ] || fail "ECHO"
# RESP2 flat field/value arrays, raw mode prints one per line.
out=$(redis-cli -s "$sock" RANK C2 | paste -sd' ')
case "$out" in *"rank 2 competition_rank 2"*) ;; *) fail "RANK C2: $out" ;; esac
out=$(redis-cli -s "$sock" PARETO | paste -sd' ')
case "$out" in *"customers 3 revenue_minor 17550"*) ;; *) fail "PARETO: $out" ;; esac
# RESP3 through redis-cli -3: maps and doubles.
out=$(redis-cli -3 -s "$sock" PARETO | paste -sd' ')
case "$out" in *"cr1 0.5698005698005698"*) ;; *) fail "PARETO under RESP3: $out" ;; esac
out=$(redis-cli -s "$sock" INGEST "2024-02-02,C4,S2,500.00")
case "$(echo $out)" in "accepted 1 rejected 0 records 4"*) ;; *) fail "INGEST: $out" ;; esac
out=$(redis-cli -s "$sock" TOP 1 | paste -sd' ')
case "$out" in *"customer C4 revenue_minor 50000"*) ;; *) fail "TOP 1 after INGEST: $out" ;; esac
# redis-cli answers HELP itself; COMMAND lists ours.
redis-cli -s "$sock" COMMAND LIST | grep -qx score || fail "COMMAND LIST"
redis-cli -s "$sock" INFO ingest | grep -q '^records:4' || fail "INFO ingest"
redis-cli -s "$sock" NOSUCH 2>&1 | grep -q "unknown command 'NOSUCH'" || fail "unknown command"
# Interactive redis-cli asks COMMAND DOCS for its hints; that must not break it.
printf 'PING\nRANK C1\n' | redis-cli -s "$sock" | head -1 | grep -q PONG || fail "piped redis-cli"
redis-cli -s "$sock" SHUTDOWN >/dev/null 2>&1 || true
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 300 ] || fail "still running after SHUTDOWN"; sleep 0.02
done
wait "$pid" || fail "exit status $?"
pid=
[ ! -e "$sock" ] || fail "socket left behind"
grep -q "listening on $sock" "$dir/log" || fail "no 'listening' log line"
grep -q "feed.csv: finished: 3 records" "$dir/log" || fail "no 'finished' log line"
exit 0
