"""Time the WLSMV CFA (40 ordinal items, N = 5000) against lavaan's recorded time (refs case g).

Run: ``python benchmarks/bench_wlsmv.py [--reps 3]`` from the repository root. Prints the median
wall time of the full ``cfa(model, data, ordered=items)`` call (thresholds, polychorics and their
NACOV, DWLS fit, robust SEs, scaled-shifted test, baseline and fit measures) beside lavaan
0.6-14's median of 15.95 s (2-core EPYC, reference BLAS, ``cfa(SIM_MODEL, data = ord,
estimator = "WLSMV", ordered = vn)``) and the speed-up; also checks the scaled chi-square
against lavaan's 720.577. No assertions on time: timings depend on the machine.

BLAS is limited to one thread (set before numpy loads), as lavaan's reference timing used R's
single-threaded reference BLAS; on a busy shared machine threads oversubscribe the cores (a
210-parameter solve then takes 0.2 s instead of 2 ms). Override with e.g.
``OPENBLAS_NUM_THREADS=2``.
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

from instrument.sem import cfa_ordinal  # noqa: E402
from instrument.sem.cfa import cfa  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "wlsmv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    ref = json.loads((FIX / "g_sim_wlsmv.json").read_text())
    lav_s = float(ref["timing_wlsmv"]["median_s"])
    d = pd.read_csv(FIX / "sim_5f40i_n5000_ordinal5.csv")
    vn = [f"y{i}" for i in range(1, 41)]
    model = "\n".join(f"F{f + 1} =~ " + " + ".join(vn[f * 8:(f + 1) * 8]) for f in range(5))
    times, cpu, fit = [], [], None
    for _ in range(args.reps):
        cfa_ordinal._STATS_CACHE.clear()     # time the full two-step fit every repetition
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = cfa(model, d, ordered=vn)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    fm = fit.fit_measures
    print(f"WLSMV cfa, 40 ordered items, N = 5000 ({args.reps} reps; BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}; load average "
          f"{os.getloadavg()[0]:.2f})")
    print(f"  ours   median {med:7.3f} s  (cpu {statistics.median(cpu):.3f} s; all "
          f"{', '.join(f'{t:.3f}' for t in times)})")
    print(f"  lavaan median {lav_s:7.3f} s")
    print(f"  speed-up x{lav_s / med:.1f}")
    print(f"  chisq.scaled {fm['chisq.scaled']:.6f} (lavaan {ref['wlsmv']['chisq.scaled']:.6f}); "
          f"converged {fit.converged} in {fit.iterations} iterations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
