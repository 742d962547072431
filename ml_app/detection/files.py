"""Files without torch: the one atomic-write helper of the project, and the sha256 that identifies a file.

Checkpoints, training states, manifests, per-video records and ONNX exports are all written through
:func:`atomic_write`: the content goes to a temporary file in the target's folder (the same file system, so the
final rename is atomic), which replaces the target only once the writer has returned. A writer that raises leaves
the old file, if any, as it was, and no temporary file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` to fill a temporary file beside ``path``, then move it onto ``path``.

    The temporary file exists (empty) when ``write`` is called and keeps ``path``'s suffix, for writers that look
    at it. Returns ``path`` as a Path. The folder must exist.
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, newline: str | None = None) -> Path:
    """:func:`atomic_write` of a text file (UTF-8)."""

    def write(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)

    return atomic_write(path, write)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's sha256: how the registry and the analyses identify a checkpoint (cheap next to loading it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def combined_sha256(digests: list[str]) -> str:
    """One sha256 for a set of files' sha256s, whatever their order: an ensemble's identity (the same video with the
    same members reuses its result; a changed member is noticed)."""
    return hashlib.sha256(("ensemble:" + ",".join(sorted(digests))).encode()).hexdigest()
