"""Start rangeserve (the Rust binary shipped in this wheel) from Python.

``serve()`` runs ``rangeserve --port 0 ... DIR``, reads the first line of its
stdout (``listening on http://ADDR:PORT/``, printed once it accepts
connections) and returns a :class:`Server`. The pytest fixtures in
:mod:`rangeserve.pytest_plugin` are built on it.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

__all__ = ["Server", "Quirked", "serve", "binary", "StartError"]

PREFIX = "listening on "
START_TIMEOUT = 20  # seconds to wait for the first stdout line
STOP_TIMEOUT = 15  # seconds to wait for the exit after SIGTERM
JOURNAL = "_rangeserve/requests"


class StartError(RuntimeError):
    """The server did not start (bad option, missing binary...); the message
    carries its stderr."""


def binary() -> str:
    """The rangeserve executable: ``$RANGESERVE_BIN``, else the one this
    package installed (the environment's scripts directory), else PATH."""
    env = os.environ.get("RANGESERVE_BIN")
    if env:
        return env
    for scheme in (None, f"{os.name}_user"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        candidate = Path(scripts) / "rangeserve"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("rangeserve")
    if found:
        return found
    raise StartError("rangeserve binary not found: pip install rangeserve, or set RANGESERVE_BIN")


class Quirked:
    """A view of a server for one request's quirks: use ``.url`` (with the
    ``/_quirks/SPEC/`` prefix) or send ``.headers`` (``Rangeserve-Quirks``)."""

    def __init__(self, base_url: str, spec: str):
        self.spec = spec
        self.url = f"{base_url}_quirks/{urllib.parse.quote(spec, safe='=,')}/"
        self.headers = {"Rangeserve-Quirks": spec}

    def __repr__(self) -> str:
        return f"Quirked({self.url!r})"


class Server:
    """A running rangeserve process."""

    def __init__(self, proc: subprocess.Popen, url: str, path: Path, log, ca: Optional[Path],
                 owned_dir: Optional[tempfile.TemporaryDirectory]):
        self.process = proc
        #: ``http://127.0.0.1:PORT/`` (``https://`` with TLS)
        self.url = url
        #: the served directory: put files here (or use :meth:`add_file`)
        self.path = path
        #: with TLS: the server's certificate (PEM) for the client to trust
        self.ca = ca
        self._log = log
        self._owned_dir = owned_dir

    def __repr__(self) -> str:
        return f"<rangeserve {self.url} serving {self.path}>"

    def add_file(self, name: str, data: Union[bytes, str]) -> Path:
        """Write ``data`` to ``name`` (relative, may contain ``/``) in the
        served directory; returns its path."""
        target = (self.path / name).resolve()
        if self.path.resolve() not in target.parents:
            raise ValueError(f"{name!r} is outside the served directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target

    def quirks(self, *specs: str) -> Quirked:
        """Quirks for the requests made through the returned view, e.g.
        ``server.quirks("drop-after=1000", "no-etag").url + "file.bin"``."""
        return Quirked(self.url, ",".join(specs))

    def requests(self) -> List[Dict]:
        """The journal: every request answered so far, oldest first (dicts
        with time, client, protocol, method, path, headers, status, quirks,
        bytes_sent, aborted; see the README's "Request journal")."""
        return self._journal("GET")["requests"]

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        self._journal("DELETE")

    def _journal(self, method: str):
        req = urllib.request.Request(self.url + JOURNAL, method=method)
        context = None
        if self.ca is not None:
            import ssl

            context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as ``docker stop`` does: in-flight responses finish.
        Returns the exit status (0 for a clean stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        if self.process.stdout:
            self.process.stdout.close()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None
        return code

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()


def _options(options: Dict) -> List[str]:
    """``stall_limit=5`` -> ``--stall-limit 5``; True -> the flag alone;
    False/None -> nothing; a list or tuple -> the option repeated."""
    args: List[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is True:
                args.append(flag)
            elif v is False or v is None:
                continue
            else:
                args += [flag, str(v)]
    return args


def serve(dir: Union[str, Path, None] = None, quirks: Iterable[str] = (), tls: bool = False,
          quirks_mode: bool = True, journal: int = 4096, **options) -> Server:
    """Start a server on ``dir`` (default: a new temporary directory, removed
    at stop) on 127.0.0.1 and a free port.

    ``quirks``: quirks applied to every response. ``quirks_mode``: per-request
    quirks (URL prefix or header); on by default. ``tls``: HTTPS with a
    certificate generated for this run (``Server.ca``). ``journal``: requests
    kept for :meth:`Server.requests` (0: off). Other keyword arguments are
    command-line options (``stall_limit=5`` is ``--stall-limit 5``).
    """
    owned = None
    if dir is None:
        owned = tempfile.TemporaryDirectory(prefix="rangeserve-")
        root = Path(owned.name) / "served"
        root.mkdir()
    else:
        root = Path(dir)
    log = tempfile.TemporaryFile()
    args = [binary(), "--bind", "127.0.0.1", "--port", "0", "--quiet"]
    ca = None
    if tls:
        ca = Path(tempfile.mkdtemp(prefix="rangeserve-ca-")) / "ca.pem"
        args += ["--tls-self-signed", "--tls-cert-out", str(ca)]
    for q in quirks:
        args += ["--quirk", q]
    if quirks_mode:
        args.append("--quirks")
    if journal:
        args += ["--journal", str(journal)]
    args += _options(options)
    args.append(str(root))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT)
    except queue.Empty:
        line = ""
    if not line.startswith(PREFIX):
        proc.kill()
        proc.wait()
        log.seek(0)
        err = log.read().decode(errors="replace").strip()
        log.close()
        if owned is not None:
            owned.cleanup()
        raise StartError(f"rangeserve did not start ({' '.join(args)}): {line.strip() or err}")
    url = line[len(PREFIX):].strip()
    return Server(proc, url, root, log, ca, owned)
