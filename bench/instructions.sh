#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind (callgrind), for
# the warm scenarios S1 (1 KiB GET), S2 (random 4 KiB range), S3 (4-part
# multi-range) and S5 (If-None-Match -> 304). Unlike req/s on a shared VM
# (which moves by 5-10 % between rounds), the count repeats within 1-3 %,
# so it shows the effect of a change to the request path that wall-clock
# rounds cannot resolve. It counts only what runs in the server's process
# (the kernel's share is not in it) and counts each byte of a `rep movs` /
# `rep stos` copy or fill as one instruction (a 4 KiB memset weighs 4096): a
# guide for user-space work, never a replacement for bench/run.sh.
#
#   bench/instructions.sh [--bin PATH] [SCENARIO...]     (default: S1 S2 S3 S5)
#
# Installs valgrind and wrk if missing (apt). Data: /tmp/bench-insn (made
# once). The server runs on CPU 0 (current-thread runtime, as in the
# benchmarks), wrk -t1 -c8 on CPU 1; counters are zeroed after 2 s of warm-up
# and read after 4 s of load, divided by the requests wrk completed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/rangeserve
SCENARIOS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        *) SCENARIOS+=("$1"); shift ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(S1 S2 S3 S5)
for tool in valgrind wrk curl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind wrk curl >/dev/null; }
done
[ -x "$BIN" ] || cargo build --release
DATA=/tmp/bench-insn
PORT=19571
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
if [ ! -f "$DATA/blob" ]; then
    mkdir -p "$DATA"
    head -c 1024 /dev/urandom > "$DATA/small.txt"
    head -c $((256 << 20)) /dev/urandom > "$DATA/blob"
fi
# random ranges of the 256 MiB blob, one per line, as ranges.lua reads them
python3 - "$WORK" <<'EOF'
import random, sys
r = random.Random(7); size = 256 << 20
one = lambda n: (lambda s: f"{s}-{s + n - 1}")(r.randrange(0, size - n) // 4096 * 4096)
with open(f"{sys.argv[1]}/s2.txt", "w") as f:
    f.writelines(f"bytes={one(4096)}\n" for _ in range(1000))
with open(f"{sys.argv[1]}/s3.txt", "w") as f:
    f.writelines("bytes=" + ",".join(sorted((one(1024) for _ in range(4)), key=lambda x: int(x.split("-")[0]))) + "\n" for _ in range(1000))
EOF
# the blob's hash, made natively and kept in an ETag cache (written within a
# second): under valgrind it would take minutes. --settle-window 0: the data
# may be new, and a hash of a file changed a moment ago is not kept
SERVE=(-q -b 127.0.0.1 -p $PORT --settle-window 0 --etag-cache "$WORK/etags" "$DATA")
taskset -c 0 "$BIN" "${SERVE[@]}" >/dev/null &
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/small.txt" && break; sleep 0.1; done
curl -s -o /dev/null -r 0-0 "http://127.0.0.1:$PORT/blob"
sleep 1.5
kill %1; wait %1 2>/dev/null || true
for sc in "${SCENARIOS[@]}"; do
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
        "$BIN" "${SERVE[@]}" >/dev/null 2>"$WORK/vg.log" &
    VG=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/small.txt" && break; sleep 0.2; done
    URL=http://127.0.0.1:$PORT
    HEADER="Accept: */*"
    case $sc in
        S1) ARGS=("$URL/small.txt") ;;
        S2) ARGS=(-s bench/ranges.lua "$URL/blob" -- "$WORK/s2.txt") ;;
        S3) ARGS=(-s bench/ranges.lua "$URL/blob" -- "$WORK/s3.txt") ;;
        S5) ETAG=$(curl -s -D - -o /dev/null "$URL/small.txt" | tr -d '\r' | awk 'tolower($1)=="etag:"{print $2}')
            HEADER="If-None-Match: $ETAG"; ARGS=("$URL/small.txt") ;;
        *) echo "unknown scenario $sc (S1 S2 S3 S5)" >&2; exit 2 ;;
    esac
    taskset -c 1 wrk -t1 -c8 -d2s -H "$HEADER" "${ARGS[@]}" >/dev/null
    callgrind_control -z $VG >/dev/null 2>&1
    N=$(taskset -c 1 wrk -t1 -c8 -d4s -H "$HEADER" "${ARGS[@]}" | awk '/requests in/{print $1}')
    callgrind_control -d $VG >/dev/null 2>&1
    sleep 0.5
    OUT=$(ls -t "$WORK"/cg.$VG* | head -1)
    IR=$(awk '/^(summary|totals):/{print $2; exit}' "$OUT")
    kill $VG; wait $VG 2>/dev/null || true
    [ "${N:-0}" -gt 0 ] || { echo "$sc: no request completed (see $WORK/vg.log)" >&2; exit 1; }
    cp "$OUT" "/tmp/instructions-$sc.callgrind"
    echo "$sc instructions/request $((IR / N))  ($N requests; where: /tmp/instructions-$sc.callgrind)"
done
echo "read a profile with: callgrind_annotate --inclusive=yes FILE (or without, for self costs)"
