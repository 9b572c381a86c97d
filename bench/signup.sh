#!/usr/bin/env bash
# Sign-up benchmark: `POST /subscribe` under wrk for 30 s (every request a new address from
# a new client address, via X-Forwarded-For with `http.trust_proxy`), then a count of the
# sign-ups the store holds against the 2xx answers wrk saw.
#
#   bench/signup.sh [seconds (30)] [connections (32)]
set -euo pipefail
secs=${1:-30}
conns=${2:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
HERALD="$root/target/release/herald"

work=$(mktemp -d)
trap 'kill $(cat "$work/herald.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/articles"
cat > "$work/herald.toml" <<TOML
[site]
title = "Sign-up bench"
base_url = "https://bench.example.com/"
[http]
bind = "127.0.0.1:18090"
trust_proxy = true
[[newsletter]]
id = "weekly"
title = "Weekly"
schedule = "0 7 * * Fri"
TOML
cat > "$work/signup.lua" <<'LUA'
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  n = 0
  non2xx = 0
end
function request()
  n = n + 1
  local id = tid * 10000000 + n
  local ip = string.format("10.%d.%d.%d", math.floor(id / 65536) % 256, math.floor(id / 256) % 256, id % 256)
  local body = "email=reader" .. id .. "%40example.org&newsletters=weekly"
  return wrk.format("POST", "/subscribe", {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = ip}, body)
end
function response(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  io.write(string.format("WRK requests=%d non2xx=%d socket_errors=%d\n", summary.requests, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
LUA
HERALD_LOG=warn "$HERALD" --site "$work" run & echo $! > "$work/herald.pid"
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
wrk -t2 -c"$conns" -d"${secs}s" -s "$work/signup.lua" http://127.0.0.1:18090/ | tee "$work/wrk.txt"
sleep 1
kill "$(cat "$work/herald.pid")"; wait "$(cat "$work/herald.pid")" 2>/dev/null || true
stored=$("$HERALD" --site "$work" subscribers list --limit 1 | awk '/in all/{print $3}')
answered=$(awk '/^WRK/{split($2,a,"="); print a[2]}' "$work/wrk.txt")
non2xx=$(awk '/^WRK/{split($3,a,"="); print a[2]}' "$work/wrk.txt")
rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.txt")
echo "sign-ups answered: $answered (non-2xx: $non2xx), stored: $stored, rate: $rps req/s"
[ "$non2xx" = 0 ] && [ "$stored" -ge "$answered" ] && echo "no errors, no lost sign-up"
