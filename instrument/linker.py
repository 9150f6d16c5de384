"""Predictive validity: link school scores to school outcomes (attendance, absenteeism, ELA, math).

The flow is ``scores`` (long table from `instrument.scores.school_scores`) + ``outcomes`` (one row per
school) ──► `link` (one school-level regression, cluster-robust by district) ──► `LinkResult`, plus
`sensitivity` (the same regression over forms, constructs and with/without controls) and
`bright_spots` (Stage 2's positive-deviance finder).

Layers, as in lavaan's ``lav_fit_*`` files:

* lower level, no input checking, numpy only: `design_matrix`, `cr2_vcov`, `satterthwaite_df`,
  `cluster_fit`;
* API level, validates its input and returns frozen results: `link`, `sensitivity`, `bright_spots`.

Cluster-robust variance (district clusters)
-------------------------------------------
With weights ``W = diag(w)`` (``w = 1`` for OLS), ``M = (X'WX)^{-1}``, residuals ``e = y - Xb``,

``V = M [ sum_j X_j' W_j A_j e_j e_j' A_j' W_j X_j ] M``

* CR1 (``se_type="CR1"``): ``A_j = sqrt(J (N-1) / ((J-1)(N-p))) I``, Stata's small-sample factor;
  statsmodels' ``cov_type="cluster"`` (its default corrections) computes exactly this and is used;
  tests use ``t`` with ``J - 1`` df (Stata, clubSandwich ``vcovCR(type="CR1S")`` +
  ``coef_test(test="naive-t")``).
* CR2 (``se_type="CR2"``, default): Bell & McCaffrey's bias-reduced linearisation in the form of
  Pustejovsky & Tipton (2018, eq. 7) with the working model ``Var(e) = I`` (clubSandwich's target
  for ``lm`` fits, weighted or not): ``A_j = G_j^{-1/2}`` (symmetric square root, eigenvalues
  below 1e-12 set to zero) with
  ``G_j = I - H_jj - H_jj' + X_j M (sum_k X_k' W_k^2 X_k) M X_j'`` and ``H_jj = X_j M X_j' W_j``.
  Without weights ``G_j = I - X_j M X_j'``, Bell & McCaffrey (2002). Tests of a contrast ``c'b``
  use ``t`` with Satterthwaite degrees of freedom (Bell & McCaffrey 2002, Imbens & Kolesár 2016,
  Pustejovsky & Tipton 2018 eq. 11): writing the CR2 variance of ``c'b`` as
  ``sum_j (p_j' y)^2`` with ``p_j = (I - H)'[:, j] A_j W_j X_j M c`` (``H = X M X'W``), under the
  working model ``Omega_ij = p_i' p_j`` and ``df = tr(Omega)^2 / sum_ij Omega_ij^2``.
  Matches R clubSandwich 0.5.8 ``vcovCR(fit, cluster, type="CR2")`` and
  ``coef_test(..., test="Satterthwaite")`` (tests/fixtures/linker, rtol 1e-6).

References
----------
Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear regression with
multi-stage samples. Survey Methodology, 28(2), 169-181.
Imbens, G. W., & Kolesár, M. (2016). Robust standard errors in small samples: some practical advice.
Review of Economics and Statistics, 98(4), 701-712. https://doi.org/10.1162/REST_a_00552
Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust variance estimation
and hypothesis testing in fixed effects models. Journal of Business & Economic Statistics, 36(4),
672-683. https://doi.org/10.1080/07350015.2016.1247004
Cameron, A. C., & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference. Journal
of Human Resources, 50(2), 317-372. https://doi.org/10.3368/jhr.50.2.317
Fuller, W. A. (1987). Measurement Error Models. Wiley, sec. 1.2 and 2.2.
Bound, J., Brown, C., & Mathiowetz, N. (2001). Measurement error in survey data. In Handbook of
Econometrics, vol. 5, ch. 59, eq. (3.5)-(3.6). https://doi.org/10.1016/S1573-4412(01)05012-7
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument.results import Meta, Table, from_jsonable, hash_frame, to_jsonable
from instrument.rules import BRIGHT_SPOT_TOP_SHARE, CHRONIC_ABSENCE, FEW_CLUSTERS_CR1, Rule

__all__ = [
    "OUTCOMES", "SE_TYPES", "DEFAULT_CONTROLS", "LinkResult", "BrightSpotResult", "ClusterFit",
    "link", "sensitivity", "bright_spots", "check_rates", "chronic_absence_rate",
    "simulate_link_data", "design_matrix", "cr2_vcov", "satterthwaite_df", "cluster_fit",
]

OUTCOMES = ("chronic_absence", "attendance", "ela_proficiency", "math_proficiency")
SE_TYPES = ("CR2", "CR1")
FORMS = ("teacher", "family")
RATES_IN = ("proportion", "percent")
DEFAULT_CONTROLS = ("poverty", "<outcome>_prior", "grade_band", "enrollment")
#: Share columns of the outcomes table checked by `check_rates` (when present).
RATE_COLUMNS = tuple(c for o in OUTCOMES for c in (o, f"{o}_prior")) + ("poverty", "el_share")
SCORE_COLUMNS = ("school_id", "district_id", "form", "construct", "score", "suppressed")
OUTCOME_COLUMNS = ("school_id", "district_id")
_EIG_TOL = 1e-12  # clubSandwich's matrix_power(): eigenvalues <= 1e-12 are set to 0


# ------------------------------------------------------------------------------------------------
# errors and option checks
# ------------------------------------------------------------------------------------------------
def _choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        opts = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}= must be one of {opts}; got {value!r}.")


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; it has {list(df.columns)}.")


def _ids(values: Any, limit: int = 20) -> str:
    vals = [str(v) for v in values]
    more = f" ... (+{len(vals) - limit} more)" if len(vals) > limit else ""
    return ", ".join(vals[:limit]) + more


# ------------------------------------------------------------------------------------------------
# outcome definitions
# ------------------------------------------------------------------------------------------------
def chronic_absence_rate(days_absent: Any, days_enrolled: Any, *,
                         rule: Rule = CHRONIC_ABSENCE) -> float:
    """Share of students who are chronically absent (missing at least 10% of enrolled days).

    Parameters
    ----------
    days_absent, days_enrolled : array-like
        One entry per student: days absent for any reason, and days enrolled at the school.
    rule : Rule
        The definition, `instrument.rules.CHRONIC_ABSENCE` by default
        (``days_absent / days_enrolled >= 0.10``).

    Returns
    -------
    float
        Proportion in [0, 1].

    Notes
    -----
    ESSA state report cards and the Civil Rights Data Collection count a student as chronically
    absent when absent 10% or more of the days enrolled, for any reason (Attendance Works, 2014).
    """
    a = np.asarray(days_absent, dtype=float)
    e = np.asarray(days_enrolled, dtype=float)
    if a.shape != e.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("days_absent= and days_enrolled= must be 1-d arrays of equal, non-zero length.")
    bad = np.flatnonzero(~np.isfinite(e) | (e <= 0) | ~np.isfinite(a) | (a < 0) | (a > e))
    if bad.size:
        raise ValueError(f"days_enrolled must be > 0 and 0 <= days_absent <= days_enrolled; "
                         f"rows {_ids(bad)} break this.")
    return float(np.mean([rule.passes(v) for v in a / e]))


def check_rates(outcomes: pd.DataFrame, columns: Sequence[str] | None = None, *,
                rates_in: str = "proportion") -> pd.DataFrame:
    """Check that rate columns are proportions (or declared percentages) and return proportions.

    Parameters
    ----------
    outcomes : DataFrame
        The outcomes table (``school_id`` plus rate columns).
    columns : sequence of str, optional
        Columns to check; default every column of `RATE_COLUMNS` present.
    rates_in : {"proportion", "percent"}
        How rates are stored. ``"percent"`` values must lie in [0, 100] and are divided by 100.

    Returns
    -------
    DataFrame
        A copy with every checked column as a proportion in [0, 1].

    Raises
    ------
    ValueError
        Naming the column and the offending school ids when a value is outside the declared range.
    """
    _choice("rates_in", rates_in, RATES_IN)
    _require(outcomes, ["school_id"], "outcomes")
    cols = [c for c in (columns if columns is not None else RATE_COLUMNS) if c in outcomes.columns]
    out = outcomes.copy()
    hi = 1.0 if rates_in == "proportion" else 100.0
    for c in cols:
        v = pd.to_numeric(out[c], errors="coerce")
        nonnum = out[c].notna() & v.isna()
        if nonnum.any():
            raise ValueError(f"outcomes column {c!r} has non-numeric values at school_id(s) "
                             f"{_ids(out.loc[nonnum, 'school_id'])}.")
        bad = v.notna() & ((v < 0) | (v > hi))
        if bad.any():
            hint = (" If rates are stored as percentages, pass rates_in='percent'."
                    if rates_in == "proportion" and (v[bad] <= 100).all() else "")
            raise ValueError(f"outcomes column {c!r} must be a {rates_in} in [0, {hi:g}]; "
                             f"school_id(s) {_ids(out.loc[bad, 'school_id'])} have "
                             f"{_ids(v[bad].tolist())}.{hint}")
        out[c] = v / 100.0 if rates_in == "percent" else v
    return out


# ------------------------------------------------------------------------------------------------
# lower level numerics (no input checking)
# ------------------------------------------------------------------------------------------------
def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def design_matrix(df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus ``columns``; categorical columns dummy-coded against their first sorted level.

    Returns the ``n x p`` matrix and the term names (``"(Intercept)"``, numeric column names, and
    ``"col[level]"`` for dummies). Same coding as R's ``lm`` default (treatment contrasts, levels in
    sorted order). Levels not present in ``df`` get no column.
    """
    parts = [np.ones((len(df), 1))]
    names = ["(Intercept)"]
    for c in columns:
        s = df[c]
        if _is_categorical(s):
            levels = sorted(pd.unique(s.astype(str)))
            for lev in levels[1:]:
                parts.append((s.astype(str) == lev).to_numpy(float)[:, None])
                names.append(f"{c}[{lev}]")
        else:
            parts.append(s.to_numpy(float)[:, None])
            names.append(c)
    return np.hstack(parts), names


def _sym_power(a: np.ndarray, p: float) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vp = np.where(vals > _EIG_TOL, np.abs(vals) ** p, 0.0)
    return (vecs * vp) @ vecs.T


def _groups(cluster: np.ndarray) -> list[np.ndarray]:
    _, codes = np.unique(cluster, return_inverse=True)
    return [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]


def cr2_vcov(X: np.ndarray, resid: np.ndarray, cluster: np.ndarray,
             weights: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """CR2 (Bell–McCaffrey) cluster-robust covariance of WLS/OLS coefficients.

    Parameters
    ----------
    X : (n, p) array
        Model matrix.
    resid : (n,) array
        Raw residuals ``y - X b``.
    cluster : (n,) array
        Cluster labels.
    weights : (n,) array, optional
        WLS weights (``None`` for OLS).

    Returns
    -------
    vcov : (p, p) array
    adjustments : list of arrays
        The ``A_j`` matrices in cluster order (sorted labels), needed by `satterthwaite_df`.

    Notes
    -----
    ``V = M (sum_j X_j'W_j A_j e_j e_j' A_j W_j X_j) M`` with ``M = (X'WX)^{-1}`` and
    ``A_j = G_j^{-1/2}``, ``G_j = I - H_jj - H_jj' + X_j M (X'W^2X) M X_j'``,
    ``H_jj = X_j M X_j'W_j`` (Pustejovsky & Tipton, 2018, eq. 7 with working model ``I``; Bell &
    McCaffrey, 2002). Equals clubSandwich ``vcovCR(lm_fit, cluster, type = "CR2")``.
    """
    w = np.ones(len(X)) if weights is None else np.asarray(weights, float)
    WX = X * w[:, None]
    M = np.linalg.inv(X.T @ WX)
    MBM = M @ (WX.T @ WX) @ M
    meat = np.zeros((X.shape[1], X.shape[1]))
    adj = []
    for idx in _groups(cluster):
        Xj = X[idx]
        H = Xj @ M @ WX[idx].T
        G = np.eye(len(idx)) - H - H.T + Xj @ MBM @ Xj.T
        A = _sym_power(G, -0.5)
        adj.append(A)
        u = WX[idx].T @ (A @ resid[idx])
        meat += np.outer(u, u)
    return M @ meat @ M, adj


def satterthwaite_df(X: np.ndarray, cluster: np.ndarray, adjustments: Sequence[np.ndarray],
                     contrasts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite degrees of freedom of CR2 tests of ``c'b``, one per column of ``contrasts``.

    Notes
    -----
    The CR2 variance of ``c'b`` is ``sum_j (g_j' e_j)^2`` with ``g_j = A_j W_j X_j M c``; since
    ``e = (I - X M X'W) y`` it equals ``sum_j (p_j' y)^2`` with
    ``p_j = g_j`` (on cluster ``j``'s rows) ``- W X M X_j' g_j``. Under the working model
    ``y ~ N(Xb, I)`` its mean is ``tr(Omega)`` and its variance ``2 sum(Omega^2)``, with
    ``Omega = P'P``; matching a scaled chi-square gives ``df = tr(Omega)^2 / sum(Omega^2)``
    (Bell & McCaffrey, 2002, sec. 4; Pustejovsky & Tipton, 2018, eq. 11). Equals clubSandwich
    ``coef_test(..., test = "Satterthwaite")$df_Satt`` for unit contrasts.
    """
    w = np.ones(len(X)) if weights is None else np.asarray(weights, float)
    WX = X * w[:, None]
    M = np.linalg.inv(X.T @ WX)
    C = np.atleast_2d(np.asarray(contrasts, float).T).T  # (p, q)
    groups = _groups(cluster)
    out = np.empty(C.shape[1])
    for k in range(C.shape[1]):
        Mc = M @ C[:, k]
        P = np.empty((len(X), len(groups)))
        for j, (idx, A) in enumerate(zip(groups, adjustments)):
            g = A @ (WX[idx] @ Mc)
            p = -WX @ (M @ (X[idx].T @ g))
            p[idx] += g
            P[:, j] = p
        Om = P.T @ P
        out[k] = np.trace(Om) ** 2 / np.sum(Om ** 2)
    return out


@dataclass(frozen=True)
class ClusterFit:
    """A fitted school-level regression with cluster-robust covariance (plain arrays).

    Attributes
    ----------
    names : tuple of str
        Term names (see `design_matrix`).
    params, se, df : arrays
        Estimates, standard errors, and the t degrees of freedom per coefficient.
    vcov : (p, p) array
    se_type : {"CR2", "CR1"}
    nobs, n_clusters : int
    r_squared : float
        (Weighted) R-squared of the fit.
    """

    names: tuple[str, ...]
    params: np.ndarray
    vcov: np.ndarray
    se: np.ndarray
    df: np.ndarray
    se_type: str
    nobs: int
    n_clusters: int
    r_squared: float
    X: np.ndarray = field(repr=False)
    cluster: np.ndarray = field(repr=False)
    weights: np.ndarray | None = field(repr=False)
    adjustments: tuple = field(repr=False, default=())

    def contrast(self, c: np.ndarray) -> tuple[float, float, float]:
        """Estimate, standard error and df of ``c'b`` under this fit's covariance."""
        c = np.asarray(c, float)
        est = float(c @ self.params)
        se = float(np.sqrt(c @ self.vcov @ c))
        if self.se_type == "CR2":
            df = float(satterthwaite_df(self.X, self.cluster, self.adjustments, c[:, None],
                                        self.weights)[0])
        else:
            df = float(self.n_clusters - 1)
        return est, se, df


def cluster_fit(y: np.ndarray, X: np.ndarray, cluster: np.ndarray, *, names: Sequence[str],
                weights: np.ndarray | None = None, se_type: str = "CR2") -> ClusterFit:
    """OLS/WLS (statsmodels) with CR1 (statsmodels) or CR2 (`cr2_vcov`) covariance by cluster."""
    import statsmodels.api as sm

    _, codes = np.unique(cluster, return_inverse=True)
    J = int(codes.max() + 1)
    model = sm.OLS(y, X) if weights is None else sm.WLS(y, X, weights=weights)
    if se_type == "CR1":
        res = model.fit(cov_type="cluster", cov_kwds={"groups": codes})
        vcov = np.asarray(res.cov_params())
        df = np.full(X.shape[1], float(J - 1))
        adj: tuple = ()
    else:
        res = model.fit()
        resid = y - X @ res.params
        vcov, adj_list = cr2_vcov(X, resid, cluster, weights)
        adj = tuple(adj_list)
        df = satterthwaite_df(X, cluster, adj, np.eye(X.shape[1]), weights)
    return ClusterFit(names=tuple(names), params=np.asarray(res.params, float), vcov=vcov,
                      se=np.sqrt(np.diag(vcov)), df=df, se_type=se_type, nobs=int(len(y)),
                      n_clusters=J, r_squared=float(res.rsquared), X=X, cluster=np.asarray(cluster),
                      weights=None if weights is None else np.asarray(weights, float),
                      adjustments=adj)


def _coef_table(fit: ClusterFit, level: float = 0.95) -> pd.DataFrame:
    t = fit.params / fit.se
    q = stats.t.ppf(0.5 + level / 2, fit.df)
    return pd.DataFrame({"term": list(fit.names), "est": fit.params, "se": fit.se, "t": t,
                         "df": fit.df, "pvalue": 2 * stats.t.sf(np.abs(t), fit.df),
                         "ci.lower": fit.params - q * fit.se, "ci.upper": fit.params + q * fit.se})


# ------------------------------------------------------------------------------------------------
# assembling the analysis sample
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    data: pd.DataFrame
    accounting: dict


def _assemble(scores: pd.DataFrame, outcomes: pd.DataFrame, *, form: str, construct: str,
              needed: Sequence[str], rates_in: str) -> _Sample:
    """Select one form x construct, drop suppressed rows, merge with outcomes; count everything."""
    _require(scores, SCORE_COLUMNS, "scores")
    _require(outcomes, OUTCOME_COLUMNS, "outcomes")
    _require(outcomes, [c for c in needed if c not in ("score",)], "outcomes")
    if "year" in scores.columns and scores["year"].nunique() > 1:
        raise ValueError("scores has several values in column 'year'; link() is cross-sectional: "
                         "select one year first (bright_spots() uses several years).")
    sel = scores[(scores["form"] == form) & (scores["construct"] == construct)]
    if sel.empty:
        have = sorted(set(zip(scores["form"].astype(str), scores["construct"].astype(str))))
        raise ValueError(f"scores has no rows for form={form!r}, construct={construct!r}; "
                         f"available (form, construct): {have}.")
    dup = sel["school_id"][sel["school_id"].duplicated()]
    if len(dup):
        raise ValueError(f"scores has several rows per school for form={form!r}, "
                         f"construct={construct!r}: school_id(s) {_ids(dup.unique())}.")
    dupo = outcomes["school_id"][outcomes["school_id"].duplicated()]
    if len(dupo):
        raise ValueError(f"outcomes has several rows for school_id(s) {_ids(dupo.unique())}.")
    out = check_rates(outcomes, rates_in=rates_in)
    supp = sel["suppressed"].fillna(False).astype(bool)
    suppressed_ids = sorted(sel.loc[supp, "school_id"].astype(str))
    shown = sel.loc[~supp, ["school_id", "score", *[c for c in ("mean", "se", "reliability", "band", "n")
                                                    if c in sel.columns]]].copy()
    shown["school_id"] = shown["school_id"].astype(str)
    out["school_id"] = out["school_id"].astype(str)
    sid, oid = set(sel["school_id"].astype(str)), set(out["school_id"])
    only_scores = sorted(sid - oid)
    only_outcomes = sorted(oid - sid)
    merged = shown.merge(out, on="school_id", how="inner")
    cols = list(dict.fromkeys(["score", *needed]))
    miss = merged[cols].isna().any(axis=1)
    missing = {str(r["school_id"]): [c for c in cols if pd.isna(r[c])]
               for _, r in merged.loc[miss].iterrows()}
    data = merged.loc[~miss].reset_index(drop=True)
    acc = {"n_scores": int(len(sel)), "n_outcomes": int(len(out)),
           "n_suppressed": len(suppressed_ids), "suppressed_ids": suppressed_ids,
           "n_only_in_scores": len(only_scores), "only_in_scores": only_scores,
           "n_only_in_outcomes": len(only_outcomes), "only_in_outcomes": only_outcomes,
           "n_missing_values": len(missing), "missing_values": missing,
           "n_used": int(len(data))}
    return _Sample(data, acc)


def _resolve_controls(controls: Sequence[str], outcome: str) -> tuple[str, ...]:
    return tuple(c.replace("<outcome>", outcome) for c in controls)


# ------------------------------------------------------------------------------------------------
# LinkResult
# ------------------------------------------------------------------------------------------------
_FRAMES_LINK = ("coefficients", "effects", "bands", "vcov")


@dataclass(frozen=True)
class LinkResult:
    """Predictive validity of one score for one outcome (`link`).

    Attributes
    ----------
    outcome, construct, form : str
    change : bool
        True when the dependent variable is ``outcome - outcome_prior``.
    se_type : str
        ``"CR2"`` (Satterthwaite df) or ``"CR1"`` (df = clusters - 1).
    controls : tuple of str
        Control columns (resolved ``<outcome>_prior``).
    weights : str or None
        Weight column of ``outcomes`` (WLS) or None (OLS).
    coefficients : DataFrame
        ``term est se t df pvalue ci.lower ci.upper``; the score's term is ``"score"``.
    vcov : DataFrame
        Covariance of the estimates, ``term`` column plus one column per term.
    effects : DataFrame
        One row per predictor (``score``, and ``poverty`` when it is a control): ``predictor b
        sd b_per_sd beta_std p10 p90 contrast se df ci.lower ci.upper contrast_pp ci.lower_pp
        ci.upper_pp per_1000 ci.lower_per_1000 ci.upper_per_1000``. ``contrast`` is the
        predicted change in the outcome (a proportion) when the predictor moves from its 10th to
        its 90th percentile with everything else fixed.
    bands : DataFrame
        ``band midpoint n predicted se df ci.lower ci.upper predicted_pp``: predicted outcome at the
        median score of each reporting band, controls at their sample means.
    disattenuation : dict
        ``reliability`` (pooled reliability of the school means), ``reliability_source``,
        ``r2_score_controls``, ``reliability_residualised``, ``est_corrected``,
        ``ci.lower_corrected``, ``ci.upper_corrected``.
    sample : dict
        Counts and ids: used, suppressed, only in scores, only in outcomes, missing values.
    nobs, n_clusters : int
    r_squared : float
    notes : tuple of str
    meta : Meta
    """

    outcome: str
    construct: str
    form: str
    change: bool
    se_type: str
    controls: tuple[str, ...]
    weights: str | None
    coefficients: pd.DataFrame
    vcov: pd.DataFrame
    effects: pd.DataFrame
    bands: pd.DataFrame
    disattenuation: Mapping[str, Any]
    sample: Mapping[str, Any]
    nobs: int
    n_clusters: int
    r_squared: float
    notes: tuple[str, ...] = ()
    meta: Meta = field(default_factory=Meta)

    @property
    def score(self) -> pd.Series:
        """The coefficient row of the score."""
        return self.coefficients.set_index("term").loc["score"]

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "meta"}
        d["meta"] = self.meta.to_dict()
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LinkResult":
        kw = dict(from_jsonable(dict(d)))
        kw["meta"] = Meta.from_dict(d.get("meta", {}))
        kw["controls"] = tuple(kw["controls"])
        kw["notes"] = tuple(kw.get("notes", ()))
        return cls(**kw)

    def summary(self) -> Table:
        dep = f"change in {self.outcome}" if self.change else self.outcome
        rows = []
        for r in self.effects.itertuples(index=False):
            rows.append({"predictor": r.predictor, "b": r.b, "b per SD": r.b_per_sd,
                         "P10": r.p10, "P90": r.p90, "P10->P90 (pts)": r.contrast_pp,
                         "95% CI": f"[{r._asdict()['ci_lower_pp']:.1f}, {r._asdict()['ci_upper_pp']:.1f}]",
                         "per 1,000 students": r.per_1000, "df": r.df})
        frame = pd.DataFrame(rows)
        s = self.score
        notes = [f"{self.form} form, construct {self.construct}; {dep} regressed on the school "
                 f"score with controls {', '.join(self.controls) or 'none'}; "
                 f"{'WLS weights ' + self.weights if self.weights else 'OLS'}; {self.se_type} "
                 f"standard errors clustered by district ({self.n_clusters} districts, "
                 f"{self.nobs} schools).",
                 f"score: b = {s['est']:.5f}, SE = {s['se']:.5f}, t({s['df']:.1f}) = {s['t']:.2f}, "
                 f"p = {s['pvalue']:.4f}; corrected for unreliability (reliability of residualised "
                 f"score {self.disattenuation.get('reliability_residualised', float('nan')):.3f}): "
                 f"b = {self.disattenuation.get('est_corrected', float('nan')):.5f}.",
                 f"Excluded: {self.sample['n_suppressed']} suppressed, "
                 f"{self.sample['n_only_in_scores']} without outcomes, "
                 f"{self.sample['n_only_in_outcomes']} without scores, "
                 f"{self.sample['n_missing_values']} with missing values.", *self.notes]
        return Table(f"Predictive validity: {dep}", frame.rename(columns=lambda c: c), notes, 2)


def _effects_table(fit: ClusterFit, data: pd.DataFrame, y: np.ndarray, predictors: Sequence[str],
                   level: float) -> pd.DataFrame:
    rows = []
    sd_y = float(np.std(y, ddof=1))
    for pred in predictors:
        if pred not in fit.names:
            continue
        k = fit.names.index(pred)
        x = data[pred].to_numpy(float)
        p10, p90 = np.percentile(x, [10, 90])
        sd = float(np.std(x, ddof=1))
        b, se, df = float(fit.params[k]), float(fit.se[k]), float(fit.df[k])
        d = p90 - p10
        q = stats.t.ppf(0.5 + level / 2, df)
        con, con_se = b * d, abs(d) * se
        lo, hi = con - q * con_se, con + q * con_se
        rows.append({"predictor": pred, "b": b, "sd": sd, "b_per_sd": b * sd,
                     "beta_std": b * sd / sd_y, "p10": p10, "p90": p90, "contrast": con,
                     "se": con_se, "df": df, "ci.lower": lo, "ci.upper": hi,
                     "contrast_pp": 100 * con, "ci.lower_pp": 100 * lo, "ci.upper_pp": 100 * hi,
                     "per_1000": 1000 * con, "ci.lower_per_1000": 1000 * lo,
                     "ci.upper_per_1000": 1000 * hi})
    return pd.DataFrame(rows)


def _bands_table(fit: ClusterFit, data: pd.DataFrame, level: float) -> pd.DataFrame:
    cols = ["band", "midpoint", "n", "predicted", "se", "df", "ci.lower", "ci.upper", "predicted_pp"]
    if "band" not in data.columns or data["band"].isna().all():
        return pd.DataFrame(columns=cols)
    k = fit.names.index("score")
    xbar = fit.X.mean(axis=0)
    rows = []
    for band, g in data.dropna(subset=["band"]).groupby("band", sort=False):
        mid = float(np.median(g["score"]))
        c = xbar.copy()
        c[k] = mid
        est, se, df = fit.contrast(c)
        q = stats.t.ppf(0.5 + level / 2, df)
        rows.append({"band": str(band), "midpoint": mid, "n": int(len(g)), "predicted": est,
                     "se": se, "df": df, "ci.lower": est - q * se, "ci.upper": est + q * se,
                     "predicted_pp": 100 * est})
    return pd.DataFrame(rows, columns=cols).sort_values("midpoint").reset_index(drop=True)


def _disattenuate(fit: ClusterFit, data: pd.DataFrame, controls_X: np.ndarray,
                  ci: tuple[float, float]) -> dict:
    """Errors-in-variables correction of the score's coefficient (one mismeasured regressor).

    With observed score ``x = xi + u`` (``u`` independent of ``xi``, the controls and the outcome
    error) and reliability ``lambda = Var(xi) / Var(x)``, the OLS coefficient of ``x`` given
    controls ``Z`` converges to ``beta * lambda_z`` with
    ``lambda_z = (lambda - R2) / (1 - R2)``, where ``R2`` is the R-squared of ``x`` on ``Z``
    (the reliability of the residualised score). Bound, Brown & Mathiowetz (2001, eq. 3.6);
    Fuller (1987, sec. 2.2); Wooldridge (2010, sec. 4.4.2).
    ``lambda`` is pooled over schools: ``1 - mean(se^2) / var(mean)`` when the sampling standard
    errors of the school means are available (the score is linear in ``mean``), else the mean of
    the ``reliability`` column.
    """
    lam, src = np.nan, "unavailable"
    if {"se", "mean"} <= set(data.columns) and data["se"].notna().all() and data["mean"].notna().all():
        v = float(np.var(data["mean"].to_numpy(float), ddof=1))
        if v > 0:
            lam, src = 1.0 - float(np.mean(data["se"].to_numpy(float) ** 2)) / v, "se"
    if not np.isfinite(lam) and "reliability" in data.columns and data["reliability"].notna().any():
        lam, src = float(data["reliability"].mean()), "reliability"
    x = data["score"].to_numpy(float)
    Z = controls_X
    bz = np.linalg.lstsq(Z, x, rcond=None)[0]
    r = x - Z @ bz
    r2 = 1.0 - float(r @ r) / float(((x - x.mean()) ** 2).sum())
    lam_z = (lam - r2) / (1.0 - r2) if np.isfinite(lam) else np.nan
    ok = np.isfinite(lam_z) and lam_z > 0
    b = float(fit.params[fit.names.index("score")])
    return {"reliability": lam, "reliability_source": src, "r2_score_controls": r2,
            "reliability_residualised": lam_z,
            "est_corrected": b / lam_z if ok else np.nan,
            "ci.lower_corrected": ci[0] / lam_z if ok else np.nan,
            "ci.upper_corrected": ci[1] / lam_z if ok else np.nan}


def link(scores: pd.DataFrame, outcomes: pd.DataFrame, *, outcome: str = "chronic_absence",
         construct: str = "overall", form: str = "teacher",
         controls: Sequence[str] = DEFAULT_CONTROLS, cluster: str = "district_id",
         weights: str | None = None, change: bool = False, se_type: str = "CR2",
         rates_in: str = "proportion", level: float = 0.95) -> LinkResult:
    """School-level regression of an outcome on a school score, cluster-robust by district.

    Parameters
    ----------
    scores : DataFrame
        Long school scores (`instrument.scores.school_scores`): ``school_id district_id form
        construct score suppressed`` (and ``mean se reliability band n`` when available).
    outcomes : DataFrame
        One row per school: ``school_id district_id`` plus outcome, prior-year and control columns.
    outcome : {"chronic_absence", "attendance", "ela_proficiency", "math_proficiency"}
        Rates are proportions in [0, 1] (declare percentages with ``rates_in="percent"``).
        Chronic absence is the share of students missing >= 10% of enrolled days
        (`instrument.rules.CHRONIC_ABSENCE`).
    construct : str
        A construct id or ``"overall"``.
    form : {"teacher", "family"}
    controls : sequence of str
        Columns of ``outcomes``; ``"<outcome>"`` inside a name is replaced by ``outcome``. Text
        columns are dummy-coded (first sorted level as reference).
    cluster : str
        Column of ``outcomes`` defining clusters (districts).
    weights : str, optional
        Column of ``outcomes`` used as WLS weights (e.g. ``"enrollment"``); must be > 0.
    change : bool
        Model ``outcome - outcome_prior`` instead of ``outcome``.
    se_type : {"CR2", "CR1"}
        CR2 with Satterthwaite df (default; Pustejovsky & Tipton, 2018) or CR1 (Stata) with
        ``J - 1`` df.
    rates_in : {"proportion", "percent"}
    level : float
        Confidence level of intervals.

    Returns
    -------
    LinkResult

    Notes
    -----
    The P10->P90 contrast of a predictor ``x`` with coefficient ``b`` is ``b (x90 - x10)``
    (percentiles of the analysis sample, linear interpolation = R ``quantile(type = 7)``), with
    interval ``contrast +- t(df, .975) |x90 - x10| SE(b)`` using the cluster-robust SE and the
    coefficient's df. Percentage points are ``100 x`` and students per 1,000 are ``1000 x`` the
    contrast in proportions. Standardised effects: ``b_per_sd = b SD(x)``,
    ``beta_std = b SD(x) / SD(y)`` (unweighted sample SDs). See `cr2_vcov`, `satterthwaite_df` and
    `_disattenuate` for the formulas.

    Examples
    --------
    >>> scores, outcomes = simulate_link_data(120, 12, beta=-0.001, seed=1)
    >>> res = link(scores, outcomes, outcome="chronic_absence")  # doctest: +SKIP
    >>> # In R: coef_test(lm(...), vcov = "CR2", cluster = d$district_id, test = "Satterthwaite")
    """
    _choice("outcome", outcome, OUTCOMES)
    _choice("form", form, FORMS)
    _choice("se_type", se_type, SE_TYPES)
    _choice("change", change, (True, False))
    _choice("rates_in", rates_in, RATES_IN)
    if not (isinstance(level, float) and 0 < level < 1):
        raise ValueError(f"level= must be a float in (0, 1); got {level!r}.")
    if isinstance(controls, str):
        raise ValueError(f"controls= must be a sequence of column names; got the string {controls!r}.")
    ctrl = _resolve_controls(controls, outcome)
    needed = [outcome, *ctrl, cluster]
    if change:
        needed.append(f"{outcome}_prior")
    if weights is not None:
        if not isinstance(weights, str):
            raise ValueError(f"weights= must be None or a column name of outcomes; got {weights!r}.")
        needed.append(weights)
    needed = list(dict.fromkeys(needed))
    s = _assemble(scores, outcomes, form=form, construct=construct, needed=needed, rates_in=rates_in)
    data = s.data
    notes: list[str] = []
    if weights is not None:
        w = pd.to_numeric(data[weights], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            raise ValueError(f"weights column {weights!r} must be positive numbers; school_id(s) "
                             f"{_ids(data.loc[bad, 'school_id'])} are not.")
    else:
        w = None
    y = data[outcome].to_numpy(float)
    if change:
        y = y - data[f"{outcome}_prior"].to_numpy(float)
    X, names = design_matrix(data, ["score", *ctrl])
    if len(data) <= X.shape[1] + 1:
        raise ValueError(f"only {len(data)} schools remain for {X.shape[1]} coefficients "
                         f"(sample accounting: {s.accounting}).")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"the model matrix is rank deficient (terms {names}); drop a control "
                         "that is constant or collinear in the analysis sample.")
    clus = data[cluster].astype(str).to_numpy()
    J = len(np.unique(clus))
    if J < 2:
        raise ValueError(f"cluster-robust SEs need at least 2 clusters in {cluster!r}; got {J}.")
    fit = cluster_fit(y, X, clus, names=names, weights=w, se_type=se_type)
    if se_type == "CR1" and not FEW_CLUSTERS_CR1.passes(J):
        notes.append(f"Only {J} clusters: CR1 standard errors may be too small "
                     f"({FEW_CLUSTERS_CR1.describe()}).")
    coefs = _coef_table(fit, level)
    eff = _effects_table(fit, data, y, ["score", "poverty"], level)
    bands = _bands_table(fit, data, level)
    srow = coefs.set_index("term").loc["score"]
    dis = _disattenuate(fit, data, X[:, [i for i, n in enumerate(names) if n != "score"]],
                        (float(srow["ci.lower"]), float(srow["ci.upper"])))
    if not (np.isfinite(dis["reliability_residualised"]) and dis["reliability_residualised"] > 0):
        notes.append("No reliability correction: the reliability of the residualised score is "
                     "unavailable or not positive.")
    vcov = pd.DataFrame(fit.vcov, columns=list(names))
    vcov.insert(0, "term", list(names))
    opts = {"outcome": outcome, "construct": construct, "form": form, "controls": list(ctrl),
            "cluster": cluster, "weights": weights, "change": change, "se_type": se_type,
            "rates_in": rates_in, "level": level}
    return LinkResult(outcome=outcome, construct=construct, form=form, change=bool(change),
                      se_type=se_type, controls=tuple(ctrl), weights=weights, coefficients=coefs,
                      vcov=vcov, effects=eff, bands=bands, disattenuation=dis, sample=s.accounting,
                      nobs=fit.nobs, n_clusters=fit.n_clusters, r_squared=fit.r_squared,
                      notes=tuple(notes),
                      meta=Meta(options=opts, data_hash=hash_frame(data[["school_id", "score", *needed]])))


def sensitivity(scores: pd.DataFrame, outcomes: pd.DataFrame, *, outcome: str = "chronic_absence",
                forms: Sequence[str] | None = None, constructs: Sequence[str] | None = None,
                controls: Sequence[str] = DEFAULT_CONTROLS, **kw: Any) -> pd.DataFrame:
    """The score's coefficient across forms, constructs, and with and without controls.

    Parameters
    ----------
    forms, constructs : sequence of str, optional
        Default: every form / construct present in ``scores`` (``"overall"`` first).
    controls : sequence of str
        The "with controls" set; the "without" row uses no controls.
    **kw
        Passed to `link` (``cluster``, ``weights``, ``change``, ``se_type``, ``rates_in``, ``level``).

    Returns
    -------
    DataFrame
        One row per form x construct x controls: ``form construct controls nobs est se df pvalue
        ci.lower ci.upper b_per_sd beta_std contrast_pp ci.lower_pp ci.upper_pp reliability
        reliability_residualised est_corrected``.
    """
    _require(scores, SCORE_COLUMNS, "scores")
    forms = list(forms) if forms is not None else [f for f in FORMS if f in set(scores["form"])]
    if constructs is None:
        cs = sorted(set(scores["construct"].astype(str)) - {"overall"})
        constructs = (["overall"] if "overall" in set(scores["construct"]) else []) + cs
    rows = []
    for f in forms:
        for c in constructs:
            for label, ctrl in (("yes", tuple(controls)), ("none", ())):
                r = link(scores, outcomes, outcome=outcome, form=f, construct=c, controls=ctrl, **kw)
                sc, e = r.score, r.effects.set_index("predictor").loc["score"]
                rows.append({"form": f, "construct": c, "controls": label, "nobs": r.nobs,
                             "est": sc["est"], "se": sc["se"], "df": sc["df"],
                             "pvalue": sc["pvalue"], "ci.lower": sc["ci.lower"],
                             "ci.upper": sc["ci.upper"], "b_per_sd": e["b_per_sd"],
                             "beta_std": e["beta_std"], "contrast_pp": e["contrast_pp"],
                             "ci.lower_pp": e["ci.lower_pp"], "ci.upper_pp": e["ci.upper_pp"],
                             "reliability": r.disattenuation["reliability"],
                             "reliability_residualised": r.disattenuation["reliability_residualised"],
                             "est_corrected": r.disattenuation["est_corrected"]})
    return pd.DataFrame(rows)
