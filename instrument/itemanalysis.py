"""Item analysis: response distributions, sparse categories, floor/ceiling, item-rest correlation.

Every flag names the `instrument.rules.Rule` that raised it, so a report can quote both the
threshold and its source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.results import Meta, Table, from_jsonable, hash_frame, to_jsonable
from instrument.rules import (ITEM_MAX_FLOOR_CEILING, ITEM_MIN_CATEGORY_COUNT,
                              ITEM_MIN_CATEGORY_SHARE, ITEM_MIN_ITEM_REST_R, Rule)

__all__ = ["ItemAnalysis", "item_analysis", "ITEM_RULES"]

ITEM_RULES: tuple[Rule, ...] = (ITEM_MIN_CATEGORY_COUNT, ITEM_MIN_CATEGORY_SHARE,
                                ITEM_MAX_FLOOR_CEILING, ITEM_MIN_ITEM_REST_R)
ALL_GROUPS = "(all)"


@dataclass(frozen=True)
class ItemAnalysis:
    """Item statistics, overall and per group.

    Attributes
    ----------
    items : DataFrame
        One row per group and item: ``group item n missing_share mean sd floor ceiling r.drop
        alpha.drop n_categories n_empty n_sparse flags``. ``group`` is ``"(all)"`` for the whole sample;
        ``floor``/``ceiling`` are the shares answering the lowest/highest category; ``r.drop``
        the corrected item-total (item-rest) correlation; ``alpha.drop`` raw alpha of the other
        items (psych ``alpha.drop``); ``flags`` the keys of the rules the
        item fails, joined with ``"; "`` (empty when none).
    distribution : DataFrame
        One row per group, item and category: ``group item category count share``
        (shares of non-missing answers; empty categories have count 0).
    rules : tuple of Rule
        The rules applied.
    meta : Meta
    """

    items: pd.DataFrame
    distribution: pd.DataFrame
    rules: tuple[Rule, ...] = ITEM_RULES
    meta: Meta = field(default_factory=Meta)

    def flagged(self) -> pd.DataFrame:
        """Rows of ``items`` with at least one flag."""
        return self.items[self.items["flags"] != ""].reset_index(drop=True)

    def to_dict(self) -> dict:
        return {"items": to_jsonable(self.items), "distribution": to_jsonable(self.distribution),
                "rules": [r.to_dict() for r in self.rules], "meta": self.meta.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ItemAnalysis":
        items = from_jsonable(d["items"])
        items["flags"] = items["flags"].fillna("").astype(str)
        return cls(items=items, distribution=from_jsonable(d["distribution"]),
                   rules=tuple(Rule(**r) for r in d["rules"]),
                   meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        cols = ["group", "item", "n", "missing_share", "mean", "sd", "floor", "ceiling", "r.drop",
                "alpha.drop", "n_sparse", "flags"]
        f = self.items[cols]
        if (f["group"] == ALL_GROUPS).all():
            f = f.drop(columns="group")
        return Table("Item analysis", f, notes=tuple(r.describe() for r in self.rules))


def _r_drop(x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Item-rest correlations and alpha if item deleted, from pairwise covariances (psych)."""
    k = x.shape[1]
    out, adrop = np.full(k, np.nan), np.full(k, np.nan)
    if k < 2:
        return out, adrop
    C = x.cov().to_numpy()
    for i in range(k):
        keep = [j for j in range(k) if j != i]
        Ck = C[np.ix_(keep, keep)]
        denom = C[i, i] * Ck.sum()
        out[i] = (C[:, i].sum() - C[i, i]) / np.sqrt(denom) if denom > 0 else np.nan
        if k > 2 and Ck.sum() > 0:
            adrop[i] = (k - 1) / (k - 2) * (1 - np.trace(Ck) / Ck.sum())
    return out, adrop


def _one_group(x: pd.DataFrame, keyed: pd.DataFrame, cats: Mapping[str, list[float]],
               label: str) -> tuple[list[dict], list[dict]]:
    rows, dist = [], []
    rdrop, adrop = _r_drop(keyed)
    for j, it in enumerate(x.columns):
        col = x[it]
        obs = col.dropna()
        n = int(len(obs))
        codes = cats[it]
        counts = obs.value_counts()
        share = (lambda c: counts.get(c, 0) / n if n else np.nan)
        for c in codes:
            dist.append({"group": label, "item": it, "category": c,
                         "count": int(counts.get(c, 0)), "share": share(c)})
        cnt = np.array([counts.get(c, 0) for c in codes])
        shr = cnt / n if n else np.full(len(codes), np.nan)
        floor, ceiling = (shr[0], shr[-1]) if len(codes) else (np.nan, np.nan)
        flags = []
        if n and not all(ITEM_MIN_CATEGORY_COUNT.passes(v) for v in cnt):
            flags.append(ITEM_MIN_CATEGORY_COUNT.key)
        if n and not all(ITEM_MIN_CATEGORY_SHARE.passes(v) for v in shr):
            flags.append(ITEM_MIN_CATEGORY_SHARE.key)
        if n and not (ITEM_MAX_FLOOR_CEILING.passes(floor) and ITEM_MAX_FLOOR_CEILING.passes(ceiling)):
            flags.append(ITEM_MAX_FLOOR_CEILING.key)
        if not np.isnan(rdrop[j]) and not ITEM_MIN_ITEM_REST_R.passes(rdrop[j]):
            flags.append(ITEM_MIN_ITEM_REST_R.key)
        rows.append({"group": label, "item": it, "n": n,
                     "missing_share": float(col.isna().mean()) if len(col) else np.nan,
                     "mean": float(obs.mean()) if n else np.nan,
                     "sd": float(obs.std()) if n > 1 else np.nan,
                     "floor": float(floor), "ceiling": float(ceiling), "r.drop": float(rdrop[j]),
                     "alpha.drop": float(adrop[j]),
                     "n_categories": len(codes), "n_empty": int((cnt == 0).sum()),
                     "n_sparse": int(sum(not (ITEM_MIN_CATEGORY_COUNT.passes(c)
                                              and ITEM_MIN_CATEGORY_SHARE.passes(s))
                                         for c, s in zip(cnt, shr))) if n else 0,
                     "flags": "; ".join(flags)})
    return rows, dist


def item_analysis(df: pd.DataFrame, items: Sequence[str], *,
                  categories: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                  group: str | None = None, reverse: Sequence[str] = (),
                  score_range: tuple[float, float] | None = None) -> ItemAnalysis:
    """Classical item analysis of one scale's items, overall and per group (e.g. language form).

    Parameters
    ----------
    df : DataFrame
        Respondents by items (numeric codes; missing values are NaN).
    items : sequence of str
        The scale's items (the item-rest correlation uses the other items of this list).
    categories : sequence of codes or mapping item -> codes, optional
        The response categories in order (e.g. ``[1, 2, 3, 4]``), so that empty categories are
        counted and floor/ceiling refer to the scale's extremes. Default: the sorted codes
        observed in any of ``items`` (an unused extreme category is then invisible).
    group : str, optional
        Column defining groups (e.g. form language); each group is analysed separately in
        addition to the whole sample.
    reverse : sequence of str
        Reverse-keyed items; recoded ``min + max - x`` (over ``score_range`` or the category
        range) for the item-rest correlation only. Distributions describe the answers as given.
    score_range : (min, max), optional

    Returns
    -------
    ItemAnalysis

    Notes
    -----
    Rules (`ITEM_RULES`): a category with fewer than 10 answers (Linacre 2002) or under 5% of
    answers is sparse; more than 15% in the lowest or highest category is a floor or ceiling
    effect (Terwee et al. 2007, there for scale scores); an item-rest correlation under .30 is
    low discrimination (Nunnally & Bernstein 1994). The item-rest correlation is
    ``(sum_j C_ij - C_ii) / sqrt(C_ii sum C_{-i,-i})`` from pairwise covariances (psych ``r.drop``).

    References
    ----------
    Linacre, J. M. (2002). Optimizing rating scale category effectiveness. Journal of Applied
    Measurement, 3(1), 85-106.

    Terwee, C. B., et al. (2007). Quality criteria were proposed for measurement properties of
    health status questionnaires. Journal of Clinical Epidemiology, 60(1), 34-42.
    https://doi.org/10.1016/j.jclinepi.2006.03.012

    Nunnally, J. C., & Bernstein, I. H. (1994). Psychometric theory (3rd ed.). McGraw-Hill.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df= must be a pandas DataFrame; got {type(df).__name__}.")
    items = list(items)
    if not items:
        raise ValueError("items= must list at least one item column.")
    missing = [c for c in items if c not in df.columns]
    if missing:
        raise KeyError(f"df= has no column(s) {missing}; available: {list(df.columns)}.")
    bad = [c for c in items if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise TypeError(f"item column(s) {bad} are not numeric; expected response codes.")
    if group is not None and group not in df.columns:
        raise KeyError(f"group= column {group!r} is not in df.")
    unknown = [r for r in reverse if r not in items]
    if unknown:
        raise ValueError(f"reverse= item(s) {unknown} are not in items=.")
    x = df[items].astype(float)
    if categories is None:
        codes = sorted(pd.unique(x.to_numpy().ravel()[~np.isnan(x.to_numpy().ravel())]).tolist())
        cats = {it: codes for it in items}
    elif isinstance(categories, Mapping):
        absent = [it for it in items if it not in categories]
        if absent:
            raise KeyError(f"categories= has no entry for item(s) {absent}.")
        cats = {it: sorted(float(c) for c in categories[it]) for it in items}
    else:
        cats = {it: sorted(float(c) for c in categories) for it in items}
    for it in items:
        extra = set(x[it].dropna().unique()) - set(cats[it])
        if extra:
            row = x.index[x[it].isin(extra)][0]
            raise ValueError(f"column {it!r}, row {row!r}: value {sorted(extra)[0]} is not one of "
                             f"the categories {cats[it]}.")
    keyed = x.copy()
    for it in reverse:
        lo, hi = score_range if score_range is not None else (min(cats[it]), max(cats[it]))
        keyed[it] = lo + hi - keyed[it]
    rows, dist = _one_group(x, keyed, cats, ALL_GROUPS)
    if group is not None:
        g = df[group]
        for level in pd.unique(g.dropna()):
            m = (g == level).to_numpy()
            r, d = _one_group(x[m], keyed[m], cats, str(level))
            rows += r
            dist += d
    return ItemAnalysis(items=pd.DataFrame(rows), distribution=pd.DataFrame(dist),
                        meta=Meta(options={"items": items, "group": group,
                                           "reverse": list(reverse),
                                           "categories": {k: v for k, v in cats.items()}},
                                  data_hash=hash_frame(df[items + ([group] if group else [])])))
