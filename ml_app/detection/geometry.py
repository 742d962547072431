"""Face boxes in frame coordinates and the little arithmetic that tracking and cropping need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``[x0, x1) x [y0, y1)`` in pixels of the displayed frame."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def size(self) -> float:
        """The face size used for scaling decisions: the longer side."""
        return max(self.width, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float) -> Box:
        """Coordinates multiplied by ``factor`` (moving between a resized copy and the frame)."""
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor)

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def expanded(self, margin: float) -> Box:
        """Grown by ``margin`` times its width and height on every side."""
        mx, my = self.width * margin, self.height * margin
        return Box(self.x0 - mx, self.y0 - my, self.x1 + mx, self.y1 + my)

    def square(self, margin: float = 0.0) -> Box:
        """The square of side ``size * (1 + 2 * margin)`` centred on this box."""
        cx, cy = self.center
        half = self.size * (1 + 2 * margin) / 2
        return Box(cx - half, cy - half, cx + half, cy + half)

    def clipped(self, width: int, height: int) -> Box:
        return Box(max(0.0, self.x0), max(0.0, self.y0), min(float(width), self.x1), min(float(height), self.y1))

    def rounded(self) -> Box:
        return Box(float(round(self.x0)), float(round(self.y0)), float(round(self.x1)), float(round(self.y1)))

    def lerp(self, other: Box, t: float) -> Box:
        """The box a fraction ``t`` of the way from this one to ``other``."""
        return Box(
            self.x0 + (other.x0 - self.x0) * t,
            self.y0 + (other.y0 - self.y0) * t,
            self.x1 + (other.x1 - self.x1) * t,
            self.y1 + (other.y1 - self.y1) * t,
        )

    def to_list(self) -> list[int]:
        return [round(v) for v in (self.x0, self.y0, self.x1, self.y1)]

    @classmethod
    def from_css(cls, top: int, right: int, bottom: int, left: int) -> Box:
        """From face_recognition's ``(top, right, bottom, left)`` order."""
        return cls(float(left), float(top), float(right), float(bottom))

    def to_css(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.to_list()
        return y0, x1, y1, x0
