#!/usr/bin/env python3
r"""rangeserve's own benchmark: rangeserve side by side with nginx (ratios, not absolute figures).

Derived from the team's reference harness (shared/bench/bench.py) and using the same method:
servers run one at a time pinned to CPU 0 (taskset), the load generator (wrk -t1 -c32, curl) is
pinned to CPU 1, each server is restarted per round, rounds alternate the order of servers,
results are medians over rounds, throughput is also given per server-CPU-second (the figure to
compare when the client saturates its core) and as the server's CPU per request, user space and
kernel apart ("usr us/req", "sys us/req": the tick-sampled split of /proc/PID/stat), and RSS is the peak VmHWM of the server's process
tree. nginx runs with bench/nginx.conf (one worker, sendfile, tcp_nopush, open_file_cache, no
access log: the reference's peer config). Every scenario checks sample responses byte for byte
before it is timed; a server that answers wrongly is skipped for that scenario, with a note.

Usage (normally through bench/run.sh, from the repository root):
  python3 bench/bench.py [--duration 10] [--runs 3] [--scenarios S1,S2,S7,S8] [--json out.json]
      [--bin target/release/rangeserve] [--server "NAME=CMD {port} {dir}"] [--peer nginx]
      [--s7-server "NAME=CMD {port} {cache_opts} {dir}"] [--s8-server "CMD {port} {cache} {dir}"]
      [--tls-server "NAME=CMD {port} {cert} {key} {dir}"] [--floor target/release/examples/floor]
      [--ceiling target/release/examples/ceiling]

Defaults: --server "rangeserve=BIN -q -b 127.0.0.1 -p {port} {dir}" and --peer nginx.
--floor adds examples/floor.rs in its directory mode (bench/run.sh passes it): a server that does
nothing but answer, copying every byte it sends through a buffer and checking the file unchanged
before sending (as rangeserve does), S7's files opened per request with no cache. Its ratios to
nginx, from the same rounds, are what such a server can reach on this machine at all.
--ceiling adds examples/ceiling.rs (bench/run.sh passes it) in S1, S12 and S5 only: an epoll loop
with no runtime that answers every head from memory (a 304 when it carries If-None-Match) and does
nothing else. Its ratios bound what any server reaches there on this machine.

Scenarios (S0-S6 are the reference's, measured the same way):
  S0  first request (ms)         Range 0-0 on warm /blob right after server start (hashing cost)
  S1  small GET req/s            wrk -t1 -c32 GET /small.txt (1 KiB)
  S12 small GET, browser's head  S1 with the 14 header lines a browser sends with a navigation
                                 (Sec-Fetch-*, client hints, Cookie...; BROWSER_HEADERS): wrk
                                 alone sends Host only, which real traffic seldom does
  S2  random 4 KiB ranges req/s  wrk + ranges.lua, seeded aligned offsets in /blob (1 GiB)
  S3  4-part multi-range req/s   wrk + ranges.lua, bytes=a-b,c-d,e-f,g-h (1 KiB pieces)
  S4  bulk MB/s                  curl full /blob to /dev/null; also 4 parallel curls (aggregate)
  S5  conditional 304 req/s      wrk with If-None-Match: <server's ETag> (else If-Modified-Since)
  S6  cold first byte (ms)       fresh 1 GiB file, sync + drop_caches, curl time_starttransfer
  S7  many small files req/s     wrk + randpaths.lua: seeded random GETs over 10,000 distinct
                                 4 KiB files, every server cache smaller than the set:
                                 rangeserve with {cache_opts} (default "--open-file-cache 1000
                                 --small-file-cache 4M", each only if BIN --help lists it),
                                 nginx with open_file_cache max=1000. RSS7: peak RSS there.
  S8  prehash of 100,000 files   rangeserve --prehash --etag-cache FILE over 100 dirs x 1,000
                                 files of ~70 bytes: seconds from start until it logs
                                 "prehash: ... done in", vs `find . -type f -print0 | xargs -0
                                 -P2 sha256sum` over the same tree in the same round (both on
                                 --s8-cpus, default CPUs 0,1, page cache warm); the ratio, the
                                 cache file's size, and every digest compared with sha256sum's.
  S9  HTTPS small GET req/s       wrk -t1 -c32 https://127.0.0.1:PORT/small.txt (HTTP/1.1 keep-alive)
  S10 HTTPS HTTP/2 small GET     h2load -t1 -c32 -m10 -D DURATION (ALPN h2), same file
  S11 HTTPS bulk MB/s            curl --http1.1 --cacert CERT full /blob to /dev/null
                                 S9-S11: one ECDSA P-256 certificate made per run with openssl,
                                 given to both servers (rangeserve --tls-cert/--tls-key, nginx
                                 with bench/nginx-tls.conf); RSS9: peak RSS in those rounds.
  RSS peak RSS (KiB)             VmHWM of the server process + all descendants
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import resource
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS_DIR = HERE  # bench/nginx.conf: a copy of the reference's peers/nginx.conf
RANGES_LUA = os.path.join(HERE, "ranges.lua")
RANDPATHS_LUA = os.path.join(HERE, "randpaths.lua")

GiB = 1 << 30
# S12: what Chromium 131 sends with a navigation over HTTP/1.1 (besides Host)
BROWSER_HEADERS = [
    ("Connection", "keep-alive"),
    ("sec-ch-ua", '"Chromium";v="131", "Not_A Brand";v="24"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    ("Upgrade-Insecure-Requests", "1"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/131.0.0.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("Sec-Fetch-Site", "none"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-User", "?1"),
    ("Sec-Fetch-Dest", "document"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Cookie", "session=abc123"),
]
SMALL_SIZE = 1024
BLOB_SIZE = GiB
SERVER_CPU = "0"
CLIENT_CPU = "1"
PORT_MIN, PORT_MAX = 19000, 19999
FORBIDDEN_PORTS = {2024}
# S7: many distinct small files under <data-dir>/many/dNN/fNNNN.bin
S7_DIRS, S7_PER_DIR, S7_SIZE = 100, 100, 4096
# S8: a tree of tiny files under <s8-dir>/tree/dNN/fNNN.txt
S8_DIRS, S8_PER_DIR = 100, 1000

# metric id -> (title, unit, higher_is_better, scenario)
METRICS = [
    ("S0", "first request after server start: Range 0-0 of warm 1 GiB /blob (time to status line)", "ms", False, "S0"),
    ("S1", "small GET /small.txt (wrk -t1 -c32)", "req/s", True, "S1"),
    ("S12", "S1 with a browser's request head (14 header lines)", "req/s", True, "S12"),
    ("S2", "random aligned 4 KiB single range in 1 GiB /blob", "req/s", True, "S2"),
    ("S3", "4-part multi-range (4x1 KiB) in /blob", "req/s", True, "S3"),
    ("S4", "bulk GET /blob, 1 curl", "MB/s", True, "S4"),
    ("S4x4", "bulk GET /blob, 4 parallel curls (aggregate)", "MB/s", True, "S4"),
    ("S5", "conditional GET -> 304 on /small.txt", "req/s", True, "S5"),
    ("S6", "cold time-to-first-byte, fresh 1 GiB file", "ms", False, "S6"),
    ("S6bw", "cold full download of that fresh file", "MB/s", True, "S6"),
    ("S6x", "S6 / openssl dgst -sha256 on the same evicted file (1.0 = hashing limit)", "x", False, "S6"),
    ("RSS", "peak RSS (VmHWM, process + descendants, max over rounds)", "KiB", False, None),
    ("S7", "random GET over 10,000 distinct 4 KiB files, caches smaller than the set", "req/s", True, "S7"),
    ("RSS7", "peak RSS in S7 (VmHWM, process + descendants)", "KiB", False, "S7"),
    ("S9", "HTTPS small GET /small.txt, HTTP/1.1 keep-alive (wrk -t1 -c32)", "req/s", True, "S9"),
    ("S10", "HTTPS small GET /small.txt, HTTP/2 (h2load -t1 -c32 -m10)", "req/s", True, "S10"),
    ("S11", "HTTPS bulk GET /blob, HTTP/1.1, 1 curl", "MB/s", True, "S11"),
    ("RSS9", "peak RSS in S9-S11 (VmHWM, process + descendants, max over rounds)", "KiB", False, "TLS"),
]
METRIC_INFO = {m[0]: m for m in METRICS}
MAIN_SCENARIOS = ["S0", "S1", "S12", "S2", "S3", "S4", "S5", "S6"]
TLS_SCENARIOS = ["S9", "S10", "S11"]
ALL_SCENARIOS = MAIN_SCENARIOS + ["S7", "S8"] + TLS_SCENARIOS


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------

def prepare_data(data_dir):
    os.makedirs(data_dir, exist_ok=True)
    small = os.path.join(data_dir, "small.txt")
    if not os.path.exists(small) or os.path.getsize(small) != SMALL_SIZE:
        rnd = random.Random(1)
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(63)) + "\n"
        with open(small, "w") as f:
            f.write((line * (SMALL_SIZE // 64 + 1))[:SMALL_SIZE])
    blob = os.path.join(data_dir, "blob")
    st = os.stat(blob) if os.path.exists(blob) else None
    if st is None or st.st_size != BLOB_SIZE or st.st_blocks * 512 < BLOB_SIZE:
        log(f"generating {blob} (1 GiB from /dev/urandom, real bytes)")
        tmp = blob + ".tmp"
        with open(tmp, "wb") as out:
            subprocess.run(["head", "-c", str(BLOB_SIZE), "/dev/urandom"], stdout=out, check=True)
        os.rename(tmp, blob)
    # leftover cold files from an interrupted run
    for name in os.listdir(data_dir):
        if name.startswith("cold-"):
            try:
                os.unlink(os.path.join(data_dir, name))
            except OSError:
                pass
    return small, blob


def prepare_many(data_dir, seed):
    """S7: 10,000 distinct 4 KiB files (seeded bytes, made once). Returns their URL paths."""
    root = os.path.join(data_dir, "many")
    paths = [f"/many/d{d:02d}/f{d * S7_PER_DIR + i:05d}.bin" for d in range(S7_DIRS) for i in range(S7_PER_DIR)]
    fresh = True
    for p in paths:
        try:
            if os.path.getsize(data_dir + p) != S7_SIZE:
                fresh = False
                break
        except OSError:
            fresh = False
            break
    if not fresh:
        log(f"generating {root} ({len(paths)} files of {S7_SIZE} bytes)")
        rnd = random.Random(seed)
        for p in paths:
            full = data_dir + p
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(rnd.randbytes(S7_SIZE))
    return paths


def prepare_tree(s8_dir):
    """S8: 100 directories x 1,000 files of 64-76 bytes (seeded text, made once)."""
    tree = os.path.join(s8_dir, "tree")
    marker = os.path.join(s8_dir, "complete-v1")  # outside the tree: it must not be hashed
    if os.path.exists(marker) and os.path.isdir(tree):
        return tree
    log(f"generating {tree} ({S8_DIRS} x {S8_PER_DIR} small files)")
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    rnd = random.Random(8)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    for d in range(S8_DIRS):
        dd = os.path.join(tree, f"d{d:02d}")
        os.makedirs(dd)
        for i in range(S8_PER_DIR):
            n = rnd.randrange(63, 76)
            line = f"{d:02d}/{i:03d} " + "".join(rnd.choice(alphabet) for _ in range(n - 7))
            with open(os.path.join(dd, f"f{i:03d}.txt"), "w") as f:
                f.write(line + "\n")
    with open(marker, "w") as f:
        f.write(f"{S8_DIRS * S8_PER_DIR}\n")
    return tree


def warm_tree(tree):
    """Read every file of a tree once (page cache, dentries and inodes warm for both contenders)."""
    subprocess.run("find . -type f -print0 | xargs -0 cat > /dev/null", shell=True, cwd=tree,
                   check=True, timeout=600)


def warm_file(path):
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def write_range_lists(run_dir, seed, n=65536):
    """S2: single aligned 4 KiB ranges. S3: 4 sorted distinct aligned 1 KiB pieces."""
    rnd = random.Random(seed)
    blocks4k = BLOB_SIZE // 4096
    s2 = []
    for _ in range(n):
        b = rnd.randrange(blocks4k)
        s2.append((b * 4096, b * 4096 + 4095))
    blocks1k = BLOB_SIZE // 1024
    s3 = []
    for _ in range(n):
        picks = sorted(rnd.sample(range(blocks1k), 4))
        s3.append([(p * 1024, p * 1024 + 1023) for p in picks])
    p2 = os.path.join(run_dir, "ranges-s2.txt")
    p3 = os.path.join(run_dir, "ranges-s3.txt")
    with open(p2, "w") as f:
        for a, b in s2:
            f.write(f"bytes={a}-{b}\n")
    with open(p3, "w") as f:
        for parts in s3:
            f.write("bytes=" + ",".join(f"{a}-{b}" for a, b in parts) + "\n")
    return (p2, s2), (p3, s3)


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True, ""
    except OSError as e:
        return False, str(e)


def resident_bytes(path):
    """Page-cache-resident bytes of a file via fincore (None if unavailable)."""
    try:
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", path], capture_output=True, text=True,
                             timeout=10)
        return int(out.stdout.strip().split()[0])
    except Exception:
        return None


# ----------------------------------------------------------------------------
# servers
# ----------------------------------------------------------------------------

def find_bin(name):
    for cand in (os.path.join("/tmp/bench-peers/bin", name), shutil.which(name)):
        if cand and os.path.exists(cand):
            return cand
    return None


def render_template(template_name, run_dir, port, data_dir, out_name, ofc_max=None, tls=None):
    with open(os.path.join(PEERS_DIR, template_name)) as f:
        text = f.read()
    text = text.replace("@PORT@", str(port)).replace("@DIR@", data_dir).replace("@RUN@", run_dir)
    if tls:  # S9-S11: (certificate, key) PEM files
        text = text.replace("@CERT@", tls[0]).replace("@KEY@", tls[1])
    if ofc_max is not None:  # S7: an open_file_cache smaller than the file set
        text, n = re.subn(r"(?m)^(\s*)open_file_cache max=\d+", rf"\1open_file_cache max={ofc_max}", text)
        if n != 1:
            raise RuntimeError(f"no open_file_cache max= line in {template_name}")
    out = os.path.join(run_dir, out_name)
    with open(out, "w") as f:
        f.write(text)
    return out


def peer_command(peer, run_dir, port, data_dir, ofc_max=None, tls=None):
    """Return a shell command (no placeholders) that runs the peer in the foreground."""
    if peer == "nginx":
        conf = render_template("nginx-tls.conf" if tls else "nginx.conf", run_dir, port, data_dir,
                               "nginx.conf", ofc_max, tls)
        return f"nginx -p {run_dir}/ -e {run_dir}/error.log -c {conf}"
    if peer in ("python", "python-http.server"):
        if tls:
            raise RuntimeError("python http.server has no TLS (use --tls-server NAME=CMD)")
        return f"{sys.executable} -m http.server -b 127.0.0.1 -d {data_dir} {port}"
    raise RuntimeError(f"unknown peer {peer!r} (built in: nginx, python; else use --server NAME=CMD)")


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_port(preferred):
    p = preferred
    for _ in range(PORT_MAX - PORT_MIN + 1):
        if PORT_MIN <= p <= PORT_MAX and p not in FORBIDDEN_PORTS and port_free(p):
            return p
        p = PORT_MIN + ((p - PORT_MIN + 1) % (PORT_MAX - PORT_MIN + 1))
    raise RuntimeError("no free port in 19000-19999")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
            ppid = int(data[data.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def descendants(pid):
    kids = children_map()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        for c in kids.get(p, []):
            out.append(c)
            stack.append(c)
    return out


def read_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpus_allowed(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def proc_cpu_ticks(pids):
    """utime+stime (clock ticks) summed over pids (all threads of each process)."""
    return sum(proc_cpu_split(pids))


def proc_cpu_split(pids):
    """(utime, stime) in clock ticks, summed over pids (all threads of each process). The
    kernel charges each tick to the mode it lands in, so the split is a sample (within a few
    per cent over a few hundred ticks); the sum is the process's CPU time."""
    user = system = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user, system


def cpu_busy_ticks():
    """{cpuN: (busy, total)} from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:9]]
                idle = vals[3] + vals[4]
                out[parts[0]] = (sum(vals) - idle, sum(vals))
    return out


class CpuMeter:
    """Measures server-process CPU% and per-core busy% of the server/client cores over a window."""
    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self, srv):
        self.srv = srv
        self.pids = [srv.proc.pid] + descendants(srv.proc.pid)
        self.t0 = time.time()
        self.u0, self.s0 = proc_cpu_split(self.pids)
        self.c0 = cpu_busy_ticks()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.r0 = ru.ru_utime + ru.ru_stime

    def stop(self):
        dt = time.time() - self.t0
        u1, s1 = proc_cpu_split(self.pids)
        c1 = cpu_busy_ticks()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # load generators already reaped
        du, ds = u1 - self.u0, s1 - self.s0
        res = {"srv_cpu_pct": round(100.0 * (du + ds) / self.HZ / dt, 1) if dt > 0 else None,
               "srv_user_s": du / self.HZ, "srv_sys_s": ds / self.HZ,
               "client_cpu_pct": round(100.0 * (ru.ru_utime + ru.ru_stime - self.r0) / dt, 1) if dt > 0 else None}
        for cpu, label in ((SERVER_CPU, "server_core_busy_pct"), (CLIENT_CPU, "client_core_busy_pct")):
            k = "cpu" + cpu
            if k in c1 and k in self.c0:
                db = c1[k][0] - self.c0[k][0]
                dtot = c1[k][1] - self.c0[k][1]
                res[label] = round(100.0 * db / dtot, 1) if dtot else None
        return res


class Server:
    def __init__(self, name, cmd_template=None, peer=None, tag="", subst=None, ofc_max=None,
                 cpus=SERVER_CPU, env=None, tls=False, only=None):
        self.name = name
        self.only = only        # (scenarios, why): the only S0-S6 scenarios it takes part in
        self.tls = tls          # S9-S11: the peer gets subst["cert"], subst["key"]
        self.cmd_template = cmd_template
        self.peer = peer
        self.tag = tag          # run-dir suffix, so S7/S8 instances keep their own logs
        self.subst = subst or {}  # extra placeholders, e.g. {cache_opts}, {cache}
        self.ofc_max = ofc_max  # nginx open_file_cache max= override (S7)
        self.cpus = cpus
        self.env = env
        self.proc = None
        self.port = None
        self.pids = []
        self.logf = None
        self.reader = None

    def start(self, port, data_dir, run_dir, on_line=None):
        """Start pinned to self.cpus; wait until it accepts connections. With on_line, the
        server's output goes through a pipe and on_line(text, perf_counter) sees every line."""
        self.port = port
        sdir = os.path.join(run_dir, f"srv-{self.name}{self.tag}")
        os.makedirs(sdir, exist_ok=True)
        if self.peer:
            cmd = peer_command(self.peer, sdir, port, data_dir, self.ofc_max,
                               (self.subst["cert"], self.subst["key"]) if self.tls else None)
        else:
            cmd = self.cmd_template.replace("{dir}", data_dir).replace("{port}", str(port))
            for k, v in self.subst.items():
                cmd = cmd.replace(" {" + k + "}", " " + v if v else "").replace("{" + k + "}", v)
        self.cmd = cmd
        self.logf = open(os.path.join(sdir, "server.log"), "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.t_spawn = time.perf_counter()
        # taskset execs sh, which execs the server: the PID we hold is the server itself.
        self.proc = subprocess.Popen(["taskset", "-c", self.cpus, "sh", "-c", "exec " + cmd],
                                     stdout=subprocess.PIPE if on_line else self.logf,
                                     stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if on_line:
            def pump(pipe, logf):
                for raw in iter(pipe.readline, b""):
                    t = time.perf_counter()
                    logf.write(raw)
                    logf.flush()
                    on_line(raw.decode("utf-8", "replace").rstrip("\r\n"), t)
                pipe.close()
            self.reader = threading.Thread(target=pump, args=(self.proc.stdout, self.logf), daemon=True)
            self.reader.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited rc={self.proc.returncode} (see {sdir}/server.log)")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
                time.sleep(0.3)  # let multi-process servers finish forking workers
                self.pids = [self.proc.pid] + descendants(self.proc.pid)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {port} within 20s")

    def peak_rss_kib(self):
        """Sum of VmHWM over the server and all its current descendants."""
        pids = [self.proc.pid] + descendants(self.proc.pid)
        self.pids = pids
        return sum(read_status_kib(p, "VmHWM") for p in pids), pids

    def affinity(self):
        return {p: cpus_allowed(p) for p in [self.proc.pid] + descendants(self.proc.pid)}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        pids = [self.proc.pid] + descendants(self.proc.pid)
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for p in pids:  # only PIDs we started (server + its descendants)
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.reader:
            self.reader.join(timeout=5)
            self.reader = None
        if self.logf:
            self.logf.close()
        self.proc = None


# ----------------------------------------------------------------------------
# HTTP helpers (verification)
# ----------------------------------------------------------------------------

def http_get(port, path, headers=None, max_body=1 << 20, method="GET", ctx=None, info=None):
    """Returns (status, headers(dict lower), body or None if too large). With ctx (an SSL context),
    over HTTPS; then info (a dict) gets the TLS version, cipher and ALPN protocol."""
    if ctx is not None:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        if ctx is not None and info is not None:
            info.update(tls=c.sock.version(), cipher=c.sock.cipher()[0], alpn=c.sock.selected_alpn_protocol())
        h = {k.lower(): v for k, v in r.getheaders()}
        length = h.get("content-length")
        if method == "HEAD" or r.status in (204, 304):
            body = b""
        elif length is not None and int(length) > max_body:
            body = None  # don't read a 1 GiB body
        else:
            body = r.read(max_body + 1)
        return r.status, h, body
    finally:
        c.close()


def file_bytes(path, a, b):
    with open(path, "rb") as f:
        return os.pread(f.fileno(), b - a + 1, a)


def verify_small(port, small, ctx=None):
    info = {}
    st, h, body = http_get(port, "/small.txt", ctx=ctx, info=info)
    want = open(small, "rb").read()
    if st != 200:
        return False, f"status {st}"
    if body != want:
        return False, f"body mismatch (len {len(body or b'')})"
    if ctx is not None:
        if info.get("alpn") not in (None, "http/1.1"):
            return False, f"ALPN {info.get('alpn')!r}, want http/1.1"
        return True, f"200, 1024 bytes ok over {info['tls']} {info['cipher']} (ALPN {info['alpn']})"
    return True, "200, 1024 bytes ok"


def tls_context(cert):
    """Client context trusting only the run's certificate (host 127.0.0.1 is in its SAN)."""
    ctx = ssl.create_default_context(cafile=cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def make_cert(run_dir):
    """S9-S11: one self-signed ECDSA P-256 certificate + key for both servers."""
    cert, key = os.path.join(run_dir, "tls-cert.pem"), os.path.join(run_dir, "tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


def verify_h2_small(port, small, cert, run_dir):
    """S10: GET /small.txt over HTTP/2 (curl --http2, ALPN h2), byte-exact."""
    out = os.path.join(run_dir, f"s10-sample-{port}")
    p = subprocess.run(["curl", "-s", "--http2", "--cacert", cert, "-o", out, "-w", "%{http_code} %{http_version}",
                        f"https://127.0.0.1:{port}/small.txt"], capture_output=True, text=True, timeout=60)
    try:
        code, ver = p.stdout.split()
        with open(out, "rb") as f:
            body = f.read()
        os.unlink(out)
    except (ValueError, OSError):
        return False, f"curl rc {p.returncode}: {p.stderr[-200:]}"
    if ver != "2":
        return False, f"HTTP version {ver} (no h2 by ALPN)"
    if code != "200" or body != open(small, "rb").read():
        return False, f"h2: status {code}, {len(body)} bytes, not the file"
    return True, "200 over h2, 1024 bytes ok"


def verify_single_ranges(port, blob, ranges, k=5, ctx=None):
    for a, b in ranges[:k]:
        st, h, body = http_get(port, "/blob", {"Range": f"bytes={a}-{b}"}, ctx=ctx)
        if st != 206:
            return False, f"Range -> status {st} (no range support)"
        if body is None or len(body) != b - a + 1:
            return False, f"206 but body length {None if body is None else len(body)} != {b - a + 1}"
        cr = h.get("content-range", "")
        if cr != f"bytes {a}-{b}/{BLOB_SIZE}":
            return False, f"bad Content-Range {cr!r}"
        if body != file_bytes(blob, a, b):
            return False, "206 body bytes differ from file"
    return True, f"206, {k} samples byte-exact"


def parse_multipart(body, boundary):
    parts = []
    delim = b"--" + boundary.encode()
    chunks = body.split(delim)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        if b"\r\n\r\n" not in chunk:
            continue
        head, data = chunk.split(b"\r\n\r\n", 1)
        if data.endswith(b"\r\n"):
            data = data[:-2]
        hdrs = {}
        for line in head.split(b"\r\n"):
            if b":" in line:
                k, v = line.split(b":", 1)
                hdrs[k.strip().lower().decode()] = v.strip().decode()
        parts.append((hdrs, data))
    return parts


def verify_multi_ranges(port, blob, multi, k=3):
    for pieces in multi[:k]:
        hv = "bytes=" + ",".join(f"{a}-{b}" for a, b in pieces)
        st, h, body = http_get(port, "/blob", {"Range": hv})
        if st != 206:
            return False, f"multi-range -> status {st}"
        ct = h.get("content-type", "")
        m = re.search(r'boundary="?([^";]+)"?', ct)
        if not ct.lower().startswith("multipart/byteranges") or not m:
            return False, f"206 but not multipart (Content-Type {ct!r})"
        if body is None:
            return False, "multipart body too large"
        parts = parse_multipart(body, m.group(1))
        if len(parts) != len(pieces):
            return False, f"multipart has {len(parts)} parts, want {len(pieces)}"
        for (hdrs, data), (a, b) in zip(parts, pieces):
            if hdrs.get("content-range") != f"bytes {a}-{b}/{BLOB_SIZE}":
                return False, f"part Content-Range {hdrs.get('content-range')!r}"
            if data != file_bytes(blob, a, b):
                return False, "part bytes differ from file"
    return True, f"206 multipart/byteranges, {k} samples x4 parts byte-exact"


def conditional_header(port):
    """The server's own validator for /small.txt that yields 304: ETag first, else Last-Modified."""
    st, h, _ = http_get(port, "/small.txt")
    if st != 200:
        return None, f"status {st}"
    cands = []
    if h.get("etag"):
        cands.append(("If-None-Match", h["etag"]))
    if h.get("last-modified"):
        cands.append(("If-Modified-Since", h["last-modified"]))
    if not cands:
        return None, "no ETag and no Last-Modified"
    tried = []
    for hdr in cands:
        st2, _, _ = http_get(port, "/small.txt", {hdr[0]: hdr[1]})
        if st2 == 304:
            extra = f" (If-None-Match gave {tried[0]})" if tried else ""
            return hdr, f"304 via {hdr[0]}: {hdr[1]}{extra}"
        tried.append(st2)
    return None, f"conditional request -> status {tried}, not 304"


def verify_many(port, data_dir, paths, seed, k=20):
    """S7: k seeded random files, 200 and byte-exact."""
    rnd = random.Random(seed)
    for p in rnd.sample(paths, k):
        st, h, body = http_get(port, p)
        if st != 200:
            return False, f"GET {p} -> status {st}"
        with open(data_dir + p, "rb") as f:
            if body != f.read():
                return False, f"GET {p}: body differs from file (len {len(body or b'')})"
    return True, f"200, {k} random files of {len(paths)} byte-exact"


def touch_all(port, paths, size):
    """One GET of every path over one keep-alive connection (so per-file first-request work, such
    as hashing for the ETag, is done before timing: S7 measures the steady state). Returns
    (seconds, number of answers that were not 200 with `size` bytes)."""
    bad = 0
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for p in paths:
            c.request("GET", p)
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != size:
                bad += 1
            if r.getheader("connection", "").lower() == "close":
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    finally:
        c.close()
    return time.perf_counter() - t0, bad


def read_etag_cache(path):
    """rangeserve's --etag-cache file: {absolute path: sha256 hex}.

    The format is src/persist.rs's: a header, then batches of entry lines
    (src/hashcache.rs's seven fields) and `- <id>` removals (id: the first
    16 bytes of the entry line's SHA-256), each closed by `sha256 <hex>`;
    replayed in order. A torn last batch is skipped, as rangeserve does.
    """
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").split("\n")
    if not lines or not lines[0].startswith("rangeserve-etag-cache"):
        raise ValueError(f"unexpected header {lines[:1]!r}")
    live, batch = {}, []
    for line in lines[1:]:
        if not line.startswith("sha256 "):
            batch.append(line)
            continue
        for entry in batch:
            if entry.startswith("- "):
                live.pop(entry[2:], None)
            else:
                live[hashlib.sha256(entry.encode()).hexdigest()[:32]] = entry
        batch = []
    out = {}
    for line in live.values():
        f = line.split(" ")
        if len(f) == 7:
            out[bytes.fromhex(f[6]).decode("utf-8", "replace")] = f[0]
    return out


def help_options(binary):
    """The long options `binary --help` lists (empty set if it cannot run)."""
    try:
        p = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=20)
        return set(re.findall(r"(--[a-z][a-z0-9-]+)", p.stdout + p.stderr))
    except (OSError, subprocess.TimeoutExpired):
        return set()


# ----------------------------------------------------------------------------
# load generators
# ----------------------------------------------------------------------------

def _num(s):
    m = re.match(r"([\d.]+)(\w*)", s)
    v = float(m.group(1))
    mult = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
    return v * mult.get(m.group(2), 1.0)


def run_wrk(port, path, duration, script=None, script_args=(), headers=(), conns=32, scheme="http"):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{duration}s",
            "--timeout", "5s", "--latency"]
    for k, v in headers:
        argv += ["-H", f"{k}: {v}"]
    if script:
        argv += ["-s", script]
    argv.append(f"{scheme}://127.0.0.1:{port}{path}")
    if script_args:
        argv += ["--"] + list(script_args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    out = p.stdout + p.stderr
    res = {"rps": None, "requests": 0, "non2xx3xx": 0, "socket_errors": 0, "latency_ms": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx3xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
    for pct in ("50%", "90%", "99%"):
        m = re.search(r"^\s+" + re.escape(pct) + r"\s+([\d.]+\w+)", out, re.M)
        if m:
            res["latency_ms"][pct] = round(_num(m.group(1)), 3)
    if p.returncode != 0 or res["rps"] is None:
        res["error"] = out[-500:]
    bad = res["non2xx3xx"] + res["socket_errors"]
    if res["requests"] and bad > 0.01 * res["requests"]:
        res["error"] = f"{bad} errors / {res['requests']} requests"
    return res


def run_h2load(port, path, duration, conns=32, streams=10):
    """S10: h2load over HTTPS (ALPN h2) pinned to the client CPU; req/s from its summary."""
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", f"-c{conns}", f"-m{streams}", "-D", str(duration),
            f"https://127.0.0.1:{port}{path}"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    out = p.stdout + p.stderr
    res = {"rps": None, "requests": 0, "failed": 0, "latency_ms": {}}
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    if m:
        res["rps"] = float(m.group(2))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if m:
        res["requests"] = int(m.group(3))
        res["failed"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        res["non2xx"] = sum(int(x) for x in m.groups()[1:])
    m = re.search(r"Application protocol: (\S+)", out)
    res["alpn"] = m.group(1) if m else None
    m = re.search(r"time for request:\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", out)
    if m:
        res["latency_ms"] = {"min": round(_num(m.group(1)), 3), "max": round(_num(m.group(2)), 3),
                             "mean": round(_num(m.group(3)), 3)}
    if p.returncode != 0 or res["rps"] is None:
        res["error"] = out[-500:]
    elif res["alpn"] != "h2":
        res["error"] = f"application protocol {res['alpn']}, not h2"
    elif res["requests"] and (res["failed"] + res.get("non2xx", 0)) > 0.01 * res["requests"]:
        res["error"] = f"{res['failed'] + res.get('non2xx', 0)} failed/non-2xx / {res['requests']} requests"
    return res


CURL_FMT = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"


def curl_start(url, max_time=300, extra=()):
    return subprocess.Popen(["taskset", "-c", CLIENT_CPU, "curl", "-s", "-o", "/dev/null",
                             "--max-time", str(max_time), "-w", CURL_FMT] + list(extra) + [url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def curl_finish(p):
    out, _ = p.communicate()
    code, size, tst, tt = out.split()
    return {"code": int(code), "bytes": int(size), "ttfb_s": float(tst), "total_s": float(tt)}


# ----------------------------------------------------------------------------
# harness
# ----------------------------------------------------------------------------

class Harness:
    def __init__(self, args, servers, s7_servers=(), s8_server=None, tls_servers=()):
        self.args = args
        self.servers = servers
        self.s7_servers = list(s7_servers)
        self.tls_servers = list(tls_servers)
        self.s8_server = s8_server
        self.data_dir = os.path.abspath(args.data_dir)
        self.run_dir = os.path.join("/tmp", f"bench-run-{os.getpid()}")
        os.makedirs(self.run_dir, exist_ok=True)
        self.scen = args.scenarios
        names = list(dict.fromkeys([s.name for s in servers] + [s.name for s in self.s7_servers] +
                                   [s.name for s in self.tls_servers]))
        self.names = names
        self.raw = {n: {m[0]: [] for m in METRICS} for n in names}
        self.detail = {n: {m[0]: [] for m in METRICS} for n in names}
        self.notes = {n: {} for n in names}
        self.unsupported = {n: {} for n in names}
        self.s8 = {"rs": [], "sum": [], "ratio": [], "runs": [], "notes": []}
        self.cold_counter = 0
        self.drop_ok = None
        self.drop_err = ""

    def note(self, srv, key, text):
        self.notes[srv.name][key] = text

    def record(self, srv, metric, value, detail=None):
        if value is not None:
            self.raw[srv.name][metric].append(value)
        self.detail[srv.name][metric].append(detail if detail is not None else value)

    def wrk_scenario(self, srv, metric, path, script=None, script_args=(), headers=(), scheme="http"):
        d = self.args.duration
        if self.args.warmup > 0:
            run_wrk(srv.port, path, self.args.warmup, script, script_args, headers, scheme=scheme)
        meter = CpuMeter(srv)
        r = run_wrk(srv.port, path, d, script, script_args, headers, scheme=scheme)
        r.update(meter.stop())
        if r.get("error"):
            log(f"  {srv.name} {metric}: wrk problem: {r['error'][:200]}")
            self.record(srv, metric, None, r)
        else:
            self.record(srv, metric, r["rps"], r)
        log(f"  {srv.name} {metric}: {r['rps']} req/s (p99 {r['latency_ms'].get('99%')} ms, "
            f"server CPU {r.get('srv_cpu_pct')}%, client CPU {r.get('client_cpu_pct')}%, "
            f"client core busy {r.get('client_core_busy_pct')}%)")

    def check(self, srv, scen, fn):
        """Run a verification once per server (first round); remember failures."""
        if scen in self.unsupported[srv.name]:
            return False
        if scen in self.notes[srv.name]:
            return True
        try:
            ok, why = fn()
        except Exception as e:  # noqa
            ok, why = False, f"verify error: {e!r}"
        self.note(srv, scen, why)
        if not ok:
            self.unsupported[srv.name][scen] = why
            log(f"  {srv.name} {scen}: SKIPPED ({why})")
        return ok

    def prime(self, srv):
        """First request after start (blob is in page cache): shows per-file startup work such as
        hashing for strong ETags, and keeps that work out of the measured wrk windows."""
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=300)
            c.request("GET", "/blob", headers={"Range": "bytes=0-0"})
            r = c.getresponse()
            ms = (time.perf_counter() - t0) * 1e3
            st = r.status
            c.close()
        except Exception as e:  # noqa
            self.record(srv, "S0", None, {"error": repr(e)})
            return
        self.record(srv, "S0", ms, {"status": st, "ms": ms})
        log(f"  {srv.name} S0: first request {ms:.2f} ms (status {st})")
        try:  # also touch small.txt once
            http_get(srv.port, "/small.txt")
        except Exception:  # noqa
            pass

    def round(self, srv, rnd):
        a = self.args
        scen = self.scen
        if srv.only:
            taken, why = srv.only
            scen = [s for s in self.scen if s in taken]
            for s in self.scen:
                if s not in taken:
                    self.unsupported[srv.name].setdefault(s, why)
        if not srv.only or "S0" in srv.only[0]:
            self.prime(srv)
        if "S1" in scen and self.check(srv, "S1", lambda: verify_small(srv.port, self.small)):
            self.wrk_scenario(srv, "S1", "/small.txt")
        if "S12" in scen and self.check(srv, "S1", lambda: verify_small(srv.port, self.small)):
            self.wrk_scenario(srv, "S12", "/small.txt", headers=BROWSER_HEADERS)
        if "S2" in scen and self.check(srv, "S2", lambda: verify_single_ranges(srv.port, self.blob, self.s2)):
            self.wrk_scenario(srv, "S2", "/blob", RANGES_LUA, [self.s2_path])
        if "S3" in scen and self.check(srv, "S3", lambda: verify_multi_ranges(srv.port, self.blob, self.s3)):
            self.wrk_scenario(srv, "S3", "/blob", RANGES_LUA, [self.s3_path])
        if "S5" in scen:
            hdr, why = conditional_header(srv.port)
            if "S5" not in self.notes[srv.name]:
                self.note(srv, "S5", why)
            if hdr is None:
                self.unsupported[srv.name]["S5"] = why
                log(f"  {srv.name} S5: SKIPPED ({why})")
            else:
                self.wrk_scenario(srv, "S5", "/small.txt", headers=[hdr])
        if "S4" in scen:
            url = f"http://127.0.0.1:{srv.port}/blob"
            meter = CpuMeter(srv)
            r = curl_finish(curl_start(url, a.curl_max_time))
            r.update(meter.stop())
            ok = r["code"] == 200 and r["bytes"] == BLOB_SIZE
            mbps = r["bytes"] / r["total_s"] / 1e6 if ok else None
            if not ok:
                r["error"] = f"status {r['code']} bytes {r['bytes']}"
            self.record(srv, "S4", mbps, r)
            t0 = time.time()
            meter = CpuMeter(srv)
            ps = [curl_start(url, a.curl_max_time) for _ in range(4)]
            rs = [curl_finish(p) for p in ps]
            wall = time.time() - t0
            cpu4 = meter.stop()
            total = sum(x["bytes"] for x in rs)
            okp = all(x["code"] == 200 and x["bytes"] == BLOB_SIZE for x in rs)
            agg = total / wall / 1e6 if okp else None
            self.record(srv, "S4x4", agg, dict(cpu4, curls=rs, wall_s=wall))
            log(f"  {srv.name} S4: {mbps and round(mbps)} MB/s; 4x: {agg and round(agg)} MB/s")
        if "S6" in scen:
            self.cold_counter += 1
            name = f"cold-{os.getpid()}-{self.cold_counter}.bin"
            path = os.path.join(self.data_dir, name)
            subprocess.run(["cp", "--reflink=never", self.blob, path], check=True)
            with open(path, "r+b") as f:  # make content unique per run (different hash)
                f.write(os.urandom(4096))
            ok, err = drop_caches()
            self.drop_ok, self.drop_err = ok, err
            res_before = resident_bytes(path)
            r = curl_finish(curl_start(f"http://127.0.0.1:{srv.port}/{name}", a.curl_max_time))
            r["resident_before"] = res_before
            r["drop_caches"] = ok
            okc = r["code"] == 200 and r["bytes"] == BLOB_SIZE
            if not okc:
                r["error"] = f"status {r['code']} bytes {r['bytes']}"
            self.record(srv, "S6", r["ttfb_s"] * 1e3 if okc else None, r)
            self.record(srv, "S6bw", r["bytes"] / r["total_s"] / 1e6 if okc else None, r)
            # the physical reference: one SHA-256 pass over the same file, evicted again
            drop_caches()
            t0 = time.time()
            ossl = subprocess.run(["openssl", "dgst", "-sha256", path], capture_output=True)
            ossl_ms = (time.time() - t0) * 1e3 if ossl.returncode == 0 else None
            self.record(srv, "S6x", r["ttfb_s"] * 1e3 / ossl_ms if okc and ossl_ms else None,
                        {"openssl_ms": ossl_ms, "ttfb_ms": r["ttfb_s"] * 1e3})
            log(f"  {srv.name} S6: ttfb {r['ttfb_s'] * 1e3:.1f} ms, total {r['total_s']:.2f}s "
                f"(resident before: {res_before}); openssl dgst cold: {ossl_ms and round(ossl_ms)} ms")
            try:
                os.unlink(path)
            except OSError:
                pass

    def round_tls(self, srv, rnd):
        """S9-S11 on a server started with the run's certificate (both servers get the same)."""
        a = self.args
        ctx = tls_context(self.cert)
        # as prime() does for S0-S6 in every round: the first request for /blob (Range 0-0) and
        # /small.txt after start, so per-file first-request work (hashing a 1 GiB file for its
        # ETag) is not inside a timed window; the verification below runs in round 1 only.
        t0 = time.perf_counter()
        try:
            st, _, _ = http_get(srv.port, "/blob", {"Range": "bytes=0-0"}, ctx=ctx)
            http_get(srv.port, "/small.txt", ctx=ctx)
            log(f"  {srv.name} TLS: first request /blob Range 0-0 {(time.perf_counter() - t0) * 1e3:.1f} ms "
                f"(status {st})")
        except Exception as e:  # noqa
            log(f"  {srv.name} TLS: first request failed: {e!r}")
        if "S9" in self.scen and self.check(srv, "S9", lambda: verify_small(srv.port, self.small, ctx)):
            self.wrk_scenario(srv, "S9", "/small.txt", scheme="https")
        if "S10" in self.scen and self.check(srv, "S10", lambda: verify_h2_small(srv.port, self.small, self.cert,
                                                                                  self.run_dir)):
            if a.warmup > 0:
                run_h2load(srv.port, "/small.txt", a.warmup)
            meter = CpuMeter(srv)
            r = run_h2load(srv.port, "/small.txt", a.duration)
            r.update(meter.stop())
            if r.get("error"):
                log(f"  {srv.name} S10: h2load problem: {r['error'][:200]}")
            self.record(srv, "S10", None if r.get("error") else r["rps"], r)
            log(f"  {srv.name} S10: {r['rps']} req/s over {r.get('alpn')} (mean {r['latency_ms'].get('mean')} ms, "
                f"server CPU {r.get('srv_cpu_pct')}%, client CPU {r.get('client_cpu_pct')}%)")
        if "S11" in self.scen and self.check(srv, "S11", lambda: verify_single_ranges(srv.port, self.blob, self.s2,
                                                                                       ctx=ctx)):
            meter = CpuMeter(srv)
            r = curl_finish(curl_start(f"https://127.0.0.1:{srv.port}/blob", a.curl_max_time,
                                       ["--http1.1", "--cacert", self.cert]))
            r.update(meter.stop())
            ok = r["code"] == 200 and r["bytes"] == BLOB_SIZE
            mbps = r["bytes"] / r["total_s"] / 1e6 if ok else None
            if not ok:
                r["error"] = f"status {r['code']} bytes {r['bytes']}"
            self.record(srv, "S11", mbps, r)
            log(f"  {srv.name} S11: {mbps and round(mbps)} MB/s over HTTPS (server CPU {r.get('srv_cpu_pct')}%, "
                f"client CPU {r.get('client_cpu_pct')}%)")

    def round_s7(self, srv, rnd):
        if not self.check(srv, "S7", lambda: verify_many(srv.port, self.data_dir, self.s7_paths, self.args.seed)):
            return
        secs, bad = touch_all(srv.port, self.s7_paths, S7_SIZE)
        log(f"  {srv.name} S7: first GET of all {len(self.s7_paths)} files: {secs:.2f}s, {bad} bad answers")
        if bad:
            self.record(srv, "S7", None, {"error": f"{bad} bad answers in the first pass"})
            return
        self.wrk_scenario(srv, "S7", "/", RANDPATHS_LUA, [self.s7_list, str(self.args.seed + rnd)])

    def round_s8(self, rnd):
        """rangeserve --prehash over the S8 tree vs find | xargs -P2 sha256sum, order alternating."""
        a = self.args
        srv = self.s8_server
        tree = self.s8_tree
        n_files = S8_DIRS * S8_PER_DIR
        warm_tree(tree)
        rs = sm = None
        order = ["rs", "sum"] if rnd % 2 else ["sum", "rs"]
        for who in order:
            if who == "sum":
                out = os.path.join(self.run_dir, "s8-sha256sum.txt")
                cmd = f"find . -type f -print0 | xargs -0 -P2 sha256sum > {out}"
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                p = subprocess.run(["taskset", "-c", a.s8_cpus, "sh", "-c", cmd], cwd=tree,
                                   timeout=a.s8_timeout, stderr=subprocess.PIPE, text=True)
                wall = time.perf_counter() - t0
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                sums = {}
                with open(out) as f:
                    for line in f:
                        h, _, rel = line.rstrip("\n").partition("  ")
                        sums[os.path.normpath(os.path.join(tree, rel))] = h
                if p.returncode != 0 or len(sums) != n_files:
                    log(f"  S8 sha256sum: FAILED (rc {p.returncode}, {len(sums)} digests) {p.stderr[-200:]}")
                    sm = {"error": f"rc {p.returncode}, {len(sums)} digests"}
                else:
                    sm = {"s": wall, "cpu_s": cpu, "digests": sums}
                    log(f"  S8 find | xargs -P2 sha256sum: {wall:.2f}s wall, {cpu:.2f} CPU-s")
            else:
                rs = self.prehash_once(srv, rnd, n_files)
        rec = {"round": rnd, "order": order}
        if rs and "s" in rs:
            self.s8["rs"].append(rs["s"])
        if sm and "s" in sm:
            self.s8["sum"].append(sm["s"])
        if rs and "s" in rs and sm and "s" in sm:
            # every digest rangeserve persisted must be sha256sum's for the same file
            cache = {os.path.realpath(p): h for p, h in rs.pop("cache").items()}
            # the cache holds every file's digest, or the spot-checked files' only
            # (see prehash_once): each one stored must be sha256sum's
            theirs = {os.path.realpath(p): h for p, h in sm["digests"].items()}
            bad = [p for p, h in cache.items() if theirs.get(p) != h]
            rs["digests_checked"] = len(cache)
            rs["digest_mismatches"] = len(bad)
            if bad:
                log(f"  S8: {len(bad)} cache digests differ from sha256sum (e.g. {bad[0]}); run not counted")
                self.s8["rs"].pop()
                rs["error"] = f"{len(bad)} digests differ from sha256sum"
            else:
                self.s8["ratio"].append(rs["s"] / sm["s"])
                what = (f"all {len(cache)} cache digests equal sha256sum's" if cache else "no digest stored")
                if len(cache) < len(theirs):
                    what += " (files up to 256 KiB are hashed when opened, not prehashed)"
                log(f"  S8: {what}; ratio {rs['s'] / sm['s']:.2f}")
        if rs:
            rs.pop("cache", None)
        if sm:
            sm.pop("digests", None)
        rec["rangeserve"], rec["sha256sum"] = rs, sm
        self.s8["runs"].append(rec)
        for name in ("s8-etag-cache", "s8-sha256sum.txt"):  # ~20 MB and ~10 MB per round
            try:
                os.unlink(os.path.join(self.run_dir, name))
            except OSError:
                pass

    def prehash_once(self, srv, rnd, n_files):
        a = self.args
        cache = os.path.join(self.run_dir, "s8-etag-cache")
        if os.path.exists(cache):
            os.unlink(cache)
        srv.subst["cache"] = cache
        done = {}
        ev = threading.Event()
        pat = re.compile(r"prehash: (\d+)/(\d+) files.*done in ([\d.]+)s")

        def on_line(text, t):
            m = pat.search(text)
            if m and not ev.is_set():
                done.update(t=t, files=int(m.group(1)), total=int(m.group(2)), self_s=float(m.group(3)))
                ev.set()

        port = pick_port(19900)
        try:
            srv.start(port, self.s8_tree, self.run_dir, on_line=on_line)
        except Exception as e:  # noqa
            log(f"  S8 rangeserve: failed to start: {e}")
            self.s8["notes"].append(f"start failed: {e}")
            return {"error": f"start failed: {e}"}
        try:
            if rnd == 1:
                self.s8["cmd"] = srv.cmd
            if not ev.wait(a.s8_timeout):
                log(f"  S8 rangeserve: no 'prehash: ... done in' line within {a.s8_timeout}s")
                return {"error": f"prehash not done within {a.s8_timeout}s"}
            cpu_s = proc_cpu_ticks([srv.proc.pid]) / CpuMeter.HZ  # all threads, since start
            wall = done["t"] - srv.t_spawn
            res = {"s": wall, "self_reported_s": done["self_s"], "files": done["files"],
                   "total": done["total"], "cpu_s": round(cpu_s, 2)}
            # spot-check the served ETags against the files' SHA-256
            bad = []
            checked = set()
            for p in random.Random(rnd).sample(range(n_files), 5):
                rel = f"d{p // S8_PER_DIR:02d}/f{p % S8_PER_DIR:03d}.txt"
                checked.add(os.path.realpath(os.path.join(self.s8_tree, rel)))
                st, h, body = http_get(port, "/" + rel)
                want = '"' + hashlib.sha256(open(os.path.join(self.s8_tree, rel), "rb").read()).hexdigest() + '"'
                if st != 200 or h.get("etag") != want:
                    bad.append(f"/{rel}: {st} {h.get('etag')}")
            rss, _ = srv.peak_rss_kib()
            res["rss_kib"] = rss
        finally:
            srv.stop()  # SIGTERM: rangeserve writes the ETag cache before it exits
        if done["files"] != n_files or done["total"] != n_files:
            res["error"] = f"prehash reported {done['files']}/{done['total']} files, want {n_files}"
        elif bad:
            res["error"] = "ETag differs from SHA-256: " + "; ".join(bad)
        # rangeserve hashes files up to 256 KiB when it opens them, from the bytes it
        # serves: every S8 file is that small, so the prehash walks the tree and
        # stores nothing. What it keeps are the settled hashes of the files the
        # spot-check above opened (so that their next open needs no hash): the
        # cache holds those, or every file, and each digest is compared with
        # sha256sum's below.
        try:
            res["cache_bytes"] = os.path.getsize(cache) if os.path.exists(cache) else 0
            res["cache"] = read_etag_cache(cache) if res["cache_bytes"] else {}
            res["cache_entries"] = len(res["cache"])
            kept = {os.path.realpath(p) for p in res["cache"]}
            if len(kept) != n_files and not kept <= checked and "error" not in res:
                res["error"] = (f"ETag cache has {res['cache_entries']} entries, want the "
                                f"{len(checked)} spot-checked files' or all {n_files}")
        except (OSError, ValueError) as e:
            res.setdefault("error", f"ETag cache unreadable: {e}")
        if "error" in res:
            log(f"  S8 rangeserve: FAILED: {res['error']}")
            res.pop("s")
        else:
            log(f"  S8 rangeserve --prehash: {wall:.2f}s from start to 'done' (self-reported "
                f"{done['self_s']}s, {res['cpu_s']} CPU-s), cache {res['cache_bytes']} bytes / "
                f"{res['cache_entries']} entries, RSS {res['rss_kib']} KiB")
        return res

    def start_and_run(self, srv, rnd, phase, fn, rss_metric):
        port = pick_port(19100 + (self.names.index(srv.name) if srv.name in self.names else 0))
        try:
            srv.start(port, self.data_dir, self.run_dir)
        except Exception as e:  # noqa
            log(f"  {srv.name}{srv.tag}: failed to start: {e}")
            self.notes[srv.name].setdefault("start" + srv.tag, str(e))
            return
        try:
            if rnd == 1:
                self.notes[srv.name]["cmd" + srv.tag] = srv.cmd
                self.notes[srv.name]["affinity" + srv.tag] = srv.affinity()
            try:
                fn(srv, rnd)
            except Exception as e:  # noqa  (keep going with the other servers)
                log(f"  {srv.name}{srv.tag}: round {rnd} aborted: {e!r}")
                self.notes[srv.name][f"error{srv.tag}_round{rnd}"] = repr(e)
            rss, pids = srv.peak_rss_kib()
            if not srv.alive():
                self.notes[srv.name][f"died{srv.tag}_round{rnd}"] = True
                log(f"  {srv.name}{srv.tag}: server died during round {rnd}")
            self.record(srv, rss_metric, rss if rss else None, {"pids": pids, "vmhwm_kib": rss})
        finally:
            srv.stop()

    def run(self):
        a = self.args
        main_scen = [s for s in self.scen if s in MAIN_SCENARIOS]
        tls_scen = [s for s in self.scen if s in TLS_SCENARIOS]
        if main_scen or tls_scen:
            self.small, self.blob = prepare_data(self.data_dir)
            (self.s2_path, self.s2), (self.s3_path, self.s3) = write_range_lists(self.run_dir, a.seed)
        if "S7" in self.scen:
            self.s7_paths = prepare_many(self.data_dir, a.seed)
            self.s7_list = os.path.join(self.run_dir, "s7-paths.txt")
            with open(self.s7_list, "w") as f:
                f.write("\n".join(self.s7_paths) + "\n")
        if "S8" in self.scen:
            self.s8_tree = prepare_tree(os.path.abspath(a.s8_dir))
        if tls_scen:
            self.cert, self.key = make_cert(self.run_dir)
            log(f"TLS: certificate {self.cert}, key {self.key} (ECDSA P-256, CN=localhost, SAN 127.0.0.1)")
            for srv in self.tls_servers:
                srv.subst.update(cert=self.cert, key=self.key)
        for rnd in range(1, a.runs + 1):
            order = list(self.servers)
            order7 = list(self.s7_servers)
            order_tls = list(self.tls_servers)
            if rnd % 2 == 0:
                order.reverse()  # alternate order between rounds to spread drift
                order7.reverse()
                order_tls.reverse()
            if main_scen:
                for srv in order:
                    log(f"round {rnd}/{a.runs}: {srv.name}")
                    warm_file(self.small)
                    t = time.monotonic()
                    warm_file(self.blob)
                    # page-cached: a slow read means memory left idle is slow to
                    # touch again on this machine, which costs most the server
                    # that copies what it sends (S2, S3, S4); see bench/HISTORY.md
                    secs = time.monotonic() - t
                    log(f"  read of cached /blob: {secs:.2f} s ({BLOB_SIZE / secs / 1e9:.1f} GB/s)")
                    self.start_and_run(srv, rnd, "main", self.round, "RSS")
            if "S7" in self.scen:
                for srv in order7:
                    log(f"round {rnd}/{a.runs}: {srv.name} (S7)")
                    self.start_and_run(srv, rnd, "S7", self.round_s7, "RSS7")
            if tls_scen:
                for srv in order_tls:
                    log(f"round {rnd}/{a.runs}: {srv.name} (HTTPS: {','.join(tls_scen)})")
                    warm_file(self.small)
                    if "S11" in tls_scen:
                        warm_file(self.blob)
                    self.start_and_run(srv, rnd, "TLS", self.round_tls, "RSS9")
            if "S8" in self.scen and self.s8_server:
                log(f"round {rnd}/{a.runs}: S8 (prehash vs sha256sum)")
                try:
                    self.round_s8(rnd)
                except Exception as e:  # noqa
                    log(f"  S8: round {rnd} aborted: {e!r}")
                    self.s8["notes"].append(f"round {rnd}: {e!r}")
        return self.results()

    def metric_names(self, mid):
        if mid in ("S7", "RSS7"):
            return [s.name for s in self.s7_servers]
        if mid in TLS_SCENARIOS + ["RSS9"]:
            return [s.name for s in self.tls_servers]
        return [s.name for s in self.servers]

    def results(self):
        a = self.args
        out = {"baseline": a.baseline, "metrics": {}}
        main_scen = any(s in MAIN_SCENARIOS for s in self.scen)
        for mid, title, unit, hib, scen in METRICS:
            if scen == "TLS":
                if not any(s in TLS_SCENARIOS for s in self.scen):
                    continue
            elif scen is not None and scen not in self.scen:
                continue
            if scen is None and not main_scen:
                continue
            names = self.metric_names(mid)
            if not names:
                continue
            base = a.baseline if a.baseline in names else names[0]
            rows = {}
            for n in names:
                vals = self.raw[n][mid]
                rows[n] = {
                    "runs": vals,
                    "median": statistics.median(vals) if vals else None,
                    "min": min(vals) if vals else None,
                    "max": max(vals) if vals else None,
                    "detail": self.detail[n][mid],
                    "unsupported": self.unsupported[n].get(scen) if scen else None,
                }
                # CPU accounting (throughput scenarios): value per server-CPU-second
                dets = [d for d in self.detail[n][mid] if isinstance(d, dict) and not d.get("error")]
                cpus = [d["srv_cpu_pct"] for d in dets if d.get("srv_cpu_pct")]
                clis = [d["client_cpu_pct"] for d in dets if d.get("client_cpu_pct") is not None]
                rows[n]["srv_cpu_pct"] = statistics.median(cpus) if cpus else None
                rows[n]["client_cpu_pct"] = statistics.median(clis) if clis else None
                # the server's CPU per request, user space and kernel apart (medians)
                for key, field in (("user_us", "srv_user_s"), ("sys_us", "srv_sys_s")):
                    per = [1e6 * d[field] / d["requests"] for d in dets
                           if d.get(field) is not None and d.get("requests")]
                    rows[n][key] = statistics.median(per) if per else None
                if hib and cpus and len(cpus) == len(vals):
                    rows[n]["per_cpu"] = statistics.median(v / (c / 100.0) for v, c in zip(vals, cpus))
                else:
                    rows[n]["per_cpu"] = None
                if mid == "S6":
                    warm = [d.get("resident_before") for d in dets if d.get("resident_before")]
                    if warm:
                        rows[n]["warning"] = f"file partly cached before request in {len(warm)} run(s)"
            bmed = rows[base]["median"]
            beff = rows[base]["per_cpu"]
            for n in names:
                med = rows[n]["median"]
                rows[n]["ratio"] = (med / bmed) if (med is not None and bmed) else None
                eff = rows[n]["per_cpu"]
                rows[n]["per_cpu_ratio"] = (eff / beff) if (eff is not None and beff) else None
            out["metrics"][mid] = {"title": title, "unit": unit, "higher_is_better": hib, "rows": rows,
                                   "baseline": base}
        if "S8" in self.scen:
            s8 = {k: self.s8[k] for k in ("runs", "notes")}
            s8["cmd"] = self.s8.get("cmd")
            for k in ("rs", "sum", "ratio"):
                v = self.s8[k]
                s8[k] = {"runs": v, "median": statistics.median(v) if v else None,
                         "min": min(v) if v else None, "max": max(v) if v else None}
            out["S8"] = s8
        return out


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{v:.2f}"
    if unit == "KiB":
        return f"{v:.0f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def print_report(res, h):
    for mid, m in res["metrics"].items():
        names = list(m["rows"])
        base = m["baseline"]
        better = "higher is better" if m["higher_is_better"] else "lower is better"
        has_cpu = any(m["rows"][n].get("srv_cpu_pct") for n in names)
        print(f"\n== {mid}: {m['title']} [{m['unit']}, {better}] ==")
        hdr = f"{'server':<22}{'median':>10}{'min':>10}{'max':>10}{'ratio/' + base:>13}"
        if has_cpu:
            hdr += f"{'srvCPU%':>9}{'cliCPU%':>9}{'per-CPU ratio':>15}{'usr us/req':>12}{'sys us/req':>12}"
        print(hdr + "  note")
        tag = "-s7" if mid in ("S7", "RSS7") else "-tls" if mid in TLS_SCENARIOS + ["RSS9"] else ""
        for n in names:
            r = m["rows"][n]
            ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "n/a"
            note = ""
            if h.notes[n].get("start" + tag) and not r["runs"]:
                note = "start failed: " + h.notes[n]["start" + tag][:80]
            elif r["unsupported"]:
                note = "skipped: " + r["unsupported"]
            elif len(r["runs"]) < len(r["detail"]):
                note = f"{len(r['detail']) - len(r['runs'])} failed run(s)"
            if r.get("warning"):
                note = (note + "; " if note else "") + r["warning"]
            line = (f"{n:<22}{fmt(r['median'], m['unit']):>10}{fmt(r['min'], m['unit']):>10}"
                    f"{fmt(r['max'], m['unit']):>10}{ratio:>13}")
            if has_cpu:
                sc = r.get("srv_cpu_pct")
                cc = r.get("client_cpu_pct")
                pr = r.get("per_cpu_ratio")
                line += (f"{(f'{sc:.0f}' if sc is not None else '-'):>9}"
                         f"{(f'{cc:.0f}' if cc is not None else '-'):>9}"
                         f"{(f'{pr:.2f}' if pr is not None else '-'):>15}")
                for key in ("user_us", "sys_us"):
                    v = r.get(key)
                    line += f"{(f'{v:.2f}' if v is not None else '-'):>12}"
            print(line + "  " + note)
    s8 = res.get("S8")
    if s8:
        print(f"\n== S8: prehash of {S8_DIRS * S8_PER_DIR} files of ~70 bytes "
              f"(CPUs {h.args.s8_cpus}, warm page cache) [s, lower is better] ==")
        print(f"{'':<36}{'median':>10}{'min':>10}{'max':>10}")
        for key, label in (("rs", "rangeserve --prehash (start->done)"), ("sum", "find | xargs -0 -P2 sha256sum"),
                           ("ratio", "ratio rangeserve/sha256sum")):
            v = s8[key]
            f2 = lambda x: f"{x:.2f}" if x is not None else "n/a"  # noqa
            print(f"{label:<36}{f2(v['median']):>10}{f2(v['min']):>10}{f2(v['max']):>10}")
        oks = [r["rangeserve"] for r in s8["runs"] if r.get("rangeserve") and "s" in r["rangeserve"]]
        if oks:
            last = oks[-1]
            print(f"rangeserve: ETag cache file {last['cache_bytes']} bytes ({last['cache_entries']} entries, "
                  f"{last['cache_bytes'] / max(1, last['cache_entries']):.0f} B/entry), peak RSS "
                  f"{max(r['rss_kib'] for r in oks)} KiB, {statistics.median(r['cpu_s'] for r in oks):.2f} CPU-s; "
                  f"self-reported 'done in' {statistics.median(r['self_reported_s'] for r in oks):.1f}s (excludes the walk)")
        sums = [r["sha256sum"] for r in s8["runs"] if r.get("sha256sum") and "s" in r["sha256sum"]]
        if sums:
            print(f"sha256sum: {statistics.median(r['cpu_s'] for r in sums):.2f} CPU-s")
        for r in s8["runs"]:
            for who in ("rangeserve", "sha256sum"):
                if r.get(who) and r[who].get("error"):
                    print(f"  round {r['round']} {who} FAILED: {r[who]['error']}")
        for n in s8["notes"]:
            print(f"  note: {n}")
        if s8.get("cmd"):
            print(f"  command: {s8['cmd']}")
    if any(s in TLS_SCENARIOS for s in h.scen):
        print(f"HTTPS (S9-S11): both servers use the same ECDSA P-256 certificate ({getattr(h, 'cert', '?')}); "
              "nginx: bench/nginx-tls.conf (sendfile is on but unused under TLS without kTLS).")
    print("\nsrvCPU% = server process CPU (100 = one full core); cliCPU% = load generator process CPU "
          f"(wrk/curl/h2load, all on CPU {CLIENT_CPU}).\nA cliCPU% near 100 with srvCPU% well below 100 means the client, not the server, "
          "was the bottleneck:\nthen compare 'per-CPU ratio' (result per server-CPU-second vs baseline).")
    if h.s7_servers and "S7" in h.scen:
        print(f"S7 rangeserve cache options: {h.s7_cache_note}")
    print("\nverification and commands (first round):")
    for n in h.names:
        nt = h.notes[n]
        items = [f"{k}: {nt[k]}" for k in ("S1", "S2", "S3", "S5", "S7", "S9", "S10", "S11") if k in nt]
        for tag in ("", "-s7", "-tls"):
            if nt.get("start" + tag):
                items.insert(0, f"start{tag} failed: " + nt["start" + tag])
        if items:
            print(f"  {n}: " + " | ".join(items))
        for tag in ("", "-s7", "-tls"):
            if nt.get("cmd" + tag):
                print(f"    cmd{tag}: {nt['cmd' + tag]}")
    if s8 and any(r.get("rangeserve", {}).get("digests_checked") for r in s8["runs"]):
        r = next(r["rangeserve"] for r in s8["runs"] if r.get("rangeserve", {}).get("digests_checked"))
        print(f"  S8: prehash covered all files; {r['digests_checked']} cache digests compared with sha256sum, "
              f"{r['digest_mismatches']} differ; 5 served ETags per round checked")
    if h.drop_ok is False:
        print(f"NOTE: drop_caches not permitted ({h.drop_err}); S6 may be warm, not cold.")
    print()
    for mid, m in res["metrics"].items():
        base = m["baseline"]
        for n, r in m["rows"].items():
            if n == base:
                continue
            print(f"RATIO {mid} {n}/{base} = {r['ratio']:.2f}" if r["ratio"] is not None
                  else f"RATIO {mid} {n}/{base} = n/a")
            if r.get("per_cpu_ratio") is not None:
                print(f"RATIO {mid}-per-cpu {n}/{base} = {r['per_cpu_ratio']:.2f}")
    if s8 and s8["ratio"]["median"] is not None:
        print(f"RATIO S8 rangeserve-prehash/sha256sum = {s8['ratio']['median']:.2f}")


def tool_versions():
    v = {}
    for name, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"]), ("curl", ["curl", "--version"]),
                       ("sha256sum", ["sha256sum", "--version"]), ("h2load", ["h2load", "--version"]),
                       ("openssl", ["openssl", "version"])):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            v[name] = (p.stdout + p.stderr).strip().splitlines()[0]
        except Exception:
            v[name] = None
    return v


def parse_server(ap, spec, **kw):
    if "=" not in spec:
        ap.error(f"server needs NAME=COMMAND: {spec!r}")
    name, cmd = spec.split("=", 1)
    return Server(name.strip(), cmd_template=cmd.strip(), **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/rangeserve"),
                    help="rangeserve binary used by the default commands (default: target/release/rangeserve)")
    ap.add_argument("--server", action="append", default=[], metavar="NAME=COMMAND",
                    help="server for S0-S6; COMMAND may use {dir} and {port} "
                         "(default: rangeserve=BIN -q -b 127.0.0.1 -p {port} {dir})")
    ap.add_argument("--peer", action="append", default=[],
                    help="built-in peer: nginx (default), python")
    ap.add_argument("--floor", metavar="PATH",
                    help="also run the copying floor (target/release/examples/floor, built by "
                         "`cargo build --release --example floor`) as server 'floor' in S0-S6 and S7: "
                         "the least a server that copies and checks what it sends can do")
    ap.add_argument("--ceiling", metavar="PATH",
                    help="also run the ceiling (target/release/examples/ceiling, built by "
                         "`cargo build --release --example ceiling`) as server 'ceiling' in S1, S12 and S5: "
                         "what a server that does nothing but answer from memory reaches")
    ap.add_argument("--s7-server", action="append", default=[], metavar="NAME=COMMAND",
                    help="server for S7; COMMAND may use {dir} {port} {cache_opts} "
                         "(default: rangeserve=BIN -q -b 127.0.0.1 -p {port} {cache_opts} {dir})")
    ap.add_argument("--s7-cache-opts", default=None,
                    help="what {cache_opts} expands to (default: '--open-file-cache N --small-file-cache SIZE', "
                         "each only if BIN --help lists it)")
    ap.add_argument("--s7-open-file-cache", default="1000")
    ap.add_argument("--s7-small-file-cache", default="4M")
    ap.add_argument("--s7-nginx-ofc", type=int, default=1000, help="nginx open_file_cache max= in S7 (1000)")
    ap.add_argument("--s8-server", default=None, metavar="COMMAND",
                    help="S8 command; may use {dir} {port} {cache}; runs with RANGESERVE_LOG=info (default: "
                         "BIN -b 127.0.0.1 -p {port} --prehash --etag-cache {cache} {dir})")
    ap.add_argument("--tls-server", action="append", default=[], metavar="NAME=COMMAND",
                    help="server for S9-S11 (HTTPS); COMMAND may use {dir} {port} {cert} {key} (default: "
                         "rangeserve=BIN -q -b 127.0.0.1 -p {port} --tls-cert {cert} --tls-key {key} {dir})")
    ap.add_argument("--s8-dir", default="/tmp/bench-data-s8", help="where the S8 tree is made (once)")
    ap.add_argument("--s8-cpus", default="0,1", help="CPUs for both S8 contenders (taskset -c; default 0,1)")
    ap.add_argument("--s8-timeout", type=int, default=600, help="seconds S8 may take per contender")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured wrk seconds before each wrk run")
    ap.add_argument("--runs", type=int, default=3, help="rounds (median over them); default 3")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--data-dir", default="/tmp/bench-data")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--baseline", default="nginx")
    ap.add_argument("--curl-max-time", type=int, default=300)
    args = ap.parse_args()
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in ALL_SCENARIOS:
            ap.error(f"unknown scenario {s}")
    if args.duration <= 0 or args.duration > 600 or args.runs <= 0:
        ap.error("--duration must be 1..600 and --runs positive")

    binary = os.path.abspath(args.bin)
    uses_bin = (not args.server or not args.s7_server or not args.s8_server or not args.tls_server)
    if uses_bin and not os.access(binary, os.X_OK):
        ap.error(f"{binary} not found: cargo build --release (or give --bin)")
    peers = args.peer or ["nginx"]
    servers = [Server(p, peer=p) for p in peers]
    for spec in args.server or [f"rangeserve={binary} -q -b 127.0.0.1 -p {{port}} {{dir}}"]:
        servers.append(parse_server(ap, spec))
    floor_spec = None
    if args.floor:
        floor = os.path.abspath(args.floor)
        if not os.access(floor, os.X_OK):
            ap.error(f"{floor} not found: cargo build --release --example floor")
        floor_spec = f"floor={floor} -p {{port}} {{dir}}"
        servers.append(parse_server(ap, floor_spec))
    if args.ceiling:
        ceiling = os.path.abspath(args.ceiling)
        if not os.access(ceiling, os.X_OK):
            ap.error(f"{ceiling} not found: cargo build --release --example ceiling")
        servers.append(parse_server(ap, f"ceiling={ceiling} -p {{port}} {{dir}}",
                                    only=({"S1", "S12", "S5"}, "the ceiling answers S1, S12 and S5 only")))
    if len({s.name for s in servers}) != len(servers):
        ap.error("server names must be unique")

    # S7: rangeserve with every cache smaller than the 10,000-file set, when it has such options
    opts = help_options(binary) if uses_bin else set()
    if args.s7_cache_opts is not None:
        cache_opts, cache_note = args.s7_cache_opts, f"{args.s7_cache_opts!r} (--s7-cache-opts)"
    else:
        parts, missing = [], []
        for opt, val in (("--open-file-cache", args.s7_open_file_cache),
                         ("--small-file-cache", args.s7_small_file_cache)):
            (parts if opt in opts else missing).append(f"{opt} {val}")
        cache_opts = " ".join(parts)
        cache_note = (f"{cache_opts!r}" if parts else "none") + \
            (f" (not in {os.path.basename(binary)} --help, so not passed: {', '.join(missing)})" if missing else "")
    s7_servers = []
    if "S7" in args.scenarios:
        s7_servers = [Server(p, peer=p, tag="-s7", ofc_max=args.s7_nginx_ofc) for p in peers]
        for spec in args.s7_server or [f"rangeserve={binary} -q -b 127.0.0.1 -p {{port}} {{cache_opts}} {{dir}}"]:
            s7_servers.append(parse_server(ap, spec, tag="-s7", subst={"cache_opts": cache_opts}))
        if floor_spec:
            s7_servers.append(parse_server(ap, floor_spec, tag="-s7"))
        if len({s.name for s in s7_servers}) != len(s7_servers):
            ap.error("S7 server names must be unique")
    s8_server = None
    if "S8" in args.scenarios:
        cmd = args.s8_server or f"{binary} -b 127.0.0.1 -p {{port}} --prehash --etag-cache {{cache}} {{dir}}"
        s8_server = Server("rangeserve", cmd_template=cmd, tag="-s8", cpus=args.s8_cpus,
                           env={"RANGESERVE_LOG": "info"})

    tls_servers = []
    if any(s in TLS_SCENARIOS for s in args.scenarios):
        tls_servers = [Server(p, peer=p, tag="-tls", tls=True) for p in peers]
        for spec in args.tls_server or [f"rangeserve={binary} -q -b 127.0.0.1 -p {{port}} "
                                        f"--tls-cert {{cert}} --tls-key {{key}} {{dir}}"]:
            tls_servers.append(parse_server(ap, spec, tag="-tls"))
        if len({s.name for s in tls_servers}) != len(tls_servers):
            ap.error("TLS server names must be unique")
        if not args.tls_server and "--tls-cert" not in opts:
            ap.error(f"{binary} --help lists no --tls-cert: leave S9-S11 out of --scenarios")
        if "S10" in args.scenarios and not shutil.which("h2load"):
            # like bench/run.sh for nginx/wrk: install what is missing (needs root)
            log("h2load not found: apt-get install -y nghttp2-client")
            subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                           "nghttp2-client", shell=True, stdout=subprocess.DEVNULL)
            if not shutil.which("h2load"):
                ap.error("S10 needs h2load: apt-get install -y nghttp2-client (or leave S10 out of --scenarios)")
    for tool in (("wrk", "curl", "taskset", "sha256sum", "xargs", "find") + (("nginx",) if "nginx" in peers else ())
                 + (("openssl",) if tls_servers else ())):
        if not shutil.which(tool):
            ap.error(f"{tool} not found (bench/run.sh installs nginx wrk curl: apt-get install -y nginx wrk curl)")
    if (os.cpu_count() or 1) < 2:
        log("WARNING: fewer than 2 CPUs; server and client pinning will overlap")

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)

    h = Harness(args, servers, s7_servers, s8_server, tls_servers)
    h.s7_cache_note = cache_note
    log(f"S7 rangeserve cache options: {cache_note}")
    t0 = time.time()
    try:
        res = h.run()
    finally:
        for s in servers + s7_servers + tls_servers + ([s8_server] if s8_server else []):
            s.stop()
    print_report(res, h)
    if args.json:
        doc = {
            "config": {k: v for k, v in vars(args).items()},
            "env": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "tools": tool_versions(), "drop_caches_ok": h.drop_ok, "drop_caches_error": h.drop_err,
                    "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU, "elapsed_s": round(time.time() - t0, 1),
                    "s7_cache_opts": cache_opts},
            "servers": {n: {"notes": h.notes[n], "unsupported": h.unsupported[n]} for n in h.names},
            "results": res,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
