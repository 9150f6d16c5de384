"""Benchmark of the MLR and FIML pieces on the 40-item, N = 5000 simulated data (refs case g).

Run from the worktree root:  /work/venv/bin/python benchmarks/bench_robust.py [--reps 3]

The implied moments come from a quick single-group ML fit with semopy (correct for single-group
ML per shared/LIBS.md; used here only to have estimates, it is not timed). The engine is not
needed: the tiny LISREL helper of the tests gives Sigma, mu and the analytic Jacobian Delta.

lavaan 0.6-14 anchors (refs/results/g_timing.json, same machine class): ``cfa(..., estimator =
"MLR")`` 13.1 s in total (about half the baseline model's robust test, most of the rest the
first-order information); ``missing = "fiml"`` fit about 1.1 s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instrument.sem.estimators.fiml import (FIMLObjective, fiml_loglik,  # noqa: E402
                                            fiml_moment_gradient)
from instrument.sem.samplestats import missing_patterns  # noqa: E402
from tests.reference.fiml_slow import em_saturated  # noqa: E402
from instrument.sem.estimators.mlr import h1_information_firstorder, mvnorm_scores  # noqa: E402
from tests.reference.mlr_slow import (RobustGroup, firstorder_information,  # noqa: E402
                                      mlr_vcov, observed_information)
from instrument.sem.test.yuan_bentler import (baseline_yuan_bentler_complete,  # noqa: E402
                                              h1_trace_complete)
from tests.reference.robust_adapters import yuan_bentler_mplus_complete  # noqa: E402
from tests.reference.tiny_cfa import TinyCFA  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "sim_5f40i_n5000_continuous.csv"
LAVAAN_MLR_S, LAVAAN_FIML_S = 13.1, 1.1


def timeit(fn, reps):
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def semopy_rows(X: pd.DataFrame, ov: list[str]) -> list[dict]:
    import semopy
    desc = "\n".join(f"F{k + 1} =~ " + " + ".join(ov[8 * k:8 * k + 8]) for k in range(5))
    m = semopy.Model(desc)
    m.fit(X, options={"ftol": 1e-12})
    ins = m.inspect()
    rows = []
    for r in ins.itertuples(index=False):
        lval, op, rval, est = r.lval, r.op, r.rval, float(r.Estimate)
        if op == "~":            # semopy writes loadings as item ~ factor
            fixed = ov.index(lval) % 8 == 0
            rows.append({"lhs": rval, "op": "=~", "rhs": lval, "est": 1.0 if fixed else est,
                         "free": not fixed})
        elif op == "~~":
            rows.append({"lhs": lval, "op": "~~", "rhs": rval, "est": est, "free": True})
    rows.sort(key=lambda r: r["op"] != "=~")
    return rows


def main(reps: int) -> None:
    df = pd.read_csv(DATA)
    ov = [f"y{i}" for i in range(1, 41)]
    X = df[ov].to_numpy(float)
    n, p = X.shape
    t0 = time.perf_counter()
    rows = semopy_rows(df[ov], ov)
    print(f"semopy ML fit for the estimates (not timed below): {time.perf_counter() - t0:.2f} s")
    m = TinyCFA(rows, ov)
    s, _ = m.implied(m.x0)
    D = m.delta(m.x0)
    g = RobustGroup(X, s, None, D)
    ybar = X.mean(0)
    res = []

    t, _ = timeit(lambda: mvnorm_scores(X, s, ybar, meanstructure=False), reps)
    res.append(("casewise scores (5000 x 820)", t))
    t, _ = timeit(lambda: h1_information_firstorder(X, s, ybar, meanstructure=False), reps)
    res.append(("first-order information B1 (scores + cross product)", t))
    t, _ = timeit(lambda: firstorder_information([g]), reps)
    res.append(("B0 = Delta' B1 Delta", t))
    t, E = timeit(lambda: observed_information([g], delta_fn=lambda x: [m.delta(x)], x=m.x0),
                  reps)
    res.append(("observed information (Delta'A1 Delta + curvature by delta_fn)", t))
    t, v = timeit(lambda: mlr_vcov([g], information=E), reps)
    res.append(("Huber-White vcov given E", t))
    t, _ = timeit(lambda: h1_trace_complete(X, meanstructure=False), reps)
    res.append(("h1 trace tr(B1 A1^-1) (Gamma-free)", t))
    chisq = n * (np.linalg.slogdet(s)[1] + np.trace(np.cov(X.T, bias=True) @ np.linalg.inv(s))
                 - np.linalg.slogdet(np.cov(X.T, bias=True))[1] - p)
    t, yb = timeit(lambda: yuan_bentler_mplus_complete([g], chisq, 730, mlr=v), reps)
    res.append(("Yuan-Bentler scaling factor (incl. h1 trace)", t))
    t, b = timeit(lambda: baseline_yuan_bentler_complete([X], meanstructure=False), reps)
    res.append(("baseline model scaling factor (incl. h1 trace)", t))

    def all_mlr():
        vv = mlr_vcov([g], delta_fn=lambda x: [m.delta(x)], x=m.x0)
        y = yuan_bentler_mplus_complete([g], chisq, 730, mlr=vv)
        bb = baseline_yuan_bentler_complete([X], meanstructure=False)
        return vv, y, bb

    t_mlr, (vv, y, bb) = timeit(all_mlr, reps)
    res.append(("ALL MLR pieces (SEs + c + c_baseline)", t_mlr))
    print(f"\nchisq {chisq:.3f} (lavaan ML 775.768), c = {y.scaling_factor:.5f}, "
          f"c_baseline = {bb.scaling_factor:.5f}")

    # FIML: 10% MCAR
    rng = np.random.default_rng(20261125)
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.10] = np.nan
    mfiml = TinyCFA(rows + [{"lhs": v_, "op": "~1", "rhs": "", "est": float(np.nanmean(Xm[:, j])),
                             "free": True} for j, v_ in enumerate(ov)], ov, meanstructure=True)
    t, pat = timeit(lambda: missing_patterns(Xm), reps)
    res.append((f"missing_patterns (10% MCAR: {pat.npatterns} patterns)", t))
    s2, mu2 = mfiml.implied(mfiml.x0)
    t, _ = timeit(lambda: fiml_loglik(pat, s2, mu2), reps)
    res.append(("FIML logl (one evaluation)", t))
    t, _ = timeit(lambda: fiml_moment_gradient(pat, s2, mu2), reps)
    res.append(("FIML gradient w.r.t. (mu, vech Sigma)", t))
    obj = FIMLObjective(lambda x: [mfiml.implied(x)], lambda x: [mfiml.delta(x)], [pat])
    t, _ = timeit(lambda: (obj.value(mfiml.x0), obj.gradient(mfiml.x0)), reps)
    res.append(("FIMLObjective value + gradient w.r.t. x", t))
    t, h1 = timeit(lambda: em_saturated(pat, tol=1e-8), 1)
    res.append((f"EM saturated model ({h1.iterations} iterations, tol 1e-8)", t))

    w = max(len(r[0]) for r in res)
    print(f"\n{'piece'.ljust(w)}  median s (reps={reps})")
    for name, t in res:
        print(f"{name.ljust(w)}  {t:8.3f}")
    print(f"\nlavaan 0.6-14: cfa(MLR) {LAVAAN_MLR_S} s in total; ours (MLR pieces) {t_mlr:.2f} s "
          f"-> {LAVAAN_MLR_S / t_mlr:.1f}x")
    print(f"lavaan 0.6-14: FIML fit ~{LAVAAN_FIML_S} s in total (tens of objective+gradient "
          f"evaluations plus SEs)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    main(ap.parse_args().reps)
