"""The checkpoint catalogue and ``install_checkpoint``: the shipped files are its first entries (read from the files
themselves), and a file from the catalogue, a path or a local HTTP server is checked against its sha256, validated
and registered, or refused with nothing left behind."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ml_app import catalog
from ml_app.detection.files import file_sha256
from ml_app.models import Checkpoint

from .conftest import REPO, small_checkpoint


def test_the_catalogue_starts_with_the_shipped_files_as_they_are():
    written = json.loads(catalog.catalog_path(REPO).read_text())["checkpoints"]
    shipped = catalog.shipped_entries(REPO)
    assert shipped, "the default files are shipped"
    assert written[: len(shipped)] == shipped, "run `manage.py install_checkpoint --write-catalog` after a rebuild"
    for entry in shipped:
        assert entry["sha256"] == file_sha256(REPO / "models" / entry["file"])
        assert set(entry) >= {
            "name",
            "file",
            "sha256",
            "size",
            "frames",
            "backbone",
            "data",
            "figures",
            "licence",
            "url",
        }


@pytest.fixture
def candidate(tmp_path) -> Path:
    return small_checkpoint(tmp_path / "downloads" / "candidate_10_frames.pt", sequence_length=10)


def _models(settings) -> list[str]:
    return sorted(p.name for p in Path(settings.MODELS_DIR).iterdir())


@pytest.mark.django_db
def test_install_a_file_with_its_sha256(site_dirs, settings, candidate, capsys):
    call_command("install_checkpoint", str(candidate), "--sha256", file_sha256(candidate))
    entry = Checkpoint.objects.get(sha256=file_sha256(candidate))
    assert entry.file_path.parent == Path(settings.MODELS_DIR) and entry.is_active, "the first for its length"
    assert _models(settings) == ["candidate_10_frames.pt"]
    assert "Installed" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_wrong_sha256_is_refused_and_leaves_nothing(site_dirs, settings, candidate):
    with pytest.raises(CommandError, match="not the expected"):
        call_command("install_checkpoint", str(candidate), "--sha256", "0" * 64)
    assert _models(settings) == [] and not Checkpoint.objects.exists()


@pytest.mark.django_db
def test_a_file_that_is_not_a_checkpoint_is_refused(site_dirs, settings, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(CommandError, match="Not a usable checkpoint"):
        call_command("install_checkpoint", str(bogus))
    assert _models(settings) == [] and not Checkpoint.objects.exists()


@pytest.mark.django_db
def test_install_by_catalogue_name(site_dirs, settings):
    first = catalog.shipped_entries(REPO)[0]
    call_command("install_checkpoint", first["name"])
    entry = Checkpoint.objects.get(sha256=first["sha256"])
    assert entry.sequence_length == first["frames"] and entry.size_bytes == first["size"]
    with pytest.raises(CommandError, match="neither a file"):
        call_command("install_checkpoint", "no_such_model")


@pytest.fixture
def http_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_install_from_a_local_http_server(site_dirs, settings, candidate, http_server, capsys):
    pytest.importorskip("ml_app.fetching", reason="the guarded fetcher (issue 31) is not merged")
    folder, base = http_server
    (folder / candidate.name).write_bytes(candidate.read_bytes())
    url = f"{base}/{candidate.name}"
    with pytest.raises(CommandError, match="not the expected"):
        call_command("install_checkpoint", url, "--sha256", "f" * 64, "--allow-private")
    assert _models(settings) == [] and not Checkpoint.objects.exists(), "nothing left behind"
    with pytest.raises(CommandError, match="download failed"):  # a loopback address is refused by default
        call_command("install_checkpoint", url, "--sha256", file_sha256(candidate))
    call_command("install_checkpoint", url, "--sha256", file_sha256(candidate), "--allow-private")
    assert Checkpoint.objects.filter(sha256=file_sha256(candidate)).exists()
    assert _models(settings) == ["candidate_10_frames.pt"]
    assert "100%" in capsys.readouterr().err, "a progress bar"
