"""A pytest fixture that runs rangeserve as a real HTTP server for a test.

The pattern works the same from any language (see README.md beside this file):

1. spawn ``rangeserve --port 0 DIR`` (port 0: the OS picks a free port, so
   tests can run in parallel);
2. read the first line of its stdout, which is exactly
   ``listening on http://ADDR:PORT/`` with the real port, printed and flushed
   before the server accepts connections (so it is ready once you have read it);
3. when done, send SIGTERM: the server lets in-flight responses finish and
   exits 0.

The binary is ``$RANGESERVE_BIN`` if set (a relative path is taken from the
repository root), else ``target/debug/rangeserve`` in the repository; build it
first with ``cargo build``.
"""

import os
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "listening on "
STARTUP_TIMEOUT = 20  # seconds to wait for the first line
STOP_TIMEOUT = 15  # seconds to wait for exit after SIGTERM


def rangeserve_bin() -> Path:
    path = Path(os.environ.get("RANGESERVE_BIN", "target/debug/rangeserve"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(
            f"rangeserve binary not found at {path}: run `cargo build` "
            "or set RANGESERVE_BIN"
        )
    return path


@dataclass
class Server:
    url: str  # "http://127.0.0.1:PORT/" (https with TLS), from the first stdout line
    root: Path  # the directory being served: put files here
    ca: Optional[Path] = None  # with TLS: the server's certificate (PEM), to trust


@pytest.fixture
def rangeserve(tmp_path):
    """Serve a fresh temporary directory; yields a Server (url, root)."""
    yield from _serve(tmp_path, [], "http://")


@pytest.fixture
def rangeserve_https(tmp_path):
    """Like `rangeserve`, over HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with a
    certificate generated for this run; `Server.ca` is that certificate, e.g.
    for ``ssl.create_default_context(cafile=server.ca)``."""
    ca = tmp_path / "ca.pem"
    for server in _serve(tmp_path, ["--tls-self-signed", "--tls-cert-out", str(ca)], "https://"):
        server.ca = ca
        yield server


def _serve(tmp_path, extra_args, scheme):
    root = tmp_path / "served"
    root.mkdir()
    log = open(tmp_path / "rangeserve.log", "w+b")  # its stderr, shown on failure
    proc = subprocess.Popen(
        [str(rangeserve_bin()), "--port", "0", "--quiet", *extra_args, str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )

    def stderr_text() -> str:
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")

    try:
        # readline() blocks, so read on a thread and wait with a timeout.
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(
            target=lambda: lines.put(proc.stdout.readline()), daemon=True
        ).start()
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no startup line in {STARTUP_TIMEOUT}s; stderr: {stderr_text()}")
        if not line.startswith(PREFIX):
            pytest.fail(f"unexpected first line {line!r}; stderr: {stderr_text()}")
        url = line[len(PREFIX):].strip()
        assert url.startswith(scheme) and url.endswith("/"), url

        yield Server(url=url, root=root)

        # Graceful stop, as on `docker stop` or Ctrl-C: exit status 0.
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rangeserve did not exit {STOP_TIMEOUT}s after SIGTERM")
        assert code == 0, f"exit status {code} after SIGTERM; stderr: {stderr_text()}"
    finally:
        # Whatever happened above (a failed test, a failed start), never leak the server.
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        proc.stdout.close()
        log.close()
