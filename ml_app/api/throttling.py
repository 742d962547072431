"""Request rates (settings REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], from API_RATE, API_UPLOAD_RATE and
SITE_UPLOAD_RATE), kept in the shared cache (the database's by default, Redis with CACHE_URL) so that they hold
across web processes and machines.

DRF's throttles read the request history from the cache, add to it and write it back: two processes doing that at
once both take the last free place. Here that read-modify-write runs under a lock in the same cache (``cache.add``
is atomic in the database cache, Redis and local memory), so a rate of 20 lets exactly 20 through however many
arrive together.

Client addresses come from REMOTE_ADDR, or from X-Forwarded-For only as far as DJANGO_NUM_PROXIES trusted proxies
put it there: a client cannot pick a new address per request to escape its limit.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

log = logging.getLogger(__name__)


@contextmanager
def cache_lock(cache, key: str, seconds: float = 5.0) -> Iterator[None]:
    """Hold ``key`` in ``cache`` for the block. A holder that died leaves a lock that expires after ``seconds``;
    waiting longer than that goes ahead without it (and says so in the log) rather than refusing everyone."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + seconds + 1
    pause = 0.002
    while not cache.add(key, token, math.ceil(seconds)):
        if time.monotonic() > deadline:
            log.warning("Throttle lock %s not released after %s s; going ahead without it", key, seconds)
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    try:
        yield
    finally:
        if cache.get(key) == token:
            cache.delete(key)


class AtomicRateThrottle(SimpleRateThrottle):
    """DRF's sliding-window throttle with its history updated under a cache lock."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        with cache_lock(self.cache, f"{key}:lock"):
            return super().allow_request(request, view)

    def retry_after(self) -> int:
        """Whole seconds until the next request may succeed (at least 1)."""
        wait = self.wait()
        return max(1, math.ceil(wait if wait is not None else self.duration or 1))


class UserBurstThrottle(AtomicRateThrottle, UserRateThrottle):
    """All requests of one user."""

    scope = "user"


class UploadThrottle(AtomicRateThrottle, UserRateThrottle):
    """Uploads of one user (through the API or the site): analyses cost minutes of CPU, reading results costs
    nothing."""

    scope = "uploads"

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class AnonymousUploadThrottle(AtomicRateThrottle):
    """Uploads of anonymous visitors of the site, per client address."""

    scope = "anonymous_uploads"

    def get_cache_key(self, request, view) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def site_upload_wait(request) -> int | None:
    """For an upload through the site's form: None if the caller may upload now, else the seconds to wait. A
    signed-in user spends the same budget as through the API; an anonymous visitor has their address's."""
    user = getattr(request, "user", None)
    throttle = UploadThrottle() if user is not None and user.is_authenticated else AnonymousUploadThrottle()
    if throttle.allow_request(request, None):
        return None
    return throttle.retry_after()
