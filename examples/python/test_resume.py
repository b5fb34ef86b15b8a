"""Resuming a download against rangeserve, with only the standard library.

A client downloads part of a file, stops, and later asks for the rest with
``Range: bytes=N-`` and ``If-Range: <ETag>``: if the file is unchanged it gets
``206`` with just the missing bytes, and if the file changed meanwhile it gets
``200`` with the whole new file (so it never stitches two versions together).
``Repr-Digest`` (RFC 9530) carries the SHA-256 of the whole file, so the
client can check what it stitched.
"""

import base64
import functools
import hashlib
import os
import re
import ssl
import urllib.request

SIZE = 5 * 1024 * 1024
CUT = 1_234_567  # the first request gets bytes 0..CUT-1
TIMEOUT = 30  # seconds, per request


def fetch(url, headers=None, ca=None):
    """GET url; returns (status, headers, body). 2xx only (urllib raises otherwise).
    ``ca``: the only certificate trusted for https (the server's own)."""
    req = urllib.request.Request(url, headers=headers or {})
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    with urllib.request.urlopen(req, timeout=TIMEOUT, context=context) as resp:
        return resp.status, resp.headers, resp.read()


def repr_digest_sha256(headers) -> bytes:
    """The SHA-256 in a `Repr-Digest: sha-256=:BASE64:` header."""
    value = headers["Repr-Digest"]
    assert value is not None, "no Repr-Digest header"
    m = re.search(r"sha-256=:([A-Za-z0-9+/=]+):", value)
    assert m, f"no sha-256 in Repr-Digest {value!r}"
    return base64.b64decode(m.group(1))


def write_random(path, size) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_resume_after_partial_download(rangeserve, tmp_path):
    resume_after_partial_download(rangeserve, tmp_path)


def test_resume_after_partial_download_over_https(rangeserve_factory, tmp_path):
    server = rangeserve_factory(tls=True)
    assert server.url.startswith("https://")
    resume_after_partial_download(server, tmp_path)


def resume_after_partial_download(server, tmp_path):
    original = write_random(server.path / "big.bin", SIZE)
    # the certificate is for "localhost" (and 127.0.0.1): either name works
    url = server.url + "big.bin"
    dest = tmp_path / "big.bin.part"

    get = functools.partial(fetch, ca=server.ca)

    # 1. A partial download: the first CUT bytes (an interrupted transfer).
    status, headers, body = get(url, {"Range": f"bytes=0-{CUT - 1}"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 0-{CUT - 1}/{SIZE}"
    assert len(body) == CUT
    etag = headers["ETag"]
    assert etag and etag.startswith('"'), f"a strong ETag is needed for If-Range: {etag!r}"
    dest.write_bytes(body)

    # 2. Resume from where it stopped, only if the file is still the same one.
    have = dest.stat().st_size
    status, headers, body = get(url, {"Range": f"bytes={have}-", "If-Range": etag})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {have}-{SIZE - 1}/{SIZE}"
    assert headers["ETag"] == etag
    with dest.open("ab") as f:
        f.write(body)

    # 3. Check the stitched file: against the original and the server's digest.
    stitched = hashlib.sha256(dest.read_bytes()).digest()
    assert stitched == hashlib.sha256(original).digest()
    assert stitched == repr_digest_sha256(headers)

    # 4. What the client sent, in order, from the server's request journal.
    sent = server.requests()
    assert [e["headers"].get("range") for e in sent] == [f"bytes=0-{CUT - 1}", f"bytes={CUT}-"]
    assert [e["headers"].get("if-range") for e in sent] == [None, etag]
    assert [(e["status"], e["bytes_sent"]) for e in sent] == [(206, CUT), (206, SIZE - CUT)]


def test_resume_of_a_changed_file_gets_the_whole_new_file(rangeserve, tmp_path):
    served = rangeserve.path / "big.bin"
    write_random(served, SIZE)
    url = rangeserve.url + "big.bin"

    status, headers, part = fetch(url, {"Range": f"bytes=0-{CUT - 1}"})
    assert status == 206 and len(part) == CUT
    old_etag = headers["ETag"]

    # The file is replaced between the two requests (a new version is published).
    new_version = tmp_path / "new.bin"
    new = write_random(new_version, SIZE + 1000)
    os.replace(new_version, served)

    status, headers, body = fetch(url, {"Range": f"bytes={CUT}-", "If-Range": old_etag})
    assert status == 200, "If-Range with a stale ETag must ignore the Range"
    assert headers["Content-Range"] is None
    assert headers["ETag"] != old_etag
    assert body == new
    assert repr_digest_sha256(headers) == hashlib.sha256(new).digest()
