"""The app's rule, from face scores to a verdict; the one place it is written.

* a face sequence's score is its calibrated fake probability (:mod:`.calibration`; raw for an uncalibrated checkpoint);
* a window's score is its most suspicious face's (one swapped face makes a video fake);
* people are linked across windows by face descriptor, and a person's score is the mean over their windows;
* three outcomes, for a person and for the video: FAKE at or above the FAKE threshold, REAL at or below the REAL
  threshold, INCONCLUSIVE in between (``uncertain``); a person whose windows disagree strongly (``DISAGREEMENT``
  apart) is never called REAL on their mean (``windows_disagree``);
* the video's score is its most suspicious person's: FAKE if any person is FAKE, REAL only if every person is REAL;
* no window with a face followed for the whole window means INCONCLUSIVE, with the reason.

``analyze_video`` decides with ``decide``; dataset preprocessing links people with ``link_people``; ``evaluate_model``
scores windows and videos with ``window_probability`` and ``video_probability``, so evaluation measures exactly what
the app answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .calibration import Thresholds
from .results import AnalysisResult, PersonResult, TrackScore, Verdict, WindowResult

SAME_PERSON_DISTANCE = 0.6  # face_recognition's own tolerance for "same person"
# Windows of one person this far apart (e.g. 0.84 and 0.13) are conflicting evidence, not a confident mean.
DISAGREEMENT = 0.5


def window_probability(face_probabilities: Iterable[float]) -> float | None:
    """A window's fake probability: its most suspicious face's (None without a scored face)."""
    return max(face_probabilities, default=None)


def person_probability(window_probabilities: Sequence[float]) -> float:
    """A person's fake probability: the mean over the windows they appear in."""
    return float(np.mean(window_probabilities))


def video_probability(person_probabilities: Iterable[float]) -> float:
    """A video's fake probability: its most suspicious person's."""
    return max(person_probabilities)


def verdict_of(probability: float, thresholds: Thresholds) -> Verdict:
    """FAKE at or above the FAKE threshold, REAL at or below the REAL threshold, else INCONCLUSIVE."""
    if probability >= thresholds.fake:
        return "FAKE"
    return "REAL" if probability <= thresholds.real else "INCONCLUSIVE"


def spread(window_probabilities: Sequence[float]) -> float:
    """How far apart a person's windows are (0 for a single window)."""
    return float(max(window_probabilities) - min(window_probabilities)) if window_probabilities else 0.0


def person_verdict(window_probabilities: Sequence[float], thresholds: Thresholds) -> tuple[Verdict, str | None]:
    """A person's outcome and, when INCONCLUSIVE, its reason code (``uncertain`` or ``windows_disagree``)."""
    verdict = verdict_of(person_probability(window_probabilities), thresholds)
    if verdict != "FAKE" and spread(window_probabilities) >= DISAGREEMENT:
        return "INCONCLUSIVE", "windows_disagree"
    return verdict, "uncertain" if verdict == "INCONCLUSIVE" else None


def link_people(windows: Iterable[tuple[int, Mapping[int, np.ndarray]]]) -> dict[tuple[int, int], int]:
    """Give each (window index, track) a person id from its face descriptor; faces within one window are always
    different people.

    Single linkage: a face joins the person with the closest descriptor seen so far, so a person whose lighting or
    pose drifts over the video stays one person as long as consecutive appearances look alike.
    """
    people: list[list[np.ndarray]] = []
    assignment: dict[tuple[int, int], int] = {}
    for window_index, descriptors in windows:
        taken: set[int] = set()
        for track_id, descriptor in descriptors.items():
            best, best_distance = None, SAME_PERSON_DISTANCE
            for person_id, known in enumerate(people):
                if person_id in taken:
                    continue
                distance = min(float(np.linalg.norm(other - descriptor)) for other in known)
                if distance < best_distance:
                    best, best_distance = person_id, distance
            if best is None:
                people.append([descriptor])
                best = len(people) - 1
            else:
                people[best].append(descriptor)
            taken.add(best)
            assignment[(window_index, track_id)] = best
    return assignment


def inconclusive_reason(windows: Sequence[WindowResult], sequence_length: int) -> dict[str, str]:
    """Why no window could be scored, in words a person can act on."""
    statuses = {w.status for w in windows}
    seconds = sum(w.end_time - w.start_time for w in windows)
    if statuses == {"video_ended"}:
        return {
            "code": "too_few_frames",
            "message": f"The video ended before a full window of {sequence_length} frames could be read.",
        }
    if "face_lost" in statuses:
        return {
            "code": "face_not_tracked",
            "message": f"Faces were found, but none stayed visible for {sequence_length} consecutive frames in any "
            f"of the {len(windows)} windows analysed. Try fewer frames per window.",
        }
    return {
        "code": "no_face",
        "message": f"No face was found in any of the {len(windows)} windows analysed ({seconds:.1f} s of video). "
        "Faces that are very small, dark, turned away or hidden cannot be analysed.",
    }


def too_short_reason(frame_count: int, sequence_length: int) -> dict[str, str]:
    """The reason for a video shorter than one window."""
    return {
        "code": "too_few_frames",
        "message": f"The video has {frame_count} frames; this checkpoint needs {sequence_length} consecutive "
        "frames. Choose fewer frames per window.",
    }


def uncertain_reason(people: Sequence[PersonResult], thresholds: Thresholds) -> dict[str, str]:
    """Why a video whose windows were scored is INCONCLUSIVE: conflicting windows, or evidence between thresholds."""
    torn = [p for p in people if p.reason == "windows_disagree"]
    if torn:
        person = max(torn, key=lambda p: p.disagreement)
        low, high = min(person.window_probabilities), max(person.window_probabilities)
        return {
            "code": "windows_disagree",
            "message": f"The windows of person {person.person_id + 1} disagree: from {low:.2f} to {high:.2f} "
            "fake probability. Conflicting evidence is not averaged into a REAL verdict; look at the windows.",
        }
    return {"code": "uncertain", "message": between_thresholds(max(p.fake_probability for p in people), thresholds)}


def _people(windows: Sequence[WindowResult], thresholds: Thresholds) -> list[PersonResult]:
    appearances: dict[int, list[tuple[int, TrackScore]]] = {}
    for window in windows:
        for track in window.tracks:
            appearances.setdefault(track.person_id, []).append((window.index, track))
    people = []
    for person_id, seen in sorted(appearances.items()):
        scores = [track.fake_probability for _, track in seen]
        verdict, reason = person_verdict(scores, thresholds)
        best = max(seen, key=lambda item: item[1].fake_probability)[1]
        people.append(
            PersonResult(
                person_id=person_id,
                windows=[index for index, _ in seen],
                fake_probability=person_probability(scores),
                raw_probability=person_probability([track.raw_probability for _, track in seen]),
                verdict=verdict,
                reason=reason,
                window_probabilities=scores,
                disagreement=spread(scores),
                thumbnail=best.crops[len(best.crops) // 2] if best.crops is not None else None,
            )
        )
    return people


def verdict_of_people(verdicts: Iterable[Verdict]) -> Verdict:
    """The video's outcome from its people's: FAKE if anyone is FAKE, REAL only if everyone is REAL."""
    found = set(verdicts)
    if "FAKE" in found:
        return "FAKE"
    return "REAL" if found == {"REAL"} else "INCONCLUSIVE"


def video_verdict(people: Sequence[PersonResult]) -> Verdict:
    return verdict_of_people(person.verdict for person in people)


def video_verdict_of_scores(people_windows: Iterable[Sequence[float]], thresholds: Thresholds) -> Verdict:
    """The video's outcome from each person's window probabilities (what ``evaluate_model`` has per video)."""
    return verdict_of_people(person_verdict(scores, thresholds)[0] for scores in people_windows)


def between_thresholds(probability: float, thresholds: Thresholds, evidence: str = "fake probability") -> str:
    """The message of an ``uncertain`` outcome (one checkpoint's, or an ensemble's)."""
    return (
        f"The evidence is between the thresholds: {evidence} {probability:.3f}, where REAL needs at most "
        f"{thresholds.real:.3f} and FAKE at least {thresholds.fake:.3f}."
    )


def decide(result: AnalysisResult, people_of: Mapping[tuple[int, int], int]) -> None:
    """Fill in people, verdict, confidence and reason of ``result`` from its scored windows and the person of each
    (window, track), with ``result.thresholds``."""
    for window in result.windows:
        window.fake_probability = window_probability(track.fake_probability for track in window.tracks)
        window.raw_probability = window_probability(track.raw_probability for track in window.tracks)
        for track in window.tracks:
            track.person_id = people_of[(window.index, track.track_id)]
    result.people = _people(result.windows, result.thresholds)
    scored = [w for w in result.windows if w.status == "scored"]
    if not scored:
        result.verdict = "INCONCLUSIVE"
        result.reason = inconclusive_reason(result.windows, result.sequence_length)
        return
    probability = video_probability(person.fake_probability for person in result.people)
    result.fake_probability = probability
    result.raw_probability = video_probability(person.raw_probability for person in result.people)
    result.verdict = video_verdict(result.people)
    if result.verdict == "INCONCLUSIVE":
        result.reason = uncertain_reason(result.people, result.thresholds)
    else:
        result.confidence = probability if result.verdict == "FAKE" else 1.0 - probability
    if len(scored) < len(result.windows):
        result.warnings.append(
            f"Only {len(scored)} of {len(result.windows)} windows had a face visible for all "
            f"{result.sequence_length} frames; the verdict rests on those."
        )
