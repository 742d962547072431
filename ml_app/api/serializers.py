"""The representations of analyses and checkpoints, for the API and the site alike (the result page's initial state and
its polling answer are AnalysisSerializer's output too). Results are rendered through these serializers, so the
OpenAPI schema describes exactly what is sent (fields not declared here never leave the server: file paths on the
server, for example)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Analysis, Checkpoint
from .link_source import URL_HELP, SourceField, stage_label


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class AnalysisCreateSerializer(serializers.Serializer):
    video = serializers.FileField(
        required=False,
        help_text="the video or photo (jpg, png, webp) file (multipart); the same limits as the upload page",
    )
    image = serializers.FileField(required=False, help_text="a photo may come as 'image' instead of 'video'")
    url = serializers.CharField(required=False, help_text=URL_HELP)
    sequence_length = serializers.IntegerField(
        required=False, help_text="frames per window; one of the lengths listed by /api/v1/checkpoints/"
    )
    ensemble = serializers.CharField(
        required=False,
        help_text="analyse with an ensemble listed by /api/v1/ensembles/ instead (sequence_length is then ignored)",
    )


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="uncertain (between the thresholds), windows_disagree, no_face, face_not_tracked or too_few_frames"
    )
    message = serializers.CharField()


class TrackSerializer(serializers.Serializer):
    track_id = serializers.IntegerField()
    person_id = serializers.IntegerField()
    fake_probability = serializers.FloatField(help_text="calibrated (raw when the checkpoint has no calibration)")
    raw_probability = serializers.FloatField(help_text="the network's own output")
    filled_frames = serializers.IntegerField(help_text="frames whose face box was filled in from neighbours")
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4),
        help_text="per frame, [x0, y0, x1, y1] in pixels of the displayed frame",
    )
    thumbnail_url = serializers.CharField(allow_null=True)
    strip_url = serializers.CharField(allow_null=True, help_text="every crop the network saw, side by side")


class WindowSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    start_frame = serializers.IntegerField()
    end_frame = serializers.IntegerField()
    start_time = serializers.FloatField(help_text="seconds")
    end_time = serializers.FloatField(help_text="seconds")
    frames = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["scored", "no_face", "face_lost", "video_ended"])
    faces_found = serializers.IntegerField()
    fake_probability = serializers.FloatField(allow_null=True, help_text="its most suspicious face's")
    raw_probability = serializers.FloatField(allow_null=True)
    tracks = TrackSerializer(many=True)
    frames_without_face = serializers.ListField(child=serializers.IntegerField())


class PersonSerializer(serializers.Serializer):
    person_id = serializers.IntegerField()
    windows = serializers.ListField(child=serializers.IntegerField())
    fake_probability = serializers.FloatField(help_text="the mean of their windows' calibrated probabilities")
    raw_probability = serializers.FloatField()
    window_probabilities = serializers.ListField(child=serializers.FloatField(), help_text="in the order of windows")
    disagreement = serializers.FloatField(help_text="largest minus smallest window probability")
    verdict = serializers.ChoiceField(choices=["REAL", "FAKE", "INCONCLUSIVE"])
    reason = serializers.CharField(allow_null=True, help_text="for INCONCLUSIVE: uncertain or windows_disagree")
    thumbnail_url = serializers.CharField(allow_null=True)


class VideoSerializer(serializers.Serializer):
    """What was analysed: a video's probe, or for a photo (``kind`` image) its size, format and EXIF rotation."""

    kind = serializers.ChoiceField(choices=["image"], required=False, help_text="image for a photo; absent for a video")
    container = serializers.CharField(required=False)
    codec = serializers.CharField(required=False)
    format = serializers.CharField(required=False, help_text="a photo's format: JPEG, PNG or WEBP")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    rotation = serializers.IntegerField(required=False)
    exif_rotated = serializers.BooleanField(required=False, help_text="a photo turned upright by its EXIF orientation")
    fps = serializers.FloatField(required=False)
    frame_count = serializers.IntegerField(required=False)
    duration = serializers.FloatField(required=False)
    variable_frame_rate = serializers.BooleanField(required=False)
    has_audio = serializers.BooleanField(required=False)
    size_bytes = serializers.IntegerField()


class CheckpointIdentitySerializer(serializers.Serializer):
    name = serializers.CharField()
    sha256 = serializers.CharField()
    sequence_length = serializers.IntegerField()
    untrained = serializers.BooleanField()
    architecture = serializers.DictField()
    preprocessing = serializers.DictField()
    metrics = serializers.DictField()
    calibration = serializers.DictField(allow_null=True, help_text="method, thresholds, validation figures")


class ThresholdsSerializer(serializers.Serializer):
    fake = serializers.FloatField(help_text="FAKE at or above this probability")
    real = serializers.FloatField(help_text="REAL at or below this probability; INCONCLUSIVE in between")
    source = serializers.CharField(help_text="checkpoint, settings, option, uncalibrated or ensemble mean")


class CalibrationInfoSerializer(serializers.Serializer):
    calibrated = serializers.BooleanField()
    meaning = serializers.CharField(help_text="what fake_probability is")
    inconclusive_means = serializers.CharField()
    method = serializers.CharField(required=False, help_text="temperature, platt or isotonic")
    fitted_on = serializers.DictField(required=False, help_text="the validation data it was fitted on")


class EnsembleMemberSerializer(serializers.Serializer):
    name = serializers.CharField()
    sha256 = serializers.CharField()
    sequence_length = serializers.IntegerField()
    verdict = serializers.ChoiceField(choices=["REAL", "FAKE", "INCONCLUSIVE"])
    reason = ReasonSerializer(allow_null=True)
    fake_probability = serializers.FloatField(allow_null=True)
    raw_probability = serializers.FloatField(allow_null=True)
    thresholds = ThresholdsSerializer()
    calibrated = serializers.BooleanField()
    windows_scored = serializers.IntegerField()


class EnsembleResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    combine = serializers.CharField(help_text="how the members' probabilities are combined: mean")
    members = EnsembleMemberSerializer(many=True)
    evidence_from = serializers.CharField(help_text="the member whose windows and people the result shows")
    identity = serializers.CharField(help_text="sha256 of the members' sha256s")


def _text(help_text: str = "", **options) -> serializers.CharField:
    """A nullable text field of the provenance dict (ml_app.detection.provenance)."""
    return serializers.CharField(allow_null=True, help_text=help_text or None, **options)


class SignerSerializer(serializers.Serializer):
    name, organization = _text("the signing certificate's subject CN"), _text("its subject O")
    issuer, serial = _text("the certificate authority that issued it"), _text()
    algorithm, time = _text("es256, ps256, ..."), _text("the trusted time stamp of the signature, if any")
    valid_from, valid_until = _text(), _text()


class ProvenanceActionSerializer(serializers.Serializer):
    action = serializers.CharField(help_text="the C2PA action, e.g. c2pa.created")
    label = serializers.CharField(help_text="it in a word or two")
    source_type, source = _text("IPTC digital source type"), _text("it in words, e.g. made by an AI generator")
    software, when = _text(), _text()
    description = serializers.CharField()


class ProvenanceProblemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="C2PA validation status code, e.g. assertion.dataHash.mismatch")
    explanation = serializers.CharField(help_text="the C2PA library's explanation")
    meaning = serializers.CharField(help_text="in plain words, e.g. the file was changed after it was signed")


PROVENANCE_STATES = ["none", "valid", "invalid", "unreadable"]  # named in SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES
PROVENANCE_TRUST = ["trusted", "untrusted", "not_checked"]


class ProvenanceSerializer(serializers.Serializer):
    """The file's Content Credentials (C2PA): what it says about itself, apart from the network's verdict. Beyond
    present, state and summary, fields come only with state valid or invalid (error: with unreadable)."""

    present = serializers.BooleanField()
    state = serializers.ChoiceField(PROVENANCE_STATES, help_text="valid: signature and hashes match the file")
    summary = serializers.CharField(help_text="one line in plain words")
    error = serializers.CharField(required=False, help_text="why unreadable Content Credentials could not be read")
    generator = _text("the software that made the claim", required=False)
    generator_info = serializers.ListField(child=serializers.DictField(), required=False)
    signer = SignerSerializer(required=False, allow_null=True)
    title, format = _text(required=False), _text(required=False)
    actions = ProvenanceActionSerializer(many=True, required=False)
    ai = _text("the strongest AI claim of the actions", required=False)
    ingredients, manifests = serializers.IntegerField(required=False), serializers.IntegerField(required=False)
    problems = ProvenanceProblemSerializer(many=True, required=False, help_text="why invalid")
    trust = serializers.ChoiceField(PROVENANCE_TRUST, required=False, help_text="untrusted is not invalid")
    trust_explanation = serializers.CharField(required=False)


class ResultSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["REAL", "FAKE", "INCONCLUSIVE"])
    reason = ReasonSerializer(allow_null=True, help_text="why the verdict is INCONCLUSIVE")
    fake_probability = serializers.FloatField(
        allow_null=True, help_text="calibrated probability that the most suspicious person's face sequences are fake"
    )
    raw_probability = serializers.FloatField(allow_null=True, help_text="the same from the network's raw scores")
    confidence = serializers.FloatField(
        allow_null=True, help_text="probability of the verdict's class (REAL or FAKE; null for INCONCLUSIVE)"
    )
    thresholds = ThresholdsSerializer()
    calibration = CalibrationInfoSerializer()
    ensemble = EnsembleResultSerializer(allow_null=True, help_text="for an ensemble: each member's answer")
    sequence_length = serializers.IntegerField()
    windows_scored = serializers.IntegerField()
    windows = WindowSerializer(many=True)
    people = PersonSerializer(many=True)
    video = VideoSerializer()
    checkpoint = CheckpointIdentitySerializer()
    timings = serializers.DictField(child=serializers.FloatField(), help_text="seconds per stage")
    warnings = serializers.ListField(child=serializers.CharField())
    provenance = ProvenanceSerializer(
        required=False, help_text="the file's Content Credentials; absent for analyses made before they were read"
    )


def _with_crop_urls(result: dict, crops_url: str) -> dict:
    """Attach thumbnail and strip URLs to tracks and people, from the analysis' crop files."""
    files = result.get("crop_files") or {}
    by_window = files.get("windows", {})
    people_files = files.get("people", {})
    windows = []
    for window in result.get("windows", []):
        tracks = []
        for track in window["tracks"]:
            names = by_window.get(str(window["index"]), {}).get(str(track["track_id"])) or {}
            tracks.append(
                {
                    **track,
                    "thumbnail_url": crops_url + names["thumb"] if "thumb" in names else None,
                    "strip_url": crops_url + names["strip"] if "strip" in names else None,
                }
            )
        windows.append({**window, "tracks": tracks})
    people = [
        {
            **p,
            "thumbnail_url": crops_url + people_files[str(p["person_id"])]
            if str(p["person_id"]) in people_files
            else None,
        }
        for p in result.get("people", [])
    ]
    return {**result, "windows": windows, "people": people}


class AnalysisErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class AnalysisCheckpointSerializer(serializers.ModelSerializer):
    sequence_length = serializers.IntegerField(read_only=True)

    class Meta:
        model = Checkpoint
        fields = ["name", "sequence_length", "backbone", "accuracy", "untrained", "sha256"]


class AnalysisSerializer(SourceField, serializers.ModelSerializer):
    # Declared rather than derived from the model: derived integers carry the database's range, and the schema must
    # not depend on which database generated it.
    size_bytes = serializers.IntegerField(read_only=True)
    sequence_length = serializers.IntegerField(read_only=True)
    ensemble_name = serializers.CharField(read_only=True, help_text="the ensemble analysed with, or empty")
    attempts = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField(help_text="this analysis in the API")
    page_url = serializers.SerializerMethodField(help_text="its result page on the site")
    video_url = serializers.SerializerMethodField(help_text="the uploaded file: the video, or the photo")
    media = serializers.ChoiceField(
        choices=["video", "image"], read_only=True, help_text="image: a photo, scored by the frame model"
    )
    stage_label = serializers.SerializerMethodField()
    checkpoint = AnalysisCheckpointSerializer(allow_null=True)
    error = serializers.SerializerMethodField()
    reused = serializers.SerializerMethodField(help_text="the same file was analysed with the same checkpoint before")
    source = serializers.SerializerMethodField(help_text="for a file submitted as a link: where it came from")
    result = serializers.SerializerMethodField()

    class Meta:
        model = Analysis
        fields = [
            "id",
            "url",
            "page_url",
            "video_url",
            "media",
            "status",
            "stage",
            "stage_label",
            "progress",
            "original_name",
            "sha256",
            "size_bytes",
            "sequence_length",
            "checkpoint",
            "ensemble_name",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "reused",
            "source",
            "verdict",
            "fake_probability",
            "result",
            "timings",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, analysis: Analysis) -> str:
        return self._absolute(reverse("api:analysis-detail", args=[analysis.pk]))

    @extend_schema_field(OpenApiTypes.URI)
    def get_page_url(self, analysis: Analysis) -> str:
        return self._absolute(reverse("ml_app:analysis", args=[analysis.pk]))

    @extend_schema_field(OpenApiTypes.URI)
    def get_video_url(self, analysis: Analysis) -> str:
        return self._absolute(reverse("ml_app:analysis-video", args=[analysis.pk]))

    @extend_schema_field(OpenApiTypes.STR)
    def get_stage_label(self, analysis: Analysis) -> str:
        return stage_label(analysis)

    @extend_schema_field(AnalysisErrorSerializer(allow_null=True))
    def get_error(self, analysis: Analysis) -> dict | None:
        if not analysis.error_message:
            return None
        return {"code": analysis.error_code, "message": analysis.error_message}

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_reused(self, analysis: Analysis) -> bool:
        return analysis.reused_from_id is not None

    @extend_schema_field(ResultSerializer(allow_null=True))
    def get_result(self, analysis: Analysis) -> dict | None:
        if analysis.status != Analysis.Status.DONE or not analysis.result:
            return None
        crops_url = self._absolute(reverse("ml_app:analysis", args=[analysis.pk]) + "crops/")
        return ResultSerializer(_with_crop_urls(analysis.result, crops_url)).data


def describe(analysis: Analysis, request=None) -> dict:
    """An analysis as the API and the site send it; URLs are absolute when ``request`` is given."""
    return AnalysisSerializer(analysis, context={"request": request}).data


class ActiveCheckpointSerializer(serializers.ModelSerializer):
    sequence_length = serializers.IntegerField(read_only=True)
    image_size = serializers.IntegerField(read_only=True)

    class Meta:
        model = Checkpoint
        fields = [
            "sequence_length",
            "name",
            "backbone",
            "image_size",
            "accuracy",
            "untrained",
            "metrics",
            "sha256",
            "created_at",
        ]


class ActiveEnsembleSerializer(serializers.Serializer):
    name = serializers.CharField()
    members = serializers.SerializerMethodField(help_text="the checkpoints it combines now")

    @extend_schema_field(AnalysisCheckpointSerializer(many=True))
    def get_members(self, pair) -> list:
        return AnalysisCheckpointSerializer(pair[1], many=True).data

    def to_representation(self, pair):
        return {"name": pair[0], "members": self.get_members(pair)}
