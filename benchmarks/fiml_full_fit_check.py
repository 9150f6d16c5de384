"""One-off check: a full FIML fit of the 40-item model on the 10% MCAR data.

scipy's L-BFGS-B on `FIMLObjective` stands in for the engine's optimiser; the script prints the
time and chisq to compare with lavaan (772.6076, see bench_robust.md).

Run from the worktree root:  /work/venv/bin/python benchmarks/fiml_full_fit_check.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_robust import semopy_rows  # noqa: E402

from instrument.sem.estimators.fiml import FIMLObjective, fiml_loglik  # noqa: E402
from instrument.sem.samplestats import missing_patterns  # noqa: E402
from tests.reference.fiml_slow import em_saturated  # noqa: E402
from tests.reference.tiny_cfa import TinyCFA  # noqa: E402

LAVAAN_CHISQ = 772.6076


def main() -> None:
    df = pd.read_csv(ROOT / "benchmarks" / "data" / "sim_5f40i_n5000_continuous.csv")
    ov = [f"y{i}" for i in range(1, 41)]
    X = df[ov].to_numpy(float)
    rng = np.random.default_rng(20261125)          # the mask of bench_robust.py
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.10] = np.nan
    rows = semopy_rows(df[ov], ov)                 # complete-data estimates as start values
    rows += [{"lhs": v, "op": "~1", "rhs": "", "est": float(np.nanmean(Xm[:, j])), "free": True}
             for j, v in enumerate(ov)]
    m = TinyCFA(rows, ov, meanstructure=True)
    t0 = time.perf_counter()
    pat = missing_patterns(Xm)
    obj = FIMLObjective(lambda x: [m.implied(x)], lambda x: [m.delta(x)], [pat])
    bounds = [(1e-3, None) if (r["op"] == "~~" and r["lhs"] == r["rhs"]) else (None, None)
              for r in m.free_rows]
    res = minimize(obj.value, m.x0, jac=obj.gradient, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-15, "maxcor": 30})
    t1 = time.perf_counter()
    h1 = em_saturated(pat)
    t2 = time.perf_counter()
    s, mu = m.implied(res.x)
    chisq = 2 * (h1.logl - fiml_loglik(pat, s, mu))
    print(f"fit {t1 - t0:.1f} s ({res.nit} iterations, {res.nfev} evaluations, {res.message}); "
          f"EM {t2 - t1:.1f} s ({h1.iterations} iterations); chisq {chisq:.4f} "
          f"(lavaan {LAVAAN_CHISQ})")


if __name__ == "__main__":
    main()
