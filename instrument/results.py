"""Shared pieces of every result: metadata, JSON conversion and the printable `Table`.

Results are frozen dataclasses of numbers, strings, tuples and DataFrames, with no reference to the
model or the data. Every result type offers ``to_dict()`` (JSON-serialisable) and ``from_dict()``;
``summary()`` returns a `Table`, and rounding happens only when a `Table` is rendered.
"""
from __future__ import annotations

import hashlib
import json
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from instrument import __version__


@dataclass(frozen=True)
class Meta:
    """Provenance of a result (lavaan's ``version`` and ``Options`` slots).

    Attributes
    ----------
    version : str
        Version of `instrument` that produced the result.
    options : dict
        The options actually used (after defaults were resolved).
    seed : int or None
        Random seed, where randomness was involved.
    data_hash : str
        SHA-256 (first 16 hex digits) of the input data, see `hash_frame`.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    data_hash: str = ""
    version: str = __version__

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Meta":
        return cls(options=dict(d.get("options", {})), seed=d.get("seed"),
                   data_hash=d.get("data_hash", ""), version=d.get("version", __version__))


def hash_frame(df: pd.DataFrame) -> str:
    """Stable hash of a DataFrame's values, index and column names (first 16 hex digits).

    All-numeric frames are hashed from their float64 bytes (fast); others through
    ``pandas.util.hash_pandas_object``.
    """
    if len(df.columns) and all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        return hash_values(df.columns, df.to_numpy(dtype=float), df.index)
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).values.tobytes())
    return h.hexdigest()[:16]


def hash_values(columns, values: np.ndarray, index: pd.Index, labels=()) -> str:
    """`hash_frame` of an all-numeric frame given as its column names, its float values
    (n, k) and its index, for callers that already hold the values as an array; ``labels``
    (arrays of group or cluster labels, named last in ``columns``) are hashed after them. The
    values are hashed column by column (the layout pandas hands out, so usually without a
    copy)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, columns)).encode())
    h.update(np.asfortranarray(values, dtype=float).T)
    h.update(pd.util.hash_pandas_object(index).values.tobytes())
    for lab in labels:
        h.update(pd.util.hash_array(np.asarray(lab, dtype=object)).tobytes())
    return h.hexdigest()[:16]


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas objects (recursively) into JSON-serialisable Python objects.

    DataFrames become ``{"__frame__": "records", "columns": [...], "data": [[...], ...]}`` so that
    `from_jsonable` restores them with their column order; NaN becomes ``None``.
    """
    t = type(obj)
    if t is float:
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if t is int or t is str or t is bool or obj is None:
        return obj
    if t is np.ndarray and obj.dtype.kind in "biuf":
        if obj.dtype.kind != "f":
            return obj.tolist()
        out = obj.astype(object)
        out[~np.isfinite(obj)] = None
        return out.tolist()
    if t is dict:
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        cols = [_column_jsonable(obj.iloc[:, k]) for k in range(obj.shape[1])]
        return {"__frame__": "records", "columns": [str(c) for c in obj.columns],
                "data": [list(row) for row in zip(*cols)]}
    if isinstance(obj, pd.Series):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if obj is pd.NA or obj is None:
        return None
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    return obj


def _column_jsonable(col: pd.Series) -> list:
    """`to_jsonable` of each value of a column: numpy bool, integer and float columns at once
    (non-finite floats become None), string columns at once (missing becomes None), other
    columns value by value (strings as they are)."""
    kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else ""
    if kind in "biu" and kind:
        return col.to_numpy().tolist()
    if kind == "f":
        vals = col.to_numpy()
        out = vals.astype(object)
        out[~np.isfinite(vals)] = None
        return out.tolist()
    if isinstance(col.dtype, pd.StringDtype):
        return col.to_numpy(dtype=object, na_value=None).tolist()
    if kind == "O":
        return [v if type(v) is str else to_jsonable(v) for v in col.to_numpy()]
    return [to_jsonable(v) for v in col]


def from_jsonable(obj: Any) -> Any:
    """Inverse of `to_jsonable` for DataFrames (other values are returned unchanged)."""
    if isinstance(obj, Mapping) and obj.get("__frame__") == "records":
        df = pd.DataFrame(obj["data"], columns=obj["columns"])
        return df.fillna(value=np.nan) if len(df) else df
    if isinstance(obj, Mapping):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def _restore(hint: Any, value: Any) -> Any:
    """`from_jsonable` of one dataclass field, back to its declared type: `Meta` from its dict,
    tuples from lists, float arrays (JSON null -> NaN) from nested lists."""
    if hint is Meta:
        return Meta.from_dict(value or {})
    value = from_jsonable(value)
    if hint is np.ndarray:
        return np.array(value, dtype=float)
    if (typing.get_origin(hint) or hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


class JSONResult:
    """``to_dict()``/``from_dict()`` for a result dataclass whose fields are numbers, strings,
    tuples, float arrays, DataFrames, mappings and a `Meta`: every field by `to_jsonable`, and back
    by `from_jsonable` to the field's declared type (fields absent from the dict take their
    defaults)."""

    def to_dict(self) -> dict:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _restore(hints[f.name], d[f.name]) for f in fields(cls)
                      if f.name in d})


def dumps(obj: Any, **kw: Any) -> str:
    """JSON text of any result (via `to_jsonable`), with sorted keys for byte-stable output."""
    return json.dumps(to_jsonable(obj), sort_keys=True, allow_nan=False, **kw)


def collect_warnings(result: Any, where: str = "") -> list[str]:
    """Every warning a (JSON-able) result carries, each prefixed with where it sits.

    A result states its problems in a ``warnings`` list (non-convergence, Heywood cases,
    non-positive-definite matrices, a singular information matrix, boundary estimates, models
    that could not be estimated) and, for an iterative fit, ``converged``. This walks the
    result: each ``warnings`` entry is returned as ``"<path>: <text>"`` (``path`` being the keys
    that lead to it, e.g. ``"teacher"``), and ``converged: false`` without a warning that says so
    adds ``"<path>: did not converge"``. Tables (`to_jsonable` frames) are not entered.
    """
    out: list[str] = []
    obj = to_jsonable(result)

    def walk(o: Any, path: tuple[str, ...]) -> None:
        if isinstance(o, Mapping):
            if o.get("__frame__") == "records":
                return
            here = " / ".join(path)
            prefix = f"{here}: " if here else ""
            ws = [str(w) for w in (o.get("warnings") or []) if isinstance(o.get("warnings"), list)]
            out.extend(prefix + w for w in ws)
            if o.get("converged") is False and not any("converge" in w.lower() for w in ws):
                out.append(prefix + "did not converge")
            for k, v in o.items():
                if k not in ("warnings", "meta"):
                    walk(v, path + (str(k),))
        elif isinstance(o, list):
            for v in o:
                walk(v, path)

    walk(obj, (where,) if where else ())
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Table:
    """A printable table, like statsmodels' ``Summary``: a title, a DataFrame and notes.

    Numbers are rounded only here, when rendered, to ``digits`` decimals.
    """

    title: str
    frame: pd.DataFrame
    notes: Sequence[str] = ()
    digits: int = 3

    def _formatted(self) -> pd.DataFrame:
        def fmt(v: Any) -> str:
            if isinstance(v, (float, np.floating)):
                return "" if math.isnan(v) else f"{v:.{self.digits}f}"
            return "" if v is None else str(v)
        return self.frame.map(fmt) if len(self.frame) else self.frame.astype(str)

    def as_text(self) -> str:
        body = self._formatted().to_string(index=False) if len(self.frame) else "(empty)"
        lines = [self.title, "=" * len(self.title), body]
        lines += [f"Note. {n}" for n in self.notes]
        return "\n".join(lines)

    def as_markdown(self) -> str:
        f = self._formatted()
        head = "| " + " | ".join(map(str, f.columns)) + " |"
        sep = "|" + "---|" * len(f.columns)
        rows = ["| " + " | ".join(r) + " |" for r in f.astype(str).values.tolist()]
        return "\n".join([f"**{self.title}**", "", head, sep, *rows, *[f"\n*Note.* {n}" for n in self.notes]])

    def as_html(self) -> str:
        import html
        f = self._formatted()
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in f.columns)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                       for r in f.values.tolist())
        notes = "".join(f"<p class='note'><em>Note.</em> {html.escape(n)}</p>" for n in self.notes)
        return (f"<table class='apa'><caption>{html.escape(self.title)}</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{notes}")

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return self.as_html()
