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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from instrument.sem.linalg import gram, sparse_if_sparse
from instrument.sem.samplestats import SampleStats

__all__ = ["DWLSSandwich", "dwls_information", "dwls_sandwich", "dwls_vcov_robust"]


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
    X = [np.sqrt(g.WLS_VD)[:, None] * Dg for Dg, g in zip(D, stats.ordinal)]
    return sum(f * gram(Xg) for f, Xg in zip(fg, X))


@dataclass(frozen=True)
class DWLSSandwich:
    """The products of the robust WLSMV algebra that involve the moment-sized NACOV, formed once
    per fit (`dwls_sandwich`) and shared by the robust covariance (`dwls_vcov_robust`), the
    scaled-shifted test (`instrument.sem.test.scaled_shifted.scaled_shifted`) and the robust
    fit indices.

    Attributes
    ----------
    E : ndarray (nx, nx)
        ``sum_g f_g Delta_g' W_g Delta_g`` (`dwls_information`), ``f_g = n_g / N``.
    E_inv : ndarray (nx, nx)
        Its inverse.
    gamma_wd : tuple of ndarray
        Per group ``Gamma_g W_g Delta_g`` (moments x parameters), ``Gamma_g = NACOV_g``.
    meat : ndarray (nx, nx)
        ``sum_g f_g (W_g Delta_g)' Gamma_g W_g Delta_g``.
    """
    E: np.ndarray
    E_inv: np.ndarray
    gamma_wd: tuple
    meat: np.ndarray


def dwls_sandwich(delta: Sequence[np.ndarray], stats: SampleStats) -> DWLSSandwich:
    """`DWLSSandwich` of Delta (per group, ``d wls_est / d x`` at the estimates) with the weights
    ``W_g = WLS_V_g`` (diagonal) and ``Gamma_g = NACOV_g`` of `stats`.

    Notes
    -----
    ``W_g Delta_g`` is mostly zeros (a correlation depends on two loadings and a factor
    covariance), so ``Gamma_g W_g Delta_g = ((W_g Delta_g)' Gamma_g)'`` (Gamma symmetric) runs as
    a sparse product, as do the parameter-sized products with it.
    """
    D = _check(delta, stats)
    fg = _fg(stats)
    E = dwls_information(D, stats)
    gwd, meat = [], np.zeros_like(E)
    for f, Dg, g in zip(fg, D, stats.ordinal):
        WD = sparse_if_sparse(g.WLS_VD[:, None] * Dg)
        Y = g.NACOV @ WD if isinstance(WD, np.ndarray) else (WD.T @ g.NACOV).T
        gwd.append(Y)
        meat += f * (WD.T @ Y)
    return DWLSSandwich(E=E, E_inv=np.linalg.inv(E), gamma_wd=tuple(gwd), meat=meat)


def dwls_vcov_robust(delta: Sequence[np.ndarray], stats: SampleStats, *,
                     sandwich: DWLSSandwich | None = None) -> np.ndarray:
    """Robust covariance matrix of the WLSMV estimates (lavaan ``se = "robust.sem"``).

    Parameters
    ----------
    delta : sequence of ndarray
        Per group, ``d wls_est / d x`` at the estimates.
    stats : SampleStats
        ``WLS_V`` (the identity for ULSMV), ``NACOV`` and ``n`` per group.
    sandwich : DWLSSandwich, optional
        `dwls_sandwich` of the same arguments, when the caller already has it.

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
    sw = dwls_sandwich(delta, stats) if sandwich is None else sandwich
    return sw.E_inv @ sw.meat @ sw.E_inv / (stats.ntotal - stats.ngroups)
