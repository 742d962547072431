"""A folder of frame images read as a video: the same :class:`~.video.VideoInfo`, windows and frame source.

Datasets often ship videos as extracted frames (``video1/frame_0.jpg``, ``frame_1.jpg``, ...). A folder is probed
into a ``VideoInfo`` (``container`` ``"frames"``, the frame count, the upright size shared by every frame, a frame
rate given by the caller since images carry none), windows are placed on it by ``plan_windows`` as on a video, and
:class:`FrameFolderReader` is a :class:`~.windows.FrameSource` like ``VideoReader``: ``collect_window_faces`` cannot
tell them apart. Frames are ordered by the numbers in their names (``frame_10`` after ``frame_9``), and each is
decoded by :func:`~.images.read_image` (allow-listed formats, a pixel limit before decoding, EXIF orientation
applied), one at a time. A folder without images, or whose frames differ in size, raises a :class:`~.errors.VideoError`
that says so, as a damaged video file does.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator
from math import ceil
from pathlib import Path

import numpy as np
from PIL import Image

from .defaults import DEFAULT_MAX_PIXELS, IMAGE_FORMATS, IMAGE_SUFFIXES, VIDEO_EXTENSIONS
from .errors import EmptyVideoFile, ImageError, UndecodableVideo, VideoNotFound
from .images import read_image
from .timing import StageTimer
from .video import DecodedFrame, VideoInfo

DEFAULT_FRAME_FPS = 30.0  # images carry no frame rate: the one a folder of frames is played at unless told
FRAMES_CONTAINER = "frames"
_VIDEO_SUFFIXES = frozenset(f".{extension}" for extension in VIDEO_EXTENSIONS)
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _natural_key(name: str) -> list[int | str]:
    """Sort key that orders the numbers in a name by value: ``frame_2`` before ``frame_10``."""
    return [int(token) if token.isdigit() else token.lower() for token in re.split(r"(\d+)", name)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images directly in ``folder`` (jpg, jpeg, png, webp; hidden files aside), in numeric order."""
    found = [
        path
        for path in Path(folder).iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    ]
    return sorted(found, key=lambda path: (_natural_key(path.name), path.name))


def is_frame_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds frame images and no video file: then it is one video made of frames."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    names = [path for path in folder.iterdir() if path.is_file()]
    has_video = any(path.suffix.lower() in _VIDEO_SUFFIXES for path in names)
    return not has_video and any(path.suffix.lower() in IMAGE_SUFFIXES for path in names)


def _upright_size(path: Path) -> tuple[int, int, str]:
    """Width and height as displayed (EXIF orientation applied) and the format, from the header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=list(IMAGE_FORMATS)) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1)
                fmt = str(image.format)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableVideo(
            f"frame '{path.name}' of '{path.parent.name}' is not a JPEG, PNG or WebP image this app can read "
            "(a renamed or damaged file?)."
        ) from exc
    return (height, width, fmt) if orientation in _TURNED else (width, height, fmt)


def probe_frame_folder(folder: str | os.PathLike, fps: float = DEFAULT_FRAME_FPS) -> VideoInfo:
    """The folder as a video of its frames at ``fps``: every frame's header is read (not its pixels) so that a
    folder without images, or with frames of different sizes, is refused here with a message naming them."""
    folder = Path(folder)
    if fps <= 0:
        raise ValueError(f"a frame folder's frame rate must be positive, got {fps}")
    if not folder.is_dir():
        raise VideoNotFound(f"'{folder}' is not a folder of frames.")
    files = frame_files(folder)
    if not files:
        raise EmptyVideoFile(
            f"'{folder.name}' is a folder without frame images ({', '.join(IMAGE_SUFFIXES)}): nothing to analyse."
        )
    width, height, fmt = _upright_size(files[0])
    for path in files[1:]:
        other_width, other_height, _ = _upright_size(path)
        if (other_width, other_height) != (width, height):
            raise UndecodableVideo(
                f"the frames of '{folder.name}' differ in size: '{files[0].name}' is {width} x {height}, "
                f"'{path.name}' is {other_width} x {other_height}; every frame of a video must have one size."
            )
    return VideoInfo(
        path=str(folder),
        container=FRAMES_CONTAINER,
        codec=fmt.lower(),
        width=width,
        height=height,
        rotation=0,
        fps=float(fps),
        frame_count=len(files),
        frame_count_exact=True,
        duration=len(files) / fps,
        start_time=0.0,
        variable_frame_rate=False,
        has_audio=False,
        size_bytes=sum(path.stat().st_size for path in files),
    )


class FrameFolderReader:
    """Reads the frames of windows from a probed frame folder, one image at a time; the ``VideoReader`` interface.

    ``read_window`` yields :class:`DecodedFrame` objects (upright RGB, the frame's number as its index, number / fps
    as its time); fewer come when the folder ends first, and ``ended_at`` then tells where. With a ``timer`` the
    seconds spent decoding count for its ``decode`` stage.
    """

    def __init__(self, info: VideoInfo, timer: StageTimer | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.info = info
        self._files = frame_files(info.path)
        self._timer = timer
        self._max_pixels = max_pixels
        self.ended_at: float | None = None
        self.frames_decoded = 0

    def __enter__(self) -> FrameFolderReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between frames; here for the reader interface."""

    def read_window(self, start_time: float, count: int) -> Iterator[DecodedFrame]:
        """Up to ``count`` consecutive frames from the first one shown at or after ``start_time``."""
        fps = self.info.fps
        first = max(0, ceil(start_time * fps - 0.5))
        for index in range(first, first + count):
            if index >= len(self._files):
                self.ended_at = (len(self._files) - 1) / fps
                return
            started = time.perf_counter()
            image = self._read(self._files[index])
            self.frames_decoded += 1
            if self._timer is not None:
                self._timer.add("decode", time.perf_counter() - started)
            yield DecodedFrame(index=index, time=index / fps, image=image)

    def _read(self, path: Path) -> np.ndarray:
        try:
            image, _ = read_image(path, self._max_pixels)
        except ImageError as exc:
            raise UndecodableVideo(f"frame '{path.name}' of '{path.parent.name}': {exc.message}") from exc
        if image.shape[:2] != (self.info.height, self.info.width):
            height, width = image.shape[:2]
            raise UndecodableVideo(
                f"the frames of '{path.parent.name}' differ in size: '{path.name}' is {width} x {height}, the "
                f"folder's frames {self.info.width} x {self.info.height}; every frame of a video must have one size."
            )
        return image
