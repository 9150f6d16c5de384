"""Rasch partial-credit and rating-scale models by conditional maximum likelihood (CML).

Parametrisation (eRm's): for person v and item i with categories 0..m_i,

    P(X_vi = h) = exp(h theta_v + beta_ih) / sum_l exp(l theta_v + beta_il),   beta_i0 = 0,

so ``beta_ih`` are cumulative *easiness* parameters (eRm's ``betapar``); the item-category
difficulties eRm prints are ``-beta_ih``. The rating-scale model restricts
``beta_ih = -(h eta_i + omega_h)`` with ``omega_1 = 0`` (eRm's ``RSM``).

The conditional likelihood given the raw scores does not depend on theta and is invariant to
``beta_ih -> beta_ih + h c``; results are normalised as eRm's ``sum0 = TRUE``: the item-category
``beta`` sum to zero for the PCM, the item ``eta`` sum to zero for the RSM. psychotools'
``pcmodel``/``rsmodel`` coefficients are the same model under another constraint (first parameter
zero, difficulty sign); `RaschResult.psychotools_coef` converts.

Missing responses are handled as eRm and psychotools do: persons are grouped by their pattern of
observed items and each group has its own elementary symmetric functions.

References
----------
Andersen, E. B. (1972). The numerical solution of a set of conditional estimation equations.
JRSS B, 34(1), 42-54. https://doi.org/10.1111/j.2517-6161.1972.tb00887.x
Masters, G. N. (1982). A Rasch model for partial credit scoring. Psychometrika, 47(2), 149-174.
https://doi.org/10.1007/BF02296272
Andrich, D. (1978). A rating formulation for ordered response categories. Psychometrika, 43(4),
561-573. https://doi.org/10.1007/BF02293814
Mair, P., & Hatzinger, R. (2007). Extended Rasch modeling: The eRm package. Journal of Statistical
Software, 20(9). https://doi.org/10.18637/jss.v020.i09
Warm, T. A. (1989). Weighted likelihood estimation of ability in item response theory.
Psychometrika, 54(3), 427-450. https://doi.org/10.1007/BF02294627
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from instrument.irt.data import ItemData, prepare
from instrument.results import JSONResult, Meta, Table, hash_frame

RASCH_MODELS = ("pcm", "rsm")


# --- elementary symmetric functions ----------------------------------------------------------------
def _esf_parts(polys: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """gamma (the product of the item polynomials) with its prefix and suffix products.

    ``polys[i] = [1, eps_i1, ..., eps_im]``; ``prefix[k]`` is the product over items ``< k`` and
    ``suffix[k]`` over items ``>= k``, so ``gamma^(i) = prefix[i] * suffix[i + 1]``.
    """
    n = len(polys)
    prefix = [np.ones(1)]
    for p in polys:
        prefix.append(np.convolve(prefix[-1], p))
    suffix = [np.ones(1)] * (n + 1)
    for k in range(n - 1, -1, -1):
        suffix[k] = np.convolve(suffix[k + 1], polys[k])
    return prefix[-1], prefix, suffix


def _group_moments(eps: list[np.ndarray], n_r: np.ndarray, hessian: bool):
    """Expected category counts (and their summed conditional covariance) for one pattern group.

    Returns ``(expected, cov, loggamma_term)`` where ``expected[k]`` is
    ``sum_r n_r E[X_ih | r]`` over the group's parameters in item order, ``cov`` is
    ``sum_r n_r Cov(X | r)`` (None unless ``hessian``) and ``loggamma_term = sum_r n_r log gamma_r``.
    """
    polys = [np.concatenate(([1.0], e)) for e in eps]
    gamma, prefix, suffix = _esf_parts(polys)
    R = gamma.size
    used = n_r > 0
    w = np.zeros(R)
    w[used] = n_r[used] / gamma[used]
    sizes = [e.size for e in eps]
    offs = np.concatenate(([0], np.cumsum(sizes)))
    K = offs[-1]
    expected = np.zeros(K)
    # E[X_ih | r] = eps_ih gamma^(i)_{r-h} / gamma_r
    cond = np.zeros((R, K)) if hessian else None
    for i, e in enumerate(eps):
        gi = np.convolve(prefix[i], suffix[i + 1])
        for h in range(1, e.size + 1):
            col = np.zeros(R)
            col[h:h + gi.size] = gi[:R - h]
            val = e[h - 1] * col / np.where(used, gamma, 1.0)
            expected[offs[i] + h - 1] = n_r @ val
            if hessian:
                cond[:, offs[i] + h - 1] = val
    ll = float(n_r[used] @ np.log(gamma[used]))
    if not hessian:
        return expected, None, ll
    # sum_r n_r E[X X' | r]: diagonal blocks are diag(expected); off-diagonal blocks are
    # eps_ih eps_jk sum_r w_r gamma^(ij)_{r-h-k}
    second = np.diag(expected)
    n = len(eps)
    for i in range(n):
        q = prefix[i].copy()
        for j in range(i + 1, n):
            gij = np.convolve(q, suffix[j + 1])
            q = np.convolve(q, polys[j])
            mi, mj = sizes[i], sizes[j]
            smax = mi + mj
            c = np.zeros(smax + 1)
            for s in range(2, smax + 1):
                if s < R:
                    ln = min(gij.size, R - s)
                    c[s] = w[s:s + ln] @ gij[:ln]
            hh = np.arange(1, mi + 1)[:, None]
            kk = np.arange(1, mj + 1)[None, :]
            block = np.outer(eps[i], eps[j]) * c[hh + kk]
            second[offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = block
            second[offs[j]:offs[j + 1], offs[i]:offs[i + 1]] = block.T
    cov = second - cond.T @ (n_r[:, None] * cond)
    return expected, cov, ll


# --- the conditional likelihood ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Design:
    """beta = A @ phi for the free parameters phi (first parameter fixed for identification)."""

    A: np.ndarray
    names: tuple[str, ...]


def _design(model: str, ncat: np.ndarray) -> _Design:
    """Design matrix from the free parameters to the item-category betas."""
    n_items = ncat.size
    K = int(ncat.sum())
    if model == "pcm":
        A = np.eye(K)[:, 1:]
        return _Design(A, ())
    m = int(ncat[0])
    # phi = (eta_2..eta_I, omega_2..omega_m); eta_1 = 0 and omega_1 = 0 during estimation
    A = np.zeros((K, (n_items - 1) + (m - 1)))
    row = 0
    for i in range(n_items):
        for h in range(1, m + 1):
            if i > 0:
                A[row, i - 1] = -h
            if h > 1:
                A[row, n_items - 1 + h - 2] = -1.0
            row += 1
    return _Design(A, ())


def _cml_terms(beta: np.ndarray, d: ItemData, hessian: bool):
    """Conditional log-likelihood, gradient and Hessian in beta (all item-category parameters)."""
    eps_all = np.exp(beta)
    K = beta.size
    grad = d.suff.astype(float).copy()
    hess = np.zeros((K, K)) if hessian else None
    ll = float(d.suff @ beta)
    for pat, n_r in zip(d.patterns, d.score_counts):
        idx = np.concatenate([np.arange(d.offs[i], d.offs[i + 1]) for i in pat])
        eps = [eps_all[d.offs[i]:d.offs[i + 1]] for i in pat]
        exp_k, cov, lg = _group_moments(eps, n_r, hessian)
        grad[idx] -= exp_k
        ll -= lg
        if hessian:
            hess[np.ix_(idx, idx)] -= cov
    return ll, grad, hess


def _newton(d: ItemData, design: _Design, tol: float = 1e-10, maxit: int = 100):
    """Newton-Raphson on the free parameters with step halving."""
    A = design.A
    phi = np.zeros(A.shape[1])
    # start: PCM log odds of adjacent category frequencies
    ll, g, H = _cml_terms(A @ phi, d, True)
    it = 0
    converged = False
    for it in range(1, maxit + 1):
        gp = A.T @ g
        Hp = A.T @ H @ A
        step = np.linalg.solve(-Hp, gp)
        t = 1.0
        while True:
            new = phi + t * step
            ll_new, g_new, H_new = _cml_terms(A @ new, d, True)
            if ll_new >= ll - 1e-12 or t < 1e-6:
                break
            t /= 2
        phi, ll, g, H = new, ll_new, g_new, H_new
        if np.max(np.abs(A.T @ g)) < tol or np.max(np.abs(t * step)) < tol:
            converged = True
            break
    return phi, ll, g, H, it, converged


# --- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RaschResult(JSONResult):
    """A Rasch partial-credit or rating-scale model fitted by CML.

    Attributes
    ----------
    model : {"pcm", "rsm"}
    items : tuple of str
    parameters : DataFrame
        One row per item category: ``item category beta se difficulty`` where ``beta`` is eRm's
        ``betapar`` (easiness, sum-zero normalised) and ``difficulty = -beta``.
    eta : DataFrame
        eRm's free parameters ``etapar`` with standard errors (``name est se``): for the PCM the
        item-category difficulties without the first, for the RSM the item locations without the
        first and the category parameters ``Cat 2..m``.
    thresholds : DataFrame
        Andrich (adjacent-category) thresholds ``item category threshold``:
        ``beta_i,h-1 - beta_ih`` (the theta where categories h-1 and h are equally likely).
    loglik : float
        Conditional log-likelihood.
    npar : int
    n : int
        Respondents used (those with at least one response).
    iterations : int
    converged : bool
    vcov_beta : ndarray
        Covariance matrix of ``beta`` (sum-zero normalised; singular).
    meta : Meta
    """

    model: str
    items: tuple[str, ...]
    parameters: pd.DataFrame
    eta: pd.DataFrame
    thresholds: pd.DataFrame
    loglik: float
    npar: int
    n: int
    iterations: int
    converged: bool
    vcov_beta: np.ndarray
    meta: Meta = field(default_factory=Meta)

    def beta_by_item(self) -> list[np.ndarray]:
        """The betas of each item in item order."""
        return [g["beta"].to_numpy() for _, g in self.parameters.groupby("item", sort=False)]

    def psychotools_coef(self) -> pd.DataFrame:
        """Coefficients as psychotools ``pcmodel``/``rsmodel`` report them, with standard errors.

        PCM: cumulative difficulties ``-(beta_ih + h c)`` with ``c = -beta_11`` (first one dropped).
        RSM: item locations ``eta_i - eta_1`` (first dropped) then ``omega_2..omega_m``.
        """
        beta = self.parameters["beta"].to_numpy()
        ncat = self.parameters.groupby("item", sort=False).size().to_numpy()
        h = np.concatenate([np.arange(1, m + 1) for m in ncat])
        K = beta.size
        if self.model == "pcm":
            # d_k = -(beta_k - h_k beta_1), k > 0
            T = -np.eye(K)
            T[:, 0] += h
            T = T[1:]
            names = [f"{it}-C{c}" for it, c in zip(self.parameters["item"], self.parameters["category"])][1:]
        else:
            m = int(ncat[0])
            n_items = ncat.size
            # beta_i1 = -eta_i (omega_1 = 0); omega_h = -beta_1h - h eta_1 = -beta_1h + h beta_11
            rows, names = [], []
            for i in range(1, n_items):
                r = np.zeros(K)
                r[i * m] = -1.0
                r[0] += 1.0
                rows.append(r)
                names.append(self.items[i])
            for hh in range(2, m + 1):
                r = np.zeros(K)
                r[hh - 1] = -1.0
                r[0] += hh
                rows.append(r)
                names.append(f"C{hh}")
            T = np.array(rows)
        est = T @ beta
        se = np.sqrt(np.maximum(np.diag(T @ self.vcov_beta @ T.T), 0.0))
        return pd.DataFrame({"name": names, "est": est, "se": se})

    def summary(self) -> Table:
        label = {"pcm": "partial credit", "rsm": "rating scale"}[self.model]
        return Table(f"Rasch {label} model (CML): item-category parameters", self.parameters,
                     notes=(f"Conditional log-likelihood {self.loglik:.4f}, {self.npar} parameters, "
                            f"N = {self.n}. beta is eRm's easiness (sum-zero); difficulty = -beta.",))


def rasch(data: pd.DataFrame, items: list[str] | None = None, *, model: str = "pcm",
          tol: float = 1e-10, maxit: int = 100) -> RaschResult:
    """Fit the Rasch partial-credit (``"pcm"``) or rating-scale (``"rsm"``) model by CML.

    Parameters
    ----------
    data : DataFrame
        Item responses coded 0..m (integers; NaN for missing). Rows with no response are dropped
        (counted in ``n``).
    items : list of str, optional
        Columns to use; all columns by default.
    model : {"pcm", "rsm"}
    tol : float
        Convergence: largest absolute score (gradient) of the free parameters.

    Returns
    -------
    RaschResult

    Notes
    -----
    Newton-Raphson on the conditional log-likelihood ``sum_ih s_ih beta_ih - sum_g sum_r n_gr log
    gamma_gr`` with the analytic gradient and Hessian (the conditional covariance of the category
    indicators given the raw score, from the elementary symmetric functions with one and two items
    removed). Matches eRm ``PCM()``/``RSM()`` and psychotools ``pcmodel()``/``rsmodel()``.

    Examples
    --------
    >>> fit = rasch(df, model="pcm")   # doctest: +SKIP
    >>> # In R: eRm::PCM(df); psychotools::pcmodel(df)
    """
    if model not in RASCH_MODELS:
        raise ValueError(f"model= must be one of {', '.join(map(repr, RASCH_MODELS))}; got {model!r}.")
    d = prepare(data, items)
    if model == "rsm" and len(set(d.ncat.tolist())) != 1:
        raise ValueError("model='rsm' needs every item to have the same number of categories; got "
                         + ", ".join(f"{it}: 0..{m}" for it, m in zip(d.items, d.ncat)) + ".")
    design = _design(model, d.ncat)
    phi, ll, g, H, n_iter, conv = _newton(d, design, tol=tol, maxit=maxit)
    A = design.A
    beta = A @ phi
    h = np.concatenate([np.arange(1, m + 1) for m in d.ncat]).astype(float)
    n_items = d.ncat.size
    # normalise (beta -> beta + h c leaves the CML invariant)
    if model == "pcm":
        c = -beta.sum() / h.sum()
    else:
        eta = -beta[::int(d.ncat[0])]            # beta_i1 = -eta_i during estimation (omega_1 = 0)
        c = eta.mean()                            # eta -> eta - c gives sum(eta) = 0
    beta = beta + h * c
    vphi = np.linalg.inv(-(A.T @ H @ A))
    # the normalisation is linear in beta: beta_norm = N beta with beta = A phi
    if model == "pcm":
        Nmat = np.eye(beta.size) - np.outer(h, np.ones(beta.size)) / h.sum()
    else:
        m = int(d.ncat[0])
        sel = np.zeros((n_items, beta.size))
        for i in range(n_items):
            sel[i, i * m] = -1.0
        Nmat = np.eye(beta.size) + np.outer(h, sel.mean(axis=0))
    J = Nmat @ A
    vbeta = J @ vphi @ J.T
    se_beta = np.sqrt(np.maximum(np.diag(vbeta), 0.0))
    rows_item = [it for it, m in zip(d.items, d.ncat) for _ in range(m)]
    rows_cat = [c_ for m in d.ncat for c_ in range(1, m + 1)]
    params = pd.DataFrame({"item": rows_item, "category": rows_cat, "beta": beta, "se": se_beta,
                           "difficulty": -beta})
    # eRm etapar
    if model == "pcm":
        T = -np.eye(beta.size)[1:]
        names = [f"{it}.c{c_}" for it, c_ in zip(rows_item, rows_cat)][1:]
    else:
        m = int(d.ncat[0])
        rows, names = [], []
        for i in range(1, n_items):
            r = np.zeros(beta.size)
            r[i * m] = -1.0
            rows.append(r)
            names.append(d.items[i])
        for hh in range(2, m + 1):
            # omega_h = -beta_1h - h eta_1 = -beta_1h + h beta_11
            r = np.zeros(beta.size)
            r[hh - 1] = -1.0
            r[0] += hh
            rows.append(r)
            names.append(f"Cat {hh}")
        T = np.array(rows)
    eta_df = pd.DataFrame({"name": names, "est": T @ beta,
                           "se": np.sqrt(np.maximum(np.diag(T @ vbeta @ T.T), 0.0))})
    thr_rows = []
    for i, it in enumerate(d.items):
        b = np.concatenate(([0.0], beta[d.offs[i]:d.offs[i + 1]]))
        for hh in range(1, b.size):
            thr_rows.append((it, hh, b[hh - 1] - b[hh]))
    thresholds = pd.DataFrame(thr_rows, columns=["item", "category", "threshold"])
    meta = Meta(options={"model": model, "estimator": "CML", "tol": tol, "maxit": maxit,
                         "normalisation": "sum0"},
                data_hash=hash_frame(d.frame))
    return RaschResult(model=model, items=tuple(d.items), parameters=params, eta=eta_df,
                       thresholds=thresholds, loglik=float(ll), npar=int(A.shape[1]),
                       n=int(d.x.shape[0]), iterations=int(n_iter), converged=bool(conv),
                       vcov_beta=vbeta, meta=meta)


# --- person parameters -----------------------------------------------------------------------------
def _moments(theta: float, betas: list[np.ndarray]) -> tuple[float, float, float]:
    """Sum over items of E[X], Var[X] and the third central moment at ``theta``."""
    m1s = v = k3 = 0.0
    for b in betas:
        hh = np.arange(b.size + 1)
        e = hh * theta + np.concatenate(([0.0], b))
        p = np.exp(e - e.max())
        p /= p.sum()
        m1 = p @ hh
        c = hh - m1
        m1s += m1
        v += p @ c**2
        k3 += p @ c**3
    return m1s, v, k3


def person_parameters(fit: RaschResult, data: pd.DataFrame, *, method: str = "WLE",
                      bound: float = 15.0) -> pd.DataFrame:
    """Person parameters given the CML item parameters: ML or Warm's WLE, with SEs.

    Parameters
    ----------
    fit : RaschResult
    data : DataFrame
        Responses with the fitted items as columns (NaN for missing).
    method : {"WLE", "ML"}
        ML solves ``r = sum_i E[X_i | theta]`` over the person's observed items (eRm
        ``person.parameter()``, psychotools ``personpar()``); it is undefined (NaN) for the lowest
        and highest possible scores, which eRm extrapolates. WLE (Warm 1989) solves
        ``r - sum_i E[X_i | theta] + J / (2 I) = 0`` with ``I = sum_i Var X_i`` and ``J = sum_i
        E[(X_i - E X_i)^3]`` (= dI/dtheta in a Rasch model) and is finite for every score.

    Returns
    -------
    DataFrame
        ``theta se raw_score max_score n_items`` in the row order of ``data``; ``se`` is
        ``1 / sqrt(I(theta))``.
    """
    if method not in ("WLE", "ML"):
        raise ValueError(f"method= must be one of 'WLE', 'ML'; got {method!r}.")
    X = data[list(fit.items)].to_numpy(dtype=float)
    betas = fit.beta_by_item()
    obs = ~np.isnan(X)
    raw = np.where(obs, X, 0.0).sum(axis=1)
    ncat = np.array([b.size for b in betas])
    maxs = obs @ ncat
    keys = {}
    out = np.full((X.shape[0], 2), np.nan)
    for v in range(X.shape[0]):
        key = (obs[v].tobytes(), raw[v])
        if key not in keys:
            bs = [betas[i] for i in np.flatnonzero(obs[v])]
            r = raw[v]
            if not bs:
                keys[key] = (np.nan, np.nan)
            elif method == "ML" and (r <= 0 or r >= maxs[v]):
                keys[key] = (np.nan, np.nan)
            else:
                if method == "ML":
                    f = lambda t: r - _moments(t, bs)[0]  # noqa: E731
                else:
                    def f(t, bs=bs, r=r):
                        m1, i_, k3 = _moments(t, bs)
                        return r - m1 + k3 / (2 * i_)
                th = brentq(f, -bound, bound, xtol=1e-12, rtol=1e-14)
                keys[key] = (th, 1.0 / np.sqrt(_moments(th, bs)[1]))
        out[v] = keys[key]
    return pd.DataFrame({"theta": out[:, 0], "se": out[:, 1], "raw_score": raw,
                         "max_score": maxs, "n_items": obs.sum(axis=1)}, index=data.index)
