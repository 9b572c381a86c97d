#!/usr/bin/env bash
# Idle daemon benchmark: the CPU time `herald run` uses over a quiet minute on a large
# publication (nothing changes; the watcher, the scheduler and the minute safety-net rebuild
# are all running), and the one-change rebuild as `herald run` sees it (from the file write
# to the new feed bytes being served) and as a whole `herald build` process.
#
#   bench/idle.sh [publication-dir] [seconds (60)]
#
# The publication defaults to the 10,000-article multilingual corpus made by
#   BENCH_DIR=/tmp/herald-bench CORPUS=multilingual cargo bench --bench publish
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
site=${1:-/tmp/herald-bench/multilingual}
secs=${2:-60}
[ -d "$site/articles" ] || {
  echo "no publication at $site; make one with: BENCH_DIR=/tmp/herald-bench CORPUS=multilingual cargo bench --bench publish" >&2
  exit 2
}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
HERALD="$root/target/release/herald"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
n=$(find "$site/articles" -type f | wc -l)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$HERALD" --site "$site" build >/dev/null
HERALD_LOG=warn HERALD_HTTP_BIND="127.0.0.1:$port" "$HERALD" --site "$site" run &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$port/healthz" -o /dev/null && break
  sleep 0.1
done
sleep 5   # let start-up work settle
before=$(ticks $pid)
sleep "$secs"
after=$(ticks $pid)
cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.2f s of CPU, %.2f%% of one core", t / hz, 100 * t / hz / s }')
echo "idle herald run, $n articles, ${secs} s: $cpu"

# One change seen by the running daemon: edit the newest article, time until its feed shows it.
newest=$(ls "$site/articles" | sort | tail -1)
file="$site/articles/$newest"
orig=$(mktemp)
cp "$file" "$orig"
for round in 1 2 3 4 5; do
  mark="Edited-$round-$RANDOM"
  start=$(date +%s%N)
  { cat "$orig"; printf '\n%s\n' "$mark"; } > "$file"
  until curl -fs --max-time 5 "http://127.0.0.1:$port/feeds/atom.xml" | grep -F "$mark" >/dev/null; do sleep 0.005; done
  end=$(date +%s%N)
  echo "run: one change to served feed, round $round: $(( (end - start) / 1000000 )) ms (includes the watcher's debounce)"
  cp "$orig" "$file"
  sleep 1.5
done
kill $pid; wait $pid 2>/dev/null || true
trap - EXIT

# The same change as a whole process.
for round in 1 2 3 4 5; do
  { cat "$orig"; printf '\nEdited-build-%s\n' "$round"; } > "$file"
  /usr/bin/time -f "build: one change, whole herald build process, round $round: %e s, %M KB peak" \
    "$HERALD" --site "$site" build >/dev/null
  cp "$orig" "$file"
  "$HERALD" --site "$site" build >/dev/null
done
rm -f "$orig"
