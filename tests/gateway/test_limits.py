"""Sliding windows: no window of the period, anywhere in time, ever holds more than the limit."""

from __future__ import annotations

import random

import pytest

from engine.gateway.limits import WINDOW_MARGIN_S, SlidingWindow


def busiest(sends: list[tuple[float, float]], period_s: float) -> float:
    """The most any closed window of `period_s` holds, over (time, amount) sends."""
    return max(sum(amount for at, amount in sends if first <= at <= first + period_s) for first, _ in sends)


@pytest.mark.parametrize("seed", range(5))
def test_no_window_exceeds_the_limit_whatever_the_pattern(seed: int) -> None:
    chance = random.Random(seed)
    window, now, sends = SlidingWindow(limit=1000, period_s=60.0), 0.0, []
    for _ in range(2000):
        estimate = chance.randint(20, 200)
        now += max(window.wait_s(estimate, now), chance.expovariate(20.0))  # bursts and lulls
        assert window.wait_s(estimate, now) == 0.0
        entry = window.take(estimate, now)
        used = chance.randint(1, estimate)  # the real usage, known later, never above the estimate
        window.settle(entry, used)
        sends.append((now, used))
    assert busiest(sends, 60.0) <= 1000
    assert now < 2000 * 110 / 1000 * 60  # and it did send: about the limit a window, not a trickle


def test_a_full_window_waits_until_its_oldest_send_leaves_it() -> None:
    window = SlidingWindow(limit=3, period_s=1.0)
    for at in (0.0, 0.2, 0.4):
        window.take(1, at)
    assert window.level(0.5) == 0
    wait = window.wait_s(1, 0.5)
    assert 1.0 + WINDOW_MARGIN_S - 0.5 < wait < 1.0 + WINDOW_MARGIN_S - 0.5 + 0.001  # the send at 0.0 leaves
    assert window.wait_s(1, 0.5 + wait) == 0.0 and window.level(0.5 + wait) == 1


def test_a_steady_stream_gets_the_limit_a_period_after_the_first_window() -> None:
    window, now, sends = SlidingWindow(limit=20, period_s=1.0), 0.0, []
    while len(sends) < 200:
        now += window.wait_s(1, now)
        window.take(1, now)
        sends.append((now, 1.0))
    assert busiest(sends, 1.0) == 20  # a token bucket lets 2 x 20 through in some second
    assert 9 * (1.0 + WINDOW_MARGIN_S) <= now < 9 * (1.0 + WINDOW_MARGIN_S) + 0.01


def test_settling_gives_back_what_the_estimate_over_counted() -> None:
    window = SlidingWindow(limit=100, period_s=60.0)
    entry = window.take(80, 0.0)
    assert window.wait_s(50, 1.0) > 0
    window.settle(entry, 30)
    assert window.wait_s(50, 1.0) == 0.0 and window.level(1.0) == 70


def test_settling_a_send_that_left_the_window_changes_nothing() -> None:
    window = SlidingWindow(limit=100, period_s=1.0)
    entry = window.take(80, 0.0)
    assert window.level(2.0) == 100
    window.settle(entry, 100)
    assert window.level(2.0) == 100


def test_a_request_larger_than_the_limit_goes_only_into_an_empty_window() -> None:
    window = SlidingWindow(limit=100, period_s=60.0)
    window.take(10, 0.0)
    assert window.wait_s(500, 1.0) > 59
    assert window.wait_s(500, 61.0) == 0.0
