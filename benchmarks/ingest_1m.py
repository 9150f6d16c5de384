"""Benchmark (outside the test suite): stream a generated 1,000,000-row CSV through `ingest`.

Usage::

    /work/venv/bin/python benchmarks/ingest_1m.py [--rows 1000000] [--chunksize 100000]

Writes a CSV of the teacher form (codes with 3% missing and 0.1% out-of-range codes, so the
quarantine path is exercised) in chunks to a temporary folder, then ingests it and prints wall
time, peak traced Python/numpy memory (tracemalloc) and the process's peak resident set size
(resource.getrusage). Uses the shipped bank when `instrument.bank` exists, else the 12-item test
bank of tests/conftest.py.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def get_bank():
    try:
        from instrument.bank import load_bank
        return load_bank()
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import ToyBank
        return ToyBank()


def generate(path: Path, bank, rows: int, chunk: int = 100_000, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    items = bank.items_for("teacher")
    scale = bank.items.set_index("item_id")["scale"]
    top = np.array([max(bank.scales[scale[i]].codes) for i in items])
    first = True
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        codes = (rng.random((n, len(items))) * top).astype(int) + 1.0
        codes[rng.random(codes.shape) < 0.03] = np.nan
        codes[rng.random(codes.shape) < 0.001 / len(items)] = 9
        df = pd.DataFrame(codes, columns=items)
        df.insert(0, "respondent_id", [f"R{start + k:07d}" for k in range(n)])
        df.insert(1, "school_id", [f"S{k:04d}" for k in rng.integers(0, 3000, n)])
        df.insert(2, "district_id", "D01")
        df.insert(3, "language", np.where(rng.random(n) < 0.1, "es", "en"))
        df.insert(4, "years_at_school", rng.poisson(6, n))
        df.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--no-trace", action="store_true",
                    help="Do not run tracemalloc (it slows allocation-heavy code several-fold).")
    args = ap.parse_args()
    from instrument.io import ingest
    bank = get_bank()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        t0 = time.perf_counter()
        generate(path, bank, args.rows)
        t_gen = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if not args.no_trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        res = ingest(path, bank=bank, form="teacher", chunksize=args.chunksize,
                     quarantine_dir=tmp)
        t_ing = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] if not args.no_trace else float("nan")
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        data_mb = res.responses.data.memory_usage(deep=True).sum() / 2**20
    print(f"rows={args.rows} items={len(res.responses.items)} file={size_mb:.0f} MiB "
          f"(generated in {t_gen:.1f} s)")
    print(f"ingest: {t_ing:.1f} s (tracemalloc {'off' if args.no_trace else 'on'}), read={res.read} used={res.used} "
          f"quarantined={res.quarantined}")
    print(f"resulting ResponseSet data: {data_mb:.0f} MiB")
    print(f"peak traced memory during ingest (tracemalloc): {peak / 2**20:.0f} MiB")
    print(f"peak RSS of the process: {rss:.0f} MiB (before ingest: {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
