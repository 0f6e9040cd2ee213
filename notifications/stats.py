"""Intervals for proportions, for the experiment report: Wilson's score interval and Newcombe's difference.

Both behave at the edges (0 or all successes, small samples) where the textbook
"p ± 1.96 √(p(1−p)/n)" collapses to a zero-width interval. References: E. B. Wilson
(1927); R. G. Newcombe, "Interval estimation for the difference between independent
proportions", Statistics in Medicine 17 (1998), method 10.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z_95
) -> tuple[float, float, float]:
    """The difference ``p_a − p_b`` with Newcombe's hybrid score interval: (difference, low, high)."""
    p_a = successes_a / n_a if n_a else 0.0
    p_b = successes_b / n_b if n_b else 0.0
    low_a, high_a = wilson(successes_a, n_a, z)
    low_b, high_b = wilson(successes_b, n_b, z)
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return difference, max(-1.0, low), min(1.0, high)


def smoothed_rate(successes: float, n: float, prior_rate: float, prior_weight: float) -> float:
    """Additive (Beta-binomial) smoothing: ``successes / n`` pulled toward ``prior_rate`` by ``prior_weight`` pseudo-counts."""
    return (successes + prior_weight * prior_rate) / (n + prior_weight)
