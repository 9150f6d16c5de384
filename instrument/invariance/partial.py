"""Partial invariance: the specification search that releases, step by step, the restrictions
of the items that a step's score tests and effect sizes single out (`InvarianceResult.partial`).
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Mapping, Sequence

import pandas as pd

from instrument import rules
from instrument.invariance.dif import item_of
from instrument.invariance.lrt import lrt_table
from instrument.invariance.steps import RELEASE_COLUMNS, assemble, refit, row_tests

__all__ = ["partial_search"]


def _factor_items(fit: Any) -> dict[str, list[str]]:
    est = fit.estimates
    loads = est[(est["op"] == "=~") & (est["group"] == 1)]
    return {f: list(g["rhs"]) for f, g in loads.groupby("lhs", sort=False)}


def partial_search(res: Any, step: str | None, *, max_release: int | None,
                   rule_set: str) -> Any:
    """The specification search of `InvarianceResult.partial` (stopping rule in `rules`)."""

    call = res._call
    if not call:
        raise ValueError("partial() needs the ladder's data: call it on the result of "
                         "invariance(), not on one read back from JSON.")
    if rule_set != "lrt_dmacs":
        raise ValueError("partial() locates items with the 'lrt_dmacs' rule set (score tests "
                         f"and dMACS); this ladder was judged by {rule_set!r}. Refit it with "
                         "rule_set='lrt_dmacs'.")
    steps = list(call["steps"])
    names = [n.replace(" (partial)", "") for n in res.table["step"]]
    names = list(dict.fromkeys(names))
    if step is not None and (step not in names or step == "configural"):
        raise ValueError(f"step= must be a constrained step of this ladder {names[1:]}; got {step!r}.")
    todo = set([step] if step is not None else names[1:])
    cur = {n.replace(" (partial)", ""): res.fits[n] for n in res.table["step"]}
    partial = list(call["group_partial"])
    sizes = [int(s["n"]) for s in cur[names[0]].sample]
    releases = [] if res.releases is None else res.releases.to_dict("records")
    out_names, out_fits, bases, accepted, search = [names[0]], [cur[names[0]]], [0], [True], {}
    prev = 0                                     # index of the accepted previous step
    prev_holds = True
    n_constraints: dict[str, int] = {}
    items = list(cur[names[0]].ov_names)
    factors = _factor_items(cur[names[0]])
    factor_of = {v: f for f, vs in factors.items() for v in vs}
    changed = False
    for st in names[1:]:
        fit = cur[st] if not changed else refit(call, steps, st, partial)
        full = fit
        here: list[dict] = []
        status = ""
        if st in todo:
            limit = max_release
            while True:
                d = lrt_table([out_fits[prev], fit], ["prev", st],
                              memo=call.get("memo")).iloc[-1]
                t = row_tests(fit, st, call, partial)
                if t is None:
                    break
                tab = t.table
                n_constraints.setdefault(st, len(tab))
                dm = float(tab["dmacs"].max()) if len(tab) else 0.0
                if rules.LRT_ALPHA.passes(float(d["Pr(>Chisq)"])) or rules.DMACS_SMALL.passes(dm):
                    status = "holds" if not here else "holds after the releases"
                    break
                released_items = {item_of(p, items) for p in partial}
                ok_inv = tab["item"].map(lambda v: rules.PARTIAL_MIN_INVARIANT.passes(
                    len(set(factors[factor_of[v]]) - released_items - {v})))
                large = tab["dmacs"].map(lambda x: x == x and not rules.DMACS_SMALL.passes(x))
                elig = tab[tab["pvalue.bonferroni"].map(rules.SCORE_TEST_ALPHA.passes)
                           & large & ok_inv]
                if elig.empty:
                    blocked = tab[large & ~ok_inv]
                    status = ("does not hold; search stopped: " + (
                        "releasing " + ", ".join(blocked["item"]) + " would leave fewer than "
                        f"{rules.PARTIAL_MIN_INVARIANT.threshold:g} invariant indicators on "
                        "its factor" if len(blocked) else
                        "no item's restriction is both significant after Bonferroni "
                        f"adjustment and at least dMACS {rules.DMACS_SMALL.threshold:.2f}"))
                    break
                if limit is not None and len(here) >= limit:
                    status = f"does not hold; search stopped after max_release = {limit} releases"
                    break
                top = elig.iloc[0]
                new = [q for q in str(top["parameters"]).split(",") if q not in partial]
                partial.extend(new)
                rec = {"round": len(releases) + 1, "step": st, "item": top["item"],
                       "parameter": str(top["parameters"]), "X2": float(top["X2"]),
                       "df": int(top["df"]), "pvalue": float(top["pvalue"]),
                       "dmacs": float(top["dmacs"])}
                releases.append(rec)
                here.append(rec)
                fit = refit(call, steps, st, partial)
                changed = True
        if here:
            out_names.append(st)
            out_fits.append(full)
            bases.append(prev)
            accepted.append(False)
            out_names.append(f"{st} (partial)")
        else:
            out_names.append(st)
        out_fits.append(fit)
        bases.append(prev)
        accepted.append(True)
        if status:
            search[out_names[-1]] = status + ("" if prev_holds else
                                             f"; rests on {out_names[prev]!r}, which does not hold")
        prev = len(out_names) - 1
        prev_holds = not status.startswith("does not hold") and prev_holds
    rel = pd.DataFrame(releases, columns=RELEASE_COLUMNS)
    out = assemble(out_names, out_fits, rule_set=rule_set, estimator=res.estimator,
                    labels=res.group_labels, sizes=sizes,
                    meta=replace(res.meta, options={**res.meta.options, "group_partial": partial}),
                    call={**call, "group_partial": tuple(partial)}, releases=rel, bases=bases,
                    accepted=accepted, search=search)
    _warn_freed_share(out_fits[-1], partial, rel, n_constraints)
    return out


def _warn_freed_share(fit: Any, partial: Sequence[str], releases: pd.DataFrame,
                      n_constraints: Mapping[str, int]) -> None:
    """Warn when partial invariance frees too much (named rules, see `rules`): more than
    `rules.PARTIAL_MAX_FREED_SHARE` of a step's constraints, or so many of a factor's indicators
    that fewer than `rules.PARTIAL_MIN_INVARIANT` stay invariant."""
    for step, total in n_constraints.items():
        freed = int((releases["step"] == step).sum())
        if total and not rules.PARTIAL_MAX_FREED_SHARE.passes(freed / total):
            warnings.warn(f"partial invariance frees {freed} of the {total} constraints of the "
                          f"{step} step ({freed / total:.0%}); "
                          f"{rules.PARTIAL_MAX_FREED_SHARE.describe()}.", stacklevel=3)
    est = fit.estimates
    loads = est[(est["op"] == "=~") & (est["group"] == 1)]
    for factor, g in loads.groupby("lhs"):
        indicators = list(g["rhs"])
        freed_items = {p.split("~1")[0] for p in partial if p.endswith("~1")} & set(indicators)
        freed_items |= {p.split("=~")[1] for p in partial
                        if "=~" in p and p.split("=~")[0] == factor}
        if not rules.PARTIAL_MIN_INVARIANT.passes(len(indicators) - len(freed_items)):
            warnings.warn(f"fewer than {rules.PARTIAL_MIN_INVARIANT.threshold:g} invariant "
                          f"indicators remain for {factor!r}: latent means are not comparable "
                          f"({rules.PARTIAL_MIN_INVARIANT.source}).", stacklevel=3)
