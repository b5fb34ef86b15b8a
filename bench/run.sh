#!/usr/bin/env bash
# Benchmarks rangeserve against nginx on this machine, in one run, and prints
# medians and ratios. Not part of `cargo test`: performance is measured, not
# asserted. Installs what it needs (nginx, wrk, curl) when missing.
#
#   bench/run.sh            # full run (creates a 1 GiB file under $BENCH_DIR)
#   RUNS=5 DURATION=10 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-16}
BENCH_DIR=${BENCH_DIR:-/tmp/rangeserve-bench}
RS_PORT=18080
NGX_PORT=18081

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need curl; then
  echo "installing nginx wrk curl ..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk curl >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet
BIN=target/release/rangeserve

mkdir -p "$BENCH_DIR/data"
DATA="$BENCH_DIR/data"
[ -f "$DATA/small.bin" ] || head -c 4096 /dev/urandom > "$DATA/small.bin"
[ -f "$DATA/big.bin" ] || head -c $((1024*1024*1024)) /dev/urandom > "$DATA/big.bin"
cat "$DATA/big.bin" > /dev/null   # page cache warm: measure hashing and serving, not the disk

cat > "$BENCH_DIR/nginx.conf" <<NGX
worker_processes 2;
pid $BENCH_DIR/nginx.pid;
error_log $BENCH_DIR/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGX_PORT;
    root $DATA;
  }
}
NGX

RS_PID=
start_rs() {
  "$BIN" -q -p $RS_PORT "$@" "$DATA" > "$BENCH_DIR/rs.out" 2> "$BENCH_DIR/rs.err" &
  RS_PID=$!
  for _ in $(seq 100); do grep -q listening "$BENCH_DIR/rs.out" 2>/dev/null && return; sleep 0.05; done
  echo "rangeserve did not start"; cat "$BENCH_DIR/rs.err"; exit 1
}
stop_rs() { [ -n "$RS_PID" ] && kill "$RS_PID" 2>/dev/null && wait "$RS_PID" 2>/dev/null || true; RS_PID=; }
start_ngx() { "$NGINX" -c "$BENCH_DIR/nginx.conf" -p "$BENCH_DIR"; sleep 0.3; }
stop_ngx() { [ -f "$BENCH_DIR/nginx.pid" ] && kill "$(cat "$BENCH_DIR/nginx.pid")" 2>/dev/null || true; sleep 0.3; }
trap 'stop_rs; stop_ngx' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# requests/s from wrk, median of $RUNS
rps() { # url [header]
  for _ in $(seq "$RUNS"); do
    if [ -n "${2:-}" ]; then wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "$2" "$1"; else wrk -t2 -c"$CONNS" -d"${DURATION}s" "$1"; fi \
      | awk '/Requests\/sec/ {print $2}'
  done | median
}
# seconds for a full download, median of $RUNS
fetch_secs() {
  for _ in $(seq "$RUNS"); do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done | median
}

echo "== rangeserve $("$BIN" --version | cut -d' ' -f2) vs $("$NGINX" -v 2>&1 | cut -d' ' -f3), $(nproc) cores, runs=$RUNS, wrk ${DURATION}s x $CONNS conns"

# 1. first request to a fresh 1 GiB file: time to first byte is the hash
ttfbs=()
for _ in $(seq "$RUNS"); do
  start_rs
  ttfbs+=("$(curl -s -o /dev/null -r 0-0 -w '%{time_starttransfer}' "http://127.0.0.1:$RS_PORT/big.bin")")
  stop_rs
done
ttfb=$(printf '%s\n' "${ttfbs[@]}" | median)
echo "cold 1 GiB first byte (hash)   : median ${ttfb}s  => $(awk -v t="$ttfb" 'BEGIN{printf "%.2f", 1.073741824/t}') GB/s hashing (target >= 1.5)"
if command -v openssl >/dev/null 2>&1; then
  ossl=$(openssl speed -evp sha256 -bytes 1048576 -seconds 2 2>/dev/null | awk '/^sha256/ {print $2}' | tr -d k)
  echo "  reference: openssl sha256 on this CPU: $(awk -v k="$ossl" 'BEGIN{printf "%.2f", k*1000/1e9}') GB/s (the hardware's ceiling for one core)"
fi
[ "${ONLY:-}" = hash ] && exit 0

start_rs --prehash
start_ngx
# wait for the prehash to finish
for _ in $(seq 200); do grep -q 'done in' "$BENCH_DIR/rs.err" 2>/dev/null && break; sleep 0.1; done

RS=http://127.0.0.1:$RS_PORT
NG=http://127.0.0.1:$NGX_PORT
printf '%-34s %12s %12s %8s\n' "" rangeserve nginx "rs/ngx"
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

a=$(rps "$RS/small.bin"); b=$(rps "$NG/small.bin"); row "4 KiB GET, req/s" "$a" "$b"
small_range=$(rps "$RS/small.bin" "Range: bytes=1000-1999")
a=$small_range; b=$(rps "$NG/small.bin" "Range: bytes=1000-1999"); row "4 KiB range 1000 B, req/s" "$a" "$b"
big_range=$(rps "$RS/big.bin" "Range: bytes=500000000-500000999")
b=$(rps "$NG/big.bin" "Range: bytes=500000000-500000999"); row "1 GiB range 1000 B, req/s" "$big_range" "$b"
a=$(rps "$RS/big.bin" "Range: bytes=0-0,-1"); b=$(rps "$NG/big.bin" "Range: bytes=0-0,-1"); row "1 GiB multipart 0-0,-1, req/s" "$a" "$b"
a=$(fetch_secs "$RS/big.bin"); b=$(fetch_secs "$NG/big.bin")
row "1 GiB full download, seconds" "$a" "$b"
echo "  throughput: rangeserve $(awk -v t="$a" 'BEGIN{printf "%.2f", 1.073741824/t}') GB/s, nginx $(awk -v t="$b" 'BEGIN{printf "%.2f", 1.073741824/t}') GB/s"
echo "warm range on 1 GiB vs 4 KiB file (rangeserve): ratio $(ratio "$big_range" "$small_range") (1.00 = no hashing cost)"

# memory: peak RSS after 8 concurrent full 1 GiB downloads and a burst of ranges
pids=()
for _ in $(seq 8); do curl -s -o /dev/null "$RS/big.bin" & pids+=($!); done
wait "${pids[@]}"
rs_hwm=$(awk '/VmHWM/ {print $2}' /proc/$RS_PID/status)
ngx_rss=0
for p in $(pgrep -f "nginx: worker"); do ngx_rss=$((ngx_rss + $(awk '/VmRSS/ {print $2}' /proc/$p/status))); done
echo "rangeserve peak RSS after 8 parallel 1 GiB downloads: $((rs_hwm / 1024)) MiB (nginx workers now: $((ngx_rss / 1024)) MiB)"
