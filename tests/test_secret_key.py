"""The generated secret key: many processes starting at once on empty state folders all end with one key each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .conftest import REPO

FOLDERS = 100
# Each child waits for the same moment, then asks for the key of each empty folder in turn, so that the children
# race on many folders: the check-then-create window is narrow, one folder alone rarely shows the race.
CHILD = (
    "import json, sys, time; from pathlib import Path; from project_settings.env import secret_key;"
    "start, base, count = float(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]);"
    "time.sleep(max(0.0, start - time.time()));"
    "print(json.dumps([secret_key(base / f's{i}') for i in range(count)]))"
)


def test_processes_starting_together_share_one_whole_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    start = time.time() + 3.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(start), str(tmp_path), str(FOLDERS)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    results = [child.communicate(timeout=120) for child in children]
    failures = [err for child, (_, err) in zip(children, results, strict=True) if child.returncode != 0]
    assert not failures, f"{len(failures)} of {len(children)} processes failed:\n{failures[0][-2000:]}"
    per_child = [json.loads(out) for out, _ in results]
    for index in range(FOLDERS):
        state = tmp_path / f"s{index}"
        keys = {keys[index] for keys in per_child}
        assert len(keys) == 1, f"folder {index}: {len(keys)} different keys"
        key = keys.pop()
        assert len(key) > 40, f"folder {index}: a partial key {key!r}"
        assert (state / "secret_key").read_text() == key, "the file holds the whole key every process uses"
        assert [p.name for p in state.iterdir()] == ["secret_key"], "no temporary file is left behind"
        assert (state / "secret_key").stat().st_mode & 0o077 == 0
