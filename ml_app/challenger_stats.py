"""How a challenger compares with its champion, per pair of files: what the admin and ``compare_models`` show."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .models import ChallengerResult


@dataclass
class PairFigures:
    champion: str
    challenger: str
    champion_sha256: str
    challenger_sha256: str
    analyses: int = 0
    failed: int = 0
    agreeing: int = 0
    champion_scores: list[float] = field(default_factory=list)
    challenger_scores: list[float] = field(default_factory=list)
    champion_seconds: list[float] = field(default_factory=list)
    challenger_seconds: list[float] = field(default_factory=list)
    disagreements: list[ChallengerResult] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return self.analyses - self.failed

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.compared if self.compared else None

    @property
    def correlation(self) -> float | None:
        """Pearson correlation of the two fake probabilities; None with fewer than two pairs or a constant side."""
        if len(self.champion_scores) < 2:
            return None
        try:
            return statistics.correlation(self.champion_scores, self.challenger_scores)
        except statistics.StatisticsError:
            return None

    @staticmethod
    def _mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    @property
    def champion_mean_seconds(self) -> float | None:
        return self._mean(self.champion_seconds)

    @property
    def challenger_mean_seconds(self) -> float | None:
        return self._mean(self.challenger_seconds)


def compare() -> list[PairFigures]:
    """Every champion/challenger pair with stored results, newest pair first."""
    pairs: dict[tuple[str, str], PairFigures] = {}
    rows = ChallengerResult.objects.select_related("analysis").order_by("-created_at")
    for row in rows:
        key = (row.champion_sha256, row.challenger_sha256)
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = PairFigures(row.champion_name, row.challenger_name, *key)
        pair.analyses += 1
        if row.error_code or row.agrees is None:
            pair.failed += 1
            continue
        pair.agreeing += bool(row.agrees)
        if not row.agrees:
            pair.disagreements.append(row)
        if row.analysis.fake_probability is not None and row.fake_probability is not None:
            pair.champion_scores.append(row.analysis.fake_probability)
            pair.challenger_scores.append(row.fake_probability)
        if row.champion_seconds is not None:
            pair.champion_seconds.append(row.champion_seconds)
        if row.seconds is not None:
            pair.challenger_seconds.append(row.seconds)
    return list(pairs.values())


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def lines(pairs: list[PairFigures]) -> list[str]:
    """The comparison in words, one block per pair (the command prints these; the admin shows the same figures)."""
    if not pairs:
        return ["No challenger results yet: mark a checkpoint as challenger (admin, Checkpoints) with a share > 0."]
    out: list[str] = []
    for pair in pairs:
        out += [
            f"{pair.challenger} ({pair.challenger_sha256[:12]}) challenging {pair.champion} "
            f"({pair.champion_sha256[:12]})",
            f"  analyses: {pair.analyses} ({pair.failed} failed on the challenger)",
            f"  verdicts agree: {_number(pair.agreement, '{:.1%}')} ({pair.agreeing} of {pair.compared})",
            f"  score correlation: {_number(pair.correlation, '{:.3f}')}",
            f"  mean time: champion {_number(pair.champion_mean_seconds, '{:.2f} s')}, "
            f"challenger {_number(pair.challenger_mean_seconds, '{:.2f} s')}",
        ]
        for row in pair.disagreements:
            out.append(
                f"  disagrees on analysis {row.analysis_id}: champion {row.analysis.verdict} "
                f"({_number(row.analysis.fake_probability, '{:.3f}')}), challenger {row.verdict} "
                f"({_number(row.fake_probability, '{:.3f}')})"
            )
    return out
