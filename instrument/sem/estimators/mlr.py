"""Robust maximum likelihood (MLR): casewise scores, h1 information matrices, Huber-White vcov.

Everything here works on plain arrays, one group at a time, with the engine's conventions:

* data ``X`` (n x p), implied ``sigma`` (p x p) and ``mu`` (p,);
* the moment vector ``m = [mu (only with a meanstructure), vech(sigma)]`` where ``vech`` is
  lavaan's ``lav_matrix_vech``: the lower triangle taken column by column
  (s11, s21, s31, s22, s32, s33 for p = 3);
* ``delta`` = d m / d x' (rows as in ``m``, columns the free parameters ``x``).

All information matrices are *unit* information matrices (divided by N) as in lavaan, and the
objective whose Hessian is the "observed information" is ``-logl / N`` (for complete-data ML this
is lavaan's ``fx = F_ML / 2`` plus a constant, summed over groups with weights ``n_g / N``).

Notes
-----
lavaan 0.6-14 defines ``estimator = "MLR"`` as ML estimates with ``se = "robust.huber.white"``,
``test = "yuan.bentler.mplus"``, ``information = "observed"`` (the Hessian of the objective) and
``h1.information = "structured"`` (h1 matrices evaluated at the model-implied moments):

.. math::  \\mathrm{vcov} = \\frac{1}{N} E^{-1} B_0 E^{-1},\\qquad
           B_0 = \\sum_g \\frac{n_g}{N} \\Delta_g' B_{1g} \\Delta_g

with ``E`` the observed information (``lav_model_information_observed``/``lav_model_hessian``)
and ``B1`` the first-order (outer product of casewise scores) information
(``lav_mvnorm_information_firstorder``). With ``cluster=`` the scores are first summed within
clusters and multiplied by ``sqrt(C / (C - 1))`` (C = number of clusters) before the cross
product, as lavaan does.

Use in the engine
-----------------
`instrument.sem.ml_fit.fit_partable` fits ML as usual, then takes the sandwich of the model's
Jacobian (`instrument.sem.vcov.sandwich`, which equals `mlr_vcov` from projected scores; SEs of
the table rows are ``K V K'``) and the Yuan-Bentler (Mplus) test
(`instrument.sem.test.yuan_bentler`). ``cluster=`` needs a
meanstructure (lavaan frees the intercepts), as with lavaan.

References
----------
Huber, P. J. (1967). The behavior of maximum likelihood estimates under nonstandard conditions.
Proceedings of the Fifth Berkeley Symposium, 1, 221-233.
White, H. (1982). Maximum likelihood estimation of misspecified models. Econometrica, 50(1), 1-25.
https://doi.org/10.2307/1912526
Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of Statistical
Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "vech_indices", "vech", "vech_weights", "RobustGroup", "mvnorm_scores",
    "h1_information_firstorder", "h1_information_observed", "h1_information_expected",
    "ml_moment_gradient", "observed_information", "firstorder_information", "gamma_adf",
    "huber_white_vcov", "MLRVcov", "mlr_vcov", "sample_moments",
]


# --------------------------------------------------------------------------------------------
# vech helpers
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def vech_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of lavaan's ``vech`` (lower triangle, column by column).

    Returns
    -------
    rows, cols : ndarray of int
        ``vech(A) == A[rows, cols]``; for p = 3 the pairs are (0,0), (1,0), (2,0), (1,1), (2,1),
        (2,2), as ``lav_matrix_vech``.
    """
    up_r, up_c = np.triu_indices(p)
    rows, cols = up_c.copy(), up_r.copy()
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


def vech(a: np.ndarray) -> np.ndarray:
    """lavaan's ``lav_matrix_vech`` of a square matrix (works on stacked ``(..., p, p)`` too)."""
    r, c = vech_indices(a.shape[-1])
    return a[..., r, c]


@lru_cache(maxsize=64)
def vech_weights(p: int) -> np.ndarray:
    """0.5 on the diagonal elements of ``vech``, 1 off the diagonal.

    The derivative of a function of a symmetric matrix with respect to its ``vech`` is
    ``w * (2 * G)`` where ``G`` is the symmetric-matrix derivative; equivalently the duplication
    matrix rule D'vec(G) (off-diagonal elements counted twice).
    """
    r, c = vech_indices(p)
    w = np.where(r == c, 0.5, 1.0)
    w.setflags(write=False)
    return w


def sample_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and covariance with divisor N (lavaan's convention 1)."""
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    Xc = X - mean
    return mean, Xc.T @ Xc / X.shape[0]


def _sym_inv(a: np.ndarray) -> np.ndarray:
    c = np.linalg.cholesky(a)
    ci = np.linalg.inv(c)
    return ci.T @ ci


# --------------------------------------------------------------------------------------------
# per-group input
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RobustGroup:
    """One group's data and model quantities for the MLR computations.

    Attributes
    ----------
    data : ndarray (n, p)
        Complete data of the group (rows = respondents).
    sigma : ndarray (p, p)
        Model-implied covariance matrix at the estimates.
    mu : ndarray (p,) or None
        Model-implied means; ``None`` when the model has no meanstructure (then the saturated
        sample means are used, as lavaan does).
    delta : ndarray (p* (+p), nx) or None
        Jacobian of ``m = [mu, vech(sigma)]`` w.r.t. the free parameters (mean rows only with a
        meanstructure).
    cluster : ndarray (n,) or None
        Cluster labels for cluster-robust first-order information (lavaan ``cluster=``).
    """

    data: np.ndarray
    sigma: np.ndarray
    mu: np.ndarray | None = None
    delta: np.ndarray | None = None
    cluster: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(np.asarray(self.data).shape[0])

    @property
    def meanstructure(self) -> bool:
        return self.mu is not None

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample mean and N-divisor covariance of ``data``."""
        return sample_moments(self.data)


# --------------------------------------------------------------------------------------------
# h1 (saturated-model) quantities
# --------------------------------------------------------------------------------------------
def mvnorm_scores(X: np.ndarray, sigma: np.ndarray, mu: np.ndarray, *,
                  meanstructure: bool = True, sigma_inv: np.ndarray | None = None) -> np.ndarray:
    """Casewise scores of the normal log-likelihood w.r.t. ``[mu, vech(sigma)]``.

    Parameters
    ----------
    X : ndarray (n, p)
    sigma, mu : the moments at which the scores are evaluated (``mu`` = sample means when the
        model has no meanstructure).
    meanstructure : bool
        Include the ``mu`` columns.

    Returns
    -------
    ndarray (n, p + p*) or (n, p*)

    Notes
    -----
    With ``z_i = sigma^{-1} (x_i - mu)``: the mean score is ``z_i``; the score of ``sigma_rc`` is
    ``w_rc (z_ir z_ic - [sigma^{-1}]_rc)`` with ``w = 1/2`` on the diagonal and 1 off it
    (lavaan ``lav_mvnorm_scores_mu_vech_sigma``). Fully vectorised (no loop over rows).
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    P = _sym_inv(sigma) if sigma_inv is None else sigma_inv
    Z = (X - mu) @ P
    r, c = vech_indices(p)
    w = vech_weights(p)
    sc = (Z[:, r] * Z[:, c] - P[r, c]) * w
    if meanstructure:
        return np.concatenate([Z, sc], axis=1)
    return sc


def _cluster_sum(scores: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Sum scores within clusters, times sqrt(C/(C-1)) (lavaan's small-sample correction)."""
    _, inv = np.unique(np.asarray(cluster), return_inverse=True)
    nc = int(inv.max()) + 1
    out = np.zeros((nc, scores.shape[1]))
    np.add.at(out, inv, scores)
    if nc < 2:
        raise ValueError("cluster= needs at least 2 clusters; got 1.")
    return out * np.sqrt(nc / (nc - 1.0))


def h1_information_firstorder(X: np.ndarray, sigma: np.ndarray, mu: np.ndarray, *,
                              meanstructure: bool = True,
                              cluster: np.ndarray | None = None) -> np.ndarray:
    """Unit first-order information ``B1 = S'S / n`` of the casewise scores ``S``.

    Matches lavaan ``lav_mvnorm_information_firstorder`` (and ``lavInspect(fit,
    "h1.information.first.order")`` with ``h1.information = "structured"`` when ``sigma, mu`` are
    the implied moments). With ``cluster`` the scores are summed per cluster and multiplied by
    ``sqrt(C / (C - 1))`` before the cross product; the divisor stays n.
    """
    S = mvnorm_scores(X, sigma, mu, meanstructure=meanstructure)
    n = S.shape[0]
    if cluster is not None:
        S = _cluster_sum(S, cluster)
    return S.T @ S / n


def _tr_pair(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``F[a, b] = w_a w_b sum_{sym} tr(E_a A E_b B)`` over vech elements a, b (A, B symmetric).

    Equals ``D'(A kron B)D`` symmetrised (D = duplication matrix) without forming the Kronecker
    product.
    """
    p = A.shape[0]
    r, c = vech_indices(p)
    w = vech_weights(p)
    t = (A[np.ix_(c, r)] * B[np.ix_(r, c)] + A[np.ix_(c, c)] * B[np.ix_(r, r)]
         + A[np.ix_(r, r)] * B[np.ix_(c, c)] + A[np.ix_(r, c)] * B[np.ix_(c, r)])
    return t * np.outer(w, w)


def h1_information_expected(sigma: np.ndarray, *, meanstructure: bool = True) -> np.ndarray:
    """Unit expected information of the saturated normal model at ``sigma``.

    ``[[sigma^-1, 0], [0, 1/2 D'(sigma^-1 kron sigma^-1) D]]`` (lavaan
    ``lav_mvnorm_information_expected``).
    """
    P = _sym_inv(sigma)
    ss = 0.5 * _tr_pair(P, P)
    if not meanstructure:
        return ss
    p = P.shape[0]
    out = np.zeros((p + ss.shape[0],) * 2)
    out[:p, :p] = P
    out[p:, p:] = ss
    return out


def h1_information_observed(sigma: np.ndarray, mu: np.ndarray, sample_cov: np.ndarray,
                            sample_mean: np.ndarray, *, meanstructure: bool = True) -> np.ndarray:
    """Unit observed information (Hessian of ``-logl/n`` w.r.t. ``[mu, vech(sigma)]``).

    Notes
    -----
    ``-logl/n = 1/2 [p log 2pi + log|Sigma| + tr(Sigma^-1 W)]`` with ``W = S + d d'`` and
    ``d = ybar - mu``. With ``P = Sigma^-1`` and ``Q = P W P``:

    * mean block: ``P``;
    * mean-covariance block: ``d(-P d)/d sigma_b = P E_b P d``;
    * covariance block: ``1/2 [-tr(E_a P E_b P) + tr(E_a P E_b Q) + tr(E_a Q E_b P)]``.

    At ``W = Sigma`` this is the expected information. Matches lavaan
    ``lav_mvnorm_information_observed_samplestats``.
    """
    P = _sym_inv(sigma)
    p = P.shape[0]
    mu_used = mu if (meanstructure and mu is not None) else sample_mean
    d = sample_mean - mu_used
    W = sample_cov + np.outer(d, d)
    Q = P @ W @ P
    ss = 0.5 * (-_tr_pair(P, P) + _tr_pair(P, Q) + _tr_pair(Q, P))
    ss = 0.5 * (ss + ss.T)
    if not meanstructure:
        return ss
    r, c = vech_indices(p)
    w = vech_weights(p)
    v = P @ d
    ms = (P[:, r] * v[c] + P[:, c] * v[r]) * w
    out = np.zeros((p + ss.shape[0],) * 2)
    out[:p, :p] = P
    out[:p, p:] = ms
    out[p:, :p] = ms.T
    out[p:, p:] = ss
    return out


def ml_moment_gradient(sigma: np.ndarray, mu: np.ndarray | None, sample_cov: np.ndarray,
                       sample_mean: np.ndarray, *, meanstructure: bool = True) -> np.ndarray:
    """Gradient of ``-logl/n`` w.r.t. ``m = [mu, vech(sigma)]`` (complete data).

    ``d/d mu = -P d``; ``d/d vech(sigma) = w * (P - P W P)`` with ``w`` = 1/2 on the diagonal.
    """
    P = _sym_inv(sigma)
    p = P.shape[0]
    mu_used = mu if (meanstructure and mu is not None) else sample_mean
    d = sample_mean - mu_used
    W = sample_cov + np.outer(d, d)
    G = P - P @ W @ P
    r, c = vech_indices(p)
    gs = G[r, c] * vech_weights(p)
    if meanstructure:
        return np.concatenate([-(P @ d), gs])
    return gs


def gamma_adf(X: np.ndarray, *, meanstructure: bool = False) -> np.ndarray:
    """Asymptotic (ADF) covariance of ``sqrt(N)[ybar, vech(S)]`` with divisor N.

    The covariance matrix of the casewise vectors ``[x_i - ybar, vech((x_i - ybar)(x_i - ybar)')]``
    (lavaan ``lavInspect(fit, "gamma")``, ``lav_samplestats_Gamma``); equals
    ``A1^-1 B1 A1^-1`` of the unstructured h1 matrices for complete data.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    Xc = X - X.mean(axis=0)
    r, c = vech_indices(p)
    Z = Xc[:, r] * Xc[:, c]
    Z = Z - Z.mean(axis=0)
    if meanstructure:
        Z = np.concatenate([Xc, Z], axis=1)
    return Z.T @ Z / n


# --------------------------------------------------------------------------------------------
# model (h0) information and the sandwich
# --------------------------------------------------------------------------------------------
def _richardson_curvature(delta_fn: Callable[[np.ndarray], Sequence[np.ndarray]], x: np.ndarray,
                          grads: Sequence[np.ndarray], weights: Sequence[float],
                          h: float) -> np.ndarray:
    """``sum_g w_g sum_k g_gk d^2 m_gk / dx dx'`` by 4-point differences of ``delta_fn``.

    The same 4-point (Richardson) stencil lavaan's ``lav_model_hessian`` uses, applied to the
    Jacobian with the moment gradient held fixed.
    """
    x = np.asarray(x, dtype=float)
    nx = x.size
    out = np.zeros((nx, nx))

    def dg(xx: np.ndarray) -> np.ndarray:
        ds = delta_fn(xx)
        return sum(wg * (np.asarray(D).T @ g) for D, g, wg in zip(ds, grads, weights))

    for j in range(nx):
        e = np.zeros(nx)
        e[j] = h
        out[:, j] = (dg(x - 2 * e) - 8 * dg(x - e) + 8 * dg(x + e) - dg(x + 2 * e)) / (12 * h)
    return 0.5 * (out + out.T)


def observed_information(groups: Sequence[RobustGroup], *,
                         delta_fn: Callable[[np.ndarray], Sequence[np.ndarray]] | None = None,
                         x: np.ndarray | None = None, h: float = 1e-6) -> np.ndarray:
    """Unit observed information: the Hessian of ``-logl/N`` w.r.t. the free parameters.

    Parameters
    ----------
    groups : sequence of RobustGroup
        Each with ``delta`` at the estimates.
    delta_fn, x : optional
        ``delta_fn(x) -> list of per-group Jacobians``; when given, the second-derivative term
        ``sum_k (d f / d m_k) d^2 m_k / dx dx'`` is added by 4-point differences of ``delta_fn``
        around ``x`` (step ``h``, lavaan's default 1e-6). Without it, only the
        ``Delta' A1 Delta`` term is returned (exact when the implied moments are linear in x, e.g.
        the independence model; an approximation otherwise).

    Returns
    -------
    ndarray (nx, nx)

    Notes
    -----
    ``H = sum_g (n_g/N) [Delta_g' A1obs_g Delta_g + sum_k g_gk d^2 m_gk/dx dx']`` with ``A1obs``
    the structured observed h1 information (`h1_information_observed`) and ``g`` the moment
    gradient (`ml_moment_gradient`). This is what lavaan computes numerically in
    ``lav_model_hessian`` for ``information = "observed"``.
    """
    ntot = sum(g.n for g in groups)
    H = 0.0
    grads, wts = [], []
    for g in groups:
        ybar, S = g.moments()
        A = h1_information_observed(g.sigma, g.mu, S, ybar, meanstructure=g.meanstructure)
        fg = g.n / ntot
        H = H + fg * (g.delta.T @ A @ g.delta)
        grads.append(ml_moment_gradient(g.sigma, g.mu, S, ybar, meanstructure=g.meanstructure))
        wts.append(fg)
    if delta_fn is not None:
        if x is None:
            raise ValueError("observed_information: delta_fn= needs x= (the estimates).")
        H = H + _richardson_curvature(delta_fn, x, grads, wts, h)
    return 0.5 * (H + H.T)


def firstorder_information(groups: Sequence[RobustGroup], *,
                           structured: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """Model first-order information ``B0 = sum_g (n_g/N) Delta_g' B1_g Delta_g``.

    Returns
    -------
    B0 : ndarray (nx, nx)
        The group-weighted total (lavaan ``lav_model_information_firstorder``).
    B0_group : list of ndarray
        Unweighted per-group ``Delta_g' B1_g Delta_g`` (lavaan's ``attr(, "B0.group")``).
    """
    ntot = sum(g.n for g in groups)
    B0 = 0.0
    per = []
    for g in groups:
        ybar, S = g.moments()
        if structured:
            mu = g.mu if g.meanstructure else ybar
            sig = g.sigma
        else:
            mu, sig = ybar, S
        B1 = h1_information_firstorder(g.data, sig, mu, meanstructure=g.meanstructure,
                                       cluster=g.cluster)
        b = g.delta.T @ B1 @ g.delta
        per.append(b)
        B0 = B0 + (g.n / ntot) * b
    return B0, per


def huber_white_vcov(E_inv: np.ndarray, B0: np.ndarray, ntotal: int) -> np.ndarray:
    """Sandwich ``E^-1 B0 E^-1 / N`` (lavaan ``se = "robust.huber.white"``)."""
    V = E_inv @ B0 @ E_inv / ntotal
    return 0.5 * (V + V.T)


@dataclass(frozen=True)
class MLRVcov:
    """Result of `mlr_vcov`.

    Attributes
    ----------
    vcov : ndarray (nx, nx)
        Huber-White covariance matrix of the free parameters.
    se : ndarray (nx,)
        Its square-root diagonal.
    information : ndarray
        Unit observed information ``E`` (lavaan ``lavInspect(fit, "information.observed")``).
    information_inv : ndarray
        ``E^-1``.
    B0 : ndarray
        Unit first-order information (``lavInspect(fit, "information.first.order")``).
    B0_group : tuple of ndarray
        Unweighted per-group first-order blocks (needed by the Yuan-Bentler trace).
    ntotal : int
    """

    vcov: np.ndarray
    se: np.ndarray
    information: np.ndarray
    information_inv: np.ndarray
    B0: np.ndarray
    B0_group: tuple
    ntotal: int

    def to_dict(self) -> dict:
        from instrument.results import to_jsonable
        return to_jsonable({"vcov": self.vcov, "se": self.se, "information": self.information,
                            "information_inv": self.information_inv, "B0": self.B0,
                            "B0_group": list(self.B0_group), "ntotal": self.ntotal})

    @classmethod
    def from_dict(cls, d: dict) -> "MLRVcov":
        a = lambda k: np.asarray(d[k], dtype=float)  # noqa: E731
        return cls(vcov=a("vcov"), se=a("se"), information=a("information"),
                   information_inv=a("information_inv"), B0=a("B0"),
                   B0_group=tuple(np.asarray(b, dtype=float) for b in d["B0_group"]),
                   ntotal=int(d["ntotal"]))

    def summary(self, names: Sequence[str] | None = None):
        from instrument.results import Table
        names = list(names) if names is not None else [f"x{i + 1}" for i in range(self.se.size)]
        return Table("Huber-White (MLR) standard errors",
                     pd.DataFrame({"parameter": names, "se": self.se}), digits=4)


def mlr_vcov(groups: Sequence[RobustGroup], *,
             delta_fn: Callable[[np.ndarray], Sequence[np.ndarray]] | None = None,
             x: np.ndarray | None = None, information: np.ndarray | None = None,
             h: float = 1e-6) -> MLRVcov:
    """Huber-White (MLR) covariance matrix of the free parameters, lavaan's definition.

    Parameters
    ----------
    groups : sequence of RobustGroup
        Per group data, implied moments at the estimates, ``delta`` and optional ``cluster``.
    delta_fn, x : optional
        See `observed_information`; needed for an exact observed information when the implied
        moments are non-linear in x (any CFA with free loadings).
    information : ndarray, optional
        A precomputed unit observed information (e.g. the engine's analytic Hessian); when given,
        ``delta_fn`` is not used.

    Returns
    -------
    MLRVcov

    Notes
    -----
    ``vcov = E^-1 B0 E^-1 / N`` (see the module docstring). With equality constraints, pass the
    Jacobians w.r.t. the unique parameters (``Delta K``): the result equals lavaan's augmented
    inverse for linear equality constraints.

    References
    ----------
    Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
    structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
    https://doi.org/10.1111/0081-1750.00078
    """
    if not groups:
        raise ValueError("mlr_vcov: groups= must contain at least one group.")
    for i, g in enumerate(groups):
        if g.delta is None:
            raise ValueError(f"mlr_vcov: group {i + 1} has no delta (Jacobian d m / d x').")
        if np.isnan(np.asarray(g.data, dtype=float)).any():
            raise ValueError(f"mlr_vcov: group {i + 1} data contain NaN; use "
                             "instrument.sem.estimators.fiml.fiml_mlr_vcov for missing data.")
    ntot = sum(g.n for g in groups)
    E = information if information is not None else observed_information(
        groups, delta_fn=delta_fn, x=x, h=h)
    E_inv = np.linalg.inv(E)
    E_inv = 0.5 * (E_inv + E_inv.T)
    B0, per = firstorder_information(groups, structured=True)
    V = huber_white_vcov(E_inv, B0, ntot)
    return MLRVcov(vcov=V, se=np.sqrt(np.clip(np.diag(V), 0, None)), information=E,
                   information_inv=E_inv, B0=B0, B0_group=tuple(per), ntotal=ntot)
