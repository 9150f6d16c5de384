"""The replication runner: draw a data set, run an analysis, record the result, many times.

Replication ``r`` of a study with seed ``s`` draws its data from the generator of
``numpy.random.SeedSequence(s).spawn(reps)[r]`` (built directly as
``SeedSequence(s, spawn_key=(r,))``, which is the same child), so a replication's record depends
on ``(s, r)`` only: the same whatever the scheduler, the number of workers, the chunking, or how
often the study was interrupted and resumed.

Each record holds ``rep``, ``status`` (``"ok"``, ``"nonconverged"`` when the analysis reports
``converged`` false, ``"error"`` when it raised), ``error`` (the exception's type and message, empty
otherwise) and the analysis' fields (numbers as float64, text as str). Records stream to Parquet
files in the study directory as chunks arrive (``part-*.parquet``, each written atomically); a
study restarted on the same directory skips the replications already stored, so none is repeated
or lost. On completion the parts are consolidated into ``replications.parquet`` (rows in ``rep``
order). Timings go to ``run.log`` beside it, never into the results.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
import uuid
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.results import Meta, Table, from_jsonable, to_jsonable

__all__ = ["montecarlo", "MonteCarloResult", "replication_rng", "run_chunk", "SCHEDULERS"]

SCHEDULERS = ("inprocess", "processes", "dask")
_FIXED = ("rep", "status", "error")
_FINAL = "replications.parquet"
_MANIFEST = "study.json"


def replication_rng(seed: int, rep: int) -> np.random.Generator:
    """The generator of replication ``rep``: child ``rep`` of ``SeedSequence(seed).spawn``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(rep),)))


def _clean(value: Any) -> Any:
    """A record value as float64 (numbers, booleans) or str (anything else)."""
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    return str(value)


def run_one(population: Any, analysis: Callable[[Any], Mapping[str, Any]], seed: int,
            rep: int) -> dict:
    """Draw replication ``rep`` and run the analysis on it; errors become a record."""
    rec: dict = {"rep": int(rep), "status": "ok", "error": ""}
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            data = population.draw(replication_rng(seed, rep))
            out = analysis(data)
        if not isinstance(out, Mapping):
            raise TypeError(f"the analysis must return a mapping of scalars; got "
                            f"{type(out).__name__}")
        for k, v in out.items():
            if k in _FIXED:
                raise ValueError(f"the analysis returned the reserved field {k!r}")
            rec[str(k)] = _clean(v)
        if "converged" in out and not bool(out["converged"]):
            rec["status"] = "nonconverged"
    except Exception as exc:  # every failure is a recorded outcome of the replication
        rec["status"] = "error"
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        rec["error"] = f"{type(exc).__name__}: {exc}{where}"
    return rec


def run_chunk(population: Any, analysis: Callable, seed: int, reps: Sequence[int]) -> list[dict]:
    """Run replications ``reps`` in this process with BLAS limited to one thread (the same
    floating-point path in every scheduler)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return [run_one(population, analysis, seed, r) for r in reps]


def _frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a DataFrame: rows by rep; rep, status, error, then the analysis' fields in the
    order of the lowest replication that has them."""
    recs = sorted(records, key=lambda r: r["rep"])
    cols: list[str] = list(_FIXED)
    for r in recs:
        for k in r:
            if k not in cols:
                cols.append(k)
    data = {}
    for c in cols:
        vals = [r.get(c) for r in recs]
        if c == "rep":
            data[c] = np.array(vals, dtype=np.int64)
        elif c in ("status", "error") or any(isinstance(v, str) for v in vals):
            data[c] = pd.Series(["" if v is None or (isinstance(v, float) and math.isnan(v))
                                 else str(v) for v in vals], dtype=object)
        else:
            data[c] = np.array([math.nan if v is None else v for v in vals], dtype=np.float64)
    return pd.DataFrame(data, columns=cols)


def _records(df: pd.DataFrame) -> list[dict]:
    """Inverse of `_frame` for stored parts (NaN fields of a record are dropped)."""
    out = []
    for row in df.to_dict("records"):
        rec = {"rep": int(row["rep"]), "status": str(row["status"]), "error": str(row["error"])}
        for k, v in row.items():
            if k in _FIXED:
                continue
            if isinstance(v, float) and math.isnan(v):
                continue
            rec[k] = v if isinstance(v, str) else float(v)
        out.append(rec)
    return out


class _Store:
    """The study directory: manifest, streamed parts, consolidated file, run log."""

    def __init__(self, path: str | Path | None, manifest: Mapping[str, Any]):
        self.path = None if path is None else Path(path)
        self.records: dict[int, dict] = {}
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        mpath = self.path / _MANIFEST
        text = json.dumps(to_jsonable(manifest), sort_keys=True, indent=1)
        if mpath.exists():
            old = json.loads(mpath.read_text())
            new = json.loads(text)
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                raise ValueError(f"{mpath}: the stored study differs in {diff}; resume it with the "
                                 "same population, analysis and seed, or use a new path=")
        else:
            _atomic_write(mpath, text.encode())
        files = sorted(self.path.glob("part-*.parquet"))
        if (self.path / _FINAL).exists():
            files.insert(0, self.path / _FINAL)
        for f in files:
            for rec in _records(pd.read_parquet(f)):
                self.records.setdefault(rec["rep"], rec)

    def add(self, recs: list[dict]) -> None:
        fresh = [r for r in recs if r["rep"] not in self.records]
        for r in fresh:
            self.records[r["rep"]] = r
        if self.path is None or not fresh:
            return
        name = f"part-{min(r['rep'] for r in fresh):09d}-{uuid.uuid4().hex[:8]}.parquet"
        buf = _parquet_bytes(_frame(fresh))
        _atomic_write(self.path / name, buf)

    def finish(self, reps: int) -> pd.DataFrame:
        df = _frame(r for k, r in self.records.items() if k < reps)
        if self.path is not None:
            _atomic_write(self.path / _FINAL, _parquet_bytes(_frame(self.records.values())))
            for f in self.path.glob("part-*.parquet"):
                f.unlink()
        return df

    def log(self, entry: Mapping[str, Any]) -> None:
        if self.path is not None:
            with open(self.path / "run.log", "a") as fh:
                fh.write(json.dumps(to_jsonable(entry), sort_keys=True) + "\n")


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _Progress:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, total: int, done: int, show: bool | None):
        self.total, self.done, self.errors = total, done, 0
        self.show = sys.stderr.isatty() if show is None else bool(show)
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.update(0, 0)

    def update(self, n: int, errors: int) -> None:
        self.done += n
        self.errors += errors
        if not self.show:
            return
        now = time.perf_counter()
        if now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        width = 30
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} replications, "
                         f"{self.errors} not ok, {now - self.t0:.1f} s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.show:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _describe(obj: Any) -> Any:
    if hasattr(obj, "describe"):
        return obj.describe()
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return {"callable": f"{getattr(obj, '__module__', '')}.{name}"}


def _chunks(todo: list[int], n_chunks: int) -> list[list[int]]:
    size = max(1, math.ceil(len(todo) / max(1, n_chunks)))
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def _resolve_scheduler(scheduler: Any) -> tuple[str, Any]:
    if scheduler is None or scheduler == "inprocess":
        return "inprocess", None
    if scheduler == "processes":
        return "processes", None
    if isinstance(scheduler, str) and "://" in scheduler:
        return "dask", scheduler
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a declared dependency
        Client = ()
    if Client and isinstance(scheduler, Client):
        return "dask", scheduler
    raise ValueError("scheduler= must be None, 'inprocess', 'processes', a Dask scheduler address "
                     f"('tcp://host:8786') or a dask.distributed.Client; got {scheduler!r}")


@dataclass(frozen=True)
class MonteCarloResult:
    """The records of a Monte Carlo study, one row per replication.

    Attributes
    ----------
    replications : DataFrame
        ``rep status error`` then the analysis' fields (float64 or str), rows in ``rep`` order.
    reps, seed : int
    meta : Meta
        ``options``: the population's and the analysis' descriptions.
    """

    replications: pd.DataFrame
    reps: int
    seed: int
    meta: Meta = field(default_factory=Meta)

    @property
    def ok(self) -> pd.DataFrame:
        """Replications whose status is ``"ok"`` (converged, no error)."""
        return self.replications[self.replications["status"] == "ok"]

    @property
    def convergence_rate(self) -> float:
        """Share of replications with status ``"ok"``."""
        return float((self.replications["status"] == "ok").mean()) if self.reps else math.nan

    def summary(self) -> Table:
        """Mean, SD and count of every numeric field over the ``ok`` replications."""
        ok = self.ok
        rows = []
        for c in self.replications.columns:
            if c in _FIXED or self.replications[c].dtype != np.float64:
                continue
            v = ok[c].dropna()
            rows.append({"field": c, "mean": float(v.mean()) if len(v) else math.nan,
                         "sd": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                         "n": float(len(v))})
        counts = self.replications["status"].value_counts()
        note = ", ".join(f"{k} {int(counts.get(k, 0))}" for k in ("ok", "nonconverged", "error"))
        return Table(f"Monte Carlo study: {self.reps} replications, seed {self.seed}",
                     pd.DataFrame(rows, columns=["field", "mean", "sd", "n"]),
                     notes=(f"Replications: {note}. Means and SDs over the ok replications.",))

    def to_dict(self) -> dict:
        return to_jsonable({"replications": self.replications, "reps": self.reps,
                            "seed": self.seed, "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MonteCarloResult":
        recs = from_jsonable(d["replications"])
        return cls(replications=_frame(_records(recs)) if len(recs) else recs,
                   reps=int(d["reps"]), seed=int(d["seed"]), meta=Meta.from_dict(d["meta"]))


def montecarlo(population: Any, analysis: Callable[[Any], Mapping[str, Any]], reps: int = 500,
               seed: int = 1, *, scheduler: Any = None, workers: int | None = None,
               path: str | Path | None = None, progress: bool | None = None,
               chunks_per_worker: int = 8) -> MonteCarloResult:
    """Run a Monte Carlo study: ``reps`` replications of ``analysis(population.draw(rng))``.

    Parameters
    ----------
    population : MomentPopulation, PlanPopulation or any object with ``draw(rng)``
        Where the data come from (`MomentPopulation.from_fit` turns a fitted model into one).
    analysis : callable
        ``analysis(data) -> mapping`` of scalar fields (numbers, booleans, strings). A falsy
        ``converged`` field marks the replication ``"nonconverged"``; an exception marks it
        ``"error"`` with its message. With ``"processes"`` or Dask it must be picklable (a
        module-level function or an instance of a module-level class).
    reps : int
        Number of replications.
    seed : int
        Study seed; replication ``r`` uses child ``r`` of ``SeedSequence(seed).spawn``.
    scheduler : None, "inprocess", "processes", "tcp://host:port" or dask.distributed.Client
        Where replications run: this process (None), a local process pool, or a Dask cluster.
    workers : int, optional
        Size of the local process pool (all cores when None).
    path : path, optional
        Study directory. Records stream to Parquet there as chunks complete; running the same
        study on the same directory again resumes it (stored replications are neither repeated
        nor lost), and a study may be extended to more ``reps``.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).
    chunks_per_worker : int
        Replications are sent in ``workers * chunks_per_worker`` chunks (fewer round trips).

    Returns
    -------
    MonteCarloResult
    """
    if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or reps < 1:
        raise ValueError(f"reps= must be a positive integer; got {reps!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed= must be a non-negative integer; got {seed!r}")
    if not hasattr(population, "draw"):
        raise TypeError("population= must have a draw(rng) method (MomentPopulation, "
                        f"PlanPopulation); got {type(population).__name__}")
    if not callable(analysis):
        raise TypeError(f"analysis= must be callable; got {type(analysis).__name__}")
    kind, target = _resolve_scheduler(scheduler)
    options = {"population": _describe(population), "analysis": _describe(analysis)}
    store = _Store(path, {"seed": int(seed), **options})
    todo = [r for r in range(int(reps)) if r not in store.records]
    bar = _Progress(int(reps), int(reps) - len(todo), progress)
    t0 = time.perf_counter()
    n_workers = 1
    try:
        if todo and kind == "inprocess":
            for chunk in _chunks(todo, max(1, len(todo) // 10)):
                recs = run_chunk(population, analysis, int(seed), chunk)
                store.add(recs)
                bar.update(len(recs), sum(r["status"] != "ok" for r in recs))
        elif todo and kind == "processes":
            from concurrent.futures import ProcessPoolExecutor, as_completed
            n_workers = int(workers or os.cpu_count() or 1)
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futs = [pool.submit(run_chunk, population, analysis, int(seed), c)
                        for c in _chunks(todo, n_workers * chunks_per_worker)]
                try:
                    for fut in as_completed(futs):
                        recs = fut.result()
                        store.add(recs)
                        bar.update(len(recs), sum(r["status"] != "ok" for r in recs))
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
        elif todo:
            from distributed import Client, as_completed
            client = target if isinstance(target, Client) else Client(target)
            try:
                n_workers = max(1, len(client.scheduler_info().get("workers", {})))
                pop_f, ana_f = client.scatter([population, analysis], broadcast=True)
                futs = [client.submit(run_chunk, pop_f, ana_f, int(seed), c, pure=False)
                        for c in _chunks(todo, n_workers * chunks_per_worker)]
                try:
                    for fut in as_completed(futs):
                        recs = fut.result()
                        store.add(recs)
                        bar.update(len(recs), sum(r["status"] != "ok" for r in recs))
                except BaseException:
                    client.cancel(futs)
                    raise
            finally:
                if client is not target:
                    client.close()
    finally:
        bar.close()
        store.log({"event": "run", "scheduler": kind, "workers": n_workers,
                   "reps_run": len(todo), "seconds": time.perf_counter() - t0,
                   "stored": len(store.records)})
    df = store.finish(int(reps))
    return MonteCarloResult(replications=df, reps=int(reps), seed=int(seed),
                            meta=Meta(options=options, seed=int(seed)))
