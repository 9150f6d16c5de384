"""The data step (lavaan's ``lav_data``): observed variables, groups, clusters and missing rows.

One function, `prepare`, turns a DataFrame and the parsed model into per-group arrays in the
model's variable order, with one set of checks and messages for every continuous estimator:
rows with a missing group or cluster label are removed; with ``missing="listwise"`` every row with
a missing model variable is removed, with ``missing="fiml"`` only rows whose every model variable
is missing (lavaan: "some cases are empty and will be ignored"); N is counted after that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.results import hash_frame
from instrument.sem.partable import model_variables
from instrument.sem.syntax import SyntaxRow

__all__ = ["SemData", "prepare", "group_labels_in_order"]

MISSING = ("listwise", "fiml")


@dataclass(frozen=True)
class SemData:
    """The model's data, split by group (lavaan's ``lavdata``).

    Attributes
    ----------
    ov : list of str
        Observed variables of the model, in the model's order.
    blocks : list of ndarray
        Per group (n_g, p) values; NaN marks a missing value (FIML only).
    clusters : list of ndarray or None
        Per group cluster labels, or None without ``cluster=``.
    group_labels : list of str
        Groups in lavaan's order (first appearance, or ``group_order``); ``["1"]`` without groups.
    warnings : list of str
        What was removed and why, one message per reason.
    nobs_dropped : int
        Rows removed before N was counted.
    data_hash : str
        `instrument.results.hash_frame` of the model's columns (provenance).
    """

    ov: list
    blocks: list
    clusters: list
    group_labels: list
    warnings: list
    nobs_dropped: int
    data_hash: str

    @property
    def ntotal(self) -> int:
        return int(sum(b.shape[0] for b in self.blocks))


def prepare(rows: Sequence[SyntaxRow], data: pd.DataFrame, *, group: str | None = None,
            group_order: Sequence | None = None, cluster: str | None = None,
            missing: str = "listwise") -> SemData:
    """Check ``data`` against the model and split it into per-group arrays.

    Raises
    ------
    TypeError
        ``data`` is not a DataFrame.
    ValueError
        A model variable, ``group`` or ``cluster`` is not a column; a model variable is not
        numeric; ``group_order`` does not list each group once; fewer than 2 clusters in a group.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    if missing not in MISSING:
        raise ValueError(f"missing= must be one of {', '.join(map(repr, MISSING))}; "
                         f"got {missing!r}.")
    for name, col in (("group", group), ("cluster", cluster)):
        if col is not None and col not in data.columns:
            raise ValueError(f"{name}={col!r} is not a column of the data "
                             f"(columns: {list(data.columns)})")
    ov, _ = model_variables(rows)
    absent = [v for v in ov if v not in data.columns]
    if absent:
        raise ValueError(f"observed variable(s) {absent} of the model are not columns of "
                         f"the data (columns: {list(data.columns)})")
    dtypes = data.dtypes
    non_num = [v for v in ov if not pd.api.types.is_numeric_dtype(dtypes[v])]
    if non_num:
        raise ValueError(f"column(s) {non_num} must be numeric")
    extra = [c for c in (group, cluster) if c is not None]
    cols = ov + extra
    sub = data[cols]
    X = sub[ov].to_numpy(dtype=float) if extra else sub.to_numpy(dtype=float)
    warn: list[str] = []
    keep = np.ones(len(sub), bool)
    labels_col = {c: sub[c].to_numpy() for c in extra}
    if extra:
        keep = np.logical_and.reduce([pd.notna(labels_col[c]) for c in extra])
        if (~keep).any():
            warn.append(f"{int((~keep).sum())} row(s) with a missing "
                        f"{' or '.join(repr(c) for c in extra)} value were removed")
    obs = ~np.isnan(X)
    if missing == "fiml":
        ok = obs.any(axis=1)
        why = ("with every model variable missing were removed (lavaan: 'some cases are empty "
               "and will be ignored')")
    else:
        ok = obs.all(axis=1)
        why = "with missing values were removed (listwise)"
    lost = keep & ~ok
    if lost.any():
        warn.append(f"{int(lost.sum())} row(s) {why}")
    keep &= ok
    X = X[keep] if not keep.all() else X
    if group is not None:
        gvals = labels_col[group][keep]
        labels = group_labels_in_order(gvals, group_order)
        masks = [gvals == g for g in labels]
        group_labels = [str(g) for g in labels]
    else:
        masks = [None]
        group_labels = ["1"]
    blocks = [X if m is None else X[m] for m in masks]
    if cluster is not None:
        cvals = labels_col[cluster][keep]
        clusters = [cvals if m is None else cvals[m] for m in masks]
        for cl, lab in zip(clusters, group_labels):
            k = len(pd.unique(cl))
            if k < 2:
                gname = f" in group {lab}" if len(blocks) > 1 else ""
                raise ValueError(f"cluster={cluster!r} needs at least 2 clusters{gname}; "
                                 f"found {k}")
    else:
        clusters = [None] * len(blocks)
    return SemData(ov=ov, blocks=blocks, clusters=clusters, group_labels=group_labels,
                   warnings=warn, nobs_dropped=int((~keep).sum()),
                   data_hash=hash_frame(sub))


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
