"""The replication runner: seeds, schedulers (in-process, local processes, a real Dask
LocalCluster) giving the same bytes, recorded failures, streaming and resuming."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import instrument as ins
from instrument.montecarlo import MomentPopulation, MonteCarloResult, montecarlo, replication_rng
from instrument.results import dumps

MODEL = "f1 =~ a1 + a2 + a3\nf2 =~ b1 + b2 + b3"
NAMES = ("a1", "a2", "a3", "b1", "b2", "b3")


def _population(n=150):
    lam = np.zeros((6, 2))
    lam[:3, 0] = [0.8, 0.7, 0.6]
    lam[3:, 1] = [0.7, 0.6, 0.5]
    phi = np.array([[1.0, 0.3], [0.3, 1.0]])
    cov = lam @ phi @ lam.T
    cov += np.diag(1.0 - np.diag(cov))
    return MomentPopulation(NAMES, cov, n)


def cfa_record(data):
    """A CFA of each replication: convergence, chi-square and the first loading."""
    fit = ins.cfa(MODEL, data)
    est = fit.estimates
    lam = est[(est["op"] == "=~") & (est["rhs"] == "a2")].iloc[0]
    return {"converged": fit.converged, "chisq": fit.fit_measures["chisq"],
            "lambda_a2": lam["est"], "se_a2": lam["se"]}


def flaky(data):
    """Raises on some replications, reports non-convergence on others."""
    m = float(data["a1"].mean())
    if m > 0.08:
        raise RuntimeError("planted failure")
    return {"mean": m, "converged": m > -0.08, "label": "neg" if m < 0 else "pos"}


class Interrupt:
    """Stops the study (as Ctrl-C would) on its ``after``-th call in this process."""

    calls = 0

    def __init__(self, after):
        self.after = after

    def describe(self):
        return {"callable": "Interrupt"}

    def __call__(self, data):
        type(self).calls += 1
        if type(self).calls == self.after:
            raise KeyboardInterrupt
        return flaky(data)


def test_replication_seeds_are_the_spawned_children():
    kids = np.random.SeedSequence(11).spawn(6)
    for r in (0, 3, 5):
        assert replication_rng(11, r).random(3).tolist() == \
            np.random.default_rng(kids[r]).random(3).tolist()


def test_failures_and_nonconvergence_are_recorded_not_dropped():
    res = montecarlo(_population(40), flaky, reps=60, seed=5)
    df = res.replications
    assert df["rep"].tolist() == list(range(60))
    counts = df["status"].value_counts()
    assert counts.get("error", 0) > 0 and counts.get("nonconverged", 0) > 0
    assert counts.sum() == 60
    err = df[df["status"] == "error"]
    assert err["error"].str.startswith("RuntimeError: planted failure").all()
    assert err["mean"].isna().all()
    ok = df[df["status"] == "ok"]
    assert (ok["error"] == "").all() and ok["mean"].between(-0.08, 0.08).all()
    assert res.convergence_rate == pytest.approx((df["status"] == "ok").mean())


def test_same_bytes_inprocess_processes_and_dask_localcluster(tmp_path):
    from distributed import Client, LocalCluster
    pop = _population()
    a = montecarlo(pop, cfa_record, reps=24, seed=3, path=tmp_path / "a")
    b = montecarlo(pop, cfa_record, reps=24, seed=3, scheduler="processes", workers=2,
                   path=tmp_path / "b")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        c = montecarlo(pop, cfa_record, reps=24, seed=3, scheduler=client, path=tmp_path / "c")
    assert a.convergence_rate == 1.0
    files = [(tmp_path / k / "replications.parquet").read_bytes() for k in "abc"]
    assert files[0] == files[1] == files[2]
    assert dumps(a) == dumps(b) == dumps(c)
    assert not list((tmp_path / "c").glob("part-*"))
    # a different seed gives different replications
    d = montecarlo(pop, cfa_record, reps=4, seed=4)
    assert not np.allclose(d.replications["chisq"], a.replications["chisq"][:4])


def test_interrupted_study_resumes_without_repeating_or_losing(tmp_path):
    pop = _population(30)
    full = montecarlo(pop, flaky, reps=50, seed=9)
    Interrupt.calls = 0
    with pytest.raises(KeyboardInterrupt):
        montecarlo(pop, Interrupt(after=23), reps=50, seed=9, path=tmp_path)
    parts = list(tmp_path.glob("part-*.parquet"))
    stored = pd.concat([pd.read_parquet(p) for p in parts])
    assert 0 < len(stored) < 50 and stored["rep"].is_unique
    Interrupt.calls = 0
    resumed = montecarlo(pop, Interrupt(after=10**9), reps=50, seed=9, path=tmp_path)
    assert Interrupt.calls == 50 - len(stored)          # only the missing replications ran
    assert dumps(resumed.replications) == dumps(full.replications)
    # extending the study reuses the 50 stored replications
    Interrupt.calls = 0
    more = montecarlo(pop, Interrupt(after=10**9), reps=60, seed=9, path=tmp_path)
    assert Interrupt.calls == 10
    assert dumps(more.replications.iloc[:50]) == dumps(full.replications)
    with pytest.raises(ValueError, match="differs in"):
        montecarlo(pop, flaky, reps=50, seed=10, path=tmp_path)


def test_result_round_trips_and_summarises():
    res = montecarlo(_population(40), flaky, reps=20, seed=2)
    back = MonteCarloResult.from_dict(json.loads(dumps(res)))
    assert dumps(back) == dumps(res)
    text = res.summary().as_text()
    assert "mean" in text and "Replications: ok" in text


def test_population_from_fitted_models():
    data = _population(500).draw(np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ins.cfa(MODEL, data)
    pop = MomentPopulation.from_fit(fit, n=2000)
    x = pop.draw(np.random.default_rng(2))
    assert x.shape == (2000, 6)
    np.testing.assert_allclose(np.cov(x.to_numpy().T, bias=True), fit.implied[0]["cov"],
                               atol=0.08)
    cut = data.apply(lambda c: pd.cut(c, [-np.inf, -0.5, 0.4, np.inf], labels=False) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ofit = ins.cfa(MODEL, cut, ordered=True)
    opop = MomentPopulation.from_fit(ofit)
    y = opop.draw(np.random.default_rng(3))
    assert set(np.unique(y.to_numpy())) == {1, 2, 3} and len(y) == 500
    # category shares follow the fitted thresholds
    tau = opop.thresholds["a1"]
    from scipy.stats import norm
    assert (y["a1"] == 1).mean() == pytest.approx(norm.cdf(tau[0]), abs=0.05)


@pytest.mark.parametrize("kw, msg", [
    (dict(reps=0), "reps= must be a positive integer"),
    (dict(seed=-1), "seed= must be a non-negative integer"),
    (dict(scheduler="threads"), "scheduler= must be None"),
])
def test_bad_options_are_named(kw, msg):
    args = dict(reps=2, seed=1)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        montecarlo(_population(), flaky, **args)
