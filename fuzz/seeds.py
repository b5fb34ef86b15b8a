#!/usr/bin/env python3
"""Write the seed corpora fuzz/corpus/<target>/seed-* from the test tables.

Reads string literals of tests/*.rs, tests/common/mod.rs and src/rfc/*.rs,
src/fs.rs, src/plan.rs (Range values, entity-tags, dates, paths, raw
requests, header pairs) and writes one file per value in each target's input
format (see the comment at the top of each fuzz_targets/*.rs). Rerun it after
the tests grow: `python3 fuzz/seeds.py` (old seeds are replaced).
"""

import hashlib
import re
import struct
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
SOURCES = (
    sorted(REPO.glob("tests/*.rs"))
    + [REPO / "tests/common/mod.rs"]
    + sorted(REPO.glob("src/rfc/*.rs"))
    + [REPO / "src/fs.rs", REPO / "src/plan.rs"]
)

# A Rust string literal: optional b prefix, "..." with escapes, or raw r#"..."#.
LITERAL = re.compile(r'b?r(#*)"(.*?)"\1|b?"((?:[^"\\]|\\.)*)"', re.S)
PAIR = re.compile(
    r'\(\s*"([A-Za-z][A-Za-z0-9-]*)"\s*,\s*(b?"(?:[^"\\]|\\.)*"|b?r#*".*?"#*)\s*\)', re.S
)
CALL_PATH = re.compile(r'\.(?:get|get_close|head)\(\s*"(/[^"]*)"|\b(?:request|send|fetch)\([^"]*"([A-Z]+)",\s*"(/[^"]*)"')
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT")


def unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1] if i + 1 < len(body) else ""
        if n == "\n":  # line continuation: skip the newline and leading spaces
            i += 2
            while i < len(body) and body[i] in " \t\n":
                i += 1
            continue
        simple = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif n == "u":
            end = body.index("}", i)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        else:
            out.append(n)
            i += 2
    return "".join(out)


def literal_value(m) -> str:
    return m.group(2) if m.group(2) is not None else unescape(m.group(3))


def literals(text: str):
    for m in LITERAL.finditer(text):
        yield literal_value(m)


def is_range_value(s: str) -> bool:
    return bool(re.fullmatch(r"[ \t]*[A-Za-z]*[ \t]*=?[ \t]*[-0-9, \t\x2b]*[A-Za-z0-9, \t-]*", s)) and (
        "=" in s or s.lower().startswith("bytes")
    ) and len(s) < 300


def is_tag_value(s: str) -> bool:
    t = s.strip(" \t")
    return len(s) < 300 and (t.startswith('"') or t.startswith("W/") or t.startswith("w/") or t == "*" or '", "' in t)


def is_date(s: str) -> bool:
    return bool(re.search(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? ", s)) and len(s) < 100


def main() -> None:
    ranges, tags, dates, paths, raw_requests, pairs, call_paths = set(), set(), set(), set(), set(), set(), set()
    for src in SOURCES:
        if not src.exists():
            continue
        text = src.read_text(encoding="utf-8", errors="replace")
        for m in PAIR.finditer(text):
            name = m.group(1)
            value = literal_value(LITERAL.match(m.group(2)))
            pairs.add((name, value))
            if name.lower() == "range":
                ranges.add(value)
        for m in CALL_PATH.finditer(text):
            if m.group(1):
                call_paths.add(("GET", m.group(1)))
            else:
                call_paths.add((m.group(2), m.group(3)))
        in_rfc = "src/" in str(src.relative_to(REPO))
        for s in literals(text):
            if "\n" not in s and "{" not in s:
                if is_range_value(s) and (in_rfc or "bytes" in s.lower()):
                    ranges.add(s)
                if is_tag_value(s):
                    tags.add(s)
                if is_date(s):
                    dates.add(s)
                if s.startswith("/") and len(s) < 200:
                    paths.add(s)
            first = s.split(" ", 1)[0]
            if first in METHODS and "HTTP/1." in s and "{" not in s:
                raw_requests.add(s)
    # values inside raw requests
    for r in list(raw_requests):
        for line in r.replace("\r\n", "\n").split("\n"):
            name, _, value = line.partition(":")
            value = value.strip()
            if name.lower() == "range":
                ranges.add(value)
            elif name.lower() in ("if-match", "if-none-match", "if-range"):
                tags.add(value)
        target = r.split(" ")
        if len(target) > 2:
            paths.add(target[1])
    for _, p in call_paths:
        paths.add(p)
    for name, value in pairs:
        if name.lower() in ("if-match", "if-none-match", "if-range"):
            (dates if is_date(value) else tags).add(value)
        if name.lower() in ("if-modified-since", "if-unmodified-since"):
            dates.add(value)
    ranges |= {"", "bytes=0-4", "bytes=-7", "bytes=7-", "bytes=0-0,-1", "bytes=500-", "lines=1-2",
               "bytes=0-,0-,0-,0-", "bytes=99999999999999999999-", "bytes=0-99999999999999999999"}
    paths |= {"/", "/hello.txt", "/data.bin", "/big.bin", "/empty.txt", "/sub/", "/sub", "/sub/.",
              "/with%20space.txt", "/caf%C3%A9.txt", "/%2541.txt", "/link_in", "/link_out",
              "/abs_in", "/abs_out", "/dir_in/nested.txt", "/dir_out/secret.txt", "/loop",
              "/dangling", "/fifo", "/etc/passwd", "/.git/config", "/to_hidden", "/to_hidden_dir/config",
              "/sub/to_env", "/.well-known/security.txt", "/.hidn-link", "/%2egit/config"}

    written = {}

    def seed(target: str, data: bytes) -> None:
        written.setdefault(target, set()).add(data)

    # range_header: [sel][len u64 LE][value]
    for v in ranges:
        b = v.encode()
        seed("range_header", bytes([1]) + struct.pack("<Q", 10_000) + b)
        seed("range_header", bytes([0]) + struct.pack("<Q", 69) + b)
        seed("range_header", bytes([0]) + struct.pack("<Q", 0) + b)
    seed("range_header", bytes([2]) + struct.pack("<Q", 2**64 - 1) + b"bytes=0-,-1,18446744073709551614-")
    seed("range_header", bytes([4 * 2]) + struct.pack("<Q", 1000) + b"bytes=0-0,2-2,4-4")

    # etag_list: [flags][lm u32][delta i8][len u16] then lines:
    # current, If-Match, If-None-Match, IMS, IUS, If-Range, Range
    lm = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT, the tables' Last-Modified

    def cond(flags, lines, delta=100, length=10_000, lm=lm):
        return bytes([flags]) + struct.pack("<IbH", lm, delta, length) + "\n".join(lines).encode()

    cur = '"abc"'
    for t in tags:
        seed("etag_list", cond(0b00001, [cur, t]))
        seed("etag_list", cond(0b00010, [cur, "", t]))
        seed("etag_list", cond(0b10000 | 0x80, [cur, "", "", "", "", t, "bytes=0-4"]))
        seed("etag_list", cond(0b00001, [t.strip(), t]))
    for d in dates:
        seed("etag_list", cond(0b00100, [cur, "", "", d]))
        seed("etag_list", cond(0b01000, [cur, "", "", "", d]))
        seed("etag_list", cond(0b10000 | 0x80, [cur, "", "", "", "", d, "bytes=0-0,-1"]))
    for r in sorted(ranges)[:40]:
        seed("etag_list", cond(0x80, [cur, "", "", "", "", "", r]))
    seed("etag_list", cond(0b11111 | 0x80, [cur, cur, '"zzz"', "Sun, 06 Nov 1994 08:49:37 GMT",
                                            "Sun, 06 Nov 1994 08:49:37 GMT", cur, "bytes=0-0,-1"]))
    seed("etag_list", cond(0b00011 | 0x40, ["", "*", "*"], lm=0))

    # path: PATH or PATH\nRANGE
    for p in paths:
        seed("path", p.encode())
    for p in ("/big.bin", "/abs_in", "/link_in"):
        for r in ("bytes=0-99", "bytes=-100", "bytes=307200-", "bytes=0-"):
            seed("path", f"{p}\n{r}".encode())

    # request, raw mode: whole requests
    def raw(method, target, headers=()):
        lines = [f"{method} {target} HTTP/1.1", "Host: fuzz"] + [f"{n}: {v}" for n, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    for r in raw_requests:
        req = r.encode("latin-1", errors="replace")
        if b"\r\n\r\n" not in req:
            req = req.rstrip(b"\r\n") + b"\r\nHost: fuzz\r\n\r\n"
        seed("request", req)
    for method, p in call_paths:
        seed("request", raw(method, p))
    for p in sorted(paths):
        if " " not in p:
            seed("request", raw("GET", p))
    for name, value in pairs:
        if "\r" in value or "\n" in value:
            continue
        target = "/data.bin" if name.lower() != "rangeserve-quirks" else "/hello.txt"
        seed("request", raw("GET", target, [(name, value)]))
    # structured mode: [sel][header lines], $E / $L = the file's ETag / Last-Modified
    data_bin, hello, big = 2, 1, 3
    for v in sorted(ranges):
        if "\r" not in v and "\n" not in v:
            seed("request", bytes([0x80 | data_bin]) + f"Range: {v}".encode())
    structured = [
        (data_bin, "Range: bytes=0-9\r\nIf-Range: $E"),
        (data_bin, "Range: bytes=0-9,100-109\r\nIf-Range: $L"),
        (big, "Range: bytes=300000-,0-0\r\nIf-Range: $E"),
        (big, "Range: bytes=-70000"),
        (hello, "If-None-Match: $E"),
        (hello, "If-None-Match: W/$E, \"x\""),
        (hello, "If-Match: $E\r\nRange: bytes=1-2"),
        (hello, "If-Modified-Since: $L"),
        (hello, "If-Unmodified-Since: $L\r\nRange: bytes=-1"),
        (4, "Range: bytes=-5"),
        (6, "Range: bytes=0-0"),
        (7, "Accept: application/json"),
        (14, "Accept: application/json"),
        (15, "Range: bytes=0-0,-1"),
    ]
    for idx, headers in structured:
        for extra in (0x00, 0x20, 0x10):  # GET, HEAD, quirks server
            seed("request", bytes([0x80 | extra | idx]) + headers.encode())
    readme = (REPO / "README.md").read_text(encoding="utf-8", errors="replace")
    quirks = sorted(set(re.findall(r"^\| `([a-z0-9-]+(?:=[A-Z]+)?)` \|", readme, re.M)))
    for q in quirks:
        q = re.sub(r"=[A-Z]+$", "=100", q.replace("=RATE", "=64k"))
        if q.startswith(("throttle", "stall-after")):
            continue  # slow by design
        seed("request", bytes([0x90 | data_bin]) + f"Rangeserve-Quirks: {q}\r\nRange: bytes=0-99,200-299".encode())
        # 0x01: raw mode, to the quirks-mode server
        seed("request", b"\x01" + raw("GET", f"/_quirks/{q}/data.bin", [("Range", "bytes=5-")]))

    # the handler's debug-build panic hook (the request target skips it)
    written["request"] = {d for d in written["request"] if b"/_rangeserve/debug/panic" not in d}

    for target, seeds in written.items():
        d = FUZZ / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for data in seeds:
            (d / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
