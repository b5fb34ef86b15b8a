#!/usr/bin/env bash
# rangeserve vs nginx on this machine, by the same method as the team's reference harness
# (shared/bench/bench.py): server pinned to CPU 0, load generator (wrk -t1 -c32, curl) pinned to
# CPU 1, nginx with one worker + sendfile + tcp_nopush + open_file_cache + no access log
# (bench/nginx.conf), rounds alternating server order, medians over rounds, ratios per server
# CPU-second, peak RSS; plus S7 (random GETs over 10,000 4 KiB files, caches smaller than the set)
# and S8 (--prehash of 100,000 tiny files vs find | xargs -P2 sha256sum); plus S9-S11 over HTTPS
# with one ECDSA P-256 certificate for both servers (S9 wrk HTTP/1.1, S10 h2load HTTP/2, S11 curl
# bulk; nginx with bench/nginx-tls.conf). Every scenario checks
# sample responses before it is timed. Not part of `cargo test`: performance is measured, not
# asserted. Needs root for apt-get and for S6's drop_caches; uses ports 19000-19999 on 127.0.0.1.
#
#   bench/run.sh                                   # full run: 3 rounds x 10 s per wrk scenario
#   bench/run.sh --duration 5 --runs 5 --json /tmp/bench.json
#   bench/run.sh --scenarios S7 --runs 1           # one scenario (S0..S11, comma-separated)
#   bench/run.sh --scenarios S9,S10,S11 --duration 5   # HTTPS only
#   bench/run.sh --help                            # every option (S7/S8 server templates, ...)
#   RUNS=5 DURATION=10 bench/run.sh                # the old environment knobs still work
#   RANGESERVE_BIN=/path/rangeserve bench/run.sh   # skip `cargo build --release`, use that binary
#   FLOOR=0 bench/run.sh                           # without the copying floor (examples/floor.rs)
#   CEILING=0 bench/run.sh                         # without the ceiling (examples/ceiling.rs)
#
# Data: /tmp/bench-data (1 KiB + 1 GiB files, 10,000 x 4 KiB under many/) and /tmp/bench-data-s8
# (100,000 files), made once and reused. Every process started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need curl || ! need taskset || ! need h2load || ! need openssl; then
  echo "installing nginx wrk curl nghttp2-client (h2load) openssl ..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl util-linux nghttp2-client openssl >/dev/null
fi
need python3 || { echo "python3 is required" >&2; exit 1; }

if [ -n "${RANGESERVE_BIN:-}" ]; then
  BIN=$RANGESERVE_BIN
else
  cargo build --release --quiet
  BIN=target/release/rangeserve
fi
# the copying floor beside rangeserve and nginx (FLOOR=0 leaves it out)
if [ "${FLOOR:-1}" != 0 ]; then
  cargo build --release --quiet --example floor
  extra_bounds=(--floor target/release/examples/floor)
fi
# the ceiling beside them in S1, S12 and S5 (CEILING=0 leaves it out)
if [ "${CEILING:-1}" != 0 ]; then
  cargo build --release --quiet --example ceiling
  extra_bounds+=(--ceiling target/release/examples/ceiling)
fi

extra=()
[ -n "${RUNS:-}" ] && extra+=(--runs "$RUNS")
[ -n "${DURATION:-}" ] && extra+=(--duration "$DURATION")
exec python3 bench/bench.py --bin "$BIN" ${extra_bounds[@]+"${extra_bounds[@]}"} ${extra[@]+"${extra[@]}"} "$@"
