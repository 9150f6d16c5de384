"""Time the ML CFA engine against lavaan's recorded times (refs case g, g_timing.json).

Run: ``python benchmarks/bench_cfa.py [--reps 5]`` from the repository root. Prints the median
time of (1) the 40-item N = 5000 ML fit with SEs and fit measures and (2) the 4-model invariance
ladder (configural, metric, scalar, strict; 2 groups by ``grp``) beside lavaan 0.6-14's medians
(0.387 s and 6.24 s on a 2-core EPYC, reference BLAS) and the speed-up. No assertions: timings
depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from instrument import cfa  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "cfa"
LADDER = {"configural": (), "metric": ("loadings",), "scalar": ("loadings", "intercepts"),
          "strict": ("loadings", "intercepts", "residuals")}


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    g = json.loads((FIX / "g_timing.json").read_text())
    model = g["meta"]["population"]["model"]
    data = pd.read_csv(FIX / "sim_5f40i_n5000_continuous.csv")
    lav = g["timings_seconds"]
    warnings.simplefilter("ignore")

    def single():
        fit = cfa(model, data)
        assert fit.converged and fit.estimates["se"].notna().all()
        return fit

    def ladder():
        return [cfa(model, data, group="grp", group_equal=ge, group_order=["g1", "g2"])
                for ge in LADDER.values()]

    fit = single()
    print(f"40-item ML fit: chisq {fit.fit_measures['chisq']:.3f} on {fit.fit_measures['df']} df "
          f"(lavaan {g['results_on_sim_data']['ml']['chisq']:.3f}), CFI {fit.fit_measures['cfi']:.5f}")
    rows = []
    for name, fn, key in (("cfa ML, 40 items, N = 5000 (SEs + fit measures)", single, "cfa_ml_n5000"),
                          ("invariance ladder, 4 models, 2 groups", ladder,
                           "invariance_ladder_4_models_2groups_n5000")):
        ours = _median_time(fn, args.reps)
        ref = lav[key]
        ref = ref["median_s"] if isinstance(ref, dict) else ref
        rows.append((name, ours, float(ref)))
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  {'instrument s':>12}  {'lavaan s':>9}  {'speed-up':>8}")
    for name, ours, ref in rows:
        print(f"{name:<{w}}  {ours:12.3f}  {ref:9.3f}  {ref / ours:7.1f}x")


if __name__ == "__main__":
    main()
