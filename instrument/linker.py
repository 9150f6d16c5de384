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

import inspect
import math
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
    "simulate_link_data", "simulate_bright_spot_data", "design_matrix", "cr2_vcov",
    "satterthwaite_df", "cluster_fit",
]

OUTCOMES = ("chronic_absence", "attendance", "ela_proficiency", "math_proficiency")
SE_TYPES = ("CR2", "CR1")
SIM_FORMS = ("teacher", "family")   # the forms `simulate_link_data` makes
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
        How rates are stored. ``"percent"`` values must lie in [0, 100] and are divided by 100;
        a checked column whose values are all <= 1 is then an error (mixed scales).

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
    looks_prop: list[str] = []
    for c in cols:
        raw = out[c]
        v = pd.to_numeric(raw, errors="coerce")
        x = v.to_numpy(float, na_value=np.nan)
        nonnum = np.isnan(x) & ~pd.isna(raw.to_numpy())
        if nonnum.any():
            raise ValueError(f"outcomes column {c!r} has non-numeric values at school_id(s) "
                             f"{_ids(out.loc[nonnum, 'school_id'])}.")
        bad = (x < 0) | (x > hi)            # False where missing
        if bad.any():
            hint = (" If rates are stored as percentages, pass rates_in='percent'."
                    if rates_in == "proportion" and (x[bad] <= 100).all() else "")
            raise ValueError(f"outcomes column {c!r} must be a {rates_in} in [0, {hi:g}]; "
                             f"school_id(s) {_ids(out.loc[bad, 'school_id'])} have "
                             f"{_ids(v[bad].tolist())}.{hint}")
        if rates_in == "percent":
            out[c] = v / 100.0
            top = np.nanmax(x) if not np.isnan(x).all() else np.nan
            if 0 < top <= 1:
                looks_prop.append(c)
        elif v.dtype != raw.dtype:          # numbers read as text
            out[c] = v
    if looks_prop:
        raise ValueError(f"rates_in='percent' was declared but outcomes column(s) {looks_prop} "
                         "are all <= 1, as proportions would be; store every rate on one scale "
                         "(convert those columns to percentages, or pass rates_in='proportion' "
                         "with all rates as proportions).")
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
    from statsmodels.regression.linear_model import OLS, WLS

    _, codes = np.unique(cluster, return_inverse=True)
    J = int(codes.max() + 1)
    model = OLS(y, X) if weights is None else WLS(y, X, weights=weights)
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
    supp = _as_bool(sel["suppressed"], "scores column 'suppressed'", sel["school_id"])
    suppressed_ids = sorted(sel.loc[supp, "school_id"].astype(str))
    extra = [c for c in ("mean", "se", "reliability", "band", "n") if c in sel.columns]
    shown = sel.loc[~supp, ["school_id", "score", *extra]].copy()
    shown["school_id"] = shown["school_id"].astype(str)
    out["school_id"] = out["school_id"].astype(str)
    # every score row is counted once: suppressed, shown without outcomes, missing values, or used
    sid, oid = set(shown["school_id"]), set(out["school_id"])
    only_outcomes = sorted(oid - set(sel["school_id"].astype(str)))
    only_scores = sorted(sid - oid)
    # score-side columns keep their names if outcomes happens to carry the same ones
    merged = shown.merge(out, on="school_id", how="inner", suffixes=("", "_outcomes"))
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


_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
              "t": True, "f": False, "1.0": True, "0.0": False}


def _as_bool(s: pd.Series, what: str, ids: pd.Series) -> pd.Series:
    """Booleans from a bool, 0/1 or text column (e.g. read from CSV); missing means False."""
    if pd.api.types.is_bool_dtype(s):
        return s.fillna(False).astype(bool)
    txt = s.astype("string").str.strip().str.lower()
    out = txt.map(_BOOL_TEXT)
    bad = txt.notna() & out.isna()
    if bad.any():
        raise ValueError(f"{what} must be true/false; school_id(s) {_ids(ids[bad])} have "
                         f"{_ids(s[bad].unique())}.")
    return out.fillna(False).astype(bool)


def _resolve_controls(controls: Sequence[str], outcome: str) -> tuple[str, ...]:
    return tuple(c.replace("<outcome>", outcome) for c in controls)


# ------------------------------------------------------------------------------------------------
# LinkResult
# ------------------------------------------------------------------------------------------------
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

    def headline(self) -> str:
        """One plain-language sentence for a policy brief (P10->P90 of the score, and of poverty).

        E.g. "Schools at the 90th percentile of the teacher overall score had chronic absence
        6.2 percentage points lower (95% CI 3.1 to 9.3; 62 fewer students per 1,000) than schools
        at the 10th percentile, with the same poverty, prior chronic absence, grade band and
        enrollment. The same contrast for poverty: 5.7 points higher."
        """
        eff = self.effects.set_index("predictor")
        what = self.outcome.replace("_", " ")
        what = f"a change in {what} from the prior year that was" if self.change else what
        s = eff.loc["score"]
        word = "lower" if s["contrast"] < 0 else "higher"
        fewer = "fewer" if s["contrast"] < 0 else "more"
        lo, hi = sorted([abs(s["ci.lower_pp"]), abs(s["ci.upper_pp"])])
        same_sign = np.sign(s["ci.lower_pp"]) == np.sign(s["ci.upper_pp"])
        ci = (f"{lo:.1f} to {hi:.1f}" if same_sign
              else f"{s['ci.lower_pp']:.1f} to {s['ci.upper_pp']:.1f}")
        def _plain(c: str) -> str:
            c = f"prior-year {c[:-len('_prior')]}" if c.endswith("_prior") else c
            return c.replace("_", " ")
        ctrl = ", ".join(_plain(c) for c in self.controls)
        ctrl = f"holding {ctrl} fixed" if ctrl else "without adjustment"
        text = (f"Schools at the 90th percentile of the {self.form} {self.construct} score had "
                f"{what} {abs(s['contrast_pp']):.1f} percentage points {word} "
                f"(95% CI {ci}; {abs(s['per_1000']):.0f} {fewer} students per 1,000) than "
                f"schools at the 10th percentile, {ctrl}.")
        if "poverty" in eff.index:
            p = eff.loc["poverty"]
            text += (f" The same 10th-to-90th percentile contrast for poverty: "
                     f"{abs(p['contrast_pp']):.1f} points {'lower' if p['contrast'] < 0 else 'higher'}.")
        return text

    def summary(self) -> Table:
        dep = f"change in {self.outcome}" if self.change else self.outcome
        rows = []
        for r in self.effects.to_dict("records"):
            rows.append({"predictor": r["predictor"], "b per SD (pts)": 100 * r["b_per_sd"],
                         "beta (std)": r["beta_std"],
                         "P10": r["p10"], "P90": r["p90"], "P10->P90 (pts)": r["contrast_pp"],
                         "95% CI": f"[{r['ci.lower_pp']:.1f}, {r['ci.upper_pp']:.1f}]",
                         "per 1,000 students": r["per_1000"], "df": r["df"]})
        frame = pd.DataFrame(rows)
        s = self.score
        ptxt = "p < .001" if s["pvalue"] < 0.001 else f"p = {s['pvalue']:.3f}"
        notes = [f"{self.form} form, construct {self.construct}; {dep} regressed on the school "
                 f"score with controls {', '.join(self.controls) or 'none'}; "
                 f"{'WLS weights ' + self.weights if self.weights else 'OLS'}; {self.se_type} "
                 f"standard errors clustered by district ({self.n_clusters} districts, "
                 f"{self.nobs} schools).",
                 f"score: b = {s['est']:.5f}, SE = {s['se']:.5f}, t({s['df']:.1f}) = {s['t']:.2f}, "
                 f"{ptxt}; corrected for unreliability (reliability of residualised "
                 f"score {self.disattenuation.get('reliability_residualised', float('nan')):.3f}): "
                 f"b = {self.disattenuation.get('est_corrected', float('nan')):.5f}.",
                 f"Excluded: {self.sample['n_suppressed']} suppressed, "
                 f"{self.sample['n_only_in_scores']} without outcomes, "
                 f"{self.sample['n_only_in_outcomes']} without scores, "
                 f"{self.sample['n_missing_values']} with missing values.", *self.notes]
        if len(self.bands):
            notes.append("Predicted " + dep.replace("_", " ") + " by reporting band (score at the "
                         "band's median, controls at their means): " + "; ".join(
                             f"{b['band']} {b['predicted_pp']:.1f}% "
                             f"[{100 * b['ci.lower']:.1f}, {100 * b['ci.upper']:.1f}]"
                             for b in self.bands.to_dict("records")) + ".")
        return Table(f"Predictive validity: {dep}", frame, notes, 2)


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


def _form_in_scores(form: str, scores: pd.DataFrame) -> None:
    """``form`` must be one of the forms the scores hold (the forms are the bank's)."""
    have = sorted(scores["form"].astype(str).unique()) if "form" in scores.columns else []
    if form not in have:
        raise ValueError(f"form= must be one of the forms in the scores {have}; got {form!r}.")


def default_construct(scores: pd.DataFrame, construct: str | None) -> str:
    """``construct``, or when None the ``"overall"`` score of ``scores``: present only where the
    item bank defines an overall score (`instrument.scores.overall_columns`). A bank without one
    has no default, since any single construct would be an arbitrary choice: the error lists
    the constructs to choose from."""
    if construct is not None:
        return construct
    have = list(dict.fromkeys(scores["construct"].astype(str)))
    if "overall" in have:
        return "overall"
    raise ValueError("the scores have no overall score (the item bank defines none); expected a "
                     f"construct named with construct= (--construct): one of {', '.join(have)}.")


def link(scores: pd.DataFrame, outcomes: pd.DataFrame, *, outcome: str = "chronic_absence",
         construct: str | None = None, form: str = "teacher",
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
    construct : str, optional
        A construct id or ``"overall"``; None: ``"overall"`` when ``scores`` have it, otherwise
        an error listing the constructs (`default_construct`).
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
    ``beta_std = b SD(x) / SD(y)`` (unweighted sample SDs). Reporting bands: the predicted outcome
    at the median score of the schools in each band, every other model-matrix column at its
    (unweighted) sample mean, with the CI of that linear combination (its own Satterthwaite df).

    Reliability correction (errors in one regressor, classical measurement error independent of
    the controls ``Z`` and the outcome): ``plim b = beta lambda_z`` with
    ``lambda_z = (lambda - R2) / (1 - R2)``, ``R2`` the R-squared of the score on ``Z`` and
    ``lambda`` the pooled reliability of the school means, ``1 - mean(se^2) / var(mean)`` (or the
    mean of the ``reliability`` column when ``se`` is missing); ``est_corrected = b / lambda_z``
    and its interval is the CI of ``b`` divided by ``lambda_z`` (``lambda`` treated as known).
    Fuller (1987, sec. 2.2); Bound, Brown & Mathiowetz (2001, sec. 3.1); Wooldridge (2010),
    Econometric Analysis of Cross Section and Panel Data, 2nd ed., sec. 4.4.2.

    See `cr2_vcov` and `satterthwaite_df` for the covariance and df formulas.

    Examples
    --------
    >>> scores, outcomes = simulate_link_data(120, 12, beta=-0.001, seed=1)
    >>> res = link(scores, outcomes, outcome="chronic_absence")  # doctest: +SKIP
    >>> # In R: coef_test(lm(...), vcov = "CR2", cluster = d$district_id, test = "Satterthwaite")
    """
    m = _fit_link(scores, outcomes, outcome=outcome, construct=construct, form=form,
                  controls=controls, cluster=cluster, weights=weights, change=change,
                  se_type=se_type, rates_in=rates_in, level=level)
    fit, data = m.fit, m.sample.data
    eff = _effects_table(fit, data, m.y, ["score", "poverty"], level)
    bands = _bands_table(fit, data, level)
    vcov = pd.DataFrame(fit.vcov, columns=list(fit.names))
    vcov.insert(0, "term", list(fit.names))
    opts = {"outcome": outcome, "construct": m.construct, "form": form, "controls": list(m.ctrl),
            "cluster": cluster, "weights": weights, "change": change, "se_type": se_type,
            "rates_in": rates_in, "level": level}
    return LinkResult(outcome=outcome, construct=m.construct, form=form, change=bool(change),
                      se_type=se_type, controls=m.ctrl, weights=weights,
                      coefficients=m.coefficients,
                      vcov=vcov, effects=eff, bands=bands, disattenuation=m.disattenuation,
                      sample=m.sample.accounting, nobs=fit.nobs, n_clusters=fit.n_clusters,
                      r_squared=fit.r_squared, notes=m.notes,
                      meta=Meta(options=opts,
                                data_hash=hash_frame(data[["school_id", "score", *m.needed]])))


#: `link`'s options that `sensitivity` passes on.
_LINK_OPTIONS = ("cluster", "weights", "change", "se_type", "rates_in", "level")


@dataclass(frozen=True)
class _LinkFit:
    """What `link` and `sensitivity` share: the analysis sample, the cluster-robust fit, its
    coefficient table and the reliability correction of the score's coefficient."""
    sample: _Sample
    fit: ClusterFit
    y: np.ndarray
    construct: str
    ctrl: tuple[str, ...]
    needed: list[str]
    coefficients: pd.DataFrame
    disattenuation: dict
    notes: tuple[str, ...]


def _fit_link(scores: pd.DataFrame, outcomes: pd.DataFrame, *, outcome: str,
              construct: str | None, form: str, controls: Sequence[str], cluster: str,
              weights: str | None, change: bool, se_type: str, rates_in: str,
              level: float) -> _LinkFit:
    """Check `link`'s arguments, assemble the sample and fit the regression (see `link`)."""
    _choice("outcome", outcome, OUTCOMES)
    _form_in_scores(form, scores)
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
    construct = default_construct(scores, construct)
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
    if len(y) > 1 and np.ptp(y) == 0:
        raise ValueError(f"outcome {outcome!r}{' change' if change else ''} is constant "
                         f"({y[0]:g}) across the {len(y)} schools analysed; expected an outcome "
                         "that varies between schools (a constant has nothing to predict).")
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
    srow = coefs.set_index("term").loc["score"]
    dis = _disattenuate(fit, data, X[:, [i for i, n in enumerate(names) if n != "score"]],
                        (float(srow["ci.lower"]), float(srow["ci.upper"])))
    if not (np.isfinite(dis["reliability_residualised"]) and dis["reliability_residualised"] > 0):
        notes.append("No reliability correction: the reliability of the residualised score is "
                     "unavailable or not positive.")
    return _LinkFit(sample=s, fit=fit, y=y, construct=construct, ctrl=tuple(ctrl),
                    needed=needed, coefficients=coefs, disattenuation=dis, notes=tuple(notes))


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
    forms = list(forms) if forms is not None else list(dict.fromkeys(scores["form"].astype(str)))
    if constructs is None:
        cs = sorted(set(scores["construct"].astype(str)) - {"overall"})
        constructs = (["overall"] if "overall" in set(scores["construct"]) else []) + cs
    unknown = sorted(set(kw) - set(_LINK_OPTIONS))
    if unknown:
        raise TypeError(f"sensitivity() got unexpected keyword argument(s) {unknown}; "
                        f"expected some of {list(_LINK_OPTIONS)}.")
    defaults = inspect.signature(link).parameters
    opts = {k: kw.get(k, defaults[k].default) for k in _LINK_OPTIONS}
    rows = []
    for f in forms:
        for c in constructs:
            for label, ctrl in (("yes", tuple(controls)), ("none", ())):
                m = _fit_link(scores, outcomes, outcome=outcome, form=f, construct=c,
                              controls=ctrl, **opts)
                sc = m.coefficients.set_index("term").loc["score"]
                e = _effects_table(m.fit, m.sample.data, m.y, ["score"], opts["level"]).iloc[0]
                rows.append({"form": f, "construct": c, "controls": label, "nobs": m.fit.nobs,
                             "est": sc["est"], "se": sc["se"], "df": sc["df"],
                             "pvalue": sc["pvalue"], "ci.lower": sc["ci.lower"],
                             "ci.upper": sc["ci.upper"], "b_per_sd": e["b_per_sd"],
                             "beta_std": e["beta_std"], "contrast_pp": e["contrast_pp"],
                             "ci.lower_pp": e["ci.lower_pp"], "ci.upper_pp": e["ci.upper_pp"],
                             "reliability": m.disattenuation["reliability"],
                             "reliability_residualised":
                                 m.disattenuation["reliability_residualised"],
                             "est_corrected": m.disattenuation["est_corrected"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------
# Bright Spots (Stage 2's positive-deviance finder)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrightSpotResult:
    """Schools whose engagement score beats the score predicted from their characteristics.

    Attributes
    ----------
    schools : DataFrame
        One row per school x year: ``school_id district_id year score expected residual rank
        rank_share flagged bright_spot`` (``flagged``: in the top share that year;
        ``bright_spot``: flagged in every year considered).
    partners : DataFrame
        ``bright_spot_id partner_id district_id rank distance bright_spot_score partner_score``:
        up to ``n_partners`` comparison schools per Bright Spot (same district, same
        ``match_exact`` values, not a Bright Spot, score at or below the median, nearest by
        Mahalanobis distance on the numeric predictors).
    model : DataFrame
        ``year term est`` of the OLS prediction of the score from the predictors, per year.
    r_squared : dict
        Year -> R-squared of that model.
    years : tuple
        The years considered (``(None,)`` when scores have no ``year`` column).
    top_share : float
    rule : Rule
    form, construct : str
    predictors, match_exact : tuple of str
    sample : dict
        Counts and ids of schools left out (suppressed, unmatched, missing predictors, not present
        in every year).
    notes : tuple of str
    meta : Meta
    """

    schools: pd.DataFrame
    partners: pd.DataFrame
    model: pd.DataFrame
    r_squared: Mapping[str, float]
    years: tuple
    top_share: float
    rule: Rule
    form: str
    construct: str
    predictors: tuple[str, ...]
    match_exact: tuple[str, ...]
    sample: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    meta: Meta = field(default_factory=Meta)

    @property
    def bright_spot_ids(self) -> list[str]:
        """Ids of the Bright Spot schools, sorted."""
        return sorted(self.schools.loc[self.schools["bright_spot"], "school_id"].unique())

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("meta", "rule")}
        d["rule"] = self.rule.to_dict()
        d["meta"] = self.meta.to_dict()
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BrightSpotResult":
        kw = dict(from_jsonable(dict(d)))
        kw["meta"] = Meta.from_dict(d.get("meta", {}))
        kw["rule"] = Rule(**d["rule"])
        for k in ("years", "predictors", "match_exact", "notes"):
            kw[k] = tuple(kw.get(k, ()))
        if "schools" in kw and len(kw["schools"]):
            for c in ("flagged", "bright_spot"):
                kw["schools"][c] = kw["schools"][c].astype(bool)
        return cls(**kw)

    def summary(self) -> Table:
        last = self.years[-1]
        s = self.schools
        cur = s[(s["bright_spot"]) & ((s["year"] == last) if last is not None else True)]
        rows = []
        for r in cur.sort_values("residual", ascending=False).itertuples(index=False):
            p = self.partners[self.partners["bright_spot_id"] == r.school_id]
            rows.append({"school": r.school_id, "district": r.district_id, "score": r.score,
                         "expected": r.expected, "residual": r.residual,
                         "partners": ", ".join(p.sort_values("rank")["partner_id"].astype(str))})
        yrs = ", ".join(str(y) for y in self.years if y is not None) or "one cross-section"
        notes = [f"Score ({self.form} form, {self.construct}) predicted from "
                 f"{', '.join(self.predictors)} by OLS; Bright Spots are in the top "
                 f"{100 * self.top_share:.0f}% of actual - expected in every year ({yrs}); "
                 f"{self.rule.source}", *self.notes]
        return Table("Bright Spot schools", pd.DataFrame(rows), notes, 1)


def bright_spots(scores: pd.DataFrame, outcomes: pd.DataFrame, *,
                 predictors: Sequence[str] = ("poverty", "el_share", "grade_band", "enrollment",
                                              "locale"),
                 top_share: float = BRIGHT_SPOT_TOP_SHARE.threshold,
                 years: Sequence[Any] | None = None, construct: str | None = None,
                 form: str = "teacher", n_partners: int = 3,
                 match_exact: Sequence[str] = ("grade_band",),
                 rates_in: str = "proportion") -> BrightSpotResult:
    """Find Bright Spot schools (engagement above what their demographics predict) and partners.

    Parameters
    ----------
    scores : DataFrame
        Long school scores; an optional ``year`` column holds several years.
    outcomes : DataFrame
        School characteristics (``school_id district_id`` + ``predictors``); with a ``year``
        column it is matched by school and year, otherwise the same row serves every year.
    predictors : sequence of str
        Characteristics the expected score is predicted from (text columns dummy-coded).
    top_share : float
        Share of schools flagged each year (0.20 = top 20%, `instrument.rules.BRIGHT_SPOT_TOP_SHARE`).
    years : sequence, optional
        Years that must all be flagged; default the last two years present (or the only one).
    construct, form : str
        Which score (construct None: ``"overall"`` when ``scores`` have it, `default_construct`).
    n_partners : int
        Matched partner schools proposed per Bright Spot.
    match_exact : sequence of str
        Columns a partner must share with the Bright Spot (besides the district).
    rates_in : {"proportion", "percent"}

    Returns
    -------
    BrightSpotResult

    Notes
    -----
    Each year: ``score = X b + r`` by OLS on the predictors; ``expected = X b``,
    ``residual = score - expected``; ``rank`` 1 is the largest residual and a school is flagged
    when ``rank / n <= top_share``. A Bright Spot is flagged in every year considered (so it
    must be present in all of them). Partners come from the last year: same district and
    ``match_exact`` values, not Bright Spots, ``score <= median(score)`` of all schools that year,
    ordered by the Mahalanobis distance ``sqrt((z_b - z_p)' S^+ (z_b - z_p))`` on the numeric
    predictors, ``S`` their sample covariance over all schools that year (pseudo-inverse).
    """
    _form_in_scores(form, scores)
    _choice("rates_in", rates_in, RATES_IN)
    if not (isinstance(top_share, (int, float)) and 0 < top_share < 1):
        raise ValueError(f"top_share= must be a number in (0, 1); got {top_share!r}.")
    if not (isinstance(n_partners, int) and n_partners >= 0):
        raise ValueError(f"n_partners= must be a non-negative integer; got {n_partners!r}.")
    for name, val in (("predictors", predictors), ("match_exact", match_exact)):
        if isinstance(val, str):
            raise ValueError(f"{name}= must be a sequence of column names; got the string {val!r}.")
    predictors, match_exact = tuple(predictors), tuple(match_exact)
    _require(scores, SCORE_COLUMNS, "scores")
    _require(outcomes, [*OUTCOME_COLUMNS, *predictors, *match_exact], "outcomes")
    construct = default_construct(scores, construct)
    sel = scores[(scores["form"] == form) & (scores["construct"] == construct)].copy()
    if sel.empty:
        raise ValueError(f"scores has no rows for form={form!r}, construct={construct!r}.")
    has_year = "year" in sel.columns
    if not has_year:
        sel["year"] = None
    avail = sorted(sel["year"].dropna().unique().tolist()) if has_year else [None]
    if years is None:
        use = tuple(avail[-2:])
    else:
        use = tuple(years)
        bad = [y for y in use if y not in avail]
        if bad or not use:
            raise ValueError(f"years= {list(use)} not all in the scores' years {avail}.")
    out = check_rates(outcomes, rates_in=rates_in)
    out["school_id"] = out["school_id"].astype(str)
    sel["school_id"] = sel["school_id"].astype(str)
    o_year = has_year and "year" in out.columns
    key = ["school_id", "year"] if o_year else ["school_id"]
    if out.duplicated(key).any():
        raise ValueError(f"outcomes has several rows per {' x '.join(key)}: school_id(s) "
                         f"{_ids(out.loc[out.duplicated(key), 'school_id'].unique())}.")
    if sel.duplicated(["school_id", "year"]).any():
        dup = sel.loc[sel.duplicated(["school_id", "year"]), "school_id"].unique()
        raise ValueError("scores has several rows per school (and year) for this form/construct: "
                         f"school_id(s) {_ids(dup)}.")
    numeric = [c for c in predictors if not _is_categorical(out[c])]
    acc: dict[str, Any] = {"suppressed_ids": {}, "only_in_scores": {}, "missing_values": {}}
    frames, model_rows, r2 = [], [], {}
    for yr in use:
        sy = sel[sel["year"] == yr] if has_year else sel
        supp = _as_bool(sy["suppressed"], "scores column 'suppressed'", sy["school_id"])
        acc["suppressed_ids"][str(yr)] = sorted(sy.loc[supp, "school_id"])
        sy = sy.loc[~supp, ["school_id", "score", "year"]]
        oy = out[out["year"] == yr].drop(columns="year") if o_year else out
        acc["only_in_scores"][str(yr)] = sorted(set(sy["school_id"]) - set(oy["school_id"]))
        m = sy.merge(oy, on="school_id", how="inner")
        cols = list(dict.fromkeys([*predictors, *match_exact, "district_id"]))
        miss = m[["score", *cols]].isna().any(axis=1)
        acc["missing_values"][str(yr)] = sorted(m.loc[miss, "school_id"])
        m = m.loc[~miss].reset_index(drop=True)
        X, names = design_matrix(m, predictors)
        if len(m) <= X.shape[1]:
            raise ValueError(f"year {yr}: only {len(m)} schools for {X.shape[1]} coefficients.")
        b = np.linalg.lstsq(X, m["score"].to_numpy(float), rcond=None)[0]
        m["expected"] = X @ b
        m["residual"] = m["score"] - m["expected"]
        m["rank"] = m["residual"].rank(ascending=False, method="first").astype(int)
        m["rank_share"] = m["rank"] / len(m)
        m["flagged"] = [bool(v <= top_share) for v in m["rank_share"]]
        y_all = m["score"].to_numpy(float)
        r2[str(yr)] = float(1 - np.sum(m["residual"] ** 2) / np.sum((y_all - y_all.mean()) ** 2))
        model_rows += [{"year": yr, "term": t, "est": float(e)} for t, e in zip(names, b)]
        frames.append(m)
    present = set.intersection(*[set(f["school_id"]) for f in frames])
    flagged_all = set.intersection(*[set(f.loc[f["flagged"], "school_id"]) for f in frames])
    acc["not_in_every_year"] = sorted(set.union(*[set(f["school_id"]) for f in frames]) - present)
    keep = ["school_id", "district_id", "year", "score", "expected", "residual", "rank",
            "rank_share", "flagged"]
    schools = pd.concat([f[keep] for f in frames], ignore_index=True)
    schools["bright_spot"] = schools["school_id"].isin(flagged_all)
    # partners, from the last year
    last = frames[-1]
    med = float(np.median(last["score"]))
    Z = last[numeric].to_numpy(float)
    Sinv = np.linalg.pinv(np.atleast_2d(np.cov(Z, rowvar=False))) if numeric else np.zeros((0, 0))
    pool = last[~last["school_id"].isin(flagged_all) & (last["score"] <= med)]
    prow, no_partner = [], []
    for r in last[last["school_id"].isin(flagged_all)].itertuples(index=False):
        rd = r._asdict()
        cand = pool[pool["district_id"] == rd["district_id"]]
        for c in match_exact:
            cand = cand[cand[c] == rd[c]]
        if cand.empty or n_partners == 0:
            no_partner.append(rd["school_id"])
            continue
        d = cand[numeric].to_numpy(float) - np.array([rd[c] for c in numeric], float)
        dist = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, Sinv, d), 0.0))
        order = np.argsort(dist, kind="stable")[:n_partners]
        for k, i in enumerate(order, start=1):
            prow.append({"bright_spot_id": rd["school_id"], "partner_id": cand["school_id"].iloc[i],
                         "district_id": rd["district_id"], "rank": k, "distance": float(dist[i]),
                         "bright_spot_score": float(rd["score"]),
                         "partner_score": float(cand["score"].iloc[i])})
    partners = pd.DataFrame(prow, columns=["bright_spot_id", "partner_id", "district_id", "rank",
                                           "distance", "bright_spot_score", "partner_score"])
    notes = []
    if no_partner:
        notes.append(f"{len(no_partner)} Bright Spot(s) have no partner school in their district "
                     f"meeting the criteria: {_ids(no_partner)}.")
    if len(use) < 2:
        notes.append("Only one year was available: Bright Spots are flagged on a single year, not "
                     "two in a row.")
    acc["n_bright_spots"] = len(flagged_all)
    opts = {"predictors": list(predictors), "top_share": top_share, "years": list(use),
            "construct": construct, "form": form, "n_partners": n_partners,
            "match_exact": list(match_exact), "rates_in": rates_in}
    return BrightSpotResult(schools=schools, partners=partners, model=pd.DataFrame(model_rows),
                            r_squared=r2, years=use, top_share=float(top_share),
                            rule=BRIGHT_SPOT_TOP_SHARE, form=form, construct=construct,
                            predictors=predictors, match_exact=match_exact, sample=acc,
                            notes=tuple(notes),
                            meta=Meta(options=opts, data_hash=hash_frame(schools)))


# ------------------------------------------------------------------------------------------------
# simulation helpers (documented data generators for tests, benchmarks and examples)
# ------------------------------------------------------------------------------------------------
SIM_CONSTRUCTS = ("mindsets", "leadership", "communication", "relationships", "language_culture")
SIM_BANDS = ((20.0, "very weak"), (40.0, "weak"), (60.0, "moderate"), (80.0, "strong"),
             (math.inf, "very strong"))
_SIM_MIN_N = 5  # simulated suppression threshold (the scores stage owns the real rule)


def _sim_schools(rng: np.random.Generator, n_schools: int, n_districts: int) -> pd.DataFrame:
    if n_districts < 2 or n_schools < 2 * n_districts:
        raise ValueError("need n_districts >= 2 and n_schools >= 2 * n_districts; got "
                         f"n_schools={n_schools}, n_districts={n_districts}.")
    extra = rng.multinomial(n_schools - 2 * n_districts, rng.dirichlet(np.full(n_districts, 2.0)))
    sizes = 2 + extra
    dist = np.repeat(np.arange(n_districts), sizes)
    d_pov = rng.normal(0, 0.8, n_districts)[dist]
    poverty = 1 / (1 + np.exp(-(d_pov + rng.normal(0, 0.8, n_schools))))
    el = np.clip(0.6 * poverty * rng.beta(2, 5, n_schools) + rng.beta(1, 12, n_schools), 0, 1)
    band = rng.choice(["elementary", "middle", "high"], n_schools, p=[0.5, 0.3, 0.2])
    base = np.select([band == "elementary", band == "middle"], [450, 650], 1100)
    enrollment = np.maximum(60, np.round(base * np.exp(rng.normal(0, 0.4, n_schools)))).astype(int)
    locale = np.array(["city", "suburb", "town", "rural"])[rng.integers(0, 4, n_districts)][dist]
    return pd.DataFrame({"school_id": [f"S{i + 1:04d}" for i in range(n_schools)],
                         "district_id": [f"D{d + 1:03d}" for d in dist], "grade_band": band,
                         "enrollment": enrollment, "poverty": poverty, "el_share": el,
                         "locale": locale, "_dist": dist})


def _sim_score_rows(rng: np.random.Generator, schools: pd.DataFrame, form: str, construct: str,
                    true_score: np.ndarray, reliability: float) -> pd.DataFrame:
    n_sch = len(schools)
    lo, hi = (3, 41) if form == "teacher" else (4, 90)
    n = rng.integers(lo, hi, n_sch)
    var_true = 400.0
    if reliability >= 1:
        err_var = np.zeros(n_sch)
    else:
        c = var_true * (1 - reliability) / reliability / np.mean(1.0 / n)
        err_var = c / n
    raw = true_score + rng.normal(0, 1, n_sch) * np.sqrt(err_var)
    score = np.clip(raw, 1, 99)  # the reporting scale is clipped; the raw mean is not
    supp = n < _SIM_MIN_N
    roster = n + rng.integers(0, 15, n_sch)
    band = [next(name for cut, name in SIM_BANDS if s < cut) for s in score]
    df = pd.DataFrame({"school_id": schools["school_id"], "district_id": schools["district_id"],
                       "form": form, "construct": construct, "n": n, "response_rate": n / roster,
                       "mean": 3.0 + (raw - 50.0) / 40.0, "se": np.sqrt(err_var) / 40.0,
                       "reliability": var_true / (var_true + err_var), "score": score,
                       "band": band, "suppressed": supp,
                       "suppression_reason": np.where(supp, f"fewer than {_SIM_MIN_N} respondents", "")})
    df.loc[supp, ["mean", "se", "score"]] = np.nan
    df["band"] = df["band"].astype(object)
    df.loc[supp, "band"] = None
    return df


def simulate_link_data(n_schools: int = 200, n_districts: int = 20, beta: float = -0.001,
                       seed: int = 0, *, reliability: float = 1.0,
                       forms: Sequence[str] = SIM_FORMS, constructs: Sequence[str] = SIM_CONSTRUCTS
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate school scores and outcomes (DATA_CONTRACT formats) with a known score effect.

    Parameters
    ----------
    n_schools, n_districts : int
        Schools are spread over districts of unequal size (at least 2 each).
    beta : float
        True effect of one point of the teacher-form overall score (1-99 scale) on the current
        chronic-absence rate (a proportion), given the prior rate, poverty and grade band.
    seed : int
        Seed of ``numpy.random.default_rng``.
    reliability : float
        Reliability of the observed school scores (1 = scores measured without error). Each school's
        error variance is inversely proportional to its number of respondents.
    forms, constructs : sequence of str
        Forms and constructs (besides ``"overall"``) to simulate; fewer is faster. The outcomes
        depend only on the teacher overall score, which is always simulated.

    Returns
    -------
    scores : DataFrame
        Long scores for forms teacher and family, constructs `SIM_CONSTRUCTS` and ``"overall"``;
        schools with fewer than 5 respondents are suppressed.
    outcomes : DataFrame
        One row per school with the contract's columns.

    Notes
    -----
    Latent engagement ``z`` (district + school components, lower with poverty, truncated to
    +-2.4 SD so that true scores stay inside 1..99) gives the true score ``50 + 20 z``. Current
    chronic absence is ``0.05 + 0.8 prior + beta (true score - 50) + 0.05 poverty + 0.02 [high]
    + district shock (SD .015) + school error (SD .015 (0.5 + poverty))`` - so with
    ``reliability=1`` the regression of `link` with its default controls is correctly specified
    and its score coefficient estimates ``beta`` exactly. The other outcomes depend on the score
    with fixed effects (ELA +0.0005, math +0.0006 per point; attendance through absence).
    """
    if not 0 < reliability <= 1:
        raise ValueError(f"reliability= must be in (0, 1]; got {reliability!r}.")
    rng = np.random.default_rng(seed)
    sch = _sim_schools(rng, n_schools, n_districts)
    dist = sch["_dist"].to_numpy()
    pov = sch["poverty"].to_numpy()
    z = rng.normal(0, 0.5, n_districts)[dist] + rng.normal(0, 0.8, n_schools) - 0.8 * (pov - 0.5)
    z = np.clip((z - z.mean()) / z.std(), -2.4, 2.4)
    true = 50.0 + 20.0 * z
    rows = []
    for form, rho in (("teacher", 1.0), ("family", 0.6)):
        if form not in forms and form != "teacher":
            continue
        zf = rho * z + math.sqrt(1 - rho ** 2) * rng.normal(0, 1, n_schools)
        rows.append(_sim_score_rows(rng, sch, form, "overall",
                                    true if form == "teacher" else 50 + 20 * np.clip(zf, -2.4, 2.4),
                                    reliability))
        for c in constructs:
            zc = np.clip(0.8 * zf + 0.6 * rng.normal(0, 1, n_schools), -2.4, 2.4)
            rows.append(_sim_score_rows(rng, sch, form, c, 50 + 20 * zc, reliability))
    scores = pd.concat(rows, ignore_index=True)
    high = (sch["grade_band"] == "high").to_numpy(float)
    d_prior = rng.normal(0, 0.02, n_districts)[dist]
    ca_prior = 0.10 + 0.15 * pov + d_prior + rng.normal(0, 0.02, n_schools)
    ca = (0.05 + 0.8 * ca_prior + beta * (true - 50) + 0.05 * pov + 0.02 * high
          + rng.normal(0, 0.015, n_districts)[dist] + rng.normal(0, 1, n_schools) * 0.015 * (0.5 + pov))
    ca_prior, ca = np.clip(ca_prior, 0.001, 0.999), np.clip(ca, 0.001, 0.999)
    att_prior = np.clip(0.96 - 0.25 * (ca_prior - 0.15) + rng.normal(0, 0.005, n_schools), 0, 1)
    att = np.clip(0.96 - 0.25 * (ca - 0.15) + rng.normal(0, 0.005, n_schools), 0, 1)
    out = sch.drop(columns="_dist").copy()
    out["attendance"], out["attendance_prior"] = att, att_prior
    out["chronic_absence"], out["chronic_absence_prior"] = ca, ca_prior
    for subj, eff in (("ela", 0.0005), ("math", 0.0006)):
        prior = np.clip(0.55 - 0.35 * pov + rng.normal(0, 0.05, n_schools), 0.001, 0.999)
        cur = np.clip(0.03 + 0.9 * prior + eff * (true - 50) + rng.normal(0, 0.03, n_schools),
                      0.001, 0.999)
        out[f"{subj}_proficiency"], out[f"{subj}_proficiency_prior"] = cur, prior
    tsub = scores[(scores["form"] == "teacher") & (scores["construct"] == "overall")]
    fsub = scores[(scores["form"] == "family") & (scores["construct"] == "overall")]
    out["roster_teachers"] = np.round(tsub["n"].to_numpy() / tsub["response_rate"].to_numpy()
                                      ).astype(int)
    fam_n = fsub["n"].to_numpy() if len(fsub) else 0
    out["roster_families"] = np.maximum(fam_n, (0.8 * out["enrollment"]).astype(int))
    return scores, out


def simulate_bright_spot_data(n_schools: int = 300, n_districts: int = 30, n_planted: int = 20,
                              seed: int = 0, *, years: Sequence[int] = (2024, 2025),
                              lift: float = 20.0, school_sd: float = 6.0, year_sd: float = 6.0
                              ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Simulate yearly teacher overall scores with planted over-performing schools.

    Each year ``score = 50 - 25 (poverty - .5) - 20 (el_share - .1) + 3 [middle] + 5 [high]
    + u_school (SD school_sd) + e_year (SD year_sd) + lift [planted]`` (clipped to 1..99), so the
    planted schools sit ``lift`` points above what their characteristics predict in every year.

    Returns
    -------
    scores : DataFrame
        Long scores with a ``year`` column (form teacher, construct overall).
    outcomes : DataFrame
        School characteristics (one row per school, no year column).
    planted : list of str
        Ids of the planted schools.
    """
    rng = np.random.default_rng(seed)
    sch = _sim_schools(rng, n_schools, n_districts)
    planted_idx = rng.choice(n_schools, n_planted, replace=False)
    plant = np.zeros(n_schools)
    plant[planted_idx] = lift
    gb = sch["grade_band"].to_numpy()
    base = (50 - 25 * (sch["poverty"].to_numpy() - 0.5) - 20 * (sch["el_share"].to_numpy() - 0.1)
            + 3 * (gb == "middle") + 5 * (gb == "high") + rng.normal(0, school_sd, n_schools) + plant)
    rows = []
    for yr in years:
        sc = np.clip(base + rng.normal(0, year_sd, n_schools), 1, 99)
        rows.append(pd.DataFrame({"school_id": sch["school_id"], "district_id": sch["district_id"],
                                  "form": "teacher", "construct": "overall", "year": int(yr),
                                  "n": 20, "score": sc, "suppressed": False,
                                  "suppression_reason": ""}))
    out = sch.drop(columns="_dist")
    return pd.concat(rows, ignore_index=True), out, sorted(sch["school_id"].iloc[planted_idx])
