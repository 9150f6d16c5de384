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
import resource
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


def cpu_now() -> float:
    """CPU seconds of this process plus its reaped children (pool and cluster workers)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def timed(fn):
    c, w = cpu_now(), time.perf_counter()
    out = fn()
    return out, cpu_now() - c, time.perf_counter() - w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--r-reps", type=int, default=20)
    ap.add_argument("--wlsmv-reps", type=int, default=40)
    ap.add_argument("--dfi-reps", type=int, default=500)
    ap.add_argument("--dask-reps", type=int, default=40)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "montecarlo.json"))
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    up = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa
    res: dict = {"uptime_start": up(), "workers": a.workers, "reps": a.reps,
                 "cpu": "process time + reaped children (user + sys); R: user + sys"}
    pop, model = teacher_population()
    ml, c, w = timed(lambda: montecarlo(pop, FitIndices(model), reps=a.reps, seed=1,
                                        scheduler="processes", workers=a.workers))
    res.update(ml_cpu=c, ml_wall=w, ml_cpu_per_rep=c / a.reps, ml_converged=ml.convergence_rate,
               ml_projected_2_free_cores=c / 2)
    opop, _ = teacher_population(ordinal=True)
    wl, c, w = timed(lambda: montecarlo(opop, FitIndices(model, estimator="WLSMV", ordered=True),
                                        reps=a.wlsmv_reps, seed=1, scheduler="processes",
                                        workers=a.workers))
    res.update(wlsmv_cpu_per_rep=c / a.wlsmv_reps, wlsmv_wall=w,
               wlsmv_converged=wl.convergence_rate,
               wlsmv_500_projected_2_free_cores=c / a.wlsmv_reps * 500 / 2)
    # DFI for the teacher model fitted to one data set (500 replications per population)
    fit = cfa(model, pop.draw(np.random.default_rng(7)))
    d, c, w = timed(lambda: dynamic_cutoffs(fit, reps=a.dfi_reps, seed=1, scheduler="processes",
                                            workers=a.workers))
    res.update(dfi_cpu=c, dfi_wall=w, dfi_populations=int(d.cutoffs["level"].nunique()) + 1,
               dfi_projected_2_free_cores=c / 2)
    # Dask LocalCluster: the same bytes as in-process, and its overhead per replication
    from distributed import Client, LocalCluster

    from instrument.results import dumps
    small = MomentPopulation(("a", "b"), np.eye(2), 10)
    ref, c_in, w_in = timed(lambda: montecarlo(small, trivial, reps=2000, seed=1))
    sub = pop.with_n(300)
    base = montecarlo(sub, FitIndices(model), reps=a.dask_reps, seed=3)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, \
            Client(cl) as client:
        dk, _, w_dask = timed(lambda: montecarlo(small, trivial, reps=2000, seed=1,
                                                 scheduler=client))
        same = montecarlo(sub, FitIndices(model), reps=a.dask_reps, seed=3, scheduler=client)
    res.update(dask_same_bytes_trivial=dumps(dk) == dumps(ref),
               dask_same_bytes_ml=dumps(same) == dumps(base),
               dask_overhead_wall_ms_per_rep=1000 * (w_dask - w_in / 2) / 2000,
               inprocess_trivial_cpu_ms_per_rep=1000 * c_in / 2000)
    # lavaan in the same run (fewer replications, scaled per replication)
    if shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            subprocess.run(["Rscript", str(ROOT / "benchmarks" / "montecarlo_lavaan.R"), str(out),
                            str(a.r_reps), str(max(1, a.r_reps // 4))], check=True, cwd=ROOT)
            r = json.loads(out.read_text())
        res["lavaan"] = r
        res["speedup_ml_cpu"] = r["ml_cpu_per_rep"] / res["ml_cpu_per_rep"]
        res["speedup_wlsmv_cpu"] = r["wlsmv_cpu_per_rep"] / res["wlsmv_cpu_per_rep"]
        res["speedup_ml_2_workers_vs_r_loop"] = 2 * res["speedup_ml_cpu"]
        res["speedup_wlsmv_2_workers_vs_r_loop"] = 2 * res["speedup_wlsmv_cpu"]
    res["uptime_end"] = up()
    Path(a.out).write_text(json.dumps(res, indent=1, sort_keys=True))
    print(json.dumps(res, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
