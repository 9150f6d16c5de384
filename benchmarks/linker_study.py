"""Simulation study of instrument.linker: CI coverage (CR2 vs CR1), the reliability correction,
and Bright Spot recovery. Slow (minutes); not part of the test suite.

Usage:  cd <repo> && python -m benchmarks.linker_study [--reps 1000] [--out benchmarks/linker_study.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats

from instrument.linker import (bright_spots, cluster_fit, design_matrix, link,
                               simulate_bright_spot_data, simulate_link_data)

BETA = -0.001
CONTROLS = ["score", "poverty", "chronic_absence_prior", "grade_band", "enrollment"]


def coverage(n_schools: int, n_districts: int, reps: int, weighted: bool, seed0: int) -> dict:
    hit = {"CR2": 0, "CR1": 0}
    width = {"CR2": [], "CR1": []}
    df2 = []
    for r in range(reps):
        s, o = simulate_link_data(n_schools, n_districts, BETA, seed=seed0 + r,
                                  forms=("teacher",), constructs=())
        t = s[(s["form"] == "teacher") & (s["construct"] == "overall") & ~s["suppressed"]]
        m = t[["school_id", "score"]].merge(o, on="school_id")
        X, names = design_matrix(m, CONTROLS)
        w = m["enrollment"].to_numpy(float) if weighted else None
        for se_type in ("CR2", "CR1"):
            f = cluster_fit(m["chronic_absence"].to_numpy(float), X, m["district_id"].to_numpy(),
                            names=names, weights=w, se_type=se_type)
            half = stats.t.ppf(0.975, f.df[1]) * f.se[1]
            hit[se_type] += abs(f.params[1] - BETA) <= half
            width[se_type].append(2 * half)
            if se_type == "CR2":
                df2.append(f.df[1])
    return {"n_schools": n_schools, "n_districts": n_districts, "weighted": weighted, "reps": reps,
            "coverage_CR2": hit["CR2"] / reps, "coverage_CR1": hit["CR1"] / reps,
            "mc_se": float(np.sqrt(0.95 * 0.05 / reps)),
            "mean_width_CR2": float(np.mean(width["CR2"])), "mean_width_CR1": float(np.mean(width["CR1"])),
            "mean_df_CR2": float(np.mean(df2))}


def correction(reliability: float, reps: int, seed0: int) -> dict:
    b, bc, cov = [], [], 0
    for r in range(reps):
        s, o = simulate_link_data(600, 40, BETA, seed=seed0 + r, reliability=reliability,
                                  forms=("teacher",), constructs=())
        res = link(s, o)
        d = res.disattenuation
        b.append(res.score["est"])
        bc.append(d["est_corrected"])
        cov += d["ci.lower_corrected"] <= BETA <= d["ci.upper_corrected"]
    return {"reliability": reliability, "reps": reps, "beta": BETA,
            "mean_est": float(np.mean(b)), "mean_est_corrected": float(np.mean(bc)),
            "relative_bias_naive": float(np.mean(b) / BETA - 1),
            "relative_bias_corrected": float(np.mean(bc) / BETA - 1),
            "coverage_corrected_ci": cov / reps}


def bright(reps: int, lift: float, seed0: int) -> dict:
    prec, rec = [], []
    for r in range(reps):
        bs, bo, planted = simulate_bright_spot_data(300, 30, 20, seed=seed0 + r, lift=lift)
        found = set(bright_spots(bs, bo).bright_spot_ids)
        tp = len(found & set(planted))
        prec.append(tp / max(len(found), 1))
        rec.append(tp / len(planted))
    return {"n_schools": 300, "n_planted": 20, "lift_points": lift, "reps": reps,
            "precision": float(np.mean(prec)), "recall": float(np.mean(rec)),
            "chance_precision": 20 / 300}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/linker_study.json")
    a = ap.parse_args()
    t0 = time.time()
    out = {"coverage": [], "correction": [], "bright_spots": []}
    for i, (n, j, w) in enumerate([(40, 8, False), (60, 12, False), (60, 12, True),
                                   (100, 20, False), (200, 40, False)]):
        out["coverage"].append(coverage(n, j, a.reps, w, 10_000 * (i + 1)))
        print(out["coverage"][-1], flush=True)
    for i, rel in enumerate((0.6, 0.8)):
        out["correction"].append(correction(rel, max(a.reps // 5, 50), 90_000 + 1000 * i))
        print(out["correction"][-1], flush=True)
    for i, lift in enumerate((15.0, 20.0, 25.0)):
        out["bright_spots"].append(bright(max(a.reps // 10, 20), lift, 70_000 + 1000 * i))
        print(out["bright_spots"][-1], flush=True)
    out["seconds"] = time.time() - t0
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
