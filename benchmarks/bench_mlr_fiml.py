"""Benchmark: full `cfa()` with estimator="MLR" and with missing="fiml" on the 40-item, N = 5000
simulated data (refs case g) against lavaan 0.6-14's timings.

Run from the worktree root::

    /work/venv/bin/python benchmarks/bench_mlr_fiml.py [--reps 3] [--threads 1]

lavaan anchors: ``cfa(..., estimator = "MLR")`` 13.05 s median (shared refs
``results/g_timing.json``, single-threaded reference BLAS, R alone on the 2-core machine);
``cfa(..., missing = "ml")`` and ``estimator = "MLR", missing = "ml"`` on the same data with 10%
MCAR (``benchmarks/data/sim_5f40i_n5000_mcar10.csv``, numpy ``default_rng(20261125)``) timed by
``benchmarks/lavaan_fiml_timing.R`` into ``benchmarks/lavaan_fiml_timing.json``. BLAS is limited
to ``--threads`` threads (default 1, like lavaan's run). The results are checked against
lavaan's (MLR: ``g_timing.json``; FIML: ``lavaan_fiml_timing.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
LAVAAN_MLR_S = 13.05          # g_timing.json: timings_seconds.cfa_mlr_n5000.median_s
LAVAAN_ML_S = 0.387           # g_timing.json: timings_seconds.cfa_ml_n5000.median_s
# g_timing.json: results_on_sim_data.mlr
LAVAAN_MLR_FIT = {"chisq": 775.768277217885, "chisq.scaled": 775.390695062749,
                  "chisq.scaling.factor": 1.00048695729461, "cfi.robust": 0.999431439898857,
                  "rmsea.robust": 0.00352730244994312}
MODEL = "\n".join(f"F{k} =~ " + " + ".join(f"y{i}" for i in range(8 * k - 7, 8 * k + 1))
                  for k in range(1, 6))


def make_mcar(seed: int = 20261125):
    import numpy as np
    import pandas as pd
    df = pd.read_csv(DATA / "sim_5f40i_n5000_continuous.csv")
    ov = [f"y{i}" for i in range(1, 41)]
    rng = np.random.default_rng(seed)
    X = df[ov].to_numpy(float).copy()
    X[rng.random(X.shape) < 0.10] = np.nan
    out = df.copy()
    out[ov] = X
    out.to_csv(DATA / "sim_5f40i_n5000_mcar10.csv", index=False, na_rep="")


def timeit(fn, reps):
    import numpy as np
    ts, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main(reps: int) -> None:
    import warnings

    import pandas as pd
    sys.path.insert(0, str(ROOT))
    from instrument.sem.cfa import cfa
    warnings.simplefilter("ignore")
    d = pd.read_csv(DATA / "sim_5f40i_n5000_continuous.csv")
    if not (DATA / "sim_5f40i_n5000_mcar10.csv").exists():
        make_mcar()
    dm = pd.read_csv(DATA / "sim_5f40i_n5000_mcar10.csv")
    cfa(MODEL, d)                                   # warm-up (imports, caches)
    rows = []
    t_ml, _ = timeit(lambda: cfa(MODEL, d), reps)
    rows.append(("cfa ML (complete)", t_ml, LAVAAN_ML_S))
    t_mlr, f = timeit(lambda: cfa(MODEL, d, estimator="MLR"), reps)
    rows.append(("cfa MLR (complete)", t_mlr, LAVAAN_MLR_S))
    dev = max(abs(f.fit_measures[k] / v - 1) for k, v in LAVAAN_MLR_FIT.items())
    print(f"MLR: chisq.scaled {f.fit_measures['chisq.scaled']:.6f} (lavaan 775.390695), "
          f"c = {f.fit_measures['chisq.scaling.factor']:.8f}; max rel. deviation from lavaan "
          f"over {list(LAVAAN_MLR_FIT)}: {dev:.1e}")
    lav = {}
    lj = ROOT / "benchmarks" / "lavaan_fiml_timing.json"
    if lj.exists() and lj.stat().st_size > 0:
        lav = json.loads(lj.read_text())
    t_f, ff = timeit(lambda: cfa(MODEL, dm, missing="fiml"), reps)
    rows.append(("cfa ML, missing = fiml (10% MCAR)", t_f, lav.get("fiml_ml_median")))
    t_fr, fr = timeit(lambda: cfa(MODEL, dm, missing="fiml", estimator="MLR"), max(1, reps // 2))
    rows.append(("cfa MLR, missing = fiml (10% MCAR)", t_fr, lav.get("fiml_mlr_median")))
    npat = ff.missing_data[0]["npatterns"]
    print(f"FIML: {npat} missing-data patterns; chisq {ff.fit_measures['chisq']:.6f}, "
          f"logl {ff.fit_measures['logl']:.6f}, {ff.iterations} iterations")
    if lav:
        for k, v in lav.get("fiml_fit", {}).items():
            print(f"   {k:14s} ours {ff.fit_measures[k]:.10g}  lavaan {v:.10g}")
        for k, v in lav.get("fiml_mlr_fit", {}).items():
            print(f"   {k:22s} (MLR) ours {fr.fit_measures[k]:.10g}  lavaan {v:.10g}")
    w = max(len(r[0]) for r in rows)
    print(f"\n{'task'.ljust(w)}  ours (median of {reps})  lavaan 0.6-14   lavaan / ours")
    for name, t, ref in rows:
        ratio = f"{ref / t:8.1f}x" if ref else "     n/a"
        reft = f"{ref:8.2f} s" if ref else "     n/a"
        print(f"{name.ljust(w)}  {t:10.3f} s          {reft}    {ratio}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (lavaan's anchor used single-threaded BLAS)")
    ap.add_argument("--make-data", action="store_true", help="rewrite the 10%% MCAR data set")
    a = ap.parse_args()
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    if a.make_data:
        make_mcar()
    main(a.reps)
