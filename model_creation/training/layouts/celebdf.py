"""The ``celebdf`` layout: Celeb-DF v1 or v2 (Celeb-real, YouTube-real, Celeb-synthesis), with
List_of_testing_videos.txt as the official test split. A video's group is the identity whose video it is (``id0`` for
``id0_0000`` and for the fake ``id0_id16_0000``).
"""

from __future__ import annotations

from pathlib import Path

from .common import LayoutError, VideoEntry, relative, videos_under

_CELEB_FOLDERS = {"Celeb-real": "REAL", "YouTube-real": "REAL", "Celeb-synthesis": "FAKE"}


def celebdf_layout(root: Path, dataset: str = "celebdf") -> list[VideoEntry]:
    """Celeb-DF (v1 or v2); List_of_testing_videos.txt, when present, marks the official test videos."""
    present = [name for name in _CELEB_FOLDERS if (root / name).is_dir()]
    if not present:
        raise LayoutError(f"'{root}' has none of {', '.join(_CELEB_FOLDERS)} (the 'celebdf' layout).")
    testing: set[str] = set()
    test_list = root / "List_of_testing_videos.txt"
    if test_list.is_file():
        for line in test_list.read_text().splitlines():
            # "1 YouTube-real/00000.mp4": its 1 = real, 0 = fake column is Celeb-DF's own; the folders give the
            # labels, so only the path is read and --one-means never applies here.
            fields = line.split()
            if len(fields) >= 2:
                testing.add(Path(fields[-1]).as_posix())
    entries = []
    for folder in present:
        label = _CELEB_FOLDERS[folder]
        for path in videos_under(root / folder):
            relpath = relative(path, root)
            parts = path.stem.split("_")
            if folder == "YouTube-real":
                group, original = f"youtube{path.stem}", ""
            else:
                group = parts[0]  # the identity whose video this is
                original = f"Celeb-real/{parts[0]}_{parts[-1]}.mp4" if label == "FAKE" and len(parts) >= 3 else ""
            split = ("test" if relpath in testing else "train") if testing else ""
            method = "celeb-synthesis" if label == "FAKE" else ""
            entries.append(VideoEntry(path, relpath, label, dataset, f"{dataset}:{group}", split, method, original))
    if not entries:
        raise LayoutError(f"'{root}' has Celeb-DF folders but no videos in them.")
    return entries
