#!/usr/bin/env python3
"""Bytes written to the --etag-cache file while a server learns digests.

Issue 15's S8 asks that cache updates write only what changed. This serves
the S8 tree (100 directories x 1,000 small files, made by `bench.py
--scenarios S8`) with `--etag-cache`, drives random GETs over all of it with
wrk for DURATION, stops the server (SIGTERM: a last flush), and reports the
cache file's final size against the bytes written to it, by watching the
file: a new inode is a whole write of its size, growth of the same inode an
append.

  python3 bench/cache_writes.py BINARY [DURATION] [TREE]
  e.g. python3 bench/cache_writes.py target/release/rangeserve 15s /tmp/bench-data-s8/tree
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1]
duration = sys.argv[2] if len(sys.argv) > 2 else "15s"
tree = sys.argv[3] if len(sys.argv) > 3 else "/tmp/bench-data-s8/tree"
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="cache-writes-")
cache = os.path.join(work, "etag-cache")
paths = os.path.join(work, "paths.txt")
with open(paths, "w") as f:
    for d, _, names in os.walk(tree):
        for n in names:
            f.write(os.path.join(d, n)[len(tree):] + "\n")
port = 18801
# every file is settled (the tree is old); --hash-cache above the tree's size
# so that eviction does not add removals
server = subprocess.Popen([binary, "-q", "-p", str(port), "--etag-cache", cache,
                           "--settle-window", "0", "--hash-cache", "200000", tree],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
server.stdout.readline()
seen = {"ino": None, "size": 0, "written": 0, "whole": 0, "appends": 0}
done = threading.Event()


def watch():
    while True:
        try:
            st = os.stat(cache)
            if st.st_ino != seen["ino"]:
                seen.update(ino=st.st_ino, written=seen["written"] + st.st_size, whole=seen["whole"] + 1)
            elif st.st_size > seen["size"]:
                seen.update(written=seen["written"] + st.st_size - seen["size"], appends=seen["appends"] + 1)
            seen["size"] = st.st_size
        except FileNotFoundError:
            pass
        if done.is_set():
            return
        time.sleep(0.005)


watcher = threading.Thread(target=watch)
watcher.start()
subprocess.run(["wrk", "-t1", "-c8", "-d" + duration, "-s", os.path.join(here, "randpaths.lua"),
                f"http://127.0.0.1:{port}/", "--", paths, "7"], capture_output=True, check=True)
time.sleep(1.5)
server.send_signal(signal.SIGTERM)
server.wait()
time.sleep(0.1)
done.set()
watcher.join()
entries = sum(1 for line in open(cache) if line[:1] not in ("s", "-")) - 1
print(f"{binary}: cache file {seen['size']} bytes ({entries} entry lines); "
      f"{seen['written']} bytes written ({seen['whole']} whole writes, {seen['appends']} appends seen); "
      f"{seen['written'] / max(seen['size'], 1):.1f}x the final size")
