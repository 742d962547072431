"""Reading settings from the environment, with types and defaults in one place."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


def env_probability(name: str) -> float | None:
    """A number between 0 and 1, or None when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number between 0 and 1, not {raw!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise ImproperlyConfigured(f"{name} must be between 0 and 1, not {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_json(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be JSON: {exc}") from exc


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


def secret_key(state_dir: Path) -> str:
    """DJANGO_SECRET_KEY, or a random key kept in the state folder so sessions survive restarts on one machine.

    Several processes may start at once on an empty folder (run.sh runs collectstatic beside migrate): each writes
    its candidate whole into a temporary file and links it into place, which succeeds for one of them only; every
    other process reads the key the winner linked. A reader never sees a partly written key.
    """
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    path = state_dir / "secret_key"
    existing = _read_key(path)
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    candidate = secrets.token_urlsafe(50)
    descriptor, temporary = tempfile.mkstemp(prefix=".secret_key-", dir=state_dir)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(candidate)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process linked its key first: that one counts
            os.link(temporary, path)  # atomic: the name appears with the whole key in it, or not at all
    finally:
        os.unlink(temporary)
    winner = _read_key(path)
    if not winner:
        raise ImproperlyConfigured(f"The secret key file in the state folder is empty: {path.name}")
    return winner


def _read_key(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
