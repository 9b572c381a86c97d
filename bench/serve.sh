#!/usr/bin/env bash
# Serving benchmark: `herald run` serving a 50-item feed under wrk, side by side with nginx
# serving the same bytes from disk, in the same run. Both the 200 path and the 304 path
# (If-None-Match). Prints requests/s and herald's ratio to nginx.
#
#   bench/serve.sh [seconds-per-run (10)] [rounds (3)]
#
# Needs wrk and nginx (Debian packages wrk, nginx-light); installs them if missing.
set -euo pipefail
secs=${1:-10}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)

for tool in wrk nginx; do
  if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
    echo "installing $tool" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$( [ "$tool" = nginx ] && echo nginx-light || echo wrk)" >/dev/null
  fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
HERALD="$root/target/release/herald"

work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
site="$work/site"
mkdir -p "$site/articles"
cat > "$site/herald.toml" <<TOML
[site]
title = "Serve bench"
base_url = "http://127.0.0.1:18080/"
[http]
bind = "127.0.0.1:18080"
TOML
para="The harbour council met on Thursday to discuss the ferry timetable, the storm damage on the sea wall and the budget for the library. "
for i in $(seq -w 1 60); do
  {
    printf -- '---\ntitle: "Article %s"\ndate: 2026-01-%02d 09:00\ntags: [news]\n---\n\n' "$i" $(( (10#$i % 28) + 1 ))
    for _ in $(seq 1 38); do printf '%s' "$para"; done
    printf '\n'
  } > "$site/articles/a$i.md"
done

"$HERALD" --site "$site" build >/dev/null
chmod -R a+rX "$work"   # nginx workers run as an unprivileged user
HERALD_LOG=warn "$HERALD" --site "$site" run & echo $! > "$work/herald.pid"

cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid.file;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { application/rss+xml xml; }
  server {
    listen 127.0.0.1:18081;
    root $site/feeds;
    location / { add_header Cache-Control "public, max-age=300"; }
  }
}
NGINX
"$NGINX" -c "$work/nginx.conf" -g 'daemon off;' & echo $! > "$work/nginx.pid"

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:18080/feeds/rss.xml -o /dev/null && curl -fs http://127.0.0.1:18081/rss.xml -o /dev/null && break
  sleep 0.1
done
cmp <(curl -s http://127.0.0.1:18080/feeds/rss.xml) <(curl -s http://127.0.0.1:18081/rss.xml)
size=$(stat -c %s "$site/feeds/rss.xml")
items=$(grep -c '<item>' "$site/feeds/rss.xml")
etag_h=$(curl -sI http://127.0.0.1:18080/feeds/rss.xml | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
etag_n=$(curl -sI http://127.0.0.1:18081/rss.xml | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag_h" http://127.0.0.1:18080/feeds/rss.xml)" = 304 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag_n" http://127.0.0.1:18081/rss.xml)" = 304 ]
echo "feed: $items items, $size bytes; wrk -t2 -c64 -d${secs}s, $rounds rounds, alternating"

rps() { wrk -t2 -c64 -d"${secs}s" "$@" | awk '/Requests\/sec/{print $2}'; }
declare -a h200 n200 h304 n304
for r in $(seq 1 "$rounds"); do
  h200+=("$(rps http://127.0.0.1:18080/feeds/rss.xml)")
  n200+=("$(rps http://127.0.0.1:18081/rss.xml)")
  h304+=("$(rps -H "If-None-Match: $etag_h" http://127.0.0.1:18080/feeds/rss.xml)")
  n304+=("$(rps -H "If-None-Match: $etag_n" http://127.0.0.1:18081/rss.xml)")
  echo "round $r: 200 herald ${h200[-1]} nginx ${n200[-1]} | 304 herald ${h304[-1]} nginx ${n304[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
mh200=$(median "${h200[@]}"); mn200=$(median "${n200[@]}")
mh304=$(median "${h304[@]}"); mn304=$(median "${n304[@]}")
echo "median 200: herald $mh200 req/s, nginx $mn200 req/s, ratio $(awk "BEGIN{printf \"%.2f\", $mh200/$mn200}")"
echo "median 304: herald $mh304 req/s, nginx $mn304 req/s, ratio $(awk "BEGIN{printf \"%.2f\", $mh304/$mn304}")"
