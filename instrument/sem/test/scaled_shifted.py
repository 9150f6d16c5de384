"""The scaled-shifted test of WLSMV/ULSMV (lavaan ``test = "scaled.shifted"``)."""
from __future__ import annotations

import numpy as np

from instrument.sem.linalg import gram, sparse_if_sparse
from instrument.sem.fit.dist import chi2_sf

__all__ = ["scaled_shifted", "wgamma_traces"]


def wgamma_traces(stats) -> list[tuple[float, float]]:
    """Per group ``(tr(W Gamma), tr((W Gamma)^2))`` for ``W = WLS_V`` diagonal: ``w' diag(Gamma)``
    and ``w' (Gamma o Gamma) w``; they do not depend on the model."""
    out = []
    for g in stats.ordinal:
        w = np.diag(g.WLS_V)
        out.append((float(w @ np.diag(g.NACOV)), float(w @ ((g.NACOV * g.NACOV) @ w))))
    return out


def scaled_shifted(chisq: float, df: int, deltas, stats, *, gamma_wd=None,
                   traces=None) -> dict:
    """Scaled-shifted (WLSMV) test statistic, as lavaan's ``test = "scaled.shifted"``.

    Parameters
    ----------
    chisq : float
        The unscaled DWLS (or ULS) chi-square.
    df : int
        Model degrees of freedom.
    deltas : sequence of ndarray
        Per group, ``d wls_est / d x`` at the estimates.
    stats : SampleStats
        ``WLS_V`` (the identity for ULS), ``NACOV`` and ``n`` per group.
    gamma_wd : sequence of ndarray, optional
        Per group, ``NACOV_g @ WLS_V_g @ Delta_g`` when the caller already has it
        (`instrument.sem.estimators.dwls.gamma_wd`).
    traces : sequence of (float, float), optional
        `wgamma_traces` of `stats`, when the caller already has them.

    Returns
    -------
    dict
        ``trace.UGamma``, ``trace.UGamma2``, ``chisq.scaling.factor`` (``1/a``),
        ``chisq.shift.parameters`` (``b``), ``chisq.scaled`` and ``pvalue.scaled``.

    Notes
    -----
    With W_g = WLS_V_g (diagonal), A_g = W_g Gamma_g, B_g = W_g Delta_g, Y_g = Gamma_g B_g,
    E = sum_g f_g Delta_g' B_g, H = sum_g f_g B_g' Y_g and K = sum_g f_g Y_g' W_g Y_g:
    ``tr(U Gamma) = sum_g tr(A_g) - tr(E^-1 H)`` and
    ``tr((U Gamma)^2) = sum_g tr(A_g^2) - 2 tr(E^-1 K) + tr((E^-1 H)^2)``
    (the dense ``U = V - V Delta E^-1 Delta' V`` of lavaan, never formed; the group weights f_g
    cancel), with ``tr(A_g^2) = w' (Gamma_g o Gamma_g) w`` for ``W_g = diag(w)``. ``a = sqrt(df / tr((U Gamma)^2))``, ``b = df - a tr(U Gamma)``,
    ``chisq.scaled = a chisq + b``; lavaan reports ``1/a`` as the scaling factor (lavaan 0.6-14
    ``lav_test_satorra_bentler``, method "original", ``ug2.old.approach = FALSE``). The dense
    restatement is ``tests/reference/dwls.py``.

    References
    ----------
    Asparouhov, T., & Muthen, B. (2010). Simple second order chi-square correction. Technical
    appendix, Mplus.
    """
    n = np.array([g.n for g in stats.ordinal], float)
    fg = n / n.sum()
    k = deltas[0].shape[1]
    E = np.zeros((k, k))
    H = np.zeros((k, k))
    K = np.zeros((k, k))
    traces = wgamma_traces(stats) if traces is None else traces
    trA = sum(t[0] for t in traces)
    trA2 = sum(t[1] for t in traces)
    for m, (f, D, g) in enumerate(zip(fg, deltas, stats.ordinal)):
        w = np.diag(g.WLS_V)
        B = w[:, None] * D
        Y = g.NACOV @ B if gamma_wd is None else gamma_wd[m]
        sw = np.sqrt(w)[:, None]
        Z = sw * Y
        E += f * gram(sw * D)
        H += f * (sparse_if_sparse(B).T @ Y)
        K += f * (Z.T @ Z)
    Ei = np.linalg.inv(E)
    EH = Ei @ H
    tr1 = trA - float(np.trace(EH))
    tr2 = trA2 - 2.0 * float(np.sum(Ei * K.T)) + float(np.sum(EH * EH.T))
    a = np.sqrt(df / tr2)
    b = df - a * tr1
    stat = a * chisq + b
    return {"trace.UGamma": tr1, "trace.UGamma2": tr2, "chisq.scaling.factor": float(1.0 / a),
            "chisq.shift.parameters": float(b), "chisq.scaled": float(stat),
            "pvalue.scaled": chi2_sf(stat, df)}
