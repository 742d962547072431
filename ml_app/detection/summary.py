"""The verdict in plain words, from a stored result (``AnalysisResult.to_dict``): what the model answers, what its
number means (with the prior the calibration states), why it is not decided when it is not, and how much of the file
was looked at. The result page, the PDF and the API's ``summary`` all say this, so they say the same thing.

The number quoted is always the number of the person named: the video's fake probability is its most suspicious
person's, so the verdict sentence names that person; when a person's windows disagree, that person and their windows
are named with their own scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .naming import is_photo, people_count, person_label, probability_text, window_label

HEADLINES = {
    ("FAKE", False): "This video looks manipulated to the model.",
    ("REAL", False): "The model found no sign of manipulation in the faces of this video.",
    ("INCONCLUSIVE", False): "The model cannot tell whether this video is manipulated.",
    ("FAKE", True): "This photo looks manipulated to the model.",
    ("REAL", True): "The model found no sign of manipulation in the faces of this photo.",
    ("INCONCLUSIVE", True): "The model cannot tell whether this photo is manipulated.",
}


def _people(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(result.get("people") or [])


def _most_suspicious(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The person whose score is the file's (ties: the first to appear)."""
    people = _people(result)
    return max(people, key=lambda p: float(p.get("fake_probability") or 0.0)) if people else None


def _torn(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The person whose disagreeing windows made the file INCONCLUSIVE (the widest spread), if any."""
    torn = [p for p in _people(result) if p.get("reason") == "windows_disagree"]
    return max(torn, key=lambda p: float(p.get("disagreement") or 0.0)) if torn else None


def _prior_words(result: Mapping[str, Any], noun: str) -> str:
    """What a calibrated number means, with the prior the calibration states (or the plain meaning without one)."""
    prior = ((result.get("calibration") or {}).get("fitted_on") or {}).get("prior") or {}
    fake = prior.get("fake")
    if isinstance(fake, (int, float)) and 0 < fake < 1:
        return (
            f"if {fake:.0%} of the {noun}s checked were fake (the prior the model's calibration assumes), that share "
            f"of {noun}s scored like this would be fake; where fakes are rarer, the same score means less"
        )
    return f"a calibrated probability, on {noun}s like those the model was checked on"


def meaning(result: Mapping[str, Any]) -> str | None:
    """What the headline number is, and whose it is."""
    probability = result.get("fake_probability")
    if probability is None:
        return None
    noun = "photo" if is_photo(result) else "video"
    calibrated = bool((result.get("calibration") or {}).get("calibrated"))
    ensemble = result.get("ensemble")
    if ensemble:
        members = len(ensemble.get("members") or [])
        whose = f"The ensemble's fake probability, the mean of its {members} checkpoints' answers, is"
    else:
        person = _most_suspicious(result)
        many = len(_people(result)) > 1
        label = person_label(result, int(person["person_id"])) if person is not None else "the file"
        whose = f"{label}{' (the most suspicious)' if many else ''} has a fake probability of"
        if not calibrated:
            whose = whose.replace("a fake probability of", "a raw score of")
    if not calibrated:
        return (
            f"{whose} {probability_text(probability)}. This checkpoint carries no calibration, so the number is "
            "the network's raw score, not a probability one can rely on."
        )
    return f"{whose} {probability_text(probability)}: {_prior_words(result, noun)}."


def _thresholds(result: Mapping[str, Any]) -> tuple[str, str]:
    thresholds = result.get("thresholds") or {}
    return probability_text(thresholds.get("real")), probability_text(thresholds.get("fake"))


def _window_scores(result: Mapping[str, Any], person: Mapping[str, Any]) -> str:
    """'window #1 0.13, window #4 0.84' (the lowest and the highest of the person's windows)."""
    pairs = list(zip(person.get("windows") or [], person.get("window_probabilities") or [], strict=False))
    low = min(pairs, key=lambda pair: pair[1])
    high = max(pairs, key=lambda pair: pair[1])
    return (
        f"from {probability_text(low[1])} in window {window_label(low[0])} to {probability_text(high[1])} in "
        f"window {window_label(high[0])}"
    )


def why_undecided(result: Mapping[str, Any]) -> str | None:
    """Why an INCONCLUSIVE result is not decided: which threshold, which person, which windows."""
    if result.get("verdict") != "INCONCLUSIVE":
        return None
    reason = result.get("reason") or {}
    code = reason.get("code")
    real, fake = _thresholds(result)
    torn = _torn(result)
    if code == "windows_disagree" and torn is not None and len(torn.get("windows") or []) > 1:
        return (
            f"Not decided because the windows of {person_label(result, int(torn['person_id']))} disagree, "
            f"{_window_scores(result, torn)}: conflicting evidence is never averaged into a REAL verdict. "
            "Watch those windows yourself."
        )
    if code == "uncertain" and result.get("fake_probability") is not None:
        probability = float(result["fake_probability"])
        person = _most_suspicious(result)
        if result.get("ensemble") or person is None:
            whose = "the ensemble's" if result.get("ensemble") else "the"
        else:
            whose = person_label(result, int(person["person_id"])) + "'s"
        nearer = "FAKE" if abs(probability - float(fake)) < abs(probability - float(real)) else "REAL"
        return (
            f"Not decided because {whose} {probability_text(probability)} lies between the thresholds: REAL needs "
            f"{real} or less, FAKE needs {fake} or more (it is nearer the {nearer} threshold)."
        )
    message = str(reason.get("message") or "the evidence does not decide").rstrip(".")
    return f"Not decided: {message[:1].lower()}{message[1:]}."


def _covered_seconds(windows: Sequence[Mapping[str, Any]], fps: float | None) -> float:
    """The time the windows span, each from its first frame to one frame past its last."""
    step = 1.0 / fps if fps else 0.0
    return sum(max(0.0, float(w["end_time"]) - float(w["start_time"]) + step) for w in windows)


def coverage(result: Mapping[str, Any]) -> str:
    """'Looked at 8 windows of 10 frames, 2.4 s of the 10.0 s video; 1 person.'"""
    people = people_count(result, len(_people(result)))
    video = result.get("video") or {}
    if is_photo(result):
        return f"Looked at the whole photo ({video.get('width', '?')} x {video.get('height', '?')} pixels); {people}."
    windows = list(result.get("windows") or [])
    scored = sum(1 for w in windows if w.get("status") == "scored")
    fps = video.get("fps")
    covered = _covered_seconds(windows, float(fps) if fps else None)
    duration = float(video.get("duration") or 0.0)
    length = result.get("sequence_length")
    of_frames = f" of {length} frames" if length else ""
    with_faces = f" ({scored} with a face followed throughout)" if scored != len(windows) else ""
    plural = "" if len(windows) == 1 else "s"
    return (
        f"Looked at {len(windows)} window{plural}{of_frames}{with_faces}, {covered:.1f} s of the {duration:.1f} s "
        f"video; {people}."
    )


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's parts (headline, meaning, why, coverage) and ``text``, all of them in one paragraph."""
    verdict = str(result.get("verdict"))
    headline = HEADLINES.get((verdict, is_photo(result)), verdict)
    parts = {
        "verdict": verdict,
        "headline": headline,
        "meaning": meaning(result),
        "why": why_undecided(result),
        "coverage": coverage(result),
    }
    text = " ".join(str(parts[key]) for key in ("headline", "meaning", "why", "coverage") if parts[key])
    return {**parts, "text": text}
