"""pytest fixtures for testing download clients against rangeserve.

Registered through the ``pytest11`` entry point: installing the package is
enough. ``rangeserve`` is a server on a fresh temporary directory;
``rangeserve_factory(...)`` makes servers with other options. Every server is
stopped at teardown (its clean exit checked), and its log is printed there,
which pytest shows only for a failing test.
"""

import sys

import pytest

from . import Server, serve


@pytest.fixture
def rangeserve_factory(tmp_path):
    """``make(dir=None, quirks=(), tls=False, **options) -> Server``; ``dir``
    defaults to a fresh directory under the test's ``tmp_path``."""
    servers = []

    def make(dir=None, quirks=(), tls=False, **options) -> Server:
        if dir is None:
            dir = tmp_path / f"served{len(servers)}"
            dir.mkdir()
        server = serve(dir, quirks=quirks, tls=tls, **options)
        servers.append(server)
        return server

    yield make
    failures = []
    for server in servers:
        code = server.stop()
        log = server.log()
        if log:
            # captured: shown in the report of a failing test only
            sys.stderr.write(f"--- rangeserve {server.url} log ---\n{log}")
        if code != 0:
            failures.append(f"{server.url} exited with status {code}")
        server._log.close()
    if failures:
        pytest.fail("; ".join(failures))


@pytest.fixture
def rangeserve(rangeserve_factory) -> Server:
    """A server on a fresh temporary directory: quirks mode and the request
    journal on, HTTP on 127.0.0.1 and a free port."""
    return rangeserve_factory()
