"""Differential item functioning by ordinal logistic regression with iterative purification.

For each item (responses 0..m) and a matching trait estimate theta, three proportional-odds models
(MASS ``polr``'s form ``logit P(Y <= k) = zeta_k - eta``) are compared:

    model 1: eta = b1 theta
    model 2: eta = b1 theta + b2 group
    model 3: eta = b1 theta + b2 group + b3 theta x group

Likelihood-ratio chi-squares: uniform DIF 1 vs 2 (1 df), non-uniform DIF 2 vs 3 (1 df), overall
1 vs 3 (2 df); the effect size is the change in Nagelkerke's pseudo-R2 (lordif's ``R2``).
Purification (lordif): theta is re-estimated until the flagged set repeats. With
``purification="split"`` (lordif's sparse-matrix approach, the default) every flagged item is
split into one item per group (the group's responses, missing for the other group) and a
single-group graded model is calibrated on the anchors and the split items, so all items keep
informing theta; with ``"drop"`` flagged items are left out of the matching.

References
----------
Zumbo, B. D. (1999). A handbook on the theory and methods of differential item functioning (DIF):
Logistic regression modeling as a unitary framework for binary and Likert-type (ordinal) item
scores. Ottawa: Directorate of Human Resources Research and Evaluation, Department of National
Defense.
Choi, S. W., Gibbons, L. E., & Crane, P. K. (2011). lordif: An R package for detecting differential
item functioning using iterative hybrid ordinal logistic regression/item response theory and Monte
Carlo simulations. Journal of Statistical Software, 39(8), 1-30. https://doi.org/10.18637/jss.v039.i08
Pratt, J. W. (1981). Concavity of the log likelihood. Journal of the American Statistical
Association, 76(373), 103-106. https://doi.org/10.1080/01621459.1981.10477613
Nagelkerke, N. J. D. (1991). A note on a general definition of the coefficient of determination.
Biometrika, 78(3), 691-692. https://doi.org/10.1093/biomet/78.3.691
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import chi2

from instrument.irt.data import two_group_responses
from instrument.irt.mml import irt
from instrument.irt.scoring import fscores
from instrument.results import JSONResult, Meta, Table, hash_frame
from instrument.rules import DIF_ALPHA, DIF_R2_LARGE, DIF_R2_LORDIF, DIF_R2_MODERATE
from instrument.sem.optim import single_threaded

MAX_PURIFICATION = 10
MIN_ANCHORS = 2       # purification stops rather than match on fewer items than this


def polr(y: np.ndarray, X: np.ndarray, *, weights: np.ndarray | None = None, tol: float = 1e-10,
         maxit: int = 100, start: tuple[np.ndarray, np.ndarray] | None = None):
    """Proportional-odds logistic regression (MASS ``polr``'s model) by Newton-Raphson.

    ``y`` holds categories 0..m (all used); ``X`` (n x p) covariates without intercept;
    ``weights``: case weights (frequencies; default 1). Returns ``(zeta, beta, loglik)`` with
    ``logit P(Y <= k) = zeta_k - X beta``. ``start``: starting ``(zeta, beta)``, e.g. a nested
    model's estimates with zeros for the added coefficients (default: the cumulative logits of the
    marginal proportions and beta = 0).

    The log-likelihood ``sum_i w_i log(F(u_i) - F(l_i))``, ``u_i = zeta_{y_i} - eta_i``,
    ``l_i = zeta_{y_i - 1} - eta_i`` (``zeta_{-1} = -inf``, ``zeta_m = +inf``), ``eta = X beta``,
    F logistic, is concave (Pratt 1981). Newton-Raphson steps with its analytic Hessian (the
    method of ``rms::lrm``, which lordif uses), halved until the log-likelihood does not fall
    and the cut-points stay increasing; stops when the log-likelihood changes by less than
    ``tol`` and no coefficient by 1e-7.
    """
    y = np.asarray(y, int)
    X = np.asarray(X, float).reshape(len(y), -1)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    m = int(y.max())
    n, p = X.shape
    cum = np.cumsum(np.bincount(y, weights=w, minlength=m + 1))[:m] / w.sum()
    zeta = np.log(cum / (1 - cum))
    beta = np.zeros(p)
    if start is not None:
        zeta, beta = np.array(start[0], float), np.array(start[1], float)
    up, lo = y < m, y > 0                        # rows with a finite upper / lower cut-point
    yu, yl = np.minimum(y, m - 1), np.maximum(y - 1, 0)

    def cdf(zeta, beta):
        eta = X @ beta
        Fu = np.where(up, expit(zeta[yu] - eta), 1.0)
        Fl = np.where(lo, expit(zeta[yl] - eta), 0.0)
        return Fu, Fl, float(w @ np.log(np.clip(Fu - Fl, 1e-300, None)))

    def grad_hess(Fu, Fl):
        P = np.clip(Fu - Fl, 1e-300, None)
        fu, fl = Fu * (1 - Fu), Fl * (1 - Fl)     # densities; 0 at an infinite cut-point
        gu, gl = fu / P, fl / P                  # d log P / du and -d log P / dl
        huu = fu * (1 - 2 * Fu) / P - gu**2      # second derivatives of log P in (u, l)
        hll = -fl * (1 - 2 * Fl) / P - gl**2
        hul = gu * gl
        g = np.concatenate([np.bincount(yu, w * gu, m) - np.bincount(yl, w * gl, m),
                            -(X.T @ (w * (gu - gl)))])
        H = np.empty((m + p, m + p))
        Hzz = np.diag(np.bincount(yu, w * huu, m) + np.bincount(yl, w * hll, m))
        off = np.bincount(yl, w * hul, m)[:m - 1]          # (zeta_k+1, zeta_k) of rows y = k + 1
        Hzz[np.arange(1, m), np.arange(m - 1)] = off
        Hzz[np.arange(m - 1), np.arange(1, m)] = off
        H[:m, :m] = Hzz
        # d u / d beta = d l / d beta = -x
        H[:m, m:] = -(_row_sums(yu, (w * (huu + hul))[:, None] * X, m)
                      + _row_sums(yl, (w * (hul + hll))[:, None] * X, m))
        H[m:, :m] = H[:m, m:].T
        H[m:, m:] = (X.T * (w * (huu + 2 * hul + hll))) @ X
        return g, H

    Fu, Fl, ll = cdf(zeta, beta)
    for _ in range(maxit):
        g, H = grad_hess(Fu, Fl)
        try:
            step = np.linalg.solve(-H, g)
        except np.linalg.LinAlgError:      # separation: the likelihood has no finite maximum
            step = np.linalg.lstsq(-H, g, rcond=None)[0]
        t = 1.0
        while True:
            z1, b1 = zeta + t * step[:m], beta + t * step[m:]
            if np.all(np.diff(z1) > 0):
                Fu1, Fl1, ll1 = cdf(z1, b1)
                if ll1 >= ll - 1e-12:
                    break
            t /= 2
            if t < 1e-10:
                z1, b1, Fu1, Fl1, ll1 = zeta, beta, Fu, Fl, ll
                break
        done = abs(ll1 - ll) < tol and np.max(np.abs(t * step)) < 1e-7
        zeta, beta, Fu, Fl, ll = z1, b1, Fu1, Fl1, ll1
        if done:
            break
    return zeta, beta, ll


def _row_sums(idx: np.ndarray, A: np.ndarray, k: int) -> np.ndarray:
    """Sums of the rows of ``A`` by group ``idx`` (0..k-1): k x A.shape[1]."""
    out = np.zeros((k, A.shape[1]))
    for j in range(A.shape[1]):
        out[:, j] = np.bincount(idx, A[:, j], k)
    return out


def nagelkerke(ll: float, ll0: float, n: int) -> float:
    """Nagelkerke's (1991) R2: ``(1 - exp(2 (ll0 - ll) / n)) / (1 - exp(2 ll0 / n))``."""
    return (1 - np.exp(2 * (ll0 - ll) / n)) / (1 - np.exp(2 * ll0 / n))


def lr_dif_item(y: np.ndarray, theta: np.ndarray, group: np.ndarray) -> dict[str, float]:
    """The three ordinal logistic models of one item, their chi-squares and pseudo-R2s.

    ``group`` is coded 0/1 (reference/focal). Rows with missing y are dropped by the caller.
    Persons with the same (y, theta, group) enter the regressions once, weighted by their number
    (the same likelihood); the intercept-only model's maximum is the multinomial one,
    ``sum_k n_k log(n_k / n)``.
    """
    n = len(y)
    y = np.asarray(y, int)
    _, ti = np.unique(theta, return_inverse=True)
    _, gi = np.unique(group, return_inverse=True)
    _, first, w = np.unique((ti * (gi.max() + 1) + gi) * (y.max() + 1) + y, return_index=True,
                            return_counts=True)
    y, theta, g = y[first], np.asarray(theta, float)[first], np.asarray(group, float)[first]
    nk = np.bincount(y, weights=w)
    ll0 = float(nk @ np.log(nk / n))
    # each model starts at the estimates of the model it extends
    z1, b1, ll1 = polr(y, theta[:, None], weights=w)
    z2, b2, ll2 = polr(y, np.column_stack([theta, g]), weights=w, start=(z1, np.append(b1, 0.0)))
    _, b3, ll3 = polr(y, np.column_stack([theta, g, theta * g]), weights=w,
                      start=(z2, np.append(b2, 0.0)))
    r1, r2, r3 = (nagelkerke(v, ll0, n) for v in (ll1, ll2, ll3))
    c12, c13, c23 = 2 * (ll2 - ll1), 2 * (ll3 - ll1), 2 * (ll3 - ll2)
    return {"n": n, "ll1": ll1, "ll2": ll2, "ll3": ll3,
            "chi12": c12, "p12": float(chi2.sf(c12, 1)), "chi13": c13, "p13": float(chi2.sf(c13, 2)),
            "chi23": c23, "p23": float(chi2.sf(c23, 1)),
            "R2_1": r1, "R2_2": r2, "R2_3": r3, "R2_12": r2 - r1, "R2_13": r3 - r1, "R2_23": r3 - r2,
            "beta1_m1": float(b1[0]), "beta1_m2": float(b2[0]), "beta2_m2": float(b2[1]),
            "beta3_m3": float(b3[2])}


@dataclass(frozen=True)
class DIFResult(JSONResult):
    """Ordinal logistic regression DIF of every item between two groups.

    Attributes
    ----------
    items : tuple of str
    group : str
        The grouping column; ``reference`` and ``focal`` its two values.
    reference, focal : str
    table : DataFrame
        One row per item: ``item n chi12 p12 chi13 p13 chi23 p23 R2_12 R2_13 R2_23 beta2_m2
        beta3_m3 flagged magnitude`` (``magnitude``: negligible, moderate or large by Jodoin &
        Gierl's Nagelkerke Delta R2 classes).
    iterations : int
        Purification rounds until the flagged set repeated.
    anchors : tuple of str
        Items used for the final matching theta (a flagged item split by group as
        ``item@group``).
    criterion : str
    rules : dict
        The rules applied (``DIF_ALPHA`` or ``DIF_R2_LORDIF``; ``DIF_R2_MODERATE``,
        ``DIF_R2_LARGE`` for the magnitude).
    theta : ndarray
        The final matching trait estimates (EAP of a graded model fitted to the anchors).
    note : str
        Why purification stopped early, if it did (fewer than `MIN_ANCHORS` unflagged items).
    meta : Meta
    """

    items: tuple[str, ...]
    group: str
    reference: str
    focal: str
    table: pd.DataFrame
    iterations: int
    anchors: tuple[str, ...]
    criterion: str
    rules: Mapping[str, Any]
    theta: np.ndarray
    note: str = ""
    meta: Meta = field(default_factory=Meta)

    @property
    def flagged(self) -> list[str]:
        return self.table.loc[self.table["flagged"], "item"].tolist()

    def summary(self) -> Table:
        cols = ["item", "chi12", "p12", "chi23", "p23", "chi13", "p13", "R2_13", "magnitude", "flagged"]
        return Table(f"DIF by ordinal logistic regression: {self.group} "
                     f"({self.focal} vs {self.reference})", self.table[cols],
                     notes=(f"Flagged by criterion {self.criterion!r}: "
                            + (DIF_ALPHA.describe() if self.criterion == "chisq"
                               else "not " + DIF_R2_LORDIF.describe())
                            + f". Magnitude: {DIF_R2_MODERATE.describe()}, {DIF_R2_LARGE.describe()}."
                            f" Purification rounds: {self.iterations}."
                            + (f" Note: {self.note}." if self.note else ""),), digits=4)


def _flag(row: Mapping[str, float], criterion: str) -> tuple[bool, str]:
    """(flagged, magnitude) of one item's regression results."""
    mag = ("negligible" if DIF_R2_MODERATE.passes(row["R2_13"])
           else "moderate" if DIF_R2_LARGE.passes(row["R2_13"]) else "large")
    if criterion == "chisq":
        return not DIF_ALPHA.passes(row["p13"]), mag
    return not DIF_R2_LORDIF.passes(row["R2_13"]), mag


PURIFICATIONS = ("split", "drop")


def _matching_theta(frame: pd.DataFrame, items: list[str], flagged: list[str], gv: np.ndarray,
                    labels: list, purification: str) -> tuple[np.ndarray, list[str]]:
    """EAP matching theta and the items it was computed from (split items named ``item@group``).

    A split item with a category unused in one group cannot be calibrated there: it is dropped
    from the matching instead (named in the returned list by its absence)."""
    anchors = [it for it in items if it not in flagged]
    cols = {it: frame[it] for it in anchors}
    if purification == "split":
        for it in flagged:
            parts = {}
            for lab in labels:
                y = frame[it].where(gv == lab)
                obs = y.dropna()
                if obs.empty or np.any(np.bincount(obs.astype(int) - int(obs.min()),
                                                   minlength=int(obs.max() - obs.min()) + 1) == 0):
                    parts = {}
                    break
                parts[f"{it}@{lab}"] = y - obs.min()
            cols.update(parts)
    used = list(cols)
    X = pd.DataFrame(cols)
    fit = irt(X, used, se=False, tol=1e-4)
    return fscores(fit, X)["theta"].to_numpy(), used


# the regressions' products are small (N x a few): one BLAS thread is fastest
@single_threaded
def dif(data: pd.DataFrame, items: Sequence[str], *, group: str, reference: Any | None = None,
        criterion: str = "chisq", maxit: int = MAX_PURIFICATION,
        purification: str = "split") -> DIFResult:
    """Ordinal logistic regression DIF with iterative purification (lordif's procedure).

    Parameters
    ----------
    data : DataFrame
        Responses coded 0..m (NaN missing) and the ``group`` column with two values.
    items : list of str
        Items of one construct (the matching trait is unidimensional).
    group : str
    reference : optional
        The reference group's value (default: the first in sorted order).
    criterion : {"chisq", "R2"}
        lordif's criteria: the overall (2 df) chi-square fails `DIF_ALPHA` (default), or the
        Nagelkerke Delta R2 (model 3 - model 1) fails `DIF_R2_LORDIF`.
    purification : {"split", "drop"}
        How flagged items enter the next round's matching theta: as one item per group
        (lordif's sparse matrix, default) or not at all.

    Returns
    -------
    DIFResult

    Notes
    -----
    The matching theta is the EAP score of a single-group logistic graded model fitted (MML) to
    the items not flagged in the previous round and, with ``purification="split"``, to the
    flagged items split by group (all items in the first round); items are refitted until the
    flagged set repeats (at most ``maxit`` rounds). The regressions reproduce ``MASS::polr``
    log-likelihoods; lordif uses ``rms::lrm``, whose likelihood is the same model.
    """
    if criterion not in ("chisq", "R2"):
        raise ValueError(f"criterion= must be one of 'chisq', 'R2'; got {criterion!r}.")
    if purification not in PURIFICATIONS:
        raise ValueError(f"purification= must be one of 'split', 'drop'; got {purification!r}.")
    items = list(items)
    X, gv, ref, foc = two_group_responses(data, items, group, reference)
    g01 = (gv == foc).astype(float)
    X = X - np.nanmin(X, axis=0)
    frame = pd.DataFrame(X, columns=items)
    flagged: list[str] = []
    stopped = ""
    history: list[tuple[str, ...]] = []
    table = None
    theta = None
    for rnd in range(1, maxit + 1):
        theta, anchors = _matching_theta(frame, items, flagged, gv,
                                         sorted((ref, foc), key=str), purification)
        rows = []
        for j, it in enumerate(items):
            ok = ~np.isnan(X[:, j]) & ~np.isnan(theta)
            y = X[ok, j].astype(int)
            y = np.unique(y, return_inverse=True)[1]
            res = lr_dif_item(y, theta[ok], g01[ok])
            fl, mag = _flag(res, criterion)
            rows.append({"item": it, **res, "flagged": fl, "magnitude": mag})
        table = pd.DataFrame(rows)
        new = tuple(table.loc[table["flagged"], "item"])
        if new in history or tuple(flagged) == new:
            flagged = list(new)
            break
        if len(items) - len(new) < MIN_ANCHORS:
            # too few unflagged items to match on: the flags of this round stand
            stopped = (f"purification stopped: {len(new)} of {len(items)} items flagged leaves "
                       f"fewer than {MIN_ANCHORS} to estimate the matching trait")
            break
        history.append(tuple(flagged))
        flagged = list(new)
    rules = {"DIF_ALPHA": DIF_ALPHA.to_dict(), "DIF_R2_LORDIF": DIF_R2_LORDIF.to_dict(),
             "DIF_R2_MODERATE": DIF_R2_MODERATE.to_dict(), "DIF_R2_LARGE": DIF_R2_LARGE.to_dict()}
    meta = Meta(options={"group": group, "reference": str(ref), "criterion": criterion,
                         "maxit": maxit, "purification": purification},
                data_hash=hash_frame(frame))
    return DIFResult(items=tuple(items), group=group, reference=str(ref), focal=str(foc),
                     table=table, iterations=rnd, anchors=tuple(anchors), criterion=criterion,
                     rules=rules, theta=theta, note=stopped, meta=meta)
