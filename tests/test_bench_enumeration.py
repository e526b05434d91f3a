"""The rank test behind `make bench`'s enumeration section."""

from __future__ import annotations

import random

import pytest

from bench.enumeration import ALPHA, mann_whitney_u, section


def test_fully_separated_samples_give_u_zero_and_the_textbook_p():
    # Given two samples of five with every x below every y
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    # Then U is 0 and the two-sided normal approximation (with continuity correction) gives p = 0.0122
    assert u == 0
    assert p == pytest.approx(0.01219, abs=1e-4)


def test_ties_share_their_mean_rank():
    # x = [1, 2, 2], y = [2, 3]: pooled ranks 1, 3, 3, 3, 5 -> R_x = 7, U = 7 - 6 = 1
    u, _ = mann_whitney_u([1, 2, 2], [2, 3])
    assert u == 1


def test_identical_values_tell_nothing():
    assert mann_whitney_u([5.0] * 10, [5.0] * 10) == (50.0, 1.0)


def test_two_draws_of_one_distribution_pass_and_a_small_shift_fails():
    rng = random.Random(7)
    same_a = [rng.gauss(50, 5) for _ in range(200)]
    same_b = [rng.gauss(50, 5) for _ in range(200)]
    shifted = [v + 2 for v in same_b]  # 2 ms on 50 ms: about one extra DynamoDB call
    assert mann_whitney_u(same_a, same_b)[1] >= ALPHA
    assert mann_whitney_u(same_a, shifted)[1] < ALPHA


def test_the_section_states_the_verdict():
    row = {"n": 200, "statuses": [200], "account_median_ms": 5, "account_p95_ms": 7, "stranger_median_ms": 5, "stranger_p95_ms": 7, "u": 20000, "p": 0.5}
    assert "no endpoint tells accounts from strangers" in section({"POST /forgot-password": row})
    assert "AT LEAST ONE ENDPOINT" in section({"POST /forgot-password": {**row, "p": 0.001}})
