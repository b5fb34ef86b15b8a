"""The plugin's own tests: real clients (requests, urllib3) resume downloads
against rangeserve in quirks mode, and the journal says what they sent."""

import hashlib
import os
import subprocess

import pytest
import requests
import urllib3

import rangeserve as rs

SIZE = 200_000
CUT = 30_000


def test_requests_resumes_after_a_cut_and_the_journal_shows_how(rangeserve):
    data = os.urandom(SIZE)
    rangeserve.add_file("dir/big.bin", data)
    cut = rangeserve.quirks(f"drop-after={CUT}")

    got = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with requests.get(cut.url + "dir/big.bin", stream=True, timeout=10) as r:
            assert r.status_code == 200
            etag = r.headers["ETag"]
            for chunk in r.iter_content(8192):
                got += chunk
    # the client hands over what it read before the cut (not a partial last read)
    have = len(got)
    assert 0 < have <= CUT

    r = requests.get(rangeserve.url + "dir/big.bin", timeout=10,
                     headers={"Range": f"bytes={len(got)}-", "If-Range": etag})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {have}-{SIZE - 1}/{SIZE}"
    got += r.content
    assert bytes(got) == data
    assert etag == '"' + hashlib.sha256(data).hexdigest() + '"'

    first, second = rangeserve.requests()
    assert (first["path"], first["status"], first["quirks"]) == (
        f"/_quirks/drop-after={CUT}/dir/big.bin", 200, [f"drop-after={CUT}"])
    assert first["bytes_sent"] == CUT and first["aborted"] is True
    assert first["headers"]["user-agent"].startswith("python-requests/")
    assert second["headers"]["range"] == f"bytes={have}-"
    assert second["headers"]["if-range"] == etag
    assert (second["status"], second["bytes_sent"], second["aborted"]) == (206, SIZE - have, False)
    rangeserve.clear_requests()
    assert rangeserve.requests() == []


def test_urllib3_resume_with_the_quirks_header_refuses_a_changed_file(rangeserve):
    old = os.urandom(SIZE)
    rangeserve.add_file("f.bin", old)
    http = urllib3.PoolManager()
    cut = rangeserve.quirks(f"drop-after={CUT}")
    r = http.request("GET", rangeserve.url + "f.bin", headers=cut.headers, preload_content=False)
    etag = r.headers["ETag"]
    got = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in r.stream(8192):
            got += chunk
    assert 0 < len(got) <= CUT
    # a new version is published before the client resumes
    new = os.urandom(SIZE + 10)
    rangeserve.add_file("f.bin", new)
    r = http.request("GET", rangeserve.url + "f.bin",
                     headers={"Range": f"bytes={len(got)}-", "If-Range": etag})
    assert r.status == 200, "a stale If-Range gets the whole new file"
    assert r.data == new
    sent = rangeserve.requests()
    assert [e["headers"].get("rangeserve-quirks") for e in sent] == [f"drop-after={CUT}", None]
    assert [e["status"] for e in sent] == [200, 200]
    assert [e["bytes_sent"] for e in sent] == [CUT, SIZE + 10]
    assert sent[0]["aborted"] and not sent[1]["aborted"]
    assert sent[1]["headers"]["if-range"] == etag


def test_factory_https_and_options(rangeserve_factory, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_bytes(b"hello")
    server = rangeserve_factory(dir=tmp_path / "mine", tls=True, quirks=["no-etag"],
                                cache_control="max-age=60")
    assert server.url.startswith("https://127.0.0.1:")
    r = requests.get(server.url + "a.txt", headers={"Range": "bytes=1-3"},
                     verify=str(server.ca), timeout=10)
    assert (r.status_code, r.content) == (206, b"ell")
    assert "ETag" not in r.headers
    assert r.headers["Cache-Control"] == "max-age=60"
    assert [e["status"] for e in server.requests()] == [206]


def test_journal_off_means_no_endpoint(rangeserve_factory):
    server = rangeserve_factory(journal=0)
    r = requests.get(server.url + "_rangeserve/requests", timeout=10)
    assert r.status_code == 404


def test_a_bad_option_is_a_clear_start_error():
    with pytest.raises(rs.StartError, match="stall-limit"):
        rs.serve(stall_limit="soon")


def test_the_command_is_installed():
    out = subprocess.run([rs.binary(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("rangeserve ")


def test_serve_as_a_context_manager():
    with rs.serve() as server:
        server.add_file("x.txt", "abc")
        assert requests.get(server.url + "x.txt", timeout=10).text == "abc"
        path = server.path
    assert not path.exists(), "its temporary directory is removed"
    assert server.process.returncode == 0
