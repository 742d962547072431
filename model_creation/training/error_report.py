"""The errors worth looking at: a static page of an evaluation's most confident mistakes, with the faces scored.

At video level (the app's rule: a person is the mean of their windows, a video its most suspicious person) and at
clip level, the REAL ones called FAKE with the highest fake score and the FAKE ones called REAL with the lowest (a
mistake: on the wrong side of the evaluation's threshold), worst first. Each shows the face strip the network saw
(the clip's crops from the manifest's ``.npz`` as :class:`~.dataset.ClipDataset` feeds them, shown in RGB like the
app's result crops; for a video, the clips of its deciding person), the truth, the score (calibrated and raw when the
checkpoint is calibrated) and where it comes from. ``errors.html`` opens from disk: no server, no external asset,
inline CSS, its images JPEG files in ``errors_files/`` beside it, linked relatively; every text is HTML-escaped.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ml_app.detection.decision import person_probability, video_probability
from ml_app.detection.files import atomic_write_text
from ml_app.detection.prediction import display_crops

from .dataset import ClipDataset, ClipItem

PAGE = "errors.html"
IMAGES = "errors_files"
DEFAULT_TOP = 20
KINDS = {
    "real_called_fake": "REAL called FAKE (highest fake score first)",
    "fake_called_real": "FAKE called REAL (lowest fake score first)",
}


@dataclass
class Case:
    """One mistake: a video (its deciding person's clips) or a clip."""

    key: str
    item: ClipItem  # the video's source record comes from it
    label: str
    score: float  # what the evaluation decides on (calibrated where the checkpoint is)
    raw: float
    clips: list[int] = field(default_factory=list)  # item indices whose strips are shown
    where: str = ""  # window/track (clip) or deciding person (video)

    def to_dict(self) -> dict[str, Any]:
        video = self.item.video
        return {
            "key": self.key,
            "label": self.label,
            "score": self.score,
            "raw_score": self.raw,
            "video": video.video,
            "dataset": video.dataset,
            "method": video.method,
            "where": self.where,
        }


def _order(cases: list[Case], threshold: float) -> dict[str, list[Case]]:
    wrong_real = [case for case in cases if case.label == "REAL" and case.score >= threshold]
    wrong_fake = [case for case in cases if case.label == "FAKE" and case.score < threshold]
    return {
        "real_called_fake": sorted(wrong_real, key=lambda case: (-case.score, case.key)),
        "fake_called_real": sorted(wrong_fake, key=lambda case: (case.score, case.key)),
    }


def clip_cases(items: Sequence[ClipItem], scores: Sequence[float], raw: Sequence[float]) -> list[Case]:
    return [
        Case(
            f"{item.video.video_id}/{item.clip.window}/{item.clip.track}",
            item,
            item.video.label,
            float(scores[index]),
            float(raw[index]),
            [index],
            f"window {item.clip.window} (from frame {item.clip.start_frame}), track {item.clip.track}",
        )
        for index, item in enumerate(items)
    ]


def video_cases(items: Sequence[ClipItem], scores: Sequence[float], raw: Sequence[float]) -> list[Case]:
    """Per video its score by the app's rule (as :func:`.evaluate.level_scores`), shown with its deciding person."""
    people: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, item in enumerate(items):
        people[item.video.video_id][item.clip.person].append(index)
    cases = []
    for video_id, persons in people.items():
        means = {person: person_probability([float(scores[i]) for i in chosen]) for person, chosen in persons.items()}
        deciding = max(means, key=lambda person: (means[person], -person))
        score = video_probability(person_probability([float(scores[i]) for i in c]) for c in persons.values())
        raw_score = video_probability(person_probability([float(raw[i]) for i in c]) for c in persons.values())
        clips = sorted(persons[deciding], key=lambda i: (items[i].clip.window, items[i].clip.track))
        first = items[clips[0]]
        where = f"person {deciding} ({len(clips)} window(s)) of {len(persons)}"
        cases.append(Case(video_id, first, first.video.label, float(score), float(raw_score), clips, where))
    return cases


def worst_cases(
    items: Sequence[ClipItem], scores: Sequence[float], raw: Sequence[float], threshold: float = 0.5
) -> dict[str, dict[str, list[Case]]]:
    """Per level (video, clip) and kind (real_called_fake, fake_called_real) every mistake, worst first."""
    return {
        "video": _order(video_cases(items, scores, raw), threshold),
        "clip": _order(clip_cases(items, scores, raw), threshold),
    }


def _rgb_strip(dataset: ClipDataset, index: int) -> np.ndarray:
    crops = display_crops(dataset.crops(index), dataset.preprocessing.colour_order)
    return np.ascontiguousarray(np.concatenate(list(crops), axis=1))


def _write_strip(dataset: ClipDataset, index: int, folder: Path, written: set[int]) -> str:
    name = f"clip{index:06d}.jpg"
    if index not in written:
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(_rgb_strip(dataset, index), cv2.COLOR_RGB2BGR))
        if not ok:  # pragma: no cover - uint8 RGB always encodes
            raise ValueError(f"could not encode the crops of clip {index}")
        (folder / name).write_bytes(encoded.tobytes())
        written.add(index)
    return f"{IMAGES}/{name}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _score_text(case: Case, calibrated: bool) -> str:
    if calibrated:
        return f"{case.score:.4f}<br><small>raw {case.raw:.4f}</small>"
    return f"{case.score:.4f}"


@dataclass
class _Page:
    """What rendering needs: the clips, their scores and where the strips go."""

    dataset: ClipDataset
    scores: Sequence[float]
    folder: Path
    calibrated: bool
    written: set[int] = field(default_factory=set)

    def row(self, rank: int, case: Case, level: str) -> str:
        video = case.item.video
        strips = []
        for index in case.clips:
            clip = self.dataset.items[index].clip
            source = _write_strip(self.dataset, index, self.folder, self.written)
            caption = f"window {clip.window}, track {clip.track}"
            if level == "video":
                caption += f": clip score {float(self.scores[index]):.4f}"
            strips.append(
                f'<figure><a href="{_e(source)}"><img src="{_e(source)}" alt="{_e(caption)}"></a>'
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
        source_lines = [
            f"<b>{_e(video.video)}</b>",
            f"dataset {_e(video.dataset)}" + (f", method {_e(video.method)}" if video.method else ""),
            f"id {_e(video.video_id)}" + (f", split {_e(video.split)}" if video.split else ""),
            _e(case.where),
        ]
        if video.source_path:
            source_lines.insert(1, f"<small>{_e(video.source_path)}</small>")
        return (
            f"<tr><td>{rank}</td><td>{_e(case.label)}</td><td>{_score_text(case, self.calibrated)}</td>"
            f"<td>{'<br>'.join(source_lines)}</td><td class=strips>{''.join(strips)}</td></tr>"
        )


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;width:100%;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}th{background:#f3f3f3}
.strips figure{margin:0 0 .4em 0}.strips img{height:72px;max-width:100%;image-rendering:auto}
figcaption{font-size:.8em;color:#555}small{color:#666}
"""


def write_error_page(
    output: Path,
    dataset: ClipDataset,
    scores: Sequence[float],
    raw: Sequence[float],
    threshold: float = 0.5,
    calibrated: bool = False,
    top: int = DEFAULT_TOP,
    title: str = "",
) -> dict[str, Any]:
    """Write ``output/errors.html`` (and its images in ``output/errors_files/``); returns what report.json keeps."""
    folder = output / IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("clip*.jpg"):  # a previous run's strips
        stale.unlink()
    cases = worst_cases(dataset.items, scores, raw, threshold)
    renderer = _Page(dataset, scores, folder, calibrated)
    summary: dict[str, Any] = {"page": PAGE, "images": IMAGES, "threshold": threshold, "top": top}
    body = [
        f"<h1>Most confident mistakes{(': ' + _e(title)) if title else ''}</h1>",
        f"<p>Mistakes at the threshold {threshold:g} (FAKE at or above), worst first, at most {top} of each kind. "
        + (
            "Scores are calibrated fake probabilities (raw below). "
            if calibrated
            else "Scores are raw fake probabilities (the checkpoint is not calibrated). "
        )
        + "Strips: the crops the network saw, in order. A video's score is its most suspicious person's (the mean "
        "of their windows); its strips are that person's clips.</p>",
    ]
    for level in ("video", "clip"):
        summary[level] = {}
        for kind, heading in KINDS.items():
            found = cases[level][kind]
            shown = found[:top]
            summary[level][kind] = {"mistakes": len(found), "listed": [case.to_dict() for case in shown]}
            body.append(f"<h2>{level.capitalize()}s: {_e(heading)}: {len(found)} mistake(s)</h2>")
            if not shown:
                body.append("<p>None.</p>")
                continue
            body.append(
                "<table><tr><th>#</th><th>truth</th><th>fake score</th><th>source</th><th>faces</th></tr>"
                + "".join(renderer.row(rank, case, level) for rank, case in enumerate(shown, 1))
                + "</table>"
            )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Most confident mistakes</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    atomic_write_text(output / PAGE, page)
    return summary
