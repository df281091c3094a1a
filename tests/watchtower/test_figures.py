"""One vocabulary for every page and report (watchtower/figures.py): one percentile convention."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from watchtower import figures, status
from watchtower.cutover import figures as cutover_figures


def test_percentile_takes_a_share_and_values_in_any_order() -> None:
    assert figures.percentile([], 0.95) is None
    assert figures.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert figures.percentile([5.0, 1.0], 0.0) == 1.0
    assert figures.percentile([5.0, 1.0], 1.0) == 5.0
    assert figures.percentile([float(n) for n in range(100, 0, -1)], 0.95) == 95.0
    for wrong in (95, -0.1, 1.01):
        with pytest.raises(ValueError, match="share from 0 to 1"):
            figures.percentile([1.0], wrong)


def test_percentile_gives_what_both_former_conventions_gave() -> None:
    """The status page's (sorted input, p from 0 to 1, float ceil) and the cutover report's
    (any order, p from 0 to 100, integer ceil), for the shares they used."""
    rng = random.Random(11)
    for n in range(1, 1200):
        values = [rng.random() for _ in range(n)]
        ordered = sorted(values)
        for p in (0.5, 0.95):
            page = ordered[max(0, math.ceil(p * n) - 1)]
            report = ordered[int(max(1, -(-n * round(p * 100) // 100))) - 1]
            assert figures.percentile(values, p) == page == report, (n, p)


def test_the_two_readings_of_a_ratio_and_of_a_duration() -> None:
    assert figures.percent(0.999999) == "100.00%" and figures.percent(None) == "n/a"
    assert figures.floored_percent(0.999999) == "99.99%" and figures.floored_percent(None) == "—"
    assert figures.duration(timedelta(hours=20, minutes=5)) == "20 h 05 min"
    assert figures.duration(90) == "1 min" and figures.duration(-45) == "-45 s"
    assert figures.rough_duration(90) == "1 min 30 s" and figures.rough_duration(7200) == "2 h"
    assert figures.count(1, "row") == "1 row" and figures.count(2.5, "error") == "2.5 errors"
    assert figures.ms(412.4) == "412 ms" and figures.ms(None) == "n/a"


def test_the_pages_use_the_one_module() -> None:
    assert status.percentile is figures.percentile
    assert status.percent is figures.floored_percent
    assert status.duration is figures.rough_duration
    assert cutover_figures.percent is figures.percent
    assert cutover_figures.duration is figures.duration
