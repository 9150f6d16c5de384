"""Slow reference versions of the MLR pieces, from plain per-group data (`RobustGroup`): the
observed information with the curvature by 4-point differences of Delta, the first-order
information from the full score matrix, the Huber-White sandwich and the ADF Gamma.

The engine computes the same quantities in parameter space (`instrument.sem.vcov`:
`observed_information`, `sandwich`); these restate the definitions from
`instrument.sem.estimators.mlr`'s h1 building blocks so the two routes check each other
(``tests/test_cfa_mlrfiml.py``, ``tests/test_robust_mlr.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from instrument.sem.estimators.mlr import (MLRVcov, _richardson_curvature,
                                           h1_information_firstorder, h1_information_observed,
                                           huber_white_vcov, ml_moment_gradient, sample_moments,
                                           vech_indices)


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
