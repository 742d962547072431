"""Benchmark: how long a user waits on the site, against the command line, in one run.

    .venv/bin/python bench/bench_site.py --samples ../shared/data/samples/videos
    .venv/bin/python bench/bench_site.py --clips dfdc_abqwwspghj hamilton_360p street_1080p

It starts ``./run.sh`` in a fresh state folder (bench_load.py's ``Site``: gunicorn, one Celery worker, SQLite, the
filesystem queue), warms the worker with one small generated clip (so the checkpoint load is not counted), then for
each sample clip:

* uploads it through the API and times, from the upload's answer (the file is in): the verdict (``status`` done, the
  result readable) and the heat maps (``heatmaps`` no longer ``pending``), polling every 0.2 s;
* runs ``manage.py analyze_video CLIP --heatmaps flagged --json`` with the same settings, and takes its own timings:
  the analysis without the maps (``total`` - ``heatmaps``) and with them (``total``).

Issue 29's targets: verdict on the site at most 1.5x the command line's analysis, heat maps included at most 2x.
Writes bench/out/site.json and prints a Markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.bench_load import Site, make_videos  # noqa: E402

DEFAULT_SAMPLES = REPO.parent / "shared" / "data" / "samples" / "videos"


def on_site(site: Site, token: str, video: Path, timeout: float) -> dict:
    """Upload ``video`` and wait for its verdict and its heat maps; seconds from the upload's answer."""
    headers = {"Authorization": f"Token {token}"}
    sent = time.monotonic()
    with video.open("rb") as handle:
        reply = requests.post(
            f"{site.url}/api/v1/analyses/", headers=headers, files={"video": (video.name, handle)}, timeout=300
        )
    uploaded = time.monotonic()
    reply.raise_for_status()
    url = f"{site.url}/api/v1/analyses/{reply.json()['id']}/"
    verdict_at = maps_at = None
    state: dict = {}
    deadline = uploaded + timeout
    while time.monotonic() < deadline:
        state = requests.get(url, headers=headers, timeout=30).json()
        now = time.monotonic()
        if state["status"] == "failed":
            raise RuntimeError(f"{video.name}: {state['error']}")
        if state["status"] == "done" and verdict_at is None:
            verdict_at = now
        if verdict_at is not None and state.get("heatmaps") != "pending":
            maps_at = now
            break
        time.sleep(0.2)
    if verdict_at is None or maps_at is None:
        raise TimeoutError(f"{video.name}: not finished after {timeout} s ({state.get('stage')})")
    return {
        "upload": uploaded - sent,
        "verdict": verdict_at - uploaded,
        "heatmaps": maps_at - uploaded,
        "heatmaps_state": state.get("heatmaps"),
        "result_verdict": state["result"]["verdict"],
        "worker_timings": state["result"].get("timings"),
    }


def on_command_line(site: Site, video: Path) -> dict:
    started = time.monotonic()
    found = json.loads(site.manage("analyze_video", str(video), "--heatmaps", "flagged", "--json"))
    timings = found["timings"]
    return {
        "wall": time.monotonic() - started,
        "analysis": timings["total"] - timings.get("heatmaps", 0.0),
        "with_heatmaps": timings["total"],
        "heatmaps": timings.get("heatmaps", 0.0),
        "verdict": found["verdict"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=["dfdc_abqwwspghj", "hamilton_360p"])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for run.sh")
    args = parser.parse_args()
    env = {"API_RATE": "100000/min", "API_UPLOAD_RATE": "1000/hour", **dict(e.split("=", 1) for e in args.env)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-site-") as folder:
        root = Path(folder)
        site = Site(root / "state", env)
        try:
            site.wait_ready()
            token = site.manage("create_api_token", "bench", "--create-user").strip()
            on_site(site, token, make_videos(root, 1, 30)[0], args.timeout)  # the worker loads the checkpoint
            for clip in args.clips:
                video = next(args.samples.rglob(f"{clip}.mp4"))
                site_row = on_site(site, token, video, args.timeout)
                cli_row = on_command_line(site, video)
                rows.append({"clip": clip, "site": site_row, "command_line": cli_row})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            site.stop()
    lines = [
        "| clip | command line: analysis | with maps | site: upload to verdict | ratio | upload to maps | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cli, web = row["command_line"], row["site"]
        lines.append(
            f"| {row['clip']} | {cli['analysis']:.2f} s | {cli['with_heatmaps']:.2f} s | {web['verdict']:.2f} s | "
            f"{web['verdict'] / cli['analysis']:.2f}x | {web['heatmaps']:.2f} s ({web['heatmaps_state']}) | "
            f"{web['heatmaps'] / cli['with_heatmaps']:.2f}x |"
        )
    print("\n".join(lines))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "site.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
