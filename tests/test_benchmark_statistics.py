"""The benchmarks' statistics (``benchmarks/interleave.py``), on made-up block times: no timing here."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from interleave import ratio_interval  # noqa: E402


def test_a_constant_ratio_per_round_gives_that_ratio_however_the_rounds_vary() -> None:
    # the machine's phase changes the denominator threefold from round to round, but within each round
    # the numerator is 1.2x it: resampling whole rounds keeps that, resampling the lists apart would not
    denominator = [1.0, 3.0, 1.5, 2.8, 1.1, 2.2, 1.0, 2.9, 1.3, 2.5, 1.2]
    numerator = [1.2 * d for d in denominator]
    low, high = ratio_interval(numerator, denominator)
    assert low == pytest.approx(1.2, rel=1e-12) and high == pytest.approx(1.2, rel=1e-12)


def test_the_interval_holds_the_true_ratio_and_shrinks_with_more_rounds() -> None:
    rng = np.random.default_rng(1)

    def rounds(count: int) -> tuple[list[float], list[float]]:
        phase = rng.choice([1.0, 1.8], size=count)  # two phases of the machine, as on this project's VM
        floor = phase * rng.lognormal(0.0, 0.1, count)
        step = 1.3 * phase * rng.lognormal(0.0, 0.1, count)
        return list(step), list(floor)

    few_low, few_high = ratio_interval(*rounds(15))
    many_low, many_high = ratio_interval(*rounds(400))
    assert few_low < 1.3 < few_high
    assert many_low < 1.3 < many_high
    assert many_high - many_low < (few_high - few_low) / 2


def test_a_clear_difference_is_not_inside_the_interval() -> None:
    floor = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02]
    step = [2.0 * f for f in floor]
    low, high = ratio_interval(step, floor)
    assert low > 1.5


def test_the_interval_is_reproducible_from_its_seed() -> None:
    rng = np.random.default_rng(2)
    floor = list(rng.lognormal(0.0, 0.3, 30))
    step = list(1.3 * np.asarray(floor) * rng.lognormal(0.0, 0.1, 30))
    assert ratio_interval(step, floor) == ratio_interval(step, floor)
    assert ratio_interval(step, floor, seed=1) != ratio_interval(step, floor, seed=2)


@pytest.mark.parametrize(("numerator", "denominator", "confidence", "message"), [
    ([1.0, 2.0], [1.0], 0.95, "equally long"),
    ([1.0], [1.0], 0.95, "at least 2 rounds"),
    ([1.0, 2.0], [1.0, 2.0], 1.5, "between 0 and 1"),
])
def test_bad_input_names_what_is_wrong(numerator: list[float], denominator: list[float], confidence: float,
                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ratio_interval(numerator, denominator, confidence)
