"""Content Credentials (C2PA): files signed here with a test certificate chain built here are read back with their
generator, signer, actions and a valid signature; tampered copies fail validation with the reason; plain files have
none; damaged and remote manifests are handled without the network; the trust list decides trusted or not; and the
worker, both commands, the API and the result page carry it, apart from the verdict."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from ml_app.detection.errors import ConfigurationError
from ml_app.detection.provenance import read_provenance
from ml_app.detection.provenance.words import action_label, meaning_of, source_words

from . import media
from .conftest import REPO

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# --- a certificate chain and signing, as a camera or a generator would ----------------------------------------------


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes  # the signing certificate, then its CA
    key_pem: bytes
    ca_file: Path  # the CA alone: the trust anchor


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _usage(**allowed: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
    flags = dict.fromkeys((*names, "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(**{**flags, **allowed})


def make_credentials(folder: Path, ca_name: str = "Test Root CA") -> Credentials:
    """A CA and an ES256 signing certificate with what C2PA asks of one: v3, not self-signed, digitalSignature key
    usage, an allowed extended key usage (emailProtection), key identifiers."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: x509.Name, issuer: x509.Name, public_key, sign_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca_subject = _name(ca_name, "Test Trust Org")
    ca = (
        certificate(ca_subject, ca_subject, ca_key.public_key(), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        certificate(_name("Test Camera Signer", "Test Cameras Inc"), ca_subject, key.public_key(), ca_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file = folder / "anchors.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    return Credentials(chain, key_pem, ca_file)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("c2pa"))


def manifest(generator: str = "Test AI Generator", *actions: dict) -> dict:
    actions = actions or (
        {
            "action": "c2pa.created",
            "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
            "softwareAgent": {"name": generator},
        },
        {"action": "c2pa.color_adjustments"},
    )
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "astronaut",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": list(actions)}}],
    }


def sign(credentials: Credentials, source: Path, dest: Path, definition: dict | None = None, **remote) -> Path:
    """``source`` with Content Credentials embedded (or, with ``remote_url``, only pointed to), written to ``dest``."""
    mime = {".jpg": "image/jpeg", ".mp4": "video/mp4", ".png": "image/png"}[source.suffix]
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem, credentials.key_pem, None)
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition or manifest()) as builder:
        if remote:
            builder.set_no_embed()
            builder.set_remote_url(remote["remote_url"])
        with open(source, "rb") as src, open(dest, "w+b") as out:
            builder.sign(signer, mime, src, out)
    return dest


def flip(path: Path, dest: Path, offset: int, count: int = 1) -> Path:
    """A copy of ``path`` with ``count`` bytes from ``offset`` (negative: from the end) inverted."""
    data = bytearray(path.read_bytes())
    start = offset % len(data)
    for i in range(start, start + count):
        data[i] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def signed_jpeg(credentials, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("signed")
    return sign(credentials, media.photo(folder / "plain.jpg"), folder / "signed.jpg")


@pytest.fixture(scope="module")
def signed_mp4(credentials, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("signed_video")
    edited = manifest(
        "Test Video Editor",
        {"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"},
        {"action": "c2pa.edited", "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia"},
    )
    return sign(credentials, media.face_video(folder / "plain.mp4", frames=24), folder / "signed.mp4", edited)


# --- reading ----------------------------------------------------------------------------------------------------------


def test_a_signed_photo_shows_its_generator_signer_actions_and_a_valid_signature(signed_jpeg):
    found = read_provenance(signed_jpeg)
    data = found.to_dict()
    assert data["present"] is True and data["state"] == "valid" and data["problems"] == []
    assert data["generator"] == "Test AI Generator 1.0"
    assert data["generator_info"] == [{"name": "Test AI Generator", "version": "1.0"}]
    signer = data["signer"]
    assert (signer["name"], signer["organization"], signer["issuer"]) == (
        "Test Camera Signer",
        "Test Cameras Inc",
        "Test Root CA",
    )
    assert signer["algorithm"] == "es256" and signer["valid_until"] and signer["serial"]
    created, adjusted = data["actions"]
    assert (created["action"], created["label"], created["source"]) == (
        "c2pa.created",
        "created",
        "made by an AI generator",
    )
    assert created["software"] == "Test AI Generator" and created["source_type"] == "trainedAlgorithmicMedia"
    assert adjusted["label"] == "colours adjusted" and adjusted["source"] is None
    assert data["ai"] == "made by an AI generator" and data["title"] == "astronaut" and data["manifests"] == 1
    assert data["trust"] == "not_checked" and "no trust list" in data["trust_explanation"]
    assert data["summary"].startswith(
        "This file says it was made by Test AI Generator 1.0, signed by Test Camera Signer"
    )
    assert "Signature and hashes valid" in data["summary"] and "made by an AI generator" in data["summary"]
    assert json.loads(json.dumps(data)) == data, "plain JSON types only"
    assert 0 < found.seconds < 5


def test_a_signed_video_shows_its_manifest_with_an_ai_edit(signed_mp4):
    data = read_provenance(signed_mp4).to_dict()
    assert data["state"] == "valid" and data["generator"] == "Test Video Editor 1.0"
    assert [action["source"] for action in data["actions"]] == ["captured by a camera", "edited with AI"]
    assert data["ai"] == "edited with AI"


def test_changed_pixels_of_a_signed_photo_fail_validation_with_the_reason(signed_jpeg, tmp_path):
    tampered = flip(signed_jpeg, tmp_path / "tampered.jpg", -400, 8)  # inside the compressed pixels, after the manifest
    data = read_provenance(tampered).to_dict()
    assert data["present"] and data["state"] == "invalid"
    codes = {problem["code"]: problem["meaning"] for problem in data["problems"]}
    assert codes == {"assertion.dataHash.mismatch": "the file was changed after it was signed"}
    assert "Validation FAILED: the file was changed after it was signed" in data["summary"]
    assert data["generator"] == "Test AI Generator 1.0", "what the file claims is still shown"


def test_a_changed_byte_of_a_signed_video_fails_validation(signed_mp4, tmp_path):
    data = read_provenance(flip(signed_mp4, tmp_path / "tampered.mp4", -300)).to_dict()
    assert data["state"] == "invalid"
    assert [p["code"] for p in data["problems"]] == ["assertion.bmffHash.mismatch"]
    assert data["problems"][0]["meaning"] == "the file was changed after it was signed"


@pytest.mark.parametrize("make", ["photo", "video", "png"])
def test_a_plain_file_has_no_content_credentials_and_nothing_else(tmp_path, make):
    path = {
        "photo": lambda: media.photo(tmp_path / "plain.jpg"),
        "video": lambda: media.face_video(tmp_path / "plain.mp4", frames=5),
        "png": lambda: media.photo(tmp_path / "plain.png"),
    }[make]()
    assert read_provenance(path).to_dict() == {"present": False, "state": "none", "summary": "No Content Credentials"}


def test_formats_that_cannot_carry_credentials_and_broken_plain_files_have_none(tmp_path):
    webm = media.face_video(tmp_path / "clip.webm", frames=5, codec="libvpx-vp9")
    (tmp_path / "text.jpg").write_text("not a photo")
    (tmp_path / "empty.mp4").write_bytes(b"")
    plain = media.photo(tmp_path / "plain.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(plain[: len(plain) // 3])
    for path in (webm, tmp_path / "text.jpg", tmp_path / "empty.mp4", tmp_path / "cut.jpg"):
        assert read_provenance(path).state == "none", path.name


def test_a_damaged_manifest_is_unreadable_with_the_reason_never_an_exception(signed_jpeg, tmp_path):
    claim = signed_jpeg.read_bytes().find(b"c2pa.claim")
    assert claim > 0
    data = read_provenance(flip(signed_jpeg, tmp_path / "garbled.jpg", claim + 30, 40)).to_dict()
    assert set(data) == {"present", "state", "summary", "error"}
    assert data["present"] is True and data["state"] == "unreadable" and "CBOR" in data["error"]
    assert data["summary"] == f"Unreadable Content Credentials: {data['error']}"
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(signed_jpeg.read_bytes()[:3000])  # the manifest's start and nothing after
    assert read_provenance(cut).state == "unreadable"


def test_a_missing_file_is_not_said_to_carry_credentials(tmp_path):
    data = read_provenance(tmp_path / "gone.jpg").to_dict()
    assert data["present"] is False and data["state"] == "unreadable" and "cannot be opened" in data["error"]


@pytest.fixture
def web_server():
    """A local HTTP server that records every request it gets."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/manifest.c2pa", requests
    server.shutdown()


def test_a_remote_manifest_is_not_fetched(credentials, tmp_path, web_server):
    url, requests = web_server
    pointing = sign(credentials, media.photo(tmp_path / "plain.jpg"), tmp_path / "remote.jpg", remote_url=url)
    data = read_provenance(pointing, credentials.ca_file).to_dict()
    assert data["state"] == "unreadable" and "not fetched" in data["error"] and url in data["error"]
    assert requests == [], "reading touched the network"
    with pytest.raises(c2pa.C2paError):  # the library's defaults would have fetched it: the test can fail
        c2pa.Reader(str(pointing))
    assert requests == ["/manifest.c2pa"]


# --- trust ------------------------------------------------------------------------------------------------------------


def test_the_signer_is_trusted_only_with_its_anchor_and_untrusted_is_not_invalid(signed_jpeg, credentials, tmp_path):
    other = make_credentials(tmp_path / "other", ca_name="Some Other CA")
    trusted = read_provenance(signed_jpeg, credentials.ca_file).to_dict()
    untrusted = read_provenance(signed_jpeg, other.ca_file).to_dict()
    assert trusted["trust"] == "trusted" and "(signer trusted)" in trusted["summary"]
    assert untrusted["trust"] == "untrusted" and "not on the configured trust list" in untrusted["trust_explanation"]
    assert trusted["state"] == untrusted["state"] == "valid" and untrusted["problems"] == []
    assert "signer not on the trust list" in untrusted["summary"]


def test_a_bad_trust_list_is_a_configuration_error_that_stops_the_start(tmp_path):
    (tmp_path / "notes.pem").write_text("no certificate here")
    bad = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    (tmp_path / "bad.pem").write_text(bad)
    for name, message in (("missing.pem", "cannot be read"), ("notes.pem", "no PEM certificate")):
        with pytest.raises(ConfigurationError, match=message):
            read_provenance(tmp_path / "plain.jpg", tmp_path / name)
    env = {**os.environ, "C2PA_TRUST_ANCHORS": str(tmp_path / "notes.pem"), "STATE_DIR": str(tmp_path / "state")}
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        check=False,
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "project_settings.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode != 0 and "C2PA_TRUST_ANCHORS: The C2PA trust anchors file" in started.stderr


def test_the_plain_words_tables():
    assert source_words("trainedAlgorithmicMedia") == "made by an AI generator"
    assert source_words("compositeWithTrainedAlgorithmicMedia") == "edited with AI"
    assert source_words("somethingNew") == "source type somethingNew"
    assert action_label("c2pa.edited") == "edited" and action_label("c2pa.brand_new") == "brand new"
    for code in ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch"):
        assert meaning_of(code) == "the file was changed after it was signed"
    assert meaning_of("claimSignature.mismatch").startswith("the signature does not match")
    assert meaning_of("future.code", "the library's words") == "the library's words"


# --- the worker, the commands, the API and the result page ----------------------------------------------------------


@pytest.fixture
def fresh_rates():
    cache.clear()
    yield
    cache.clear()


def upload_and_run(client, path: Path, name: str, **fields: str):
    """Upload on the site, run the job inline as the worker would, return the analysis and its page's address."""
    from ml_app.models import Analysis
    from ml_app.tasks import analyze_video_task

    response = client.post(reverse("ml_app:create"), {"video": SimpleUploadedFile(name, path.read_bytes()), **fields})
    assert response.status_code == 302, response.content
    analysis = Analysis.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[1])
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == "done", analysis.error_message
    return analysis, response["Location"]


def credentials_box(page: str) -> str:
    start = page.index('<aside class="credentials')
    return page[start : page.index("</aside>", start)]


@pytest.mark.django_db
def test_a_signed_photo_upload_stores_and_shows_its_credentials_apart_from_the_verdict(
    client, active_frame_checkpoint, signed_jpeg, credentials, settings, fresh_rates
):
    settings.C2PA_TRUST_ANCHORS = str(credentials.ca_file)
    analysis, page_url = upload_and_run(client, signed_jpeg, "generated.jpg")
    stored = analysis.result["provenance"]
    assert stored["state"] == "valid" and stored["trust"] == "trusted" and stored["ai"] == "made by an AI generator"
    assert analysis.result["timings"]["provenance"] > 0 and analysis.timings["provenance"] > 0
    assert analysis.result["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE"), "the network's verdict is still there"
    page = client.get(page_url).content.decode()
    box = credentials_box(page)
    assert "<h2>Content Credentials</h2>" in box and "separate from the network's verdict" in box
    assert "This file says it was made by Test AI Generator 1.0, signed by Test Camera Signer" in box
    assert "created: made by an AI generator (Test AI Generator)" in box and "colours adjusted" in box
    assert "Signing certificate issued by Test Root CA" in box and "(signer trusted)" in box
    assert page.index('id="verdict"') < page.index('<aside class="credentials') < page.index('id="photo"')
    assert 'id="verdict-label"' not in box, "the box holds no part of the verdict"


@pytest.mark.django_db
def test_a_tampered_upload_page_says_validation_failed(
    client, active_frame_checkpoint, signed_jpeg, tmp_path, fresh_rates
):
    tampered = flip(signed_jpeg, tmp_path / "tampered.jpg", -400, 8)
    analysis, page_url = upload_and_run(client, tampered, "tampered.jpg")
    assert analysis.result["provenance"]["state"] == "invalid"
    box = credentials_box(client.get(page_url).content.decode())
    assert "Validation FAILED: the file was changed after it was signed" in box
    assert (
        "assertion.dataHash.mismatch" in box and 'class="credentials invalid"' in client.get(page_url).content.decode()
    )


@pytest.mark.django_db
def test_a_plain_upload_page_says_no_content_credentials_and_nothing_else(
    client, active_frame_checkpoint, tmp_path, fresh_rates
):
    analysis, page_url = upload_and_run(client, media.photo(tmp_path / "plain.jpg"), "plain.jpg")
    assert analysis.result["provenance"] == {"present": False, "state": "none", "summary": "No Content Credentials"}
    box = credentials_box(client.get(page_url).content.decode())
    assert "No Content Credentials" in box and "<h2>" not in box and "signed" not in box


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread writes too when the analysis takes a while
def test_a_signed_video_through_the_worker_and_the_api(active_checkpoint, signed_mp4, django_user_model, fresh_rates):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from ml_app.tasks import analyze_video_task

    user = django_user_model.objects.create_user("dana", password="dana-password-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    created = api.post(
        "/api/v1/analyses/", {"video": SimpleUploadedFile("clip.mp4", signed_mp4.read_bytes()), "sequence_length": 10}
    )
    assert created.status_code == 202, created.content
    analyze_video_task.run(created.json()["id"], 1)
    done = api.get(created.json()["url"]).json()
    assert done["status"] == "done", done["error"]
    provenance = done["result"]["provenance"]
    assert provenance["state"] == "valid" and provenance["ai"] == "edited with AI"
    assert provenance["signer"]["name"] == "Test Camera Signer" and provenance["trust"] == "not_checked"
    assert [a["label"] for a in provenance["actions"]] == ["created", "edited"]


@pytest.mark.django_db
def test_manifest_text_is_escaped_on_the_page(client, active_frame_checkpoint, credentials, tmp_path, fresh_rates):
    hostile = manifest("<script>alert(1)</script>")
    signed = sign(credentials, media.photo(tmp_path / "plain.jpg"), tmp_path / "hostile.jpg", hostile)
    _, page_url = upload_and_run(client, signed, "hostile.jpg")
    page = client.get(page_url).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in credentials_box(page)


@pytest.mark.django_db
def test_analyze_image_and_analyze_video_include_it(
    signed_jpeg, signed_mp4, frame_checkpoint, tiny_checkpoint, site_dirs
):
    def run(command: str, *args: str) -> str:
        out = StringIO()
        call_command(command, *args, stdout=out)
        return out.getvalue()

    photo = json.loads(run("analyze_image", str(signed_jpeg), "--checkpoint", str(frame_checkpoint), "--json"))
    assert photo["provenance"]["state"] == "valid" and photo["timings"]["provenance"] > 0
    summary = run("analyze_image", str(signed_jpeg), "--checkpoint", str(frame_checkpoint))
    [line] = [line for line in summary.splitlines() if "content credentials" in line]
    assert "the file's own claim, not the network's" in line and "made by Test AI Generator 1.0" in line
    video = json.loads(run("analyze_video", str(signed_mp4), "--checkpoint", str(tiny_checkpoint), "--json"))
    assert video["provenance"]["generator"] == "Test Video Editor 1.0"
    plain = run(
        "analyze_video", str(media.face_video(site_dirs / "plain.mp4", frames=24)), "--checkpoint", str(tiny_checkpoint)
    )
    assert plain.splitlines()[-1].endswith(": No Content Credentials")
