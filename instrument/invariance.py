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
RULE_SETS = ("chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt")

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
    if rule_set == "lrt":
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


# ---------------------------------------------------------------------------------------------
# Score tests (lavTestScore) at the formula level
# ---------------------------------------------------------------------------------------------

def score_tests(score: np.ndarray, information: np.ndarray, K: np.ndarray, D: np.ndarray, n: int
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """Total and univariate score (Lagrange multiplier) tests for releasing equality constraints.

    Parameters
    ----------
    score : (k,) array
        Gradient of the log-likelihood per observation with respect to the unconstrained
        parameters θ, at the constrained estimates (lavaan ``lavTech(fit, "gradient.logl")``).
    information : (k, k) array
        Unit expected information of θ at the same point.
    K : (k, q) array
        The constrained model: ``θ = K x`` (its columns span the constrained parameter space).
    D : (k, r) array
        One release direction per constraint: the change of θ that releasing only that
        constraint allows (for lavaan's ``.pA. == .pB.`` it is the unit vector of B).
    n : int
        Total sample size.

    Returns
    -------
    total : float
        ``N g' I⁺ g`` (lavaan's total test, on r df).
    univariate : (r,) array
        ``N (g'd)² / (d'Id − d'IK (K'IK)⁻¹ K'Id)`` per constraint.
    epc : (r,) array
        Expected change along d when the constraint is released: ``(g'd) / (that denominator)``.

    Notes
    -----
    lavaan 0.6-14 ``lavTestScore`` computes each univariate test as ``N g' Z⁺₁₁ g`` with Z the
    information bordered by all other constraints. The (1,1) block of that inverse is the
    covariance of the model with one constraint released, spanned by ``[K, d]``; since
    ``g'K = 0`` at the constrained optimum, ``g' Z⁺₁₁ g`` reduces to the expression above
    (the modification-index form), which needs one q x q inverse instead of one bordered
    inverse per constraint.

    References
    ----------
    Bentler, P. M., & Chou, C.-P. (1992). Some new covariance structure model improvement
    statistics. *Sociological Methods & Research, 21*(2), 259-282.
    https://doi.org/10.1177/0049124192021002006
    """
    total = float(n * score @ np.linalg.pinv(information) @ score)
    IK = information @ K
    A = np.linalg.inv(K.T @ IK)
    ID = information @ D
    den = np.einsum("ij,ij->j", D, ID) - np.einsum("ij,ij->j", (IK.T @ D), A @ (IK.T @ D))
    gd = score @ D
    return total, n * gd ** 2 / den, gd / den


def _param_name(lhs: str, op: str, rhs: str) -> str:
    """lavaan's ``group.partial`` spelling of a parameter: ``x3~1``, ``visual=~x2``, ``x1~~x1``."""
    return f"{lhs}~1" if op == "~1" else f"{lhs}{op}{rhs}"


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
    model without the constraints evaluated at the constrained estimates; see `score_tests`.
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


def equality_score_table(score: np.ndarray, info: np.ndarray, model: Any, partable: pd.DataFrame,
                         n: int) -> pd.DataFrame:
    """`score_tests` for every equality constraint of ``model``, as lavaan labels them.

    ``score`` and ``info`` are with respect to the model's free table rows (the constraints
    released). Each equality class (rows sharing one x) gives constraints first == other.
    """
    k = len(model.free_rows)
    dirs, meta_rows = [], []
    for col in range(model.nx):
        members = np.flatnonzero(model.x_col == col)
        for other in members[1:]:
            d = np.zeros(k)
            d[other] = 1.0
            dirs.append(d)
            a = partable.iloc[model.free_rows[members[0]]]
            b = partable.iloc[model.free_rows[other]]
            meta_rows.append({"lhs": f".p{int(a['id'])}.", "op": "==", "rhs": f".p{int(b['id'])}.",
                              "parameter": _param_name(b["lhs"], b["op"], b["rhs"]),
                              "lhs_group": int(a["group"]), "rhs_group": int(b["group"])})
    if not dirs:
        raise ValueError("the model has no equality constraints to test.")
    total, uni, epc = score_tests(score, info, model.K, np.array(dirs).T, n)
    out = pd.DataFrame(meta_rows)
    out["X2"] = uni
    out["df"] = 1
    out["pvalue"] = stats_chi2_sf(uni, 1)
    out["epc"] = epc
    out.attrs["total"] = {"X2": total, "df": len(dirs),
                          "pvalue": float(stats_chi2_sf(total, len(dirs)))}
    return out


def stats_chi2_sf(x: Any, df: int) -> Any:
    """Upper-tail χ² probability (scipy)."""
    return stats.chi2.sf(x, df)


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
                            "meta": self.meta.to_dict(),
                            "fits": {k: v.to_dict() for k, v in self.fits.items()}})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InvarianceResult":
        from instrument.results import CFAResult

        fits = {k: CFAResult.from_dict(v) for k, v in d.get("fits", {}).items()}
        d = from_jsonable({k: v for k, v in d.items() if k != "fits"})
        return cls(table=d["table"], lrt=d["lrt"], group_chisq=d["group_chisq"],
                   group_labels=tuple(d["group_labels"]), rule_set=d["rule_set"],
                   estimator=d["estimator"], fits=fits, releases=d["releases"],
                   meta=Meta.from_dict(d["meta"]))

    # -- partial invariance ----------------------------------------------------------------
    def partial(self, step: str | None = None, *, max_release: int | None = None,
                rule_set: str | None = None) -> "InvarianceResult":
        """Release constraints one at a time, by score test, until each step's rule is met.

        For ``step`` (every constrained step in ladder order when None): while the step's
        verdict against the step before fails, compute lavaan's univariate score tests
        (`score_test_equality`) for the constraints the step adds (e.g. intercepts for
        "scalar"), free the one with the largest X² (add it to ``group_partial``) and refit.
        Stops when the verdict holds, when no remaining constraint has p < .05, or after
        ``max_release`` releases (default: half of the step's constraints). Later steps are
        refitted with the releases carried forward. Warns when more than
        `rules.PARTIAL_MAX_FREED_SHARE` of a factor's indicators are freed or fewer than
        `rules.PARTIAL_MIN_INVARIANT` stay invariant.

        Returns a new InvarianceResult: steps with releases are named ``"<step> (partial)"``,
        and ``releases`` lists each release (round, step, parameter, X2, pvalue).
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


def _compare(rows: list[dict], fits: list[Any], *, rule_set: str, estimator: str,
             group_sizes: Sequence[int]) -> pd.DataFrame:
    """Fill difference tests, Δ-fit and verdicts of rows[1:] against the row before.

    Returns the lavTestLRT table of the fits, whose adjacent rows are these comparisons when the
    ladder's df increase step by step (otherwise each pair is tested on its own).
    """
    ntotal, ngroups = int(sum(group_sizes)), len(group_sizes)
    names = [r["step"] for r in rows]
    lrt = lrt_table(fits, names)
    in_order = list(lrt["model"]) == names
    for i in range(1, len(rows)):
        last = (lrt.iloc[i] if in_order
                else lrt_table([fits[i - 1], fits[i]], names[i - 1: i + 1]).iloc[-1])
        r = rows[i]
        r.update({"chisq.diff": last["Chisq diff"], "df.diff": last["Df diff"],
                  "pvalue.diff": last["Pr(>Chisq)"], "rmsea.diff": last["RMSEA"]})
        delta = {}
        for short in ("cfi", "tli", "rmsea", "srmr"):
            delta[f"{short}.delta"] = r[f"_{short}"] - rows[i - 1][f"_{short}"]
            r[f"{short}.delta"] = delta[f"{short}.delta"]
        delta["pvalue"] = r["pvalue.diff"]
        base = r["step"].replace(" (partial)", "")
        ok, text = verdict(delta, rules_for(base, rule_set, ntotal=ntotal, group_sizes=group_sizes),
                           estimator=estimator, ngroups=ngroups)
        if estimator in ("WLSMV", "ULSMV"):
            from instrument.invariance_ordinal import ORDINAL_STEP_NOTES
            text += (" " + ORDINAL_STEP_NOTES[base]) if base in ORDINAL_STEP_NOTES else ""
        if rows[i - 1].get("holds") is False:
            text += (f" Compared with {rows[i - 1]['step']!r}, which did not hold: read this step "
                     "as conditional on releasing that step's constraints (see partial()).")
        r["holds"], r["verdict"] = ok, text
    return lrt


def _assemble(names: list[str], fits: list[Any], *, rule_set: str, estimator: str,
              labels: tuple[str, ...], sizes: list[int], meta: Meta, call: Mapping[str, Any],
              releases: pd.DataFrame | None = None) -> InvarianceResult:
    keys = _INDEX_KEYS.get(estimator, _INDEX_KEYS["ML"])
    rows = [_row(n, f, keys) for n, f in zip(names, fits)]
    lrt = _compare(rows, fits, rule_set=rule_set, estimator=estimator, group_sizes=sizes)
    table = pd.DataFrame(rows).drop(columns=[c for c in rows[0] if c.startswith("_")])
    if "verdict" in table:
        table.loc[0, "verdict"] = "baseline (configural) model"
    gc = [{"step": n, "group": labels[g], "chisq": c}
          for n, f in zip(names, fits) for g, c in enumerate(group_chisq(f))]
    return InvarianceResult(table=table, lrt=lrt, group_chisq=pd.DataFrame(gc),
                            group_labels=labels, rule_set=rule_set, estimator=estimator,
                            fits=dict(zip(names, fits)),
                            releases=releases if releases is not None else
                            pd.DataFrame(columns=["round", "step", "parameter", "X2", "pvalue"]),
                            meta=meta, _call=call)


def invariance(model: str, data: pd.DataFrame, *, group: str,
               steps: Sequence[str] = DEFAULT_STEPS, estimator: str = "ML",
               rule_set: str = "chen2007", group_order: Sequence[Any] | None = None,
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
    rule_set : {"chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt"}
        Which Δ-fit rules decide each verdict (see `rules_for`).
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
    return _assemble(names, fits, rule_set=rule_set, estimator=estimator.upper(), labels=labels,
                     sizes=sizes, meta=meta, call=call)


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

def constraint_type(parameter: str, ov_names: Sequence[str]) -> str:
    """The ``group.equal`` type a ``group.partial``-style parameter belongs to."""
    ov = set(ov_names)
    if "|" in parameter:
        return "thresholds"
    if "=~" in parameter:
        return "loadings"
    if parameter.endswith("~1"):
        return "intercepts" if parameter[:-2] in ov else "means"
    if "~~" in parameter:
        a, b = parameter.split("~~")
        if a in ov:
            return "residuals" if a == b else "residual.covariances"
        return "lv.variances" if a == b else "lv.covariances"
    return "regressions"


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


def _fixed_by_identification(estimator: str, step: str) -> bool:
    """Under Wu & Estabrook (2016) identification the scalar and strict steps fix intercepts
    and residual variances (to 0 and 1) instead of equating them, so there are no equality
    constraints whose score tests could guide a release."""
    return estimator in ("WLSMV", "ULSMV") and step in ("scalar", "strict")


def _lr_release_tests(call: Mapping[str, Any], steps: Sequence[str], step: str,
                      partial: Sequence[str], fit: Any) -> pd.DataFrame:
    """Candidate releases of a Wu–Estabrook step ranked by refitting: for each item not yet
    released, free its intercept (scalar) or residual variance (strict) in groups 2..G and
    test the change with lavaan's scaled-shifted difference (``satorra.2000``).

    Returns a frame with ``parameter``, ``X2``, ``df`` and ``pvalue`` (the difference test of
    the current model against the model with that one parameter freed).
    """
    from instrument.sem.estimators.categorical import satorra2000_diff

    items = list(fit.ov_names)
    spell = (lambda v: f"{v}~1") if step == "scalar" else (lambda v: f"{v}~~{v}")
    rows = []
    for v in items:
        cand = spell(v)
        if cand in partial:
            continue
        try:
            free = _refit(call, steps, step, [*partial, cand])
            d = satorra2000_diff(free, fit)
        except (ValueError, np.linalg.LinAlgError):
            continue
        rows.append({"parameter": cand, "X2": d["chisq.diff"], "df": d["df.diff"],
                     "pvalue": d["pvalue"]})
    return pd.DataFrame(rows, columns=["parameter", "X2", "df", "pvalue"])


def _partial(res: InvarianceResult, step: str | None, *, max_release: int | None,
             rule_set: str) -> InvarianceResult:
    call = res._call
    if not call:
        raise ValueError("partial() needs the ladder's data: call it on the result of "
                         "invariance(), not on one read back from JSON.")
    steps = list(call["steps"])
    names = [n.replace(" (partial)", "") for n in res.table["step"]]
    if step is not None and (step not in names or step == "configural"):
        raise ValueError(f"step= must be a constrained step of this ladder {names[1:]}; got {step!r}.")
    todo = [step] if step is not None else names[1:]
    fits = [res.fits[n] for n in res.table["step"]]
    partial = list(call["group_partial"])
    sizes = [int(s["n"]) for s in fits[0].sample]
    releases = [] if res.releases is None else res.releases.to_dict("records")
    released_at: dict[str, bool] = {n: n != r for n, r in zip(names, res.table["step"])}
    n_constraints: dict[str, int] = {}
    for st in todo:
        idx = names.index(st)
        kinds = STEP_EQUAL[st]
        fit = fits[idx]
        limit, n_rel = max_release, 0
        while not _holds(fits[idx - 1], fit, st, rule_set, res.estimator, sizes):
            tests = score_test_equality(fit)
            tests = tests[tests["parameter"].map(
                lambda q: constraint_type(q, fit.ov_names) in kinds) & ~tests["parameter"].isin(partial)]
            if tests.empty and _fixed_by_identification(res.estimator, st):
                tests = _lr_release_tests(call, steps, st, partial, fit)
            if limit is None:
                limit = max(1, len(tests) // 2)
                n_constraints[st] = len(tests) + sum(r["step"] == st for r in releases)
            if tests.empty or n_rel >= limit:
                break
            top = tests.sort_values("X2", ascending=False).iloc[0]
            if top["pvalue"] >= rules.LRT_ALPHA.threshold:
                break
            partial.append(top["parameter"])
            n_rel += 1
            releases.append({"round": len(releases) + 1, "step": st, "parameter": top["parameter"],
                             "X2": float(top["X2"]), "pvalue": float(top["pvalue"])})
            fit = _refit(call, steps, st, partial)
        fits[idx] = fit
        released_at[st] = released_at[st] or n_rel > 0
        # later steps carry the releases forward
        for j in range(idx + 1, len(names)):
            fits[j] = _refit(call, steps, names[j], partial)
    new_names = [f"{n} (partial)" if released_at[n] else n for n in names]
    rel = pd.DataFrame(releases, columns=["round", "step", "parameter", "X2", "pvalue"])
    out = _assemble(new_names, fits, rule_set=rule_set, estimator=res.estimator,
                    labels=res.group_labels, sizes=sizes,
                    meta=replace(res.meta, options={**res.meta.options, "group_partial": partial}),
                    call={**call, "group_partial": tuple(partial)}, releases=rel)
    _warn_freed_share(fits[-1], partial, rel, n_constraints)
    return out


def _holds(prev_fit: Any, fit: Any, step: str, rule_set: str, estimator: str,
           sizes: Sequence[int]) -> bool:
    keys = _INDEX_KEYS.get(estimator, _INDEX_KEYS["ML"])
    rows = [_row("prev", prev_fit, keys), _row(step, fit, keys)]
    _compare(rows, [prev_fit, fit], rule_set=rule_set, estimator=estimator, group_sizes=sizes)
    return bool(rows[1]["holds"])


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
