"""Time `instrument` and lavaan on the same data in one run and print the speed-up.

Run from the repository root: ``python benchmarks/compare_lavaan.py [--reps 3] [--fiml]``.

Tasks (the 40-item, N = 5000 simulated data of shared/refs case g, copied to benchmarks/data/):
ML fit with SEs and fit measures; the 4-model ML invariance ladder over 2 groups; MLR; WLSMV on
the 5-category version; FIML with 10% MCAR (seeded). lavaan is timed by `lavaan_timing.R` when
``Rscript`` with lavaan is on the machine; otherwise lavaan's recorded medians
(shared/refs/results/g_timing.json, copied to tests/fixtures/cfa/) are shown and marked
"recorded". Times are CPU seconds (Python ``time.process_time``, R ``user.self + sys.self``), so a
loaded machine slows both sides alike; the load average at the start is printed. They still
depend on the machine, so this is a script, never a test. Both sides run with single-threaded
BLAS, as lavaan's reference timings did. ``ladder_fits`` is the four ``cfa()`` calls of lavaan's
ladder; ``ladder_ml`` is `instrument.invariance`, which adds the verdicts, the item effect
sizes (dMACS) and score tests of every released constraint to the same four fits.
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from instrument import cfa, invariance  # noqa: E402
from instrument.sem import cfa_ordinal  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
RECORDED = ROOT / "tests" / "fixtures" / "cfa" / "g_timing.json"
ITEMS = [f"y{i}" for i in range(1, 41)]
MODEL = "\n".join(f"F{f} =~ " + " + ".join(ITEMS[(f - 1) * 8: f * 8]) for f in range(1, 6))


def median_time(fn, reps: int) -> float:
    """Median CPU seconds of ``reps`` calls."""
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


LADDER = ((), ("loadings",), ("loadings", "intercepts"), ("loadings", "intercepts", "residuals"))


def ours(reps: int, with_fiml: bool) -> dict[str, float]:
    cont = pd.read_csv(DATA / "sim_5f40i_n5000_continuous.csv")
    ordl = pd.read_csv(DATA / "sim_5f40i_n5000_ordinal5.csv")
    out = {
        "ml": median_time(lambda: cfa(MODEL, cont), reps),
        "ladder_fits": median_time(lambda: [cfa(MODEL, cont, group="grp", group_equal=ge)
                                            for ge in LADDER], reps),
        "ladder_ml": median_time(lambda: invariance(MODEL, cont, group="grp"), reps),
        "mlr": median_time(lambda: cfa(MODEL, cont, estimator="MLR"), reps),
        # the polychoric step is cached per data set; cleared so every repetition runs it
        "wlsmv": median_time(lambda: (cfa_ordinal._STATS_CACHE.clear(),
                                      cfa(MODEL, ordl, ordered=True)), reps),
    }
    if with_fiml:
        rng = np.random.default_rng(1)
        miss = cont.copy()
        miss[ITEMS] = miss[ITEMS].mask(rng.random((len(miss), 40)) < 0.10)
        out["fiml"] = median_time(lambda: cfa(MODEL, miss, missing="fiml"), 1)
    return out


def lavaan(reps: int, with_fiml: bool) -> tuple[dict[str, float], str]:
    if shutil.which("Rscript") and subprocess.run(
            ["Rscript", "-e", "library(lavaan)"], capture_output=True).returncode == 0:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "lavaan.json"
            cmd = ["Rscript", str(ROOT / "benchmarks" / "lavaan_timing.R"), str(out), str(reps)]
            subprocess.run(cmd + (["fiml"] if with_fiml else []), check=True, cwd=ROOT,
                           env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            res = json.loads(out.read_text())
        return {k: v for k, v in res.items() if k != "lavaan"}, f"timed now (lavaan {res['lavaan']})"
    t = json.loads(RECORDED.read_text())["timings_seconds"]
    return {"ml": t["cfa_ml_n5000"]["median_s"],
            "ladder_fits": t["invariance_ladder_4_models_2groups_n5000"]["median_s"],
            "ladder_ml": t["invariance_ladder_4_models_2groups_n5000"]["median_s"],
            "mlr": t["cfa_mlr_n5000"]["median_s"],
            "wlsmv": t["cfa_wlsmv_ordered_n5000"]["median_s"]}, "recorded"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fiml", action="store_true", help="also FIML (lavaan takes minutes)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          "(CPU seconds below)")
    ours(1, False)           # warm-up: imports and first-call caches
    mine = ours(args.reps, args.fiml)
    theirs, how = lavaan(args.reps, args.fiml)
    print(f"{'task':<12}{'instrument (s)':>16}{'lavaan (s)':>14}{'speed-up':>10}   lavaan: {how}")
    for k, v in mine.items():
        lv = theirs.get(k, float("nan"))
        print(f"{k:<12}{v:>16.3f}{lv:>14.3f}{lv / v:>9.1f}x")


if __name__ == "__main__":
    main()
