"""Whether one config beats another beyond the seeds' noise: the difference of their mean final
values over fresh seeds with a 95% interval, and the one word a verdict may use for it.

The interval is Welch's t (scipy's `ttest_ind(equal_var=False)`): seeds of two optimizers need
not spread alike, and with the 3 to 5 seeds a comparison affords, t's wide tails are the honest
width (a normal interval would call many ties). "better" is said only when the interval
excludes zero; otherwise the two are "level" within the seeds' noise."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["BETTER", "LEVEL", "WORSE", "Difference", "difference"]

BETTER, WORSE, LEVEL = "better", "worse", "level"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Difference:
    """mean(side) − mean(reference) of a metric's final values, its interval, and the verdict
    from `side`'s view (`better`, `worse` or `level`); `why` says what decided a verdict the
    interval did not (too few seeds, a diverged seed)."""

    difference: float
    ci_low: float
    ci_high: float
    verdict: str
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (NaN as None)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        """'−0.012 [−0.030, 0.006], level' (the interval's numbers in the metric's units)."""
        if math.isnan(self.difference):
            return f"{self.verdict} ({self.why})"
        interval = "" if math.isnan(self.ci_low) else f" [{self.ci_low:+.3g}, {self.ci_high:+.3g}]"
        return f"{self.difference:+.3g}{interval}, {self.verdict}" + (f" ({self.why})" if self.why else "")


def difference(
    side: Sequence[float], reference: Sequence[float], mode: Literal["min", "max"], confidence: float = CONFIDENCE
) -> Difference:
    """`side` against `reference` (each a list of per-seed final values; NaN: a diverged seed).
    A side with a diverged seed is worse than one without; with fewer than two seeds on either
    side there is no interval, and the verdict is level."""
    side_bad, ref_bad = any(math.isnan(v) for v in side), any(math.isnan(v) for v in reference)
    if side_bad or ref_bad:
        verdict = LEVEL if side_bad and ref_bad else (WORSE if side_bad else BETTER)
        return Difference(math.nan, math.nan, math.nan, verdict, "a seed diverged")
    diff = sum(side) / len(side) - sum(reference) / len(reference)
    if len(side) < 2 or len(reference) < 2:
        return Difference(diff, math.nan, math.nan, LEVEL, "one seed: no interval")
    from scipy import stats

    with warnings.catch_warnings():  # identical seeds: a zero-width interval, which scipy warns of
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_ind(side, reference, equal_var=False).confidence_interval(confidence)
    low, high = float(interval.low), float(interval.high)
    if math.isnan(low) or math.isnan(high):
        return Difference(diff, math.nan, math.nan, LEVEL, "no spread to measure")
    gain_low, gain_high = (-high, -low) if mode == "min" else (low, high)  # the side's gain over reference
    verdict = BETTER if gain_low > 0 else WORSE if gain_high < 0 else LEVEL
    return Difference(diff, low, high, verdict)
