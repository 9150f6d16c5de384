"""Monte Carlo speed beside lavaan, in one run: simulate + refit of the teacher form (33 items,
5 factors, N = 1,000) by ML and WLSMV, dynamic fit index cut-offs for the teacher model, and the
Dask LocalCluster overhead per replication.

Run from the repository root: ``python benchmarks/bench_montecarlo.py [--reps 500]
[--r-reps 20] [--wlsmv-reps 20] [--out benchmarks/montecarlo.json]``. The lavaan loop
(`montecarlo_lavaan.R`, ``simulateData`` + ``cfa``) is timed per replication on fewer
replications and scaled to ``--reps``; ``dynamic`` is not installed here (not a Debian package),
so its time is not measured. Timings depend on the machine and its load (``uptime`` is recorded);
a script, never a test.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from instrument import cfa, montecarlo  # noqa: E402
from instrument.montecarlo import MomentPopulation  # noqa: E402
from instrument.montecarlo.dfi import FitIndices, dynamic_cutoffs  # noqa: E402

SIZES = (6, 7, 7, 6, 7)
THRESHOLDS = (-1.2, -0.3, 0.6, 1.4)


def teacher_population(n: int = 1000, ordinal: bool = False) -> tuple[MomentPopulation, str]:
    items = [f"y{i + 1}" for i in range(sum(SIZES))]
    L = np.zeros((len(items), 5))
    model, k = [], 0
    for f, s in enumerate(SIZES):
        L[k:k + s, f] = 0.7
        model.append(f"F{f + 1} =~ " + " + ".join(items[k:k + s]))
        k += s
    phi = np.full((5, 5), 0.3) + 0.7 * np.eye(5)
    cov = L @ phi @ L.T
    cov += np.diag(1 - np.diag(cov))
    thr = {v: THRESHOLDS for v in items} if ordinal else {}
    return MomentPopulation(tuple(items), cov, n, None, thr), "\n".join(model)


def trivial(data):
    """A replication that does almost nothing (to time scheduler overhead)."""
    return {"m": float(data.iloc[:, 0].mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--r-reps", type=int, default=20)
    ap.add_argument("--wlsmv-reps", type=int, default=20)
    ap.add_argument("--dfi-reps", type=int, default=500)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "montecarlo.json"))
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    res: dict = {"uptime_start": subprocess.run(["uptime"], capture_output=True,
                                                text=True).stdout.strip(),
                 "workers": a.workers, "reps": a.reps}
    pop, model = teacher_population()
    t = time.perf_counter()
    ml = montecarlo(pop, FitIndices(model), reps=a.reps, seed=1, scheduler="processes",
                    workers=a.workers)
    res["ml_seconds"] = time.perf_counter() - t
    res["ml_converged"] = ml.convergence_rate
    opop, _ = teacher_population(ordinal=True)
    t = time.perf_counter()
    w = montecarlo(opop, FitIndices(model, estimator="WLSMV", ordered=True), reps=a.wlsmv_reps,
                   seed=1, scheduler="processes", workers=a.workers)
    res["wlsmv_seconds_per_rep"] = (time.perf_counter() - t) / a.wlsmv_reps
    res["wlsmv_converged"] = w.convergence_rate
    # DFI for the teacher model fitted to one data set (500 replications per population)
    data = pop.draw(np.random.default_rng(7))
    fit = cfa(model, data)
    t = time.perf_counter()
    d = dynamic_cutoffs(fit, reps=a.dfi_reps, seed=1, scheduler="processes", workers=a.workers)
    res["dfi_seconds"] = time.perf_counter() - t
    res["dfi_populations"] = int(d.cutoffs["level"].nunique()) + 1
    # Dask LocalCluster overhead per replication (a trivial analysis)
    from distributed import Client, LocalCluster
    small = MomentPopulation(("a", "b"), np.eye(2), 10)
    t = time.perf_counter()
    montecarlo(small, trivial, reps=2000, seed=1)
    inproc = time.perf_counter() - t
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c, \
            Client(c) as client:
        t = time.perf_counter()
        montecarlo(small, trivial, reps=2000, seed=1, scheduler=client)
        dask_t = time.perf_counter() - t
    res["dask_overhead_ms_per_rep"] = 1000 * (dask_t - inproc / 2) / 2000
    # lavaan in the same run
    if shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            subprocess.run(["Rscript", str(ROOT / "benchmarks" / "montecarlo_lavaan.R"), str(out),
                            str(a.r_reps), str(max(1, a.r_reps // 4))], check=True, cwd=ROOT)
            r = json.loads(out.read_text())
        res["lavaan"] = r
        res["lavaan_ml_seconds_scaled"] = r["ml_per_rep"] * a.reps
        res["speedup_ml"] = res["lavaan_ml_seconds_scaled"] / res["ml_seconds"]
        res["speedup_wlsmv"] = r["wlsmv_per_rep"] / res["wlsmv_seconds_per_rep"]
    res["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(a.out).write_text(json.dumps(res, indent=1, sort_keys=True))
    print(json.dumps(res, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
