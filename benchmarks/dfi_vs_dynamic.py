"""Dynamic fit index cut-offs beside the ``dynamic`` package's published Holzinger-Swineford
example: is the difference Monte Carlo error or a definitional difference?

Published (``dynamic`` vignette, ``cfaFit(dgm, 301)``, the single cross-loading ``textual =~
.424*x2`` that is cfaHB's level 1; 500 replications per population, fixed seeds, lavaan ML
refits): SRMR .040, RMSEA .044, CFI .984 (95/5 rule). The data-generating model is the
vignette's, with the loadings and factor correlations it prints (3 decimals).

This script draws ``--reps`` replications (default 5,000) of the correct and the level-1
population at N = 301 with `instrument.montecarlo` and ML refits (`FitIndices`), and reports:

* the pooled cut-off (5th percentile of the misspecified SRMR/RMSEA, 95th of CFI);
* the Monte Carlo distribution of a 500-replication study's cut-off (disjoint blocks of 500): its
  mean and SD, and the published value's z-score against it; also for blocks of 50 (an early
  ``dynamic`` loop ran 50 replications);
* lavaan's distributions of the same populations (``tests/fixtures/dfi/hs_level1_lavaan.R``,
  MASS::mvrnorm + ``cfa``) beside ours: pooled cut-offs and two-sample Kolmogorov-Smirnov tests,
  i.e. whether the fit indices of the two implementations follow one distribution.

Run from the repository root: ``python benchmarks/dfi_vs_dynamic.py [--reps 5000]``; writes
``benchmarks/dfi_vs_dynamic.json``. A script, never a test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from instrument import montecarlo  # noqa: E402
from instrument.montecarlo import MomentPopulation  # noqa: E402
from instrument.montecarlo.dfi import FitIndices, StandardizedModel, misspecifications  # noqa

PUBLISHED = {"srmr": 0.040, "rmsea": 0.044, "cfi": 0.984}
MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
LOAD = {("visual", "x1"): .772, ("visual", "x2"): .424, ("visual", "x3"): .581,
        ("textual", "x4"): .852, ("textual", "x5"): .855, ("textual", "x6"): .838,
        ("speed", "x7"): .570, ("speed", "x8"): .723, ("speed", "x9"): .665}
PHI = {("visual", "textual"): .459, ("visual", "speed"): .471, ("textual", "speed"): .283}


def cutoff(x: np.ndarray, idx: str, s: float = 0.95) -> float:
    """The misspecified model's (1 - s) quantile (SRMR, RMSEA) or s quantile (CFI)."""
    return float(np.quantile(x, s if idx == "cfi" else 1 - s))


def separates(t: np.ndarray, m: np.ndarray, idx: str, s: float) -> bool:
    """dynamic's rule: the correct model's s quantile (1 - s for CFI) is on the good side."""
    if idx == "cfi":
        return float(np.quantile(t, 1 - s)) > cutoff(m, idx, s)
    return float(np.quantile(t, s)) < cutoff(m, idx, s)


def blocks(x: np.ndarray, idx: str, size: int, s: float = 0.95) -> np.ndarray:
    k = len(x) // size
    return np.array([cutoff(x[i * size:(i + 1) * size], idx, s) for i in range(k)])


def share_95_5_separates(t: np.ndarray, m: np.ndarray, idx: str, size: int) -> float:
    k = min(len(t), len(m)) // size
    return float(np.mean([separates(t[i * size:(i + 1) * size], m[i * size:(i + 1) * size],
                                    idx, 0.95) for i in range(k)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "dfi_vs_dynamic.json"))
    a = ap.parse_args()
    fc = {**PHI, **{(b, c): v for (c, b), v in PHI.items()}}
    std = StandardizedModel(tuple(f"x{i}" for i in range(1, 10)), ("visual", "textual", "speed"),
                            LOAD, fc, {}, {})
    lev1 = [m for m in misspecifications(std) if m["level"] == 1]
    assert [(m["lhs"], m["rhs"], m["magnitude"]) for m in lev1] == [("textual", "x2", .424)]
    pops = {"correct": std.covariance(),
            "level1": std.covariance([(m["lhs"], m["rhs"], m["magnitude"]) for m in lev1])}
    ana = FitIndices(MODEL)
    ours, cpu = {}, {}
    for k, (name, cov) in enumerate(pops.items()):
        t0 = time.process_time()
        res = montecarlo(MomentPopulation(std.ov_names, cov, 301), ana, reps=a.reps,
                         seed=a.seed + k)
        cpu[name] = time.process_time() - t0
        ours[name] = res.ok
    lav = pd.read_csv(ROOT / "tests" / "fixtures" / "dfi" / "hs_level1_lavaan.csv")
    lav = {"correct": lav[lav["population"] == 0], "level1": lav[lav["population"] == 1]}
    out = {"reps": a.reps, "n": 301, "seed": a.seed, "published": PUBLISHED,
           "cpu_seconds": cpu, "lavaan_reps": int(len(lav["level1"])), "indices": {}}
    for idx in ("srmr", "rmsea", "cfi"):
        m = ours["level1"][idx].to_numpy()
        t = ours["correct"][idx].to_numpy()
        b500, b50 = blocks(m, idx, 500), blocks(m, idx, 50)
        b500_90 = blocks(m, idx, 500, 0.90)
        lm = lav["level1"][idx].to_numpy()
        lt = lav["correct"][idx].to_numpy()
        row = {"pooled_cutoff": cutoff(m, idx),
               "pooled_95_5_separates": separates(t, m, idx, 0.95),
               "share_of_500_studies_95_5_separates": share_95_5_separates(t, m, idx, 500),
               "pooled_cutoff_90_10": cutoff(m, idx, 0.90),
               "block500_90_10_mean": float(b500_90.mean()),
               "block500_90_10_sd": float(b500_90.std(ddof=1)),
               "z_published_500_90_10": float((PUBLISHED[idx] - b500_90.mean())
                                              / b500_90.std(ddof=1)),
               "lavaan_pooled_cutoff_90_10": cutoff(lm, idx, 0.90),
               "lavaan_95_5_separates": separates(lt, lm, idx, 0.95),
               "correct_95": float(np.quantile(t, 0.05 if idx == "cfi" else 0.95)),
               "block500_mean": float(b500.mean()), "block500_sd": float(b500.std(ddof=1)),
               "block500_n": int(len(b500)),
               "block50_sd": float(b50.std(ddof=1)), "block50_n": int(len(b50)),
               "published": PUBLISHED[idx],
               "z_published_500": float((PUBLISHED[idx] - b500.mean()) / b500.std(ddof=1)),
               "lavaan_pooled_cutoff": cutoff(lm, idx),
               "lavaan_cutoff_se_bootstrap": float(np.std([
                   cutoff(np.random.default_rng(i).choice(lm, len(lm)), idx)
                   for i in range(400)], ddof=1)),
               "ks_level1_pvalue": float(stats.ks_2samp(m, lm).pvalue),
               "ks_correct_pvalue": float(stats.ks_2samp(
                   t, lav["correct"][idx].to_numpy()).pvalue)}
        out["indices"][idx] = row
        print(idx, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                               for k, v in row.items()}), flush=True)
    out["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
