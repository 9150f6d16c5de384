"""Item fit (S-X2) and local dependence (Yen's Q3) of MML-fitted IRT models.

References
----------
Orlando, M., & Thissen, D. (2000). Likelihood-based item-fit indices for dichotomous item response
theory models. Applied Psychological Measurement, 24(1), 50-64.
https://doi.org/10.1177/01466216000241003
Kang, T., & Chen, T. T. (2008). Performance of the generalized S-X2 item fit index for polytomous
IRT models. Journal of Educational Measurement, 45(4), 391-406.
https://doi.org/10.1111/j.1745-3984.2008.00069.x
Lord, F. M., & Wingersky, M. S. (1984). Comparison of IRT true-score and equipercentile observed-score
"equatings". Applied Psychological Measurement, 8(4), 453-461.
https://doi.org/10.1177/014662168400800409
Yen, W. M. (1984). Effects of local item dependence on the fit and equating performance of the
three-parameter logistic model. Applied Psychological Measurement, 8(2), 125-145.
https://doi.org/10.1177/014662168400800201
Christensen, K. B., Makransky, G., & Horton, M. (2017). Critical values for Yen's Q3. Applied
Psychological Measurement, 41(3), 178-194. https://doi.org/10.1177/0146621616677520
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

from instrument.irt.data import response_matrix
from instrument.irt.mml import IRTResult, category_probs, quadrature
from instrument.irt.scoring import fscores
from instrument.rules import Q3_RELATIVE, S_X2_ALPHA

S_X2_MINCELL = 1.0   # mirt's itemfit(mincell = 1): expected counts below this are pooled


def _probs(fit: IRTResult, nodes: np.ndarray) -> list[np.ndarray]:
    out = []
    for it in fit.items:
        a, d = fit.item_params(it)
        out.append(category_probs(fit.model, fit.link, np.array([a]), d[None, :], nodes)[0])
    return out


def _summed_score_lik(probs: list[np.ndarray]) -> np.ndarray:
    """Lord-Wingersky recursion: P(summed score = s | theta) at each node (Q x S+1)."""
    Q = probs[0].shape[0] if probs else 1
    L = np.ones((Q, 1))
    for P in probs:
        K = P.shape[1]
        new = np.zeros((Q, L.shape[1] + K - 1))
        for k in range(K):
            new[:, k:k + L.shape[1]] += L * P[:, [k]]
        L = new
    return L


def s_x2(fit: IRTResult, data: pd.DataFrame, *, mincell: float = S_X2_MINCELL) -> pd.DataFrame:
    """Generalized S-X2 item fit (Orlando & Thissen 2000; Kang & Chen 2008), complete rows.

    For item i and summed score s (1..max-1), the expected proportion in category k is
    ``E_iks = int P_ik(theta) f^(-i)(s - k | theta) g(theta) / int f(s | theta) g(theta)``, with
    the summed-score likelihoods from the Lord-Wingersky recursion over the fitted model's
    quadrature. Adjacent score groups are pooled from each end until every expected count is at
    least ``mincell``. ``S_X2 = sum_s sum_k (O - E)^2 / E``; ``df = groups * (K - 1) - n_par``.

    Returns
    -------
    DataFrame
        ``item S_X2 df p flagged rule`` (flagged when ``p`` fails `S_X2_ALPHA`).
    """
    items = list(fit.items)
    _, X = response_matrix(data, items)
    X = X[~np.isnan(X).any(axis=1)].astype(int)
    nodes, w = quadrature()
    probs = _probs(fit, nodes)
    f_all = _summed_score_lik(probs)
    denom = w @ f_all                                            # P(S = s)
    total = X.sum(axis=1)
    S = f_all.shape[1] - 1
    rows = []
    for i, it in enumerate(items):
        P = probs[i]
        K = P.shape[1]
        f_rest = _summed_score_lik([p for j, p in enumerate(probs) if j != i])
        E = np.zeros((S + 1, K))
        for k in range(K):
            num = np.zeros(S + 1)
            num[k:k + f_rest.shape[1]] = (w * P[:, k]) @ f_rest
            E[:, k] = num / denom
        scores = np.arange(1, S)
        n_s = np.array([(total == s).sum() for s in scores], float)
        O = np.array([np.bincount(X[total == s, i], minlength=K) for s in scores], float)
        Ec = E[scores] * n_s[:, None]
        groups = _pool(n_s, O, Ec, mincell)
        stat = sum(((o - e) ** 2 / e).sum() for o, e in groups if np.all(e > 0))
        npar = K   # a and K - 1 intercepts
        df = len(groups) * (K - 1) - npar
        p = float(chi2.sf(stat, df)) if df > 0 else float("nan")
        rows.append({"item": it, "S_X2": float(stat), "df": int(df), "p": p,
                     "flagged": bool(df > 0 and not S_X2_ALPHA.passes(p)),
                     "rule": S_X2_ALPHA.describe()})
    return pd.DataFrame(rows)


def _pool(n_s, O, E, mincell):
    """Pool adjacent score groups from both ends until every expected count reaches mincell."""
    groups = [(O[j].copy(), E[j].copy()) for j in range(len(n_s)) if n_s[j] > 0]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        for end in (0, -1):
            if len(groups) > 1 and np.any(groups[end][1] < mincell):
                nb = 1 if end == 0 else -2
                o = groups[end][0] + groups[nb][0]
                e = groups[end][1] + groups[nb][1]
                if end == 0:
                    groups = [(o, e)] + groups[2:]
                else:
                    groups = groups[:-2] + [(o, e)]
                changed = True
        if not changed:
            low = [j for j, g in enumerate(groups) if np.any(g[1] < mincell)]
            if low and len(groups) > 1:
                j = low[0]
                nb = j + 1 if j + 1 < len(groups) else j - 1
                lo_, hi_ = sorted((j, nb))
                merged = (groups[lo_][0] + groups[hi_][0], groups[lo_][1] + groups[hi_][1])
                groups = groups[:lo_] + [merged] + groups[hi_ + 1:]
                changed = True
    return groups


def q3(fit: IRTResult, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Yen's Q3: correlations of the residuals ``x_vi - E[X_i | theta_v]`` at the EAP scores.

    Returns
    -------
    (matrix, pairs)
        The Q3 matrix (items x items) and one row per item pair ``item1 item2 q3 q3_minus_mean
        flagged rule``, flagged when ``q3 - mean(q3)`` fails `Q3_RELATIVE` (Christensen,
        Makransky & Horton 2017: the average off-diagonal Q3 is about -1/(n - 1), so the cut is
        relative to it).
    """
    items = list(fit.items)
    _, X = response_matrix(data, items)
    th = fscores(fit, data, method="EAP")["theta"].to_numpy()
    R = np.full(X.shape, np.nan)
    for j, it in enumerate(items):
        a, d = fit.item_params(it)
        ok = ~np.isnan(th)
        P = category_probs(fit.model, fit.link, np.array([a]), d[None, :], th[ok])[0]
        R[ok, j] = X[ok, j] - P @ np.arange(P.shape[1])
    M = pd.DataFrame(R, columns=items).corr(min_periods=10)
    iu = np.triu_indices(len(items), 1)
    vals = M.to_numpy()[iu]
    mean = float(np.nanmean(vals))
    pairs = pd.DataFrame({"item1": [items[i] for i in iu[0]], "item2": [items[j] for j in iu[1]],
                          "q3": vals, "q3_minus_mean": vals - mean})
    pairs["flagged"] = ~pairs["q3_minus_mean"].map(Q3_RELATIVE.passes)
    pairs["rule"] = Q3_RELATIVE.describe()
    return M, pairs
