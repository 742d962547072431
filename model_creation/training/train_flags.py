"""``train_model``'s flags for the schedule, optimiser, stopping and cross-validation, with their checks.

Like every ``train_model`` flag each is None unless given (so a resumed run can tell what changed); defaults and
choices are :class:`~.config.TrainConfig`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .config import MONITOR_CHOICES, OPTIMIZER_CHOICES, SCHEDULER_CHOICES, TrainError

# Flags that only one scheduler reads: given with another, they are refused rather than silently ignored.
SCHEDULER_FLAGS = {"t0": "cosine-restarts", "t_mult": "cosine-restarts", "step_size": "step", "gamma": "step"}


def add_schedule_flags(group: Any, default: Callable[[str], str]) -> None:
    """--scheduler, its settings, --optimizer, --monitor and --min-delta, into an argparse group."""
    group.add_argument(
        "--scheduler",
        choices=SCHEDULER_CHOICES,
        help="after the warm-up: cosine decay, cosine with warm restarts, step decay or none (constant) "
        f"(default {default('scheduler')})",
    )
    group.add_argument("--t0", type=int, help=f"cosine-restarts: epochs of the first cycle (default {default('t0')})")
    group.add_argument(
        "--t-mult", type=int, help=f"cosine-restarts: growth of each next cycle (default {default('t_mult')})"
    )
    group.add_argument("--step-size", type=int, help=f"step: epochs between decays (default {default('step_size')})")
    group.add_argument("--gamma", type=float, help=f"step: factor of each decay (default {default('gamma')})")
    group.add_argument(
        "--optimizer",
        choices=OPTIMIZER_CHOICES,
        help=f"adamw, adam or sgd (momentum 0.9) (default {default('optimizer')})",
    )
    group.add_argument(
        "--monitor",
        choices=MONITOR_CHOICES,
        help="validation metric (clips) that picks best.pt and drives early stopping; loss is minimised "
        f"(default {default('monitor')})",
    )
    group.add_argument(
        "--min-delta",
        type=float,
        help=f"an epoch is better only when it improves the monitored metric by more than this "
        f"(default {default('min_delta')})",
    )


def add_photo_flags(group: Any, default: Callable[[str], str]) -> None:
    """--photos-per-epoch, --frames-per-clip, --no-degrade-photos and --no-cache-crops, into the data group."""
    group.add_argument(
        "--photos-per-epoch",
        type=int,
        metavar="N",
        help="draw N of the --extra-train photo faces afresh each epoch, each with its self-blended twin (every "
        f"video clip is in every epoch; default {default('photos_per_epoch')}: every photo face, every epoch)",
    )
    group.add_argument(
        "--frames-per-clip",
        type=int,
        metavar="K",
        help="a frame model trains on K frames of each video clip an epoch, one from each of K equal stretches of "
        f"the clip (photo faces have one; default {default('frames_per_clip')})",
    )
    group.add_argument(
        "--no-degrade-photos",
        action="store_true",
        default=None,
        help="do not degrade --extra-train photo faces like video faces (shrunk to the videos' face sizes, blurred, "
        "noised, H.264 at c23-c40 quality; both classes alike)",
    )
    group.add_argument(
        "--no-cache-crops",
        action="store_true",
        default=None,
        help="decompress the clip files every epoch instead of caching their decoded crops beside them once",
    )


def add_fold_flags(group: Any) -> None:
    group.add_argument(
        "--folds",
        type=int,
        help="cross-validation: K folds by group (the test split stays out), one run each in OUTPUT/fold_1 .. "
        "fold_K, the mean and standard deviation in OUTPUT/cross_validation.json",
    )
    group.add_argument(
        "--keep-ensemble",
        metavar="NAME",
        help="with --folds: the K best.pt files as ensemble NAME: the MODEL_MAPPING entry to use (printed and in "
        "cross_validation.json); with --register, also registered as the site's ensemble NAME",
    )


def check_flags(given: dict[str, Any], scheduler: str, options: dict[str, Any]) -> None:
    """Refuse settings that the chosen scheduler would ignore, and an ensemble without folds."""
    stray = sorted(key for key, owner in SCHEDULER_FLAGS.items() if key in given and owner != scheduler)
    if stray:
        flags = ", ".join("--" + key.replace("_", "-") for key in stray)
        owners = sorted({SCHEDULER_FLAGS[key] for key in stray})
        raise TrainError(f"{flags} apply to --scheduler {' / '.join(owners)} only, not to {scheduler}.")
    name = options.get("keep_ensemble")
    if name and not options.get("folds"):
        raise TrainError("--keep-ensemble needs --folds (it combines the folds' best.pt files).")
    if name and (not re.fullmatch(r"[-a-zA-Z0-9_]+", name) or name.isdigit()):
        raise TrainError(
            f"--keep-ensemble '{name}': an ensemble's name is letters, digits, - and _ (not a number alone, which "
            "MODEL_MAPPING reads as a sequence length)."
        )
