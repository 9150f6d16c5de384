"""Scientific self-check: Monte Carlo studies whose right answers are known.

A self-check plan (``analyses/selfcheck/*.yaml``) names a population model (standardized loadings
and factor correlations), N, replications, seed and the estimator; `run_selfcheck` simulates it with
`instrument.montecarlo` and checks one of two things (the plan's ``check``):

* ``loadings`` (default): refits the same model and reports per free loading the relative bias
  ``mean(est - true) / true``, the coverage of its 95% Wald interval and the ratio of the mean
  standard error to the empirical SD of the estimates, with the plan's acceptance ranges;
* ``metric_invariance``: the rows of each data set are split into the plan's ``groups`` (the first
  ``n_1`` rows form group 1, and so on), all drawn from one population, so every invariance
  hypothesis is true. The configural and metric models are fitted (`instrument.invariance`;
  ordinal data: configural -> thresholds -> metric, Wu & Estabrook 2016) and the metric step's
  (scaled) chi-square difference test is recorded: the ML likelihood-ratio test, Satorra &
  Bentler's (2001) scaled difference for MLR, lavaan's ``satorra.2000`` scaled-and-shifted
  difference for WLSMV. Its rejection rate at ``alpha`` is the empirical Type I error, reported
  with its Monte Carlo standard error ``sqrt(p (1 - p) / R)``.

Data: multivariate normal (``distribution: normal``), multivariate t (``t``, with ``df``;
excess kurtosis 6 / (df - 4)), or ordinal (``ordinal``: the normal latent responses cut at the
plan's ``thresholds``, fitted by WLSMV).

Loadings are identified by unit factor variances (``std_lv``), so the generating values are the
plan's standardized loadings (on the latent-response scale for ordinal data).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from instrument.montecarlo.population import MomentPopulation
from instrument.montecarlo.runner import montecarlo
from instrument.plans import SelfCheckPlan, check_plan, read_plan

__all__ = ["run_selfcheck", "LoadingRecovery", "MetricInvarianceTest", "load_selfcheck"]

def load_selfcheck(path: str | Path) -> dict:
    """Read a self-check plan as YAML 1.2 and validate it against
    `instrument.plans.SelfCheckPlan`; `instrument.plans.PlanError` lists every problem as
    ``file:line: key.path: what was expected``."""
    spec, tree = read_plan(path)
    check_plan(spec, source=str(path), tree=tree, schema=SelfCheckPlan)
    return spec


class LoadingRecovery:
    """Analysis: fit the model (``std_lv``) and return each free loading's estimate and
    whether its 95% interval covers the generating value."""

    def __init__(self, model: str, truth: Mapping[str, float], estimator: str, ordered: bool):
        self.model, self.truth = model, dict(truth)
        self.estimator, self.ordered = estimator, bool(ordered)
        self._refit = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_refit"}

    def __setstate__(self, state):
        self.__dict__.update(state, _refit=None)

    def describe(self) -> dict:
        return {"analysis": "loading recovery", "model": self.model, "truth": self.truth,
                "estimator": self.estimator, "ordered": self.ordered}

    def __call__(self, data: pd.DataFrame) -> dict:
        q = 1.959963984540054
        if self.estimator == "ML" and not self.ordered:
            if self._refit is None:
                from instrument.sem.refit import Refit
                self._refit = Refit(self.model, list(data.columns), std_lv=True)
            out = self._refit.fit(data)
            free = self._refit.free
            rows = free.assign(est=out.x, se=out.se)
            converged = out.converged
        else:
            from instrument.sem.cfa import cfa
            kw = {"ordered": True} if self.ordered else {}
            fit = cfa(self.model, data, estimator=self.estimator, std_lv=True, **kw)
            rows = fit.estimates
            converged = fit.converged
        rec: dict = {"converged": converged}
        lam = rows[rows["op"] == "=~"]
        for lhs, rhs, est, se in zip(lam["lhs"], lam["rhs"], lam["est"], lam["se"]):
            key = f"{lhs}=~{rhs}"
            t = self.truth[key]
            rec[f"est.{key}"] = float(est)
            rec[f"se.{key}"] = float(se)
            rec[f"cover.{key}"] = bool(abs(float(est) - t) <= q * float(se))
        return rec


def _population(spec: Mapping[str, Any]) -> tuple[MomentPopulation, dict, str]:
    loads = spec["loadings"]                       # {factor: {item: loading}}
    facs = list(loads)
    items = [i for f in facs for i in loads[f]]
    L = np.zeros((len(items), len(facs)))
    truth = {}
    for j, f in enumerate(facs):
        for i, v in loads[f].items():
            L[items.index(i), j] = float(v)
            truth[f"{f}=~{i}"] = float(v)
    phi = np.eye(len(facs))
    for pair, r in (spec.get("factor_correlations") or {}).items():
        a, b = [s.strip() for s in pair.split("~~")]
        phi[facs.index(a), facs.index(b)] = phi[facs.index(b), facs.index(a)] = float(r)
    cov = L @ phi @ L.T
    cov += np.diag(1.0 - np.diag(cov))
    dist = spec["distribution"]
    thr = {}
    if dist == "ordinal":
        thr = {i: tuple(map(float, spec["thresholds"])) for i in items}
    t_df = float(spec["df"]) if dist == "t" else None
    model = spec["model"]
    n = int(spec["n"]) if "n" in spec else sum(int(v) for v in spec["groups"].values())
    return MomentPopulation(tuple(items), cov, n, None, thr, t_df), truth, model


class MetricInvarianceTest:
    """Analysis: split the rows into groups, fit the configural and metric models and return the
    metric step's (scaled) chi-square difference test.

    Parameters
    ----------
    model : str
    groups : mapping
        ``{label: rows}``: the first ``rows`` of the data set form the first group, and so on.
    estimator : {"ML", "MLR", "WLSMV"}
    ordered : bool
        Ordinal data (WLSMV ladder configural -> thresholds -> metric).
    """

    def __init__(self, model: str, groups: Mapping[str, int], estimator: str, ordered: bool):
        self.model, self.groups = model, {str(k): int(v) for k, v in groups.items()}
        self.estimator, self.ordered = estimator, bool(ordered)

    def describe(self) -> dict:
        return {"analysis": "metric invariance test", "model": self.model,
                "groups": self.groups, "estimator": self.estimator, "ordered": self.ordered}

    def __call__(self, data: pd.DataFrame) -> dict:
        import instrument as ins
        data = data.assign(group=np.repeat(list(self.groups), list(self.groups.values())))
        if self.ordered:
            res = ins.invariance(self.model, data, group="group", estimator=self.estimator,
                                 ordered=True, steps=("configural", "thresholds", "metric"),
                                 rule_set="lrt")
        else:
            res = ins.invariance(self.model, data, group="group", estimator=self.estimator,
                                 steps=("configural", "metric"), rule_set="lrt")
        tab = res.table.set_index("step")
        row = tab.loc["metric"]
        return {"converged": bool(tab["converged"].all()),
                "chisq.diff": float(row["chisq.diff"]), "df.diff": float(row["df.diff"]),
                "pvalue": float(row["pvalue.diff"])}


def _run_metric_invariance(spec: Mapping[str, Any], *, scheduler: Any, workers: int | None,
                           path: str | None) -> dict:
    pop, _, model = _population(spec)
    ordered = spec["distribution"] == "ordinal"
    ana = MetricInvarianceTest(model, spec["groups"], spec["estimator"], ordered)
    res = montecarlo(pop, ana, reps=int(spec["reps"]), seed=int(spec["seed"]),
                     scheduler=scheduler, workers=workers, path=path)
    ok = res.ok.dropna(subset=["pvalue"])
    R = len(ok)
    alpha = float(spec["alpha"])
    rates = []
    for a in sorted({0.01, alpha, 0.10}):
        p = float((ok["pvalue"] < a).mean()) if R else math.nan
        rates.append({"alpha": a, "rejection_rate": p,
                      "mcse": math.sqrt(p * (1 - p) / R) if R else math.nan, "n": R})
    tab = pd.DataFrame(rates)
    t1 = float(tab.loc[tab["alpha"] == alpha, "rejection_rate"].iloc[0])
    lo, hi = (float(x) for x in spec["accept"]["type1"])
    # a uniform p-value distribution (the null holds): Kolmogorov-Smirnov against U(0, 1)
    from scipy import stats
    ks = stats.kstest(ok["pvalue"].to_numpy(), "uniform") if R else None
    return {"plan": dict(spec), "rejection": tab,
            "summary": {"reps": int(spec["reps"]), "convergence": res.convergence_rate,
                        "alpha": alpha, "type1": t1,
                        "type1_mcse": math.sqrt(t1 * (1 - t1) / R) if R else math.nan,
                        "mean_chisq_diff": float(ok["chisq.diff"].mean()),
                        "df_diff": float(ok["df.diff"].median()),
                        "ks_uniform_pvalue": float(ks.pvalue) if ks is not None else math.nan,
                        "accept": dict(spec["accept"]), "passed": bool(lo <= t1 <= hi)}}


def run_selfcheck(spec: Mapping[str, Any] | str | Path, *, scheduler: Any = "processes",
                  workers: int | None = None, path: str | None = None) -> dict:
    """Run a self-check plan; returns ``{"plan", "loadings": frame, "summary": {...}}``
    (``check: loadings``) or ``{"plan", "rejection": frame, "summary": {...}}``
    (``check: metric_invariance``).

    ``loadings``: per loading ``true mean_est relbias coverage se_sd_ratio n`` (``se_sd_ratio``:
    mean standard error over the empirical SD of the estimates); ``summary``: the largest
    |relative bias|, the coverage range, the convergence rate, the acceptance ranges and whether
    every loading is inside them (``passed``).

    ``rejection``: the rejection rate of the metric step's difference test at .01, ``alpha`` and
    .10 with its Monte Carlo standard error; ``summary``: the Type I error at ``alpha``, its MCSE,
    the mean chi-square difference beside its df (equal in expectation under the null for the
    unscaled and scaled tests), a Kolmogorov-Smirnov test of the p-values against U(0, 1), and
    whether the Type I error is inside the plan's ``accept: type1`` range (``passed``).
    """
    if not isinstance(spec, Mapping):
        spec = load_selfcheck(spec)
    if spec.get("check", "loadings") == "metric_invariance":
        return _run_metric_invariance(spec, scheduler=scheduler, workers=workers, path=path)
    pop, truth, model = _population(spec)
    ordered = spec["distribution"] == "ordinal"
    ana = LoadingRecovery(model, truth, spec["estimator"], ordered)
    res = montecarlo(pop, ana, reps=int(spec["reps"]), seed=int(spec["seed"]),
                     scheduler=scheduler, workers=workers, path=path)
    ok = res.ok
    rows = []
    for key, t in truth.items():
        est = ok[f"est.{key}"].dropna()
        cov = ok[f"cover.{key}"].dropna()
        se = ok[f"se.{key}"].dropna() if f"se.{key}" in ok.columns else pd.Series(dtype=float)
        rows.append({"loading": key, "true": t, "mean_est": float(est.mean()),
                     "relbias": float((est.mean() - t) / t), "coverage": float(cov.mean()),
                     "se_sd_ratio": float(se.mean() / est.std(ddof=1)) if len(se) else math.nan,
                     "n": int(len(est))})
    tab = pd.DataFrame(rows)
    acc = spec["accept"]
    max_bias = float(tab["relbias"].abs().max())
    cmin, cmax = float(tab["coverage"].min()), float(tab["coverage"].max())
    passed = (max_bias < float(acc["relbias_abs_max"])
              and cmin >= float(acc["coverage"][0]) and cmax <= float(acc["coverage"][1]))
    return {"plan": dict(spec), "loadings": tab,
            "summary": {"reps": int(spec["reps"]), "convergence": res.convergence_rate,
                        "max_abs_relbias": max_bias, "coverage_min": cmin, "coverage_max": cmax,
                        "mean_coverage": float(tab["coverage"].mean()),
                        "coverage_mcse": math.sqrt(0.95 * 0.05 / max(1, len(ok))),
                        "accept": dict(acc), "passed": bool(passed)}}


def main(argv: list[str] | None = None) -> None:
    """``python -m instrument.montecarlo.selfcheck PLAN [OUT.json]``: run and write the result."""
    import json
    import sys

    from instrument.results import to_jsonable
    args = sys.argv[1:] if argv is None else argv
    res = run_selfcheck(args[0])
    out = Path(args[1]) if len(args) > 1 else Path(args[0]).with_suffix(".result.json")
    out.write_text(json.dumps(to_jsonable(res), indent=1, sort_keys=True))
    print(json.dumps(to_jsonable(res["summary"]), indent=1))


if __name__ == "__main__":
    main()
