"""Item responses prepared for IRT estimation: integer categories 0..m, missing patterns, counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from instrument.rules import DIF_MIN_GROUP


@dataclass(frozen=True)
class ItemData:
    """Responses of the persons with at least one answer, with the statistics CML and MML use.

    Attributes
    ----------
    items : list of str
    frame : DataFrame
        The responses used (rows with no response removed), floats with NaN for missing.
    x : ndarray of int, (N, I)
        Categories, -1 where missing.
    ncat : ndarray of int
        Highest category m_i of each item (categories are 0..m_i).
    offs : ndarray of int
        Offsets of each item's categories 1..m_i in the stacked parameter vector.
    suff : ndarray of int
        Number of responses in each item category 1..m_i (stacked).
    patterns : list of ndarray
        Observed item indices of each missing-data pattern.
    score_counts : list of ndarray
        For each pattern, the number of persons with raw score r = 0..sum of m_i over its items.
    """

    items: list[str]
    frame: pd.DataFrame
    x: np.ndarray
    ncat: np.ndarray
    offs: np.ndarray
    suff: np.ndarray
    patterns: list[np.ndarray]
    score_counts: list[np.ndarray]


def response_matrix(data: pd.DataFrame, items: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Responses as floats (NaN missing), checked to be whole numbers >= 0.

    Raises ValueError naming the row and column of the first bad value.
    """
    items = list(data.columns) if items is None else list(items)
    missing = [c for c in items if c not in data.columns]
    if missing:
        raise ValueError(f"items not in the data: {', '.join(map(str, missing))}.")
    X = np.empty((len(data), len(items)))
    for j, c in enumerate(items):
        col = pd.to_numeric(data[c], errors="coerce").to_numpy(dtype=float)
        raw = data[c].to_numpy()
        bad = (np.isnan(col) & ~pd.isna(raw)) | (~np.isnan(col) & ((col < 0) | (col != np.round(col))))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"row {r + 1}, column {c!r}: expected a category 0, 1, 2, ... or "
                             f"missing; got {raw[r]!r}.")
        X[:, j] = col
    return items, X


def prepare(data: pd.DataFrame, items: list[str] | None = None) -> ItemData:
    """Check the responses and build the statistics of `ItemData`.

    Categories must be coded 0..m_i; an item whose highest category is never used is an error
    for CML (its parameter is not estimable), as is an item with one category only.
    """
    items, X = response_matrix(data, items)
    keep = ~np.all(np.isnan(X), axis=1)
    X = X[keep]
    frame = pd.DataFrame(X, columns=items)
    obs = ~np.isnan(X)
    x = np.where(obs, X, -1).astype(int)
    ncat = np.array([int(x[:, j].max()) for j in range(len(items))])
    for j, it in enumerate(items):
        if ncat[j] < 1:
            raise ValueError(f"column {it!r}: expected at least two observed categories; got "
                             f"{sorted(set(x[obs[:, j], j].tolist()))}.")
        used = np.bincount(x[obs[:, j], j], minlength=ncat[j] + 1)
        if np.any(used == 0):
            empty = np.flatnonzero(used == 0).tolist()
            raise ValueError(f"column {it!r}: category {empty[0]} is never used (categories 0.."
                             f"{ncat[j]} must all occur; recode the item).")
    offs = np.concatenate(([0], np.cumsum(ncat)))
    suff = np.concatenate([np.bincount(x[obs[:, j], j], minlength=ncat[j] + 1)[1:]
                           for j in range(len(items))])
    pat_keys, inverse = np.unique(obs, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    raw = np.where(obs, x, 0).sum(axis=1)
    patterns, counts = [], []
    for g, key in enumerate(pat_keys):
        its = np.flatnonzero(key)
        R = int(ncat[its].sum())
        patterns.append(its)
        counts.append(np.bincount(raw[inverse == g], minlength=R + 1).astype(float))
    return ItemData(items=items, frame=frame, x=x, ncat=ncat, offs=offs, suff=suff,
                    patterns=patterns, score_counts=counts)


def two_group_responses(data: pd.DataFrame, items: list[str], group: str, reference: Any = None
                        ) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """Responses (floats, NaN missing) with the group of each row, its reference and focal labels.

    The reference group is `reference`, or the first label in sorted order. Raises ValueError
    naming the column (and row) when the group column is absent, has a missing label, or does not
    hold exactly two groups.
    """
    if group not in data.columns:
        raise ValueError(f"group= column {group!r} is not in the data.")
    _, X = response_matrix(data, items)
    gv = data[group].to_numpy()
    if pd.isna(gv).any():
        r = int(np.flatnonzero(pd.isna(gv))[0])
        raise ValueError(f"row {r + 1}, column {group!r}: expected a group label; got missing.")
    labels = sorted(pd.unique(gv).tolist(), key=str)
    if len(labels) != 2:
        raise ValueError(f"column {group!r}: expected two groups; got {labels}.")
    ref = labels[0] if reference is None else reference
    if ref not in labels:
        raise ValueError(f"reference= {ref!r} is not a value of column {group!r} ({labels}).")
    foc = labels[1] if labels[0] == ref else labels[0]
    return X, gv, ref, foc


def group_sizes_gate(counts: pd.Series, group: str, what: str = "DIF") -> str | None:
    """Why ``what`` cannot compare the groups of ``group`` whose respondent counts are
    ``counts`` (not exactly two groups, or one with fewer than `DIF_MIN_GROUP` respondents), or
    None when it can."""
    if len(counts) == 2 and counts.min() >= DIF_MIN_GROUP.threshold:
        return None
    return (f"respondents per {group}: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items())
            + f"; {what} needs two groups of at least {DIF_MIN_GROUP.threshold:g} respondents "
            f"each ({DIF_MIN_GROUP.cite()})")
