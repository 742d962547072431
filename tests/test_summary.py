"""The verdict in plain words (ml_app.detection.summary): the person named is the one whose number is quoted, an
undecided result says which threshold, person and windows, and the coverage says how much of the file was seen."""

from __future__ import annotations

from ml_app.detection.summary import summarize

FPS = 25.0
PRIOR = {"fake": 0.5, "meaning": "..."}


def window(index: int, start: float, tracks: list[tuple[int, float]], length: int = 10) -> dict:
    return {
        "index": index,
        "start_time": start,
        "end_time": start + (length - 1) / FPS,
        "status": "scored" if tracks else "no_face",
        "tracks": [{"track_id": n, "person_id": person, "fake_probability": p} for n, (person, p) in enumerate(tracks)],
    }


def person(person_id: int, windows: list[int], probabilities: list[float], verdict: str, reason=None) -> dict:
    return {
        "person_id": person_id,
        "windows": windows,
        "window_probabilities": probabilities,
        "fake_probability": sum(probabilities) / len(probabilities),
        "disagreement": max(probabilities) - min(probabilities),
        "verdict": verdict,
        "reason": reason,
    }


def video_result(verdict: str, people: list[dict], windows: list[dict], reason=None, prior=PRIOR) -> dict:
    return {
        "verdict": verdict,
        "reason": reason,
        "fake_probability": max(p["fake_probability"] for p in people) if people else None,
        "thresholds": {"fake": 0.916, "real": 0.3, "source": "checkpoint"},
        "calibration": {"calibrated": True, "fitted_on": {"prior": prior} if prior else {}},
        "sequence_length": 10,
        "windows": windows,
        "people": people,
        "video": {"duration": 10.0, "fps": FPS, "width": 640, "height": 360},
    }


def test_a_fake_video_names_the_person_whose_number_is_quoted_and_the_prior():
    windows = [window(0, 0.0, [(0, 0.1)]), window(1, 2.0, [(0, 0.2), (1, 0.95)]), window(2, 4.0, [(1, 0.97)])]
    people = [person(0, [0, 1], [0.1, 0.2], "REAL"), person(1, [1, 2], [0.95, 0.97], "FAKE")]
    summary = summarize(video_result("FAKE", people, windows))
    assert summary["headline"] == "This video looks manipulated to the model."
    assert "Person 2 (the most suspicious) has a fake probability of 0.960" in summary["meaning"]
    assert "50% of the videos checked were fake" in summary["meaning"]
    assert summary["why"] is None
    assert summary["coverage"] == "Looked at 3 windows of 10 frames, 1.2 s of the 10.0 s video; 2 people."
    assert summary["text"].startswith(summary["headline"]) and summary["coverage"] in summary["text"]


def test_disagreeing_windows_name_their_person_and_windows():
    windows = [window(0, 0.0, [(0, 0.13)]), window(1, 2.0, [(0, 0.84)]), window(2, 4.0, [])]
    people = [person(0, [0, 1], [0.13, 0.84], "INCONCLUSIVE", "windows_disagree")]
    reason = {"code": "windows_disagree", "message": "The windows of person 1 disagree."}
    summary = summarize(video_result("INCONCLUSIVE", people, windows, reason))
    assert summary["headline"] == "The model cannot tell whether this video is manipulated."
    assert "windows of Person 1 disagree, from 0.130 in window #0 to 0.840 in window #1" in summary["why"]
    assert "Person 1 has a fake probability of 0.485" in summary["meaning"], "the same person's own number"
    assert "3 windows of 10 frames (2 with a face followed throughout)" in summary["coverage"]


def test_evidence_between_the_thresholds_says_which_thresholds_with_three_decimals():
    people = [person(0, [0], [0.852], "INCONCLUSIVE", "uncertain")]
    reason = {"code": "uncertain", "message": "between"}
    summary = summarize(video_result("INCONCLUSIVE", people, [window(0, 0.0, [(0, 0.852)])], reason, prior=None))
    assert summary["why"] == (
        "Not decided because Person 1's 0.852 lies between the thresholds: REAL needs 0.300 or less, FAKE needs "
        "0.916 or more (it is nearer the FAKE threshold)."
    )
    assert "prior" not in summary["meaning"] and "calibrated probability" in summary["meaning"]
    assert summary["coverage"].endswith("; 1 person.")


def test_a_faceless_video_says_why_in_the_reasons_words():
    reason = {"code": "no_face", "message": "No face was found in any of the 2 windows analysed."}
    summary = summarize(video_result("INCONCLUSIVE", [], [window(0, 0.0, []), window(1, 5.0, [])], reason))
    assert summary["meaning"] is None
    assert summary["why"] == "Not decided: no face was found in any of the 2 windows analysed."
    assert (
        summary["coverage"] == "Looked at 2 windows of 10 frames (0 with a face followed throughout), 0.8 s of "
        "the 10.0 s video; no face."
    )


def test_a_photo_speaks_of_photos_and_faces():
    result = video_result("REAL", [person(0, [0], [0.05], "REAL"), person(1, [0], [0.1], "REAL")], [])
    result["video"] = {"kind": "image", "width": 800, "height": 600}
    summary = summarize(result)
    assert "this photo" in summary["headline"] and "video" not in summary["text"]
    assert "Face 2 (the most suspicious) has a fake probability of 0.100" in summary["meaning"]
    assert summary["coverage"] == "Looked at the whole photo (800 x 600 pixels); 2 faces."


def test_an_uncalibrated_checkpoint_gives_a_raw_score_not_a_probability():
    result = video_result("FAKE", [person(0, [0], [0.99], "FAKE")], [window(0, 0.0, [(0, 0.99)])])
    result["calibration"] = {"calibrated": False}
    assert "Person 1 has a raw score of 0.990" in summarize(result)["meaning"]
    assert "not a probability one can rely on" in summarize(result)["meaning"]
