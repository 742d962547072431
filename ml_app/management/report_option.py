"""``--report FILE.pdf`` of ``analyze_video`` and ``analyze_image``: the option, its check before the analysis (a path
that cannot be written is refused before minutes are spent), and writing the report after it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

if TYPE_CHECKING:
    from ml_app.detection.results import AnalysisResult


def add_report_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--report",
        metavar="FILE.pdf",
        help="also write a PDF report: verdict and why, checkpoint, the file's properties and sha256, timeline, "
        "a page per person with their face crops, and the limits of the method",
    )


def check_report_path(options: dict[str, Any]) -> None:
    """A CommandError now for a --report path that cannot be written."""
    if not options.get("report"):
        return
    from ml_app.detection.report.command_line import unwritable

    problem = unwritable(options["report"])
    if problem:
        raise CommandError(f"--report: {problem}")


def write_report_option(
    command: BaseCommand, result: AnalysisResult, data: dict[str, Any], options: dict[str, Any]
) -> None:
    """Write the report --report asks for, and say where (on stderr under --json, which keeps stdout JSON)."""
    if not options.get("report"):
        return
    from ml_app.detection.report.command_line import write_file_report

    try:
        written = write_file_report(
            result, data, options["path"], options["report"], options.get("save_crops"), settings.MAX_IMAGE_PIXELS
        )
    except OSError as exc:
        raise CommandError(f"--report: cannot write {options['report']}: {exc.strerror or exc}") from exc
    (command.stderr if options.get("json") else command.stdout).write(f"  report written to {written}")
