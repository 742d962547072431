"""What a training run prepares from its clips before the first epoch: the decoded-crop caches of their folders and
the degradation that makes its photo faces look like its video faces."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .crop_cache import CACHE_DIR, build_crop_cache, clip_files
from .dataset import ClipItem
from .degrade import DegradeSettings, video_face_sizes
from .manifest import Manifest

# A cache is made only where it leaves this much of the disk free (it is a copy of the decoded crops).
CACHE_FREE_MARGIN = 2 << 30


def _clip_folder(path: Path) -> Path:
    """The preprocessing folder a clip file belongs to (``<folder>/clips/<video>/<file>.npz``)."""
    return Path(os.path.normpath(path)).parent.parent.parent


def cache_crops(items: Sequence[ClipItem], manifest: Manifest, say: Callable[[str], None]) -> None:
    """Build (or find up to date) the crop cache of every preprocessing folder the items' clips live in. A folder
    whose decoded crops would not fit on the disk is left uncached, with a note: it trains, only more slowly."""
    folders = sorted({_clip_folder(manifest.clip_path(item.clip)) for item in items})
    for folder in folders:
        files = clip_files(folder)
        if not files:
            continue
        cache = folder / CACHE_DIR
        needed = _decoded_bytes(files)
        free = shutil.disk_usage(folder).free
        if not (cache / "crops.npy").is_file() and needed + CACHE_FREE_MARGIN > free:
            say(
                f"note: not caching the decoded crops of '{folder}' ({needed / 1e9:.1f} GB would leave less than "
                f"{CACHE_FREE_MARGIN / 1e9:.0f} GB free); clips are decompressed every epoch instead."
            )
            continue
        build_crop_cache(folder, say)


def _decoded_bytes(files: list[Path]) -> int:
    """An estimate of the decoded size: the first file's frames times the number of files."""
    from .crop_cache import _crops_shape

    shape = _crops_shape(files[0])
    return int(np.prod(shape)) * len(files)


def degrade_settings(
    config: TrainConfig, manifest: Manifest, train_items: Sequence[ClipItem], say: Callable[[str], None]
) -> DegradeSettings | None:
    """How this run's photo faces are degraded: to the face sizes of its own training videos (the boxes the
    preprocessing stored with each clip), at the crop margin of its preprocessing. None when it has no photo
    faces or ``--no-degrade-photos``."""
    if not config.degrade_photos or not any(item.photo for item in train_items):
        return None
    videos = [item for item in train_items if not item.photo and not item.synthetic]
    boxes = []
    for item in videos:
        with np.load(manifest.clip_path(item.clip)) as data:
            if "boxes" in data.files:  # clip files written by preprocessing have them
                boxes.append(data["boxes"])
    sizes = video_face_sizes(boxes)
    settings = DegradeSettings(face_sizes=sizes, margin=manifest.preprocessing.margin)
    quantiles = settings.to_dict()["face_sizes"]["quantiles"]
    say(
        f"Photo faces are degraded like video faces: brought to the face widths of {len(boxes)} training clips "
        f"(median {quantiles['0.5']:.0f} px, 10-90 % {quantiles['0.1']:.0f}-{quantiles['0.9']:.0f} px), blurred "
        f"and noised now and then, H.264 at CRF {settings.crf[0]}-{settings.crf[1]}."
    )
    return settings
