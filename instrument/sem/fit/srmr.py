"""Standardized root mean square residual (Bentler's; lavaan ``lav_fit_srmr.R``)."""
from __future__ import annotations

import numpy as np

__all__ = ["srmr_group", "srmr"]


def srmr_group(S: np.ndarray, sigma: np.ndarray, mean: np.ndarray | None = None,
               mu: np.ndarray | None = None) -> tuple[float, float]:
    """Bentler's SRMR of one group: (with means, without means).

    Notes
    -----
    Residuals (s_ij - sigma_ij)/sqrt(s_ii s_jj) over the p(p+1)/2 lower-triangle elements
    (diagonal included), sample SDs in both terms; with a mean structure the mean residuals
    (m_i - mu_i)/sqrt(s_ii) are added and the divisor becomes p(p+1)/2 + p.

    References
    ----------
    Bentler, P. M. (1995). EQS structural equations program manual. Multivariate Software.
    """
    p = S.shape[0]
    sd = np.sqrt(np.diag(S))
    R = (S - sigma) / np.outer(sd, sd)
    il = np.tril_indices(p)
    ss = float(np.sum(R[il] ** 2))
    ncov = p * (p + 1) / 2
    nomean = np.sqrt(ss / ncov)
    if mean is None or mu is None:
        return nomean, nomean
    mr = (mean - mu) / sd
    return float(np.sqrt((ss + np.sum(mr ** 2)) / (ncov + p))), float(nomean)


def srmr(values, ns) -> float:
    """Multiple-group SRMR: sum_g (n_g / N) SRMR_g."""
    ns = np.asarray(ns, float)
    return float(np.sum(ns / ns.sum() * np.asarray(values, float)))
