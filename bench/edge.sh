#!/usr/bin/env bash
# Edge benchmark: the Zeitwork edge, HAProxy and nginx (both from Debian), one after the
# other, in front of the same backend (nginx answering a fixed 200) on loopback, each
# proxy pinned to CPU 0 with one worker, the backend and the load generators on CPU 1.
# Measures HTTP/1.1 keep-alive (wrk), HTTP/2 over TLS (h2load) and full TLS handshakes
# per second (a rustls client in the bench binary), then the edge's own numbers: memory with many routes,
# commit-to-served latency of a new route, and an instance killed under load.
# Prints Markdown for BENCHMARKS.md. Needs root (installs packages when missing).
#
#   bench/edge.sh            DURATION=10 ROUTES=100000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUTES=${ROUTES:-100000}
HOST=shop-acme.zeitwork.test
scripts/setup.sh haproxy nginx-light wrk nghttp2-client openssl curl >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin=$(cargo bench -q -p zeitwork-edge --bench edge --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for m in map(json.loads, sys.stdin):
    if m.get("executable") and m["target"]["name"] == "edge" and "bench" in m["target"]["kind"]:
        print(m["executable"])')

# A test CA and a P-256 leaf for $HOST signed by it; cert.pem is the chain every proxy serves.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days 2 -keyout "$work/ca.key" -out "$work/ca.pem" -subj /CN=bench-ca 2>/dev/null
openssl req "${ec[@]}" -keyout "$work/key.pem" -out "$work/leaf.csr" -subj "/CN=$HOST" 2>/dev/null
printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$HOST" >"$work/leaf.ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/leaf.ext" -out "$work/leaf.pem" 2>/dev/null
cat "$work/leaf.pem" "$work/ca.pem" >"$work/cert.pem"
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem"

wait_port() {
  for _ in $(seq 200); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

nginx_conf() { # NAME BODY
  cat >"$work/$1.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1.err;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/$1-body;
  proxy_temp_path $work/$1-proxy;
  keepalive_requests 10000000;
  $2
}
EOF
}

# The backend every proxy sends to.
nginx_conf backend 'server { listen 127.0.0.1:18080; location / { return 200 "hello from the backend\n"; } }'
taskset -c 1 nginx -c "$work/backend.conf" &
pids+=($!)
wait_port 18080

nginx_conf nginx-proxy "upstream app { server 127.0.0.1:18080; keepalive 64; }
  server {
    listen 127.0.0.1:18083;
    listen 127.0.0.1:18443 ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }"

cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
frontend fe
  bind 127.0.0.1:18082
  bind 127.0.0.1:18442 ssl crt $work/combined.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server app 127.0.0.1:18080
EOF

start_proxy() { # NAME → pid in $proxy
  case $1 in
    zeitwork-edge)
      taskset -c 0 "$bin" serve 127.0.0.1:18080 127.0.0.1:18081 127.0.0.1:18441 \
        "$work/cert.pem" "$work/key.pem" >"$work/edge.out" 2>"$work/edge.err" &
      proxy=$!; http=18081; https=18441 ;;
    haproxy)
      taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.out" 2>&1 &
      proxy=$!; http=18082; https=18442 ;;
    nginx)
      taskset -c 0 nginx -c "$work/nginx-proxy.conf" &
      proxy=$!; http=18083; https=18443 ;;
  esac
  wait_port "$http"
  wait_port "$https"
  curl -sf -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$http/" ||
    { echo "$1 does not proxy to the backend" >&2; cat "$work"/edge.err >&2 || true; exit 1; }
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $(h2load --version | head -1)"
echo
echo "| proxy | HTTP/1.1 req/s (wrk, 50 conns) | p50 | p99 | HTTP/2 TLS req/s (h2load, 20 conns × 10 streams) | full TLS handshakes/s (8 clients, no resumption) |"
echo "|---|---|---|---|---|---|"
for name in zeitwork-edge haproxy nginx; do
  start_proxy "$name"
  taskset -c 1 wrk -t1 -c50 -d2s -H "Host: $HOST" "http://127.0.0.1:$http/" >/dev/null # warm-up
  out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" --latency -H "Host: $HOST" "http://127.0.0.1:$http/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
  h2=$(taskset -c 1 h2load -D "$DURATION" -c 20 -m 10 -H ":authority: $HOST" "https://127.0.0.1:$https/" |
    awk '/finished in/ {print $4}')
  tls=$(taskset -c 1 "$bin" handshakes "127.0.0.1:$https" "$work/ca.pem" "$DURATION")
  echo "| $name | ${rps} ${errors:+($errors)} | $p50 | $p99 | $h2 | $tls |"
  kill "$proxy"
  wait "$proxy" 2>/dev/null || true
done
echo
echo "| edge measurement | | | | |"
echo "|---|---|---|---|---|"
"$bin" routes "$ROUTES"
"$bin" propagation 50
"$bin" failover
