"""The guarded fetcher against local servers: what it fetches, what it refuses and why, and that it leaves nothing."""

from __future__ import annotations

import time

import pytest

from ml_app import fetch_addresses, fetching
from ml_app.fetching import (
    AccessDenied,
    FetchTimeout,
    HostNotFound,
    HTTPStatusError,
    InvalidURL,
    NotFound,
    RefusedAddress,
    SlowTransfer,
    TooLarge,
    TooManyRedirects,
    fetch,
    refusal_reason,
)

from .web_server import local_server, self_signed

MB = 1024 * 1024
BODY = bytes(range(256)) * 400  # 100 kB


@pytest.fixture
def server():
    with local_server() as running:
        yield running


def _fetch(url, folder, **options):
    options.setdefault("max_bytes", MB)
    options.setdefault("timeout", 10)
    options.setdefault("allow_private", True)
    return fetch(url, folder, **options)


def test_a_file_is_fetched_with_its_details_and_progress(server, tmp_path):
    url = server.add("clip.mp4", BODY, "video/mp4")
    seen = []
    got = _fetch(url, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert got.path.parent == tmp_path and got.path.read_bytes() == BODY
    assert (got.source_url, got.final_url, got.content_type, got.size) == (url, url, "video/mp4", len(BODY))
    assert got.filename == "clip.mp4" and got.path.suffix == ".mp4"
    assert seen[-1] == (len(BODY), len(BODY)) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_redirects_are_followed_and_the_final_url_kept(server, tmp_path):
    target = server.add("photo.jpg", b"\xff\xd8\xff" + BODY, "image/jpeg")
    start = server.url(f"redirect?to={target}")
    got = _fetch(start, tmp_path)
    assert (got.source_url, got.final_url, got.size) == (start, target, len(BODY) + 3)


def test_more_than_five_redirects_are_refused(server, tmp_path):
    with pytest.raises(TooManyRedirects, match="more than 5"):
        _fetch(server.url("loop/0"), tmp_path)
    assert server.requests == [f"/loop/{n}" for n in range(6)]
    assert list(tmp_path.iterdir()) == []


def test_a_local_address_is_refused_without_allow_private_naming_the_reason(server, tmp_path):
    url = server.add("clip.mp4", BODY, "video/mp4")
    with pytest.raises(RefusedAddress, match="loopback") as caught:
        _fetch(url, tmp_path, allow_private=False)
    assert caught.value.code == "address_refused" and "127.0.0.1" in caught.value.message
    assert server.requests == []  # refused before connecting
    with pytest.raises(RefusedAddress, match="loopback"):
        _fetch(server.url("files/clip.mp4", host="localhost"), tmp_path, allow_private=False)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("fd12::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "carrier NAT"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
    ],
)
def test_addresses_that_are_not_public_are_refused(address, reason):
    assert reason in (refusal_reason(address) or "")


def test_allow_private_still_refuses_cloud_metadata_and_multicast():
    assert refusal_reason("127.0.0.1", allow_private=True) is None
    assert refusal_reason("10.0.0.1", allow_private=True) is None
    assert "cloud metadata" in (refusal_reason("169.254.169.254", allow_private=True) or "")
    assert "multicast" in (refusal_reason("239.1.1.1", allow_private=True) or "")


def test_public_addresses_pass():
    assert refusal_reason("93.184.216.34") is None
    assert refusal_reason("2606:4700::1111") is None


def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused(server, tmp_path, monkeypatch):
    # 127.0.0.1 stands for a public host here; every other address is judged by the real rules.
    real = fetch_addresses.refusal_reason
    monkeypatch.setattr(fetch_addresses, "refusal_reason", lambda a, p=False: None if a == "127.0.0.1" else real(a, p))
    server.add("clip.mp4", BODY, "video/mp4")
    assert _fetch(server.url("files/clip.mp4"), tmp_path, allow_private=False).size == len(BODY)
    for private in ("http://10.0.0.7/clip.mp4", f"http://127.0.0.2:{server.port}/files/clip.mp4"):
        with pytest.raises(RefusedAddress, match=r"private|loopback"):
            _fetch(server.url(f"redirect?to={private}"), tmp_path, allow_private=False)
    with pytest.raises(RefusedAddress, match="cloud metadata"):
        _fetch(server.url("redirect?to=http://169.254.169.254/latest/meta-data/"), tmp_path, allow_private=False)
    assert len([p for p in tmp_path.iterdir()]) == 1


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.mp4", "file:///etc/passwd", "gopher://x/", "http://", "http://user:pw@example.com/"]
)
def test_only_plain_http_and_https_links_are_fetched(url, tmp_path):
    with pytest.raises(InvalidURL):
        _fetch(url, tmp_path)


def test_an_unknown_host_is_named(tmp_path):
    with pytest.raises(HostNotFound, match=r"no-such-host\.invalid"):
        _fetch("http://no-such-host.invalid/a.mp4", tmp_path)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, NotFound, "nothing at this link"),
        (410, NotFound, "HTTP 410"),
        (403, AccessDenied, "login"),
        (500, HTTPStatusError, "HTTP 500"),
    ],
)
def test_error_statuses_are_specific(server, tmp_path, status, error, words):
    with pytest.raises(error, match=words) as caught:
        _fetch(server.url(f"status/{status}"), tmp_path)
    assert caught.value.status == status
    assert list(tmp_path.iterdir()) == []


def test_an_endless_body_is_cut_at_the_size_limit(server, tmp_path):
    seen = []
    with pytest.raises(TooLarge, match="larger than the limit of 2 MB"):
        _fetch(server.url("endless"), tmp_path, max_bytes=2 * MB, progress=lambda d, t: seen.append(d))
    assert seen and max(seen) <= 2 * MB
    assert list(tmp_path.iterdir()) == []


def test_a_lying_content_length_changes_nothing(server, tmp_path):
    got = _fetch(server.url("lying"), tmp_path)
    assert got.size == 10  # http.client stops at the announced length: the rest is never read


def test_an_announced_size_over_the_limit_is_refused_before_reading(server, tmp_path):
    url = server.add("big.mp4", BODY, "video/mp4")
    with pytest.raises(TooLarge):
        _fetch(url, tmp_path, max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_a_trickling_server_is_cut_by_the_slow_transfer_limit(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(SlowTransfer, match="less than 100 bytes a second"):
        _fetch(server.url("trickle?every=0.05"), tmp_path, min_rate=100, rate_window=1.0)
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_a_transfer_fast_enough_but_too_long_is_cut_by_the_total_time_limit(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match=r"longer than the limit of 1\.5 seconds"):
        _fetch(server.url("trickle?every=0.002"), tmp_path, timeout=1.5, min_rate=10, rate_window=1.0)
    assert 1.4 < time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_stops_sending_is_cut(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(SlowTransfer):
        _fetch(server.url("stall"), tmp_path, min_rate=10, rate_window=1.0)
    assert time.monotonic() - started < 5


def test_https_is_fetched_with_the_name_checked(tmp_path):
    server_context, client_context = self_signed(tmp_path, host="localhost")
    with local_server(tls=server_context) as server:
        server.add("clip.mp4", BODY, "video/mp4")
        folder = tmp_path / "out"
        folder.mkdir()
        got = _fetch(server.url("files/clip.mp4", host="localhost"), folder, ssl_context=client_context)
        assert got.path.read_bytes() == BODY
        # connected to the same address by IP: the certificate does not name it
        with pytest.raises(fetching.ConnectionFailed, match="secure connection"):
            _fetch(server.url("files/clip.mp4"), folder, ssl_context=client_context)
        assert [p.name for p in folder.iterdir()] == [got.path.name]
