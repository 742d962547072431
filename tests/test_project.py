"""Project-level promises: settings from the environment, a Django-free detection core, a clean lint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def settings_in_fresh_process(env: dict[str, str]) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "db = settings.DATABASES['default'];"
        "print(json.dumps({'debug': settings.DEBUG, 'engine': db['ENGINE'], 'name': str(db['NAME']),"
        "'hosts': settings.ALLOWED_HOSTS, 'media': str(settings.MEDIA_ROOT), 'mapping': settings.MODEL_MAPPING,"
        "'key': settings.SECRET_KEY}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "MEDIA_", "MODEL_"))}
    clean.update(DJANGO_SETTINGS_MODULE="project_settings.settings", **env)
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout)


def test_defaults_need_no_server_and_keep_debug_off(tmp_path):
    values = settings_in_fresh_process({"STATE_DIR": str(tmp_path)})
    assert values["debug"] is False
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "db.sqlite3")
    assert values["media"] == str(tmp_path / "media")
    assert "localhost" in values["hosts"]
    assert len(values["key"]) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0, "the generated key is private to its owner"
    again = settings_in_fresh_process({"STATE_DIR": str(tmp_path)})
    assert again["key"] == values["key"], "the generated key survives restarts"


def test_environment_overrides(tmp_path):
    values = settings_in_fresh_process(
        {
            "STATE_DIR": str(tmp_path),
            "DJANGO_DEBUG": "true",
            "DJANGO_SECRET_KEY": "k" * 50,
            "DJANGO_ALLOWED_HOSTS": "detector.example.org, localhost",
            "DATABASE_URL": "postgres://user@db.example.org:5432/detector",
            "MEDIA_ROOT": str(tmp_path / "uploads"),
            "MODEL_MAPPING": '{"20": "models/x.pt"}',
        }
    )
    assert values["debug"] is True and values["key"] == "k" * 50
    assert values["hosts"] == ["detector.example.org", "localhost"]
    assert values["engine"] == "django.db.backends.postgresql" and values["name"] == "detector"
    assert values["media"] == str(tmp_path / "uploads")
    assert values["mapping"] == {"20": "models/x.pt"}


def test_default_mapping_names_the_shipped_models_and_the_environment_replaces_it(tmp_path):
    shipped = sorted(path.name for path in (REPO / "models").glob("default_*.pt"))
    assert len(shipped) == 4, "the default model (10, 20 and 40 frames) and the photo model ship in models/"
    values = settings_in_fresh_process({"STATE_DIR": str(tmp_path)})
    assert sorted(Path(path).name for path in values["mapping"].values()) == shipped
    assert Path(values["mapping"]["1"]).name == "default_photo_efficientnet_lite0.pt", "the photo model under 1"
    assert all((REPO / path).is_file() for path in values["mapping"].values())
    assert settings_in_fresh_process({"STATE_DIR": str(tmp_path), "MODEL_MAPPING": ""})["mapping"] == {}


def test_bad_setting_is_a_clear_error(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as caught:
        settings_in_fresh_process({"STATE_DIR": str(tmp_path), "DJANGO_DEBUG": "maybe"})
    assert "DJANGO_DEBUG must be true or false" in caught.value.stderr


def test_detection_core_imports_no_django():
    code = (
        "import sys, importlib, pkgutil, ml_app.detection as core\n"
        "for module in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module(f'ml_app.detection.{module.name}')\n"
        "leaked = sorted(name for name in sys.modules if name == 'django' or name.startswith('django.'))\n"
        "print(','.join(leaked))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == ""


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is part of requirements-dev.txt")
    result = subprocess.run([ruff, "check", "."], check=False, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_settings_do_not_import_training_code_and_setup_imports_no_torch(tmp_path):
    """Settings read the shipped file names from the detection core's defaults, not from model_creation.training;
    django.setup() (admin included, so the registry too) stays free of torch, which keeps migrate, collectstatic and
    each run.sh start quick. (INSTALLED_APPS imports the app package model_creation itself, never its training.)"""
    code = (
        "import os, sys, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'project_settings.settings')\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "print(sorted(m for m in sys.modules if m.startswith('model_creation.training')))\n"
        "print('torch' in sys.modules, 'ml_app.registry' in sys.modules, settings.DEFAULT_MODEL_MAPPING)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MODEL_"))}
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, "STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    training, line = output.stdout.strip().splitlines()
    assert training == "[]", f"settings imported {training}"
    assert line.startswith("False True {10: 'models/default_mobilenet_v2_10_frames.pt'"), line


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "MEDIA_", "MODEL_"))}
    production = {
        "DJANGO_ALLOWED_HOSTS": "detector.example.org",
        "DJANGO_HTTPS": "true",
        "DJANGO_BEHIND_PROXY": "true",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://detector.example.org",
        "STATE_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env={**clean, **production, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_passes_with_the_production_settings_and_fails_on_the_development_key(tmp_path):
    key = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    passed = check_deploy(tmp_path, DJANGO_SECRET_KEY=key)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    generated = check_deploy(tmp_path)
    assert generated.returncode != 0
    assert "ml_app.E001" in generated.stderr and "DJANGO_SECRET_KEY is not set" in generated.stderr
    assert str(tmp_path / "secret_key") in generated.stderr, "it says which key is in use"
