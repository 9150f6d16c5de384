"""Time thresholds + polychoric correlations + NACOV for 40 ordinal items, N = 5000.

Data: benchmarks/data/sim_5f40i_n5000_ordinal5.csv (copy of shared/refs/data, case g: 5 factors x
8 items cut into 5 categories). lavaan 0.6-14 needs 15.95 s for the whole WLSMV cfa() on these
data (shared/refs case g); its sample-statistics step is the bulk of that.

Run from the worktree root:  /work/venv/bin/python benchmarks/bench_polychoric.py [reps]
It times the default BLAS threading and one BLAS thread (threadpoolctl): on a busy shared
machine a multi-threaded BLAS spinning against other processes makes the two matrix products
(one-hot cross product, S'S) several times slower.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from instrument.sem.polychoric import sample_stats_ordinal  # noqa: E402

DATA = Path(__file__).parent / "data" / "sim_5f40i_n5000_ordinal5.csv"


def main(reps: int = 5) -> None:
    print("-- default BLAS threads")
    run(reps)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        print("-- one BLAS thread")
        run(reps)


def run(reps: int) -> None:
    df = pd.read_csv(DATA)
    items = [f"y{i}" for i in range(1, 41)]
    times, times_est = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        ss = sample_stats_ordinal(df, ov_names=items)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sample_stats_ordinal(df, ov_names=items, nacov=False)
        times_est.append(time.perf_counter() - t0)
    g = ss.groups[0]
    print(f"N = {g.n}, items = {len(items)}, thresholds = {g.nth}, "
          f"correlations = {len(g.wls_obs) - g.nth}, NACOV {g.NACOV.shape}")
    print(f"thresholds + polychorics + NACOV: median {np.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {reps} reps)")
    print(f"thresholds + polychorics only:    median {np.median(times_est):.3f} s")
    print("lavaan 0.6-14 full WLSMV cfa(): 15.95 s (shared/refs case g)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
