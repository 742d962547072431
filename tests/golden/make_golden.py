"""Writes the golden record of ``manage.py analyze_video --json``: generated videos, the shipped default models.

Run from the project folder: ``.venv/bin/python -m tests.golden.make_golden [OUT.json]``. The first record was made
with the code before the pipeline was cut into its jobs (issue 10) and proved the redesign changed no answer; it was
written again when the shipped models got their calibration and the verdict its three outcomes (issue 13), and when
the 20-frame model was rebuilt with the CenterFace detector (issue 11; the 10-frame answers stayed the same to the
record's tolerance), when recipe 2's files replaced recipe 1's (issue 16), and when they were rebuilt with photos
and the choice's cost term (issue 16 again: MobileNetV2 at 112 px), which change the answers on purpose.
``tests/test_golden.py`` checks that the code of today still gives the recorded verdicts, probabilities, thresholds,
windows and people: re-record only for a change meant to change them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import media

REPO = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).with_name("analyze_video.json")
# Parts of the result that describe the decision; timings and crop file names are left out.
STABLE_KEYS = (
    "verdict",
    "reason",
    "fake_probability",
    "confidence",
    "raw_probability",
    "thresholds",
    "calibration",
    "sequence_length",
    "windows_scored",
    "windows",
    "people",
    "video",
    "warnings",
)


def face_then_empty(path: Path, frames: int = 60) -> Path:
    """A face for the first third, then only the background: scored, face-lost and faceless windows in one video."""
    faces = ((140, 60, 200),)
    return media.write_video(path, (media.scene(480, 360, faces if n < frames // 3 else (), n) for n in range(frames)))


def videos(folder: Path) -> dict[str, Path]:
    """The golden videos, made by the tests' own media helpers."""
    return {
        "one_face": media.face_video(folder / "one_face.mp4", frames=48),
        "two_faces": media.face_video(
            folder / "two_faces.mp4", frames=30, width=720, height=360, faces=((30, 60, 220), (420, 80, 220))
        ),
        "faceless": media.faceless_video(folder / "faceless.mp4", frames=30),
        "face_then_empty": face_then_empty(folder / "face_then_empty.mp4"),
    }


CHECKPOINTS = {10: "models/default_mobilenet_v2_10_frames.pt", 20: "models/default_mobilenet_v2_20_frames.pt"}


def stable(result: dict) -> dict:
    data = {key: result[key] for key in STABLE_KEYS}
    data["video"] = {key: value for key, value in result["video"].items() if key != "path"}  # a temporary folder
    data["checkpoint_sha256"] = result["checkpoint"]["sha256"]
    return data


# The shipped files call every generated video INCONCLUSIVE; one analysis with a user's thresholds keeps a FAKE
# verdict (and its confidence) in the record.
USER_THRESHOLDS = ("--fake-threshold", "0.4", "--real-threshold", "0.2")
WITH_THRESHOLDS = "one_face@20 user thresholds"


def analyse(project: Path, video: Path, checkpoint: str, *extra: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "manage.py", "analyze_video", str(video), "--checkpoint", checkpoint, "--json", *extra],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return stable(json.loads(completed.stdout))


def record(project: Path, folder: Path) -> dict[str, dict]:
    made = videos(folder)
    data = {
        f"{name}@{length}": analyse(project, path, CHECKPOINTS[length])
        for name, path in made.items()
        for length in CHECKPOINTS
    }
    data[WITH_THRESHOLDS] = analyse(project, made["one_face"], CHECKPOINTS[20], *USER_THRESHOLDS)
    return data


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else RECORD
    with tempfile.TemporaryDirectory() as folder:
        data = record(REPO, Path(folder))
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}: {len(data)} analyses")
