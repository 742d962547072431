"""The admin's checkpoint registry (upload with validation, activation), its read-only analyses list, and
sync_checkpoints."""

from __future__ import annotations

import pickle
import stat
from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from ml_app.detection.files import plain_file_mode
from ml_app.models import Analysis, Checkpoint, RejectedUpload
from ml_app.registry import activate_checkpoint, register

from .conftest import small_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rates():
    """Upload rates live in the shared cache, which a transactional test does not roll back: each test starts
    with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(admin_client, site_dirs):
    return admin_client


def add_checkpoint(client, content: bytes, name: str = "model.pt", activate: bool = True):
    data = {"upload": SimpleUploadedFile(name, content), "notes": "from the test"}
    if activate:
        data["activate"] = "on"
    return client.post("/admin/ml_app/checkpoint/add/", data)


def test_valid_checkpoint_upload_is_validated_and_described(admin, site_checkpoint, settings):
    response = add_checkpoint(admin, site_checkpoint.read_bytes(), name="My model.pt")
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = Checkpoint.objects.get()
    assert entry.sequence_length == 10 and entry.backbone == "mobilenet_v2" and entry.image_size == 64
    assert entry.untrained and entry.is_active and entry.source == "upload"
    assert entry.preprocessing["detector"]["backend"] == "centerface" and entry.architecture["hidden_size"] == 16
    stored = entry.file_path
    assert stored.parent == Path(settings.MODELS_DIR) and stored.read_bytes() == site_checkpoint.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == plain_file_mode(), "as readable as any other checkpoint, not 0o600"
    assert entry.sha256 == __import__("hashlib").sha256(site_checkpoint.read_bytes()).hexdigest()
    assert not list(Path(settings.MODELS_DIR).glob(".upload-*")), "no temporary file is left"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<!DOCTYPE html><html><body>Quota exceeded</body></html>", "HTML page"),
        (b"", "empty"),
        (b"PK\x03\x04" + b"\x00" * 100, "truncated"),
    ],
)
def test_invalid_checkpoint_upload_is_refused_with_the_reason(admin, content, message, settings):
    response = add_checkpoint(admin, content)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Checkpoint.objects.count() == 0
    assert not list(Path(settings.MODELS_DIR).iterdir())


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(admin, tmp_path):
    marker = tmp_path / "pwned"
    buffer = __import__("io").BytesIO()
    torch.save({"format": "deepfake-detector-checkpoint", "state_dict": _Payload(str(marker))}, buffer)
    response = add_checkpoint(admin, buffer.getvalue(), name="evil.pt")
    assert "refused without running it" in response.content.decode()
    assert not marker.exists(), "the payload never ran"
    plain = add_checkpoint(admin, pickle.dumps(_Payload(str(marker))), name="plain.pt")
    assert plain.status_code == 200 and not marker.exists()
    assert Checkpoint.objects.count() == 0


def test_weights_that_do_not_fit_are_refused(admin, site_checkpoint, tmp_path):
    payload = torch.load(site_checkpoint, weights_only=True)
    payload["architecture"]["hidden_size"] = 32
    path = tmp_path / "mismatch.pt"
    torch.save(payload, path)
    response = add_checkpoint(admin, path.read_bytes())
    assert "do not fit its declared architecture" in response.content.decode()


def test_the_same_file_twice_is_refused(admin, site_checkpoint):
    add_checkpoint(admin, site_checkpoint.read_bytes())
    response = add_checkpoint(admin, site_checkpoint.read_bytes(), name="copy.pt")
    assert "already registered" in response.content.decode()
    assert Checkpoint.objects.count() == 1


def test_one_active_checkpoint_per_length(admin, site_dirs):
    first = small_checkpoint(site_dirs / "a.pt", sequence_length=10)
    second = small_checkpoint(site_dirs / "b.pt", sequence_length=10)
    add_checkpoint(admin, first.read_bytes(), name="a.pt")
    add_checkpoint(admin, second.read_bytes(), name="b.pt", activate=False)
    a, b = Checkpoint.objects.get(name="a"), Checkpoint.objects.get(name="b")
    assert a.is_active and not b.is_active
    admin.post("/admin/ml_app/checkpoint/", {"action": "activate", "_selected_action": [b.pk]})
    a.refresh_from_db()
    b.refresh_from_db()
    assert b.is_active and not a.is_active
    response = admin.post(
        "/admin/ml_app/checkpoint/", {"action": "activate", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    assert "at most one checkpoint per sequence length" in response.content.decode()
    assert Checkpoint.objects.filter(sequence_length=10, is_active=True).count() == 1


def test_sync_registers_mapping_and_models_folder(site_dirs, settings, tmp_path):
    small_checkpoint(Path(settings.MODELS_DIR) / "ten.pt", sequence_length=10)
    small_checkpoint(Path(settings.MODELS_DIR) / "twenty.pt", sequence_length=20)
    (Path(settings.MODELS_DIR) / "download.pt").write_text("<html>404</html>")
    elsewhere = small_checkpoint(tmp_path / "mapped_40.pt", sequence_length=40)
    settings.MODEL_MAPPING = {40: str(elsewhere)}
    out, err = StringIO(), StringIO()
    call_command("sync_checkpoints", stdout=out, stderr=err)
    active = {c.sequence_length: c for c in Checkpoint.objects.filter(is_active=True)}
    assert set(active) == {10, 20, 40}
    assert active[40].source == "mapping" and active[10].source == "models_dir"
    assert "download.pt" in err.getvalue() and "HTML page" in err.getvalue()
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    assert Checkpoint.objects.count() == 3, "syncing again adds nothing"


def test_sync_keeps_the_administrators_choice_over_the_default_mapping(site_dirs, settings):
    shipped = small_checkpoint(Path(settings.MODELS_DIR) / "default_20.pt", sequence_length=20)
    settings.MODEL_MAPPING = settings.DEFAULT_MODEL_MAPPING = {20: str(shipped)}
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    assert Checkpoint.objects.get(is_active=True).name == "default_20", "the default model is active at first"
    mine = small_checkpoint(Path(settings.MODELS_DIR) / "mine.pt", sequence_length=20)
    chosen = register(mine, Checkpoint.Source.UPLOAD)
    activate_checkpoint(chosen)
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())  # what run.sh does on every start
    assert Checkpoint.objects.get(is_active=True).pk == chosen.pk
    settings.MODEL_MAPPING = {20: str(shipped)}  # an operator's MODEL_MAPPING, unlike the default, wins
    settings.DEFAULT_MODEL_MAPPING = {}
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    assert Checkpoint.objects.get(is_active=True).name == "default_20"


def test_sync_lists_a_mapped_file_in_the_models_folder_once(site_dirs, settings):
    mapped = small_checkpoint(Path(settings.MODELS_DIR) / "default_20.pt", sequence_length=20)
    settings.MODEL_MAPPING = {20: str(mapped)}
    out = StringIO()
    call_command("sync_checkpoints", stdout=out, stderr=StringIO())
    assert out.getvalue().count("registered: default_20") == 1, out.getvalue()
    assert Checkpoint.objects.get().source == "mapping"


def test_analyses_are_listed_only_in_the_admin_read_only_and_filterable(admin, active_checkpoint):
    analysis = Analysis.objects.create(
        original_name="clip.mp4",
        video="analyses/x/video.mp4",
        sha256="0" * 64,
        sequence_length=10,
        checkpoint=active_checkpoint,
        status=Analysis.Status.DONE,
        verdict="FAKE",
        fake_probability=0.9,
        result={"verdict": "FAKE", "confidence": 0.9, "windows": [], "people": [], "warnings": []},
    )
    listing = admin.get("/admin/ml_app/analysis/?status__exact=done&verdict__exact=FAKE").content.decode()
    assert "clip.mp4" in listing and str(analysis.pk)[:8] in listing
    empty = admin.get("/admin/ml_app/analysis/?verdict__exact=REAL").content.decode()
    assert "clip.mp4" not in empty
    detail = admin.get(f"/admin/ml_app/analysis/{analysis.pk}/change/")
    assert detail.status_code == 200 and "FAKE" in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode(), "read-only: no save button"
    assert admin.get("/admin/ml_app/analysis/add/").status_code == 403


def test_rejected_uploads_are_on_record_in_the_admin(admin):
    RejectedUpload.objects.create(original_name="x.txt", code="unsupported_type", message="has .txt")
    assert "unsupported_type" in admin.get("/admin/ml_app/rejectedupload/").content.decode()


def test_sync_refuses_a_mapping_entry_for_the_wrong_length(site_dirs, settings, tmp_path):
    ten = small_checkpoint(tmp_path / "ten.pt", sequence_length=10)
    settings.MODEL_MAPPING = {20: str(ten)}
    err = StringIO()
    call_command("sync_checkpoints", stdout=StringIO(), stderr=err)
    assert "maps it to 20 frames, but it analyses 10-frame windows" in err.getvalue()
    assert not Checkpoint.objects.filter(sequence_length=20).exists()


@pytest.mark.django_db(transaction=True)
def test_an_exported_onnx_model_serves_the_site_when_mapped(
    site_dirs, settings, site_checkpoint, tmp_path, one_face_video, client
):
    """MODEL_MAPPING may name an export_onnx file: registered like a .pt and analysed through onnxruntime."""
    from ml_app.tasks import analyze_video_task

    onnx_file = tmp_path / "tiny_10.onnx"
    call_command("export_onnx", str(site_checkpoint), "--output", str(onnx_file), stdout=StringIO())
    settings.MODEL_MAPPING = {10: str(onnx_file)}
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    entry = Checkpoint.objects.get(is_active=True)
    assert entry.file_path == onnx_file and entry.sequence_length == 10
    response = client.post(
        "/analyses/",
        {"video": SimpleUploadedFile("a.mp4", one_face_video.read_bytes()), "sequence_length": "10"},
        HTTP_ACCEPT="application/json",
    )
    analyze_video_task.run(response.json()["id"], 1)
    analysis = Analysis.objects.get(pk=response.json()["id"])
    assert analysis.status == "done", analysis.error_message
    assert analysis.result["checkpoint"]["sha256"] == entry.sha256


# --- one registration path: the admin, sync and train_model --register share the registry's functions ---------------


@pytest.fixture
def counted(monkeypatch):
    """Counts, per path, the registry's validations (load, build, forward pass) and the rows it creates."""
    from ml_app import registry

    calls: dict[str, list] = {"validated": [], "added": []}
    validate, add = registry.validate_checkpoint_file, registry.add_validated

    def counting_validate(path):
        calls["validated"].append(Path(path).name)
        return validate(path)

    def counting_add(validated, source, **kwargs):
        calls["added"].append(source)
        return add(validated, source, **kwargs)

    monkeypatch.setattr(registry, "validate_checkpoint_file", counting_validate)
    monkeypatch.setattr(registry, "add_validated", counting_add)
    return calls


def test_admin_upload_and_sync_register_the_same_way(admin, site_dirs, settings, counted):
    settings.BASE_DIR = site_dirs  # the models folder lies inside the project: paths are stored relative to it
    uploaded = small_checkpoint(site_dirs / "upload_me.pt", sequence_length=10)
    assert add_checkpoint(admin, uploaded.read_bytes(), name="My model.pt").status_code == 302
    small_checkpoint(Path(settings.MODELS_DIR) / "twenty.pt", sequence_length=20)
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    entries = {entry.source: entry for entry in Checkpoint.objects.all()}
    assert set(entries) == {"upload", "models_dir"}
    assert entries["upload"].path == "models/My_model.pt" and entries["models_dir"].path == "models/twenty.pt"
    assert all(entry.file_path.is_file() for entry in entries.values())
    assert counted["added"] == ["upload", "models_dir"], "both went through registry.add_validated"
    upload, *others = counted["validated"]
    assert upload.startswith(".upload-") and others == ["twenty.pt"], "each validated once, the upload not by sync"


def test_a_duplicate_is_refused_by_the_admin_and_by_sync(admin, site_dirs, settings, counted):
    content = small_checkpoint(site_dirs / "original.pt", sequence_length=10).read_bytes()
    assert add_checkpoint(admin, content, name="original.pt").status_code == 302
    (Path(settings.MODELS_DIR) / "copy_of_original.pt").write_bytes(content)
    out = StringIO()
    call_command("sync_checkpoints", stdout=out, stderr=StringIO())
    assert Checkpoint.objects.count() == 1 and "registered: original" in out.getvalue()
    response = add_checkpoint(admin, content, name="again.pt")
    assert "already registered as &#x27;original (10 frames)&#x27;" in response.content.decode()
    assert Checkpoint.objects.count() == 1
    assert len(counted["validated"]) == 1, "known files are recognised by their sha256, not validated again"
    assert counted["added"] == ["upload"]
    folder = Path(settings.MODELS_DIR)
    assert not list(folder.glob(".upload-*")) and not (folder / "again.pt").exists(), "nothing left of the refused one"


def test_sync_validates_each_file_at_most_once_and_known_files_not_at_all(site_dirs, settings, tmp_path, counted):
    folder = Path(settings.MODELS_DIR)
    mapped = small_checkpoint(folder / "mapped_20.pt", sequence_length=20)  # in MODEL_MAPPING and in the folder
    small_checkpoint(folder / "ten.pt", sequence_length=10)
    (folder / "ten_copy.pt").write_bytes((folder / "ten.pt").read_bytes())
    elsewhere = small_checkpoint(tmp_path / "forty.pt", sequence_length=40)
    (folder / "broken.pt").write_text("<html>404</html>")
    settings.MODEL_MAPPING = {20: str(mapped), 40: str(elsewhere)}
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    validated = counted["validated"]
    assert len(validated) == 3 and {"forty.pt", "mapped_20.pt"} < set(validated), validated
    assert len({"ten.pt", "ten_copy.pt"} & set(validated)) == 1, "two files with one sha256: validated once"
    assert Checkpoint.objects.count() == 3
    counted["validated"].clear()
    out = StringIO()
    call_command("sync_checkpoints", stdout=out, stderr=StringIO())  # what every run.sh start does
    assert counted["validated"] == [], "every file's sha256 is registered: nothing is loaded or built"
    assert out.getvalue().count("registered: ") == 4, out.getvalue()  # ten.pt and its copy are the same entry
    assert Checkpoint.objects.count() == 3


def test_a_checkpoint_page_shows_its_settings_as_tables_and_accuracy_as_a_percentage(admin, active_checkpoint):
    from ml_app.admin_tables import settings_table

    active_checkpoint.accuracy = 0.6176470588235294
    active_checkpoint.metrics = {**active_checkpoint.metrics, "accuracy": 0.6176470588235294, "scores": list(range(50))}
    active_checkpoint.save()
    page = admin.get(f"/admin/ml_app/checkpoint/{active_checkpoint.pk}/change/").content.decode()
    assert "61.8%" in page and "0.6176470588235294" not in page
    assert 'class="settings-table"' in page and "<pre>{" not in page, "tables, not raw JSON"
    assert "… and 42 more (50 in all)" in page, "a long list is counted, not printed"
    nested = str(settings_table({"calibration": {"method": "platt", "ece": 0.01234567, "<b>": "<i>"}}))
    assert "<table" in nested.split("platt", maxsplit=1)[0] and "0.01235" in nested and "&lt;i&gt;" in nested
