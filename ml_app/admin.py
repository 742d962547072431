"""The admin: the checkpoint registry (upload, validate, activate), analyses (read-only, filterable; the only place
that lists them) and rejected uploads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import challenger, challenger_stats, jobs
from .admin_tables import settings_table
from .detection.errors import DetectionError
from .detection.files import plain_file_mode
from .models import Analysis, ChallengerResult, Checkpoint, Ensemble, RejectedUpload
from .registry import activate_checkpoint, register_upload, validate_new_file


class CheckpointUploadForm(forms.ModelForm):
    """Adding a checkpoint: the file is validated (safe load, architecture, a forward pass) before anything is saved."""

    upload = forms.FileField(
        label="Checkpoint file (.pt)", help_text="Loaded with weights_only=True: it never runs code."
    )
    activate = forms.BooleanField(
        required=False, initial=True, help_text="Make it the active checkpoint for its sequence length."
    )

    class Meta:
        model = Checkpoint
        fields = ["notes"]

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if upload is None:
            return cleaned
        folder = Path(settings.MODELS_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".upload-", suffix=".pt", dir=folder)
        with open(handle, "wb") as target:
            for chunk in upload.chunks():
                target.write(chunk)
        temporary = Path(name)
        os.chmod(temporary, plain_file_mode())  # kept as the registered file: readable as any other checkpoint
        try:  # the registry's own check: refused if already registered, else validated once
            self.validated = validate_new_file(temporary)
        except DetectionError as exc:
            temporary.unlink(missing_ok=True)
            message = exc.message.replace(temporary.name, upload.name)
            raise forms.ValidationError({"upload": message}) from exc
        except Exception as exc:
            temporary.unlink(missing_ok=True)
            raise forms.ValidationError(
                {"upload": f"The file could not be validated: {type(exc).__name__}: {exc}"}
            ) from exc
        return cleaned


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "sequence_length",
        "is_active",
        "challenger_share",
        "backbone",
        "image_size",
        "accuracy_shown",
        "untrained",
        "source",
        "analyses_count",
        "short_sha",
        "created_at",
    ]
    list_filter = ["is_active", "sequence_length", "backbone", "untrained", "source"]
    search_fields = ["name", "sha256", "path"]
    actions = ["activate", "deactivate", "promote_challenger"]
    readonly_fields = [
        "name",
        "path",
        "sha256",
        "sequence_length",
        "backbone",
        "image_size",
        "accuracy_shown",
        "untrained",
        "size_bytes",
        "source",
        "is_active",
        "created_at",
        "architecture_json",
        "preprocessing_json",
        "metrics_json",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(analyses_total=Count("analyses"))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CheckpointUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["upload", "activate", "notes"]
        return [*self.readonly_fields, "challenger_share", "notes"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # The registry stores the file and fills ``obj`` from the validated result, as for every other source.
        register_upload(
            form.validated,
            form.cleaned_data["upload"].name,
            activate=bool(form.cleaned_data.get("activate")),
            notes=form.cleaned_data.get("notes", ""),
            entry=obj,
        )
        return None

    @admin.action(description="Activate for its sequence length")
    def activate(self, request, queryset):
        lengths = list(queryset.values_list("sequence_length", flat=True))
        if len(lengths) != len(set(lengths)):
            self.message_user(request, "Choose at most one checkpoint per sequence length.", messages.ERROR)
            return
        for entry in queryset:
            if not entry.file_path.is_file():
                self.message_user(request, f"'{entry}' has no file at {entry.file_path}.", messages.ERROR)
                continue
            activate_checkpoint(entry)
            self.message_user(request, f"'{entry}' is now active for {entry.sequence_length} frames.")

    @admin.action(description="Promote the challenger to champion (active for its length)")
    def promote_challenger(self, request, queryset):
        for entry in queryset:
            if entry.challenger_share is None:
                self.message_user(request, f"'{entry}' is not a challenger.", messages.ERROR)
                continue
            if not entry.file_path.is_file():
                self.message_user(request, f"'{entry}' has no file at {entry.file_path}.", messages.ERROR)
                continue
            challenger.promote(entry)
            self.message_user(request, f"'{entry}' is now the champion for {entry.sequence_length} frames.")

    @admin.action(description="Deactivate")
    def deactivate(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(request, f"{count} checkpoint(s) deactivated.")

    @admin.display(description="accuracy", ordering="accuracy")
    def accuracy_shown(self, obj):
        return "-" if obj.accuracy is None else f"{obj.accuracy:.1%}"

    @admin.display(description="analyses", ordering="analyses_total")
    def analyses_count(self, obj):
        return obj.analyses_total

    @admin.display(description="sha256")
    def short_sha(self, obj):
        return obj.sha256[:12]

    def _json(self, value):
        return settings_table(value)

    @admin.display(description="architecture")
    def architecture_json(self, obj):
        return self._json(obj.architecture)

    @admin.display(description="preprocessing")
    def preprocessing_json(self, obj):
        return self._json(obj.preprocessing)

    @admin.display(description="metrics")
    def metrics_json(self, obj):
        return self._json(obj.metrics)


@admin.register(Ensemble)
class EnsembleAdmin(admin.ModelAdmin):
    """Several checkpoints offered as one choice on the upload page and in the API (their calibrated answers are
    averaged). Members by length follow whichever checkpoint is active for it."""

    list_display = ["name", "is_active", "members_now", "challenger_length", "challenger_share", "notes"]
    list_filter = ["is_active"]
    filter_horizontal = ["members"]
    fields = ["name", "is_active", "lengths", "members", "challenger_length", "challenger_share", "notes"]

    @admin.display(description="members now")
    def members_now(self, entry: Ensemble) -> str:
        members = entry.current_members()
        return ", ".join(str(member) for member in members) + (
            "" if len(members) >= 2 else " (needs two to be offered)"
        )


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "original_name",
        "status",
        "verdict",
        "probability",
        "sequence_length",
        "checkpoint",
        "attempts",
        "created_at",
        "finished_at",
        "result_link",
    ]
    list_filter = ["status", "verdict", "checkpoint", "sequence_length", "created_at"]
    search_fields = ["id", "original_name", "sha256"]
    date_hierarchy = "created_at"
    actions = ["retry_failed", "run_watchdog"]
    readonly_fields = [
        "id",
        "result_link",
        "original_name",
        "status",
        "stage",
        "progress",
        "verdict",
        "fake_probability",
        "summary",
        "error_code",
        "error_message",
        "sequence_length",
        "checkpoint",
        "checkpoint_sha256",
        "sha256",
        "size_bytes",
        "video",
        "attempts",
        "worker",
        "reused_from",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "timings_json",
        "result_json",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="id")
    def short_id(self, obj):
        return str(obj.pk)[:8]

    @admin.display(description="fake prob.", ordering="fake_probability")
    def probability(self, obj):
        return "-" if obj.fake_probability is None else f"{obj.fake_probability:.3f}"

    @admin.display(description="result page")
    def result_link(self, obj):
        return format_html('<a href="{}">open</a>', reverse("ml_app:analysis", args=[obj.pk]))

    @admin.display(description="summary")
    def summary(self, obj):
        result = obj.result or {}
        if not result:
            return "-"
        rows = [
            ("verdict", result.get("verdict")),
            ("confidence", result.get("confidence")),
            ("reason", (result.get("reason") or {}).get("message", "")),
            ("windows scored", f"{result.get('windows_scored')} of {len(result.get('windows', []))}"),
            ("people", len(result.get("people", []))),
            ("warnings", "; ".join(result.get("warnings", []))),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="timings")
    def timings_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.timings, indent=2))

    @admin.display(description="result (JSON)")
    def result_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2)) if obj.result else "-"

    @admin.action(description="Retry the selected failed analyses")
    def retry_failed(self, request, queryset):
        count = sum(1 for analysis in queryset.filter(status=Analysis.Status.FAILED) if jobs.retry(analysis))
        self.message_user(request, f"{count} analysis(es) queued again.")

    @admin.action(description="Recover analyses whose worker stopped responding")
    def run_watchdog(self, request, queryset):
        counts = jobs.recover_stale(queryset)
        self.message_user(request, f"Requeued {counts['requeued']}, failed {counts['failed']}.")


@admin.register(RejectedUpload)
class RejectedUploadAdmin(admin.ModelAdmin):
    list_display = ["created_at", "original_name", "size_bytes", "code", "message"]
    list_filter = ["code", "created_at"]
    search_fields = ["original_name", "message"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChallengerResult)
class ChallengerResultAdmin(admin.ModelAdmin):
    """Each challenger answer, with the per-pair comparison above the list (ml_app/challenger_stats.py); filter
    "agrees: No" for the disagreements to review."""

    change_list_template = "admin/ml_app/challengerresult/change_list.html"
    list_display = ["created_at", "analysis", "champion_name", "challenger_name", "verdict", "agrees", "seconds"]
    list_filter = ["agrees", "challenger_name", "champion_name"]
    readonly_fields = [f.name for f in ChallengerResult._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "pairs": challenger_stats.compare()})
