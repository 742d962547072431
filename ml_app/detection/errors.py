"""Errors the detection core raises.

Every error carries a stable ``code`` (for APIs and recorded failures) and a message written for the person who
supplied the input: what is wrong with *their* file and, where there is one, what to do about it.
"""

from __future__ import annotations


class DetectionError(Exception):
    """Base class: a problem with the input or configuration, never a bug."""

    code = "detection_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- video ----------------------------------------------------------------------------------------------------------


class VideoError(DetectionError):
    code = "video_error"


class VideoNotFound(VideoError):
    code = "video_not_found"


class EmptyVideoFile(VideoError):
    code = "empty_file"


class NotAVideo(VideoError):
    """The file is not a container FFmpeg can read (a text file renamed .mp4, an image, random bytes)."""

    code = "not_a_video"


class NoVideoStream(VideoError):
    """The container is readable but holds no video stream (for example an audio-only file)."""

    code = "no_video_stream"


class UndecodableVideo(VideoError):
    """The container opens but not a single frame decodes (truncated before the first frame, unsupported codec)."""

    code = "undecodable_video"


# --- images ---------------------------------------------------------------------------------------------------------


class ImageError(DetectionError):
    code = "image_error"


class ImageNotFound(ImageError):
    code = "image_not_found"


class EmptyImageFile(ImageError):
    code = "empty_file"


class NotAnImage(ImageError):
    """Not a JPEG, PNG or WebP that Pillow can decode (renamed text, truncated data, another format)."""

    code = "not_an_image"


class ImageTooLarge(ImageError):
    """More pixels than the limit: decoding would take too much memory (a decompression bomb, or a huge scan)."""

    code = "image_too_large"


class ImageTooSmall(ImageError):
    code = "image_too_small"


# --- checkpoints ----------------------------------------------------------------------------------------------------


class CheckpointError(DetectionError):
    code = "checkpoint_error"


class CheckpointNotFound(CheckpointError):
    code = "checkpoint_not_found"


class NotACheckpoint(CheckpointError):
    code = "not_a_checkpoint"


class HtmlNotCheckpoint(NotACheckpoint):
    """A web page saved under a .pt name: the usual result of a dead or password-protected download link."""

    code = "html_not_checkpoint"


class TruncatedCheckpoint(CheckpointError):
    code = "truncated_checkpoint"


class UnsafeCheckpoint(CheckpointError):
    """The pickle inside refers to Python objects that plain tensors and containers do not need: it could run code."""

    code = "unsafe_checkpoint"


class LegacyStateDict(CheckpointError):
    """A bare state dict of the original ResNeXt+LSTM app: loadable only after ``import_checkpoint``."""

    code = "legacy_state_dict"


class UnsupportedCheckpointVersion(CheckpointError):
    code = "unsupported_checkpoint_version"


class ArchitectureMismatch(CheckpointError):
    code = "architecture_mismatch"


class NoCheckpointForLength(CheckpointError):
    code = "no_checkpoint_for_length"


# --- links (ml_app.fetching) ---------------------------------------------------------------------------------------


class FetchError(DetectionError):
    """A link that could not be fetched (raised by ``ml_app.fetching``); the message is for who pasted it."""

    code = "fetch_error"


class InvalidURL(FetchError):
    code = "invalid_url"


class RefusedAddress(FetchError):
    """The host resolves to an address the fetcher does not connect to; ``reason`` names which kind."""

    code = "address_refused"

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class HostNotFound(FetchError):
    code = "host_not_found"


class ConnectionFailed(FetchError):
    code = "connection_failed"


class TooManyRedirects(FetchError):
    code = "too_many_redirects"


class HTTPStatusError(FetchError):
    """The server answered with an error status; ``status`` holds it."""

    code = "http_error"

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class NotFound(HTTPStatusError):
    code = "not_found"


class AccessDenied(HTTPStatusError):
    """401 or 403: the page needs a login, or the site refuses downloads."""

    code = "access_denied"


class TooLarge(FetchError):
    code = "too_large"


class FetchTimeout(FetchError):
    code = "timeout"


class SlowTransfer(FetchError):
    code = "too_slow"


class NotMedia(FetchError):
    """The link serves something that is neither a video, a photo nor a web page (JSON, a PDF, a zip)."""

    code = "not_media"


class NoVideoFound(FetchError):
    """A web page where yt-dlp found no video."""

    code = "no_video_found"


class LoginRequired(FetchError):
    code = "login_required"


class NotASingleVideo(FetchError):
    """A playlist, a channel, or a page with several videos."""

    code = "not_a_single_video"


class LiveStream(FetchError):
    code = "live_stream"


class LinkedVideoTooLong(FetchError):
    """The page says how long the video is, and that is over the limit: nothing is downloaded."""

    code = "too_long"


# --- configuration --------------------------------------------------------------------------------------------------


class ConfigurationError(DetectionError):
    code = "configuration_error"
