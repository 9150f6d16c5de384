"""The data step (lavaan's ``lav_data``): observed variables, groups, clusters and missing rows.

Every estimator takes its data through `select` (`prepare` when it holds parsed syntax), so one
set of rules and messages applies to ML, MLR, FIML, WLSMV/ULSMV and two-level ML:

- each model variable must be a column holding some values and no infinite one; continuous
  variables must be numeric, ordered ones numeric codes or an ordered Categorical;
- rows with a missing group or cluster label are removed;
- ``missing="listwise"`` removes every row with a missing model variable; ``"fiml"`` and
  ``"pairwise"`` only rows whose every model variable is missing (lavaan: "some cases are empty
  and will be ignored"); N is counted after that, for every estimator;
- a group needs at least 2 clusters with ``cluster=``.

The kept data of each group are checked the same way for every estimator: a model variable with
fewer than two different observed values (a constant item; an ordered item with one observed
category) is an error, as in lavaan; n <= p is a warning. A sample covariance matrix that is not
positive definite stops complete-data ML (`require_pd_covariance`, as lavaan) and is a warning
elsewhere (`data_warnings`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.results import hash_frame, hash_values
from instrument.sem.partable import model_variables
from instrument.sem.syntax import SyntaxRow

__all__ = ["SemData", "prepare", "select", "group_labels_in_order", "data_warnings",
           "require_pd_covariance", "MISSING"]

MISSING = ("listwise", "pairwise", "fiml")


@dataclass(frozen=True)
class SemData:
    """The model's data, split by group (lavaan's ``lavdata``).

    Attributes
    ----------
    ov : list of str
        Observed variables of the model, in the model's order.
    blocks : list of ndarray or None
        Per group (n_g, p) values; NaN marks a missing value (FIML, pairwise). None when
        variables are ordered: their codes are in `frame`.
    clusters : list of ndarray or None
        Per group cluster labels, or None without ``cluster=``.
    group_labels : list of str
        Groups in lavaan's order (first appearance, or ``group_order``); ``["1"]`` without groups.
    warnings : list of str
        What was removed and why, one message per reason.
    nobs_dropped : int
        Rows removed before N was counted.
    nobs_empty : int
        Of those, rows whose every model variable is missing.
    data_hash : str
        `instrument.results.hash_frame` of the model's columns (provenance).
    frame : DataFrame or None
        With ordered variables: the kept rows of the model's columns (and the group column), so
        the ordinal sample statistics see the codes and categories as given.
    """

    ov: list
    blocks: list | None
    clusters: list
    group_labels: list
    warnings: list
    nobs_dropped: int
    nobs_empty: int
    data_hash: str
    frame: pd.DataFrame | None = None

    @property
    def ntotal(self) -> int:
        if self.blocks is None:
            return int(len(self.frame))
        return int(sum(b.shape[0] for b in self.blocks))


def prepare(rows: Sequence[SyntaxRow], data: pd.DataFrame, *, group: str | None = None,
            group_order: Sequence | None = None, cluster: str | None = None,
            missing: str = "listwise", ordered: Sequence[str] = (),
            keeps: str | None = None) -> SemData:
    """`select` with the observed variables of parsed model syntax, in the model's order."""
    return select(data, model_variables(rows)[0], group=group, group_order=group_order,
                  cluster=cluster, missing=missing, ordered=ordered, keeps=keeps)


def select(data: pd.DataFrame, ov: Sequence[str], *, group: str | None = None,
           group_order: Sequence | None = None, cluster: str | None = None,
           missing: str = "listwise", ordered: Sequence[str] = (),
           keeps: str | None = None) -> SemData:
    """Check ``data`` against the model's variables ``ov`` and split it into per-group arrays.

    Each reason rows were removed gives one message in ``warnings`` (the fit emits it once, as a
    UserWarning, with its other warnings): with ``missing="listwise"`` the number and share of
    rows removed and, when ``keeps`` names it, the option that keeps them (lavaan removes them
    silently apart from a line of its summary).

    Raises
    ------
    TypeError
        ``data`` is not a DataFrame.
    ValueError
        A model variable, ``group`` or ``cluster`` is not a column; a continuous model variable
        is not numeric; a model column has no observed value or an infinite one; ``group_order``
        does not list each group once; fewer than 2 clusters in a group.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    if missing not in MISSING:
        raise ValueError(f"missing= must be one of {', '.join(map(repr, MISSING))}; "
                         f"got {missing!r}.")
    for name, col in (("group", group), ("cluster", cluster)):
        if col is not None and col not in data.columns:
            raise ValueError(f"{name}={col!r} is not a column (not in the data, whose "
                             f"columns are {list(data.columns)})")
    ov = list(ov)
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"observed variable(s) {absent} of the model are not columns of "
                         f"the data (columns: {list(data.columns)})")
    ordered = set(ordered)
    unique = data.columns.is_unique
    dtypes = dict(zip(data.columns, data.dtypes)) if unique else data.dtypes
    non_num = [v for v in ov if v not in ordered and not pd.api.types.is_numeric_dtype(dtypes[v])]
    if non_num:
        raise ValueError(f"column(s) {non_num} must be numeric")
    extra = [c for c in (group, cluster) if c is not None]
    sub = data[ov + extra] if ordered or not unique else None
    labels_col = {c: data[c].to_numpy() if sub is None else sub[c].to_numpy() for c in extra}
    if ordered:
        num = [v for v in ov if pd.api.types.is_numeric_dtype(dtypes[v])]
        all_num = len(num) == len(ov)      # integer-coded items: X holds them all
        X = ((sub if all_num and not extra else sub[num]).to_numpy(dtype=float) if num
             else np.zeros((len(sub), 0)))
        obs = ~np.isnan(X) if all_num else sub[ov].notna().to_numpy()
    else:
        X = (sub[ov] if sub is not None else
             data.take(data.columns.get_indexer(ov), axis=1)).to_numpy(dtype=float)
        num = ov
        obs = ~np.isnan(X)
    # provenance, from the values already read
    data_hash = (hash_frame(sub) if ordered and not all_num else
                 hash_values(ov + extra, X, data.index, [labels_col[c] for c in extra]))
    _check_columns(obs, X, ov, num)
    warn: list[str] = []
    keep = np.ones(len(data), bool)
    if extra:
        keep = np.logical_and.reduce([pd.notna(labels_col[c]) for c in extra])
        if (~keep).any():
            warn.append(f"{int((~keep).sum())} row(s) with a missing "
                        f"{' or '.join(repr(c) for c in extra)} value were removed")
    empty = ~obs.any(axis=1)
    ok = obs.all(axis=1) if missing == "listwise" else ~empty
    lost = keep & ~ok
    if lost.any():
        n, k = len(keep), int(lost.sum())
        if missing == "listwise":
            warn.append(f"{k} of {n} rows ({100 * k / n:.0f}%) have a missing value on a model "
                        "variable and were dropped (missing='listwise', lavaan's default)"
                        + (f"; {keeps} keeps them" if keeps else ""))
        else:
            warn.append(f"{k} of {n} rows ({100 * k / n:.0f}%) have every model variable "
                        "missing and were removed (lavaan: 'some cases are empty and will be "
                        "ignored')")
    nobs_empty = int((keep & empty).sum())
    keep &= ok
    frame = None
    if not keep.all():
        X = X[keep]
    if ordered:
        frame = sub if not extra else sub[ov + ([group] if group is not None else [])]
        frame = frame.loc[keep] if not keep.all() else frame
        X = X if all_num else None          # only for the checks below
    if group is not None:
        gvals = labels_col[group][keep]
        labels = group_labels_in_order(gvals, group_order)
        masks = [gvals == g for g in labels]
        group_labels = [str(g) for g in labels]
    else:
        masks = [None]
        group_labels = ["1"]
    blocks = None if X is None else [X if m is None else X[m] for m in masks]
    if blocks is not None:
        parts = blocks
    else:
        codes = frame[ov]
        parts = [codes if m is None else codes.loc[m] for m in masks]
    warn.extend(_check_groups(parts, ov, group, group_labels))
    if ordered:
        blocks = None
    if cluster is not None:
        cvals = labels_col[cluster][keep]
        clusters = [cvals if m is None else cvals[m] for m in masks]
        for cl, lab in zip(clusters, group_labels):
            k = len(pd.unique(cl))
            if k < 2:
                gname = f" in group {lab}" if len(masks) > 1 else ""
                raise ValueError(f"cluster={cluster!r} needs at least 2 clusters{gname}; "
                                 f"found {k}")
    else:
        clusters = [None] * len(masks)
    return SemData(ov=ov, blocks=blocks, clusters=clusters, group_labels=group_labels,
                   warnings=warn, nobs_dropped=int((~keep).sum()), nobs_empty=nobs_empty,
                   data_hash=data_hash, frame=frame)


def _distinct(part) -> list[list]:
    """Up to two distinct observed values of each column (enough to tell a constant)."""
    if isinstance(part, pd.DataFrame):
        cat = [isinstance(t, pd.CategoricalDtype) for t in part.dtypes]
        if not any(cat):
            return _distinct(part.to_numpy(dtype=float))
        out = []
        for c, is_cat in zip(part.columns, cat):
            col = part[c]
            if is_cat:
                k = col.cat.codes.to_numpy()
                seen = _distinct(np.where(k < 0, np.nan, k).reshape(-1, 1))[0]
                out.append([col.cat.categories[int(v)] for v in seen])
            else:
                out.append(_distinct(col.to_numpy(dtype=float).reshape(-1, 1))[0])
        return out
    X = np.asarray(part, dtype=float)
    if X.shape[0] == 0:
        return [[] for _ in range(X.shape[1])]
    lo = np.fmin.reduce(X, axis=0)      # fmin/fmax skip NaN; NaN only for a column of NaN
    hi = np.fmax.reduce(X, axis=0)
    return [[] if np.isnan(lo[j]) else [lo[j]] if lo[j] == hi[j] else [lo[j], hi[j]]
            for j in range(X.shape[1])]


def _check_groups(parts, ov: Sequence[str], group: str | None, group_labels) -> list[str]:
    """The kept data of each group: every model variable needs two different observed values
    (an error, as lavaan's "some variables have no variance in group g"; for an ordered item:
    two observed categories); ``n <= p`` is a warning (lavaan: "small number of observations
    (nobs < nvar)")."""
    warn = []
    p = len(ov)
    for part, lab in zip(parts, group_labels):
        where = f" within group {lab!r} of {group!r}" if group is not None else ""
        seen = _distinct(part)
        none = [v for v, d in zip(ov, seen) if not d]
        if none:
            raise ValueError(f"data= variable(s) {none} have no observed value{where}; expected "
                             "answers to every model variable"
                             + (" in every group" if group is not None else "")
                             + ": drop the item"
                             + (", or drop or merge the group." if group is not None else "."))
        const = [(v, d[0]) for v, d in zip(ov, seen) if len(d) == 1]
        if const:
            vals = ", ".join(f"{v} = {_fmt(x)}" for v, x in const)
            raise ValueError(f"data= variable(s) {[v for v, _ in const]} are constant{where} "
                             f"(every observed value: {vals}); expected at least two different "
                             "values (for an ordered item, two categories)"
                             + (" in every group" if group is not None else "")
                             + ", as lavaan does: drop the item"
                             + (", or drop or merge the group." if group is not None else "."))
        n = len(part)
        if n <= p:
            gname = f" in group {lab}" if group is not None else ""
            warn.append(f"too few observations{gname}: n = {n} <= number of variables p = {p}")
    return warn


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, (float, np.floating)) else str(x)


def _check_columns(obs: np.ndarray, X: np.ndarray, ov: Sequence[str], num: Sequence[str]) -> None:
    """Each model column must hold some values and no infinite one (the numerics would otherwise
    fail with an unhelpful linear-algebra error)."""
    if len(obs) == 0:
        return
    seen = obs.any(axis=0)
    if not seen.all():
        c = ov[int(np.flatnonzero(~seen)[0])]
        raise ValueError(f"data= column {c!r} has no observed values (every row is missing); "
                         "expected answers in every variable of the model.")
    if X.size:
        inf = np.isinf(X)
        if inf.any():
            j = int(np.flatnonzero(inf.any(axis=0))[0])
            rows = np.flatnonzero(inf[:, j])
            raise ValueError(f"data= column {num[j]!r} holds {len(rows)} infinite value(s) "
                             f"(first in data row {int(rows[0]) + 1}); expected finite numbers.")


def group_labels_in_order(values, group_order=None) -> list:
    """The groups of ``values`` in lavaan's order (first appearance), or in ``group_order``,
    which must list each group of the data exactly once."""
    appear = list(pd.unique(values))
    if group_order is None:
        return appear
    group_order = list(group_order)
    unknown = [g for g in group_order if g not in appear]
    if unknown or len(set(group_order)) != len(appear):
        raise ValueError(f"group_order= must list each group once; groups in the data: "
                         f"{appear}; got {group_order}")
    return group_order


def require_pd_covariance(stats, labels) -> None:
    """Complete-data ML (and MLR) needs each group's sample covariance matrix to be positive
    definite: log|S| enters the discrepancy. lavaan stops ("sample covariance matrix is not
    positive-definite"); so does this, naming the group, n and p.

    ``stats`` is a `instrument.sem.samplestats.SampleStats` (moments per group)."""
    for gs, lab in zip(stats.groups, labels):
        ev = gs.cov_eigenvalues
        if ev[0] <= 1e-10 * max(ev[-1], 1e-300):
            gname = f" in group {lab}" if len(stats.groups) > 1 else ""
            p = gs.cov.shape[0]
            raise ValueError(f"data= the sample covariance matrix{gname} is not positive "
                             f"definite (smallest eigenvalue {ev[0]:.3g}; n = {gs.n} rows for "
                             f"p = {p} variables); expected more rows than variables"
                             f"{' in every group' if gname else ''} and no variable that is a "
                             "linear combination of others, as ML needs (lavaan stops here too).")


def data_warnings(stats, labels) -> list[str]:
    """A sample covariance matrix that is not positive definite (lavaan warns), one message per
    group. Constant variables and n <= p are checked by `select`, for every estimator.

    ``stats`` is a `instrument.sem.samplestats.SampleStats` (moments per group)."""
    out = []
    for gs, lab in zip(stats.groups, labels):
        gname = f" in group {lab}" if len(stats.groups) > 1 else ""
        ev = gs.cov_eigenvalues
        if ev[0] <= 1e-10 * max(ev[-1], 1e-300):
            out.append(f"the sample covariance matrix{gname} is not positive definite "
                       f"(smallest eigenvalue {ev[0]:.3g})")
    return out
