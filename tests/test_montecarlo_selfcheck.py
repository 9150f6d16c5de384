"""Self-check plans: loading recovery and the Type I error of the metric-invariance test (plans
load, the analysis records the same difference test as fitting the two models directly, results
are summarised with their Monte Carlo standard errors)."""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import instrument as ins
from instrument.montecarlo import replication_rng
from instrument.montecarlo.selfcheck import (MetricInvarianceTest, _population, load_selfcheck,
                                             run_selfcheck)
from instrument.plans import PlanError

PLANS = Path("instrument/analyses/selfcheck")


@pytest.mark.parametrize("plan", sorted(PLANS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_plans_load_and_their_results_follow_the_acceptance_rule(plan):
    spec = load_selfcheck(plan)
    res = plan.with_suffix(".result.json")
    assert res.exists(), f"{res} missing: run python -m instrument.montecarlo.selfcheck {plan}"
    s = json.loads(res.read_text())["summary"]
    assert s["reps"] == spec["reps"] and s["convergence"] > 0.99
    acc = spec["accept"]
    if spec.get("check") == "metric_invariance":
        lo, hi = acc["type1"]
        assert s["passed"] == (lo <= s["type1"] <= hi)
        assert s["type1_mcse"] == pytest.approx(math.sqrt(s["type1"] * (1 - s["type1"])
                                                          / spec["reps"]), rel=0.01)
    else:
        assert s["passed"] == (s["max_abs_relbias"] < acc["relbias_abs_max"]
                               and acc["coverage"][0] <= s["coverage_min"]
                               and s["coverage_max"] <= acc["coverage"][1])


def _small(name, **kw):
    spec = load_selfcheck(PLANS / f"{name}.yaml")
    spec.update(kw)
    return spec


def test_metric_invariance_analysis_is_the_direct_difference_test():
    spec = _small("metric_type1_ml", groups={"g1": 150, "g2": 120}, reps=4, seed=3)
    pop, _, model = _population(spec)
    assert pop.n == 270
    ana = MetricInvarianceTest(model, spec["groups"], "ML", False)
    data = pop.draw(replication_rng(3, 1))
    rec = ana(data)
    d = data.assign(g=["g1"] * 150 + ["g2"] * 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conf = ins.cfa(spec["model"], d, group="g")
        metric = ins.cfa(spec["model"], d, group="g", group_equal=("loadings",))
    diff = metric.fit_measures["chisq"] - conf.fit_measures["chisq"]
    assert rec["chisq.diff"] == pytest.approx(diff, rel=1e-6)
    assert rec["df.diff"] == 9
    from scipy.stats import chi2
    assert rec["pvalue"] == pytest.approx(chi2.sf(diff, 9), rel=1e-6)
    out = run_selfcheck(spec, scheduler=None)
    assert out["summary"]["reps"] == 4 and out["summary"]["df_diff"] == 9
    rej = out["rejection"]
    assert list(rej["alpha"]) == [0.01, 0.05, 0.10]
    assert (np.diff(rej["rejection_rate"]) >= 0).all()          # monotone in alpha


def test_scaled_tests_run_for_mlr_and_wlsmv():
    for name in ("metric_type1_mlr", "metric_type1_wlsmv"):
        spec = _small(name, groups={"g1": 200, "g2": 200}, reps=2, seed=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run_selfcheck(spec, scheduler=None)
        s = out["summary"]
        assert s["convergence"] == 1.0 and s["df_diff"] == 9
        assert 0 <= s["type1"] <= 1


def test_loading_recovery_reports_se_over_sd():
    spec = _small("ml_normal", n=200, reps=6, seed=2)
    out = run_selfcheck(spec, scheduler=None)
    tab = out["loadings"]
    assert tab["se_sd_ratio"].between(0.2, 5).all()


def test_bad_plan_is_named(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: x\ncheck: nope\nmodel: f =~ a\nloadings: {f: {a: 0.5}}\nn: 100\n"
                 "reps: 2\nseed: 1\nestimator: ML\ndistribution: normal\n"
                 "accept: {relbias_abs_max: 0.02, coverage: [0.93, 0.97]}\n")
    with pytest.raises(PlanError) as e:
        load_selfcheck(p)
    assert str(e.value) == f"{p}:2: check: expected one of 'loadings' or 'metric_invariance'; " \
                           "got 'nope'"
    p.write_text("name: x\ncheck: metric_invariance\nmodel: f =~ a\nloadings: {f: {a: 0.5}}\n"
                 "factor_correlations: {f ~~ g: 0.2}\ngroups: {g1: 10, g2: 10}\nreps: 2\n"
                 "seed: 1\nestimator: MLR\ndistribution: t\naccept: {type1: [0.06, 0.04]}\n")
    with pytest.raises(PlanError) as e:
        load_selfcheck(p)
    assert str(e.value) == f"{p}:11: accept.type1: expected [low, high] with low <= high; " \
                           "got [0.06, 0.04]"
    p.write_text(p.read_text().replace("[0.06, 0.04]", "[0.04, 0.06]"))
    with pytest.raises(PlanError) as e:
        load_selfcheck(p)
    assert str(e.value).splitlines() == [
        f"{p}:1: alpha: required key missing; expected it with check: metric_invariance",
        f"{p}:1: df: required key missing; expected it with distribution: t",
        f"{p}:5: factor_correlations.f ~~ g: expected a pair of factors of loadings (f); got "
        "'f ~~ g'"]
