"""The folders of kombu's filesystem transport, the broker that needs no server."""

from __future__ import annotations

from pathlib import Path


def filesystem_transport_options(queue_dir: Path) -> dict[str, str]:
    """Celery's broker_transport_options for a queue in ``queue_dir``, its folders created."""
    options = {
        "data_folder_in": str(queue_dir / "messages"),
        "data_folder_out": str(queue_dir / "messages"),
        "control_folder": str(queue_dir / "control"),
    }
    for folder in options.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    return options
