"""Verdicts on the steps of an invariance ladder: the Δ-fit rule sets and the ``lrt_dmacs`` rule
(scaled χ² difference test and dMACS), each naming the rule it applied and its source.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from instrument import rules

__all__ = ["RULE_SETS", "rules_for", "short_citation", "verdict", "verdict_dmacs"]

RULE_SETS = ("lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt")


def _step_kind(step: str) -> str:
    """Chen's rules differ for loadings ("metric") and everything after ("scalar")."""
    return "metric" if step == "metric" else "scalar"


def rules_for(step: str, rule_set: str, *, ntotal: int, group_sizes: Sequence[int]) -> list[rules.Rule]:
    """The Δ-fit rules applied to a step under a rule set (see `rules` for their sources).

    ``chen2007`` picks Chen's large-sample cut-offs when N > 300 and the groups are of similar
    size, and the small/unequal cut-offs otherwise. ``lrt`` uses the χ² difference test alone.
    """
    kind = _step_kind(step)
    if rule_set == "chen2007":
        equal = min(group_sizes) / max(group_sizes)
        large = rules.CHEN_N_LARGE.passes(ntotal) and rules.CHEN_EQUAL_GROUPS.passes(equal)
        if large:
            srmr = rules.DELTA_SRMR_CHEN_METRIC if kind == "metric" else rules.DELTA_SRMR_CHEN_SCALAR
            return [rules.DELTA_CFI_CHEN, rules.DELTA_RMSEA_CHEN, srmr]
        srmr = (rules.DELTA_SRMR_CHEN_SMALL_METRIC if kind == "metric"
                else rules.DELTA_SRMR_CHEN_SMALL_SCALAR)
        return [rules.DELTA_CFI_CHEN_SMALL, rules.DELTA_RMSEA_CHEN_SMALL, srmr]
    if rule_set == "cheung_rensvold2002":
        return [rules.DELTA_CFI_CHEUNG_RENSVOLD]
    if rule_set == "rutkowski_svetina2014":
        if kind == "metric":
            return [rules.DELTA_CFI_RS_METRIC, rules.DELTA_RMSEA_RS_METRIC]
        return [rules.DELTA_CFI_RS_SCALAR, rules.DELTA_RMSEA_RS_SCALAR]
    if rule_set in ("lrt", "lrt_dmacs"):
        return [rules.LRT_ALPHA]
    raise ValueError(f"rule_set= must be one of {', '.join(map(repr, RULE_SETS))}; got {rule_set!r}.")


def short_citation(source: str) -> str:
    """``"Chen, F. F. (2007). Sensitivity ..."`` -> ``"Chen, F. F. (2007)"``."""
    return source.split(")")[0] + ")" if "(" in source else source


def verdict(delta: Mapping[str, float], rule_list: Sequence[rules.Rule], *, estimator: str,
            ngroups: int) -> tuple[bool, str]:
    """Apply Δ-fit rules; return (holds, text naming each rule, its value and any caveat)."""
    parts, ok = [], True
    for r in rule_list:
        value = delta.get(r.key, float("nan"))
        passed = r.passes(value)
        ok &= passed
        parts.append(f"{r.key} = {value:+.4f} {'meets' if passed else 'fails'} {r.op} {r.threshold:g}")
    caveats = []
    sources = {r.source for r in rule_list}
    if estimator in ("WLSMV", "ULSMV") and rules.LRT_ALPHA not in rule_list:
        caveats.append(f"the cut-offs were derived for ML with continuous (normal) data; here "
                       f"the items are ordinal and fitted by {estimator} (scaled-shifted "
                       "indices), outside the conditions they were derived in")
    elif estimator != "ML" and rules.LRT_ALPHA not in rule_list:
        caveats.append(f"the cut-offs were derived under ML with normal data; under {estimator} "
                       "they are applied outside the conditions they were derived in")
    if ngroups > 2 and any(s in (rules.CHEN_2007, rules.CHEUNG_RENSVOLD_2002) for s in sources):
        caveats.append(f"derived for two groups, applied here to {ngroups}")
    if ngroups < 10 and rules.RUTKOWSKI_SVETINA_2014 in sources:
        caveats.append(f"derived for 10-20 groups, applied here to {ngroups}")
    cite = "; ".join(sorted({short_citation(r.source) for r in rule_list}))
    text = f"{'holds' if ok else 'does not hold'}: " + ", ".join(parts) + f" [{cite}]"
    if caveats:
        text += ". Caution: " + "; ".join(caveats) + "."
    return ok, text


def verdict_dmacs(pvalue: float, chisq_diff: float, df_diff: float, dmacs_max: float,
                  dmacs_item: str, delta: Mapping[str, float], *, estimator: str
                  ) -> tuple[bool, str]:
    """The ``lrt_dmacs`` rule: a step is rejected when its restrictions fail the (scaled) χ²
    difference test (`rules.LRT_ALPHA`) *and* the largest effect of an item's restriction
    reaches `rules.DMACS_SMALL`; ΔCFI and ΔRMSEA are quoted as heuristics, not applied.

    ``dmacs_max`` is NaN for steps without item-level restrictions (then the test decides).
    """
    sig = not rules.LRT_ALPHA.passes(pvalue)
    big = not rules.DMACS_SMALL.passes(dmacs_max) if dmacs_max == dmacs_max else True
    ok = not (sig and big)
    test = (f"{'scaled ' if estimator != 'ML' else ''}Δχ²({_num(df_diff)}) = {chisq_diff:.1f}, "
            f"p {_p(pvalue)}")
    if dmacs_max != dmacs_max:
        size = "no item-level restriction to size"
    else:
        size = (f"largest item effect dMACS = {dmacs_max:.2f} ({dmacs_item}) "
                f"{'≥' if big else '<'} {rules.DMACS_SMALL.threshold:.2f}")
    why = ("both the test and the effect size reject the restrictions" if not ok else
           "the test does not reject the restrictions" if not sig else
           "the restrictions are rejected by the test, but every item's effect is negligible")
    heur = ", ".join(f"Δ{k.split('.')[0].upper()} = {delta[k]:+.3f}" for k in
                     ("cfi.delta", "rmsea.delta") if k in delta and delta[k] == delta[k])
    text = (f"{'holds' if ok else 'does not hold'}: {test}; {size}; {why} "
            "[Nye et al., 2019; Nye & Drasgow, 2011]."
            + (f" Heuristics, not applied: {heur} (Chen's cut-offs were derived for ML with "
               "continuous data" + (", not for WLSMV" if estimator in ("WLSMV", "ULSMV") else "")
               + ")." if heur else ""))
    return ok, text


def _num(x: float) -> str:
    return f"{int(x)}" if x == x and float(x).is_integer() else f"{x:g}"


def _p(p: float) -> str:
    return "< .001" if p < 0.001 else f"= {p:.3f}".replace("0.", ".")
