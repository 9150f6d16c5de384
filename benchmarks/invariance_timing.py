"""CPU time of the default plan's family-by-language invariance ladder, `instrument` beside
lavaan/semTools in one run (``Rscript benchmarks/invariance_timing.R``).

The data are the invariance stage's own (simulated default plan, seed of the plan, reverse-keyed
items recoded, empty categories collapsed). `instrument` is timed twice: the ladder alone (five
WLSMV fits, the scaled-shifted difference tests, item score tests and dMACS of every step), and
the ladder plus the partial-invariance search. lavaan is timed for its five fits and lavTestLRT.
CPU seconds: Python ``time.process_time``, R ``proc.time()`` user + system; the load average is
printed. A script, never a test (times depend on the machine).

    python benchmarks/invariance_timing.py
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from instrument import pipeline
    from instrument.invariance import collapse_empty_categories, invariance
    from instrument.sem.optim import single_threaded_blas
    from instrument.simulate import simulate
    from instrument.bank import load_bank

    bank = load_bank()
    plan = pipeline.default_plan_path()
    sim = simulate(plan, seed=pipeline.load_plan(plan)["seed"], bank=bank)
    items = bank.items_for("family")
    df = bank.recode_reverse(sim.family.data, form="family")
    df, _ = collapse_empty_categories(df, items, "language")
    df = df[items + ["language"]]
    model = bank.model_syntax(form="family")
    load = os.getloadavg()
    with single_threaded_blas():
        c0 = time.process_time()
        res = invariance(model, df, group="language", estimator="WLSMV", ordered=True,
                         missing="pairwise")
        c1 = time.process_time()
        res.partial()
        c2 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        data, lav = Path(tmp, "d.csv"), Path(tmp, "m.lav")
        df.to_csv(data, index=False)
        lav.write_text(model)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        out = subprocess.run(["Rscript", str(HERE / "invariance_timing.R"), str(data), str(lav),
                              "language"], capture_output=True, text=True, check=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    ours = [float(x) for x in res.table["chisq.diff"].iloc[1:]]
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in load)}; "
          f"N = {len(df)} ({(df['language'] == 'es').sum()} es), {len(items)} items")
    print("| task | instrument CPU s | lavaan CPU s |\n|---|---|---|")
    print(f"| five WLSMV fits + difference tests | {c1 - c0:.1f} (with item score tests and "
          f"dMACS) | {r['total']:.1f} (fits {r['fits']:.1f}, lavTestLRT {r['lrt']:.1f}) |")
    print(f"| partial-invariance search | {c2 - c1:.1f} | – |")
    print(f"scaled Δχ², instrument: {', '.join(f'{x:.4f}' for x in ours)}")
    print(f"scaled Δχ², lavaan:     {', '.join(f'{x:.4f}' for x in r['chisq.diff'])}")


if __name__ == "__main__":
    main()
