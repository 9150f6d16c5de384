"""The machinery every ladder shares: which constraints a step adds, fitting a step, and the
comparison of each step with its base (difference test, Δ-fit, verdict, item tests), assembled into
the fields of an `instrument.invariance.ladder.InvarianceResult`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.invariance.dif import STEP_KIND, item_of, release_tests
from instrument.invariance.lrt import group_chisq, lrt_table
from instrument.invariance.ordinal import ORDINAL_LADDER_OPTIONS, ORDINAL_STEP_NOTES
from instrument.invariance.verdicts import rules_for, verdict, verdict_dmacs
from instrument.results import Meta

# Cumulative equality constraints of each rung (lavaan group.equal names).
STEP_EQUAL: dict[str, tuple[str, ...]] = {
    "configural": (),
    "thresholds": ("thresholds",),      # ordinal ladders (ordered=), Wu & Estabrook (2016)
    "metric": ("loadings",),
    "scalar": ("intercepts",),
    "strict": ("residuals",),
    "lv.variances": ("lv.variances",),
    "lv.covariances": ("lv.covariances",),
    "means": ("means",),
}
DEFAULT_STEPS = ("configural", "metric", "scalar", "strict")
# Two fits with equal df whose χ² agree to this relative tolerance are one model written twice
# (the optimiser's stopping error: lavaan's own pair on the VerbalAggression ladder differs by
# 2e-9 relative).
EQUIVALENT_CHISQ_RTOL = 1e-6
RELEASE_COLUMNS = ["round", "step", "item", "parameter", "X2", "df", "pvalue", "dmacs"]

# Which fit-measure keys carry Δ-fit for each estimator (lavaan's names).
_INDEX_KEYS = {
    "ML": {"chisq": "chisq", "cfi": "cfi", "tli": "tli", "rmsea": "rmsea", "srmr": "srmr"},
    "MLR": {"chisq": "chisq.scaled", "cfi": "cfi.robust", "tli": "tli.robust",
            "rmsea": "rmsea.robust", "srmr": "srmr"},
    "WLSMV": {"chisq": "chisq.scaled", "cfi": "cfi.scaled", "tli": "tli.scaled",
              "rmsea": "rmsea.scaled", "srmr": "srmr"},
}


# ---------------------------------------------------------------------------------------------
# The ladder
# ---------------------------------------------------------------------------------------------

def equal_for(steps: Sequence[str], upto: str) -> tuple[str, ...]:
    eq: list[str] = []
    for s in steps[: list(steps).index(upto) + 1]:
        eq.extend(STEP_EQUAL[s])
    return tuple(eq)


def _row(step: str, fit: Any, keys: Mapping[str, str]) -> dict:
    fm = fit.fit_measures
    row = {"step": step, "group.equal": ",".join(fit.meta.options.get("group_equal", ())),
           "group.partial": ",".join(fit.meta.options.get("group_partial", ())),
           "converged": bool(fit.converged)}
    for k in ("npar", "chisq", "df", "pvalue", "chisq.scaled", "chisq.scaling.factor",
              "cfi", "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "srmr", "aic", "bic",
              "cfi.robust", "tli.robust", "rmsea.robust", "cfi.scaled", "tli.scaled",
              "rmsea.scaled"):
        if k in fm:
            row[k] = fm[k]
    for short, key in keys.items():
        row[f"_{short}"] = fm.get(key, np.nan)
    return row


def row_tests(fit: Any, step: str, call: Mapping[str, Any], partial: Sequence[str]) -> Any:
    """`instrument.invariance.dif.release_tests` of a step's item-level restrictions (None for
    steps without them or ladders fitted without the data's item SDs)."""
    kind = STEP_KIND.get(step.replace(" (partial)", ""))
    if kind is None or "sds" not in call:
        return None
    items = list(fit.ov_names)
    released = tuple(sorted({item_of(p, items) for p in partial}))

    def compute():
        return release_tests(fit, kind, sds=call["sds"], codes=call["codes"],
                             released_items=released)
    memo = call.get("memo")
    return compute() if memo is None else memo.get((fit,), ("release", kind, released), compute)


def _compare(rows: list[dict], fits: list[Any], bases: Sequence[int], *, rule_set: str,
             estimator: str, group_sizes: Sequence[int], call: Mapping[str, Any]
             ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Fill difference tests, Δ-fit and verdicts of rows[1:] against row ``bases[i]``.

    Returns the lavTestLRT table of the fits along the accepted path (each row against its base)
    and, for the ``lrt_dmacs`` rule set, each step's per-item release tests.
    """
    ntotal, ngroups = int(sum(group_sizes)), len(group_sizes)
    names = [r["step"] for r in rows]
    sequential = list(bases[1:]) == list(range(len(rows) - 1))
    memo = call.get("memo")
    lrt = lrt_table(fits, names, memo=memo) if sequential else None
    in_order = sequential and list(lrt["model"]) == names
    item_tests: dict[str, pd.DataFrame] = {}
    for i in range(1, len(rows)):
        b = bases[i]
        last = (lrt.iloc[i] if in_order
                else lrt_table([fits[b], fits[i]], [names[b], names[i]], memo=memo).iloc[-1])
        r = rows[i]
        r.update({"compared.with": names[b], "chisq.diff": last["Chisq diff"],
                  "df.diff": last["Df diff"], "pvalue.diff": last["Pr(>Chisq)"],
                  "rmsea.diff": last["RMSEA"]})
        delta = {}
        for short in ("cfi", "tli", "rmsea", "srmr"):
            delta[f"{short}.delta"] = r[f"_{short}"] - rows[b][f"_{short}"]
            r[f"{short}.delta"] = delta[f"{short}.delta"]
        delta["pvalue"] = r["pvalue.diff"]
        base = r["step"].replace(" (partial)", "")
        if float(r["df.diff"]) == 0:
            ok, text = _untestable(r, rows[b], estimator=estimator)
            if rule_set == "lrt_dmacs":
                r["dmacs.max"], r["dmacs.item"] = math.nan, ""
        elif rule_set == "lrt_dmacs":
            partial = fits[i].meta.options.get("group_partial", ())
            t = row_tests(fits[i], base, call, partial)
            dm, item = math.nan, ""
            if t is not None:
                item_tests[r["step"]] = t.table
                if len(t.table):
                    k = int(np.nanargmax(t.table["dmacs"].to_numpy(float)))
                    dm, item = float(t.table["dmacs"].iat[k]), str(t.table["item"].iat[k])
                else:
                    dm = 0.0
            r["dmacs.max"], r["dmacs.item"] = dm, item
            ok, text = verdict_dmacs(float(r["pvalue.diff"]), float(r["chisq.diff"]),
                                     float(r["df.diff"]), dm, item, delta, estimator=estimator)
        else:
            ok, text = verdict(delta, rules_for(base, rule_set, ntotal=ntotal,
                                                group_sizes=group_sizes),
                               estimator=estimator, ngroups=ngroups)
        if estimator in ("WLSMV", "ULSMV") and float(r["df.diff"]) != 0:
            text += (" " + ORDINAL_STEP_NOTES[base]) if base in ORDINAL_STEP_NOTES else ""
        if rows[b].get("supported", True) is False:
            failed = rows[b]["step"] if rows[b].get("holds") is False else rows[b].get(
                "_failed", rows[b]["step"])
            r["_failed"] = failed
            text += (f" Rests on {failed!r}, which does not hold: this step is not evidence "
                     "of comparability.")
        # supported: this step holds and so does every step it rests on
        r["holds"], r["verdict"] = ok, text
        r["supported"] = bool(ok and rows[b].get("supported", True))
    if lrt is None:
        path = [i for i in range(len(rows)) if i == 0 or rows[i].get("_accepted", True)]
        lrt = lrt_table([fits[i] for i in path], [names[i] for i in path], memo=memo)
    return lrt, item_tests


def _untestable(row: Mapping[str, Any], base: Mapping[str, Any], *, estimator: str
                ) -> tuple[bool, str]:
    """The verdict of a step with as many df as its base (Δdf = 0), which no test can judge.

    With equal χ² (to `EQUIVALENT_CHISQ_RTOL`) the two models are equivalent: the step's
    constraints are offset by the parameters it frees, so it holds exactly when its base does.
    The usual case is the thresholds rung of a Wu & Estabrook (2016) ordinal ladder when every
    item has three categories: each item's two equal thresholds (G - 1 constraints each) are
    offset by its intercept and residual variance, freed in groups 2..G, so the model is
    equivalent to the configural one and threshold invariance is tested jointly with the
    loadings at the next rung. Unequal χ² on equal df means the models are not nested.
    """
    diff = float(row["chisq"]) - float(base["chisq"])
    same = abs(diff) <= EQUIVALENT_CHISQ_RTOL * max(1.0, abs(float(base["chisq"])))
    if not same:
        return False, (f"not testable: the same df as {base['step']!r} ({int(row['df'])}) but a "
                       f"different χ² (Δχ² = {diff:.3g}): the two models are not nested, so no "
                       "difference test compares them.")
    text = (f"holds as an equivalent model: the same df ({int(row['df'])}) and χ² as "
            f"{base['step']!r}, so its constraints add no testable restriction (Δdf = 0).")
    if estimator in ("WLSMV", "ULSMV") and row["step"].startswith("thresholds"):
        text += (" Under Wu & Estabrook (2016) identification an item with three categories has "
                 "two thresholds; holding them equal is offset by its latent-response intercept "
                 "and residual variance, which become free in groups 2..G. With every item on "
                 "three categories threshold invariance cannot be tested on its own; the next "
                 "step tests it jointly with the loadings (Wu & Estabrook, 2016).")
    return True, text


def assemble(names: list[str], fits: list[Any], *, rule_set: str, estimator: str,
              labels: tuple[str, ...], sizes: list[int], meta: Meta, call: Mapping[str, Any],
              releases: pd.DataFrame | None = None, bases: Sequence[int] | None = None,
              accepted: Sequence[bool] | None = None,
              search: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields of an InvarianceResult for fits ``names``/``fits`` (see `_compare`)."""
    keys = _INDEX_KEYS.get(estimator, _INDEX_KEYS["ML"])
    rows = [_row(n, f, keys) for n, f in zip(names, fits)]
    for r, acc in zip(rows, accepted or [True] * len(rows)):
        r["_accepted"] = acc
    bases = list(bases) if bases is not None else [0, *range(len(rows) - 1)]
    lrt, item_tests = _compare(rows, fits, bases, rule_set=rule_set, estimator=estimator,
                               group_sizes=sizes, call=call)
    for r in rows:
        st = r["step"]
        if search and st in search:
            r["search"] = search[st]
    rows[0]["supported"] = True
    table = pd.DataFrame(rows)
    table = table.drop(columns=[c for c in table.columns if str(c).startswith("_")])
    if "verdict" in table:
        table.loc[0, "verdict"] = "baseline (configural) model"
    gc = [{"step": n, "group": labels[g], "chisq": c}
          for n, f in zip(names, fits) for g, c in enumerate(
              group_chisq(f) if call.get("memo") is None else
              call["memo"].get((f,), "group_chisq", lambda f=f: group_chisq(f)))]
    return dict(table=table, lrt=lrt, group_chisq=pd.DataFrame(gc), group_labels=labels,
                rule_set=rule_set, estimator=estimator, fits=dict(zip(names, fits)),
                releases=releases if releases is not None else
                pd.DataFrame(columns=RELEASE_COLUMNS),
                item_tests=item_tests, meta=meta, _call=call)


def refit(call: Mapping[str, Any], steps: Sequence[str], step: str, partial: Sequence[str]) -> Any:
    """One rung: `cfa` with the step's cumulative ``group_equal`` and the released parameters
    as ``group_partial``; ordinal ladders add `ORDINAL_LADDER_OPTIONS` (Wu & Estabrook, 2016)."""
    from instrument.sem.cfa import cfa

    ordinal = call.get("ordered") is not None and call.get("ordered") is not False
    extra = {"ordered": call["ordered"], **ORDINAL_LADDER_OPTIONS} if ordinal else {}
    return cfa(call["model"], call["data"], group=call["group"], group_equal=equal_for(steps, step),
               group_partial=tuple(partial), estimator=call["estimator"],
               group_order=call["group_order"], **extra, **call["cfa_options"])


