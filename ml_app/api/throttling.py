"""Per-user request rates (settings REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], from API_RATE and API_UPLOAD_RATE)."""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle


class UserBurstThrottle(UserRateThrottle):
    """All requests of one user."""

    scope = "user"


class UploadThrottle(UserRateThrottle):
    """Uploads of one user: analyses cost minutes of CPU, reading results costs nothing."""

    scope = "uploads"

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
