"""The statistic of the metric-anomaly check: a robust z-score, (x - median) / (1.4826 * MAD).

Why median and MAD rather than mean and standard deviation, or a same-weekday comparison:
* one earlier anomaly in the baseline (a holiday, an outage) barely moves a median and a MAD,
  while it inflates a standard deviation enough to hide the next anomaly;
* it needs no distribution and works with the handful of periods a weekly or monthly metric
  has (8 weeks is enough), and for any grain;
* a same-weekday comparison handles weekly seasonality but needs several weeks of daily history
  per point and says nothing for weekly or monthly grains. Comparing weeks or months with
  their recent predecessors removes the weekday effect by construction; daily metrics with a
  strong weekly cycle should be monitored at week grain.
1.4826 makes the MAD estimate the standard deviation of normal data, so thresholds read as
"sigmas" (3.5 is the usual cut-off for outliers, Iglewicz and Hoaglin).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

MAD_TO_SIGMA = 1.4826


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def robust_z(value: float, baseline: Sequence[float], floor_fraction: float = 0.05) -> float:
    """`value`'s robust z-score against `baseline`. The spread has a floor (a fraction of the
    median's size): a perfectly flat history would otherwise make any change infinite."""
    mid = median(baseline)
    mad = median([abs(v - mid) for v in baseline])
    spread = max(MAD_TO_SIGMA * mad, floor_fraction * abs(mid), 1e-9)
    return (value - mid) / spread


def percent_change(value: float, reference: float) -> float | None:
    if reference == 0:
        return None if value == 0 else float("inf")
    return (value - reference) / abs(reference) * 100.0
