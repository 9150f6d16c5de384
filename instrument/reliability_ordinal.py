"""Reliability of ordinal scales from a WLSMV fit: categorical omega (Green & Yang, 2009) and
omega on the latent-response scale, as semTools ``compRelSEM()`` on a WLSMV fit.

Ordinal alpha lives with the polychoric correlations
(`instrument.sem.polychoric.ordinal_alpha`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from instrument.sem.bvnorm import pbivnorm
from scipy.stats import norm

__all__ = ["omega_categorical"]


def _factor_items(fit, g: int = 1) -> dict[str, list[str]]:
    e = fit.estimates
    sel = e[(e["op"] == "=~") & (e["group"] == g)]
    out: dict[str, list[str]] = {}
    for lhs, rhs in zip(sel["lhs"], sel["rhs"]):
        out.setdefault(lhs, []).append(rhs)
    return out


def omega_categorical(fit, *, factors: Sequence[str] | None = None, ord_scale: bool = True,
                      group: int = 1) -> dict[str, float]:
    """Composite reliability of each factor's sum score for ordinal items.

    Parameters
    ----------
    fit : CFAResult
        A WLSMV fit (`instrument.sem.cfa.cfa` with ``ordered=``) with simple structure; reverse-key
        items first (with mixed-sign loadings the sum score, and so omega, is meaningless).
    factors : sequence of str, optional
        Default: every factor.
    ord_scale : bool
        True: reliability of the observed ordinal sum score (Green & Yang, 2009; semTools
        ``compRelSEM(fit)``); False: of the sum of the latent responses y*
        (``compRelSEM(fit, ord.scale = FALSE)``).
    group : int
        Group number (1-based).

    Returns
    -------
    dict
        factor -> omega.

    Notes
    -----
    With standardized thresholds ``t_ic`` (model-implied), the standardized common part
    ``R_ij = lambda*_i lambda*_j`` (std.all loadings of one factor, ``R_ii = lambda*_i^2``) and
    the sample polychoric correlations ``P`` (``P_ii = 1``):
    ``omega = sum_ij [sum_cc' Phi2(t_ic, t_jc', R_ij) - sum_c Phi(t_ic) sum_c' Phi(t_jc')] /
    sum_ij [sum_cc' Phi2(t_ic, t_jc', P_ij) - sum_c Phi(t_ic) sum_c' Phi(t_jc')]``
    (Green & Yang, 2009, eq. 21; the denominator is the variance of the observed sum score
    implied by the thresholds and polychorics, semTools' ``obs.var = TRUE`` default). With
    ``ord_scale=False``: ``(sum_i lambda*_i)^2 / 1'P1``.

    References
    ----------
    Green, S. B., & Yang, Y. (2009). Reliability of summed item scores using structural
    equation modeling: An alternative to coefficient alpha. Psychometrika, 74(1), 155-167.
    https://doi.org/10.1007/s11336-008-9099-3
    """
    opts = fit.meta.options
    if str(opts.get("estimator", "")).upper() not in ("WLSMV", "ULSMV"):
        raise ValueError("omega_categorical() needs a fit with ordered indicators "
                         "(cfa(..., ordered=...)); use the continuous omega for ML/MLR fits.")
    items_of = _factor_items(fit, group)
    if factors is None:
        factors = list(items_of)
    unknown = [f for f in factors if f not in items_of]
    if unknown:
        raise ValueError(f"factors= {unknown} are not factors of the model {list(items_of)}")
    owners: dict[str, list[str]] = {}
    for f, its in items_of.items():
        for v in its:
            owners.setdefault(v, []).append(f)
    ov = list(fit.ov_names)
    e = fit.estimates
    imp, smp = fit.implied[group - 1], fit.sample[group - 1]
    th = np.asarray(imp["th"], float)
    # th holds each observed variable's thresholds in model order (t1, t2, ... within)
    th_names = []
    for v in ov:
        k = int(((e["op"] == "|") & (e["lhs"] == v) & (e["group"] == group)).sum())
        th_names += [f"{v}|t{t}" for t in range(1, k + 1)]
    if len(th_names) != len(th):
        raise ValueError("the fit's thresholds do not match its parameter table")
    P = np.asarray(smp["cov"], float)
    out = {}
    for f in factors:
        its = items_of[f]
        cross = [v for v in its if len(owners[v]) > 1]
        if cross:
            raise NotImplementedError(f"item(s) {cross} load on more than one factor")
        lam = np.array([float(e[(e["op"] == "=~") & (e["lhs"] == f) & (e["rhs"] == v)
                                & (e["group"] == group)]["std.all"].iloc[0]) for v in its])
        idx = [ov.index(v) for v in its]
        Pf = P[np.ix_(idx, idx)]
        R = np.outer(lam, lam)
        if not ord_scale:
            out[f] = float(lam.sum() ** 2 / Pf.sum())
            continue
        taus = [th[[k for k, nm in enumerate(th_names) if nm.split("|")[0] == v]] for v in its]
        num = den = 0.0
        for a in range(len(its)):
            for b in range(len(its)):
                t1, t2 = taus[a], taus[b]
                X, Y = np.meshgrid(t1, t2, indexing="ij")
                marg = norm.cdf(t1).sum() * norm.cdf(t2).sum()
                num += float(pbivnorm(X, Y, np.full(X.shape, R[a, b])).sum()) - marg
                rho = 1.0 if a == b else Pf[a, b]
                den += float(pbivnorm(X, Y, np.full(X.shape, rho)).sum()) - marg
        out[f] = num / den
    return out
