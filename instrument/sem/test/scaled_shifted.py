"""The scaled-shifted test of WLSMV/ULSMV (lavaan ``test = "scaled.shifted"``)."""
from __future__ import annotations

import numpy as np

from instrument.sem.estimators.dwls import dwls_sandwich
from instrument.sem.fit.dist import chi2_sf

__all__ = ["scaled_shifted", "scaled_shifted_baseline", "shifted_from_traces",
           "wgamma_traces"]


def wgamma_traces(stats) -> list[tuple[float, float, float, float]]:
    """Per group ``(tr(W Gamma), tr((W Gamma)^2))`` for ``W = WLS_V`` diagonal, ``w' diag(Gamma)``
    and ``w' (Gamma o Gamma) w``, followed by the same two over the correlation block (the rows
    and columns after the group's ``nth`` thresholds); none depends on the model."""
    out = []
    for g in stats.ordinal:
        w, G, t = g.WLS_VD, g.NACOV, g.nth
        R = G * G
        wc = w[t:]
        rw_c = R[t:, t:] @ wc
        tr2_c = float(wc @ rw_c)
        tr2 = tr2_c + float(w[:t] @ (R[:t] @ w)) + float(w[:t] @ R[:t, t:] @ wc)
        d = np.diag(G)
        out.append((float(w @ d), tr2, float(wc @ d[t:]), tr2_c))
    return out


def scaled_shifted_baseline(chisq: float, df: int, traces) -> dict:
    """The scaled-shifted test of lavaan's baseline model for categorical data (thresholds free
    in every group, correlations fixed at 0), from `wgamma_traces`.

    Notes
    -----
    The baseline's Delta is the identity on each group's threshold rows and 0 on its
    correlation rows, so ``U Gamma`` of `scaled_shifted` reduces to ``W_cc Gamma_cc`` per group
    (cc: the correlation block; W diagonal): ``tr(U Gamma) = sum_g tr(W_cc Gamma_cc)`` and
    ``tr((U Gamma)^2) = sum_g w_c' (Gamma_cc o Gamma_cc) w_c``.
    """
    return shifted_from_traces(chisq, df, sum(t[2] for t in traces), sum(t[3] for t in traces))


def scaled_shifted(chisq: float, df: int, deltas, stats, *, sandwich=None,
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
    sandwich : DWLSSandwich, optional
        `instrument.sem.estimators.dwls.dwls_sandwich` of `deltas` and `stats`, when the caller
        already has it.
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
    cancel), with ``tr(A_g^2) = w' (Gamma_g o Gamma_g) w`` for ``W_g = diag(w)``; E, E^-1, Y_g
    and H (the sandwich's meat) are `instrument.sem.estimators.dwls.DWLSSandwich`.
    ``a = sqrt(df / tr((U Gamma)^2))``, ``b = df - a tr(U Gamma)``,
    ``chisq.scaled = a chisq + b``; lavaan reports ``1/a`` as the scaling factor (lavaan 0.6-14
    ``lav_test_satorra_bentler``, method "original", ``ug2.old.approach = FALSE``). The dense
    restatement is ``tests/reference/dwls.py``.

    References
    ----------
    Asparouhov, T., & Muthen, B. (2010). Simple second order chi-square correction. Technical
    appendix, Mplus.
    """
    sw = dwls_sandwich(deltas, stats) if sandwich is None else sandwich
    n = np.array([g.n for g in stats.ordinal], float)
    fg = n / n.sum()
    traces = wgamma_traces(stats) if traces is None else traces
    trA = sum(t[0] for t in traces)
    trA2 = sum(t[1] for t in traces)
    K = np.zeros_like(sw.E)
    for f, g, Y in zip(fg, stats.ordinal, sw.gamma_wd):
        Z = np.sqrt(g.WLS_VD)[:, None] * Y
        K += f * (Z.T @ Z)
    EH = sw.E_inv @ sw.meat
    return shifted_from_traces(chisq, df, trA - float(np.trace(EH)),
                               trA2 - 2.0 * float(np.sum(sw.E_inv * K.T))
                               + float(np.sum(EH * EH.T)))


def shifted_from_traces(chisq: float, df: int, tr1: float, tr2: float) -> dict:
    """The scaled-shifted statistic from ``tr1 = tr(U Gamma)`` and ``tr2 = tr((U Gamma)^2)``:
    ``a = sqrt(df / tr2)``, ``b = df - a tr1``, ``chisq.scaled = a chisq + b`` (see
    `scaled_shifted`)."""
    a = np.sqrt(df / tr2)
    b = df - a * tr1
    stat = a * chisq + b
    return {"trace.UGamma": tr1, "trace.UGamma2": tr2, "chisq.scaling.factor": float(1.0 / a),
            "chisq.shift.parameters": float(b), "chisq.scaled": float(stat),
            "pvalue.scaled": chi2_sf(stat, df)}
