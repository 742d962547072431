"""Benchmark: concurrent uploads through the API against ``./run.sh`` (gunicorn and one Celery worker, the default
SQLite database and filesystem queue), from 127.0.0.1 only.

    .venv/bin/python bench/bench_load.py                                  # 50 uploads by one user, defaults
    .venv/bin/python bench/bench_load.py --users 5 --env MAX_QUEUED_ANALYSES=30

It starts run.sh in a fresh state folder (its own database, media, queue and cache table), makes one API user per
``--users``, generates ``--uploads`` distinct small face videos (so that no upload reuses another's result), sends
them all at once (one thread each, spread over the users in turn), then polls the API until every accepted analysis
is done or failed, or ``--timeout`` passes. It reports:

* accepted (202), throttled (429), queue full (503) and other answers;
* done, failed, and lost: accepted analyses that never finished, or that the API no longer knows;
* the upload wall time (first request sent to last answer) and the queue drain time (last answer to the last
  analysis finished);
* whether ``MEDIA_ROOT/incoming`` is empty afterwards and the server's log free of tracebacks.

Writes bench/out/load.json and prints a Markdown table. Not part of CI: it takes a few minutes (the worker analyses
every accepted video).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_videos(folder: Path, count: int, frames: int) -> list[Path]:
    """``count`` different 320x240 videos of the astronaut's portrait (each placed elsewhere, so no two match)."""
    from tests import media

    return [
        media.face_video(folder / f"clip_{n:03d}.mp4", frames=frames, width=320, height=240, faces=((20 + n, 20, 180),))
        for n in range(count)
    ]


class Site:
    """./run.sh in its own state folder, its output in a log file."""

    def __init__(self, state: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state
        self.env = {
            **os.environ,
            "STATE_DIR": str(state),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "API_PAGE_SIZE": "100",
            "PYTHONWARNINGS": "ignore",
            **env,
        }
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "MEDIA_ROOT", "QUEUE_DIR"):
            if name not in env:
                self.env.pop(name, None)  # the defaults: everything under the fresh state folder
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = state / "run.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["./run.sh"], cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def manage(self, *args: str) -> str:
        command = [str(REPO / ".venv" / "bin" / "python"), "manage.py", *args]
        return subprocess.run(command, cwd=REPO, env=self.env, check=True, capture_output=True, text=True).stdout

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"run.sh exited:\n{self.log()[-3000:]}")
            worker_ready = " ready." in self.log()
            try:
                if worker_ready and requests.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"run.sh not serving after {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def upload_all(site: Site, videos: list[Path], tokens: list[str], length: int) -> tuple[list[dict], float]:
    """Send every video at once; each answer with its status, its code and the analysis' id if accepted."""
    start = threading.Barrier(len(videos))

    def send(number: int) -> dict:
        token = tokens[number % len(tokens)]
        data = videos[number].read_bytes()
        start.wait()
        try:
            reply = requests.post(
                f"{site.url}/api/v1/analyses/",
                headers={"Authorization": f"Token {token}"},
                files={"video": (videos[number].name, data)},
                data={"sequence_length": str(length)},
                timeout=300,
            )
        except requests.RequestException as exc:
            return {"status": None, "code": type(exc).__name__, "token": token}
        body = reply.json() if reply.headers.get("Content-Type", "").startswith("application/json") else {}
        return {
            "status": reply.status_code,
            "code": (body.get("error") or {}).get("code") if reply.status_code != 202 else "accepted",
            "id": body.get("id") if reply.status_code == 202 else None,
            "retry_after": reply.headers.get("Retry-After"),
            "token": token,
            "answered": time.monotonic(),
        }

    started = time.monotonic()
    with ThreadPoolExecutor(len(videos)) as pool:
        answers = list(pool.map(send, range(len(videos))))
    return answers, started


def drain(site: Site, answers: list[dict], timeout: float) -> tuple[dict[str, str], float]:
    """Poll each user's list (one call per user every 2 s, well within API_RATE) until every accepted analysis has
    finished; the last state seen of each, and when the last one finished."""
    wanted = {answer["id"]: answer["token"] for answer in answers if answer["id"]}
    states: dict[str, str] = {}
    finished_at = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for token in set(wanted.values()):
            page = requests.get(
                f"{site.url}/api/v1/analyses/", headers={"Authorization": f"Token {token}"}, timeout=30
            ).json()
            for analysis in page["results"]:
                if analysis["id"] in wanted:
                    if analysis["status"] in ("done", "failed") and states.get(analysis["id"]) not in (
                        "done",
                        "failed",
                    ):
                        finished_at = time.monotonic()
                    states[analysis["id"]] = analysis["status"]
        if all(states.get(pk) in ("done", "failed") for pk in wanted):
            break
        time.sleep(2)
    return {pk: states.get(pk, "missing") for pk in wanted}, finished_at


def run(args) -> dict:
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        root = Path(folder)
        videos = make_videos(root, args.uploads, args.frames)
        site = Site(root / "state", env)
        try:
            site.wait_ready()
            tokens = [site.manage("create_api_token", f"bench{n}", "--create-user").strip() for n in range(args.users)]
            answers, started = upload_all(site, videos, tokens, args.length)
            last_answer = max(answer.get("answered", started) for answer in answers)
            states, finished_at = drain(site, answers, args.timeout)
            incoming = site.state / "media" / "incoming"
            leftovers = sorted(path.name for path in incoming.iterdir()) if incoming.exists() else []
            log = site.log()
        finally:
            site.stop()
    codes = Counter(answer["code"] for answer in answers)
    outcome = Counter(states.values())
    return {
        "uploads": args.uploads,
        "users": args.users,
        "env": env,
        "accepted": codes.pop("accepted", 0),
        "throttled": codes.pop("throttled", 0),
        "queue_full": codes.pop("queue_full", 0),
        "other": dict(codes),
        "done": outcome["done"],
        "failed": outcome["failed"],
        "lost": sum(count for state, count in outcome.items() if state not in ("done", "failed")),
        "upload_seconds": round(last_answer - started, 2),
        "drain_seconds": round(max(0.0, finished_at - last_answer), 2) if states else 0.0,
        "retry_after": sorted({answer["retry_after"] for answer in answers if answer.get("retry_after")}),
        "incoming_left": leftovers,
        "tracebacks": len(re.findall(r"^Traceback", log, re.M)),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| uploads | users | settings | accepted | throttled (429) | queue full (503) | other | done | failed | lost "
        "| upload wall s | queue drain s | incoming/ after | tracebacks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        settings = ", ".join(f"{k}={v}" for k, v in r["env"].items()) or "defaults"
        other = ", ".join(f"{k}: {v}" for k, v in r["other"].items()) or "0"
        lines.append(
            f"| {r['uploads']} | {r['users']} | {settings} | {r['accepted']} | {r['throttled']} | {r['queue_full']} "
            f"| {other} | {r['done']} | {r['failed']} | **{r['lost']}** | {r['upload_seconds']} | {r['drain_seconds']} "
            f"| {'empty' if not r['incoming_left'] else len(r['incoming_left'])} | {r['tracebacks']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--users", type=int, default=1, help="API users the uploads are spread over")
    parser.add_argument("--frames", type=int, default=30, help="frames per generated video")
    parser.add_argument("--length", type=int, default=10, help="sequence length asked for")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the queue to drain")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for run.sh")
    args = parser.parse_args()
    if args.uploads > 200:
        parser.error("at most 200 uploads: this is a bounded benchmark against 127.0.0.1")
    result = run(args)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")
    print(table([result]))


if __name__ == "__main__":
    main()
