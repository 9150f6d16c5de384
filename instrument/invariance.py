"""Measurement invariance: the ladder of nested multi-group CFAs, Δ-fit verdicts, score tests,
partial invariance and latent-mean comparisons.

The ladder fits configural → metric (loadings) → scalar (intercepts) → strict (residuals) and,
optionally, equal latent variances, covariances and means, each with lavaan's identification
(`instrument.sem.cfa.cfa` with ``group_equal``). One table holds every step: fit measures, lavaan's
``lavTestLRT`` difference test, Δ-fit and a verdict that names the rule it applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument import rules
from instrument.sem.test import satorra_bentler as sb
from instrument.sem.test.score import equality_score_table
from instrument.results import Meta, Table, from_jsonable, to_jsonable

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
RELEASE_COLUMNS = ["round", "step", "item", "parameter", "X2", "df", "pvalue", "dmacs"]
RULE_SETS = ("lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt")

# Which fit-measure keys carry Δ-fit for each estimator (lavaan's names).
_INDEX_KEYS = {
    "ML": {"chisq": "chisq", "cfi": "cfi", "tli": "tli", "rmsea": "rmsea", "srmr": "srmr"},
    "MLR": {"chisq": "chisq.scaled", "cfi": "cfi.robust", "tli": "tli.robust",
            "rmsea": "rmsea.robust", "srmr": "srmr"},
    "WLSMV": {"chisq": "chisq.scaled", "cfi": "cfi.scaled", "tli": "tli.scaled",
              "rmsea": "rmsea.scaled", "srmr": "srmr"},
}


# ---------------------------------------------------------------------------------------------
# lavTestLRT
# ---------------------------------------------------------------------------------------------

def lrt_table(fits: Sequence[Any], names: Sequence[str], *, method: str | None = None) -> pd.DataFrame:
    """lavaan's ``lavTestLRT`` for a list of nested fits: sorted by df, adjacent pairs tested.

    Parameters
    ----------
    fits : sequence of CFAResult
    names : model names, one per fit
    method : {"standard", "satorra.bentler.2001", "satorra.2000"}, optional
        Default: "satorra.bentler.2001" when the fits carry a ``chisq.scaling.factor`` from
        MLR, "satorra.2000" (scaled-shifted) for WLSMV, "standard" for ML.

    Returns
    -------
    DataFrame
        Columns ``model Df AIC BIC Chisq Chisq diff RMSEA Df diff Pr(>Chisq)`` (lavaan's;
        ``RMSEA``, the RMSEA of the difference test, only for the standard test, as lavaan).
        The tests are `instrument.sem.test.satorra_bentler`'s.
    """
    fm = [f.fit_measures for f in fits]
    est = _estimator(fits[0])
    if method is None:
        method = {"MLR": "satorra.bentler.2001", "WLSMV": "satorra.2000",
                  "ULSMV": "satorra.2000"}.get(est, "standard")
    if method not in ("standard", "satorra.bentler.2001", "satorra.2000"):
        raise ValueError(f"method= must be one of 'standard', 'satorra.bentler.2001', "
                         f"'satorra.2000'; got {method!r}.")
    order = sorted(range(len(fits)), key=lambda i: fm[i]["df"])
    rows = []
    for pos, i in enumerate(order):
        row = {"model": names[i], "Df": int(fm[i]["df"]), "AIC": fm[i].get("aic", np.nan),
               "BIC": fm[i].get("bic", np.nan), "Chisq": fm[i]["chisq"], "Chisq diff": np.nan,
               "RMSEA": np.nan, "Df diff": np.nan, "Pr(>Chisq)": np.nan}
        if pos > 0:
            j = order[pos - 1]
            if method == "standard":
                t = sb.lrt(fm[j]["chisq"], fm[j]["df"], fm[i]["chisq"], fm[i]["df"])
                d, ddf, p = t.chisq_diff, t.df_diff, t.pvalue
                row["RMSEA"] = sb.rmsea_d(d, ddf, int(fm[i]["ntotal"]), ngroups=_ngroups(fits[i]))
            elif method == "satorra.2000":
                from instrument.sem.estimators.categorical import satorra2000_diff
                o = satorra2000_diff(fits[j], fits[i])
                d, ddf, p = o["chisq.diff"], o["df.diff"], o["pvalue"]
            else:
                t = sb.satorra_bentler_2001(
                    fm[j]["chisq"], fm[j]["df"], fm[j]["chisq.scaling.factor"],
                    fm[i]["chisq"], fm[i]["df"], fm[i]["chisq.scaling.factor"])
                d, ddf, p = t.chisq_diff, t.df_diff, t.pvalue
            row.update({"Chisq diff": d, "Df diff": ddf, "Pr(>Chisq)": p})
        rows.append(row)
    return pd.DataFrame(rows)


def _estimator(fit: Any) -> str:
    return str(fit.meta.options.get("estimator", "ML")).upper()


def _ngroups(fit: Any) -> int:
    return int(fit.meta.options.get("ngroups", len(fit.sample)))


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Score tests (lavTestScore)
# ---------------------------------------------------------------------------------------------

def score_test_equality(fit: Any) -> pd.DataFrame:
    """lavaan's ``lavTestScore()`` for every equality constraint of a fitted (ML) model.

    Returns
    -------
    DataFrame
        One row per constraint: ``lhs`` and ``rhs`` (lavaan's ``.pK.`` plabels of the two
        parameters), ``parameter`` (``group.partial`` spelling, e.g. ``x3~1``), ``lhs_group``,
        ``rhs_group``, ``X2``, ``df`` (1), ``pvalue`` and ``epc`` (expected change of the
        second parameter when the constraint is released). The total test is in
        ``.attrs["total"]`` as ``{"X2", "df", "pvalue"}``.

    Notes
    -----
    Constraints are written as lavaan writes them: the first parameter of each equality class
    against each other member. The score is the gradient of logl/N with respect to the free
    parameters (``-1/2 dF/dθ``) and the information the unit expected information, both for the
    model without the constraints evaluated at the constrained estimates; see
    `instrument.sem.test.score.score_tests`.
    """
    from instrument.sem.estimators.ml import MLObjective

    if _estimator(fit) in ("WLSMV", "ULSMV"):
        from instrument.sem.estimators.categorical import score_test_equality_wls
        return score_test_equality_wls(fit)
    if _estimator(fit) != "ML":
        import warnings
        warnings.warn("score tests use the ML (standard) information; for "
                      f"{_estimator(fit)} fits this is lavaan's fallback too.", stacklevel=2)
    model, x, stats = fit._rebuilt()
    obj = MLObjective(model, stats)
    deltas = model.delta(x, wrt="free")
    grads = obj.moment_gradients(x)
    k = len(model.free_rows)
    score = np.zeros(k)
    info = np.zeros((k, k))
    from instrument.sem.estimators.ml import weighted_delta
    for w, D, gm, imp in zip(obj.w, deltas, grads, model.implied(x)):
        score += -0.5 * w * (D.T @ gm)
        info += w * (D.T @ weighted_delta(model, imp.sigma, D))
    info = 0.5 * (info + info.T)
    return equality_score_table(score, info, model, fit.partable,
                                int(sum(g.n for g in stats.groups)))


# ---------------------------------------------------------------------------------------------
# The ladder
# ---------------------------------------------------------------------------------------------

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
        ``cfi.delta``, ``tli.delta``, ``rmsea.delta``, ``srmr.delta``, ``holds`` and ``verdict``.
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

    def to_dict(self) -> dict:
        return to_jsonable({"table": self.table, "lrt": self.lrt, "group_chisq": self.group_chisq,
                            "group_labels": list(self.group_labels), "rule_set": self.rule_set,
                            "estimator": self.estimator, "releases": self.releases,
                            "item_tests": dict(self.item_tests), "meta": self.meta.to_dict(),
                            "fits": {k: v.to_dict() for k, v in self.fits.items()}})

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
        (`instrument.invariance_dif.release_tests`: thresholds, loading, intercept or residual
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
        return _partial(self, step, max_release=max_release, rule_set=rule_set or self.rule_set)

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


def _equal_for(steps: Sequence[str], upto: str) -> tuple[str, ...]:
    eq: list[str] = []
    for s in steps[: list(steps).index(upto) + 1]:
        eq.extend(STEP_EQUAL[s])
    return tuple(eq)


def group_chisq(fit: Any) -> list[float]:
    """Each group's contribution ``n_g F_ML,g`` to the ML χ² (lavaan's ``stat.group``)."""
    if _estimator(fit) in ("WLSMV", "ULSMV"):
        from instrument.sem.estimators.categorical import group_chisq_wls
        return group_chisq_wls(fit)
    out = []
    for s, imp in zip(fit.sample, fit.implied):
        S, m, n = np.asarray(s["cov"]), np.asarray(s["mean"]), s["n"]
        Sig = np.asarray(imp["cov"])
        mu = np.asarray(imp["mean"]) if imp.get("mean") is not None else m
        p = S.shape[0]
        Si = np.linalg.inv(Sig)
        d = m - mu
        F = (np.linalg.slogdet(Sig)[1] + np.trace(S @ Si) - np.linalg.slogdet(S)[1] - p
             + d @ Si @ d)
        out.append(float(n * F))
    return out


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


def _row_tests(fit: Any, step: str, call: Mapping[str, Any], partial: Sequence[str]) -> Any:
    """`instrument.invariance_dif.release_tests` of a step's item-level restrictions (None for
    steps without them or ladders fitted without the data's item SDs)."""
    from instrument.invariance_dif import STEP_KIND, item_of, release_tests

    kind = STEP_KIND.get(step.replace(" (partial)", ""))
    if kind is None or "sds" not in call:
        return None
    items = list(fit.ov_names)
    return release_tests(fit, kind, sds=call["sds"], codes=call["codes"],
                         released_items=sorted({item_of(p, items) for p in partial}))


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
    lrt = lrt_table(fits, names) if sequential else None
    in_order = sequential and list(lrt["model"]) == names
    item_tests: dict[str, pd.DataFrame] = {}
    for i in range(1, len(rows)):
        b = bases[i]
        last = (lrt.iloc[i] if in_order
                else lrt_table([fits[b], fits[i]], [names[b], names[i]]).iloc[-1])
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
        if rule_set == "lrt_dmacs":
            partial = fits[i].meta.options.get("group_partial", ())
            t = _row_tests(fits[i], base, call, partial)
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
        if estimator in ("WLSMV", "ULSMV"):
            from instrument.invariance_ordinal import ORDINAL_STEP_NOTES
            text += (" " + ORDINAL_STEP_NOTES[base]) if base in ORDINAL_STEP_NOTES else ""
        if rows[b].get("holds") is False:
            text += (f" Compared with {rows[b]['step']!r}, which does not hold: this step is not "
                     "evidence of comparability.")
        r["holds"], r["verdict"] = ok, text
    if lrt is None:
        path = [i for i in range(len(rows)) if i == 0 or rows[i].get("_accepted", True)]
        lrt = lrt_table([fits[i] for i in path], [names[i] for i in path])
    return lrt, item_tests


def _assemble(names: list[str], fits: list[Any], *, rule_set: str, estimator: str,
              labels: tuple[str, ...], sizes: list[int], meta: Meta, call: Mapping[str, Any],
              releases: pd.DataFrame | None = None, bases: Sequence[int] | None = None,
              accepted: Sequence[bool] | None = None,
              search: Mapping[str, str] | None = None) -> InvarianceResult:
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
    table = pd.DataFrame(rows).drop(columns=[c for c in rows[0] if c.startswith("_")])
    if "verdict" in table:
        table.loc[0, "verdict"] = "baseline (configural) model"
    gc = [{"step": n, "group": labels[g], "chisq": c}
          for n, f in zip(names, fits) for g, c in enumerate(group_chisq(f))]
    return InvarianceResult(table=table, lrt=lrt, group_chisq=pd.DataFrame(gc),
                            group_labels=labels, rule_set=rule_set, estimator=estimator,
                            fits=dict(zip(names, fits)),
                            releases=releases if releases is not None else
                            pd.DataFrame(columns=RELEASE_COLUMNS),
                            item_tests=item_tests, meta=meta, _call=call)


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
        (`instrument.invariance_ordinal`; theta parameterization, std.lv) over the rungs
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
    """
    from instrument.sem.cfa import cfa

    bad = [s for s in steps if s not in STEP_EQUAL]
    if bad:
        raise ValueError(f"steps= must be drawn from {', '.join(map(repr, STEP_EQUAL))}; got {bad}.")
    if not steps or steps[0] != "configural":
        raise ValueError("steps= must start with 'configural' (the baseline of every comparison).")
    if rule_set not in RULE_SETS:
        raise ValueError(f"rule_set= must be one of {', '.join(map(repr, RULE_SETS))}; got {rule_set!r}.")
    if ordered is not None and ordered is not False:
        return _invariance_ordinal(model, data, group=group, steps=steps, estimator=estimator,
                                   rule_set=rule_set, group_order=group_order,
                                   group_partial=group_partial, min_group_n=min_group_n,
                                   ordered=ordered, **cfa_options)
    if estimator.upper() not in ("ML", "MLR"):
        raise ValueError(f"estimator= must be one of 'ML', 'MLR' for the invariance ladder; "
                         f"got {estimator!r}.")
    _check_groups(data, group, model, min_group_n)
    names, fits = [], []
    for step in steps:
        fit = cfa(model, data, group=group, group_equal=_equal_for(steps, step),
                  group_partial=tuple(group_partial), estimator=estimator.upper(),
                  group_order=group_order, **cfa_options)
        names.append(step)
        fits.append(fit)
    labels = tuple(str(x) for x in fits[0].meta.options.get("group_labels", ()))
    sizes = [int(s["n"]) for s in fits[0].sample]
    meta = Meta(options={"group": group, "steps": list(steps), "estimator": estimator.upper(),
                         "rule_set": rule_set, "group_partial": list(group_partial),
                         "group_order": list(labels)})
    call = {"model": model, "data": data, "group": group, "steps": tuple(steps),
            "estimator": estimator.upper(), "group_order": labels, "cfa_options": cfa_options,
            "group_partial": tuple(group_partial)}
    call.update(_item_scale(data, fits[0], group, labels))
    return _assemble(names, fits, rule_set=rule_set, estimator=estimator.upper(), labels=labels,
                     sizes=sizes, meta=meta, call=call)


def _item_scale(data: pd.DataFrame, fit: Any, group: str, labels: Sequence[str]) -> dict:
    """Per-group item SDs (the dMACS denominators) and observed codes, from every answer."""
    from instrument.invariance_dif import item_sds

    sds, codes = item_sds(data, list(fit.ov_names), group, labels)
    return {"sds": sds, "codes": codes}


def _invariance_ordinal(model, data, *, group, steps, estimator, rule_set, group_order,
                        group_partial, min_group_n, ordered, **cfa_options) -> InvarianceResult:
    """The ordinal (WLSMV, Wu-Estabrook) ladder; see `invariance`."""
    from instrument.invariance_ordinal import ORDINAL_STEPS

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
    _check_groups(data, group, model, min_group_n)
    call = {"model": model, "data": data, "group": group, "steps": tuple(steps),
            "estimator": "WLSMV", "group_order": group_order, "cfa_options": cfa_options,
            "group_partial": tuple(group_partial), "ordered": ordered}
    names, fits = [], []
    for step in steps:
        names.append(step)
        fits.append(_refit(call, steps, step, group_partial))
    labels = tuple(str(x) for x in fits[0].meta.options.get("group_labels", ()))
    call["group_order"] = labels
    call.update(_item_scale(data, fits[0], group, labels))
    sizes = [int(s["n"]) for s in fits[0].sample]
    meta = Meta(options={"group": group, "steps": list(steps), "estimator": "WLSMV",
                         "rule_set": rule_set, "group_partial": list(group_partial),
                         "group_order": list(labels), "ordered": True,
                         "identification": "Wu.Estabrook.2016 (std.lv, theta)",
                         "lrt_method": "satorra.2000"})
    return _assemble(names, fits, rule_set=rule_set, estimator="WLSMV", labels=labels,
                     sizes=sizes, meta=meta, call=call)


def _check_groups(data: pd.DataFrame, group: str, model: str, min_group_n: int | None) -> None:
    """Clear errors for a missing group column, a tiny group or an item constant within a group."""
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
    for g, sub in data.groupby(group):
        const = [c for c in items if sub[c].nunique(dropna=True) < 2]
        if const:
            raise ValueError(f"item(s) {const} are constant within group {g!r} of {group!r}; "
                             "the group's covariance matrix is singular. Drop or merge the group.")


# ---------------------------------------------------------------------------------------------
# Partial invariance and latent means
# ---------------------------------------------------------------------------------------------

def _refit(call: Mapping[str, Any], steps: Sequence[str], step: str, partial: Sequence[str]) -> Any:
    from instrument.sem.cfa import cfa

    if call.get("ordered") is not None and call.get("ordered") is not False:
        from instrument.invariance_ordinal import fit_ordinal_step
        return fit_ordinal_step(call["model"], call["data"], group=call["group"],
                                group_equal=_equal_for(steps, step), group_partial=tuple(partial),
                                ordered=call["ordered"], group_order=call["group_order"],
                                **call["cfa_options"])
    return cfa(call["model"], call["data"], group=call["group"], group_equal=_equal_for(steps, step),
               group_partial=tuple(partial), estimator=call["estimator"],
               group_order=call["group_order"], **call["cfa_options"])


def _factor_items(fit: Any) -> dict[str, list[str]]:
    est = fit.estimates
    loads = est[(est["op"] == "=~") & (est["group"] == 1)]
    return {f: list(g["rhs"]) for f, g in loads.groupby("lhs", sort=False)}


def _partial(res: InvarianceResult, step: str | None, *, max_release: int | None,
             rule_set: str) -> InvarianceResult:
    """The specification search of `InvarianceResult.partial` (stopping rule in `rules`)."""
    from instrument.invariance_dif import item_of

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
        fit = cur[st] if not changed else _refit(call, steps, st, partial)
        full = fit
        here: list[dict] = []
        status = ""
        if st in todo:
            limit = max_release
            while True:
                d = lrt_table([out_fits[prev], fit], ["prev", st]).iloc[-1]
                t = _row_tests(fit, st, call, partial)
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
                fit = _refit(call, steps, st, partial)
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
    out = _assemble(out_names, out_fits, rule_set=rule_set, estimator=res.estimator,
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
    import warnings

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
