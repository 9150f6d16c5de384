"""Ordinal measurement invariance (WLSMV): Wu & Estabrook (2016) identification.

`wu_estabrook_syntax` writes, for one rung of the ladder, the lavaan syntax that semTools'
``measEq.syntax(ID.fac = "std.lv", ID.cat = "Wu.Estabrook.2016", parameterization = "theta")``
writes; `fit_ordinal_step` fits it by WLSMV. `instrument.invariance.ladder.invariance` calls these when
``ordered=`` is given (rungs configural -> thresholds -> metric (loadings) -> scalar
(intercepts) -> strict (residuals)).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.sem.syntax import parse_syntax

__all__ = ["wu_estabrook_syntax", "fit_ordinal_step", "ORDINAL_STEPS", "count_thresholds",
           "ORDINAL_STEP_NOTES"]

ORDINAL_STEPS = ("configural", "thresholds", "metric", "scalar", "strict")

# What each rung constrains under Wu & Estabrook (2016) identification (appended to verdicts).
ORDINAL_STEP_NOTES = {
    "thresholds": ("Under Wu & Estabrook (2016) identification this step holds every item's "
                   "thresholds equal across groups while the latent-response intercepts and "
                   "residual variances become free in groups 2..G; a failure means some items' "
                   "response categories are used differently across groups (threshold "
                   "non-invariance), and the score tests of partial() name the thresholds."),
    "metric": ("This step adds equal loadings (latent variances become free in groups 2..G); a "
               "failure means items relate differently to the factor across groups."),
    "scalar": ("This step fixes the latent-response intercepts at 0 in every group (latent means "
               "become free in groups 2..G); a failure means item-level shifts that the equal "
               "thresholds do not absorb, so latent means are not comparable."),
    "strict": ("This step fixes the latent-response residual variances at 1 in every group; a "
               "failure means unequal item reliability across groups."),
}


def _c(vals: Sequence[str]) -> str:
    return "c(" + ", ".join(vals) + ")"


def _labels(base: str, G: int, equal: bool) -> list[str]:
    return [base] * G if equal else [f"{base}.g{g}" for g in range(1, G + 1)]


def _fixed_free(G: int, fixed_value: str, free_later: bool) -> list[str]:
    return [fixed_value] + (["NA"] if free_later else [fixed_value]) * (G - 1)


def wu_estabrook_syntax(model: str, nthresholds: Mapping[str, int], *, ngroups: int,
                        group_equal: Sequence[str] = (), group_partial: Sequence[str] = ()) -> str:
    """lavaan syntax of one invariance rung for ordered indicators (Wu & Estabrook, 2016).

    Parameters
    ----------
    model : str
        The configural model (``f =~ x1 + x2 + ...`` lines only).
    nthresholds : mapping
        Number of thresholds per indicator (categories - 1; at least 2).
    ngroups : int
    group_equal : sequence of str
        Among "thresholds", "loadings", "intercepts", "residuals".
    group_partial : sequence of str
        Parameters exempt from `group_equal`: ``"x1|t2"``, ``"f=~x1"``, ``"x1~1"``, ``"x1~~x1"``.

    Returns
    -------
    str

    Notes
    -----
    Factors identified by ``std.lv`` (variances 1 and means 0 in group 1). Latent responses:
    intercepts 0 and residual variances 1 (theta parameterization) in group 1. In groups
    2..G the intercept and residual variance of an item are free once its thresholds are held
    equal (and fixed again when intercepts / residuals are held equal); for a binary item the
    intercept is freed by the equal threshold and the residual variance only once intercepts are
    equal as well. Latent variances are free once loadings are equal, latent means once
    intercepts are equal. This is semTools 0.5-6 ``measEq.syntax(ID.fac = "std.lv",
    ID.cat = "Wu.Estabrook.2016", parameterization = "theta")``.

    References
    ----------
    Wu, H., & Estabrook, R. (2016). Identification of confirmatory factor analysis models of
    different levels of invariance for ordered categorical outcomes. Psychometrika, 81(4),
    1014-1045. https://doi.org/10.1007/s11336-016-9506-0
    """
    G = int(ngroups)
    eq = set(group_equal)
    bad = eq - {"thresholds", "loadings", "intercepts", "residuals"}
    if bad:
        raise ValueError(f"group_equal= entries must be among 'thresholds', 'loadings', "
                         f"'intercepts', 'residuals' for ordinal invariance; got {sorted(bad)}")
    partial = {p.replace(" ", "") for p in group_partial}
    rows = [r for r in parse_syntax(model)]
    if any(r.op != "=~" for r in rows):
        raise ValueError("the configural model for ordinal invariance may only hold '=~' lines "
                         "(the rest is written by the identification rules)")
    factors: list[str] = []
    items: list[tuple[str, str]] = []
    for r in rows:
        if r.lhs not in factors:
            factors.append(r.lhs)
        items.append((r.lhs, r.rhs))
    ovs = list(dict.fromkeys(i for _, i in items))
    few = [v for v in ovs if nthresholds[v] < 1]
    if few:
        raise ValueError(f"item(s) {few} have fewer than two observed categories")
    out = ["## LOADINGS:"]
    for k, (f, v) in enumerate(items, start=1):
        fi = factors.index(f) + 1
        equal = "loadings" in eq and f"{f}=~{v}" not in partial
        out.append(f"{f} =~ {_c(['NA'] * G)}*{v} + "
                   f"{_c(_labels(f'lambda.{k}_{fi}', G, equal))}*{v}")
    out.append("## THRESHOLDS:")
    n_equal = {}
    for v in ovs:
        n_eq = 0
        for t in range(1, nthresholds[v] + 1):
            equal = "thresholds" in eq and f"{v}|t{t}" not in partial
            n_eq += equal
            out.append(f"{v} | {_c(['NA'] * G)}*t{t} + "
                       f"{_c(_labels(f'{v}.thr{t}', G, equal))}*t{t}")
        n_equal[v] = n_eq
    # which latent-response parameters the equal thresholds identify in groups 2..G: with two
    # or more equal thresholds both the intercept and the residual variance; a binary item's
    # single threshold identifies the intercept, and its residual variance once the intercept
    # is held equal too (Wu & Estabrook, 2016; semTools' rules)
    nu_equal = {v: "intercepts" in eq and f"{v}~1" not in partial for v in ovs}
    out.append("## INTERCEPTS:")
    for k, v in enumerate(ovs, start=1):
        equal = nu_equal[v]
        ident = n_equal[v] >= 2 or (nthresholds[v] == 1 and n_equal[v] == 1)
        free = ident and not equal
        out.append(f"{v} ~ {_c(_fixed_free(G, '0', free))}*1 + "
                   f"{_c(_labels(f'nu.{k}', G, equal))}*1")
    out.append("## RESIDUAL VARIANCES:")
    for k, v in enumerate(ovs, start=1):
        equal = "residuals" in eq and f"{v}~~{v}" not in partial
        ident = n_equal[v] >= 2 or (nthresholds[v] == 1 and n_equal[v] == 1 and nu_equal[v])
        free = ident and not equal
        out.append(f"{v} ~~ {_c(_fixed_free(G, '1', free))}*{v} + "
                   f"{_c(_labels(f'theta.{k}_{k}', G, equal))}*{v}")
    out.append("## LATENT MEANS, VARIANCES, COVARIANCES:")
    for j, f in enumerate(factors, start=1):
        out.append(f"{f} ~ {_c(_fixed_free(G, '0', 'intercepts' in eq))}*1 + "
                   f"{_c(_labels(f'alpha.{j}', G, False))}*1")
    for j, f in enumerate(factors, start=1):
        out.append(f"{f} ~~ {_c(_fixed_free(G, '1', 'loadings' in eq))}*{f} + "
                   f"{_c(_labels(f'psi.{j}_{j}', G, False))}*{f}")
    for j, f in enumerate(factors, start=1):
        for i in range(j + 1, len(factors) + 1):
            out.append(f"{f} ~~ {_c(['NA'] * G)}*{factors[i - 1]} + "
                       f"{_c(_labels(f'psi.{i}_{j}', G, False))}*{factors[i - 1]}")
    return "\n".join(out) + "\n"


def count_thresholds(data: pd.DataFrame, items: Sequence[str]) -> dict[str, int]:
    """Number of thresholds (observed categories - 1) per item."""
    return {v: int(data[v].dropna().nunique()) - 1 for v in items}


def fit_ordinal_step(model: str, data: pd.DataFrame, *, group: str,
                     group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
                     ordered: Sequence[str] | bool = True, group_order: Sequence[Any] | None = None,
                     missing: str | None = None):
    """Fit one rung of the ordinal ladder by WLSMV (theta parameterization).

    ``group_equal`` uses lavaan's names ("thresholds", "loadings", "intercepts", "residuals").
    The generated syntax is kept in ``meta.options["model"]`` of the result.
    """
    from instrument.sem.cfa import cfa

    items = [r.rhs for r in parse_syntax(model) if r.op == "=~"]
    items = list(dict.fromkeys(items))
    nth = count_thresholds(data, items)
    syn = wu_estabrook_syntax(model, nth, ngroups=int(data[group].dropna().nunique()),
                              group_equal=group_equal, group_partial=group_partial)
    fit = cfa(syn, data, group=group, group_order=group_order,
              ordered=items if ordered is True else ordered, parameterization="theta",
              missing=missing)
    opts = dict(fit.meta.options)
    opts.update(group_equal=list(group_equal), group_partial=list(group_partial),
                configural_model=model, identification="Wu.Estabrook.2016 (std.lv, theta)")
    from dataclasses import replace
    return replace(fit, meta=replace(fit.meta, options=opts))


def collapse_empty_categories(data: pd.DataFrame, items: Sequence[str], group: str
                              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge categories that some group never uses into their neighbour, in every group.

    WLSMV needs every category of an item observed in every group (lavaan stops otherwise). The
    usual remedy is to collapse the empty category with an adjacent one for all groups, so the
    item keeps one threshold structure across groups (e.g. Liu et al., 2017, Psychological
    Methods 22(3), 486-506). An empty lowest (highest) category is merged upwards (downwards); an
    empty middle category into its less frequent neighbour. Repeats until no category is empty.

    Returns
    -------
    data : DataFrame
        A copy with the recoded items.
    changes : DataFrame
        One row per merge: ``item``, ``from``, ``to``, ``empty_in`` (the groups that had no
        response in ``from``). Empty when nothing was collapsed.
    """
    out = data.copy()
    changes = []
    gmask = out[group].notna().to_numpy()
    for item in items:
        while True:
            m = gmask & out[item].notna().to_numpy()
            gi, groups = pd.factorize(out.loc[m, group], sort=True)
            ci, cats = pd.factorize(out.loc[m, item], sort=True)
            tab = np.zeros((len(groups), len(cats)), int)
            np.add.at(tab, (gi, ci), 1)
            empty = (tab == 0).any(axis=0)
            if not empty.any() or tab.shape[1] < 3:
                break
            i = int(np.flatnonzero(empty)[0])
            c = cats[i]
            if i == 0:
                to = cats[1]
            elif i == len(cats) - 1:
                to = cats[-2]
            else:
                to = cats[i - 1] if tab[:, i - 1].sum() <= tab[:, i + 1].sum() else cats[i + 1]
            changes.append({"item": item, "from": c, "to": to,
                            "empty_in": ", ".join(map(str, groups[tab[:, i] == 0]))})
            out.loc[out[item] == c, item] = to
    return out, pd.DataFrame(changes, columns=["item", "from", "to", "empty_in"])
