"""Time the ML CFA engine against lavaan's recorded times (refs case g, g_timing.json).

Run: ``python benchmarks/bench_cfa.py [--reps 5]`` from the repository root. Prints the median
time of (1) the 40-item N = 5000 ML fit with SEs and fit measures and (2) the 4-model invariance
ladder (configural, metric, scalar, strict; 2 groups by ``grp``) beside lavaan 0.6-14's medians
(0.387 s and 6.24 s on a 2-core EPYC, reference BLAS) and the speed-up. No assertions: timings
depend on the machine.

BLAS is limited to one thread (set before numpy loads), as lavaan's reference timings used R's
single-threaded reference BLAS; for these small matrices threads only add overhead, and on a busy
machine they oversubscribe the cores. Override with e.g. ``OPENBLAS_NUM_THREADS=2``.
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from instrument import cfa  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "cfa"
LADDER = {"configural": (), "metric": ("loadings",), "scalar": ("loadings", "intercepts"),
          "strict": ("loadings", "intercepts", "residuals")}


def _median_time(fn, reps: int) -> tuple[float, float]:
    """Median elapsed and median CPU seconds of ``reps`` calls."""
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


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
        ours, cpu = _median_time(fn, args.reps)
        ref = lav[key]
        ref = ref["median_s"] if isinstance(ref, dict) else ref
        rows.append((name, ours, cpu, float(ref)))
    w = max(len(r[0]) for r in rows)
    print(f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS')}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are only comparable on "
          "an idle machine)")
    print(f"{'task':<{w}}  {'instrument s':>12}  {'(cpu s)':>8}  {'lavaan s':>9}  "
          f"{'speed-up':>8}  {'(cpu)':>6}")
    for name, ours, cpu, ref in rows:
        print(f"{name:<{w}}  {ours:12.3f}  {cpu:8.3f}  {ref:9.3f}  {ref / ours:7.1f}x  "
              f"{ref / cpu:5.1f}x")


if __name__ == "__main__":
    main()
