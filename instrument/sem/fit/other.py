"""Other fit measures of lavaan's ``fitMeasures()`` for ML: rmr, crmr, srmr_mplus, Hoelter's CN,
GFI/AGFI/PGFI, McDonald's MFI and ECVI (lavaan ``lav_fit_other.R``, ``lav_fit_gfi.R``,
``lav_fit_srmr.R``)."""
from __future__ import annotations

import math

import numpy as np

from instrument.sem.fit.dist import chi2_ppf

__all__ = ["rmr_group", "crmr_group", "srmr_mplus_group", "hoelter_cn", "gfi_group", "agfi",
           "pgfi", "mfi", "ecvi"]


def _rms(cov_terms: np.ndarray, mean_terms: np.ndarray | None, ncov: float,
         nmean: float) -> tuple[float, float]:
    ss = float(np.sum(cov_terms ** 2))
    nomean = math.sqrt(ss / ncov) if ncov else 0.0
    if mean_terms is None:
        return nomean, nomean
    return math.sqrt((ss + float(np.sum(mean_terms ** 2))) / (ncov + nmean)), nomean


def rmr_group(S, sigma, mean=None, mu=None) -> tuple[float, float]:
    """Root mean square (raw) residual of one group, (with means, without means): over the
    p(p+1)/2 lower-triangle elements of S - Sigma (plus the p mean residuals)."""
    p = S.shape[0]
    il = np.tril_indices(p)
    mres = None if mu is None else mean - mu
    return _rms((S - sigma)[il], mres, p * (p + 1) / 2, p)


def crmr_group(S, sigma, mean=None, mu=None) -> tuple[float, float]:
    """Correlation root mean square residual (Bollen): cor(S) - cor(Sigma) over the p(p-1)/2
    off-diagonal elements (plus mean residuals (m - mu)/sd(S))."""
    p = S.shape[0]
    sd, sdh = np.sqrt(np.diag(S)), np.sqrt(np.diag(sigma))
    R = S / np.outer(sd, sd) - sigma / np.outer(sdh, sdh)
    il = np.tril_indices(p, -1)
    mres = None if mu is None else (mean - mu) / sd
    return _rms(R[il], mres, p * (p - 1) / 2, p)


def srmr_mplus_group(S, sigma, mean=None, mu=None) -> tuple[float, float]:
    """Mplus' SRMR: correlation residuals off the diagonal, (s_ii - sigma_ii)/s_ii on it, over
    p(p+1)/2 (plus mean residuals m/sd(S) - mu/sd(Sigma))."""
    p = S.shape[0]
    sd, sdh = np.sqrt(np.diag(S)), np.sqrt(np.diag(sigma))
    R = S / np.outer(sd, sd) - sigma / np.outer(sdh, sdh)
    np.fill_diagonal(R, (np.diag(S) - np.diag(sigma)) / np.diag(S))
    il = np.tril_indices(p)
    mres = None if mu is None else mean / sd - mu / sdh
    return _rms(R[il], mres, p * (p + 1) / 2, p)


def hoelter_cn(chisq: float, df: float, n: float, *, alpha: float = 0.05) -> float:
    """Hoelter's critical N: qchisq(1 - alpha, df) / (chisq / N) + 1 (Hoelter, 1983); 1 when
    df = 0, as lavaan reports."""
    if df <= 0:
        return 1.0
    if chisq <= 0:
        return math.inf
    return float(chi2_ppf(1 - alpha, df) / (chisq / n) + 1.0)


def gfi_group(S, sigma, mean=None, mu=None) -> tuple[float, float]:
    """Goodness-of-fit index terms of one group: (e'We, s'Ws) with W the normal-theory weight
    at Sigma-hat and e = [m - mu, vech(S - Sigma)], s = [m, vech(S)].

    Notes
    -----
    Cov part: e'We = tr((Sigma^-1 (S - Sigma))^2)/2, s'Ws = tr((Sigma^-1 S)^2)/2; mean part
    (with a mean structure) d'Sigma^-1 d. GFI = 1 - sum_g n_g e'We / sum_g n_g s'Ws
    (Joreskog & Sorbom, 1981; lavaan ``lav_fit_gfi``).
    """
    p = S.shape[0]
    A = np.linalg.solve(sigma, S)
    E = A - np.eye(p)
    num = 0.5 * float(np.trace(E @ E))
    den = 0.5 * float(np.trace(A @ A))
    if mu is not None:
        Si = np.linalg.inv(sigma)
        d = mean - mu
        num += float(d @ Si @ d)
        den += float(mean @ Si @ mean)
    return num, den


def agfi(gfi: float, nstat: float, df: float) -> float:
    """AGFI = 1 - (nstat / df)(1 - GFI), nstat the number of sample moments; 1 when df = 0,
    as lavaan reports."""
    return 1.0 - (nstat / df) * (1.0 - gfi) if df > 0 else 1.0


def pgfi(gfi: float, nstat: float, df: float) -> float:
    """PGFI = (df / nstat) GFI (Mulaik et al., 1989)."""
    return (df / nstat) * gfi if nstat > 0 else math.nan


def mfi(chisq: float, df: float, n: float) -> float:
    """McDonald's fit index exp(-(chisq - df) / (2 N)) (McDonald, 1989)."""
    return math.exp(-0.5 * (chisq - df) / n)


def ecvi(chisq: float, npar: int, n: float) -> float:
    """Expected cross-validation index chisq / N + 2 npar / N (Browne & Cudeck, 1993)."""
    return chisq / n + 2.0 * npar / n
