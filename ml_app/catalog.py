"""The checkpoint catalogue, ``models/catalog.json``: what can be installed with ``manage.py install_checkpoint``
(name, file, sha256, size, frames, backbone, data, figures, licence, URL where one exists).

Its first entries are the shipped default files, written from the files themselves by :func:`shipped_entries`
(``manage.py install_checkpoint --write-catalog`` rewrites them and keeps every other entry), so the catalogue
cannot drift from what is shipped: a test compares the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .detection.defaults import SHIPPED_LENGTHS, SHIPPED_PHOTO_FILE, shipped_file
from .detection.files import atomic_write_text

FORMAT_VERSION = 1
SHIPPED_LICENCE = (
    "this project's licence; the backbone's pretrained ImageNet weights and the training data keep their own terms "
    "(models/README.md)"
)


def catalog_path(project: Path) -> Path:
    return project / "models" / "catalog.json"


def shipped_files(project: Path) -> list[Path]:
    """The default files shipped in models/, in the catalogue's order: the video lengths, then the photo model."""
    return [project / shipped_file(length) for length in SHIPPED_LENGTHS] + [project / SHIPPED_PHOTO_FILE]


def entry_for(path: Path, url: str = "") -> dict[str, Any]:
    """A catalogue entry read from a checkpoint file (safe load; no network built)."""
    from .detection.checkpoints import read_checkpoint_file

    payload, digest = read_checkpoint_file(path)
    metrics = payload.get("metrics") or {}
    training = payload.get("training") or {}
    return {
        "name": path.stem,
        "file": path.name,
        "sha256": digest,
        "size": path.stat().st_size,
        "frames": int(payload["sequence_length"]),
        "backbone": str((payload.get("architecture") or {}).get("backbone", "")),
        "data": ", ".join(map(str, training.get("datasets") or [])) or "not recorded in the file",
        "figures": {key: metrics[key] for key in ("accuracy", "auc", "eer", "accuracy_source") if key in metrics},
        "licence": SHIPPED_LICENCE,
        "url": url or None,
    }


def shipped_entries(project: Path) -> list[dict[str, Any]]:
    return [entry_for(path) for path in shipped_files(project) if path.is_file()]


def read_catalog(project: Path) -> list[dict[str, Any]]:
    path = catalog_path(project)
    if not path.is_file():
        return []
    return list(json.loads(path.read_text())["checkpoints"])


def write_catalog(project: Path) -> list[dict[str, Any]]:
    """Rewrite the shipped entries from the shipped files, keeping every other entry after them."""
    shipped = shipped_entries(project)
    names = {entry["name"] for entry in shipped}
    others = [entry for entry in read_catalog(project) if entry["name"] not in names]
    entries = shipped + others
    text = json.dumps({"format_version": FORMAT_VERSION, "checkpoints": entries}, indent=2) + "\n"
    atomic_write_text(catalog_path(project), text)
    return entries


def find(project: Path, name: str) -> dict[str, Any] | None:
    return next((entry for entry in read_catalog(project) if entry["name"] == name), None)
