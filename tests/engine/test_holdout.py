"""Measured lift (docs/api.md 16.2) and the sample-ratio check (16.3) against the contract vectors."""

from __future__ import annotations

import pytest

from levered_server.engine.holdout import ArmStats, measured_lift, sample_ratio


def test_the_worked_delta_method_example():
    out = measured_lift(ArmStats(290, 29), ArmStats(2710, 330), boolean=True)
    assert out.holdout_rate == pytest.approx(0.1)
    assert out.optimization_rate == pytest.approx(0.121771, abs=1e-6)
    assert out.lift_percent == pytest.approx(21.7712, abs=1e-4)
    assert out.se == pytest.approx(22.3528, abs=1e-4)
    assert out.lift_ci == pytest.approx((-22.0403, 65.5828), abs=1e-4)
    assert out.p_value == pytest.approx(0.3301, abs=1e-4)
    assert (out.holdout_exposures, out.optimization_exposures) == (290, 2710)


def test_a_zero_holdout_rate_leaves_every_lift_field_null():
    out = measured_lift(ArmStats(200, 0), ArmStats(300, 30), boolean=True)
    assert (out.lift_percent, out.lift_ci, out.p_value) == (None, None, None)


def test_fewer_than_100_users_in_an_arm_gives_a_lift_without_interval():
    out = measured_lift(ArmStats(99, 10), ArmStats(1000, 120), boolean=True)
    assert out.lift_percent == pytest.approx(100 * (0.12 - 10 / 99) / (10 / 99))
    assert (out.lift_ci, out.p_value) == (None, None)


def test_an_empty_arm_has_a_null_rate():
    out = measured_lift(ArmStats(0, 0), ArmStats(500, 50), boolean=True)
    assert out.holdout_rate is None and out.optimization_rate == pytest.approx(0.1)
    assert out.lift_percent is None


def test_zero_standard_error_collapses_the_interval():
    same = measured_lift(ArmStats(100, 100), ArmStats(200, 200), boolean=True)
    assert same.lift_ci == (0.0, 0.0) and same.p_value == 1.0
    numeric = measured_lift(ArmStats(100, 200.0, 400.0), ArmStats(100, 300.0, 900.0), boolean=False)
    assert numeric.lift_percent == pytest.approx(50.0)
    assert numeric.lift_ci == (pytest.approx(50.0), pytest.approx(50.0)) and numeric.p_value == 0.0


def test_numeric_metrics_use_the_sample_variance():
    arm_h, arm_m = ArmStats(150, 300.0, 1000.0), ArmStats(150, 330.0, 1100.0)
    out = measured_lift(arm_h, arm_m, boolean=False)
    var_h = (1000.0 - 150 * 2.0**2) / 149 / 150
    var_m = (1100.0 - 150 * 2.2**2) / 149 / 150
    se = 100 * (var_m / 2.0**2 + 2.2**2 * var_h / 2.0**4) ** 0.5
    assert out.se == pytest.approx(se)


def test_the_srm_example():
    out = sample_ratio(290, 2710, 0.1)
    assert out.chi2 == pytest.approx(0.3704, abs=1e-4)
    assert out.p_value == pytest.approx(0.5428, abs=1e-4)
    assert out.ok is True
    assert (out.expected_holdout, out.expected_optimized) == (pytest.approx(300.0), pytest.approx(2700.0))


def test_srm_flags_a_broken_split_and_skips_when_it_cannot_run():
    assert sample_ratio(200, 2800, 0.1).ok is False
    assert sample_ratio(5, 90, 0.1).p_value is None
    assert sample_ratio(0, 500, 0.0).ok is None
