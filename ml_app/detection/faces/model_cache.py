"""Derived detector files kept between processes, so that a cold analysis does not rebuild them.

dlib's HOG detector (rebuilt from a string inside dlib: seconds) and CenterFace's graph with its shapes freed (which
needs the ``onnx`` package: half a second of imports) are each made once and saved here. A cached file is used only
if the sha256 of its bytes still matches the digest in its name, so a damaged or edited cache is rebuilt and can
never change a detection; where the folder cannot be written every process builds its own and nothing else changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where derived model files are kept: ``$DETECTOR_CACHE_DIR``, else ``~/.cache``'s ``deepfake-detector``."""
    configured = os.environ.get("DETECTOR_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepfake-detector"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cached_file(stem: str, suffix: str, write: Callable[[Path], object]) -> Path | None:
    """A verified cached file named ``<stem>-<digest><suffix>``, made by ``write(path)`` when there is none.

    ``stem`` must say everything the content depends on (a library's version, the source file's digest). Returns
    None when nothing could be cached (read-only home); the caller then builds the thing itself.
    """
    folder = cache_dir()
    for path in sorted(folder.glob(f"{stem}-*{suffix}")) if folder.is_dir() else []:
        try:
            if _digest(path) == path.name.removesuffix(suffix).rsplit("-", 1)[1]:
                return path
        except OSError as exc:
            log.debug("Ignoring the cached file %s: %s", path, exc)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
        os.close(handle)
        try:
            write(Path(temporary))
            target = folder / f"{stem}-{_digest(Path(temporary))}{suffix}"
            os.replace(temporary, target)
            return target
        finally:
            Path(temporary).unlink(missing_ok=True)
    except (OSError, RuntimeError) as exc:  # dlib reports a failed save as RuntimeError
        log.debug("Could not cache %s in %s: %s", stem, folder, exc)
        return None
