"""The model-free algebra of WLSMV: DWLS information and the robust ("sandwich") covariance of the
estimates, given the model Jacobian Delta.

A WLSMV estimator needs, besides the DWLS fit function (`instrument.sem.polychoric.dwls_fx`),
formulas that only combine the model Jacobian ``Delta_g = d sigma_g / d x`` (rows in the
order of ``wls_obs``, columns the optimiser's free parameters) with the sample statistics
(`SampleStats`: ``WLS_V``, ``NACOV``, ``n``). They live here so the estimator only has
to supply Delta; the tests feed lavaan's own Delta (``lavInspect(fit, "delta")``) and reproduce
lavaan's standard errors. The scaled-shifted test is `instrument.sem.test.scaled_shifted`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from instrument.sem.linalg import gram, sparse_if_sparse
from instrument.sem.samplestats import SampleStats

__all__ = ["dwls_information", "dwls_vcov_robust", "gamma_wd"]


def _check(delta: Sequence[np.ndarray], stats: SampleStats) -> list[np.ndarray]:
    if len(delta) != stats.ngroups:
        raise ValueError(f"delta= has {len(delta)} groups; the sample statistics have "
                         f"{stats.ngroups}.")
    out = []
    for D, g in zip(delta, stats.ordinal):
        D = np.asarray(D, float)
        if D.ndim != 2 or D.shape[0] != len(g.wls_obs):
            raise ValueError(f"delta= for group {g.group!r} must have {len(g.wls_obs)} rows (one "
                             f"per wls_obs element); got shape {D.shape}.")
        if g.NACOV is None:
            raise ValueError("the sample statistics were computed with nacov=False.")
        out.append(D)
    if len({D.shape[1] for D in out}) != 1:
        raise ValueError("delta= matrices must all have one column per free parameter.")
    return out


def _fg(stats: SampleStats) -> np.ndarray:
    n = np.array([g.n for g in stats.ordinal], float)
    return n / n.sum()


def dwls_information(delta: Sequence[np.ndarray], stats: SampleStats) -> np.ndarray:
    """Expected information of the DWLS estimator (unit-N scale).

    Parameters
    ----------
    delta : sequence of ndarray
        Per group, ``d wls_est / d x`` (``len(wls_obs)`` x ``nx``).
    stats : SampleStats

    Returns
    -------
    ndarray (nx, nx)
        ``E = sum_g (n_g / N) Delta_g' WLS_V_g Delta_g``.

    Notes
    -----
    lavaan 0.6-14 ``lav_model_information`` (expected) for estimator DWLS.
    """
    D = _check(delta, stats)
    fg = _fg(stats)
    X = [np.sqrt(np.diag(g.WLS_V))[:, None] * Dg for Dg, g in zip(D, stats.ordinal)]
    return sum(f * gram(Xg) for f, Xg in zip(fg, X))


def gamma_wd(delta: Sequence[np.ndarray], stats: SampleStats) -> list[np.ndarray]:
    """Per group ``NACOV_g @ WLS_V_g @ Delta_g`` (moments x parameters), the one product with the
    moment-sized NACOV that the robust covariance (`dwls_vcov_robust`) and the scaled-shifted test
    (`instrument.sem.test.scaled_shifted.scaled_shifted`) share."""
    out = []
    for D, g in zip(delta, stats.ordinal):
        WD = sparse_if_sparse(np.diag(g.WLS_V)[:, None] * np.asarray(D, float))
        # NACOV symmetric: NACOV WD = (WD' NACOV)', a sparse product when WD is mostly zeros
        out.append(g.NACOV @ WD if isinstance(WD, np.ndarray) else (WD.T @ g.NACOV).T)
    return out


def dwls_vcov_robust(delta: Sequence[np.ndarray], stats: SampleStats, *,
                     gamma_wd: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Robust covariance matrix of the WLSMV estimates (lavaan ``se = "robust.sem"``).

    Parameters
    ----------
    delta : sequence of ndarray
        Per group, ``d wls_est / d x`` at the estimates.
    stats : SampleStats
    gamma_wd : sequence of ndarray, optional
        `gamma_wd` of the same arguments, when the caller already has it.

    Returns
    -------
    ndarray (nx, nx)
        ``vcov = E^-1 [sum_g (n_g / N) Delta_g' W_g Gamma_g W_g Delta_g] E^-1 / (N - G)`` with
        ``E`` from `dwls_information`, ``W_g = WLS_V_g`` and ``Gamma_g = NACOV_g``.
        Standard errors are ``sqrt(diag(vcov))``.

    Notes
    -----
    lavaan 0.6-14 ``lav_model_nvcov_robust_sem`` (``fg * fg / fg1`` with ``fg1 = fg`` unless
    mimic = "Mplus"), divided by ``N - G`` (N total, G groups), the N lavaan's ``lav_model_vcov``
    uses for estimators other than ML (checked against lavaan's SEs: dividing by N gives SEs too
    small by the factor ``sqrt((N - G) / N)``).

    References
    ----------
    Muthen, B., du Toit, S. H. C., & Spisic, D. (1997). Robust inference using weighted least
    squares and quadratic estimating equations in latent variable modeling with categorical and
    continuous outcomes. Unpublished technical report.
    """
    D = _check(delta, stats)
    fg = _fg(stats)
    E_inv = np.linalg.inv(dwls_information(D, stats))
    meat = np.zeros_like(E_inv)
    for m, (f, Dg, g) in enumerate(zip(fg, D, stats.ordinal)):
        WD = np.diag(g.WLS_V)[:, None] * Dg
        Y = g.NACOV @ WD if gamma_wd is None else gamma_wd[m]
        meat += f * (sparse_if_sparse(WD).T @ Y)
    return E_inv @ meat @ E_inv / (stats.ntotal - stats.ngroups)
