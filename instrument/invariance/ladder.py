"""The invariance ladder: nested multi-group CFAs judged step by step, and latent-mean comparisons.

The ladder fits configural → metric (loadings) → scalar (intercepts) → strict (residuals) and,
optionally, equal latent variances, covariances and means, each one `instrument.sem.cfa.cfa` fit
with ``group_equal`` / ``group_partial`` (lavaan's identification; ordered items: the ordinal rungs
with Wu & Estabrook's, `instrument.invariance.ordinal`). One table holds every step: fit
measures, lavaan's ``lavTestLRT`` difference test, Δ-fit and a verdict that names the rule it
applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from instrument.invariance.dif import item_sds
from instrument.invariance.lrt import FitMemo
from instrument.invariance.ordinal import ORDINAL_STEPS
from instrument.invariance.partial import partial_search
from instrument.invariance.steps import (DEFAULT_STEPS, STEP_EQUAL, assemble,
                                         refit)
from instrument.invariance.verdicts import RULE_SETS
from instrument.results import Meta, Table, from_jsonable, to_jsonable
from instrument.sem.optim import single_threaded, single_threaded_blas


@dataclass(frozen=True)
class InvarianceResult:
    """The invariance ladder and everything derived from it.

    Attributes
    ----------
    table : DataFrame
        One row per step: ``step``, ``group.equal``, ``group.partial``, ``npar``, ``chisq``,
        ``df``, ``pvalue``, scaled χ² where the estimator has one, ``cfi``, ``tli``, ``rmsea``,
        ``rmsea.ci.lower``, ``rmsea.ci.upper``, ``srmr``, ``aic``, ``bic``, the lavTestLRT columns
        against the previous step (``chisq.diff``, ``df.diff``, ``pvalue.diff``, ``rmsea.diff``),
        ``cfi.delta``, ``tli.delta``, ``rmsea.delta``, ``srmr.delta``, ``holds`` and ``verdict``;
        ``supported``: the step holds *and* so does every step it rests on (a step that holds
        after a failed one is no evidence of comparability); after `partial`, ``search``: where
        the search stopped at each step it searched (``"does not hold; search stopped: ..."``
        when the step still fails its rule).
    lrt : DataFrame
        lavaan's ``lavTestLRT`` table for the ladder.
    group_chisq : DataFrame
        Each group's χ² contribution per step (``step``, ``group``, ``chisq``).
    releases : DataFrame
        Constraints freed by `partial` (empty until then).
    fits : dict
        Step name → CFAResult (kept for latent means, score tests and reports).
    """

    table: pd.DataFrame
    lrt: pd.DataFrame
    group_chisq: pd.DataFrame
    group_labels: tuple[str, ...]
    rule_set: str
    estimator: str
    fits: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    releases: pd.DataFrame = field(default_factory=pd.DataFrame)
    item_tests: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    meta: Meta = field(default_factory=Meta)
    _call: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def summary(self) -> Table:
        cols = ["step", "chisq", "df", "cfi", "rmsea", "srmr", "chisq.diff", "df.diff",
                "pvalue.diff", "cfi.delta", "rmsea.delta", "srmr.delta", "verdict"]
        if self.estimator in ("WLSMV", "ULSMV"):   # the indices the Δ-fit rules used
            cols[1:5] = ["chisq.scaled", "df", "cfi.scaled", "rmsea.scaled"]
        cols = [c for c in cols if c in self.table.columns]
        notes = [f"Estimator {self.estimator}; groups: {', '.join(self.group_labels)}; "
                 f"rule set {self.rule_set}."]
        if len(self.releases):
            notes.append("Released for partial invariance: "
                         + ", ".join(self.releases["parameter"]) + ".")
        return Table("Measurement invariance ladder", self.table[cols], notes, digits=4)

    def to_dict(self, *, fits: bool = True) -> dict:
        """JSON-ready dict; ``fits=False`` leaves out every step's full fit (the ladder table,
        tests and releases are the result; the fits are what `from_dict` needs to rebuild
        ``fits``)."""
        d = {"table": self.table, "lrt": self.lrt, "group_chisq": self.group_chisq,
             "group_labels": list(self.group_labels), "rule_set": self.rule_set,
             "estimator": self.estimator, "releases": self.releases,
             "item_tests": dict(self.item_tests), "meta": self.meta.to_dict()}
        if fits:
            d["fits"] = {k: v.to_dict() for k, v in self.fits.items()}
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InvarianceResult":
        from instrument.sem.result import CFAResult

        fits = {k: CFAResult.from_dict(v) for k, v in d.get("fits", {}).items()}
        d = from_jsonable({k: v for k, v in d.items() if k != "fits"})
        return cls(table=d["table"], lrt=d["lrt"], group_chisq=d["group_chisq"],
                   group_labels=tuple(d["group_labels"]), rule_set=d["rule_set"],
                   estimator=d["estimator"], fits=fits, releases=d["releases"],
                   item_tests=d.get("item_tests") or {}, meta=Meta.from_dict(d["meta"]))

    # -- partial invariance ----------------------------------------------------------------
    def partial(self, step: str | None = None, *, max_release: int | None = None,
                rule_set: str | None = None) -> "InvarianceResult":
        """Locate non-invariant items by score tests and release them, step by step.

        For ``step`` (every constrained step in ladder order when None), while the step is
        rejected under the ``lrt_dmacs`` rule (scaled Δχ² against the accepted previous step
        significant at `rules.LRT_ALPHA` *and* some item's restriction at least
        `rules.DMACS_SMALL`): test releasing each item's restrictions of the step
        (`instrument.invariance.dif.release_tests`: thresholds, loading, intercept or residual
        variance in groups 2..G, equated or fixed alike), release the item with the largest
        score statistic among those whose Bonferroni-adjusted test is below
        `rules.SCORE_TEST_ALPHA` and whose effect reaches `rules.DMACS_SMALL`, refit, repeat.

        Stopping rule: the step is no longer rejected; or no item qualifies; or releasing the
        next item would leave a factor fewer than `rules.PARTIAL_MIN_INVARIANT` invariant
        indicators; or ``max_release`` items were released at this step. When the search stops
        while the step is still rejected, its ``search`` column says so and later steps are
        marked as resting on it. Later steps carry the releases forward.

        Returns a new InvarianceResult. A step with releases has two rows: the fully
        constrained model (``"scalar"``) and the partial one (``"scalar (partial)"``), both
        compared with the accepted previous step (``compared.with``); ``releases`` lists each
        release (round, step, item, parameter, X2, df, pvalue, dmacs).
        """
        with single_threaded_blas():
            return InvarianceResult(**partial_search(self, step, max_release=max_release,
                                                     rule_set=rule_set or self.rule_set))

    def latent_means(self, step: str | None = None) -> pd.DataFrame:
        """Latent mean and variance comparisons from the (partial) scalar model.

        Returns one row per factor x group (groups 2..G against group 1): ``mean`` (group g's
        latent mean; group 1 is fixed at 0), ``se``, ``z``, ``pvalue``, ``ci.lower``,
        ``ci.upper``, ``variance`` and ``variance.ref`` (latent variances), and ``d``: the
        standardized difference ``mean / sqrt(pooled variance)`` with the pooled variance
        ``Σ (n_g − 1) ψ_g / Σ (n_g − 1)`` over the two groups (Cohen's d on the latent scale;
        Hancock, 2001).
        """
        return latent_mean_differences(self._scalar_fit(step))

    def _scalar_fit(self, step: str | None) -> Any:
        if step is not None:
            return self.fits[step]
        for name in ("scalar (partial)", "scalar", "strict (partial)", "strict"):
            if name in self.fits:
                return self.fits[name]
        raise ValueError("latent means need a (partial) scalar model in the ladder; "
                         "add 'scalar' to steps=.")



@single_threaded
def invariance(model: str, data: pd.DataFrame, *, group: str,
               steps: Sequence[str] = DEFAULT_STEPS, estimator: str = "ML",
               rule_set: str = "lrt_dmacs", group_order: Sequence[Any] | None = None,
               group_partial: Sequence[str] = (), min_group_n: int | None = None,
               ordered: Sequence[str] | bool | None = None,
               **cfa_options: Any) -> InvarianceResult:
    """Fit the measurement-invariance ladder and judge each step.

    Parameters
    ----------
    model : str
        lavaan model syntax (e.g. from ``bank.model_syntax()``).
    data : DataFrame
        Item responses with the ``group`` column.
    group : str
        The grouping column (e.g. ``"language"``).
    steps : sequence of str
        Rungs in order, from ``"configural", "metric", "scalar", "strict", "lv.variances",
        "lv.covariances", "means"``; constraints accumulate (lavaan ``group.equal``).
    estimator : {"ML", "MLR"}
    rule_set : {"lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt"}
        How each step is judged. ``"lrt_dmacs"`` (default): rejected when the (scaled) χ²
        difference test is significant and an item's restriction reaches dMACS .20
        (`verdict_dmacs`); the others apply Δ-fit cut-offs (`rules_for`), heuristics derived
        for ML with continuous data.
    group_order : sequence, optional
        Group order; by default groups are ordered by first appearance (lavaan's rule).
    group_partial : sequence of str
        Constraints to leave free in every step (lavaan ``group.partial``, e.g. ``"x3~1"``).
    ordered : sequence of str or True, optional
        Ordinal items: the ladder is fitted by WLSMV with Wu & Estabrook (2016) identification
        (`instrument.invariance.ordinal`; theta parameterization, std.lv) over the rungs
        configural -> thresholds -> metric -> scalar -> strict (the default `steps` become
        these), difference tests by lavaan's ``satorra.2000`` scaled-shifted method.
    **cfa_options
        Passed to `instrument.sem.cfa.cfa` (e.g. ``std_lv``, ``missing``).

    Returns
    -------
    InvarianceResult

    Notes
    -----
    Matches lavaan 0.6-14: ``cfa(model, data, group=, group.equal=)`` per rung and
    ``lavTestLRT()`` between adjacent rungs (plain χ² difference for ML, Satorra–Bentler 2001
    for MLR). Latent means are fixed at 0 until intercepts are equal, then free in groups 2..G.
    The fits, tests and verdicts run with single-threaded BLAS, as `cfa` does (small matrices;
    threads only oversubscribe a shared machine).
    """
    bad = [s for s in steps if s not in STEP_EQUAL]
    if bad:
        raise ValueError(f"steps= must be drawn from {', '.join(map(repr, STEP_EQUAL))}; got {bad}.")
    if not steps or steps[0] != "configural":
        raise ValueError("steps= must start with 'configural' (the baseline of every comparison).")
    if rule_set not in RULE_SETS:
        raise ValueError(f"rule_set= must be one of {', '.join(map(repr, RULE_SETS))}; got {rule_set!r}.")
    ordinal = ordered is not None and ordered is not False
    if ordinal:
        estimator, steps = _ordinal_ladder(estimator, steps, cfa_options)
    elif estimator.upper() not in ("ML", "MLR"):
        raise ValueError(f"estimator= must be one of 'ML', 'MLR' for the invariance ladder; "
                         f"got {estimator!r}.")
    estimator = estimator.upper()
    _check_groups(data, group, model, min_group_n)
    call = {"model": model, "data": data, "group": group, "steps": tuple(steps),
            "estimator": estimator, "group_order": group_order, "cfa_options": cfa_options,
            "group_partial": tuple(group_partial), "ordered": ordered if ordinal else None,
            "memo": FitMemo()}
    names = list(steps)
    fits = [refit(call, steps, step, group_partial) for step in steps]
    labels = tuple(str(x) for x in fits[0].meta.options.get("group_labels", ()))
    call["group_order"] = labels
    call.update(_item_scale(data, fits[0], group, labels))
    sizes = [int(s["n"]) for s in fits[0].sample]
    options = {"group": group, "steps": list(steps), "estimator": estimator,
               "rule_set": rule_set, "group_partial": list(group_partial),
               "group_order": list(labels)}
    if ordinal:
        options.update({"ordered": True, "identification": "Wu.Estabrook.2016 (std.lv, theta)",
                        "lrt_method": "satorra.2000"})
    return InvarianceResult(**assemble(names, fits, rule_set=rule_set, estimator=estimator,
                                       labels=labels, sizes=sizes, meta=Meta(options=options),
                                       call=call))


def _item_scale(data: pd.DataFrame, fit: Any, group: str, labels: Sequence[str]) -> dict:
    """Per-group item SDs (the dMACS denominators) and observed codes, from every answer."""
    sds, codes = item_sds(data, list(fit.ov_names), group, labels)
    return {"sds": sds, "codes": codes}


def _ordinal_ladder(estimator: str, steps: Sequence[str], cfa_options: Mapping[str, Any]
                    ) -> tuple[str, tuple[str, ...]]:
    """The estimator and rungs of an ordinal ladder (WLSMV, Wu & Estabrook identification; the
    default steps become `ORDINAL_STEPS`), with errors for options that do not apply."""
    if estimator.upper() not in ("ML", "WLSMV"):
        raise ValueError(f"estimator= must be 'WLSMV' for an ordinal ladder (ordered= given); "
                         f"got {estimator!r}.")
    steps = ORDINAL_STEPS if tuple(steps) == DEFAULT_STEPS else tuple(steps)
    bad = [s for s in steps if s not in ORDINAL_STEPS]
    if bad:
        raise ValueError(f"steps= must be drawn from {', '.join(map(repr, ORDINAL_STEPS))} "
                         f"for an ordinal ladder; got {bad}.")
    unknown = set(cfa_options) - {"missing"}
    if unknown:
        raise ValueError(f"option(s) {sorted(unknown)} are not available for the ordinal ladder "
                         "(identification is fixed by Wu & Estabrook's rules)")
    return "WLSMV", steps


def _check_groups(data: pd.DataFrame, group: str, model: str, min_group_n: int | None) -> None:
    """Clear errors for a missing group column or a group too small for the ladder (an item
    constant within a group is refused by the data step, `instrument.sem.data.select`)."""
    from instrument.sem.syntax import parse_syntax

    if group not in data.columns:
        raise ValueError(f"group={group!r} is not a column of the data.")
    items = sorted({r.rhs for r in parse_syntax(model) if r.op == "=~"} & set(data.columns))
    counts = data[group].value_counts(dropna=True)
    floor = min_group_n if min_group_n is not None else len(items) + 1
    small = counts[counts < floor]
    if len(small):
        raise ValueError(f"group(s) {dict(small)} of column {group!r} have fewer than {floor} "
                         f"respondents (at least the number of items + 1 is needed).")




def latent_mean_differences(fit: Any) -> pd.DataFrame:
    """Latent means of groups 2..G against group 1 with SEs and a standardized difference.

    See `InvarianceResult.latent_means`.
    """
    est = fit.estimates
    lvs = list(dict.fromkeys(est.loc[est["op"] == "=~", "lhs"]))
    sizes = [int(s["n"]) for s in fit.sample]
    labels = fit.meta.options.get("group_labels", list(range(1, len(sizes) + 1)))
    rows = []
    for f in lvs:
        var = {int(g): float(v) for g, v in
               est[(est["op"] == "~~") & (est["lhs"] == f) & (est["rhs"] == f)][["group", "est"]]
               .itertuples(index=False)}
        for g in range(2, len(sizes) + 1):
            m = est[(est["op"] == "~1") & (est["lhs"] == f) & (est["group"] == g)].iloc[0]
            pooled = ((sizes[0] - 1) * var[1] + (sizes[g - 1] - 1) * var[g]) / (sizes[0] + sizes[g - 1] - 2)
            rows.append({"factor": f, "group": labels[g - 1], "reference": labels[0],
                         "mean": m["est"], "se": m["se"], "z": m["z"], "pvalue": m["pvalue"],
                         "ci.lower": m["ci.lower"], "ci.upper": m["ci.upper"],
                         "variance": var[g], "variance.ref": var[1],
                         "d": m["est"] / math.sqrt(pooled)})
    return pd.DataFrame(rows)
