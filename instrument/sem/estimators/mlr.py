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
Jacobian (`instrument.sem.vcov.sandwich`, from scores projected on the parameters; SEs of
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
    "vech_indices", "vech", "vech_weights", "mvnorm_scores",
    "h1_information_firstorder", "h1_information_observed", "h1_information_expected",
    "ml_moment_gradient", "huber_white_vcov", "MLRVcov", "sample_moments",
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


def huber_white_vcov(E_inv: np.ndarray, B0: np.ndarray, ntotal: int) -> np.ndarray:
    """Sandwich ``E^-1 B0 E^-1 / N`` (lavaan ``se = "robust.huber.white"``)."""
    V = E_inv @ B0 @ E_inv / ntotal
    return 0.5 * (V + V.T)


@dataclass(frozen=True)
class MLRVcov:
    """A Huber-White covariance and its pieces (`instrument.sem.vcov.sandwich`,
    `instrument.sem.estimators.fiml.fiml_mlr_vcov`).

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
