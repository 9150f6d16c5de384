"""Person scores (EAP, MAP) and information curves of MML-fitted IRT models.

References
----------
Bock, R. D., & Mislevy, R. J. (1982). Adaptive EAP estimation of ability in a microcomputer
environment. Applied Psychological Measurement, 6(4), 431-444.
https://doi.org/10.1177/014662168200600405
Samejima, F. (1969). Estimation of latent ability using a response pattern of graded scores.
Psychometrika Monograph Supplement, 34(4, Pt. 2), No. 17 (item information of graded items).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from instrument.irt.data import response_matrix
from instrument.irt.mml import IRTResult, _distinct, _onehot, category_probs, quadrature

SCORE_METHODS = ("EAP", "MAP")


def _item_arrays(fit: IRTResult, items: Sequence[str], group: str | None):
    return [fit.item_params(it, group) for it in items]


def _loglik_grid(fit: IRTResult, x: np.ndarray, items: Sequence[str], theta: np.ndarray,
                 group: str | None) -> np.ndarray:
    """log P(responses | theta) for each person (rows) at each theta (columns): the one-hot
    coding of the responses times the items' stacked log-probabilities."""
    lp = []
    for a, d in _item_arrays(fit, items, group):
        P = category_probs(fit.model, fit.link, np.array([a]), d[None, :], theta)[0]   # Q x K
        lp.append(np.log(np.clip(P, 1e-300, None)))
    Y, _ = _onehot(x, np.array([p.shape[1] - 1 for p in lp]))
    return Y @ np.hstack(lp).T


def fscores(fit: IRTResult, data: pd.DataFrame, *, method: str = "EAP", group: str | None = None,
            quadpts: int = 61, lim: float = 6.0) -> pd.DataFrame:
    """EAP or MAP trait estimates with standard errors (mirt ``fscores()``).

    Parameters
    ----------
    fit : IRTResult
    data : DataFrame
        Responses coded as in the fit (the lowest category of each item is taken from the data
        only when it is 1; code 0..m to be safe).
    method : {"EAP", "MAP"}
        EAP: posterior mean and SD over ``quadpts`` equally spaced nodes on [-lim, lim] with the
        group's normal prior (Bock & Mislevy 1982). MAP: posterior mode by Newton's method, SE
        ``1 / sqrt(I(theta) + 1 / var)`` from the observed information at the mode.
    group : str, optional
        Group whose item parameters and latent distribution are used (reference group default).

    Returns
    -------
    DataFrame
        ``theta se`` in the row order of ``data`` (NaN for rows without responses).
    """
    if method not in SCORE_METHODS:
        raise ValueError(f"method= must be one of {', '.join(map(repr, SCORE_METHODS))}; got {method!r}.")
    items = list(fit.items)
    _, X = response_matrix(data, items)
    x = np.where(np.isnan(X), -1, X).astype(int)
    top = np.array([fit.item_params(it, group)[1].size for it in items])
    if np.any(x > top):
        r, j = np.argwhere(x > top)[0]
        raise ValueError(f"row {r + 1}, column {items[j]!r}: expected a category 0..{top[j]} of "
                         f"the fitted model; got {x[r, j]}.")
    # persons with the same responses have the same score: each distinct pattern is scored once
    first, inv, _ = _distinct(x + 1)
    x = x[first]
    g = fit.groups[0] if group is None else group
    lat = fit.latent.set_index("group").loc[g]
    mu, var = float(lat["mean"]), float(lat["var"])
    nodes, _ = quadrature(quadpts, lim)
    lprior = -0.5 * (nodes - mu) ** 2 / var
    L = _loglik_grid(fit, x, items, nodes, group) + lprior
    W = np.exp(L - L.max(axis=1, keepdims=True))
    W /= W.sum(axis=1, keepdims=True)
    eap = W @ nodes
    sd = np.sqrt(np.maximum(W @ nodes**2 - eap**2, 0.0))
    none = (x < 0).all(axis=1)
    if method == "EAP":
        th, se = eap, sd
    else:
        th, se = eap.copy(), sd.copy()
        pars = _item_arrays(fit, items, group)
        for _ in range(50):
            grad = -(th - mu) / var
            info = np.full_like(th, 1.0 / var)
            for j, (a, d) in enumerate(pars):
                P, _, dth = category_probs(fit.model, fit.link, np.array([a]), d[None, :], th,
                                           derivs=True)
                P, dth = P[0], dth[0]
                ok = x[:, j] >= 0
                rows = np.flatnonzero(ok)
                k = x[ok, j]
                grad[rows] += dth[rows, k] / P[rows, k]
                info += (dth**2 / np.clip(P, 1e-300, None)).sum(axis=1) * ok
            step = grad / info
            th = th + np.clip(step, -1, 1)
            if np.max(np.abs(step)) < 1e-10:
                break
        se = 1.0 / np.sqrt(info)
    th = np.where(none, np.nan, th)[inv]
    se = np.where(none, np.nan, se)[inv]
    return pd.DataFrame({"theta": th, "se": se}, index=data.index)


def item_information(fit: IRTResult, theta: np.ndarray, *, items: Sequence[str] | None = None,
                     group: str | None = None) -> pd.DataFrame:
    """Item information ``I_i(theta) = sum_k (dP_ik / dtheta)^2 / P_ik`` (Samejima 1969).

    Returns a DataFrame with one column per item and one row per theta value.
    """
    theta = np.asarray(theta, dtype=float)
    items = list(fit.items) if items is None else list(items)
    out = {}
    for it in items:
        a, d = fit.item_params(it, group)
        P, _, dth = category_probs(fit.model, fit.link, np.array([a]), d[None, :], theta, derivs=True)
        out[it] = (dth[0] ** 2 / np.clip(P[0], 1e-300, None)).sum(axis=1)
    return pd.DataFrame(out, index=pd.Index(theta, name="theta"))


def information(fit: IRTResult, theta: np.ndarray, *, items: Sequence[str] | None = None,
                     group: str | None = None) -> pd.DataFrame:
    """Test information, its SE and the conditional reliability at each theta.

    Returns
    -------
    DataFrame
        ``theta information se reliability`` with ``se = 1 / sqrt(I)`` and the conditional
        reliability ``var / (var + 1 / I(theta))`` for the group's trait variance ``var``
        (Green, Bock, Humphreys, Linn & Reckase, 1984, J. Educ. Meas. 21(4), 347-360).
    """
    info = item_information(fit, theta, items=items, group=group).sum(axis=1).to_numpy()
    g = fit.groups[0] if group is None else group
    var = float(fit.latent.set_index("group").loc[g, "var"])
    return pd.DataFrame({"theta": np.asarray(theta, float), "information": info,
                         "se": 1.0 / np.sqrt(info), "reliability": var / (var + 1.0 / info)})
