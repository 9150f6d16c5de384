"""Log-likelihood and information criteria (lavaan ``lav_fit_aic.R``, ``lav_fit_other.R``)."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["loglik_group", "aic", "bic", "bic2"]


def loglik_group(n: float, S: np.ndarray, sigma: np.ndarray, mean=None, mu=None) -> float:
    """Multivariate normal log-likelihood of one group from its moments.

    Notes
    -----
    logl = -n/2 [p log(2 pi) + log|Sigma| + tr(S Sigma^-1) + (m - mu)' Sigma^-1 (m - mu)]
    with S the divisor-N covariance; the unrestricted (h1) value uses Sigma = S.
    """
    p = S.shape[0]
    sign, ld = np.linalg.slogdet(sigma)
    Si = np.linalg.inv(sigma)
    q = float(np.sum(S * Si))
    if mean is not None and mu is not None:
        d = mean - mu
        q += float(d @ Si @ d)
    return -n / 2.0 * (p * math.log(2 * math.pi) + ld + q)


def aic(logl: float, npar: int) -> float:
    """AIC = -2 logl + 2 npar (Akaike, 1974)."""
    return -2.0 * logl + 2.0 * npar


def bic(logl: float, npar: int, n: float) -> float:
    """BIC = -2 logl + npar log N (Schwarz, 1978)."""
    return -2.0 * logl + npar * math.log(n)


def bic2(logl: float, npar: int, n: float) -> float:
    """Sample-size adjusted BIC = -2 logl + npar log((N + 2)/24) (Sclove, 1987)."""
    return -2.0 * logl + npar * math.log((n + 2.0) / 24.0)
