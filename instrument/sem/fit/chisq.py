"""Chi-square test and the independence (baseline) model (lavaan ``lav_test``, ``lav_fit_cfi``)."""
from __future__ import annotations

import numpy as np
from instrument.sem.fit.dist import chi2_sf

__all__ = ["chisq_pvalue", "baseline_chisq"]


def chisq_pvalue(chisq: float, df: float) -> float:
    """Upper-tail p value of the chi-square test; NaN when df == 0 (lavaan reports NA)."""
    if df <= 0:
        return float("nan") if df < 0 else float("nan")
    return chi2_sf(chisq, df)


def baseline_chisq(covs, ns, *, n_divisor: float | None = None) -> float:
    """Chi-square of the independence model: sum_g n_g (sum_i log s_ii - log|S_g|).

    Notes
    -----
    The baseline model has free variances (and free means when there is a mean structure), and
    no cross-group constraints, so its ML estimates are the sample variances and means and
    F_b,g = sum log s_ii - log |S_g|. lavaan's ``lav_object_independence`` gives the same value.
    ``covs``/``ns`` are the covariance matrices and weights (n_g, or n_g - 1 with wishart).
    """
    tot = 0.0
    for S, n in zip(covs, ns):
        sign, ld = np.linalg.slogdet(S)
        tot += n * (np.sum(np.log(np.diag(S))) - ld)
    return float(tot)
