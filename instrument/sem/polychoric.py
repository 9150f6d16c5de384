"""Two-step sample statistics for ordinal items: thresholds, polychoric (polyserial, Pearson)
correlations and their asymptotic covariance matrix (NACOV), as lavaan 0.6-14 computes them for
``estimator = "WLSMV"``.

This is the data side of WLSMV: everything a DWLS objective needs and nothing that depends on a
model. It returns the engine's `instrument.sem.samplestats.SampleStats` whose groups carry, as
their ``ordinal`` part, a frozen `SampleStatsOrdinal` holding

* ``wls_obs`` -- the moment vector ``s`` in lavaan's order (``lavInspect(fit, "wls.obs")``):
  for each variable in ``ov_names`` order its thresholds ``x|t1, x|t2, ...`` (for a continuous
  variable one entry, minus its mean, named ``x~1``), then the variances of the continuous
  variables (``x~~x``), then the off-diagonal correlations (covariances for continuous pairs)
  taken column by column from the lower triangle: ``x1~~x2, x1~~x3, ..., x1~~xp, x2~~x3, ...``;
* ``NACOV`` -- ``lavInspect(fit, "gamma")``: N times the asymptotic covariance matrix of ``s``;
* ``WLS_V`` -- the DWLS weight ``diag(1 / diag(NACOV))`` (``lavInspect(fit, "wls.v")``), and
  ``WLS_W_full`` -- the full WLS weight ``NACOV^-1``.

The DWLS objective a later WLSMV estimator plugs into the CFA engine is, per group g,
``F_g = (s_g - sigma_g(theta))' WLS_V_g (s_g - sigma_g(theta))`` with ``sigma_g`` the model's
thresholds and implied correlations in the same order (lavaan's ``wls.est``). lavaan then takes
``fx_g = 0.5 (n_g - 1) / n_g F_g``, ``fx = sum_g (n_g / N) fx_g`` and ``chisq = 2 N fx``, i.e.

    chisq = sum_g (n_g - 1) F_g

(``lav_model_objective`` for estimator WLS/DWLS/ULS; note the ``n_g - 1``: "chisq = N F" is off
by the factor (N-1)/N). `dwls_fx` computes exactly this; the tests check it against lavaan's
``chisq`` with lavaan's own ``wls.est``. The remaining model-free WLSMV algebra (robust
covariance of the estimates, scaled-shifted test, baseline model) is in
`instrument.sem.estimators.dwls`; it needs only the model Jacobian ``Delta`` from the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import ndtr, ndtri

from instrument.sem.bvnorm import dbivnorm, pbivnorm_grid
from instrument.sem.linalg import sparse_if_sparse
from instrument.sem.samplestats import GroupStats, SampleStats, SampleStatsOrdinal

__all__ = [
    "sample_stats_ordinal",
    "thresholds",
    "polychoric",
    "polychoric_pairs",
    "ordinal_alpha",
    "dwls_fx",
    "MISSING_OPTIONS",
]

MISSING_OPTIONS = ("listwise", "pairwise")

_SQRT_EPS = float(np.sqrt(np.finfo(float).eps))  # lavaan's sqrt(.Machine$double.eps)
_BIG = 50.0          # stands in for +-Inf thresholds in padded grids: Phi(50) == 1, phi(50) == 0
_RHO_BOUND = 0.999   # lavaan's nlminb box for polychoric and Pearson correlations
_RHO_BOUND_PS = 0.995  # ... and for polyserial correlations
_ZERO_ADD_2X2 = 0.5  # lavaan's zero.add[1] (2 x 2 tables); zero.add[2] = 0 for larger tables
_ROW_BLOCK = 4096    # rows per block of case-wise scores (bounds memory for large N)


# --------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------

def _encode_ordinal(col: pd.Series) -> tuple[np.ndarray, tuple]:
    """0-based category codes (-1 = missing) and the observed levels in order.

    Levels are the sorted distinct observed values (the levels of R's ``ordered(x)``, which lavaan
    applies to numeric data), or, for an ordered pandas Categorical, its categories in declared
    order with unobserved ones dropped.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        raw = col.cat.codes.to_numpy()
        used = sorted(set(raw[raw >= 0].tolist()))
        remap = np.full(len(cats) + 1, -1, dtype=np.int64)
        for new, old in enumerate(used):
            remap[old] = new
        codes = np.where(raw >= 0, remap[np.maximum(raw, 0)], -1)
        return codes.astype(np.int64), tuple(cats[i] for i in used)
    values = col.to_numpy()
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf":
        coded = _encode_small_integers(values)
        if coded is not None:
            return coded
    miss = pd.isna(col).to_numpy()
    levels = np.unique(values[~miss]) if (~miss).any() else np.array([])
    codes = np.full(len(values), -1, dtype=np.int64)
    if len(levels):
        codes[~miss] = np.searchsorted(levels, values[~miss])
    return codes, tuple(lv.item() if hasattr(lv, "item") else lv for lv in levels)


_SMALL_RANGE = 1024   # integer codes spanning fewer values are encoded by counting


def _encode_small_integers(values: np.ndarray) -> tuple[np.ndarray, tuple] | None:
    """`_encode_ordinal` of a numeric array whose observed values are integers spanning fewer
    than `_SMALL_RANGE` values (survey codes), by counting instead of sorting: the same codes
    and levels as ``np.unique``/``searchsorted``; None for other data."""
    miss = np.isnan(values) if values.dtype.kind == "f" else None
    obs = values[~miss] if miss is not None and miss.any() else values
    if not len(obs):
        return None
    lo, hi = obs.min(), obs.max()
    if not (np.isfinite(lo) and np.isfinite(hi)) or float(hi) - float(lo) >= _SMALL_RANGE:
        return None
    off = obs - lo
    k = off.astype(np.intp)
    if values.dtype.kind == "f" and not np.array_equal(k, off):
        return None
    present = np.bincount(k, minlength=int(hi - lo) + 1) > 0
    remap = np.cumsum(present) - 1
    codes = np.full(len(values), -1, dtype=np.int64)
    if miss is not None and miss.any():
        codes[~miss] = remap[k]
    else:
        codes[:] = remap[k]
    levels = (lo + np.flatnonzero(present)).astype(values.dtype)
    return codes, tuple(lv.item() for lv in levels)


def _encode_small_integers_2d(values: np.ndarray) -> list:
    """`_encode_small_integers` of each column of ``values`` (n, k), done for all columns at once
    when every column qualifies (else column by column, falling back to `_encode_ordinal`).
    The work runs on the transpose (k, n), so each column's codes come out contiguous."""
    n, k = values.shape
    vt = values.T                      # a C-ordered view for pandas' column blocks
    isf = values.dtype.kind == "f"
    miss = np.isnan(vt) if isf else None
    any_miss = miss is not None and bool(miss.any())
    has = ~miss.all(axis=1) if any_miss else np.ones(k, bool)
    ok = bool(has.all()) and n > 0
    if ok:
        with np.errstate(invalid="ignore"):
            lo = np.nanmin(vt, axis=1) if any_miss else vt.min(axis=1)
            hi = np.nanmax(vt, axis=1) if any_miss else vt.max(axis=1)
        ok = bool(np.all(np.isfinite(lo) & np.isfinite(hi))) and \
            bool(np.all(hi.astype(float) - lo.astype(float) < _SMALL_RANGE))
    if ok:
        off = vt - lo[:, None]
        if any_miss:
            off[miss] = 0
        kk = off.astype(np.intp)
        ok = not isf or bool(np.array_equal(kk, off))
    if not ok:
        out = []
        for j in range(k):
            col = values[:, j]
            got = _encode_small_integers(col)
            out.append(got if got is not None else _encode_ordinal(pd.Series(col)))
        return out
    span = int((hi - lo).max()) + 1
    kk += (np.arange(k) * span)[:, None]
    counts = np.bincount(kk[~miss] if any_miss else kk.ravel(),
                         minlength=k * span).reshape(k, span)
    present = counts > 0
    remap = (np.cumsum(present, axis=1) - 1).ravel()
    codes = remap[kk]
    if any_miss:
        codes[miss] = -1
    out = []
    for j in range(k):
        levels = (lo[j] + np.flatnonzero(present[j])).astype(values.dtype)
        out.append((codes[j], tuple(lv.item() for lv in levels)))
    return out


# --------------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------------

def _thresholds_from_codes(codes: np.ndarray, ncat: int) -> np.ndarray:
    obs = codes[codes >= 0]
    freq = np.bincount(obs, minlength=ncat).astype(float)
    prop = freq / freq.sum()
    return ndtri(np.cumsum(prop)[:-1])


def thresholds(data: pd.DataFrame, *, missing: str = "listwise") -> pd.Series:
    """Sample thresholds of ordinal items: ``qnorm`` of the cumulative marginal proportions.

    Parameters
    ----------
    data : pandas.DataFrame
        One column per ordinal item (integer codes or ordered Categoricals); NaN = missing.
    missing : {"listwise", "pairwise"}
        ``"listwise"`` drops rows with any missing value first; ``"pairwise"`` uses every
        available value of each item.

    Returns
    -------
    pandas.Series
        Indexed by lavaan's names ``item|t1, item|t2, ...``.

    Notes
    -----
    ``tau_k = Phi^-1(sum_{c <= k} n_c / n)`` for ``k = 1..K-1`` over the K *observed* categories,
    which is the maximum-likelihood estimate lavaan's ``lav_uvord_fit`` converges to.
    """
    _check_missing(missing)
    df = data.dropna() if missing == "listwise" else data
    out: dict[str, float] = {}
    for name in df.columns:
        codes, levels = _encode_ordinal(df[name])
        for k, t in enumerate(_thresholds_from_codes(codes, len(levels)), start=1):
            out[f"{name}|t{k}"] = float(t)
    return pd.Series(out, dtype=float)


# --------------------------------------------------------------------------------------------
# polychoric correlations, vectorised over pairs
# --------------------------------------------------------------------------------------------

def _grid(th: np.ndarray) -> np.ndarray:
    """Pad thresholds (P, K-1) to limits (P, K+1): [-BIG, th..., +BIG]."""
    P = th.shape[0]
    return np.concatenate([np.full((P, 1), -_BIG), th, np.full((P, 1), _BIG)], axis=1)


def _cell_quantities(rho: np.ndarray, g1: np.ndarray, g2: np.ndarray, *, derivs: int = 2):
    """Cell probabilities PI and their rho-derivatives for P tables at once.

    g1: (P, K1+1) limits of item 1, g2: (P, K2+1) limits of item 2 (first/last = -+BIG),
    rho: (P,). Returns PI (floored at sqrt(eps), as lavaan), phi = dPI/drho (``derivs >= 1``)
    and gnorm = d2PI/drho2 (``derivs == 2``). Only the interior corners are evaluated; the
    border corners are closed-form (0, or the univariate margins).
    """
    P, n1 = g1.shape
    n2 = g2.shape[1]
    t1, t2 = g1[:, 1:-1], g2[:, 1:-1]
    # corners (P, n1-2, n2-2) by broadcasting: per-table and per-margin terms computed once
    X, Y, R = t1[:, :, None], t2[:, None, :], rho[:, None, None]
    BI = np.zeros((P, n1, n2))
    BI[:, 1:-1, 1:-1] = pbivnorm_grid(t1, t2, rho)
    BI[:, -1, 1:-1] = ndtr(t2)
    BI[:, 1:-1, -1] = ndtr(t1)
    BI[:, -1, -1] = 1.0
    PI = BI[:, 1:, 1:] - BI[:, 1:, :-1] - BI[:, :-1, 1:] + BI[:, :-1, :-1]
    PI = np.maximum(PI, _SQRT_EPS)
    if derivs == 0:
        return PI, None, None

    def corners(inner):
        full = np.zeros((P, n1, n2))
        full[:, 1:-1, 1:-1] = inner
        return full[:, 1:, 1:] - full[:, 1:, :-1] - full[:, :-1, 1:] + full[:, :-1, :-1]

    D = dbivnorm(X, Y, R)
    phi = corners(D)
    if derivs == 1:
        return PI, phi, None
    r2 = 1.0 - R * R
    G = D * (X * Y * r2 - R * (X * X - 2.0 * R * X * Y + Y * Y) + R * r2) / (r2 * r2)
    return PI, phi, corners(G)


def _pc_loglik_f(rho, freq, g1, g2):
    PI = _cell_quantities(rho, g1, g2, derivs=0)[0]
    return np.sum(freq * np.log(PI), axis=(1, 2))


def _pc_loglik(rho, freq, g1, g2):
    """Log-likelihood, gradient and Hessian in rho of P tables (lavaan's bad-cell rules)."""
    PI, phi, gnorm = _cell_quantities(rho, g1, g2)
    f = np.sum(freq * np.log(PI), axis=(1, 2))
    ok = PI > _SQRT_EPS
    w = np.where(ok, freq / PI, 0.0)
    g = np.sum(w * phi, axis=(1, 2))
    h = np.sum(w * gnorm, axis=(1, 2)) - np.sum(w * phi * phi / PI, axis=(1, 2))
    return f, g, h


def _maximise_1d(fgh, rho0: np.ndarray, lower: float, upper: float, *, max_iter: int = 100,
                 tol: float = 1e-13, max_step: float = 0.2):
    """Vectorised safeguarded Newton ascent on a box; returns (rho, converged, f, g, h), the last
    three the objective, gradient and Hessian at the returned rho.

    ``fgh(r, idx)`` evaluates the problems ``idx`` (an index array) at ``r`` (``len(idx)``
    values); problems are independent, so converged ones are not evaluated again. Steps are
    capped at `max_step` and halved until the objective does not decrease.
    """
    rho = np.clip(rho0.astype(float), lower, upper)
    f, g, h = fgh(rho, np.arange(len(rho)))
    done = np.zeros(rho.shape, bool)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if not len(act):
            break
        ra, fa, ga, ha = rho[act], f[act], g[act], h[act]
        step = np.where(ha < 0, -ga / np.where(ha < 0, ha, -1.0), np.sign(ga) * 0.1)
        step = np.clip(step, -max_step, max_step)
        for _half in range(60):
            new = np.clip(ra + step, lower, upper)
            fn, gn, hn = fgh(new, act)
            worse = (fn < fa - 1e-12 * np.abs(fa)) & (np.abs(new - ra) > 0)
            if not worse.any():
                break
            step = np.where(worse, step / 2.0, step)
        moved = np.abs(new - ra)
        rho[act], f[act], g[act], h[act] = new, fn, gn, hn
        at_bound = ((new <= lower) & (gn < 0)) | ((new >= upper) & (gn > 0))
        done[act] = (moved < tol) | at_bound
    return rho, done, f, g, h


def polychoric_pairs(freq: np.ndarray, th1: np.ndarray, th2: np.ndarray, *,
                     start: np.ndarray | None = None) -> np.ndarray:
    """Polychoric correlations of P two-way tables with fixed thresholds, all at once.

    Parameters
    ----------
    freq : ndarray, shape (P, K1, K2)
        Cell counts; tables with fewer categories are padded with zero rows/columns.
    th1 : ndarray, shape (P, K1 - 1)
        Thresholds of the row item (pad unused ones with a large value such as 50).
    th2 : ndarray, shape (P, K2 - 1)
        Thresholds of the column item.
    start : ndarray, shape (P,), optional
        Starting values (default 0).

    Returns
    -------
    ndarray, shape (P,)
        The maximiser of ``sum_ab n_ab log PI_ab(rho)`` on [-0.999, 0.999].

    Notes
    -----
    ``PI_ab = Phi2(t1_a, t2_b) - Phi2(t1_{a-1}, t2_b) - Phi2(t1_a, t2_{b-1}) + Phi2(t1_{a-1},
    t2_{b-1})``, floored at ``sqrt(eps)`` as lavaan's ``lav_bvord_noexo_pi`` does. Newton steps
    use the analytic gradient ``sum n_ab phi_ab / PI_ab`` (``phi`` = bivariate normal densities at
    the cell corners) and Hessian, halved until the log-likelihood does not decrease, for all
    pairs at once. 2 x 2 tables follow lavaan's special rules (see `_special_2x2`). Olsson's
    (1979) two-step estimator; lavaan ``lav_bvord_cor_twostep_fit`` (R/lav_bvord.R).

    References
    ----------
    Olsson, U. (1979). Maximum likelihood estimation of the polychoric correlation coefficient.
    Psychometrika, 44(4), 443-460. https://doi.org/10.1007/BF02296207
    """
    freq = np.asarray(freq, float)
    P = freq.shape[0]
    g1, g2 = _grid(np.asarray(th1, float)), _grid(np.asarray(th2, float))
    rho0 = np.zeros(P) if start is None else np.asarray(start, float)
    rho0 = np.where(np.abs(rho0) >= 1, 0.0, rho0)
    fgh = lambda r, idx: _pc_loglik(r, freq[idx], g1[idx], g2[idx])
    rho, ok, f_hat, _g, h_hat = _maximise_1d(fgh, rho0, -_RHO_BOUND, _RHO_BOUND)
    # guard against a spurious stationary point where floored cell probabilities make the
    # likelihood flat (near +-1): for tables whose curvature vanished, compare with a coarse
    # grid and restart from its best point
    n_tab = freq.sum(axis=(1, 2))
    flat = np.abs(h_hat) < 1e-6 * np.maximum(n_tab, 1.0)
    if flat.any():
        sub = np.flatnonzero(flat)
        grid = np.linspace(-0.95, 0.95, 39)
        f_grid = np.stack([_pc_loglik_f(np.full(len(sub), r), freq[sub], g1[sub], g2[sub])
                           for r in grid], axis=1)
        better = f_grid.max(axis=1) > f_hat[sub] + 1e-9 * np.abs(f_hat[sub])
        if better.any():
            idx = sub[better]
            r2, ok2 = _maximise_1d(lambda r, i: _pc_loglik(r, freq[idx[i]], g1[idx[i]],
                                                           g2[idx[i]]),
                                   grid[np.argmax(f_grid[better], axis=1)], -_RHO_BOUND,
                                   _RHO_BOUND, max_step=0.05)[:2]
            rho[idx], ok[idx] = r2, ok2
    if not ok.all():
        bad = np.flatnonzero(~ok)
        for p in bad:  # fall back to a bounded scalar search for the few stubborn ones
            fun = lambda r, p=p: -_pc_loglik(np.array([r]), freq[p:p + 1], g1[p:p + 1],
                                             g2[p:p + 1])[0][0]
            rho[p] = minimize_scalar(fun, bounds=(-_RHO_BOUND, _RHO_BOUND), method="bounded",
                                     options={"xatol": 1e-12}).x
    return rho


def _special_2x2(freq: np.ndarray, t1: float, t2: float) -> tuple[np.ndarray, float | None]:
    """lavaan's rules for a 2 x 2 table: two empty cells give +-1; one empty cell gets 0.5
    added (keeping the margins); a zero odds-ratio contrast gives 0; zero thresholds give the
    closed form ``-cos(2 pi n11 / n)``. Returns the (possibly corrected) table and a closed-form
    rho or None."""
    f = freq.astype(float).copy()
    zero = f == 0
    if zero.sum() == 2:
        return f, (1.0 if f[0, 0] > 0 else -1.0)
    if zero.sum() == 1:
        a = _ZERO_ADD_2X2
        if zero[0, 0] or zero[1, 1]:
            f += np.array([[a, -a], [-a, a]])
        else:
            f += np.array([[-a, a], [a, -a]])
    if f[0, 0] * f[1, 1] == f[0, 1] * f[1, 0]:
        return f, 0.0
    if t1 == 0 and t2 == 0:
        return f, float(-np.cos(2.0 * np.pi * f[0, 0] / f.sum()))
    return f, None


# --------------------------------------------------------------------------------------------
# the per-group computation (lavaan's muthen1984)
# --------------------------------------------------------------------------------------------

@dataclass
class _Var:
    name: str
    kind: str                 # "ordered" or "numeric"
    codes: np.ndarray | None  # ordered: 0-based codes, -1 missing
    ncat: int                 # ordered: number of categories
    y: np.ndarray | None      # numeric: values (NaN missing)
    th: np.ndarray            # ordered: thresholds; numeric: [mean]
    var: float                # numeric: ML variance; ordered: 1
    th_start: int = 0


def _numeric_margin(y: np.ndarray) -> tuple[float, float]:
    ok = ~np.isnan(y)
    mu = float(y[ok].mean())
    return mu, float(np.mean((y[ok] - mu) ** 2))


def _uvord_table(th: np.ndarray, K: int) -> np.ndarray:
    """Scores of the probit log-likelihood w.r.t. the thresholds for each category (K, K-1):
    row ``c`` is the case-wise score of a row answering category ``c``, ``phi(t_c) / pi_c`` in
    column ``c`` (for ``c < K-1``) and ``-phi(t_{c-1}) / pi_c`` in column ``c-1`` (for ``c > 0``),
    with ``pi_c = Phi(t_c) - Phi(t_{c-1})`` (lavaan ``lav_uvord_scores``)."""
    dens = np.exp(-0.5 * th * th) / np.sqrt(2 * np.pi)
    pi = np.diff(np.concatenate([[0.0], ndtr(th), [1.0]]))
    tab = np.zeros((K, K - 1))
    c = np.arange(K - 1)
    tab[c, c] = dens / pi[:-1]
    tab[c + 1, c] = -(dens / pi[1:])
    return tab


def _uvreg_scores(v: _Var) -> tuple[np.ndarray, np.ndarray]:
    mu, ev = v.th[0], v.var
    res = np.nan_to_num(v.y - mu, nan=0.0)
    miss = np.isnan(v.y)
    s_mu = res / ev
    s_var = -1.0 / (2.0 * ev) + res * res / (2.0 * ev * ev)
    s_mu[miss] = 0.0
    s_var[miss] = 0.0
    return s_mu, s_var


def _polyserial_parts(rho: float, y: np.ndarray, mu: float, var: float, codes: np.ndarray,
                      th: np.ndarray, K: int):
    sd = np.sqrt(var)
    ok = (~np.isnan(y)) & (codes >= 0)
    z = np.where(ok, (np.nan_to_num(y) - mu) / sd, 0.0)
    c = np.where(ok, codes, 0)
    lim = np.concatenate([[-_BIG], th, [_BIG]])
    up, lo = lim[c + 1], lim[c]
    R = np.sqrt(1.0 - rho * rho)
    ts, t1s = (up - rho * z) / R, (lo - rho * z) / R
    p = np.maximum(ndtr(ts) - ndtr(t1s), np.finfo(float).eps)
    return ok, z, c, up, lo, R, ts, t1s, p


def _polyserial_loglik(rho, y, mu, var, codes, th, K):
    ok, z, c, up, lo, R, ts, t1s, p = _polyserial_parts(rho, y, mu, var, codes, th, K)
    sd = np.sqrt(var)
    dens_y = np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * sd)
    lik = dens_y * p
    good = ok & (lik >= _SQRT_EPS)
    return float(np.sum(np.log(lik[good])))


def _polyserial_fit(y, mu, var, codes, th, K) -> float:
    """Two-step polyserial correlation (lavaan ``lav_bvmix_cor_twostep_fit``)."""
    fun = lambda r: -_polyserial_loglik(r, y, mu, var, codes, th, K)
    res = minimize_scalar(fun, bounds=(-_RHO_BOUND_PS, _RHO_BOUND_PS), method="bounded",
                          options={"xatol": 1e-12})
    return float(res.x)


def _polyserial_scores(rho, v_num: _Var, v_ord: _Var):
    """Case-wise scores of the polyserial log-likelihood (lavaan ``lav_bvmix_cor_scores``)."""
    K = v_ord.ncat
    ok, z, c, up, lo, R, ts, t1s, p = _polyserial_parts(rho, v_num.y, v_num.th[0], v_num.var,
                                                        v_ord.codes, v_ord.th, K)
    sd = np.sqrt(v_num.var)
    dz1 = np.exp(-0.5 * ts * ts) / np.sqrt(2 * np.pi)
    dz2 = np.exp(-0.5 * t1s * t1s) / np.sqrt(2 * np.pi)
    inv = 1.0 / p
    diff = dz1 - dz2
    d_mu = (z + inv * (rho / R) * diff) / sd
    d_var = ((z * z - 1.0) + inv * rho * z / R * diff) / (2.0 * v_num.var)
    N = len(z)
    d_th = np.zeros((N, K - 1))
    rows = np.arange(N)
    m_up = ok & (c < K - 1)
    d_th[rows[m_up], c[m_up]] += (dz1 / R * inv)[m_up]
    m_lo = ok & (c > 0)
    d_th[rows[m_lo], c[m_lo] - 1] -= (dz2 / R * inv)[m_lo]
    tauj = dz1 * (up * rho - z)
    tauj1 = dz2 * (lo * rho - z)
    d_rho = inv / (R ** 3) * (tauj - tauj1)
    for a in (d_mu, d_var, d_rho):
        a[~ok] = 0.0
    return d_mu, d_var, d_th, d_rho


def _pearson_fit(y1, y2, m1, v1, m2, v2) -> float:
    """Correlation of two continuous variables with fixed means and variances.

    Complete data: the Pearson correlation. With missing values (pairwise): lavaan's
    ``lav_bvreg_cor_twostep_fit`` maximises the bivariate normal log-likelihood of the complete
    pairs over rho from the pairwise Pearson correlation, leaving out rows whose density (on the
    raw scale) is below ``sqrt(eps)``. That rule makes the log-likelihood jump where a row crosses
    the cut-off, so, like lavaan's local optimiser, this runs Newton's method from the Pearson
    start (gradient exact, curvature by central differences) and stops at the nearby stationary
    point rather than at a jump.
    """
    ok = ~(np.isnan(y1) | np.isnan(y2))
    if ok.all():
        return float(np.corrcoef(y1, y2)[0, 1])
    a, b = y1[ok] - m1, y2[ok] - m2
    s1, s2 = np.sqrt(v1), np.sqrt(v2)
    z1, z2 = a / s1, b / s2
    const = np.log(2.0 * np.pi * s1 * s2)

    def grad(r):
        r2 = 1.0 - r * r
        q = (z1 * z1 - 2.0 * r * z1 * z2 + z2 * z2) / r2
        keep = (-0.5 * q - 0.5 * np.log(r2) - const) >= np.log(_SQRT_EPS)
        zq = q * r2
        g = r / r2 + z1 * z2 / r2 - zq * r / (r2 * r2)
        return float(np.sum(g[keep]))

    rho = float(np.corrcoef(a, b)[0, 1])
    if not np.isfinite(rho) or abs(rho) >= 1:
        rho = 0.0
    for _ in range(50):
        h = 1e-6
        curv = (grad(rho + h) - grad(rho - h)) / (2.0 * h)
        if not curv < 0:
            break
        step = -grad(rho) / curv
        new = float(np.clip(rho + step, -_RHO_BOUND, _RHO_BOUND))
        if abs(new - rho) < 1e-13:
            return new
        rho = new
    # fall back to a bounded search on the (discontinuous) log-likelihood
    def negll(r):
        r2 = 1.0 - r * r
        ll = -0.5 * (z1 * z1 - 2.0 * r * z1 * z2 + z2 * z2) / r2 - 0.5 * np.log(r2) - const
        return -float(np.sum(ll[ll >= np.log(_SQRT_EPS)]))
    return float(minimize_scalar(negll, bounds=(-_RHO_BOUND, _RHO_BOUND), method="bounded",
                                 options={"xatol": 1e-12}).x)


def _pearson_scores(rho, v1: _Var, v2: _Var):
    """Case-wise scores of the bivariate normal log-likelihood (lavaan ``lav_bvreg_cor_scores``)."""
    ok = ~(np.isnan(v1.y) | np.isnan(v2.y))
    y1c = np.where(ok, np.nan_to_num(v1.y) - v1.th[0], 0.0)
    y2c = np.where(ok, np.nan_to_num(v2.y) - v2.th[0], 0.0)
    e1, e2 = v1.var, v2.var
    s1, s2 = np.sqrt(e1), np.sqrt(e2)
    R = 1.0 - rho * rho
    d_mu1 = (2 * y1c / e1 - 2 * rho * y2c / (s1 * s2)) / (2 * R)
    d_mu2 = -(2 * rho * y1c / (s1 * s2) - 2 * y2c / e2) / (2 * R)
    d_var1 = -(0.5 / e1 - ((y1c * y1c) / (e1 * e1) - rho * y1c * y2c / (e1 * s1 * s2)) / (2 * R))
    d_var2 = -(0.5 / e2 + (rho * y1c * y2c / (e2 * s1 * s2) - (y2c * y2c) / (e2 * e2)) / (2 * R))
    zq = y1c * y1c / e1 - 2 * rho * y1c * y2c / (s1 * s2) + y2c * y2c / e2
    d_rho = rho / R + (y1c * y2c / (s1 * s2 * R) - zq * rho / (R * R))
    for a in (d_mu1, d_mu2, d_var1, d_var2, d_rho):
        a[~ok] = 0.0
    return d_mu1, d_var1, d_mu2, d_var2, d_rho


def _pair_index(p: int) -> list[tuple[int, int]]:
    """lavaan's order of the off-diagonal elements: column by column of the lower triangle,
    returned as (j, i) with j < i: (0,1), (0,2), ..., (0,p-1), (1,2), ..."""
    return [(j, i) for j in range(p - 1) for i in range(j + 1, p)]


def _cross_tables(codes: list[np.ndarray], K: int) -> np.ndarray:
    """All two-way frequency tables at once: ``H'H`` for the one-hot coding H (n x len(codes) K;
    code -1 = missing, no column), H written by one scatter of ones. Counts are exact in single
    precision below 2**24 rows, so the product runs in float32 when n is smaller."""
    n = len(codes[0]) if codes else 0
    k = len(codes)
    dt = np.float32 if n < 2 ** 24 else np.float64
    H = np.zeros(n * k * K, dtype=dt)
    row0 = np.arange(n) * (k * K)               # flat position of each row's first column
    for m, c in enumerate(codes):
        pos = row0 + c
        pos += m * K
        obs = c >= 0
        H[pos if obs.all() else pos[obs]] = 1.0
    H = H.reshape(n, k * K)
    return (H.T @ H).astype(float)


def _muthen1984(vars_: list[_Var], n: int, *, compute_nacov: bool = True) -> dict[str, Any]:
    """Step 2 (correlations) and step 3 (their joint asymptotic covariance) for one group.

    Ordinal pairs are done all at once: their tables come from one cross product of one-hot
    codes, their correlations from `polychoric_pairs`, and every case-wise quantity of a pair is
    a function of the row's cell only, so scores are table lookups and the threshold cross
    products (A21) are sums over cells weighted by the counts. Pairs with a numeric variable
    (rare in survey data) are done one by one. Returns ``COR`` and, if asked, ``ACOV`` (the
    covariance of the moment vector, before multiplying by n).
    """
    p = len(vars_)
    pairs = _pair_index(p)
    pstar = len(pairs)
    COR = np.eye(p)
    warn: list[str] = []
    zero_cells: list[tuple[str, str]] = []

    # threshold layout (numeric variables have one slot: their mean)
    nth = 0
    for v in vars_:
        v.th_start = nth
        nth += (v.ncat - 1) if v.kind == "ordered" else 1
    num_idx = [k for k, v in enumerate(vars_) if v.kind == "numeric"]
    var_col = {k: nth + m for m, k in enumerate(num_idx)}  # SC.VAR column per numeric variable
    ord_idx = [k for k, v in enumerate(vars_) if v.kind == "ordered"]

    # ---- ordinal-ordinal pairs: frequencies from one one-hot cross product -------------------
    Kmax = max([vars_[k].ncat for k in ord_idx], default=2)
    is_ord = set(ord_idx)
    oo = [(q, j, i) for q, (j, i) in enumerate(pairs) if j in is_ord and i in is_ord]
    jj = np.array([j for _, j, _i in oo], dtype=np.intp)
    ii = np.array([i for _, _j, i in oo], dtype=np.intp)
    qq = np.array([q for q, _j, _i in oo], dtype=np.intp)
    ncat = np.array([v.ncat for v in vars_])
    th_start = np.array([v.th_start for v in vars_])
    if oo:
        CT = _cross_tables([vars_[k].codes for k in ord_idx], Kmax)
        nord = len(ord_idx)
        blocks = CT.reshape(nord, Kmax, nord, Kmax).transpose(0, 2, 1, 3)   # [j, i, a, b]
        posv = np.full(p, -1, dtype=np.intp)
        posv[ord_idx] = np.arange(nord)
        freq = blocks[posv[jj], posv[ii]]
        th_pad = np.full((p, Kmax - 1), _BIG)
        for k in ord_idx:
            th_pad[k, :vars_[k].ncat - 1] = vars_[k].th
        T1, T2 = th_pad[jj], th_pad[ii]
        # lavaan's start: Pearson correlation of the codes on complete pairs
        a = np.arange(Kmax, dtype=float)
        tot = freq.sum(axis=(1, 2))
        safe = np.maximum(tot, 1.0)
        ra, cb = freq.sum(2), freq.sum(1)
        ma, mb = ra @ a / safe, cb @ a / safe
        cov = np.einsum("a,pab,b->p", a, freq, a) / safe - ma * mb
        va, vb = ra @ (a * a) / safe - ma * ma, cb @ (a * a) / safe - mb * mb
        ok = (va > 0) & (vb > 0)
        start = np.where(ok, cov / np.sqrt(np.where(ok, va * vb, 1.0)), 0.0)
        rho = np.full(len(oo), np.nan)
        fit_freq = freq.copy()
        n1, n2 = ncat[jj], ncat[ii]
        inside = (np.arange(Kmax)[None, :, None] < n1[:, None, None]) & \
                 (np.arange(Kmax)[None, None, :] < n2[:, None, None])
        has_zero = np.any((freq == 0) & inside, axis=(1, 2))
        for m in np.flatnonzero(has_zero):
            zero_cells.append((vars_[oo[m][1]].name, vars_[oo[m][2]].name))
        for m in np.flatnonzero((n1 == 2) & (n2 == 2)):
            vj, vi = vars_[oo[m][1]], vars_[oo[m][2]]
            f2, closed = _special_2x2(freq[m, :2, :2], vj.th[0], vi.th[0])
            fit_freq[m, :2, :2] = f2
            if closed is not None:
                rho[m] = closed
                if abs(closed) == 1.0:
                    warn.append(f"two empty cells in 2x2 table of {vj.name} x {vi.name}")
        todo = np.isnan(rho)
        if todo.any():
            rho[todo] = polychoric_pairs(fit_freq[todo], T1[todo], T2[todo], start=start[todo])
        COR[ii, jj] = rho
        COR[jj, ii] = rho

    # ---- pairs involving numeric variables ----------------------------------------------------
    for q, (j, i) in enumerate(pairs):
        vj, vi = vars_[j], vars_[i]
        if vj.kind == "numeric" and vi.kind == "numeric":
            r = _pearson_fit(vj.y, vi.y, vj.th[0], vj.var, vi.th[0], vi.var)
        elif vj.kind == "numeric" or vi.kind == "numeric":
            vn, vo = (vj, vi) if vj.kind == "numeric" else (vi, vj)
            r = _polyserial_fit(vn.y, vn.th[0], vn.var, vo.codes, vo.th, vo.ncat)
        else:
            continue
        COR[i, j] = COR[j, i] = r
    for j, i in zip(*np.nonzero(np.abs(np.tril(COR, -1).T) > 0.99)):   # pairs order (j < i)
        warn.append(f"correlation between variables {vars_[i].name} and {vars_[j].name} "
                    "is (nearly) 1.0")

    out: dict[str, Any] = {"COR": COR, "warnings": warn, "zero_cell_tables": zero_cells,
                           "nth": nth, "num_idx": num_idx, "pairs": pairs}
    if not compute_nacov:
        return out

    # ---- case-wise scores ----------------------------------------------------------------------
    # Columns of the n x ncol score matrix S: thresholds (means), numeric variances, correlations.
    # S is never held whole: columns from numeric variables are kept as vectors (`dense`), the
    # ordinal ones as tables by category (`th_tab`, `cor_tab`).
    nvar_cols = len(num_idx)
    off = nth + nvar_cols
    ncol = off + pstar
    dense: dict[int, np.ndarray] = {}
    for k, v in enumerate(vars_):
        if v.kind == "numeric":
            dense[v.th_start], dense[var_col[k]] = _uvreg_scores(v)
    A21 = np.zeros((pstar, nth + nvar_cols))

    if oo:
        rho_oo = COR[ii, jj]
        g1, g2 = _grid(T1), _grid(T2)
        PI, phi, _ = _cell_quantities(rho_oo, g1, g2, derivs=1)
        good = PI > _SQRT_EPS
        inv_pi = np.where(good, 1.0 / PI, 0.0)
        sc_rho_cell = phi * inv_pi                                   # (P, K, K)
        R = np.sqrt(1.0 - rho_oo * rho_oo)[:, None, None]
        # derivative of PI_ab w.r.t. threshold k of item 1: D1[k, b] (1{k=a} - 1{k=a-1})
        t1 = T1[:, :, None]                                           # (P, K-1, 1)
        cdf2 = ndtr((g2[:, None, :] - rho_oo[:, None, None] * t1) / R)  # (P, K-1, K+1)
        D1 = np.exp(-0.5 * t1 * t1) / np.sqrt(2 * np.pi) * (cdf2[:, :, 1:] - cdf2[:, :, :-1])
        t2 = T2[:, :, None]
        cdf1 = ndtr((g1[:, None, :] - rho_oo[:, None, None] * t2) / R)
        D2 = np.exp(-0.5 * t2 * t2) / np.sqrt(2 * np.pi) * (cdf1[:, :, 1:] - cdf1[:, :, :-1])
        # sum_ab n_ab s_rho,ab dPI_ab/dt / PI_ab, with dPI_ab/dt1_k = D1[k,b] (d_{k,a}-d_{k,a-1})
        wgt = freq * sc_rho_cell * inv_pi                             # (P, K, K)
        A1 = np.einsum("pkb,pkb->pk", D1, wgt[:, :-1, :]) - np.einsum("pkb,pkb->pk", D1,
                                                                        wgt[:, 1:, :])
        A2 = np.einsum("pka,pak->pk", D2, wgt[:, :, :-1]) - np.einsum("pka,pak->pk", D2,
                                                                        wgt[:, :, 1:])
        # case-wise correlation scores: a lookup of each row's cell in its pair's table; a
        # missing value is category Kmax, whose row and column of the table are zero (lavaan: NA
        # scores count as 0)
        Kp = Kmax + 1
        cor_tab = np.zeros((len(oo), Kp, Kp))
        cor_tab[:, :Kmax, :Kmax] = sc_rho_cell
        # A21: each pair's A1 (A2) in the threshold columns of its first (second) variable
        t = np.arange(Kmax - 1)
        for A, v in ((A1, jj), (A2, ii)):
            m, k = np.nonzero(t[None, :] < (ncat[v] - 1)[:, None])
            A21[qq[m], th_start[v][m] + k] = A[m, k]

    Hmat = None
    if num_idx:
        Hmat = np.eye(ncol)
    VAR = np.array([v.var for v in vars_])
    for q, (j, i) in enumerate(pairs):
        vj, vi = vars_[j], vars_[i]
        if vj.kind == "ordered" and vi.kind == "ordered":
            continue
        rho = COR[i, j]
        if vj.kind == "numeric" and vi.kind == "numeric":
            d_mu1, d_var1, d_mu2, d_var2, d_rho = _pearson_scores(rho, vi, vj)
            dense[off + q] = d_rho
            A21[q, vi.th_start] = d_rho @ d_mu1
            A21[q, vj.th_start] = d_rho @ d_mu2
            A21[q, var_col[i]] = d_rho @ d_var1
            A21[q, var_col[j]] = d_rho @ d_var2
            Hmat[off + q, var_col[i]] = np.sqrt(VAR[j]) * rho / (2 * np.sqrt(VAR[i]))
            Hmat[off + q, var_col[j]] = np.sqrt(VAR[i]) * rho / (2 * np.sqrt(VAR[j]))
            Hmat[off + q, off + q] = np.sqrt(VAR[i] * VAR[j])
        else:
            kn, ko = (j, i) if vj.kind == "numeric" else (i, j)
            vn, vo = vars_[kn], vars_[ko]
            d_mu, d_var, d_th, d_rho = _polyserial_scores(rho, vn, vo)
            dense[off + q] = d_rho
            A21[q, vn.th_start] = d_rho @ d_mu
            A21[q, vo.th_start:vo.th_start + vo.ncat - 1] = d_rho @ d_th
            A21[q, var_col[kn]] = d_rho @ d_var
            Hmat[off + q, var_col[kn]] = rho / (2 * np.sqrt(VAR[kn]))
            Hmat[off + q, off + q] = np.sqrt(VAR[kn])

    # ---- B^-1 folded into the scores ------------------------------------------------------------
    # ACOV = B^-1 (S'S) B^-T with B = [[A11, 0], [A21, diag(A22)]]: A11 the threshold (mean,
    # variance) block of S'S, block diagonal per variable, A22 the diagonal of its correlation
    # block and A21 the threshold derivatives of the correlation scores (above). ACOV is the
    # cross product G'G of G = S B^-T, B^-1 = [[A11^-1, 0], [C, diag(A22^-1)]] with
    # C = -diag(A22^-1) A21 A11^-1: a threshold column of G mixes its variable's threshold
    # scores and a correlation column q = (j, i) is A22_q^-1 s_q plus C's mix of the threshold
    # scores of j and of i, so the columns of G are, like those of S, functions of a row's
    # category (ordinal) and are looked up in transformed tables. A11 and A22 come from the
    # frequency tables (sum over rows = sum over cells weighted by the counts).
    Kp = Kmax + 1                                    # category Kmax = missing (scores 0)
    codes_t = np.full((p, n), Kmax, dtype=np.intp)
    for k in ord_idx:
        c = vars_[k].codes
        codes_t[k] = np.where(c >= 0, c, Kmax)
    th_var = np.array([k for k in ord_idx for _ in range(vars_[k].ncat - 1)], dtype=np.intp)
    th_col = np.array([vars_[k].th_start + t for k in ord_idx for t in range(vars_[k].ncat - 1)],
                      dtype=np.intp)
    th_tab = np.zeros((len(th_col), Kp))           # S's threshold columns by category
    m = 0
    for k in ord_idx:
        v = vars_[k]
        th_tab[m:m + v.ncat - 1, :v.ncat] = _uvord_table(v.th, v.ncat).T
        m += v.ncat - 1
    n11 = nth + nvar_cols
    A11 = np.zeros((n11, n11))
    # category counts per ordinal variable (one bincount over variable-offset codes)
    cnt = np.bincount((codes_t[ord_idx] + (np.arange(len(ord_idx)) * Kp)[:, None]).ravel(),
                      minlength=len(ord_idx) * Kp).reshape(len(ord_idx), Kp)
    for m, k in enumerate(ord_idx):
        r = np.flatnonzero(th_var == k)
        T = th_tab[r]
        A11[th_col[r][:, None], th_col[r][None, :]] = (T * cnt[m]) @ T.T
    for k in num_idx:
        ix = np.array([vars_[k].th_start, var_col[k]])
        X = np.stack([dense[c] for c in ix])
        A11[ix[:, None], ix[None, :]] = X @ X.T
    a22 = np.zeros(pstar)
    if oo:
        a22[qq] = np.einsum("pab,pab->p", freq, sc_rho_cell * sc_rho_cell)
    nonoo = [q for q, (j, i) in enumerate(pairs) if not (j in is_ord and i in is_ord)]
    for q in nonoo:
        a22[q] = dense[off + q] @ dense[off + q]
    if np.any(a22 == 0):
        raise ValueError("cannot compute NACOV: a correlation has all-zero case-wise scores "
                         "(no complete pairs?)")
    A22_inv = 1.0 / a22
    A11_inv = np.zeros((n11, n11))  # block diagonal: inverted per variable
    blocks: dict[int, list] = {}    # variables' index sets, by size (inverted as one batch)
    for k, v in enumerate(vars_):
        idx = list(range(v.th_start, v.th_start + ((v.ncat - 1) if v.kind == "ordered" else 1)))
        if v.kind == "numeric":
            idx.append(var_col[k])
        blocks.setdefault(len(idx), []).append(idx)
    for idx in blocks.values():
        ix = np.array(idx)                                  # (variables, size)
        r, c = ix[:, :, None], ix[:, None, :]
        A11_inv[r, c] = np.linalg.inv(A11[r, c])
    # C is mostly zeros (a row touches the thresholds of two variables): a sparse product
    C = sparse_if_sparse(-(A22_inv[:, None] * A21)) @ sparse_if_sparse(A11_inv)
    C = C.toarray() if hasattr(C, "toarray") else np.asarray(C)
    # G's columns of the pairs with a numeric variable: vectors (S's columns combined)
    for q in nonoo:
        col = A22_inv[q] * dense[off + q]
        for t in np.flatnonzero(C[q]):
            if t in dense:
                col += C[q, t] * dense[t]
            else:
                r = int(np.flatnonzero(th_col == t)[0])
                col += C[q, t] * th_tab[r][codes_t[th_var[r]]]
        dense[off + q] = col
    for k in num_idx:
        ix = [vars_[k].th_start, var_col[k]]
        X = A11_inv[np.ix_(ix, ix)] @ np.stack([dense[c] for c in ix])
        dense[ix[0]], dense[ix[1]] = X[0], X[1]
    # transformed tables: thresholds A11^-1 per variable; ordinal pairs A22^-1 s_q plus the
    # threshold mixes of j (a function of the row's category of j) and of i
    th_tab_g = A11_inv[np.ix_(th_col, th_col)] @ th_tab
    if oo:
        Cth = C[qq][:, th_col]
        U_j = (Cth * (th_var[None, :] == jj[:, None])) @ th_tab       # (P, Kp)
        U_i = (Cth * (th_var[None, :] == ii[:, None])) @ th_tab
        cor_tab = A22_inv[qq][:, None, None] * cor_tab + U_j[:, :, None] + U_i[:, None, :]

    # G is built transposed (one row per column of G) so that every lookup gathers whole rows,
    # in blocks of rows (bounding memory for large N); W = G'G accumulated block by block
    # each ordinal variable's threshold columns: consecutive in G and in th_tab_g
    th_blocks = []
    m = 0
    for k in ord_idx:
        th_blocks.append((k, m, vars_[k].th_start, vars_[k].ncat - 1))
        m += vars_[k].ncat - 1
    KK = Kp * Kp
    if oo:
        codes_kp = codes_t * Kp
        cor_rows = off + qq
        # runs of ordinal pairs (j, i0), (j, i0 + 1), ... (consecutive in the tables and in G):
        # pair m of a run starting at m0 has table offset (m0 - i0) KK + i KK, so its index
        # c_j Kp + c_i + m KK is a per-variable term (c_i + i KK) plus a per-run row
        # vector, one addition for the whole run
        brk = np.flatnonzero((np.diff(jj) != 0) | (np.diff(ii) != 1) | (np.diff(qq) != 1)) + 1
        starts = np.concatenate([[0], brk])
        runs = [(jj[a], ii[a], a, b) for a, b in zip(starts, np.append(brk, len(jj)))]
        i_off = (np.arange(p) * KK)[:, None]
        ct = cor_tab.ravel()
        # one index buffer for every run (no allocation per run)
        idx_buf = np.empty(max(b - a for _j, _i, a, b in runs) * min(n, _ROW_BLOCK), np.intp)
    W = None
    # one buffer for every block of G and one for the blocks' products (fresh memory of this
    # size costs page faults; the arithmetic is unchanged)
    Gt_buf = np.empty(ncol * min(n, _ROW_BLOCK))
    prod = None
    for start in range(0, n, _ROW_BLOCK):
        rows = slice(start, min(n, start + _ROW_BLOCK))
        Gt = Gt_buf[:ncol * (rows.stop - rows.start)].reshape(ncol, -1)
        for k, m, c0, nt in th_blocks:
            np.take(th_tab_g[m:m + nt], codes_t[k, rows], axis=1, out=Gt[c0:c0 + nt],
                    mode="clip")
        for col, vec in dense.items():
            Gt[col] = vec[rows]
        if oo:
            ci = codes_t[:, rows] + i_off
        for j, i0, a, b in runs if oo else ():
            idx = idx_buf[:(b - a) * (rows.stop - rows.start)].reshape(b - a, -1)
            np.add(ci[i0:i0 + b - a], codes_kp[j, rows] + (a - i0) * KK, out=idx)
            np.take(ct, idx, out=Gt[cor_rows[a]:cor_rows[a] + b - a], mode="clip")
        if W is None:
            W = Gt @ Gt.T
        else:
            prod = np.matmul(Gt, Gt.T, out=prod)
            W += prod
    if Hmat is not None:
        W = Hmat @ W @ Hmat.T
        flip = np.array([vars_[k].th_start for k in num_idx])
        W[flip, :] *= -1.0
        W[:, flip] *= -1.0
    out["ACOV"] = W
    return out


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------

def _check_missing(missing: str) -> None:
    if missing not in MISSING_OPTIONS:
        raise ValueError(f"missing= must be one of 'listwise', 'pairwise'; got {missing!r}.")


def sample_stats_ordinal(data: pd.DataFrame, *, ov_names: Sequence[str] | None = None,
                         ordered: Sequence[str] | bool | None = True, group: str | None = None,
                         group_order: Sequence | None = None, missing: str = "listwise",
                         nacov: bool = True) -> SampleStats:
    """Thresholds, polychoric correlations and NACOV per group, as lavaan's WLSMV sample stats.

    Parameters
    ----------
    data : pandas.DataFrame
        Raw data; ordered variables as integer codes or ordered Categoricals, NaN = missing.
    ov_names : sequence of str, optional
        Variables to use, in the order of the moment vector (default: every column except
        `group`). Pass the model's observed-variable order to match lavaan's ``wls.obs``.
    ordered : sequence of str or bool
        Which variables are ordinal (``True`` = all; ``None``/``False`` = none, i.e. all numeric);
        the others are treated as continuous (polyserial / Pearson correlations).
    group : str, optional
        Grouping column; groups are ordered by first appearance (lavaan) unless `group_order`.
    missing : {"listwise", "pairwise"}
        ``"listwise"`` drops rows with a missing value on any of `ov_names` (within each group);
        ``"pairwise"`` (lavaan's ``missing = "pairwise"``) keeps every row: thresholds use each
        item's available values, each correlation the rows complete on its two variables, and
        case-wise scores of missing entries are zero; ``n`` is then the number of rows.
    nacov : bool
        Compute NACOV and WLS_V (the case-wise score step); False for point estimates only.

    Returns
    -------
    SampleStats
        One `GroupStats` per group with the two-step statistics as its ``ordinal`` part
        (`SampleStatsOrdinal`; ``.ordinal`` gives them all).

    Notes
    -----
    Step 1, per variable: thresholds ``Phi^-1`` of cumulative proportions of the observed
    categories (a category nobody chose does not exist for lavaan; unequal numbers of categories
    across items are fine), or mean and ML variance. Categories are those present in the rows
    used (after listwise deletion) across all groups; a category present overall but empty in one
    group is an error, as in lavaan. One deliberate difference: lavaan takes the categories
    *before* listwise deletion and stops if deletion empties one; here the category is simply
    absent (the result equals lavaan's on the complete rows). Step 2, per pair with step-1 values fixed:
    polychoric (`polychoric_pairs`), polyserial or Pearson maximum-likelihood correlation.
    Step 3 (Muthen, 1984; lavaan ``muthen1984``): with ``S`` the n x m matrix of case-wise scores
    of the step-1 and step-2 log-likelihoods (thresholds, numeric variances, correlations),
    ``INNER = S'S``, ``A11`` the per-variable diagonal blocks of ``INNER``, ``A22 = diag(S_rho'
    S_rho)`` and ``A21`` the cross-products of each correlation's score with the derivatives of
    that pair's log-likelihood with respect to the thresholds (means, variances), the covariance
    of the estimates is ``B^-1 INNER B^-T`` with ``B = [[A11, 0], [A21, A22]]``; continuous pairs
    are carried to the covariance metric by the delta method and the signs of the numeric "thresholds"
    (``-mean``) flipped. ``NACOV = n B^-1 INNER B^-T``; ``WLS_V = diag(1/diag(NACOV))``.
    ``B^-1 INNER B^-T`` is formed as the cross product ``G'G`` of ``G = S B^-T``, whose ordinal
    columns are table lookups of a row's categories like those of ``S``; A11 and A22 are sums
    over the frequency tables.

    References
    ----------
    Muthen, B. (1984). A general structural equation model with dichotomous, ordered
    categorical, and continuous latent variable indicators. Psychometrika, 49(1), 115-132.
    https://doi.org/10.1007/BF02294210
    Olsson, U., Drasgow, F., & Dorans, N. J. (1982). The polyserial correlation coefficient.
    Psychometrika, 47(3), 337-347. https://doi.org/10.1007/BF02294164
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    _check_missing(missing)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data= must be a pandas DataFrame; got {type(data).__name__}.")
    if group is not None and group not in data.columns:
        raise ValueError(f"group= column {group!r} not found in data (columns: "
                         f"{list(map(str, data.columns))}).")
    names = [c for c in data.columns if c != group] if ov_names is None else list(ov_names)
    missing_cols = [c for c in names if c not in data.columns]
    if missing_cols:
        raise ValueError(f"ov_names: column(s) {missing_cols} not found in data.")
    if len(names) < 1:
        raise ValueError("ov_names: need at least one variable.")
    if group is not None and group in names:
        raise ValueError(f"group= column {group!r} is also listed in ov_names.")
    if isinstance(ordered, str):
        ordered = [ordered]
    if ordered is True:
        ord_set = set(names)
    elif ordered is None or ordered is False:
        ord_set = set()
    else:
        ord_set = set(ordered)
        unknown = ord_set - set(names)
        if unknown:
            raise ValueError(f"ordered= names {sorted(unknown)} are not among ov_names.")
    if not ord_set:
        raise ValueError("ordered= selects no variable; use the continuous sample statistics.")

    df = data
    if group is not None:
        if df[group].isna().any():
            rows = np.flatnonzero(df[group].isna().to_numpy())[:5].tolist()
            raise ValueError(f"group column {group!r} has missing values (rows {rows}).")
    sub = df[names]
    if missing == "listwise":
        keep = sub.notna().to_numpy().all(axis=1)
        if not keep.all():
            df = df.loc[keep]
            sub = df[names]

    # levels are determined on the whole data set (lavaan's ov.levels), codes per variable
    enc: dict[str, tuple[np.ndarray, tuple]] = {}
    ord_names = [nm for nm in names if nm in ord_set]
    dtypes = dict(zip(df.columns, df.dtypes)) if df.columns.is_unique else {}
    kinds = {dtypes.get(nm) for nm in ord_names}
    if len(kinds) == 1 and isinstance(next(iter(kinds)), np.dtype) and \
            next(iter(kinds)).kind in "iuf":
        # integer-coded items of one dtype (survey data): all columns encoded at once
        items = sub if len(ord_names) == len(names) else sub[ord_names]
        enc.update(zip(ord_names, _encode_small_integers_2d(items.to_numpy())))
    for nm in names:
        if nm in ord_set:
            col = df[nm] if nm not in enc else None
            if col is None:
                codes, lv = enc[nm]
            elif not (isinstance(col.dtype, pd.CategoricalDtype)
                      or pd.api.types.is_numeric_dtype(col)):
                bad = col.dropna()
                raise ValueError(
                    f"ordered column {nm!r} holds text (e.g. {bad.iloc[0]!r} in row "
                    f"{bad.index[0]!r}); expected integer codes or an ordered pandas Categorical "
                    "whose categories are in response order.")
            else:
                codes, lv = _encode_ordinal(col)
            if len(lv) < 2:
                raise ValueError(f"ordered variable {nm!r} has {len(lv)} observed category; "
                                 "need at least 2.")
            enc[nm] = (codes, lv)
        else:
            if not pd.api.types.is_numeric_dtype(df[nm]):
                raise ValueError(f"column {nm!r} is not numeric; declare it in ordered= or "
                                 "recode it.")

    if group is None:
        labels: list = [None]
        rows_by_group = [np.arange(len(df))]
    else:
        gv = df[group].to_numpy()
        labels = list(pd.unique(gv)) if group_order is None else list(group_order)
        absent = set(pd.unique(gv)) - set(labels)
        if absent:
            raise ValueError(f"group_order= misses group(s) {sorted(map(str, absent))}.")
        rows_by_group = [np.flatnonzero(gv == lab) for lab in labels]

    out = []
    for lab, rows in zip(labels, rows_by_group):
        n = len(rows)
        if n == 0:
            raise ValueError(f"group {lab!r} has no rows after missing={missing!r} handling.")
        vars_: list[_Var] = []
        for nm in names:
            if nm in ord_set:
                codes = enc[nm][0][rows]
                K = len(enc[nm][1])
                freq = np.bincount(codes[codes >= 0], minlength=K)
                if np.any(freq == 0):
                    where = "" if lab is None else f" in group {lab!r}"
                    raise ValueError(f"some categories of variable {nm!r} are empty{where}; "
                                     f"frequencies are {freq.tolist()} for levels "
                                     f"{list(enc[nm][1])} (lavaan stops here too); recode the data so that every "
                                     "group uses every category, e.g. merge a rare category "
                                     "with its neighbour in all groups.")
                vars_.append(_Var(nm, "ordered", codes, K, None,
                                  _thresholds_from_codes(codes, K), 1.0))
            else:
                y = df[nm].to_numpy(dtype=float)[rows]
                if np.isnan(y).all():
                    raise ValueError(f"numeric variable {nm!r} has no observed values.")
                mu, var = _numeric_margin(y)
                vars_.append(_Var(nm, "numeric", None, 0, y, np.array([mu]), var))
        res = _muthen1984(vars_, n, compute_nacov=nacov)
        out.append(_assemble(lab, n, vars_, res, names, enc))
    return SampleStats(groups=tuple(GroupStats.from_ordinal(o) for o in out), missing=missing,
                       group_var=group)


def _assemble(lab, n, vars_, res, names, enc) -> SampleStatsOrdinal:
    COR = res["COR"]
    sds = np.sqrt([v.var for v in vars_])
    COV = COR * np.outer(sds, sds)
    th, th_names, th_idx = [], [], []
    for k, v in enumerate(vars_):
        if v.kind == "ordered":
            th.extend(v.th.tolist())
            th_names.extend(f"{v.name}|t{t}" for t in range(1, v.ncat))
            th_idx.extend([k + 1] * (v.ncat - 1))
        else:
            th.append(float(v.th[0]))
            th_names.append(v.name)
            th_idx.append(0)
    th = np.array(th)
    th_obs = np.where(np.array(th_idx) == 0, -th, th)
    obs_names = [f"{nm}~1" if i == 0 else nm for nm, i in zip(th_names, th_idx)]
    num = [k for k, v in enumerate(vars_) if v.kind == "numeric"]
    wls_obs = np.concatenate([th_obs, [vars_[k].var for k in num],
                              [COV[i, j] for j, i in res["pairs"]]])
    obs_names += [f"{vars_[k].name}~~{vars_[k].name}" for k in num]
    obs_names += [f"{vars_[j].name}~~{vars_[i].name}" for j, i in res["pairs"]]
    NACOV = WLS_V = None
    if "ACOV" in res:
        NACOV = res["ACOV"]
        NACOV *= n                  # in place: ACOV is not used again
        d = np.diag(NACOV)
        if not np.all(np.isfinite(d)):
            raise ValueError("diagonal of NACOV contains non-finite values.")
        WLS_V = np.diag(1.0 / d)
    mean = np.array([v.th[0] if v.kind == "numeric" else 0.0 for v in vars_])
    return SampleStatsOrdinal(
        group=None if lab is None else str(lab), n=int(n), ov_names=tuple(names),
        ov_types=tuple(v.kind for v in vars_),
        nlevels=tuple(v.ncat if v.kind == "ordered" else 0 for v in vars_),
        levels=tuple(enc[v.name][1] if v.kind == "ordered" else () for v in vars_),
        th=th, th_names=tuple(th_names), th_idx=tuple(th_idx), cor=COR, cov=COV, mean=mean,
        var=np.array([v.var for v in vars_]), wls_obs=wls_obs, wls_obs_names=tuple(obs_names),
        NACOV=NACOV, WLS_V=WLS_V, zero_cell_tables=tuple(res["zero_cell_tables"]),
        warnings=tuple(res["warnings"]))


def polychoric(data: pd.DataFrame, *, ordered: Sequence[str] | bool | None = True,
               missing: str = "listwise") -> pd.DataFrame:
    """Polychoric (polyserial, Pearson) correlation matrix, as lavaan's ``lavCor(ordered=)``.

    Parameters
    ----------
    data : pandas.DataFrame
        One column per variable.
    ordered : sequence of str or bool
        Ordinal columns (default: all).
    missing : {"listwise", "pairwise"}

    Returns
    -------
    pandas.DataFrame
        The p x p correlation matrix labelled by column names.

    Notes
    -----
    Two-step estimator: thresholds fixed at ``qnorm`` of the cumulative proportions, then each
    pair's bivariate-normal likelihood maximised in rho; see `sample_stats_ordinal`.

    Examples
    --------
    >>> # In R: lavCor(bfi[, items], ordered = items)
    >>> # polychoric(bfi[items])
    """
    ss = sample_stats_ordinal(data, ordered=ordered, missing=missing, nacov=False)
    return ss.ordinal[0].cor_frame()


def ordinal_alpha(df_items: pd.DataFrame, *, missing: str = "listwise") -> float:
    """Ordinal coefficient alpha: standardised alpha of the polychoric correlation matrix.

    Parameters
    ----------
    df_items : pandas.DataFrame
        The k ordinal items of one scale (reverse-key them first).
    missing : {"listwise", "pairwise"}

    Returns
    -------
    float
        ``k rbar / (1 + (k - 1) rbar)`` with ``rbar`` the mean off-diagonal polychoric correlation.

    Notes
    -----
    Equals ``psych::alpha(psych::polychoric(x)$rho)$total$raw_alpha`` up to the ~1e-6 difference
    between psych's and lavaan's polychorics (this uses lavaan's two-step estimates).

    References
    ----------
    Zumbo, B. D., Gadermann, A. M., & Zeisser, C. (2007). Ordinal versions of coefficients alpha
    and theta for Likert rating scales. Journal of Modern Applied Statistical Methods, 6(1),
    21-29. https://doi.org/10.22237/jmasm/1177992180
    """
    k = df_items.shape[1]
    if k < 2:
        raise ValueError(f"ordinal_alpha needs at least 2 items; got {k}.")
    R = polychoric(df_items, missing=missing).to_numpy()
    rbar = R[np.tril_indices(k, -1)].mean()
    return float(k * rbar / (1.0 + (k - 1) * rbar))


def dwls_fx(stats: SampleStats, wls_est: Sequence[np.ndarray], *,
            weight: str = "DWLS") -> dict[str, Any]:
    """lavaan's DWLS (or WLS) fit function and chi-square for given model-implied moments.

    Parameters
    ----------
    stats : SampleStats
        With an ordinal part in every group.
        From `sample_stats_ordinal`.
    wls_est : sequence of ndarray
        Per group, the model-implied moment vector ``sigma_g(theta)`` in the order of
        ``stats.ordinal[g].wls_obs`` (lavaan's ``lavInspect(fit, "wls.est")``).
    weight : {"DWLS", "WLS"}
        ``WLS_V`` (diagonal) or the full ``NACOV^-1``.

    Returns
    -------
    dict
        ``F`` (per-group quadratic forms), ``fx.group``, ``fx`` and ``chisq``.

    Notes
    -----
    ``F_g = (s_g - sigma_g)' W_g (s_g - sigma_g)``; ``fx.group = 0.5 (n_g - 1) / n_g F_g``;
    ``fx = sum_g (n_g / N) fx.group``; ``chisq = 2 N fx = sum_g (n_g - 1) F_g``
    (lavaan 0.6-14 ``lav_model_objective`` and ``estimator.DWLS``).
    """
    if weight not in ("DWLS", "WLS"):
        raise ValueError(f"weight= must be one of 'DWLS', 'WLS'; got {weight!r}.")
    if len(wls_est) != stats.ngroups:
        raise ValueError(f"wls_est= has {len(wls_est)} groups; the sample statistics have "
                         f"{stats.ngroups}.")
    F, fxg = [], []
    for g, est in zip(stats.ordinal, wls_est):
        est = np.asarray(est, float)
        if est.shape != g.wls_obs.shape:
            raise ValueError(f"wls_est= for group {g.group!r} has length {est.size}; expected "
                             f"{g.wls_obs.size} (see wls_obs_names).")
        if g.NACOV is None:
            raise ValueError("the sample statistics were computed with nacov=False.")
        d = g.wls_obs - est
        W = g.WLS_V if weight == "DWLS" else g.WLS_W_full
        F.append(float(d @ W @ d))
        fxg.append(0.5 * (g.n - 1) / g.n * F[-1])
    n = np.array([g.n for g in stats.groups], float)
    fx = float(np.sum(n / n.sum() * np.array(fxg)))
    return {"F": F, "fx.group": fxg, "fx": fx, "chisq": 2.0 * n.sum() * fx}
