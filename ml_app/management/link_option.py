"""``analyze_video URL`` and ``analyze_image URL``: a link instead of a path is fetched first, exactly as the site's
worker fetches one (ml_app.link_media, under the URL_* settings and the upload limits), into a temporary folder that
is removed afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from ml_app.detection.errors import FetchError
from ml_app.link_media import FetchedMedia, fetch_media

EXIT_LINK = 5


def is_link(path: str) -> bool:
    return path.strip().lower().startswith(("http://", "https://"))


@contextmanager
def fetched_path(options: dict, say) -> Iterator[FetchedMedia | None]:
    """For a link in ``options["path"]``: fetch it, point ``options["path"]`` at the file for the block, and say on
    ``say`` (stderr: --json output stays JSON) where it came from. A path is left as it is (None)."""
    link = str(options["path"])
    if not is_link(link):
        yield None
        return
    from ml_app.link_fetch_job import limits

    with tempfile.TemporaryDirectory(prefix="analyze-link-") as folder:
        try:
            media = fetch_media(link, folder, limits())
        except FetchError as error:
            raise CommandError(f"{link}: {error.message}", returncode=EXIT_LINK) from error
        titled = f" (page '{media.title}')" if media.title else ""
        say.write(
            f"Fetched {media.size} bytes from {media.final_url}{titled} at {media.fetched_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        options["path"] = str(media.path)
        yield media
