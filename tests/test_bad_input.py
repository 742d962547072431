"""Hostile and clumsy clients against the real server: run.sh's gunicorn (its own command line) on the test
database, over real sockets (issue 12). Every case asserts the status, the message and that nothing is left on disk:
unusable files, usable but odd videos (no face, tiny, 8K, a browser recording without a duration), hostile names,
odd sequence lengths, multipart tricks, chunked, stalled, trickling and vanishing uploads, the size limit, Range
edge cases, CSRF, tokens, other users' ids, the admin's checkpoint uploads, and the README's nginx configuration in
front (where nginx is installed). The last test checks that after all of them ``incoming/`` is empty and the
server's log holds no traceback.

The server runs with small limits so that the cases stay quick: 5 MB uploads, 60 s videos, a 2 s body timeout."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import requests

from . import media
from .conftest import REPO
from .recordings import jittered_times, recorded_video
from .workers import WebServer, collect_static, free_port, running_server

MB = 1024 * 1024
LIMIT_MB = 5
BODY_TIMEOUT = 2
MIN_RATE = 10_000
ADMIN_PASSWORD = "bad-input-admin-1"

# Transactional: the server is another process, whose commits the tests must see; each test starts from `seeded`.
pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Site:
    server: WebServer
    media: Path
    models: Path
    tmp: Path
    tokens: dict[str, str]
    port: int = 0  # where requests go: gunicorn's port, or nginx's in front of it

    def __post_init__(self):
        self.port = self.port or self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Token {self.tokens[user]}"}

    def incoming(self) -> list[str]:
        folder = self.media / "incoming"
        return sorted(path.name for path in folder.iterdir()) if folder.exists() else []

    def analyses(self) -> set[str]:
        folder = self.media / "analyses"
        return {path.name for path in folder.iterdir()} if folder.exists() else set()


@pytest.fixture(scope="module")
def checkpoint_row(django_db_setup, django_db_blocker, site_checkpoint) -> dict:
    """The registry row of the tiny 10-frame checkpoint, validated once for the module."""
    from ml_app.models import Checkpoint
    from ml_app.registry import register

    with django_db_blocker.unblock():
        entry = register(site_checkpoint, Checkpoint.Source.MODELS_DIR)
        row = {f.name: getattr(entry, f.name) for f in Checkpoint._meta.concrete_fields if f.name != "id"}
        entry.delete()
    return row


TOKENS = {"alice": "a" * 40, "bob": "b" * 40}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    folders = {name: root / name for name in ("media", "models", "queue", "tmp")}
    for folder in folders.values():
        folder.mkdir()
    env = {
        "STATIC_ROOT": str(collect_static(root / "static")),
        "MODELS_DIR": str(folders["models"]),
        "TMPDIR": str(folders["tmp"]),  # where Django spools the admin's uploads: checked for leftovers too
        "MAX_UPLOAD_MB": str(LIMIT_MB),
        "MAX_VIDEO_SECONDS": "60",
        "REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "REQUEST_BODY_MIN_RATE": str(MIN_RATE),
        "API_UPLOAD_RATE": "10000/hour",
        "API_RATE": "100000/min",
        "SITE_UPLOAD_RATE": "10000/hour",
        "MAX_QUEUED_ANALYSES": "10000",
        "DEFAULT_SEQUENCE_LENGTH": "20",  # a default no checkpoint serves: an empty choice must say so
    }
    with running_server(root / "server.log", folders["media"], folders["queue"], env) as server:
        yield Site(server, folders["media"], folders["models"], folders["tmp"], dict(TOKENS))


@pytest.fixture(autouse=True)
def seeded(transactional_db, checkpoint_row):
    """Each test's database (flushed after each, as the server's commits must be seen): the active checkpoint and
    two API users with their tokens."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from rest_framework.authtoken.models import Token

    from ml_app.models import Checkpoint

    Checkpoint.objects.create(**checkpoint_row)
    for name, key in TOKENS.items():
        Token.objects.create(user=get_user_model().objects.create(username=name), key=key)
    yield
    cache.clear()  # the server's rate histories are committed: other modules start with none spent


# --- media ----------------------------------------------------------------------------------------------------------


def eight_k_video(path: Path, frames: int = 10) -> Path:
    """7680x4320 frames of flat grey (quick to make and small to store; a full 8K frame to decode all the same)."""
    width, height = 7680, 4320
    frame = av.VideoFrame(width, height, "yuv420p")
    for number, plane in enumerate(frame.planes):
        np.frombuffer(plane, dtype=np.uint8)[:] = 90 if number == 0 else 128
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "45"}
        for number in range(frames):
            frame.pts, frame.time_base = number, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("bad-input-media")
    clip = media.face_video(folder / "clip.mp4", frames=24, width=320, height=240, faces=((60, 20, 180),))
    still = cv2.imencode(".png", cv2.cvtColor(media.portrait(200), cv2.COLOR_RGB2BGR))[1].tobytes()
    made = {
        "clip": clip,
        "faceless": media.faceless_video(folder / "faceless.mp4", frames=12),
        "tiny": media.faceless_video(folder / "tiny.mp4", frames=12, width=32, height=24),
        "short": media.face_video(folder / "short.mp4", frames=4, width=160, height=120, faces=((20, 10, 100),)),
        "long": media.faceless_video(folder / "long.mp4", frames=62, width=64, height=48, fps=1),
        "8k": eight_k_video(folder / "8k.mp4"),
        "audio": media.write_audio_only(folder / "talk.mp4"),
        "webcam": recorded_video(folder / "webcam.webm", jittered_times(30)),
        "recording_2h": recorded_video(
            folder / "two_hours.webm", [round(n * 7_200_000 / 59) for n in range(60)], 64, 48, ((4, 4, 40),)
        ),
    }
    data = {name: path.read_bytes() for name, path in made.items()}
    data["still"] = still
    data["truncated"] = data["clip"][: len(data["clip"]) // 3]
    return data


# --- helpers --------------------------------------------------------------------------------------------------------

JSON = {"Accept": "application/json"}


def upload(site: Site, content: bytes, name: str = "clip.mp4", length="10", api: str | None = None):
    """An upload through the site's form as its JavaScript sends it (anonymous, with the CSRF cookie and token, JSON
    answers) or, with ``api``, through the API as that user."""
    data = {"sequence_length": length} if length is not None else {}
    if api:
        return requests.post(
            f"{site.url}/api/v1/analyses/",
            headers=site.api(api),
            files={"video": (name, content)},
            data=data,
            timeout=30,
        )
    session, token = csrf_session(site)
    return session.post(
        f"{site.url}/analyses/",
        headers=JSON,
        files={"video": (name, content)},
        data={**data, "csrfmiddlewaretoken": token},
        timeout=30,
    )


def post(site: Site, via: str, **kwargs):
    """A POST to the upload URL of the site (with CSRF cookie and token, JSON answers) or of the API (alice)."""
    if via == "site":
        return site_post(site, headers=JSON, **kwargs)
    return requests.post(f"{site.url}/api/v1/analyses/", headers=site.api(), timeout=60, **kwargs)


def csrf_head(site: Site) -> str:
    """Header lines for a raw request to the site: the CSRF cookie and its token."""
    session, token = csrf_session(site)
    return f"Cookie: csrftoken={session.cookies['csrftoken']}\nX-CSRFToken: {token}\n"


def site_post(site: Site, **kwargs):
    """A POST to the site's upload URL with a valid CSRF cookie and token (added to ``data``)."""
    session, token = csrf_session(site)
    data = kwargs.pop("data", None)
    if isinstance(data, dict) or data is None:
        data = {**(data or {}), "csrfmiddlewaretoken": token}
    else:  # a raw body: the token goes in a header
        kwargs["headers"] = {**kwargs.get("headers", {}), "X-CSRFToken": token}
    return session.post(f"{site.url}/analyses/", data=data, timeout=60, **kwargs)


def expect(response, status: int, code: str, message: str = "") -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["code"] == code, body
    assert message in body["error"]["message"], body
    return body["error"]


def settled(site: Site, before: set[str] | None = None, timeout: float = 5.0) -> None:
    """Nothing of the request is left: ``incoming/`` is empty and no new analysis folder appeared (the server
    cleans up before it answers; a client that vanished is noticed a little later, hence the wait)."""
    deadline = time.monotonic() + timeout
    while site.incoming() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert site.incoming() == [], "an upload part was left behind"
    if before is not None:
        assert site.analyses() == before, "a refused upload left a media folder"


def refused_and_settled(site: Site, response, before: set[str], status: int, code: str, message: str = "") -> dict:
    """What the Why cases of issue 12 check first: nothing left on disk; then the answer."""
    settled(site)
    error = expect(response, status, code, message)
    settled(site, before)
    return error


def accepted(site: Site, response) -> dict:
    """A 202 whose video is stored as ``video.<ext>`` in its analysis' folder, and nothing else left."""
    assert response.status_code == 202, response.text[:500]
    body = response.json()
    stored = [path.name for path in (site.media / "analyses" / body["id"]).iterdir()]
    assert len(stored) == 1 and stored[0].startswith("video"), stored
    settled(site)
    return body


def raw_request(site: Site, head: str, body: bytes = b"", read: bool = True, wait: float = 10) -> bytes:
    """Send ``head`` (CRLF added) and ``body`` over a plain socket; the answer (until the server closes) or b""."""
    with socket.create_connection(("127.0.0.1", site.port), timeout=wait) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if not read:
            return b""
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():  # de-chunk
        parts, rest = [], body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            length = int(size, 16)
            if not length:
                break
            parts.append(rest[:length])
            rest = rest[length + 2 :]
        body = b"".join(parts)
    return status, json.loads(body)


def multipart(fields: list[tuple[str, str | tuple[str, bytes]]], boundary: str = "zzBOUNDARYzz") -> bytes:
    out = []
    for name, value in fields:
        if isinstance(value, tuple):
            filename, content = value
            out.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode()
                + content
                + b"\r\n"
            )
        else:
            out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def csrf_session(site: Site) -> tuple[requests.Session, str]:
    """A browser's session: the CSRF cookie and the token from the upload form."""
    session = requests.Session()
    page = session.get(site.url + "/", timeout=10).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    return session, token


# --- files that are not usable video --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "name", "status", "code", "message"),
    [
        ("empty", "empty.mp4", 400, "empty_file", "'empty.mp4' is empty (0 bytes)"),
        ("text", "notes.mp4", 400, "not_a_video", "it is a text file"),
        ("html", "page.mp4", 400, "not_a_video", "it is an HTML page"),
        ("truncated", "cut.mp4", 400, "not_a_video", "probably truncated"),
        ("audio", "talk.mp4", 400, "no_video_stream", "holds audio but no video stream"),
        ("still", "photo.mp4", 400, "not_a_video", "is a still image"),
        ("still", "photo.gif", 415, "unsupported_type", "'photo.gif' has .gif; upload a video (.mp4"),
        ("short", "short.mp4", 400, "too_few_frames", "The video has 4 frames; a 10-frame analysis needs at least 10"),
        ("long", "long.mp4", 400, "too_long", "The video lasts 62 s; the limit is 60 s"),
        ("recording_2h", "meeting.webm", 400, "too_long", "The video lasts more than 60 s; the limit is 60 s"),
        ("random", "noise.mkv", 400, "not_a_video", "'noise.mkv' is not a readable video"),
        ("nameless", "", 400, "no_file", "'video' came as a text field, not as a file"),
    ],
)
@pytest.mark.parametrize("via", ["site", "api"])
def test_unusable_files_are_refused_with_their_reason(site, files, via, case, name, status, code, message):
    content = {
        "empty": b"",
        "text": b"minutes of the meeting, not a video\n" * 40,
        "html": b"<!DOCTYPE html><html><body>Access denied</body></html>",
        "random": bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8)),
        "nameless": files["clip"],
    }.get(case, files.get(case, b""))
    before = site.analyses()
    error = expect(upload(site, content, name=name, api="alice" if via == "api" else None), status, code, message)
    field = "sequence_length" if code == "too_few_frames" else "video"
    assert error["fields"] == {field: [error["message"]]}
    settled(site, before)


@pytest.mark.parametrize("case", ["clip", "faceless", "tiny", "8k", "webcam"])
def test_usable_videos_are_accepted_whatever_they_show(site, files, case):
    """No face, 32x24 pixels, 8K, a browser recording without a duration in its header: all analysed (a video
    without a face is reported INCONCLUSIVE by the worker, not refused)."""
    name = f"{case}.webm" if case == "webcam" else f"{case}.mp4"
    body = accepted(site, upload(site, files[case], name=name))
    assert body["status"] == "queued" and body["original_name"] == name


# --- names, sequence lengths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("C:\\Users\\x\\clip.mp4", "clip.mp4"),
        ("<b onmouseover=alert(1)>x.mp4", "b onmouseover=alert(1)x.mp4"),
        ("&lt;img src=x onerror=alert(1)&gt;.mp4", "img src=x onerror=alert(1).mp4"),
        ("tab\tand\x01control.mp4", "tabandcontrol.mp4"),
        ("clip\u202egnp.mp4", "clipgnp.mp4"),
        ("x" * 400 + ".mp4", "x" * 116 + ".mp4"),
    ],
)
def test_hostile_names_are_sanitised_and_escaped(site, files, name, shown):
    """Sent byte for byte (a client library would encode them): kept only as sanitised text, escaped on the page."""
    body = multipart([("sequence_length", "10"), ("video", (name, files["clip"]))])
    headers = {**JSON, "Content-Type": "multipart/form-data; boundary=zzBOUNDARYzz"}
    answer = accepted(site, site_post(site, headers=headers, data=body))
    assert answer["original_name"] == shown
    page = requests.get(f"{site.url}/analyses/{answer['id']}/", timeout=10).text
    assert "<b onmouseover" not in page and "<img src=x" not in page
    assert [path.name for path in (site.media / "analyses" / answer["id"]).iterdir()] == ["video.mp4"]


@pytest.mark.parametrize(
    ("length", "code", "message"),
    [
        ("²", "invalid_sequence_length", "'²' is not a number of frames per window"),
        ("٣", "invalid_sequence_length", "'٣' is not a number of frames per window"),
        ("9" * 5000, "invalid_sequence_length", "'99999999999999999999' is not a number of frames per window"),
        ("-10", "invalid_sequence_length", "'-10' is not a number of frames per window"),
        ("10.0", "invalid_sequence_length", "'10.0' is not a number of frames per window"),
        ("1e1", "invalid_sequence_length", "'1e1' is not a number of frames per window"),
        ("0", "unknown_sequence_length", "no active checkpoint for 0-frame windows; choose one of: 10"),
        ("", "unknown_sequence_length", "no active checkpoint for 20-frame windows; choose one of: 10"),
    ],
)
def test_odd_sequence_lengths(site, files, length, code, message):
    before = site.analyses()
    error = expect(upload(site, files["clip"], length=length), 400, code, message)
    assert list(error["fields"]) == ["sequence_length"]
    expect(upload(site, files["clip"], length=length, api="alice"), 400, code, message)
    settled(site, before)


@pytest.mark.parametrize("length", ["²", "9" * 5000])
def test_odd_sequence_lengths_on_the_form_without_javascript(site, files, length):
    """What a browser without JavaScript gets: the form again, the message next to the select (not a 500)."""
    response = site_post(site, files={"video": ("clip.mp4", files["clip"])}, data={"sequence_length": length})
    assert response.status_code == 400
    assert re.search(r'id="sequence-length-error"[^>]*>[^<]*is not a number of frames per window', response.text)
    settled(site)


def test_surrounding_spaces_and_leading_zeros_are_a_number(site, files):
    accepted(site, upload(site, files["clip"], length=" 010 "))


# --- multipart tricks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["site", "api"])
def test_two_videos_in_one_form(site, files, via):
    before = site.analyses()
    response = post(
        site,
        via,
        files=[("video", ("a.mp4", files["clip"])), ("video", ("b.mp4", files["faceless"]))],
        data={"sequence_length": "10"},
    )
    refused_and_settled(
        site,
        response,
        before,
        400,
        "several_files",
        "Send one video or photo per upload; this form has 2 files named 'video' or 'image'.",
    )


@pytest.mark.parametrize("via", ["site", "api"])
def test_a_hundred_and_one_file_parts(site, files, via):
    before = site.analyses()
    parts = [("video", (f"{n}.mp4", files["faceless"])) for n in range(101)]
    response = post(site, via, files=parts, data={"sequence_length": "10"})
    refused_and_settled(site, response, before, 400, "too_many_files", "more than 100 file parts; send one video.")


@pytest.mark.parametrize("via", ["site", "api"])
def test_fifteen_hundred_fields(site, files, via):
    data = {f"field{n}": "x" for n in range(1500)}
    response = post(site, via, files={"video": ("a.mp4", files["clip"])}, data=data)
    expect(response, 400, "too_many_fields", "The form has more than 1000 fields")
    settled(site)


@pytest.mark.parametrize("via", ["site", "api"])
@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_the_video_as_a_three_megabyte_text_field(site, via, encoding):
    data = {"video": "A" * (3 * MB), "sequence_length": "10"}
    files = {"other": ("x.txt", b"x")} if encoding == "multipart" else None
    response = post(site, via, data=data, files=files)
    if via == "api" and encoding == "urlencoded":  # the API reads multipart bodies only
        expect(response, 415, "unsupported_media_type", "application/x-www-form-urlencoded")
    else:
        expect(response, 413, "fields_too_large", "send the video as a file part named 'video'")
    settled(site)


def test_the_video_as_a_small_text_field(site):
    response = requests.post(
        f"{site.url}/api/v1/analyses/", headers=site.api(), files={"x": ("x", b"")}, data={"video": "clip"}, timeout=10
    )
    expect(response, 400, "no_file", "'video' came as a text field, not as a file")


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code", "message"),
    [
        ("multipart/form-data", b"--x\r\n", 400, "malformed_body", "The multipart form cannot be read"),
        ("multipart/form-data; boundary=" + "b" * 300, b"junk", 400, "malformed_body", "Invalid boundary"),
        ("multipart/form-data; boundary=zz", b"no parts at all", 400, "no_file", "Choose a video or a photo"),
        ("application/json", b'{"video": "x"}', 400, "no_file", "Choose a video or a photo to upload."),
    ],
)
def test_malformed_bodies_on_the_site(site, content_type, body, status, code, message):
    head = (
        f"POST /analyses/ HTTP/1.1\nHost: 127.0.0.1\nAccept: application/json\nContent-Type: {content_type}\n"
        f"Content-Length: {len(body)}\nConnection: close\n{csrf_head(site)}"
    )
    answer_status, answer = status_and_json(raw_request(site, head, body))
    assert answer_status == status and answer["error"]["code"] == code and message in answer["error"]["message"]
    settled(site)


def test_a_json_body_to_the_api_is_refused(site):
    response = requests.post(f"{site.url}/api/v1/analyses/", headers=site.api(), json={"video": "x"}, timeout=10)
    expect(response, 415, "unsupported_media_type", "application/json")


def test_a_chunked_upload_is_told_that_a_length_is_required(site, files):
    """A chunked body has no Content-Length: 411 with a message that says so, not "choose a file"."""
    body = multipart([("sequence_length", "10"), ("video", ("clip.mp4", files["clip"]))])
    for path, auth in (("/analyses/", ""), ("/api/v1/analyses/", f"Authorization: Token {site.tokens['alice']}\n")):
        head = (
            f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nAccept: application/json\n{auth}"
            "Content-Type: multipart/form-data; boundary=zzBOUNDARYzz\nTransfer-Encoding: chunked\nConnection: close\n"
        )
        chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        status, answer = status_and_json(raw_request(site, head, chunked))
        assert status == 411, answer
        assert answer["error"]["code"] == "length_required"
        assert answer["error"]["message"].startswith("Content-Length required")
    settled(site)


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_client_that_goes_away_mid_upload_leaves_nothing(site, files, ending):
    """Half the body, then the connection closes (FIN) or is reset (RST: the read fails while the part is written)."""
    body = multipart([("sequence_length", "10"), ("video", ("clip.mp4", files["clip"] * 20))])
    head = (
        "POST /analyses/ HTTP/1.1\nHost: 127.0.0.1\nContent-Type: multipart/form-data; boundary=zzBOUNDARYzz\n"
        f"Content-Length: {len(body)}\n{csrf_head(site)}\n"
    ).replace("\n", "\r\n")
    connection = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    connection.sendall(head.encode() + body[: len(body) // 2])
    deadline = time.monotonic() + 5
    while not site.incoming() and time.monotonic() < deadline:  # the server is writing the video part
        time.sleep(0.02)
    assert site.incoming(), "the upload part was being written"
    if ending == "reset":
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
    settled(site, timeout=10)


# --- limits ---------------------------------------------------------------------------------------------------------


def test_over_the_limit_on_the_site_is_413_even_with_a_valid_csrf_token(site):
    """The limit is checked before the CSRF check reads the body (it used to answer "CSRF verification failed")."""
    before = site.analyses()
    response = site_post(
        site, headers=JSON, files={"video": ("big.mp4", b"\0" * (LIMIT_MB + 1) * MB)}, data={"sequence_length": "10"}
    )
    expect(response, 413, "too_large", f"larger than the {LIMIT_MB} MB upload limit")
    settled(site, before)


def test_over_the_limit_in_the_api_is_413(site):
    response = upload(site, b"\0" * (LIMIT_MB + 1) * MB, name="big.mp4", api="alice")
    expect(response, 413, "too_large", f"larger than the {LIMIT_MB} MB upload limit")
    settled(site)


def test_over_the_limit_without_javascript_shows_the_form(site):
    response = site_post(
        site, files={"video": ("big.mp4", b"\0" * (LIMIT_MB + 1) * MB)}, data={"sequence_length": "10"}
    )
    assert response.status_code == 413 and 'id="upload-form"' in response.text
    assert re.search(rf'id="video-error"[^>]*>[^<]*larger than the {LIMIT_MB} MB upload limit', response.text)


def test_a_stalled_upload_is_answered_408_and_removed(site, files):
    """It announces more than it sends, then goes silent: answered within the body timeout, its part removed."""
    body = multipart([("sequence_length", "10"), ("video", ("clip.mp4", files["clip"] * 4))])
    head = (
        "POST /analyses/ HTTP/1.1\nHost: 127.0.0.1\nAccept: application/json\n"
        f"Content-Type: multipart/form-data; boundary=zzBOUNDARYzz\nContent-Length: {len(body) + 1000}\n"
        + csrf_head(site)
    )
    started = time.monotonic()
    status, answer = status_and_json(raw_request(site, head, body, wait=BODY_TIMEOUT + 10))
    assert status == 408 and answer["error"]["code"] == "body_timeout"
    assert "stopped arriving" in answer["error"]["message"]
    assert time.monotonic() - started < BODY_TIMEOUT + 3
    settled(site)


def test_a_trickling_upload_is_cut_off_at_its_deadline(site):
    """A byte every second beats the body timeout but not the minimum rate: cut off at timeout + length / rate."""
    length = 2 * MIN_RATE
    head = (
        "POST /analyses/ HTTP/1.1\nHost: 127.0.0.1\nAccept: application/json\n"
        f"Content-Type: multipart/form-data; boundary=zz\nContent-Length: {length}\n{csrf_head(site)}\n"
    ).replace("\n", "\r\n")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", site.port), timeout=30) as connection:
        connection.sendall(head.encode())
        answer = b""
        for _ in range(30):
            with contextlib.suppress(OSError):
                connection.sendall(b"-")
            connection.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                answer = connection.recv(65536)
            if answer:
                break
        elapsed = time.monotonic() - started
        connection.settimeout(5)
        while chunk := connection.recv(65536):
            answer += chunk
    status, body = status_and_json(answer)
    assert status == 408 and body["error"]["code"] == "body_timeout"
    assert BODY_TIMEOUT + length / MIN_RATE - 1 < elapsed < BODY_TIMEOUT + length / MIN_RATE + 4


def stalled_clients(site: Site, count: int) -> tuple[list[threading.Thread], list[bytes]]:
    """``count`` POSTs that announce 1 MB, send 1 KB and go silent (each collects its answer)."""
    answers: list[bytes] = []
    head = (
        "POST /analyses/ HTTP/1.1\nHost: 127.0.0.1\nAccept: application/json\n"
        f"Content-Type: multipart/form-data; boundary=zz\nContent-Length: {MB}\n{csrf_head(site)}"
    )

    def stall():
        answers.append(raw_request(site, head, b"--zz\r\n" + b"x" * 1024, wait=10 * BODY_TIMEOUT + 20))

    threads = [threading.Thread(target=stall) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    return threads, answers


@pytest.mark.parametrize(("count", "within"), [(12, 1.5), (48, 3 * BODY_TIMEOUT + 2)])
def test_stalled_clients_do_not_make_the_site_unreachable(site, count, within):
    """A dozen stalled uploads (more than the threads run.sh used to start) take no thread from the upload page;
    four times the threads run.sh starts delay it by a few body timeouts at most. Each is answered 408."""
    threads, answers = stalled_clients(site, count)
    started = time.monotonic()
    page = requests.get(site.url + "/", timeout=60)
    assert page.status_code == 200 and time.monotonic() - started < within
    for thread in threads:
        thread.join()
    assert len(answers) == count and all(status_and_json(answer)[0] == 408 for answer in answers)
    settled(site)


# --- Range ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def stored(site, files) -> tuple[str, bytes]:
    body = upload(site, files["faceless"], name="range.mp4").json()
    return f"{site.url}/analyses/{body['id']}/video", files["faceless"]


@pytest.mark.parametrize(
    ("header", "status", "part"),
    [
        ("bytes=" + "9" * 5000 + "-", 416, None),
        ("bytes=0-0", 206, slice(0, 1)),
        ("bytes=-10", 206, slice(-10, None)),
        ("bytes=-" + "9" * 30, 206, slice(0, None)),
        ("bytes=10-" + "9" * 30, 206, slice(10, None)),
        ("bytes=5-2", 416, None),
        ("bytes=-", 416, None),
        ("bytes=0-1,5-6", 200, slice(0, None)),
        ("bytes=abc", 200, slice(0, None)),
        ("lines=0-10", 200, slice(0, None)),
        ("bytes=²-", 200, slice(0, None)),
    ],
)
def test_range_edge_cases(stored, header, status, part):
    url, data = stored
    response = requests.get(url, headers={"Range": header}, timeout=10)
    assert response.status_code == status, response.text[:300]
    if part is None:
        assert response.headers["Content-Range"] == f"bytes */{len(data)}"
        assert response.json()["error"]["code"] == "range_not_satisfiable"
    else:
        assert response.content == data[part]


# --- CSRF, tokens, other users --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong token", "no token", "no cookie"])
@pytest.mark.parametrize("reply", ["json", "page"])
def test_csrf_failures_are_refused_and_leave_nothing(site, files, case, reply):
    """The upload is read (the CSRF check needs the body), refused, and removed."""
    session, _ = csrf_session(site)
    if case == "no cookie":
        session = requests.Session()
    data = {"sequence_length": "10"} | ({"csrfmiddlewaretoken": "x" * 64} if case == "wrong token" else {})
    before = site.analyses()
    response = session.post(
        f"{site.url}/analyses/",
        headers=JSON if reply == "json" else {},
        files={"video": ("clip.mp4", files["clip"])},
        data=data,
        timeout=30,
    )
    settled(site, before)
    if reply == "json":
        expect(response, 403, "csrf_failed", "security token (CSRF) is missing or does not match")
    else:
        assert response.status_code == 403 and 'id="upload-form"' in response.text, "the form, with the reason"
        assert "security token (CSRF) is missing or does not match" in response.text


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "not_authenticated"),
        ("Token not-a-real-token", "authentication_failed"),
        ("Token ", "authentication_failed"),
        ("Token a b", "authentication_failed"),
        ("Bearer abc", "not_authenticated"),
        ("Token \u00e9\u00e9", "authentication_failed"),
    ],
)
def test_bad_tokens(site, files, authorization, code):
    headers = {"Authorization": authorization.encode("utf-8")} if authorization else {}
    before = site.analyses()
    response = requests.post(
        f"{site.url}/api/v1/analyses/", headers=headers, files={"video": ("c.mp4", files["clip"])}, timeout=30
    )
    expect(response, 401, code)
    settled(site, before)


def test_other_users_ids(site, files):
    from ml_app.models import Analysis

    mine = accepted(site, upload(site, files["clip"], name="mine.mp4", api="alice"))
    for method in ("get", "delete"):
        expect(requests.request(method, mine["url"], headers=site.api("bob"), timeout=10), 404, "not_found")
    assert Analysis.objects.filter(pk=mine["id"]).exists()
    for wrong in (str(uuid.uuid4()), "not-a-uuid", "../" + mine["id"]):
        response = requests.get(f"{site.url}/api/v1/analyses/{wrong}/", headers=site.api("alice"), timeout=10)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    listed = requests.get(f"{site.url}/api/v1/analyses/", headers=site.api("bob"), timeout=10).json()
    assert mine["id"] not in json.dumps(listed)


# --- the admin's checkpoint uploads ---------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def admin_session(site: Site) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{site.url}/admin/login/", timeout=10).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    login = session.post(
        f"{site.url}/admin/login/?next=/admin/",
        data={"username": "root", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token},
        timeout=10,
    )
    assert login.status_code == 200 and "Log out" in login.text
    return session


def test_admin_uploads_of_pickles_html_pages_and_truncated_checkpoints(site, site_checkpoint, tmp_path):
    import io

    import torch
    from django.contrib.auth import get_user_model

    from ml_app.models import Checkpoint

    get_user_model().objects.create_superuser("root", "root@example.org", ADMIN_PASSWORD)
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"format": "deepfake-detector-checkpoint", "state_dict": _Payload(str(marker))}, evil)
    session = admin_session(site)
    cases = [
        ("evil.pt", evil.getvalue(), "refused without running it"),
        ("plain.pt", pickle.dumps(_Payload(str(marker))), "is not a PyTorch checkpoint"),
        ("page.pt", b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", "HTML page"),
        ("cut.pt", site_checkpoint.read_bytes()[:5000], "truncated"),
        ("empty.pt", b"", "empty"),
    ]
    for name, content, message in cases:
        form = session.get(f"{site.url}/admin/ml_app/checkpoint/add/", timeout=10).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
        response = session.post(
            f"{site.url}/admin/ml_app/checkpoint/add/",
            files={"upload": (name, content)},
            data={"notes": "", "activate": "on", "csrfmiddlewaretoken": token},
            timeout=60,
        )
        assert response.status_code == 200 and message in response.text, (name, response.text[-2000:])
    assert not marker.exists(), "no payload ran"
    assert Checkpoint.objects.count() == 1, "only the checkpoint the fixture registered"
    assert list(site.models.iterdir()) == [] and list(site.tmp.iterdir()) == []


# --- behind nginx, configured as the README says -------------------------------------------------------------------


def readme_nginx_config(upstream: int, port: int, tmp: Path) -> str:
    """The README's nginx configuration, as written, with this test's ports and smaller limits, in a main
    configuration of its own (pid, logs and temporary files under ``tmp``)."""
    text = (REPO / "README.md").read_text()
    server = re.search(r"<!-- nginx-config -->\s*```nginx\n(.*?)```", text, re.S)[1]
    for old, new in [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("client_max_body_size 201m;", f"client_max_body_size {LIMIT_MB + 1}m;"),
        ("client_body_timeout 20s;", f"client_body_timeout {BODY_TIMEOUT}s;"),
    ]:
        assert old in server, f"the README's nginx configuration no longer has {old!r}"
        server = server.replace(old, new)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        "events { worker_connections 512; }\n"
        f"http {{\naccess_log {tmp}/access.log;\nclient_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\n"
        f"{server}\n}}\n"
    )


@pytest.fixture(scope="module")
def proxied(site, tmp_path_factory):
    """The module's server behind nginx (skipped where nginx is not installed: ./setup.sh does not install it)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the README's configuration is untested here")
    tmp = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (tmp / "nginx.conf").write_text(readme_nginx_config(site.server.port, port, tmp))
    process = subprocess.Popen(
        [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/static/css/site.css", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp / "error.log").read_text()) from None
                time.sleep(0.1)
        yield dataclasses.replace(site, port=port), tmp
    finally:
        process.terminate()
        process.wait(timeout=10)


def gunicorn_posts(site: Site) -> int:
    return site.server.log().count('"POST /analyses/')


def test_behind_nginx_an_upload_goes_through(proxied, files):
    proxy, _ = proxied
    accepted(proxy, upload(proxy, files["clip"], name="through-nginx.mp4"))


def test_behind_nginx_a_body_over_the_limit_is_refused_by_nginx_in_the_error_shape(proxied):
    proxy, _ = proxied
    before = gunicorn_posts(proxy)
    response = site_post(proxy, headers=JSON, files={"video": ("big.mp4", b"\0" * (LIMIT_MB + 2) * MB)})
    expect(response, 413, "too_large", "larger than the")
    assert gunicorn_posts(proxy) == before, "gunicorn never saw it"
    settled(proxy)


def test_behind_nginx_stalled_clients_never_reach_gunicorn(proxied):
    """Forty stalled uploads: nginx holds them, drops them after its body timeout, and gunicorn sees none."""
    proxy, tmp = proxied
    before = gunicorn_posts(proxy)
    threads, answers = stalled_clients(proxy, 40)
    started = time.monotonic()
    assert requests.get(proxy.url + "/", timeout=10).status_code == 200 and time.monotonic() - started < 1.5
    for thread in threads:
        thread.join()
    assert len(answers) == 40
    assert gunicorn_posts(proxy) == before
    assert (tmp / "access.log").read_text().count('"POST /analyses/ HTTP/1.1" 408') == 40
    settled(proxy)
    assert not [path for path in (tmp / "body").rglob("*") if path.is_file()], "nginx kept no partial body either"


# --- finally --------------------------------------------------------------------------------------------------------


def test_after_all_of_it_nothing_is_left_and_the_log_holds_no_traceback(site):
    """Runs last in this module: the acceptance check of the whole run."""
    settled(site)
    log = site.server.log()
    assert "Traceback" not in log and " 500 " not in log, log[-5000:]
    assert site.server.process.poll() is None, "the server is still up"
