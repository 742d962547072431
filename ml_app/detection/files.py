"""Files without torch: the one atomic-write helper of the project, and the sha256 that identifies a file.

Checkpoints, training states, manifests, per-video records and ONNX exports are all written through
:func:`atomic_write`: the content goes to a temporary file in the target's folder (the same file system, so the
final rename is atomic), which replaces the target only once the writer has returned. A writer that raises leaves
the old file, if any, as it was, and no temporary file behind. The file gets the permissions a plain ``open`` would
give it (``0o666`` less the umask), not the temporary file's private ``0o600``: a checkpoint that the build installs
is read by the web server's and the worker's users too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def plain_file_mode() -> int:
    """The permissions ``open`` gives a new file: ``0o666`` less the process's umask. Files made through
    ``tempfile.mkstemp`` (private, ``0o600``) get them before they become what the project keeps."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``os.umask`` sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        os.chmod(temporary, plain_file_mode())
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
