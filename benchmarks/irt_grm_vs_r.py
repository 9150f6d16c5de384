"""GRM by MML on 33 items x 5,000 respondents: instrument and the base-R EM reference
(`irt_grm_reference.R`) timed on the same data in one run.

Usage: python benchmarks/irt_grm_vs_r.py [--reps 3] [--out benchmarks/irt_grm_vs_r.json]
Both fits stop at the same rule (largest parameter change below 1e-4) with the same quadrature.
Times are CPU seconds of the fit (Python ``time.process_time``, R ``proc.time()[1]``, both with
one BLAS thread); the machine load (1-minute load average) is recorded beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from instrument.irt import irt
from instrument.irt.simulate import simulate_responses

HERE = Path(__file__).parent


def data(seed: int = 1):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.8, 2.5, 33)
    b = np.sort(rng.normal(0, 0.7, (33, 4)), axis=1) + np.array([-1.2, -0.4, 0.4, 1.2])
    return simulate_responses(a, -b * a[:, None], rng.normal(size=5000), seed=seed + 1), a


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "irt_grm_vs_r.json"))
    args = ap.parse_args()
    df, a = data()
    py_times, r_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "grm.csv"
        df.to_csv(csv, index=False)
        for _ in range(args.reps):
            t = time.process_time()
            fit = irt(df, se=False, tol=1e-4)
            py_times.append(time.process_time() - t)
            out = Path(tmp) / "r.json"
            subprocess.run(["Rscript", str(HERE / "irt_grm_reference.R"), str(csv), str(out)],
                           check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            r = json.loads(out.read_text())
            r_times.append(r["seconds"])
    est = fit.parameters["est"].to_numpy()
    res = {"n": int(len(df)), "items": 33, "reps": args.reps,
           "instrument_seconds": py_times, "r_seconds": r_times,
           "speedup_median": float(np.median(r_times) / np.median(py_times)),
           "instrument_iterations": fit.iterations, "r_iterations": r["iterations"],
           "loglik_instrument": fit.loglik, "loglik_r": r["loglik"],
           "max_abs_diff_est": float(np.max(np.abs(est - np.array(r["est"])))),
           "slope_bias_vs_truth": float(np.mean(fit.parameters.query("par == 'a1'")["est"].to_numpy() / a - 1)),
           "load_average_1min": os.getloadavg()[0], "clock": "cpu", "R": r["R"]}
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
