"""Dense restatements of the WLSMV scaled-shifted test and baseline, checked against lavaan and
against the production version `instrument.sem.test.scaled_shifted.scaled_shifted` (which works
with parameter-sized matrices).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import chi2

from instrument.sem.estimators.dwls import _check, _fg, dwls_information
from instrument.sem.polychoric import dwls_fx
from instrument.sem.samplestats import SampleStats

__all__ = ["dwls_scaled_shifted", "dwls_baseline"]


def dwls_scaled_shifted(chisq: float, df: int, delta: Sequence[np.ndarray],
                        stats: SampleStats) -> dict[str, float]:
    """Scaled-shifted (WLSMV) test statistic, as lavaan's ``test = "scaled.shifted"``.

    Parameters
    ----------
    chisq : float
        The unscaled DWLS chi-square (``dwls_fx(...)["chisq"]``).
    df : int
        Model degrees of freedom.
    delta : sequence of ndarray
        Per group, ``d wls_est / d x`` at the estimates.
    stats : SampleStats

    Returns
    -------
    dict
        ``trace.UGamma``, ``trace.UGamma2``, ``chisq.scaling.factor`` (``1/a``),
        ``chisq.shift.parameters`` (``b``), ``chisq.scaled`` and ``pvalue.scaled``.

    Notes
    -----
    With ``V = bdiag_g((n_g/N) WLS_V_g)``, ``Gamma = bdiag_g(NACOV_g / (n_g/N))``, ``Delta``
    stacked over groups and ``E`` from `dwls_information`:
    ``U = V - V Delta E^-1 Delta' V``; ``a = sqrt(df / tr((U Gamma)^2))``;
    ``b = df - a tr(U Gamma)``; ``chisq.scaled = a chisq + b``; lavaan reports the scaling
    factor as ``1/a`` (lavaan 0.6-14 ``lav_test_satorra_bentler``, method "original",
    ``ug2.old.approach = FALSE``).

    References
    ----------
    Asparouhov, T., & Muthen, B. (2010). Simple second order chi-square correction. Technical
    appendix, Mplus.
    """
    D = _check(delta, stats)
    fg = _fg(stats)
    m = [len(g.wls_obs) for g in stats.ordinal]
    tot = sum(m)
    V = np.zeros((tot, tot))
    G = np.zeros((tot, tot))
    start = 0
    for f, g, k in zip(fg, stats.ordinal, m):
        sl = slice(start, start + k)
        V[sl, sl] = f * g.WLS_V
        G[sl, sl] = g.NACOV / f
        start += k
    Dall = np.vstack(D)
    E_inv = np.linalg.inv(dwls_information(D, stats))
    VD = V @ Dall
    U = V - VD @ E_inv @ VD.T
    UG = U @ G
    tr1 = float(np.sum(U * G))
    tr2 = float(np.sum(UG * UG.T))
    a = np.sqrt(df / tr2)
    b = df - a * tr1
    stat = a * chisq + b
    return {"trace.UGamma": tr1, "trace.UGamma2": tr2, "chisq.scaling.factor": float(1.0 / a),
            "chisq.shift.parameters": float(b), "chisq.scaled": float(stat),
            "pvalue.scaled": float(chi2.sf(stat, df))}


def dwls_baseline(stats: SampleStats) -> dict[str, float]:
    """The WLSMV baseline (independence) model's test, computed from the sample statistics alone.

    Parameters
    ----------
    stats : SampleStats

    Returns
    -------
    dict
        ``baseline.chisq``, ``baseline.df`` and, from `dwls_scaled_shifted`,
        ``baseline.chisq.scaled``, ``baseline.chisq.scaling.factor``,
        ``baseline.chisq.shift.parameters``, ``baseline.pvalue.scaled``, ``trace.UGamma``,
        ``trace.UGamma2``.

    Notes
    -----
    lavaan's baseline for categorical data frees the thresholds (and the means and variances of
    continuous variables) in every group and fixes all correlations (covariances) at 0, with no
    cross-group constraints. The free part then fits exactly, so
    ``F_g = sum_{i<j} w_ij r_ij^2`` over the correlation elements of ``wls_obs`` with their
    DWLS weights, ``chisq = sum_g (n_g - 1) F_g`` and ``df = sum_g p_g (p_g - 1) / 2``. Delta is
    the identity on each group's threshold/mean/variance rows and 0 on its correlation rows.
    """
    # free in the baseline: thresholds (and -means) plus the variances of numeric variables,
    # which come first in wls_obs; the p(p-1)/2 correlations follow
    nfree = [g.nth + sum(t == "numeric" for t in g.ov_types) for g in stats.ordinal]
    ncorr = [len(g.wls_obs) - k for g, k in zip(stats.ordinal, nfree)]
    tot_free = sum(nfree)
    delta, est, off = [], [], 0
    for g, k, nf in zip(stats.ordinal, ncorr, nfree):
        D = np.zeros((len(g.wls_obs), tot_free))
        D[:nf, off:off + nf] = np.eye(nf)
        off += nf
        delta.append(D)
        e = g.wls_obs.copy()
        e[nf:] = 0.0
        est.append(e)
    chisq = dwls_fx(stats, est)["chisq"]
    df = int(sum(ncorr))
    ss = dwls_scaled_shifted(chisq, df, delta, stats)
    return {"baseline.chisq": float(chisq), "baseline.df": df,
            "baseline.chisq.scaled": ss["chisq.scaled"],
            "baseline.chisq.scaling.factor": ss["chisq.scaling.factor"],
            "baseline.chisq.shift.parameters": ss["chisq.shift.parameters"],
            "baseline.pvalue.scaled": ss["pvalue.scaled"],
            "trace.UGamma": ss["trace.UGamma"], "trace.UGamma2": ss["trace.UGamma2"]}
