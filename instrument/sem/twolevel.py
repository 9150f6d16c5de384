"""Two-level (random-intercept) CFA by full-information ML, as lavaan's ``level: 1 / level: 2``.

Teachers (level 1) are nested in schools (level 2). Every observed item y_ij of teacher i in
school j splits into a school part and a teacher part, y_ij = mu + b_j + w_ij, with
Cov(w) = Sigma_W(theta_W) (the *within* model, ``level: 1``) and Cov(b) = Sigma_B(theta_B),
E(y) = mu_B(theta_B) (the *between* model, ``level: 2``, which also carries the intercepts).
The functions here fit that model by exact ML (not the MUML approximation of
`instrument.multilevel.muml_covariances`), report lavaan's two-level fit measures and the
school-level (between) reliability of each construct.

Public API: `fit_twolevel` (the two-level entry of the estimator registry
`instrument.sem.cfa.ESTIMATORS`; users call ``cfa(model, data, cluster=)``), `TwoLevelResult`,
`twolevel_reliability`, `TwoLevelReliability`, `cluster_stats`, `ClusterStats`,
`twolevel_loglik`, `twolevel_expected_information`, `TwoLevelObjective` (the objective in the
protocol of the engine's optimiser `instrument.sem.estimators.ml.optimize`), `saturated_em`,
`twolevel_information`.

Agreement with lavaan 0.6-14 (tests/test_twolevel.py): logl, h1 logl (EM replicated),
chisq, baseline chisq to ~1e-8 relative; CFI/TLI/RMSEA/SRMR within 1e-6; estimates within
2e-4 of lavaan's default fit (its nlminb stop; 3e-5 of its tightened refit) and SEs at lavaan's
own estimates to 1e-9 relative.
"""
from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from instrument.sem.estimators.ml import gradient_jacobian, moment_weight, optimize, optimize_reporting
from instrument.sem.model import Model, vech_indices
from instrument.sem.samplestats import ClusterStats, GroupStats, SampleStats, cluster_stats_from
from instrument.sem.fit.measures import TestStat, fit_indices, information_criteria
from instrument.sem.partable import ParTable, build_partable
from instrument.results import Meta, Table, from_jsonable, to_jsonable
from instrument.sem.data import data_warnings, select
from instrument.sem.syntax import ModelSyntaxError, parse_syntax, split_levels

__all__ = ["fit_twolevel", "TwoLevelResult", "twolevel_reliability", "TwoLevelReliability",
           "cluster_stats", "ClusterStats", "twolevel_loglik", "twolevel_expected_information",
           "TwoLevelObjective", "saturated_em", "twolevel_information", "H1_METHODS"]

_LOG2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------- data
def cluster_stats(df: pd.DataFrame, variables: Sequence[str], cluster: str) -> ClusterStats:
    """Within SSCP and per-cluster-size moments of the cluster means (listwise complete rows).

    Parameters
    ----------
    df : DataFrame
    variables : sequence of str
        Observed variables in the model's order.
    cluster : str
        Column identifying the cluster (school).

    Returns
    -------
    ClusterStats
        Of the rows the engine's data step (`instrument.sem.data.select`, listwise) keeps.
    """
    if not isinstance(cluster, str) or not cluster:
        raise ValueError(f"cluster= must be the name of the cluster column; got {cluster!r}")
    return cluster_stats_from(select(df, variables, cluster=cluster, missing="listwise"))


# ---------------------------------------------------------------------------------- likelihood
def _chol_inv_logdet(S: np.ndarray) -> tuple[np.ndarray, float] | None:
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(L)
    return Li.T @ Li, 2.0 * float(np.sum(np.log(np.diag(L))))


def twolevel_loglik(cs: ClusterStats, sigma_w: np.ndarray, sigma_b: np.ndarray,
                    mu: np.ndarray, *, gradient: bool = False):
    """Two-level normal log-likelihood of random-intercept data (and its gradient).

    Parameters
    ----------
    cs : ClusterStats
    sigma_w, sigma_b : ndarray (p, p)
        Within and between covariance matrices.
    mu : ndarray (p,)
        Mean vector (carried by the between level).
    gradient : bool
        Also return d logl / d [vech(Sigma_W), vech(Sigma_B), mu] (vech as in lavaan; an
        off-diagonal entry moves both symmetric cells).

    Returns
    -------
    float, or (float, ndarray) with ``gradient=True``; ``-inf`` when Sigma_W or
    Sigma_W + n Sigma_B is not positive definite.

    Notes
    -----
    For a cluster of size n with mean ybar_j and within SSCP W_j, the stacked vector has
    covariance I_n (x) Sigma_W + 1 1' (x) Sigma_B, whose determinant is
    |Sigma_W|^(n-1) |Sigma_W + n Sigma_B| (McDonald & Goldstein, 1989), so

        logl = -1/2 [ N p log 2pi + (N - J) log|Sigma_W| + tr(Sigma_W^-1 W)
                      + sum_j ( log|V_j| + n_j (ybar_j - mu)' V_j^-1 (ybar_j - mu) ) ],
        V_j = Sigma_W + n_j Sigma_B,

    with the cluster sum computed once per distinct cluster size (lavaan's
    ``lav_mvnorm_cluster_loglik_samplestats_2l`` groups clusters the same way).

    References
    ----------
    McDonald, R. P., & Goldstein, H. (1989). Balanced versus unbalanced designs for linear
    structural relations in two-level data. British Journal of Mathematical and Statistical
    Psychology, 42(2), 215-232. https://doi.org/10.1111/j.2044-8317.1989.tb00911.x
    Muthen, B. O. (1990). Mean and covariance structure analysis of hierarchical data. UCLA
    Statistics Series, 62.
    Rosseel, Y. (2021). Evaluating the observed log-likelihood function in two-level structural
    equation modeling with missing data. Psychometrika, 86, 28-69.
    """
    p, N, J = cs.p, cs.N, cs.J
    r = _chol_inv_logdet(sigma_w)
    if r is None:
        return (-np.inf, None) if gradient else -np.inf
    Wi, ldw = r
    WiW = Wi @ cs.W
    ll = N * p * _LOG2PI + (N - J) * ldw + float(np.trace(WiW))
    if gradient:
        Gw = (N - J) * Wi - WiW @ Wi
        Gb = np.zeros((p, p))
        gmu = np.zeros(p)
    n, m = cs.sizes, cs.counts
    V = sigma_w[None] + n[:, None, None] * sigma_b[None]        # one per cluster size
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return (-np.inf, None) if gradient else -np.inf
    Li = np.linalg.inv(L)
    Vi = np.swapaxes(Li, 1, 2) @ Li
    ldv = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    dm = cs.means - mu
    A = cs.covs + dm[:, :, None] * dm[:, None, :]
    ll += float(np.sum(m * (ldv + n * np.einsum("kij,kij->k", Vi, A))))
    if gradient:
        T = m[:, None, None] * (Vi - n[:, None, None] * (Vi @ A @ Vi))
        Gw += T.sum(axis=0)
        Gb += (n[:, None, None] * T).sum(axis=0)
        gmu += np.einsum("k,kij,kj->i", m * n, Vi, dm)
    ll *= -0.5
    if not gradient:
        return ll
    vr, vc = vech_indices(p)
    mult = np.where(vr == vc, 1.0, 2.0)
    g = np.concatenate([-0.5 * Gw[vr, vc] * mult, -0.5 * Gb[vr, vc] * mult, gmu])
    return ll, g


def _unvech(v: np.ndarray, p: int) -> np.ndarray:
    vr, vc = vech_indices(p)
    S = np.zeros((p, p))
    S[vr, vc] = v
    S[vc, vr] = v
    return S


# ---------------------------------------------------------------------------------- structures
class _Saturated:
    """h1: Sigma_W, Sigma_B and mu unrestricted (x = [vech W, vech B, mu])."""

    def __init__(self, p: int, diagonal: bool = False):
        self.p = p
        ps = p * (p + 1) // 2
        vr, vc = vech_indices(p)
        keep = np.ones(ps, bool) if not diagonal else (vr == vc)
        self.sel = np.concatenate([keep, keep, np.ones(p, bool)])
        self.J = np.eye(2 * ps + p)[:, self.sel]
        self.nx = int(self.sel.sum())

    def moments(self, x):
        full = self.J @ x
        ps = self.p * (self.p + 1) // 2
        return _unvech(full[:ps], self.p), _unvech(full[ps:2 * ps], self.p), full[2 * ps:]

    def jacobian(self, x):
        return self.J

    def start(self, cs: ClusterStats):
        SW, SB = cs.S_PW, _between_start(cs)
        vr, vc = vech_indices(self.p)
        full = np.concatenate([SW[vr, vc], SB[vr, vc], cs.grand_mean])
        return full[self.sel]


def _between_start(cs: ClusterStats) -> np.ndarray:
    """Moment estimate of Sigma_B ((S_B - S_PW)/c, Muthen 1994), made positive definite."""
    nj, N, J = cs.cluster_sizes, cs.N, cs.J
    D = cs.cluster_means - cs.grand_mean
    SB = (D * nj[:, None]).T @ D / (J - 1)
    c = (N ** 2 - np.sum(nj ** 2)) / (N * (J - 1))
    S = (SB - cs.S_PW) / c
    w, V = np.linalg.eigh(S)
    floor = 0.05 * np.abs(np.diag(S)).mean() + 1e-6
    return (V * np.maximum(w, floor)) @ V.T


class _CFAStructure:
    """Within CFA (Sigma_W only) and between CFA (Sigma_B and mu) on one parameter vector."""

    def __init__(self, pt_w: ParTable, pt_b: ParTable, ov_names: Sequence[str]):
        self.mw, self.mb = Model.from_partable(pt_w), Model.from_partable(pt_b)
        self.nxw, self.nxb = self.mw.nx, self.mb.nx
        self.nx = self.nxw + self.nxb
        p = len(ov_names)
        self.p = p
        self.iw = np.array([pt_w.ov_names.index(v) for v in ov_names])
        self.ib = np.array([pt_b.ov_names.index(v) for v in ov_names])
        vr, vc = vech_indices(p)
        self.vr, self.vc = vr, vc

        def vech_rows(idx):
            pos = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(*vech_indices(p)))}
            a, b = idx[vr], idx[vc]
            return np.array([pos[(max(i, j), min(i, j))] for i, j in zip(a, b)])
        self.rw = vech_rows(self.iw)
        self.rb = vech_rows(self.ib)

    def split(self, x):
        return x[:self.nxw], x[self.nxw:]

    def moments(self, x):
        xw, xb = self.split(x)
        iw = self.mw.implied(xw)[0]
        ib = self.mb.implied(xb)[0]
        SW = iw.sigma[np.ix_(self.iw, self.iw)]
        SB = ib.sigma[np.ix_(self.ib, self.ib)]
        return SW, SB, ib.mu[self.ib]

    def jacobian(self, x):
        xw, xb = self.split(x)
        p, ps = self.p, self.p * (self.p + 1) // 2
        Dw = self.mw.delta(xw)[0][p:]           # drop the (fixed-zero) within mean rows
        Db = self.mb.delta(xb)[0]
        Dbm, Dbs = Db[:p], Db[p:]
        Jm = np.zeros((2 * ps + p, self.nx))
        Jm[:ps, :self.nxw] = Dw[self.rw]
        Jm[ps:2 * ps, self.nxw:] = Dbs[self.rb]
        Jm[2 * ps:, self.nxw:] = Dbm[self.ib]
        return Jm

    def start(self, cs: ClusterStats):
        p = self.p
        ow = np.argsort(self.iw)
        sw = SampleStats([GroupStats(cs.N - cs.J, cs.S_PW[np.ix_(ow, ow)], np.zeros(p))])
        SB = _between_start(cs)
        ob = np.argsort(self.ib)
        sb = SampleStats([GroupStats(cs.J, SB[np.ix_(ob, ob)], cs.grand_mean[ob])])
        return np.concatenate([self.mw.start_x(sw), self.mb.start_x(sb)])


def saturated_em(cs: ClusterStats, *, tol: float = 1e-4, max_iter: int = 5000
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Unrestricted two-level model (h1) by EM, as lavaan 0.6-14 fits it.

    Parameters
    ----------
    cs : ClusterStats
    tol : float
        Stop when the log-likelihood increases by less than ``tol`` in one iteration
        (the default 1e-4 of lavaan 0.6-14's ``lav_mvnorm_cluster_em_sat``, which the
        two-level h1 uses; verified: it reproduces lavaan's ``unrestricted.logl`` to 4e-12).
    max_iter : int

    Returns
    -------
    (Sigma_W, Sigma_B, mu, logl, iterations)

    Notes
    -----
    Starts at Sigma_W = Sigma_B = I, mu = 0. E-step per cluster j (size n_j), with
    Omega_j = (Sigma_W + n_j Sigma_B)/n_j and K_j = Sigma_B Omega_j^-1: the cluster effect
    v_j has E(v_j) = mu_B + K_j (ybar_j - mu), Cov(v_j) = Sigma_B - K_j Sigma_B. M-step:
    mu_B = mean_j E(v_j), mu_W = sum_j n_j (ybar_j - E(v_j)) / N, Sigma_B = mean_j E(v v') -
    mu_B mu_B', Sigma_W = [sum_ij y_ij y_ij' - sum_j n_j (ybar_j E(v_j)' + E(v_j) ybar_j' -
    E(v_j v_j'))] / N - mu_W mu_W', with mu = mu_W + mu_B. The stopping rule is lavaan's
    (``lav_mvnorm_cluster_em_sat``), so the h1 log-likelihood -- and with it chisq, the
    baseline chisq and SRMR -- equal lavaan's to rounding rather than to the EM tolerance;
    the engine's optimiser on `_Saturated` gives the exact maximum instead.

    References
    ----------
    Raudenbush, S. W. (1995). Maximum likelihood estimation for unbalanced multilevel covariance
    structure models via the EM algorithm. British Journal of Mathematical and Statistical
    Psychology, 48(2), 359-370. https://doi.org/10.1111/j.2044-8317.1995.tb01068.x
    """
    p, N, J = cs.p, cs.N, cs.J
    SW, SB = np.eye(p), np.eye(p)
    mw, mb = np.zeros(p), np.zeros(p)
    fx_old = twolevel_loglik(cs, SW, SB, mw + mb)
    fx, it = fx_old, 0
    ybar, nj = cs.cluster_means, cs.cluster_sizes
    kidx = np.searchsorted(cs.sizes, nj)
    for it in range(1, max_iter + 1):
        mu = mw + mb
        n = cs.sizes
        Om = (SW[None] + n[:, None, None] * SB[None]) / n[:, None, None]
        K = SB[None] @ np.linalg.inv(Om)                       # per cluster size
        Covv = cs.counts[:, None, None] * (SB[None] - K @ SB[None])
        Covv = (Covv + np.swapaxes(Covv, 1, 2)) / 2
        Ev = np.einsum("jab,jb->ja", K[kidx], ybar - mu) + mb  # per cluster
        EvEv = Ev[:, :, None] * Ev[:, None, :]
        Evv_sum = Covv.sum(axis=0) + EvEv.sum(axis=0)
        Evv_nsum = (n[:, None, None] * Covv).sum(axis=0) + np.einsum("j,jab->ab", nj, EvEv)
        MW = (nj[:, None] * (ybar - Ev)).sum(axis=0)
        MB = Ev.sum(axis=0)
        YE = (nj[:, None] * ybar).T @ Ev
        CW2 = Evv_nsum - YE - YE.T
        CB = Evv_sum
        mw, mb = MW / N, MB / J
        SW = (cs.YY + CW2) / N - np.outer(mw, mw)
        SB = CB / J - np.outer(mb, mb)
        fx = twolevel_loglik(cs, SW, SB, mw + mb)
        if fx - fx_old < tol:
            break
        fx_old = fx
    return SW, SB, mw + mb, float(fx), it


# ---------------------------------------------------------------------------------- objective
def twolevel_expected_information(cs: ClusterStats, sigma_w: np.ndarray, sigma_b: np.ndarray
                                  ) -> np.ndarray:
    """Expected (Fisher) information of `twolevel_loglik` for [vech(Sigma_W), vech(Sigma_B), mu].

    Notes
    -----
    In a random-intercept model the pooled within SSCP W is Wishart(Sigma_W, N - J) and
    independent of the cluster means ybar_j ~ N(mu, Omega_j), Omega_j = Sigma_B + Sigma_W / n_j.
    With M(S) = blockdiag(S^-1, 1/2 D'(S^-1 (x) S^-1) D) the normal-theory weight of
    [mean, vech(cov)] (`instrument.sem.estimators.ml.moment_weight`) and C(S) its covariance
    block, and dOmega_j = dSigma_B + dSigma_W / n_j,

        I_WW = (N - J) C(Sigma_W) + sum_j C(Omega_j) / n_j^2,  I_WB = sum_j C(Omega_j) / n_j,
        I_BB = sum_j C(Omega_j),  I_mumu = sum_j Omega_j^-1,

    summed once per distinct cluster size (m_k clusters of size n_k). It is positive definite
    wherever the likelihood is finite, so Fisher scoring on it is a descent method.

    References
    ----------
    Muthen, B. O. (1990). Mean and covariance structure analysis of hierarchical data. UCLA
    Statistics Series, 62.
    """
    p = cs.p
    vr, vc = vech_indices(p)
    ps = len(vr)
    info = np.zeros((2 * ps + p, 2 * ps + p))
    W, B, M = slice(0, ps), slice(ps, 2 * ps), slice(2 * ps, 2 * ps + p)
    info[W, W] = (cs.N - cs.J) * moment_weight(sigma_w, False, vr, vc)
    for n, m in zip(cs.sizes, cs.counts):
        Om = sigma_b + sigma_w / n
        Wt = moment_weight(Om, True, vr, vc)
        C = m * Wt[p:, p:]
        info[W, W] += C / n ** 2
        info[W, B] += C / n
        info[B, B] += C
        info[M, M] += m * Wt[:p, :p]
    info[B, W] = info[W, B].T
    return info


class TwoLevelObjective:
    """-logl / N of a two-level structure, in the protocol of
    `instrument.sem.estimators.ml.optimize`.

    ``structure`` maps the parameters x to (Sigma_W, Sigma_B, mu) (``moments(x)``) and gives
    their Jacobian (``jacobian(x)``, rows [vech Sigma_W, vech Sigma_B, mu]); ``value``,
    ``gradient`` and ``expected_information`` (E[Hessian]/2 of the value:
    J' I J / (2N) with I from `twolevel_expected_information`) are per level-1 unit, so the
    optimiser's gradient tolerance 1e-9 is max |d logl / dx| < 1e-9 N.
    """

    def __init__(self, structure, cs: ClusterStats):
        self.structure, self.cs = structure, cs

    def value(self, x: np.ndarray) -> float:
        ll = twolevel_loglik(self.cs, *self.structure.moments(x))
        return -ll / self.cs.N if np.isfinite(ll) else np.inf

    def gradient(self, x: np.ndarray) -> np.ndarray:
        _, g = twolevel_loglik(self.cs, *self.structure.moments(x), gradient=True)
        if g is None:
            raise FloatingPointError("the two-level likelihood is not finite")
        return -(self.structure.jacobian(x).T @ g) / self.cs.N

    def gradient_and_information(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        SW, SB, mu = self.structure.moments(x)
        _, g = twolevel_loglik(self.cs, SW, SB, mu, gradient=True)
        if g is None:
            raise FloatingPointError("the two-level likelihood is not finite")
        Jm = self.structure.jacobian(x)
        info = Jm.T @ twolevel_expected_information(self.cs, SW, SB) @ Jm
        return -(Jm.T @ g) / self.cs.N, info / (2.0 * self.cs.N)

    def expected_information(self, x: np.ndarray) -> np.ndarray:
        return self.gradient_and_information(x)[1]

    def observed_information(self, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Hessian of -logl (total, not per unit): central differences of the analytic
        gradient, lavaan 0.6-14's ``information = "observed"`` for two-level data."""
        return self.cs.N * gradient_jacobian(self.gradient, x, h=h, richardson=False)


# ---------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class TwoLevelResult:
    """A two-level CFA fitted by exact (full-information) ML.

    Attributes
    ----------
    estimates : DataFrame
        lavaan's ``parameterEstimates`` columns plus ``level`` and ``std.all``: ``lhs op rhs
        level block label est se z pvalue ci.lower ci.upper std.all`` (level 1 = within,
        level 2 = between; fixed rows have se 0 and NaN z/pvalue like lavaan).
    fit_measures : dict
        lavaan's names: npar, fmin, chisq, df, pvalue, baseline.chisq, baseline.df,
        baseline.pvalue, cfi, tli, nnfi, rfi, nfi, pnfi, ifi, rni, logl, unrestricted.logl,
        aic, bic, ntotal, bic2, rmsea, rmsea.ci.lower, rmsea.ci.upper, rmsea.ci.level,
        rmsea.pvalue, rmsea.close.h0, rmsea.notclose.pvalue, rmsea.notclose.h0, srmr,
        srmr_within, srmr_between: the same names, in the same order, as lavaan 0.6-14's
        ``fitMeasures()`` of a two-level fit.
    implied, h1 : dict
        ``{"within": {"cov": DataFrame}, "between": {"cov": DataFrame, "mean": list}}`` of the
        model and of the saturated (h1) two-level model.
    vcov : DataFrame
        Covariance matrix of the free parameters (inverse observed information).
    N, J : int
        Teachers and schools.
    converged : bool
    iterations : int
    cluster : str
    cluster_sizes : tuple of int
        Size of every cluster (no data values; used by `twolevel_reliability`).
    warnings : tuple of str
        Non-convergence, negative variances (Heywood cases) and an EM h1 that ends below the
        model's log-likelihood (chisq then 0, as in lavaan).
    meta : Meta
    """

    estimates: pd.DataFrame
    fit_measures: Mapping[str, float]
    implied: Mapping[str, Any]
    h1: Mapping[str, Any]
    vcov: pd.DataFrame
    N: int
    J: int
    converged: bool
    iterations: int
    cluster: str
    cluster_sizes: tuple = ()
    warnings: tuple = ()
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"estimates": self.estimates, "fit_measures": dict(self.fit_measures),
                            "implied": _mom_to_json(self.implied), "h1": _mom_to_json(self.h1),
                            "vcov": self.vcov.reset_index(names="par"), "N": self.N, "J": self.J,
                            "converged": self.converged, "iterations": self.iterations,
                            "cluster": self.cluster, "cluster_sizes": list(self.cluster_sizes),
                            "warnings": list(self.warnings), "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TwoLevelResult":
        est = from_jsonable(d["estimates"])
        for c in ("lhs", "op", "rhs", "label"):
            est[c] = est[c].fillna("").astype(str)
        return cls(estimates=est, fit_measures=dict(d["fit_measures"]),
                   implied=_mom_from_json(d["implied"]), h1=_mom_from_json(d["h1"]),
                   vcov=from_jsonable(d["vcov"]).set_index("par").rename_axis(None),
                   N=int(d["N"]), J=int(d["J"]), converged=bool(d["converged"]),
                   iterations=int(d["iterations"]), cluster=str(d["cluster"]),
                   cluster_sizes=tuple(int(v) for v in d.get("cluster_sizes", ())),
                   warnings=tuple(d.get("warnings", ())),
                   meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        fm = self.fit_measures
        cols = ["lhs", "op", "rhs", "level", "est", "se", "z", "pvalue", "std.all"]
        e = self.estimates
        e = e[~((e["op"] == "~1") & (e["level"] == 1))][cols]
        notes = (f"Two-level ML (exact, all clusters): N = {self.N} in J = {self.J} clusters "
                 f"of {self.cluster}; chisq = {fm['chisq']:.3f}, df = {fm['df']:.0f}, "
                 f"p = {fm['pvalue']:.4f}, CFI = {fm['cfi']:.3f}, TLI = {fm['tli']:.3f}, "
                 f"RMSEA = {fm['rmsea']:.3f}, SRMR within = {fm['srmr_within']:.3f}, "
                 f"SRMR between = {fm['srmr_between']:.3f}.",
                 "Level 1 = within clusters, level 2 = between clusters (intercepts are at "
                 "level 2); SEs from the observed information, as lavaan 0.6-14.",
                 *(f"Warning: {w}" for w in self.warnings))
        return Table("Two-level CFA parameter estimates", e.reset_index(drop=True), notes=notes)


def _mom_to_json(m):
    out = {}
    for lev, d in m.items():
        out[lev] = {"cov": d["cov"].reset_index(names="var"), "mean": list(d["mean"])}
    return out


def _mom_from_json(m):
    return {lev: {"cov": from_jsonable(d["cov"]).set_index("var").rename_axis(None),
                  "mean": [float(v) for v in d["mean"]]} for lev, d in m.items()}


# ---------------------------------------------------------------------------------- fitting
def _level_partable(text: str, level: int, ov_names: Sequence[str], std_lv: bool = False
                    ) -> ParTable:
    rows = parse_syntax(text)
    if not rows:
        raise ModelSyntaxError(f"the level {level} block is empty", 1, 1, "")
    if any(r.op not in ("=~", "~~", "~1") for r in rows):
        bad = next(r for r in rows if r.op not in ("=~", "~~", "~1"))
        raise NotImplementedError(f"two-level CFA supports =~, ~~ and ~1 statements; line "
                                  f"{bad.line} has {bad.op!r}")
    if level == 1 and any(r.op == "~1" for r in rows):
        bad = next(r for r in rows if r.op == "~1")
        raise NotImplementedError(f"line {bad.line}: intercepts ({bad.lhs} ~ 1) belong to level 2 "
                                  "in a random-intercept model; remove them from level 1")
    pt = build_partable(rows, ov_names=ov_names, meanstructure=True, std_lv=std_lv)
    f = pt.frame.copy()
    f["block"] = level
    f["group"] = 1
    if level == 1:
        # lavaan: observed intercepts live at level 2; the within intercepts are fixed at 0
        m = (f["op"] == "~1") & (f["user"] == 0)
        f.loc[m, "free"] = 0
        f.loc[m, "ustart"] = 0.0
        f["free"] = np.where(f["free"] > 0, np.cumsum(f["free"] > 0), 0)
    return ParTable(f, pt.ov_names, pt.lv_names, 1, pt.group_labels, True, pt.constraints,
                    dict(pt.options))


def _srmr_level(S: np.ndarray, sigma: np.ndarray) -> float:
    """lavaan's two-level SRMR of one level: rms of vech(cov2cor(S) - cov2cor(Sigma))."""
    def c2c(M):
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1.0 / np.sqrt(np.diag(M))
        return M * np.outer(d, d)
    R = c2c(S) - c2c(sigma)
    vr, vc = vech_indices(S.shape[0])
    return float(np.sqrt(np.mean(R[vr, vc] ** 2)))


#: how the saturated two-level model is fitted: lavaan 0.6-14's EM, or maximised exactly
H1_METHODS = ("em", "exact")


def fit_twolevel(model: str, data: pd.DataFrame, *, cluster: str, std_lv: bool = False,
                 h1: str = "em", baseline: bool = True) -> TwoLevelResult:
    """Fit a two-level CFA by full-information ML (lavaan ``cfa(model, data, cluster=)``).

    The two-level entry of the estimator registry (`instrument.sem.cfa`): call it through
    ``cfa(model, data, cluster=...)`` (or its alias ``twolevel_cfa``), which validates the options.

    Parameters
    ----------
    model : str
        lavaan syntax with ``level: 1`` and ``level: 2`` blocks, e.g.::

            level: 1
              fw =~ y1 + y2 + y3 + y4 + y5 + y6
            level: 2
              fb =~ y1 + y2 + y3 + y4 + y5 + y6

        Defaults as lavaan's ``cfa()``: first loading fixed at 1, residual and latent
        (co)variances free, observed intercepts free at level 2 and fixed at 0 at level 1,
        latent means 0. Every observed variable must appear at both levels (within-only or
        between-only variables are not supported).
    data : DataFrame
        One row per level-1 unit (teacher); rows with a missing item are dropped (listwise).
    cluster : str
        The cluster column (school id).
    std_lv : bool
        Identify every factor (both levels) by fixing its variance at 1 and freeing all
        loadings (lavaan's ``std.lv = TRUE``) instead of the first loading.
    h1 : {"em", "exact"}
        How the saturated two-level model is fitted. ``"em"`` (default) follows lavaan
        0.6-14 (`saturated_em`: EM from identity matrices, stopped when logl gains < 1e-4), so
        chisq, baseline.chisq, CFI/TLI/RMSEA and SRMR equal lavaan's. ``"exact"`` maximises
        the h1 likelihood to convergence (the engine's optimiser); lavaan's EM stops short of that maximum, so
        its chisq is then larger (here by ~5e-4, chisq relative 3e-6) and SRMR differs by ~1e-4.
    baseline : bool
        Fit the baseline (independence at both levels, free means) for CFI/TLI.

    Returns
    -------
    TwoLevelResult

    Notes
    -----
    The log-likelihood is `twolevel_loglik`; the estimates maximise it with the engine's
    optimiser (`instrument.sem.estimators.ml.optimize`: Fisher scoring on the analytic gradient
    and the expected information `twolevel_expected_information`, with the structured secant
    correction and step halving, to max |d logl/dx| < 1e-9 N; one convergence report). SEs are sqrt(diag(H^-1)) with H the observed information (Hessian of -logl), lavaan 0.6-14's
    default for two-level data (``information = "observed"``). The test compares the model with
    the saturated two-level model (Sigma_W, Sigma_B, mu unrestricted; h1, fitted by the same
    optimiser): chisq = 2 (logl_h1 - logl), df = p(p+1) + p - npar. CFI/TLI use the
    baseline with diagonal Sigma_W and Sigma_B and free means (df = p(p+1) + p - 3p).
    RMSEA uses N = number of level-1 units. SRMR (lavaan's ``lav_fit_srmr_twolevel``): per level
    rms of vech(cov2cor(S_h1) - cov2cor(Sigma_hat)) including the (zero) diagonal, with
    srmr = srmr_within + srmr_between. fmin = -logl/N - p/2 log(2 pi), as lavaan prints.

    References
    ----------
    McDonald, R. P., & Goldstein, H. (1989). British Journal of Mathematical and Statistical
    Psychology, 42(2), 215-232. https://doi.org/10.1111/j.2044-8317.1989.tb00911.x
    Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
    Research, 22(3), 376-398. https://doi.org/10.1177/0049124194022003006
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    wtext, btext = split_levels(model)
    pt_w = _level_partable(wtext, 1, list(data.columns), std_lv)
    pt_b = _level_partable(btext, 2, list(data.columns), std_lv)
    if set(pt_w.ov_names) != set(pt_b.ov_names):
        raise NotImplementedError(
            "every observed variable must appear at both levels; within only: "
            f"{sorted(set(pt_w.ov_names) - set(pt_b.ov_names))}, between only: "
            f"{sorted(set(pt_b.ov_names) - set(pt_w.ov_names))}")
    lw = {x for x in pt_w.frame["label"] if x}
    lb = {x for x in pt_b.frame["label"] if x}
    if lw & lb:
        raise NotImplementedError(f"labels shared across levels ({sorted(lw & lb)}) are not "
                                  "supported (no cross-level constraints)")
    if cluster in pt_w.ov_names:
        raise ValueError(f"cluster={cluster!r} is also an observed variable of the model")
    ov = list(pt_w.ov_names)
    p = len(ov)
    d = select(data, ov, cluster=cluster, missing="listwise")
    stats = SampleStats([GroupStats.from_data(d.blocks[0], ov, cluster=cluster_stats_from(d))])
    cs = stats.groups[0].cluster
    warns = list(d.warnings) + data_warnings(stats, ["1"])
    st = _CFAStructure(pt_w, pt_b, ov)
    obj = TwoLevelObjective(st, cs)
    x, conv, iters = optimize_reporting(obj, st.start(cs), warns)
    logl = twolevel_loglik(cs, *st.moments(x))
    try:
        V = np.linalg.inv(obj.observed_information(x))
    except np.linalg.LinAlgError:
        V = np.full((st.nx, st.nx), np.nan)
    se_x = np.sqrt(np.where(np.diag(V) > 0, np.diag(V), np.nan))
    sat = _Saturated(p)
    if h1 == "exact":
        xs, logl1, conv1 = _maximum(sat, cs, warns, "saturated (h1)")
        HW, HB, hmu = sat.moments(xs)
    else:
        HW, HB, hmu, logl1, _ = saturated_em(cs)
        conv1 = True
    npar = st.nx
    df = sat.nx - npar
    chisq = max(2.0 * (logl1 - logl), 0.0)
    if 2.0 * (logl1 - logl) < 0:
        warns.append("the saturated model's EM (lavaan's rule: stop when logl gains < 1e-4) ends "
                     "below the fitted model's log-likelihood, so chisq is set to 0 as lavaan "
                     "does; h1='exact' gives the exact test.")
    base = None
    if baseline:
        bmod = _Saturated(p, diagonal=True)
        _, loglb, _ = _maximum(bmod, cs, warns, "baseline")
        base = TestStat(max(2.0 * (logl1 - loglb), 0.0), sat.nx - bmod.nx)
    fm: dict[str, float] = {"npar": npar, "fmin": -logl / cs.N - p / 2 * _LOG2PI}
    fm.update(fit_indices(TestStat(chisq, df), base, n=cs.N, ngroups=1,
                          likelihood=information_criteria(logl, logl1, npar, cs.N)))
    SW, SB, mu = st.moments(x)
    if np.any(np.diag(SW) <= 0) or np.any(np.diag(SB) < 0) or any(
            np.any(np.diag(m.matrices(xx)[0][k]) < 0) for m, xx in zip((st.mw, st.mb), st.split(x))
            for k in ("theta", "psi")):
        warns.append("some estimated variances are negative (Heywood case).")
    for w in warns:
        _warnings.warn(w, stacklevel=3)
    sw, sb = _srmr_level(HW, SW), _srmr_level(HB, SB)
    fm.update({"srmr": sw + sb, "srmr_within": sw, "srmr_between": sb})
    # parameter table
    est = _estimates(st, pt_w, pt_b, x, se_x)
    names = [f"{r.lhs}{r.op}{r.rhs}@{lev}" for lev, m in ((1, st.mw), (2, st.mb))
             for r in m.pt.frame.iloc[m.x_rows].itertuples()]
    mk = lambda M: pd.DataFrame(M, index=ov, columns=ov)  # noqa: E731
    return TwoLevelResult(
        estimates=est, fit_measures=fm,
        implied={"within": {"cov": mk(SW), "mean": [0.0] * p},
                 "between": {"cov": mk(SB), "mean": list(mu)}},
        h1={"within": {"cov": mk(HW), "mean": [0.0] * p},
            "between": {"cov": mk(HB), "mean": list(hmu)}},
        vcov=pd.DataFrame(V, index=names, columns=names), N=cs.N, J=cs.J,
        converged=bool(conv and conv1), iterations=iters, cluster=cluster,
        cluster_sizes=tuple(int(v) for v in cs.cluster_sizes), warnings=tuple(warns),
        meta=Meta(options={"estimator": "ML", "information": "observed", "cluster": cluster,
                           "h1": h1, "std_lv": std_lv, "model": model,
                           "method": "exact two-level ML"},
                  data_hash=d.data_hash))


def _maximum(struct, cs: ClusterStats, warns: list, what: str) -> tuple[np.ndarray, float, bool]:
    """Maximise the two-level likelihood of an auxiliary structure (h1, baseline) with the
    engine's optimiser; non-convergence is reported in ``warns`` under ``what``."""
    res = optimize(TwoLevelObjective(struct, cs), struct.start(cs))
    if not res.converged:
        warns.append(f"the {what} model did not converge ({res.message or 'unknown reason'}; "
                     f"max |gradient| = {res.grad_max:.3g})")
    return res.x, twolevel_loglik(cs, *struct.moments(res.x)), res.converged


def twolevel_information(model: str, data: pd.DataFrame, *, cluster: str,
                         estimates: pd.DataFrame, std_lv: bool = False) -> pd.DataFrame:
    """Observed information (Hessian of -logl) of a two-level CFA at given parameter values.

    Parameters
    ----------
    model, data, cluster, std_lv
        As `fit_twolevel`.
    estimates : DataFrame
        Columns ``lhs op rhs level est`` (e.g. lavaan's ``parameterEstimates``) holding a
        value for every free parameter.

    Returns
    -------
    DataFrame (npar x npar), rows/columns named ``lhs op rhs @level``; its inverse is the
    covariance matrix of the estimates (lavaan's ``vcov`` when evaluated at lavaan's values).

    Notes
    -----
    Central differences (step 1e-6 max(1, |x|)) of the analytic gradient of `twolevel_loglik`.
    """
    wtext, btext = split_levels(model)
    pt_w = _level_partable(wtext, 1, list(data.columns), std_lv)
    pt_b = _level_partable(btext, 2, list(data.columns), std_lv)
    ov = list(pt_w.ov_names)
    st = _CFAStructure(pt_w, pt_b, ov)
    cs = cluster_stats(data, ov, cluster)
    e = estimates.assign(rhs=estimates["rhs"].fillna("").astype(str))
    key = {(r.lhs, r.op, r.rhs, int(r.level)): float(r.est) for r in e.itertuples()}
    x, names = [], []
    for lev, m in ((1, st.mw), (2, st.mb)):
        for r in m.pt.frame.iloc[m.x_rows].itertuples():
            k = (r.lhs, r.op, r.rhs, lev)
            if k not in key:
                raise ValueError(f"estimates= has no row for {r.lhs} {r.op} {r.rhs} at level {lev}")
            x.append(key[k])
            names.append(f"{r.lhs}{r.op}{r.rhs}@{lev}")
    H = TwoLevelObjective(st, cs).observed_information(np.array(x))
    return pd.DataFrame(H, index=names, columns=names)


def _estimates(st: _CFAStructure, pt_w, pt_b, x, se_x) -> pd.DataFrame:
    z975 = _st.norm.ppf(0.975)
    xw, xb = st.split(x)
    sew, seb = st.split(se_x)
    recs = []
    for lev, m, xx, ss in ((1, st.mw, xw, sew), (2, st.mb, xb, seb)):
        vals = m.x_to_partable(xx)
        ses = np.zeros(m.nrows)
        ses[m.free_rows] = ss[m.x_col]
        imp = m.implied(xx)[0]
        with np.errstate(invalid="ignore"):
            sd_ov = np.sqrt(np.diag(imp.sigma))
            sd_lv = np.sqrt(np.diag(m.lv_cov(xx)[0]))
        ovi = {v: i for i, v in enumerate(m.ov_names)}
        lvi = {v: i for i, v in enumerate(m.lv_names)}
        for r, row in enumerate(m.pt.frame.itertuples()):
            est, se = float(vals[r]), float(ses[r])
            free = row.free > 0
            z = est / se if free and se > 0 else math.nan
            pv = 2 * _st.norm.sf(abs(z)) if free and se > 0 else math.nan

            def sd(v):
                return sd_ov[ovi[v]] if v in ovi else sd_lv[lvi[v]]
            if row.op == "=~":
                std = est * sd(row.lhs) / sd(row.rhs)
            elif row.op == "~~" and row.lhs != row.rhs and row.lhs in ovi:
                # lavaan: residual covariances are scaled by the residual variances
                th = np.diag(m.matrices(xx)[0]["theta"])
                std = est / math.sqrt(th[ovi[row.lhs]] * th[ovi[row.rhs]])
            elif row.op == "~~":
                std = est / (sd(row.lhs) * sd(row.rhs))
            elif row.op == "~1":
                s = sd(row.lhs)
                std = est / s if s > 0 else math.nan
            else:
                std = math.nan
            recs.append({"lhs": row.lhs, "op": row.op, "rhs": row.rhs, "level": lev,
                         "block": lev, "label": row.label, "est": est, "se": se, "z": z,
                         "pvalue": pv, "ci.lower": est - z975 * se, "ci.upper": est + z975 * se,
                         "std.all": std})
    return pd.DataFrame(recs)


# ---------------------------------------------------------------------------------- reliability
@dataclass(frozen=True)
class TwoLevelReliability:
    """Level-specific and school-mean reliability of the factors of a two-level CFA.

    Attributes
    ----------
    table : DataFrame
        One row per factor and level: ``level`` (1 within, 2 between), ``factor``, ``items``,
        ``omega`` (level-specific omega: Geldhof et al., 2014), and for level-2 factors
        ``omega_B_shared`` and ``IRR`` (Lai, 2021, a shared school construct measured by the
        school mean of the items), ``icc`` (model-implied ICC of the unit-weighted composite),
        ``n_harmonic`` and ``school_mean_reliability`` (ICC(2) of that composite at
        ``n_harmonic``); NaN where not defined (level 1).
    meta : Meta
    """

    table: pd.DataFrame
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"table": self.table, "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TwoLevelReliability":
        t = from_jsonable(d["table"])
        return cls(t, Meta.from_dict(d.get("meta", {})))

    def between(self, factor: str | None = None) -> pd.Series:
        """The row of a level-2 factor (the first one when ``factor`` is None)."""
        b = self.table[self.table["level"] == 2]
        if factor is not None:
            b = b[b["factor"] == factor]
        if not len(b):
            raise KeyError(f"no level-2 factor {factor!r}; factors: {list(self.table['factor'])}")
        return b.iloc[0]

    def summary(self) -> Table:
        src = "unrestricted (h1)" if self.meta.options.get("obs_var", True) else "model-implied"
        return Table("Level-specific and school-level reliability from the two-level CFA",
                     self.table,
                     notes=(f"omega: (sum lambda)^2 psi / 1'Sigma_level 1 with the {src} "
                            "level covariance (Geldhof, Preacher & Zyphur, 2014); "
                            "omega_B_shared and IRR: reliability of the observed school mean of "
                            "the items for a shared construct (Lai, 2021), with Sigma_W / "
                            "n_harmonic in the denominator.",))


def twolevel_reliability(fit: TwoLevelResult, *, cluster_sizes: Sequence[int] | None = None,
                         obs_var: bool = True) -> TwoLevelReliability:
    """Level-specific omega and between-level (school) reliability of a two-level CFA.

    Parameters
    ----------
    fit : TwoLevelResult
    cluster_sizes : sequence of int, optional
        Sizes of the clusters whose means are scored (their harmonic mean ñ enters Lai's
        coefficients and the school-mean reliability); default: the fitted data's clusters.
    obs_var : bool
        Denominators from the unrestricted (h1) Sigma_W / Sigma_B (True, semTools'
        ``compRelSEM(obs.var = TRUE)`` default) or from the model-implied ones (False; then,
        with uncorrelated residuals, ``omega`` is Geldhof et al.'s formula exactly).

    Returns
    -------
    TwoLevelReliability

    Notes
    -----
    For factor f at level l with loadings lambda on its k items, variance psi, and the level's
    covariance Sigma_l of those items (h1 or model-implied, see ``obs_var``):

    * omega_l = (1'lambda)^2 psi / 1'Sigma_l 1 (Geldhof, Preacher & Zyphur, 2014, eq. 9-10;
      with model-implied Sigma_l and diagonal Theta this is (1'lambda)^2 psi /
      ((1'lambda)^2 psi + 1'Theta 1)): the reliability of the *latent* level-l composite;
      for level 2 the school-level reliability of the construct.
    * For a level-2 (shared) factor, the reliability of the *observed* school mean of the
      items (Lai, 2021): omega_B = (1'lambda_B)^2 psi_B / (1'Sigma_B 1 + 1'Sigma_W 1 / ñ) and
      IRR = 1'Sigma_B 1 / (1'Sigma_B 1 + 1'Sigma_W 1 / ñ), ñ the harmonic mean cluster size
      (semTools ``compRelSEM(shared=)``).
    * icc = 1'Sigma_B 1 / (1'Sigma_B 1 + 1'Sigma_W 1) of the unit-weighted composite (model-
      implied) and its school-mean reliability ñ icc / (1 + (ñ - 1) icc) (ICC(2),
      Spearman-Brown); with ``obs_var=False``, IRR equals it.

    Tested against semTools 0.5-6 ``compRelSEM`` (level-specific omega, omega_B, IRR, with
    obs.var TRUE and FALSE).

    References
    ----------
    Geldhof, G. J., Preacher, K. J., & Zyphur, M. J. (2014). Reliability estimation in a
    multilevel confirmatory factor analysis framework. Psychological Methods, 19(1), 72-91.
    https://doi.org/10.1037/a0032138
    Lai, M. H. C. (2021). Composite reliability of multilevel data: It's about observed scores
    and construct meanings. Psychological Methods, 26(1), 90-102.
    https://doi.org/10.1037/met0000287
    """
    if not isinstance(fit, TwoLevelResult):
        raise TypeError(f"fit= must be a TwoLevelResult; got {type(fit).__name__}")
    if not isinstance(obs_var, bool):
        raise TypeError(f"obs_var= must be True or False; got {obs_var!r}")
    cz = np.asarray(fit.cluster_sizes if cluster_sizes is None else cluster_sizes, float)
    if cz.ndim != 1 or len(cz) == 0 or np.any(cz < 1):
        raise ValueError("cluster_sizes= must be a non-empty sequence of sizes >= 1")
    nh = float(len(cz) / np.sum(1.0 / cz))
    src = fit.h1 if obs_var else fit.implied
    S = {1: src["within"]["cov"], 2: src["between"]["cov"]}
    IW, IB = fit.implied["within"]["cov"], fit.implied["between"]["cov"]
    e = fit.estimates
    rows = []
    for lev in (1, 2):
        b = e[e["level"] == lev]
        for f in dict.fromkeys(b.loc[b["op"] == "=~", "lhs"]):
            lam = b[(b["op"] == "=~") & (b["lhs"] == f)]
            items = list(lam["rhs"])
            psi = float(b[(b["op"] == "~~") & (b["lhs"] == f) & (b["rhs"] == f)]["est"].iloc[0])
            true = float(lam["est"].sum()) ** 2 * psi
            tot = float(S[lev].loc[items, items].to_numpy().sum())
            row = {"level": lev, "factor": f, "items": " + ".join(items), "omega": true / tot,
                   "omega_B_shared": math.nan, "IRR": math.nan, "icc": math.nan,
                   "n_harmonic": math.nan, "school_mean_reliability": math.nan}
            if lev == 2:
                sb = tot
                sw = float(S[1].loc[items, items].to_numpy().sum())
                ib = float(IB.loc[items, items].to_numpy().sum())
                iw = float(IW.loc[items, items].to_numpy().sum())
                icc = ib / (ib + iw)
                row.update({"omega_B_shared": true / (sb + sw / nh), "IRR": sb / (sb + sw / nh),
                            "icc": icc, "n_harmonic": nh,
                            "school_mean_reliability": nh * icc / (1 + (nh - 1) * icc)})
            rows.append(row)
    return TwoLevelReliability(pd.DataFrame(rows),
                               Meta(options={"obs_var": obs_var, "n_harmonic": nh,
                                             "cluster_sizes": "fit" if cluster_sizes is None
                                             else "given"}))
