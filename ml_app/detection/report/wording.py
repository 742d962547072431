"""What the report says in words, from a result dict (``AnalysisResult.to_dict``): the verdict and why, the numbers
and what they mean, the checkpoint's identity, the media's properties and the limits of the method.

Plain strings and (label, value) rows only, so the wording can be read and tested without a PDF; the document module
lays them out. Nothing here names a file path of the server or of the training machine: a report leaves the site.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..naming import is_photo, probability_text

Row = tuple[str, str]

THRESHOLD_SOURCES = {
    "checkpoint": "the checkpoint, fitted on its validation data",
    "settings": "the site's settings (FAKE_THRESHOLD, REAL_THRESHOLD)",
    "option": "the command line",
    "uncalibrated": "default, as the checkpoint carries no calibration",
    "ensemble mean": "the mean of the ensemble's checkpoints' thresholds",
}
UNTRAINED = "The checkpoint is untrained (random weights): this verdict means nothing."


def _number(value: Any) -> str:
    return probability_text(value)


def _percent(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1%}"


def thresholds_text(result: Mapping[str, Any]) -> str:
    thresholds = result.get("thresholds") or {}
    source = str(thresholds.get("source", "checkpoint"))
    return (
        f"REAL at or below {_number(thresholds.get('real'))}, FAKE at or above {_number(thresholds.get('fake'))}, "
        f"INCONCLUSIVE in between (set by {THRESHOLD_SOURCES.get(source, source)})"
    )


def probability_rows(result: Mapping[str, Any]) -> list[Row]:
    """The numbers behind the verdict, and what they mean."""
    calibration = result.get("calibration") or {}
    kind = "Calibrated fake probability" if calibration.get("calibrated") else "Fake score (raw, uncalibrated)"
    rows = [(kind, _number(result.get("fake_probability")))]
    if result.get("confidence") is not None:
        rows.append(("Confidence in the verdict", _percent(result.get("confidence"))))
    rows.append(("Network's raw score", _number(result.get("raw_probability"))))
    rows.append(("Thresholds", thresholds_text(result)))
    if calibration.get("method"):
        rows.append(("Calibration", str(calibration["method"])))
    meaning = str(calibration.get("meaning", "")).rstrip(".")
    if meaning:
        article = "" if meaning.startswith(("the ", "a ")) else "the "
        rows.append(("What the number means", f"The number is {article}{meaning}."))
    if calibration.get("inconclusive_means"):
        rows.append(("INCONCLUSIVE", str(calibration["inconclusive_means"]).rstrip(".") + "."))
    return rows


def _figures(values: Mapping[str, Any]) -> str:
    """'accuracy 76.9%, AUC 0.881, EER 0.167 (13 videos)' from a metrics mapping."""
    parts = []
    for key, label in (("accuracy", "accuracy"), ("auc", "AUC"), ("eer", "EER"), ("brier", "Brier"), ("ece", "ECE")):
        if isinstance(values.get(key), (int, float)):
            parts.append(f"{label} {_percent(values[key]) if key == 'accuracy' else _number(values[key])}")
    counted = [f"{values[key]} {key}" for key in ("clips", "videos") if isinstance(values.get(key), int)]
    if isinstance(values.get("n"), int):
        counted.append(f"{values['n']} {values.get('level', 'items')}")
    return ", ".join(parts) + (f" ({', '.join(counted)})" if counted else "")


def _counts(mapping: Any) -> str:
    """{'train': {'FAKE': 7, 'REAL': 76}, ...} or {'REAL': 19, 'FAKE': 22} in words."""
    if not isinstance(mapping, Mapping):
        return str(mapping)
    if all(isinstance(value, Mapping) for value in mapping.values()):
        return "; ".join(f"{split}: {_counts(value)}" for split, value in mapping.items())
    return ", ".join(f"{value} {label}" for label, value in mapping.items())


def _plain(value: Any) -> str | None:
    """A value fit to print: text and numbers, never a path (a report leaves the server)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    looks_like_a_path = ("/" in text or "\\" in text) and not any(c.isspace() for c in text)
    return None if looks_like_a_path or text.startswith(("/", "~")) else text


def _detector(preprocessing: Mapping[str, Any]) -> str:
    detector = preprocessing.get("detector") or {}
    model = f", {detector['model']}" if detector.get("model") not in (None, "", detector.get("backend")) else ""
    side = f", frames scaled to {detector['max_side']} px" if detector.get("max_side") else ""
    return f"{detector.get('backend', 'unknown')}{model}{side}"


def checkpoint_rows(checkpoint: Mapping[str, Any]) -> list[Row]:
    """Which network gave the verdict, what it was trained on and how well it did on held-out data."""
    architecture = checkpoint.get("architecture") or {}
    preprocessing = checkpoint.get("preprocessing") or {}
    length = checkpoint.get("sequence_length")
    rows: list[Row] = [
        ("Name", str(checkpoint.get("name", "unknown"))),
        ("sha256", str(checkpoint.get("sha256", "unknown"))),
        ("Frames per window", "1 (a frame model)" if length == 1 else str(length)),
        ("Network", f"{architecture.get('backbone', 'unknown')} backbone, {architecture.get('head', 'lstm')} head"),
        ("Face detector", _detector(preprocessing)),
        ("Face crops", f"{preprocessing.get('image_size', '?')} px, margin {preprocessing.get('margin', '?')}"),
    ]
    if checkpoint.get("untrained"):
        rows.append(("Training", UNTRAINED))
    rows += _training_rows(checkpoint.get("training") or {}, checkpoint.get("origin") or {})
    rows += _metric_rows(checkpoint.get("metrics") or {})
    rows += _calibration_rows(checkpoint.get("calibration") or {})
    return rows


def _training_rows(training: Mapping[str, Any], origin: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if training.get("datasets"):
        rows.append(("Training data", ", ".join(str(name) for name in training["datasets"])))
    if training.get("clips"):
        rows.append(("Clips per split", _counts(training["clips"])))
    fakes = (training.get("config") or {}).get("synthesize_fakes")
    if fakes:
        rows.append(
            ("Synthesised fakes", f"{fakes} (self-blended faces made from real ones)" if fakes == "sbi" else fakes)
        )
    if training.get("trained_by"):
        rows.append(("Trained by", str(training["trained_by"])))
    if training.get("best_epoch") is not None:
        rows.append(("Epochs", f"best {training['best_epoch']} of {training.get('epochs', '?')}"))
    if training.get("manifest_sha256"):
        rows.append(("Training manifest sha256", str(training["manifest_sha256"])))
    for key, value in origin.items():
        shown = _plain(value)
        if shown is not None:
            rows.append((f"Origin: {key.replace('_', ' ')}", shown))
    return rows


def _metric_rows(metrics: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    headline = _figures(metrics)
    if headline:
        rows.append(("Reported figures", headline))
    if metrics.get("accuracy_source"):
        rows.append(("Measured on", str(metrics["accuracy_source"])))
    validation = metrics.get("validation")
    if isinstance(validation, Mapping) and _figures(validation):
        rows.append(("Validation", _figures(validation)))
    test = metrics.get("test")
    if isinstance(test, Mapping):
        for level in ("video", "clip"):
            if isinstance(test.get(level), Mapping) and _figures(test[level]):
                rows.append((f"Test ({level} level)", _figures({**test[level], "level": level + "s"})))
    return rows


def _calibration_rows(calibration: Mapping[str, Any]) -> list[Row]:
    if not calibration:
        return [("Calibration", "none: scores are the network's raw output")]
    fitted = calibration.get("fitted_on") or {}
    where = [f"the {fitted.get('split', 'validation')} split"]
    where += [_counts(fitted[key]) + f" {key}" for key in ("clips", "videos") if isinstance(fitted.get(key), Mapping)]
    rows = [("Calibration", f"{calibration.get('method', '?')}, fitted on " + "; ".join(where))]
    video = ((calibration.get("metrics") or {}).get("video") or {}).get("calibrated")
    if isinstance(video, Mapping) and _figures(video):
        rows.append(("Calibrated, on validation videos", _figures({**video, "level": "videos"})))
    note = (fitted.get("threshold_rule") or {}).get("note")
    if note:
        rows.append(("About the thresholds", str(note)))
    return rows


def media_rows(result: Mapping[str, Any], name: str, sha256: str) -> list[Row]:
    """The analysed file's properties as the probe (or the photo reader) found them, and its sha256."""
    video = result.get("video") or {}
    size = video.get("size_bytes")
    rows: list[Row] = [("File", name), ("sha256", sha256)]
    if size is not None:
        rows.append(("Size", f"{int(size) / 1e6:.2f} MB ({int(size):,} bytes)"))
    rows.append(("Resolution", f"{video.get('width', '?')} x {video.get('height', '?')} pixels"))
    if is_photo(result):
        rows.append(("Format", str(video.get("format", "?"))))
        if video.get("exif_rotated"):
            rows.append(("Orientation", "turned upright by its EXIF orientation"))
        return rows
    rows.append(("Duration", f"{float(video.get('duration') or 0):.2f} s, {video.get('frame_count', '?')} frames"))
    fps = video.get("fps")
    variable = " (variable frame rate)" if video.get("variable_frame_rate") else ""
    rows.append(("Frame rate", (f"{float(fps):.2f} frames per second" if fps else "unknown") + variable))
    rows.append(("Codec", f"{video.get('codec', '?')} in {video.get('container', '?')}"))
    if video.get("rotation"):
        rows.append(("Rotation", f"{video['rotation']}° (turned upright for the analysis)"))
    rows.append(("Audio", "yes (not analysed)" if video.get("has_audio") else "none"))
    return rows


def limits(result: Mapping[str, Any]) -> list[str]:
    """The limits of the method, in plain words, for whoever reads the report without knowing the model."""
    checkpoint = result.get("checkpoint") or {}
    datasets = ", ".join(str(d) for d in (checkpoint.get("training") or {}).get("datasets") or [])
    learned = (
        f"The network learned from {datasets}." if datasets else "The checkpoint does not record its training data."
    )
    paragraphs = [
        f"What the model knows. {learned} It recognises the kinds of manipulation it was shown in training, on "
        "faces and footage like those; a new kind of fake, or very different footage (lighting, compression, "
        "resolution, faces turned away), can fool it either way.",
        "A probability is not proof. The fake probability is a calibrated estimate on data like the checkpoint's "
        "validation set, not a measurement of this file. A FAKE verdict is a reason to look closer, and a REAL one "
        "does not certify a video: the figures above say how often the model was wrong on held-out data.",
        "Only faces are judged. The model looks at faces it could follow through a window of frames; the rest of "
        "the picture, the sound and edits between the sampled windows are not examined.",
        "INCONCLUSIVE is an honest answer. When no face could be scored, or the evidence lies between the "
        "thresholds, or the windows disagree, the report says so rather than guessing.",
        'A heat map is not "the fake part". Where heat maps are shown, they mark the pixels that moved the '
        "network's score most; they explain the network, not the video, and a bright region is not proof of an edit.",
    ]
    if result.get("provenance"):
        paragraphs.append(
            "Content Credentials are a separate check. They say what the file's signed metadata claims about its "
            "origin and edits; they are not the network's verdict, and their absence says nothing either way."
        )
    if checkpoint.get("untrained"):
        paragraphs.insert(0, UNTRAINED)
    return paragraphs
