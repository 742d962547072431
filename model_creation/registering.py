"""Putting a trained checkpoint where the site finds it: copied into the models folder and added to the registry
(one file, or the folds of a cross-validation with their ensemble); ``train_model --register`` calls it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from model_creation.training.options import one_line


def register_checkpoint(path: Path, name: str, activate: bool = False) -> tuple[Path, str]:
    """Make a trained checkpoint available to the app: copied into MODELS_DIR (where the command line finds it by
    its length) and added to the site's registry (validated, as an admin upload would be).

    Returns the copy and a note on the registry entry.
    """
    from ml_app.detection.errors import DetectionError
    from ml_app.models import Checkpoint
    from ml_app.registry import register

    target = Path(settings.MODELS_DIR) / f"{name}.pt"
    if target.exists():
        raise CommandError(f"'{target}' exists already; choose another --name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    try:
        entry = register(target, Checkpoint.Source.TRAINING, activate=activate)
    except DetectionError as exc:
        return target, f"not in the site's registry: {one_line(exc.message)}"
    state = "active" if entry.is_active else "registered, not active: activate it in the admin"
    return target, f"registry entry '{entry.name}', {entry.sequence_length} frames, {state}"


def register_folds(results: list, run_name: str, ensemble: str, activate: bool, say) -> dict[str, Any]:
    """Each fold's best.pt registered (as ENSEMBLE_fold_k, or NAME_fold_k without one) and, with an ensemble name
    and at least two of them in the site's registry, the site's ensemble of them; what was registered."""
    from ml_app.models import Ensemble
    from ml_app.registry import registered_file

    copies, entries = [], []
    for number, result in enumerate(results, start=1):
        if result.best_path is not None:
            target, note = register_checkpoint(result.best_path, f"{ensemble or run_name}_fold_{number}", activate)
            say(f"Registered: {target} ({note})")
            copies.append(str(target))
            entries.append(registered_file(target))
    members = [entry for entry in entries if entry is not None]
    if ensemble and len(members) < 2:
        say(f"warning: ensemble '{ensemble}' is not in the site's registry (fewer than two members are there).")
    elif ensemble:
        entry, _ = Ensemble.objects.update_or_create(name=ensemble, defaults={"notes": "train_model --folds"})
        entry.members.set(members)
        say(f"Registered ensemble '{ensemble}' of {len(members)} checkpoints.")
    return {"copies": copies, "ensemble": ensemble if ensemble and len(members) >= 2 else None}
