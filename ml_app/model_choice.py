"""Which checkpoint (or ensemble) analyses an upload, and the checks of the file that go with that choice: a video
needs an active checkpoint for its sequence length (or an active ensemble) and frames enough for its windows; a photo
needs the active frame model. ml_app.submissions calls ``validate``; each refusal is an UploadRejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from .detection.defaults import FRAME_MODEL_LENGTH
from .detection.files import combined_sha256 as ensemble_identity
from .models import Checkpoint, Ensemble
from .registry import active_checkpoints, active_ensembles
from .uploads import HashedUpload, UploadRejected, ValidatedUpload, is_photo, validate_photo, validate_video


@dataclass(frozen=True)
class ModelChoice:
    """What an upload is analysed with: one checkpoint, or an ensemble whose first member stands as the checkpoint;
    ``identity`` is the sha256 the analysis records (a checkpoint's own, or the members' together)."""

    checkpoint: Checkpoint
    ensemble: Ensemble | None = None
    members: tuple[Checkpoint, ...] = ()

    @property
    def identity(self) -> str:
        return ensemble_identity([m.sha256 for m in self.members]) if self.ensemble else self.checkpoint.sha256


def validate(upload: HashedUpload, length: int, ensemble: str = "") -> tuple[ValidatedUpload, ModelChoice]:
    """An active checkpoint for ``length`` (or the active ensemble named), and a video that suits it."""
    checkpoints = active_checkpoints()
    if not checkpoints:
        raise UploadRejected(
            "no_checkpoint",
            "No checkpoint is active, so nothing can be analysed yet. An administrator must register one in the "
            "admin (or run manage.py sync_checkpoints).",
            status=503,
            field=None,
        )
    if is_photo(upload.name):
        return _validate_photo(upload, checkpoints, ensemble)
    if ensemble:
        return _validate_ensemble(upload, ensemble)
    if length not in checkpoints:
        offered = ", ".join(str(n) for n in checkpoints)
        raise UploadRejected(
            "unknown_sequence_length",
            f"There is no active checkpoint for {length}-frame windows; choose one of: {offered}.",
            field="sequence_length",
        )
    return validate_video(upload, length), ModelChoice(checkpoints[length])


def _validate_photo(
    upload: HashedUpload, checkpoints: dict[int, Checkpoint], ensemble: str
) -> tuple[ValidatedUpload, ModelChoice]:
    """A photo is scored by the active frame model (sequence length 1), whatever sequence length the form says."""
    if ensemble:
        raise UploadRejected(
            "ensemble_for_photo",
            "Ensembles analyse videos; a photo is scored by the frame model. Leave the ensemble empty.",
            field="ensemble",
        )
    frame_model = checkpoints.get(FRAME_MODEL_LENGTH)
    if frame_model is None:
        raise UploadRejected(
            "no_photo_model",
            "No frame model is active, so photos cannot be analysed here yet. An administrator must register one "
            "(sequence length 1, e.g. models/default_photo_efficientnet_lite0.pt) in the admin.",
            status=503,
            field=None,
        )
    return validate_photo(upload), ModelChoice(frame_model)


def _validate_ensemble(upload: HashedUpload, name: str) -> tuple[ValidatedUpload, ModelChoice]:
    ensembles = active_ensembles()
    if name not in ensembles:
        shown = "".join(ch for ch in name[:40] if ch.isprintable())
        offered = ", ".join(ensembles) or "none is configured"
        raise UploadRejected(
            "unknown_ensemble", f"There is no active ensemble '{shown}'; choose one of: {offered}.", field="ensemble"
        )
    members = ensembles[name]
    shortest = min(member.sequence_length for member in members)
    entry = Ensemble.objects.get(name=name)
    return validate_video(upload, shortest), ModelChoice(members[0], entry, tuple(members))
