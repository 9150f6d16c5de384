"""School aggregation: ICC(1), ICC(2), reliability of school means, and MUML pieces.

Respondents are nested in schools of unequal size throughout. Two families of ICC(1) exist and
differ (MathAchieve: REML .1804 vs ANOVA .1736); every result states which one it is:

* model-based: ``tau00 / (tau00 + sigma2)`` from a random-intercept model ``y ~ 1 + (1 | school)``
  fitted by REML or ML (lme4 ``lmer``). It is computed here exactly for the one-way model (the
  likelihood is profiled to one parameter ``lambda = tau00/sigma2`` and maximised in closed form
  per school), with no iterative mixed-model library;
* ANOVA: ``(MSB - MSW) / (MSB + (k - 1) MSW)`` with ``k = n0`` (adjusted mean size for unequal
  groups) or ``k = N/J`` (Bliese's ``multilevel::ICC1``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from instrument.results import JSONResult, Meta, Table, from_jsonable, hash_frame, to_jsonable
from instrument.rules import SCHOOL_MEAN_RELIABILITY, SCHOOL_MEAN_RELIABILITY_HIGH, Rule

#: Said wherever a REML ICC(1) of exactly 0 (tau00 at its lower bound) is shown.
BOUNDARY_NOTE = ("ICC(1) = 0 is a boundary estimate: the REML between-school variance tau00 is at "
                 "its lower bound 0, so school means carry no detectable school-level signal and "
                 "no school size reaches a target reliability.")

__all__ = ["BOUNDARY_NOTE", "ICCResult", "icc", "icc_table", "mean_reliability", "min_cluster_size",
           "split_half_reliability", "SplitHalfResult", "MUMLResult", "muml_covariances"]


def _clean(df: pd.DataFrame, value: str | Sequence[str], cluster: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df= must be a pandas DataFrame; got {type(df).__name__}.")
    values = [value] if isinstance(value, str) else list(value)
    for c in [*values, cluster]:
        if c not in df.columns:
            raise KeyError(f"df= has no column {c!r}; available: {list(df.columns)}.")
    for c in values:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise TypeError(f"column {c!r} must be numeric; got dtype {df[c].dtype}.")
    d = df.loc[:, [*values, cluster]].dropna()
    if d[cluster].nunique() < 2:
        raise ValueError(f"cluster= column {cluster!r} needs at least 2 clusters with data; got "
                         f"{d[cluster].nunique()}.")
    if len(d) <= d[cluster].nunique():
        raise ValueError(f"every cluster of {cluster!r} has a single respondent with data; "
                         "within-cluster variance cannot be estimated.")
    for c in values:
        x = d[c].to_numpy(float)
        if not np.isfinite(x).all():
            raise ValueError(f"column {c!r} holds infinite values; expected finite numbers.")
        within = d[c] - d.groupby(cluster)[c].transform("mean")
        if not (np.abs(within.to_numpy(float)) > 1e-12 * max(1.0, np.abs(x).max())).any():
            what = "is constant" if np.ptp(x) == 0 else "does not vary within any cluster"
            raise ValueError(f"column {c!r} {what}; expected values that vary between "
                             f"respondents of a {cluster!r} (ICC(1) needs a within-cluster "
                             "variance).")
    return d


def _oneway(y: np.ndarray, g: np.ndarray) -> dict[str, Any]:
    codes, inv = np.unique(g, return_inverse=True)
    nj = np.bincount(inv).astype(float)
    sums = np.bincount(inv, weights=y)
    means = sums / nj
    N, J = float(len(y)), len(codes)
    ssw_j = np.bincount(inv, weights=(y - means[inv]) ** 2)
    grand = y.mean()
    ssb = float(np.sum(nj * (means - grand) ** 2))
    ssw = float(ssw_j.sum())
    return {"nj": nj, "means": means, "ssw_j": ssw_j, "N": N, "J": J, "grand": grand,
            "MSB": ssb / (J - 1), "MSW": ssw / (N - J), "df_between": J - 1, "df_within": N - J}


def _profile(lam: float, a: Mapping[str, Any], reml: bool) -> tuple[float, float, float, float]:
    """-2 log-likelihood profiled over mu and sigma2 for lambda = tau00/sigma2 >= 0."""
    nj, ybar, ssw = a["nj"], a["means"], a["ssw_j"].sum()
    N = a["N"]
    w = nj / (1 + nj * lam)
    mu = float(np.sum(w * ybar) / np.sum(w))
    Q = ssw + float(np.sum(w * (ybar - mu) ** 2))
    logdet = float(np.sum(np.log1p(nj * lam)))
    if reml:
        s2 = Q / (N - 1)
        m2ll = (N - 1) * (math.log(2 * math.pi) + 1 + math.log(s2)) + logdet + math.log(np.sum(w))
    else:
        s2 = Q / N
        m2ll = N * (math.log(2 * math.pi) + 1 + math.log(s2)) + logdet
    return m2ll, s2, mu, lam * s2


def _fit_random_intercept(a: Mapping[str, Any], reml: bool) -> dict[str, float]:
    """Exact ML/REML of y_ij = mu + u_j + e_ij, u ~ N(0, tau00), e ~ N(0, sigma2)."""
    f = lambda t: _profile(t, a, reml)[0]  # noqa: E731
    lam0 = max((a["MSB"] - a["MSW"]) / (a["MSB"] + 1e-300) / np.mean(a["nj"]), 1e-6)
    hi = max(10.0, 100 * lam0)
    # coarse log-grid to bracket the optimum, then a tight bounded search
    grid = np.concatenate([[0.0], np.geomspace(1e-8, hi, 200)])
    vals = np.array([f(t) for t in grid])
    i = int(np.argmin(vals))
    lo_b, hi_b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi_b > lo_b:
        r = optimize.minimize_scalar(f, bounds=(lo_b, hi_b), method="bounded",
                                     options={"xatol": 1e-14 * max(1.0, hi_b), "maxiter": 500})
        lam = float(r.x) if r.fun <= vals[i] else float(grid[i])
    else:
        lam = float(grid[i])
    m2ll, s2, mu, tau = _profile(lam, a, reml)
    return {"tau00": tau, "sigma2": s2, "icc1": tau / (tau + s2), "intercept": mu,
            "logLik": -0.5 * m2ll}


@dataclass(frozen=True)
class ICCResult(JSONResult):
    """Intraclass correlations of one variable with respondents nested in clusters.

    Attributes
    ----------
    value, cluster : str
        Variable and cluster column.
    N, J : int
        Respondents and clusters (after dropping missing values).
    n_min, n_max : int
    n0 : float
        Adjusted mean cluster size ``(N - sum n_j^2 / N) / (J - 1)``.
    nbar : float
        ``N / J``.
    MSB, MSW : float
        One-way ANOVA mean squares between and within clusters.
    tau00, sigma2, icc1 : float
        REML variance components and ``tau00/(tau00+sigma2)`` (lme4 ``lmer(REML=TRUE)``).
    tau00_ml, sigma2_ml, icc1_ml : float
        The same by ML.
    logLik_reml, logLik_ml, intercept : float
    icc1_anova_n0, icc1_anova_nbar : float
        ANOVA ICC(1) with ``k = n0`` and ``k = N/J`` (Bliese ``multilevel::ICC1``).
    tau00_anova : float
        Method-of-moments ``(MSB - MSW) / n0``.
    icc2 : float
        ``(MSB - MSW) / MSB`` (ANOVA reliability of a cluster mean; Bliese ``ICC2``).
    icc2_sb : float
        Spearman-Brown of the REML ICC(1) at ``k = N/J``.
    reliability_rb : float
        Raudenbush & Bryk ``mean_j tau00 / (tau00 + sigma2 / n_j)`` (REML components).
    meta : Meta
    """

    value: str
    cluster: str
    N: int
    J: int
    n_min: int
    n_max: int
    n0: float
    nbar: float
    MSB: float
    MSW: float
    tau00: float
    sigma2: float
    icc1: float
    tau00_ml: float
    sigma2_ml: float
    icc1_ml: float
    logLik_reml: float
    logLik_ml: float
    intercept: float
    icc1_anova_n0: float
    icc1_anova_nbar: float
    tau00_anova: float
    icc2: float
    icc2_sb: float
    reliability_rb: float
    meta: Meta = field(default_factory=Meta)

    def to_row(self) -> dict[str, Any]:
        """The numbers as one flat record (for `icc_table`)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "meta"}

    def summary(self) -> Table:
        rows = [("ICC(1), REML tau00/(tau00+sigma2)", self.icc1),
                ("ICC(1), ML", self.icc1_ml),
                ("ICC(1), ANOVA, k = n0", self.icc1_anova_n0),
                ("ICC(1), ANOVA, k = N/J", self.icc1_anova_nbar),
                ("ICC(2) = (MSB-MSW)/MSB", self.icc2),
                ("Spearman-Brown, REML ICC(1), k = N/J", self.icc2_sb),
                ("mean_j tau00/(tau00+sigma2/n_j)", self.reliability_rb),
                ("tau00 (REML)", self.tau00), ("sigma2 (REML)", self.sigma2),
                ("MSB", self.MSB), ("MSW", self.MSW), ("n0", self.n0), ("N/J", self.nbar)]
        notes = ["Model-based ICC(1) from an exact one-way random-intercept fit (lme4 "
                 "lmer(y ~ 1 + (1 | cluster))); ANOVA ICC(1) and ICC(2) from Bliese (2000)."]
        if self.icc1 == 0:
            notes.append(BOUNDARY_NOTE)
        if 0 < self.icc1 < 1:
            for rule in (SCHOOL_MEAN_RELIABILITY, SCHOOL_MEAN_RELIABILITY_HIGH):
                rows.append((f"respondents per school for reliability {rule.threshold:.2f} "
                             "(REML ICC(1))", float(min_cluster_size(self.icc1, rule))))
        return Table(f"Intraclass correlation of {self.value} by {self.cluster} "
                     f"(N = {self.N}, J = {self.J}, n_j {self.n_min}-{self.n_max})",
                     pd.DataFrame(rows, columns=["quantity", "value"]),
                     notes=tuple(notes), digits=4)


def icc(df: pd.DataFrame, value: str, cluster: str) -> ICCResult:
    """ICC(1) by REML, ML and ANOVA, ICC(2) and school-mean reliability of one variable.

    Parameters
    ----------
    df : DataFrame
        One row per respondent; rows with a missing ``value`` or ``cluster`` are dropped.
    value : str
        The (numeric) variable, e.g. a scale score.
    cluster : str
        The cluster (school) identifier.

    Returns
    -------
    ICCResult

    Notes
    -----
    ``n0 = (N - sum n_j^2 / N) / (J - 1)``; ICC(1) ANOVA ``(MSB - MSW)/(MSB + (k-1) MSW)``;
    ICC(2) ``(MSB - MSW)/MSB``. REML/ML: with ``lambda = tau00/sigma2`` and
    ``w_j = n_j/(1 + n_j lambda)``, ``mu = sum w_j ybar_j / sum w_j``,
    ``Q = SSW + sum w_j (ybar_j - mu)^2``; ML ``sigma2 = Q/N``, REML ``sigma2 = Q/(N-1)``; the
    profiled ``-2 logLik`` (ML: ``N(log 2 pi + 1 + log sigma2) + sum log(1 + n_j lambda)``; REML
    adds ``log sum w_j`` and uses ``N-1``) is minimised over ``lambda >= 0``. Matches lme4 1.1-31
    and nlme (refs case f) and statsmodels ``MixedLM``.

    References
    ----------
    Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability: Implications
    for data aggregation and analysis. In K. J. Klein & S. W. J. Kozlowski (Eds.), Multilevel
    theory, research, and methods in organizations (pp. 349-381). Jossey-Bass.

    Raudenbush, S. W., & Bryk, A. S. (2002). Hierarchical linear models (2nd ed.). Sage.

    Snijders, T. A. B., & Bosker, R. J. (2012). Multilevel analysis (2nd ed.). Sage (n0, eq. 3.7).
    """
    d = _clean(df, value, cluster)
    y = d[value].to_numpy(float)
    a = _oneway(y, d[cluster].to_numpy())
    N, J, nj = a["N"], a["J"], a["nj"]
    n0 = (N - np.sum(nj ** 2) / N) / (J - 1)
    nbar = N / J
    MSB, MSW = a["MSB"], a["MSW"]
    reml = _fit_random_intercept(a, reml=True)
    ml = _fit_random_intercept(a, reml=False)
    i1 = reml["icc1"]
    return ICCResult(
        value=value, cluster=cluster, N=int(N), J=int(J), n_min=int(nj.min()),
        n_max=int(nj.max()), n0=float(n0), nbar=float(nbar), MSB=float(MSB), MSW=float(MSW),
        tau00=reml["tau00"], sigma2=reml["sigma2"], icc1=i1, tau00_ml=ml["tau00"],
        sigma2_ml=ml["sigma2"], icc1_ml=ml["icc1"], logLik_reml=reml["logLik"],
        logLik_ml=ml["logLik"], intercept=reml["intercept"],
        icc1_anova_n0=float((MSB - MSW) / (MSB + (n0 - 1) * MSW)),
        icc1_anova_nbar=float((MSB - MSW) / (MSB + (nbar - 1) * MSW)),
        tau00_anova=float((MSB - MSW) / n0),
        icc2=float((MSB - MSW) / MSB) if MSB > 0 else float("nan"),
        icc2_sb=float(mean_reliability(i1, nbar)),
        reliability_rb=float(np.mean(reml["tau00"] / (reml["tau00"] + reml["sigma2"] / nj))),
        meta=Meta(options={"value": value, "cluster": cluster}, data_hash=hash_frame(d)))


def icc_table(df: pd.DataFrame, values: Sequence[str], cluster: str) -> pd.DataFrame:
    """`icc` for several variables, one row each (columns as `ICCResult` attributes)."""
    if isinstance(values, str) or not len(values):
        raise ValueError("values= must be a non-empty list of column names.")
    return pd.DataFrame([icc(df, v, cluster).to_row() for v in values])


def mean_reliability(icc1: float | np.ndarray, k: float | np.ndarray) -> float | np.ndarray:
    """Reliability of a mean of ``k`` respondents (Spearman-Brown): ``k r / (1 + (k-1) r)``.

    References
    ----------
    Spearman, C. (1910). Correlation calculated from faulty data. British Journal of Psychology,
    3(3), 271-295. Brown, W. (1910), ibid., 296-322.
    """
    r = np.asarray(icc1, dtype=float)
    kk = np.asarray(k, dtype=float)
    if np.any(kk < 1):
        raise ValueError(f"k= must be >= 1 respondents; got {k!r}.")
    out = kk * r / (1 + (kk - 1) * r)
    return float(out) if out.ndim == 0 else out


def min_cluster_size(icc1: float, target: float | Rule) -> int | None:
    """Smallest number of respondents per school whose mean reaches a target reliability.

    Parameters
    ----------
    icc1 : float
        ICC(1) in [0, 1). At the boundary ICC(1) = 0 (a legal REML estimate: no between-school
        variance was found) no number of respondents reaches the target, and None is returned.
    target : float or Rule
        Target reliability, e.g. `instrument.rules.SCHOOL_MEAN_RELIABILITY` (.70).

    Notes
    -----
    Inverts Spearman-Brown: ``k = ceil(target (1 - icc1) / (icc1 (1 - target)))``.
    """
    t = target.threshold if isinstance(target, Rule) else float(target)
    if not 0 <= icc1 < 1:
        raise ValueError(f"icc1= must be in [0, 1); got {icc1!r}.")
    if not 0 < t < 1:
        raise ValueError(f"target= must be in (0, 1); got {t!r}.")
    if icc1 == 0:
        return None
    k = t * (1 - icc1) / (icc1 * (1 - t))
    return max(1, int(math.ceil(k - 1e-12)))


@dataclass(frozen=True)
class SplitHalfResult(JSONResult):
    """Within-school split-half reliability of school means.

    Attributes
    ----------
    value, cluster : str
    J : int
        Schools used (those with at least 2 respondents).
    n_splits : int
    r_half : float
        Mean over splits of the correlation between the two half-school means.
    reliability : float
        Mean over splits of the Spearman-Brown corrected ``2r/(1+r)``.
    sd : float
        SD over splits of the corrected value.
    seed : int
    """

    value: str
    cluster: str
    J: int
    n_splits: int
    r_half: float
    reliability: float
    sd: float
    seed: int
    meta: Meta = field(default_factory=Meta)

    def summary(self) -> Table:
        f = pd.DataFrame({"quantity": ["r between half-school means", "Spearman-Brown 2r/(1+r)",
                                       "SD over splits", "schools", "splits"],
                          "value": [self.r_half, self.reliability, self.sd, float(self.J),
                                    float(self.n_splits)]})
        return Table(f"Split-half reliability of {self.value} means by {self.cluster}", f,
                     notes=(f"Respondents split at random within each school (seed {self.seed}).",))


def split_half_reliability(df: pd.DataFrame, value: str, cluster: str, *, n_splits: int = 100,
                           seed: int) -> SplitHalfResult:
    """Reliability of school means by random split halves within schools.

    Each school's respondents are shuffled and split into halves of sizes ``floor(n_j/2)`` and
    ``ceil(n_j/2)``; the two sets of half means are correlated across schools and corrected with
    Spearman-Brown ``2r/(1+r)``; the result is averaged over ``n_splits`` random splits.

    References
    ----------
    Spearman (1910); Brown (1910), see `mean_reliability`.
    """
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"n_splits= must be a positive integer; got {n_splits!r}.")
    d = _clean(df, value, cluster)
    groups = [g[value].to_numpy(float) for _, g in d.groupby(cluster, sort=True) if len(g) >= 2]
    if len(groups) < 3:
        raise ValueError(f"split-half needs at least 3 clusters with 2+ respondents; got {len(groups)}.")
    rng = np.random.default_rng(seed)
    rs = np.empty(n_splits)
    for s in range(n_splits):
        a = np.empty(len(groups))
        b = np.empty(len(groups))
        for j, y in enumerate(groups):
            p = rng.permutation(len(y))
            h = len(y) // 2
            a[j], b[j] = y[p[:h]].mean(), y[p[h:]].mean()
        rs[s] = np.corrcoef(a, b)[0, 1]
    sb = 2 * rs / (1 + rs)
    return SplitHalfResult(value=value, cluster=cluster, J=len(groups), n_splits=int(n_splits),
                           r_half=float(rs.mean()), reliability=float(sb.mean()),
                           sd=float(sb.std(ddof=1)) if n_splits > 1 else 0.0, seed=int(seed),
                           meta=Meta(options={"n_splits": int(n_splits)}, seed=int(seed),
                                     data_hash=hash_frame(d)))


# --------------------------------------------------------------------------------------------
# MUML (Muthen 1994) covariance pieces for a two-level CFA
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MUMLResult:
    """Muthen's (1994) MUML summary statistics (an approximation for unbalanced clusters).

    Attributes
    ----------
    S_PW : DataFrame
        Pooled within-cluster covariance, divisor ``N - J``.
    S_B : DataFrame
        Scaled between-cluster covariance ``sum_j n_j (ybar_j - ybar)(ybar_j - ybar)' / (J - 1)``.
    sigma_B : DataFrame
        Moment estimate of the between covariance ``(S_B - S_PW) / c``.
    c : float
        Scaling factor ``(N^2 - sum n_j^2) / (N (J - 1))`` (equals n0).
    N, J : int
    """

    S_PW: pd.DataFrame
    S_B: pd.DataFrame
    sigma_B: pd.DataFrame
    c: float
    N: int
    J: int
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return {"S_PW": to_jsonable(self.S_PW.reset_index(names="var")),
                "S_B": to_jsonable(self.S_B.reset_index(names="var")),
                "sigma_B": to_jsonable(self.sigma_B.reset_index(names="var")),
                "c": self.c, "N": self.N, "J": self.J, "meta": self.meta.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MUMLResult":
        m = {k: from_jsonable(d[k]).set_index("var").rename_axis(None) for k in ("S_PW", "S_B", "sigma_B")}
        return cls(**m, c=float(d["c"]), N=int(d["N"]), J=int(d["J"]),
                   meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        v = list(self.S_PW.columns)
        rows = [{"row": r, "col": c, "S_PW": self.S_PW.at[r, c], "S_B": self.S_B.at[r, c],
                 "sigma_B": self.sigma_B.at[r, c]} for i, r in enumerate(v) for c in v[: i + 1]]
        return Table(f"MUML covariance matrices (N = {self.N}, J = {self.J}, c = {self.c:.4f})",
                     pd.DataFrame(rows),
                     notes=("MUML is Muthen's (1994) approximation: exact only for equal cluster "
                            "sizes.",), digits=4)


def muml_covariances(df: pd.DataFrame, variables: Sequence[str], cluster: str) -> MUMLResult:
    """Pooled-within and scaled-between covariances for a MUML two-level CFA (approximation).

    Parameters
    ----------
    df : DataFrame
    variables : sequence of str
        Observed variables (rows with any of them missing are dropped).
    cluster : str

    Returns
    -------
    MUMLResult

    Notes
    -----
    ``S_PW = sum_j sum_i (y_ij - ybar_j)(y_ij - ybar_j)' / (N - J)`` estimates ``Sigma_W``;
    ``S_B = sum_j n_j (ybar_j - ybar)(ybar_j - ybar)' / (J - 1)`` has expectation
    ``Sigma_W + c Sigma_B`` with ``c = (N^2 - sum n_j^2) / (N (J - 1))``. A two-level CFA is fitted
    as a two-group model: group "within" (S_PW, N - J cases) with ``Sigma_W`` and group "between"
    (S_B, J - 1 cases) with ``Sigma_W + c Sigma_B``. With equal cluster sizes this is full ML;
    otherwise it is an approximation (use full-information ML where the engine offers it).
    For one variable, ``S_PW = MSW``, ``S_B = MSB`` and ``sigma_B = (MSB - MSW) / n0``.

    References
    ----------
    Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
    Research, 22(3), 376-398. https://doi.org/10.1177/0049124194022003006
    """
    variables = list(variables)
    d = _clean(df, variables, cluster)
    Y = d[variables].to_numpy(float)
    codes, inv = np.unique(d[cluster].to_numpy(), return_inverse=True)
    J, N = len(codes), len(Y)
    nj = np.bincount(inv).astype(float)
    means = np.vstack([np.bincount(inv, weights=Y[:, v]) for v in range(Y.shape[1])]).T / nj[:, None]
    W = Y - means[inv]
    S_PW = W.T @ W / (N - J)
    B = means - Y.mean(axis=0)
    S_B = (B * nj[:, None]).T @ B / (J - 1)
    c = (N ** 2 - np.sum(nj ** 2)) / (N * (J - 1))
    mk = lambda M: pd.DataFrame(M, index=variables, columns=variables)  # noqa: E731
    return MUMLResult(S_PW=mk(S_PW), S_B=mk(S_B), sigma_B=mk((S_B - S_PW) / c), c=float(c),
                      N=int(N), J=int(J),
                      meta=Meta(options={"variables": variables, "cluster": cluster},
                                data_hash=hash_frame(d)))
