"""Benchmark: a cold ``manage.py analyze_video`` (a fresh process: imports, checkpoint load, one analysis).

    .venv/bin/python bench/bench_cold_start.py                       # the 10 s 1080p sample clip, default model
    .venv/bin/python bench/bench_cold_start.py --checkpoint A.pt --checkpoint B.pt --runs 3
    .venv/bin/python bench/bench_cold_start.py --before ../old-checkout   # A/B against another checkout's code

Each run is a new ``manage.py analyze_video CLIP --json`` process, timed from outside (wall seconds, peak memory);
runs of the checkpoints (and of the ``--before`` checkout's code) alternate, so a busy machine slows them alike.
One more run per case under ``python -X importtime`` splits the imports by top-level package. Prints a Markdown
table. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO.parent / "shared" / "data" / "samples" / "videos" / "fake" / "dfdc_abqwwspghj.mp4"
TARGET_SECONDS = 6.0  # issue 11


def cold_run(clip: Path, checkpoint: str | None, importtime: bool = False, repo: Path = REPO) -> dict:
    """One fresh analyze_video process in ``repo``: its wall seconds, peak RSS, the analysis' own timings."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "manage.py", "analyze_video", str(clip)]
    command += ["--json", *(["--checkpoint", checkpoint] if checkpoint else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env={**os.environ}, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"analyze_video failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    row = {
        "wall": wall,
        "peak_rss_mb": max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024,
        "timings": result.get("timings", {}),
        "verdict": result.get("verdict"),
    }
    if importtime:
        row["imports"] = top_level_imports(done.stderr)
    return row


def top_level_imports(stderr: str) -> dict[str, float]:
    """Cumulative seconds per top-level import (``-X importtime`` lines whose module is not indented)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
            key = name.strip().split(".")[0]
            found[key] = found.get(key, 0.0) + int(cumulative) / 1e6
    return found


def _label(checkpoint: str | None) -> str:
    """A checkpoint's path below the project's parent folder (two checkouts may hold files of the same name)."""
    if checkpoint is None:
        return "default mapping"
    path = Path(checkpoint)
    return str(path.relative_to(REPO.parent)) if path.is_relative_to(REPO.parent) else str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--checkpoint", action="append", help="a checkpoint file (default: the default mapping's)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout of the project, timed alternately (A/B)")
    args = parser.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"No clip at {args.clip}; give --clip.")
    repos = {"this checkout": REPO, **({f"{args.before.name} (before)": args.before.resolve()} if args.before else {})}
    checkpoints = [str(Path(path).resolve()) for path in args.checkpoint or []] or [None]  # the same file for both
    cases = [(name, checkpoint) for name in repos for checkpoint in checkpoints]
    rows: dict[tuple[str, str | None], list[dict]] = {case: [] for case in cases}
    load = os.getloadavg()
    for _ in range(args.runs):
        for name, checkpoint in cases:
            rows[name, checkpoint].append(cold_run(args.clip, checkpoint, repo=repos[name]))
    imports = {
        (name, checkpoint): cold_run(args.clip, checkpoint, importtime=True, repo=repos[name])["imports"]
        for name, checkpoint in cases
    }
    print(f"Clip {args.clip.name}; load average before / after: {load} / {os.getloadavg()}.\n")
    print(
        f"| code | checkpoint | cold wall s, median (all) | target {TARGET_SECONDS:.0f} s | analysis total s "
        "| checkpoint load s | imports s (largest) | peak RSS MB | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, checkpoint), runs in rows.items():
        walls = [run["wall"] for run in runs]
        median = statistics.median(walls)
        largest = sorted(imports[name, checkpoint].items(), key=lambda item: -item[1])[:4]
        biggest = ", ".join(f"{package} {seconds:.2f}" for package, seconds in largest)
        print(
            f"| {name} | {_label(checkpoint)} | **{median:.2f}** "
            f"({', '.join(f'{wall:.2f}' for wall in walls)}) | {'met' if median <= TARGET_SECONDS else 'not met'} | "
            f"{statistics.median(run['timings'].get('total', float('nan')) for run in runs):.2f} | "
            f"{statistics.median(run['timings'].get('checkpoint_load', float('nan')) for run in runs):.2f} | "
            f"{sum(imports[name, checkpoint].values()):.2f} ({biggest}) | "
            f"{max(run['peak_rss_mb'] for run in runs):.0f} | {runs[-1]['verdict']} |"
        )


if __name__ == "__main__":
    main()
