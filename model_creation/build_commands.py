"""What the commands that rebuild a shipped model (``build_default_model``, ``build_photo_model``) share: where the
shared data and the outputs go, and running each step as the management command a user would run by hand."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class BuildCommand(BaseCommand):
    """A rebuild of a shipped model from ``../shared/data``: its steps are the project's own commands."""

    def add_build_arguments(self, parser: CommandParser, work: str, work_help: str) -> None:
        """--data, --work, --seed, --workers, --install-dir and --no-install, the same in every rebuild."""
        parser.add_argument("--data", default=str(Path(settings.BASE_DIR).parent / "shared" / "data"))
        parser.add_argument("--work", default=work, help=work_help)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--workers", type=int, default=2, help="processes for preprocessing and data loading")
        parser.add_argument("--install-dir", default=str(settings.MODELS_DIR), help="where the checkpoints go")
        parser.add_argument("--no-install", action="store_true", help="train and evaluate, install nothing")

    def install_tested(
        self,
        best: Path,
        target: Path,
        test: dict[str, Any],
        source: str,
        origin: dict[str, Any],
        window: int | None = None,
    ) -> str:
        """Install a run's best epoch in half precision, carrying its held-out test metrics (``test``: an
        ``evaluate_model`` report; its video accuracy is what the site shows, ``source`` says what it was measured
        on) and ``origin`` added to the checkpoint's own; returns the file's sha256. ``window``: a frame model is
        installed to score videos in windows of that many frames (mapped under that length, like a sequence model)."""
        from ml_app.detection.checkpoints import load_checkpoint, save_checkpoint

        checkpoint = load_checkpoint(best)
        if window is not None:
            if not checkpoint.architecture.is_frame_model:
                raise ValueError("only a frame model scores a window of frames one by one")
            checkpoint.sequence_length = window
        video = test["overall"]["video"]
        decisions = test.get("decisions") or {}
        checkpoint.metrics = {
            "accuracy": video["accuracy"],
            "auc": video["auc"],
            "eer": video["eer"],
            "decided_share": decisions.get("decided_share"),
            "wrong_among_decided": decisions.get("wrong_among_decided"),
            "accuracy_source": source,
            "test": test["overall"],
            "test_per_method": test["per_method"],
            "validation": checkpoint.metrics,
        }
        checkpoint.origin = {**checkpoint.origin, **origin}
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = save_checkpoint(checkpoint, target, half=True)
        self.stdout.write(f"Installed {target} ({target.stat().st_size / 1e6:.1f} MB, sha256 {sha[:12]}...)")
        return sha

    def _run(self, command: str, *args: Any) -> str:
        """Run one step (a management command); its output is returned, its warnings go to this command's stderr."""
        out = StringIO()
        call_command(command, *map(str, args), stdout=out, stderr=self.stderr)
        return out.getvalue()
