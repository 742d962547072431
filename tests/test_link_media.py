"""A pasted link to a file: direct media, a page that yt-dlp resolves, and the specific refusals (local servers)."""

from __future__ import annotations

import dataclasses

import pytest

from ml_app import fetch_addresses
from ml_app.detection.errors import (
    NotASingleVideo,
    NotFound,
    NotMedia,
    NoVideoFound,
    RefusedAddress,
    TooLarge,
)
from ml_app.link_media import LinkLimits, fetch_media, sniff
from ml_app.page_video import choose_format

from .web_server import local_server

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4000
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 4000
# The generic extractor alone (pages with a <video>): the others cost seconds of imports and know no local page.
LIMITS = LinkLimits(max_bytes=1024 * 1024, timeout=20, allow_private=True, extractors=("generic", "html5"))


def _page(body: str) -> bytes:
    return f"<!DOCTYPE html><html><head><title>A clip</title></head><body>{body}</body></html>".encode()


@pytest.fixture
def server():
    with local_server() as running:
        yield running


def test_a_direct_video_link_is_downloaded_with_its_provenance(server, tmp_path):
    url = server.add("clip", MP4, "application/octet-stream")  # the bytes say what it is, not the name or the type
    got = fetch_media(server.url(f"redirect?to={url}"), tmp_path, LIMITS)
    assert got.path.read_bytes() == MP4 and got.extension == "mp4" and got.kind == "video"
    assert got.final_url == url and got.source_url.endswith(f"redirect?to={url}") and got.page_url == ""
    assert got.name == "clip.mp4" and got.fetched_at.tzinfo is not None


def test_a_photo_link_is_an_image(server, tmp_path):
    got = fetch_media(server.add("face.jpg", JPEG, "image/jpeg"), tmp_path, LIMITS)
    assert (got.kind, got.extension, got.content_type) == ("image", "jpg", "image/jpeg")


def test_a_page_with_a_video_is_resolved_by_yt_dlp(server, tmp_path):
    server.add("clip.mp4", MP4, "video/mp4")
    body = _page("<video controls><source src='clip.mp4' type='video/mp4'></video>")
    page = server.add("watch.html", body, "text/html")
    seen = []
    every = LinkLimits(max_bytes=1024 * 1024, timeout=20, allow_private=True)  # all of yt-dlp's extractors asked
    got = fetch_media(page, tmp_path, every, progress=lambda done, total: seen.append(done))
    assert got.path.read_bytes() == MP4 and got.extension == "mp4"
    assert got.title.startswith("A clip") and got.page_url == page and got.final_url == server.url("files/clip.mp4")
    assert seen[-1] == len(MP4)
    assert [p.name for p in tmp_path.iterdir()] == [got.path.name]  # the page's own download is gone


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (_page("<p>Just words.</p>"), NoVideoFound, "No video was found on this page"),
        (_page("<video src='a.mp4'></video><video src='b.mp4'></video>"), NotASingleVideo, "several videos"),
    ],
)
def test_pages_without_one_video_are_refused_specifically(server, tmp_path, body, error, words):
    with pytest.raises(error, match=words):
        fetch_media(server.add("page.html", body, "text/html"), tmp_path, LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_a_page_whose_video_is_missing_says_so(server, tmp_path):
    page = server.add("page.html", _page("<video src='gone.mp4'></video>"), "text/html")
    with pytest.raises(NotFound, match="nothing at this link"):
        fetch_media(page, tmp_path, LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_a_link_to_something_else_is_not_media(server, tmp_path):
    with pytest.raises(NotMedia, match="application/json"):
        fetch_media(server.add("data.json", b'{"a": 1}', "application/json"), tmp_path, LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_a_page_is_resolved_under_the_same_guard(server, tmp_path, monkeypatch):
    # 127.0.0.1 stands for a public host here; the page's video is on a private address: yt-dlp's request for it
    # is refused, and the refusal is what the caller hears
    real = fetch_addresses.refusal_reason
    monkeypatch.setattr(fetch_addresses, "refusal_reason", lambda a, p=False: None if a == "127.0.0.1" else real(a, p))
    page = server.add("page.html", _page("<video src='http://10.9.9.9/clip.mp4'></video>"), "text/html")
    with pytest.raises(RefusedAddress, match="private network"):
        fetch_media(page, tmp_path, LinkLimits(max_bytes=1024 * 1024, timeout=10, extractors=("generic", "html5")))
    assert list(tmp_path.iterdir()) == []


def test_the_page_video_is_held_to_the_size_limit(server, tmp_path):
    server.add("big.mp4", MP4 * 10, "video/mp4")
    page = server.add("page.html", _page("<video src='big.mp4'></video>"), "text/html")
    with pytest.raises(TooLarge):
        fetch_media(page, tmp_path, dataclasses.replace(LIMITS, max_bytes=20000))
    assert list(tmp_path.iterdir()) == []


def test_sniffing_names_files_by_their_bytes():
    assert sniff(MP4) == "mp4" and sniff(JPEG) == "jpg" and sniff(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "webp" and sniff(b"\x00\x00\x00\x14ftypqt  ") == "mov"
    assert sniff(b"\x1a\x45\xdf\xa3....webm") == "webm" and sniff(b"  <!DOCTYPE HTML><html>") == "html"
    assert sniff(b'{"json": true}') == ""


def test_the_smallest_format_of_at_least_720_lines_is_chosen_else_the_best_below():
    def fmt(height, tbr, protocol="https", vcodec="avc1"):
        return {"url": f"u{height}-{tbr}", "height": height, "tbr": tbr, "protocol": protocol, "vcodec": vcodec}

    formats = [fmt(360, 500), fmt(1080, 4000), fmt(720, 2500), fmt(720, 1500), fmt(2160, 9000), fmt(720, 900, "m3u8")]
    assert choose_format(formats)["url"] == "u720-1500"
    assert choose_format([fmt(360, 500), fmt(480, 800), fmt(1080, 1, vcodec="none")])["url"] == "u480-800"
    assert choose_format([fmt(1080, 1, protocol="http_dash_segments")]) is None
