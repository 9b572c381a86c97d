#!/usr/bin/env bash
# Delivery benchmark: `herald send` of N personalized ~20 KB digests to Postfix's smtp-sink,
# side by side in the same run with Postfix's smtp-source sending 20 KB messages to the same
# sink over the same number of kept-alive connections; then the same with DKIM on.
#
#   bench/deliver.sh [N (100000)] [connections (4)]
#
# Installs Postfix (no daemon) for smtp-sink/smtp-source, and openssl for the DKIM key, if
# missing. Also reports the time to create the issue's ledger rows and herald's peak memory.
set -euo pipefail
N=${1:-100000}
C=${2:-4}
root=$(cd "$(dirname "$0")/.." && pwd)

if ! [ -x /usr/sbin/smtp-sink ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null
  postfix stop >/dev/null 2>&1 || true
fi
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl >/dev/null
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
HERALD="$root/target/release/herald"

work=$(mktemp -d)
SINK=""
trap '[ -n "$SINK" ] && kill $SINK 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [ "$(id -u)" = 0 ] && user=(-u nobody)
start_sink() { /usr/sbin/smtp-sink "${user[@]}" -c -m 1024 "127.0.0.1:$port" 1024 > "$work/sink.log" 2>&1 & SINK=$!; sleep 0.3; }
stop_sink() { kill $SINK 2>/dev/null; wait $SINK 2>/dev/null || true; SINK=""; }
sink_count() { tr '\r' '\n' < "$work/sink.log" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2; }

# The publication: three long articles, a newsletter whose template carries their full
# text (about 20 KB a message), N confirmed subscribers.
site="$work/site"; mkdir -p "$site/articles" "$site/templates"
write_articles() {
  rm -f "$site"/articles/*.md
  for i in 1 2 3; do
    { printf -- '---\ntitle: "Long read %s"\ndate: %s\n---\n\n' "$i" "$(date -u -d "-$i second" +%Y-%m-%dT%H:%M:%SZ)"
      for _ in $(seq 1 13); do printf '%s%s%s\n\n' "$para" "$para" "$para"; done; } > "$site/articles/long$i.md"
  done
}
para="The harbour council met on Thursday to discuss the ferry timetable, the storm damage on the sea wall and the budget for the library; the meeting ran late. "
write_articles
cat > "$site/templates/full.html.hbs" <<'HBS'
<!doctype html><html><head><meta charset="utf-8"><title>{{newsletter.title}}</title>
<style>body{font-family:Georgia,serif;color:#222} h2{font-size:20px} .f{font-size:12px;color:#666}</style></head>
<body><p>Hello {{#if subscriber.name}}{{subscriber.name}}{{else}}reader{{/if}},</p>
{{#each articles}}<h2><a href="{{url}}">{{title}}</a></h2>{{{content_html}}}{{/each}}
<p class="f"><a href="{{unsubscribe_url}}">Unsubscribe</a> · <a href="{{archive_url}}">View in browser</a></p></body></html>
HBS
cat > "$site/templates/full.txt.hbs" <<'HBS'
Hello {{#if subscriber.name}}{{subscriber.name}}{{else}}reader{{/if}},
{{#each articles}}

{{title}}
{{url}}
{{/each}}

Unsubscribe: {{unsubscribe_url}}
HBS
write_config() {
  cat > "$site/herald.toml" <<TOML
[site]
title = "Delivery bench"
base_url = "https://bench.example.com/"
[mail]
from = "Bench <news@bench.example.com>"
rate_per_second = 1000000
connections = $C
$1
[[newsletter]]
id = "bench"
title = "Bench"
schedule = "0 7 * * Fri"
template = "full"
skip_empty = false
TOML
}
write_config ""
python3 - "$N" > "$work/subscribers.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("email,name,newsletters,status")
for i in range(n):
    print(f"reader{i}@example{i % 97}.org,{'Reader %d' % i if i % 2 else ''},bench,confirmed")
PY
"$HERALD" --site "$site" subscribers import "$work/subscribers.csv" | tail -1
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$site/dkim.pem" 2>/dev/null

source_rate() {
  start_sink
  local t0 t1
  t0=$(date +%s.%N)
  /usr/sbin/smtp-source -d -s "$C" -m "$N" -l 20480 -f sender@example.com -t rcpt@example.com -M client.example "127.0.0.1:$port" > /dev/null
  t1=$(date +%s.%N)
  sleep 0.2; local got; got=$(sink_count); stop_sink
  [ "$got" = "$N" ] || echo "smtp-source: sink got $got of $N" >&2
  echo "$N / ($t1 - $t0)" | bc -l
}
herald_rate() {   # prints "rate peak_kb made_seconds"
  write_articles   # fresh articles: each issue carries the same three long reads
  sleep 1
  start_sink
  HERALD_SMTP_URL="smtp://127.0.0.1:$port" HERALD_SECRET=bench-secret-0123456789 HERALD_LOG=warn ${STRACE:-} \
    /usr/bin/time -f "PEAK %M USER %U SYS %S WALL %e" "$HERALD" --site "$site" send bench > "$work/send.out" 2> "$work/send.err"; cat "$work/send.out" "$work/send.err" >&2
  sleep 0.2; local got; got=$(sink_count); stop_sink
  [ "$got" = "$N" ] || { echo "herald: sink got $got of $N" >&2; cat "$work/send.err" >&2; }
  local rate peak made
  rate=$(sed -n "s/^delivered .*(\([0-9]*\) messages\/s)/\1/p" "$work/send.out")
  peak=$(awk '/^PEAK/{print $2}' "$work/send.err")
  made=$(grep -o 'made in [0-9.]*' "$work/send.out" | awk '{print $3}')
  echo "$rate $peak $made"
}
size=$(HERALD_LOG=warn "$HERALD" --site "$site" preview bench 2>/dev/null | wc -c)
echo "N=$N messages, $C connections; digest HTML ~$size bytes (plus text part and headers)"
for label in ${LABELS:-plain dkim}; do
  if [ $label = dkim ]; then
    write_config 'dkim = { domain = "bench.example.com", selector = "herald", key_file = "dkim.pem" }'
  fi
  s1=$(source_rate)
  read -r h peak made < <(herald_rate)
  s2=$(source_rate)
  s=$(echo "($s1 + $s2) / 2" | bc -l)
  printf '%-6s herald %6.0f msg/s | smtp-source %6.0f msg/s (%.0f, %.0f) | ratio %.2f | ledger rows made in %s s | peak RSS %d MB\n' \
    "$label" "$h" "$s" "$s1" "$s2" "$(echo "$h / $s" | bc -l)" "$made" "$((peak / 1024))"
done
