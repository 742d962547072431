"""The checkpoint registry, the analyses, and rejected uploads."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from .detection.stages import Stage


class Checkpoint(models.Model):
    """A checkpoint file the site may analyse with. One active checkpoint per sequence length.

    Fields other than ``path``, ``is_active`` and ``notes`` are read from the file when it is registered.
    """

    class Source(models.TextChoices):
        UPLOAD = "upload", "uploaded in the admin"
        MODELS_DIR = "models_dir", "found in the models folder"
        MAPPING = "mapping", "named in MODEL_MAPPING"
        TRAINING = "training", "registered by train_model"

    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000, help_text="absolute, or relative to the project folder")
    sha256 = models.CharField(max_length=64, unique=True)
    sequence_length = models.PositiveIntegerField(db_index=True)
    backbone = models.CharField(max_length=50)
    image_size = models.PositiveIntegerField()
    architecture = models.JSONField(default=dict)
    preprocessing = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    accuracy = models.FloatField(null=True, blank=True, help_text="reported accuracy, 0-1")
    untrained = models.BooleanField(default=False)
    size_bytes = models.BigIntegerField(default=0)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOAD)
    is_active = models.BooleanField(default=False, db_index=True)
    challenger_share = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="the challenger of its length: the percentage of analyses it also scores (0-100); empty if not",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sequence_length", "-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["sequence_length"], condition=Q(is_active=True), name="one_active_checkpoint_per_length"
            ),
            models.UniqueConstraint(
                fields=["sequence_length"],
                condition=Q(challenger_share__isnull=False),
                name="one_challenger_per_length",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sequence_length} frames)"

    @property
    def file_path(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else Path(settings.BASE_DIR) / path

    def clean(self) -> None:
        if self.is_active and self.challenger_share is not None:
            raise ValidationError(
                {"challenger_share": "This file is the active checkpoint (the champion); a challenger is another file."}
            )

    @property
    def accuracy_label(self) -> str:
        if self.untrained:
            return "untrained"
        return f"{self.accuracy:.1%} reported accuracy" if self.accuracy is not None else "accuracy not reported"


class Ensemble(models.Model):
    """Several checkpoints offered as one choice; their calibrated answers are averaged (detection.ensemble).

    Members are given by sequence length (whichever checkpoint is active for it at the time of the upload) and as
    particular files (three seeds of one length, say).
    """

    name = models.SlugField(max_length=100, unique=True)
    lengths = models.JSONField(default=list, blank=True, help_text="sequence lengths: their active checkpoints")
    members = models.ManyToManyField(Checkpoint, blank=True, related_name="ensembles", help_text="particular files")
    is_active = models.BooleanField(default=True, db_index=True)
    challenger_length = models.PositiveIntegerField(
        null=True, blank=True, help_text="challenges the active checkpoint of this length (with a challenger share)"
    )
    challenger_share = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="the percentage of that length's analyses it also scores (0-100); empty if not a challenger",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def current_members(self) -> list[Checkpoint]:
        """The checkpoints this ensemble combines now: the active one per length, then the particular files, each
        once, all with their file present."""
        chosen: list[Checkpoint] = []
        active = {c.sequence_length: c for c in Checkpoint.objects.filter(is_active=True)}
        for length in self.lengths or []:
            entry = active.get(int(length))
            if entry is not None and entry not in chosen:
                chosen.append(entry)
        for entry in self.members.order_by("sequence_length", "name"):
            if entry not in chosen:
                chosen.append(entry)
        return [entry for entry in chosen if entry.file_path.is_file()]


class Analysis(models.Model):
    """One uploaded video and its analysis. The UUID is the only way to reach it: there is no public list."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="analyses",
        help_text="the signed-in user or API caller who uploaded it; empty for anonymous uploads on the site",
    )
    max_windows = models.PositiveIntegerField(
        null=True, blank=True, help_text="windows spread over the video (Look closer); empty: DETECTION_MAX_WINDOWS"
    )
    private = models.BooleanField(
        default=False, help_text="its page, video, crops and report open only for its owner (PRIVATE_RESULTS: default)"
    )
    original_name = models.CharField(max_length=255, help_text="the uploader's file name, sanitised")
    video = models.CharField(max_length=500, help_text="path of the stored video, relative to MEDIA_ROOT")
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    sequence_length = models.PositiveIntegerField()
    checkpoint = models.ForeignKey(Checkpoint, null=True, on_delete=models.SET_NULL, related_name="analyses")
    checkpoint_sha256 = models.CharField(
        max_length=64, blank=True, help_text="kept if the checkpoint is deleted; for an ensemble, its members' identity"
    )
    ensemble = models.ForeignKey(Ensemble, null=True, blank=True, on_delete=models.SET_NULL, related_name="analyses")
    ensemble_name = models.CharField(max_length=100, blank=True, help_text="kept if the ensemble is deleted")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(
        max_length=40, choices=[(stage.value, stage.label) for stage in Stage], default=Stage.QUEUED.value
    )
    progress = models.FloatField(default=0.0, help_text="percent")
    heatmaps_progress = models.FloatField(
        null=True, blank=True, help_text="percent of the heat maps drawn, while they are drawn after the verdict"
    )
    verdict = models.CharField(max_length=12, blank=True, db_index=True)
    fake_probability = models.FloatField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    reused_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    source_url = models.CharField(max_length=2000, blank=True, help_text="the link it was fetched from, if any")
    final_url = models.CharField(max_length=2000, blank=True, help_text="the file's address after redirects")
    source_title = models.CharField(max_length=300, blank=True, help_text="the title of the page it was found on")
    fetched_at = models.DateTimeField(null=True, blank=True)
    fetched_bytes = models.BigIntegerField(default=0, help_text="bytes received so far while fetching")
    fetch_total_bytes = models.BigIntegerField(null=True, blank=True, help_text="as announced by the server")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "analyses"
        indexes = [models.Index(fields=["sha256", "checkpoint_sha256", "status"])]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    @property
    def media_dir(self) -> Path:
        """Everything stored for this analysis: the video and the face crops."""
        return Path(settings.MEDIA_ROOT) / "analyses" / str(self.id)

    @property
    def video_path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.video

    @property
    def crops_dir(self) -> Path:
        return self.media_dir / "crops"

    @property
    def media(self) -> str:
        """``image`` for a photo (stored as ``photo.<ext>``, scored by a frame model), else ``video``."""
        return "image" if Path(self.video).stem == "photo" else "video"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


@receiver(post_delete, sender=Analysis)
def _remove_media(sender, instance: Analysis, **kwargs) -> None:
    """The video and crops go with the record, whether deleted one by one or in bulk (admin)."""
    shutil.rmtree(instance.media_dir, ignore_errors=True)


class RejectedUpload(models.Model):
    """An upload refused by validation, kept so that refusals are on record (admin only)."""

    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    code = models.CharField(max_length=50)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name or 'upload'}: {self.code}"


class ChallengerResult(models.Model):
    """The challenger's answer for an analysis the champion answered: stored for comparison, never shown to users."""

    analysis = models.OneToOneField(Analysis, on_delete=models.CASCADE, related_name="challenger_result")
    checkpoint = models.ForeignKey(Checkpoint, null=True, on_delete=models.SET_NULL, related_name="challenges")
    champion_name = models.CharField(max_length=200)
    champion_sha256 = models.CharField(max_length=64, db_index=True)
    challenger_name = models.CharField(max_length=200)
    challenger_sha256 = models.CharField(max_length=64, db_index=True)
    verdict = models.CharField(max_length=12, blank=True)
    fake_probability = models.FloatField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="the challenger's analysis time")
    champion_seconds = models.FloatField(null=True, blank=True, help_text="the champion's analysis time")
    agrees = models.BooleanField(null=True, help_text="same verdict as the champion; empty if the challenger failed")
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.challenger_name} vs {self.champion_name}"


class WorkerHeartbeat(models.Model):
    """A worker process that reported recently (readiness and metrics read these; the worker's watchdog writes)."""

    name = models.CharField(max_length=200, unique=True)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.name


class ServiceCounter(models.Model):
    """A count of events that leave no other row behind (requests for a host this site does not serve), shared by
    every web process."""

    name = models.CharField(max_length=100, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"
