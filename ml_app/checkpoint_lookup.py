"""Which checkpoint analyses N frames: the one decision, for the command line (the site reads the registry's active
checkpoints directly, through ``registry.active_checkpoints``, and so agrees with it).

With a database that holds the checkpoint registry, its active checkpoint for the length decides. Without one (a
fresh clone before ``migrate``, or a length the registry has nothing active for), MODEL_MAPPING decides, and then the
best file in the models folder (the preference order of ``detection.model_mapping``).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

from .detection.errors import NoCheckpointForLength
from .detection.model_mapping import CheckpointChoice, choose_from_mapping, effective_mapping, for_length
from .models import Checkpoint


def _database_file_missing() -> bool:
    """True for an SQLite database whose file does not exist yet: looking would only create an empty one."""
    database = connections["default"].settings_dict
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return False
    name = str(database.get("NAME") or "")
    if connections["default"].is_in_memory_db() or name.startswith("file:"):
        return False
    return not Path(name).is_file()


def _from_registry(sequence_length: int) -> tuple[CheckpointChoice | None, str]:
    """The registry's active checkpoint for the length, or None and why the registry did not decide."""
    if _database_file_missing():
        return None, "no database yet, so no registry (manage.py migrate makes one)"
    try:
        entry = Checkpoint.objects.filter(sequence_length=sequence_length, is_active=True).first()
    except DatabaseError:  # no such table (not migrated), or no database server to ask
        return None, "the database has no checkpoint registry (manage.py migrate makes one)"
    if entry is None:
        return None, f"nothing active {for_length(sequence_length)} in the registry"
    if not entry.file_path.is_file():
        return None, f"the registry's active checkpoint {for_length(sequence_length)}, '{entry.name}', has no file"
    return CheckpointChoice(entry.file_path, "registry", f"active in the registry {for_length(sequence_length)}"), ""


def choose_checkpoint(sequence_length: int) -> CheckpointChoice:
    """The checkpoint that analyses ``sequence_length``-frame windows, where the choice came from and why.

    Raises NoCheckpointForLength saying how to get one.
    """
    choice, why_not_registry = _from_registry(sequence_length)
    if choice is not None:
        return choice
    mapping = settings.MODEL_MAPPING
    default = mapping == getattr(settings, "DEFAULT_MODEL_MAPPING", None)
    try:
        path, source, reason = choose_from_mapping(
            sequence_length,
            mapping,
            settings.MODELS_DIR,
            settings.BASE_DIR,
            mapping_name="the default MODEL_MAPPING (the shipped default model)" if default else "MODEL_MAPPING",
        )
    except NoCheckpointForLength as exc:
        raise NoCheckpointForLength(f"{exc.message} Registry: {why_not_registry}.") from exc
    return CheckpointChoice(path, source, f"{reason}; {why_not_registry}")


def available_checkpoints() -> dict[int, Path]:
    """Every sequence length that has a checkpoint, from MODEL_MAPPING and the models folder."""
    return effective_mapping(settings.MODEL_MAPPING, settings.MODELS_DIR, settings.BASE_DIR)


def choose_ensemble(name: str) -> list[CheckpointChoice]:
    """The member files of ensemble ``name``: the registry's active ensemble of that name when there is a registry,
    else MODEL_MAPPING's (each length through ``choose_checkpoint``). Raises NoCheckpointForLength saying what exists.
    """
    registered = _registry_ensemble(name)
    if registered is not None:
        return registered
    members = settings.MODEL_ENSEMBLES.get(name)
    if not members:
        known = ", ".join(sorted(settings.MODEL_ENSEMBLES)) or "none"
        raise NoCheckpointForLength(f"No ensemble named '{name}' (MODEL_MAPPING names: {known}).")
    choices = []
    for member in members:
        if isinstance(member, int):
            choices.append(choose_checkpoint(member))
            continue
        path = Path(member) if Path(member).is_absolute() else Path(settings.BASE_DIR) / member
        if not path.is_file():
            raise NoCheckpointForLength(f"Ensemble '{name}' names '{path}', which does not exist.")
        choices.append(CheckpointChoice(path, "mapping", f"member of ensemble '{name}' in MODEL_MAPPING"))
    return choices


def _registry_ensemble(name: str) -> list[CheckpointChoice] | None:
    from .models import Ensemble

    if _database_file_missing():
        return None
    try:
        entry = Ensemble.objects.filter(name=name, is_active=True).first()
    except DatabaseError:
        return None
    if entry is None:
        return None
    return [
        CheckpointChoice(member.file_path, "registry", f"member of the registry's ensemble '{name}'")
        for member in entry.current_members()
    ]
