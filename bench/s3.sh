#!/bin/bash
# Issue 10's figures: the same files served by rangeserve from a local
# directory and from a bucket on a loopback S3 server (moto), in one run, the
# server on CPU 0 and moto and the load on CPU 1:
#   - warm GETs of a 1 KiB object, with the metadata cache (--store-revalidate
#     1, the default) and without it (0: a HEAD on every request);
#   - random 4 KiB ranges of a 64 MiB object (each one pinned ranged read);
#   - bulk download of that object (curl, median of 3).
# Over moto these measure moto as much as rangeserve (a Python server): read
# them as what the cache saves and what a store round trip costs.
# Usage: bench/s3.sh [BIN]   (default target/release/rangeserve)
set -euo pipefail
BIN=$(realpath "${1:-target/release/rangeserve}")
HERE=$(cd "$(dirname "$0")" && pwd)
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$1" >/dev/null; }; }
need wrk; need curl
python3 -c "import moto.server, boto3" 2>/dev/null || python3 -m pip install --quiet "moto[server]" \
  || python3 -m pip install --quiet --break-system-packages "moto[server]"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/dir"
head -c $((64 << 20)) /dev/urandom > "$work/dir/big.bin"
head -c 1024 /dev/urandom > "$work/dir/small.txt"
python3 - "$work/ranges.txt" <<'PY'
import random, sys
r = random.Random(1)
with open(sys.argv[1], "w") as f:
    for _ in range(10000):
        o = r.randrange(0, (64 << 20) // 4096) * 4096
        f.write(f"bytes={o}-{o + 4095}\n")
PY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MP=$(free_port)
taskset -c 1 python3 -m moto.server -p "$MP" > "$work/moto.log" 2>&1 &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$MP/" && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_ENDPOINT_URL="http://127.0.0.1:$MP"
python3 - "$work/dir" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench")
for name in ("big.bin", "small.txt"):
    s3.upload_file(os.path.join(sys.argv[1], name), "bench", name)
PY
# files at rest: past the settling window, so a directory's digest is settled
# (a file changed less than that ago is verified by hashing on every body)
sleep 40
LUA=$HERE/ranges.lua
printf "%-30s %14s %16s %10s\n" origin "1 KiB GETs/s" "4 KiB ranges/s" "bulk MB/s"
run() { # name, then the origin and options
  local name=$1 port pid small ranges bulk
  shift
  port=$(free_port)
  taskset -c 0 "$BIN" -q -b 127.0.0.1 -p "$port" "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/small.txt" && break; sleep 0.2; done
  curl -s -o /dev/null -r 0-0 "http://127.0.0.1:$port/big.bin"   # its one hashing pass
  small=$(taskset -c 1 wrk -t1 -c8 -d5s "http://127.0.0.1:$port/small.txt" | awk '/Requests\/sec/{print $2}')
  ranges=$(taskset -c 1 wrk -t1 -c8 -d5s -s "$LUA" "http://127.0.0.1:$port/big.bin" -- "$work/ranges.txt" \
    | awk '/Requests\/sec/{print $2}')
  bulk=$(for _ in 1 2 3; do taskset -c 1 curl -s -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$port/big.bin"; done \
    | sort -n | sed -n 2p | awk '{printf "%.0f", $1 / 1e6}')
  printf "%-30s %14s %16s %10s\n" "$name" "$small" "$ranges" "$bulk"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run "directory" "$work/dir"
run "s3, --store-revalidate 1" s3://bench --store-revalidate 1
run "s3, --store-revalidate 0" s3://bench --store-revalidate 0
