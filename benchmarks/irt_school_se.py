"""How the school SE of IRT-scored school means (`school_scores(scoring="irt")`) compares with the
spread of the school means it describes, on simulated schools.

Schools s = 1..S have mean trait mu_s ~ N(0, 0.5^2); n respondents per school have traits
N(mu_s, 1) and answer 6 four-category graded items. A graded model is fitted to everyone, EAPs
and posterior SDs are computed, and per school

    naive SE   = sd(EAP) / sqrt(n)
    IRT SE     = sqrt((sd(EAP)^2 + mean(se_i^2)) / n)     (instrument.scores, scoring="irt")

are compared with two errors: (a) the mean EAP around its expectation given mu_s (the linear fit
of the mean EAP on mu_s across schools: shrinkage removed), and (b) the mean EAP rescaled to the
trait metric (divided by that slope) around mu_s. Writes irt_school_se.md next to this script.

    python benchmarks/irt_school_se.py [--schools 400] [--n 15] [--seed 1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from instrument.irt import fscores, irt
from instrument.irt.simulate import simulate_responses


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schools", type=int, default=400)
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    a = rng.uniform(1.0, 2.0, 6)
    b = np.sort(rng.normal(0, 0.5, (6, 3)), axis=1) + np.array([-1.0, 0.0, 1.0])
    mu = rng.normal(0, 0.5, args.schools)
    school = np.repeat(np.arange(args.schools), args.n)
    theta = mu[school] + rng.normal(0, 1, school.size)
    df = simulate_responses(a, -b * a[:, None], theta, seed=args.seed + 1)
    sc = fscores(irt(df, se=False, tol=1e-5), df)
    eap, pse = sc["theta"].to_numpy(), sc["se"].to_numpy()
    m = np.array([eap[school == s].mean() for s in range(args.schools)])
    v = np.array([eap[school == s].var(ddof=1) for s in range(args.schools)])
    e2 = np.array([(pse[school == s] ** 2).mean() for s in range(args.schools)])
    se_naive = np.sqrt(v / args.n)
    se_irt = np.sqrt((v + e2) / args.n)
    slope, icpt = np.polyfit(mu, m, 1)
    err_a = m - (icpt + slope * mu)
    err_b = (m - icpt) / slope - mu
    rows = [("naive sd(EAP)/sqrt(n)", se_naive), ("IRT (instrument)", se_irt)]
    lines = ["# School SE of IRT-scored school means on simulated schools", "",
             f"`python benchmarks/irt_school_se.py --schools {args.schools} --n {args.n} "
             f"--seed {args.seed}`: slope of mean EAP on mu_s = {slope:.3f}; empirical SD of the "
             f"error (a) in the EAP metric {err_a.std(ddof=1):.4f}, (b) in the trait metric "
             f"{err_b.std(ddof=1):.4f}.", "",
             "| SE | mean SE | SD(error a) / mean SE (EAP metric) | 95% coverage (a) | "
             "SD(error b) / (mean SE / slope) (trait metric) | 95% coverage (b) |",
             "|---|---|---|---|---|---|"]
    for name, se in rows:
        cov_a = float(np.mean(np.abs(err_a) <= 1.96 * se))
        cov_b = float(np.mean(np.abs(err_b) <= 1.96 * se / slope))
        lines.append(f"| {name} | {se.mean():.4f} | {err_a.std(ddof=1) / se.mean():.3f} | "
                     f"{cov_a:.3f} | {err_b.std(ddof=1) / (se.mean() / slope):.3f} | {cov_b:.3f} |")
    text = "\n".join(lines) + "\n"
    (Path(__file__).parent / "irt_school_se.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
