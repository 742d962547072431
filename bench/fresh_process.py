"""Running one measurement in a fresh Python process, as the benchmarks that compare settings do: each figure then
starts from the same state (no kernels picked, no allocator grown, no module cache) whatever ran before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def child_result(script: str | Path, *args: str) -> dict[str, Any]:
    """Run ``python script *args`` from the repository root, warnings silenced; its last line of output, as JSON."""
    output = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])
