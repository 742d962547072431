"""Decoded frames to pixels, and how FFmpeg decodes them: its threads, and which frames it may leave undecoded.

Kept apart from :mod:`.video` (probing, sampling, the reader) so that each stays small; the reader is the only caller.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Literal

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

ThreadType = Literal["NONE", "SLICE", "FRAME", "AUTO"]

# FFmpeg's decoding threads (measured in bench/README.md): AUTO is frame threading where the codec has it; x264 writes
# one slice per frame, so SLICE threading has nothing to split. 0 threads: FFmpeg's choice (cores + 1 frame threads).
DECODE_THREAD_TYPE: ThreadType = "AUTO"
DECODE_THREADS = 0

# Decoders whose AVDISCARD_NONREF drops only frames no other frame is predicted from, in containers that time every
# packet: not decoding such a frame shown before a window cannot change a pixel of the window.
SKIP_NONREF_CODECS = frozenset({"h264", "hevc"})
SKIP_NONREF_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS), where there is nothing to do."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()

_ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def rotate_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate counter-clockwise by ``rotation`` degrees (a multiple of 90)."""
    return cv2.rotate(image, _ROTATIONS[rotation]) if rotation in _ROTATIONS else image


def convert_frame(frame: av.VideoFrame, reformatter: VideoReformatter, rotation: int) -> np.ndarray:
    """A decoded frame's RGB pixels, upright: the one conversion a frame of a window gets (no other frame gets one).

    The reader's single swscale context, on one thread, gives the pixels ``frame.to_ndarray(format="rgb24")`` gives,
    without setting up a context and its threads per frame. The array is a view of the converted frame's buffer,
    not a copy; only a rotated video pays for one more (the rotation).
    """
    return rotate_image(reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray(), rotation)


def release_frame_memory() -> None:
    """Give the freed frame buffers back to the system once a video is done.

    glibc keeps what a thread frees in that thread's arena; the decoder, the scorer and the window loop each have
    one, so without this a worker's peak memory crept up by about 150 MB over its first few 1080p videos (a few
    milliseconds per video; bench/README.md).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)
