"""The ``dfdc`` layout: DFDC parts, each a folder of videos with a ``metadata.json``; a video's group is its original
video's name (a real video is its own original).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..labels import parse_label
from .common import LayoutError, VideoEntry, relative, split_name


def dfdc_layout(root: Path, dataset: str = "dfdc") -> list[VideoEntry]:
    """DFDC parts, each a folder with its videos and a metadata.json ``{name: {label, split, original}}``."""
    metadata_files = sorted(root.rglob("metadata.json"))
    if not metadata_files:
        raise LayoutError(f"'{root}' holds no metadata.json (the 'dfdc' layout reads one per part).")
    entries = []
    for metadata_path in metadata_files:
        try:
            metadata = json.loads(metadata_path.read_text())
            items = sorted(metadata.items())
        except (ValueError, AttributeError) as exc:
            raise LayoutError(f"'{metadata_path}' is not DFDC metadata (a JSON object per video): {exc}.") from exc
        for name, info in items:
            label = parse_label(str((info or {}).get("label", "")), "FAKE")
            if label is None:
                raise LayoutError(f"'{metadata_path}': video '{name}' has no REAL/FAKE label.")
            original = str(info.get("original") or "") if label == "FAKE" else ""
            path = metadata_path.parent / name
            group = Path(original or name).stem
            split = split_name(str(info.get("split") or ""))
            entries.append(
                VideoEntry(path, relative(path, root), label, dataset, f"{dataset}:{group}", split, "", original)
            )
    return entries
