"""Fast FIML information matrices for many missing-data patterns.

`instrument.sem.estimators.fiml` builds the observed h1 information pattern by pattern in the
``(p + p*)``-dimensional moment space, which costs ``K q*^2`` memory and time for K patterns of
q observed variables; with 40 items and 10% MCAR almost every row is its own pattern and that is
out of reach. Here the same matrix is assembled from two Gram matrices of the per-pattern
inverse covariance matrices (embedded in p x p), so the cost is ``K p*^2`` in a single BLAS
product, and the observed information of the model follows as ``Delta' A1 Delta`` plus the
curvature term. The functions reproduce `instrument.sem.estimators.fiml` (tests check equality to
rounding) and lavaan 0.6-14 through it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from instrument.sem.samplestats import H1Result, MissingPatterns
from instrument.sem.estimators.fiml import (_baseline_delta,
                                            _h1_expected_ms, _ml_discrepancy,
                                            corrected_from_blocks, fiml_baseline,
                                            fiml_h1_information_firstorder)
from instrument.sem.estimators.mlr import _richardson_curvature, vech_indices, vech_weights

__all__ = ["h1_information_observed_fast", "observed_information_fast", "fast_delta_fn",
           "curvature_term",
           "h1_trace_fast", "baseline_yuan_bentler_fast", "fiml_corrected_fast"]


def _block_inv_schur(sigma: np.ndarray, b, p: int, Lam: np.ndarray,
                     logdet_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Stacked ``(Sigma_oo)^-1`` and ``log|Sigma_oo|`` of the patterns of a block from the
    precision matrix ``Lam = Sigma^-1`` (as `instrument.sem.estimators.fiml._block_inv`):
    ``(Sigma_oo)^-1 = Lam_oo - Lam_om Lam_mm^-1 Lam_mo`` and
    ``log|Sigma_oo| = log|Sigma| + log|Lam_mm|``, so each pattern only factors its small
    missing-by-missing block."""
    o = b.obs
    K, q = o.shape
    Loo = Lam[o[:, :, None], o[:, None, :]]
    if q == p:
        return Loo, np.full(K, logdet_sigma)
    mask = np.ones((K, p), dtype=bool)
    mask[np.arange(K)[:, None], o] = False
    m = np.nonzero(mask)[1].reshape(K, p - q)
    Lmm = Lam[m[:, :, None], m[:, None, :]]
    Lmo = Lam[m[:, :, None], o[:, None, :]]
    C = np.linalg.cholesky(Lmm)
    logdet = logdet_sigma + 2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum(axis=1)
    Y = np.linalg.solve(Lmm, Lmo)                                   # (K, r, q)
    P = Loo - np.swapaxes(Lmo, 1, 2) @ Y
    return 0.5 * (P + np.swapaxes(P, 1, 2)), logdet


def _precision(sigma: np.ndarray) -> tuple[np.ndarray, float]:
    """``Sigma^-1`` and ``log|Sigma|`` (LinAlgError when Sigma is not positive definite)."""
    L = np.linalg.cholesky(sigma)
    Li = np.linalg.inv(L)
    Lam = Li.T @ Li
    return 0.5 * (Lam + Lam.T), 2.0 * float(np.log(np.diag(L)).sum())


def _embedded(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray):
    """Per pattern: n_k and, embedded in the full p variables, ``vech(P_k)``, ``vech(Q_k)`` and
    ``v_k`` with ``P_k = (Sigma_oo)^-1``, ``Q_k = P W_k P``, ``v_k = P d_k`` (rows = patterns)."""
    p = pat.p
    r, c = vech_indices(p)
    pos = np.zeros((p, p), dtype=int)
    pos[r, c] = np.arange(r.size)
    pos[c, r] = np.arange(r.size)
    K = pat.npatterns
    n = np.zeros(K)
    VP = np.zeros((K, r.size))
    VQ = np.zeros((K, r.size))
    vf = np.zeros((K, p))
    start = 0
    Lam, lds = _precision(sigma)
    for b in pat.blocks:
        k = b.obs.shape[0]
        idx = np.arange(start, start + k)
        P, _ = _block_inv_schur(sigma, b, p, Lam, lds)
        d = b.mean - mu[b.obs]
        W = b.cov + d[:, :, None] * d[:, None, :]
        Q = P @ W @ P
        lr, lc = vech_indices(b.q)
        gpos = pos[b.obs[:, lr], b.obs[:, lc]]
        VP[idx[:, None], gpos] = P[:, lr, lc]
        VQ[idx[:, None], gpos] = Q[:, lr, lc]
        vf[idx[:, None], b.obs] = np.einsum("kij,kj->ki", P, d)
        n[idx] = b.n
        start += k
    return n, VP, VQ, vf, pos


def h1_information_observed_fast(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray, *,
                                 ntotal: int | None = None) -> np.ndarray:
    """Unit observed h1 information of FIML w.r.t. ``[mu, vech(sigma)]`` (same matrix as
    `instrument.sem.estimators.fiml.fiml_h1_information_observed`).

    Notes
    -----
    Summed over patterns with weights ``n_k``: mean block ``sum n_k P_k``; mean-covariance
    block ``w_rc (T[a,r,c] + T[a,c,r])`` with ``T = sum_k n_k P_k[a,i] v_k[j]``; covariance
    block ``1/2 w w' [-tp(P,P) + tp(P,Q) + tp(Q,P)]`` where every
    ``sum_k n_k A_k[i,j] B_k[l,m]`` is read from the Gram matrix ``vech(A)' diag(n) vech(B)``.
    """
    p = pat.p
    N = pat.n if ntotal is None else ntotal
    r, c = vech_indices(p)
    w = vech_weights(p)
    ps = r.size
    n, VP, VQ, vf, pos = _embedded(pat, sigma, mu)
    nVP = n[:, None] * VP
    GPP = VP.T @ nVP
    GQP = VQ.T @ nVP            # GQP[(ij),(lm)] = sum n Q[i,j] P[l,m]
    R, C = r[:, None], c[:, None]
    S, T_ = r[None, :], c[None, :]

    def tp(G, trans=False):
        # sum_k n_k A[c,s] B[r,t] + A[c,t] B[r,s] + A[r,s] B[c,t] + A[r,t] B[c,s]
        # with G[(ij),(lm)] = sum n A[i,j] B[l,m]  (trans: A and B swapped)
        def g(i, j, l, m):
            return G[pos[l, m], pos[i, j]] if trans else G[pos[i, j], pos[l, m]]
        return g(C, S, R, T_) + g(C, T_, R, S) + g(R, S, C, T_) + g(R, T_, C, S)

    ww = np.outer(w, w)
    # tp(P, Q): A = P, B = Q -> sum n P[.] Q[.] = GQP transposed
    ss = 0.5 * ww * (-tp(GPP) + tp(GQP, trans=True) + tp(GQP))
    ss = 0.5 * (ss + ss.T)
    # T[a,i,j] = sum_k n_k P_k[a,i] v_k[j], read from vech(P)' (n v)
    Mv = nVP.T @ vf
    Tm = Mv[pos]
    ms = (Tm[:, r, c] + Tm[:, c, r]) * w
    out = np.zeros((p + ps, p + ps))
    out[:p, :p] = (n @ VP)[pos]
    out[:p, p:] = ms
    out[p:, :p] = ms.T
    out[p:, p:] = ss
    return out / N


def fast_delta_fn(model) -> Callable[[np.ndarray], list]:
    """``x -> model.delta(x)`` without the dense ``Delta_compact @ K`` product (K is one-hot:
    each free table row maps to one element of x)."""
    if not model.k_onehot:
        return model.delta
    maps = [np.asarray(model.x_col)[gc] for gc in model.group_cols]
    uniq = [np.unique(m).size == m.size for m in maps]
    nx = model.nx

    def delta(x):
        out = []
        for Dc, m, u in zip(model.delta_compact(x), maps, uniq):
            D = np.zeros((Dc.shape[0], nx))
            if u:
                D[:, m] = Dc
            else:
                for j, col in enumerate(m):
                    D[:, col] += Dc[:, j]
            out.append(D)
        return out
    return delta


def observed_information_fast(objective, x: np.ndarray, *, h: float = 1e-6,
                              model=None) -> np.ndarray:
    """Unit observed information of an `instrument.sem.estimators.fiml.FIMLObjective`:
    ``sum_g Delta_g' A1obs_g Delta_g`` (`h1_information_observed_fast`) plus the curvature term
    ``sum_k g_k d^2 m_k / dx dx'`` by 4-point differences of ``delta_fn`` (lavaan's step 1e-6).
    With the engine ``model`` the curvature term is exact (`curvature_term`)."""
    x = np.asarray(x, dtype=float)
    ds = objective.delta_fn(x)
    H = 0.0
    for pt, (s, m), D in zip(objective.patterns, objective._implied(x), ds):
        A = h1_information_observed_fast(pt, s, m, ntotal=objective.ntotal)
        H = H + D.T @ A @ D
    w = [1.0] * len(objective.patterns)
    if model is not None:
        H = H + curvature_term(model, x, objective.moment_gradients(x), w, h=h)
    else:
        H = H + _richardson_curvature(objective.delta_fn, x, objective.moment_gradients(x), w, h)
    return 0.5 * (H + H.T)


def h1_trace_fast(pat: MissingPatterns, h1: H1Result, *, cluster: np.ndarray | None = None,
                  A1: np.ndarray | None = None) -> tuple[float, int]:
    """``tr(B1 A1^-1)`` at the EM estimates (restated in tests/reference/fiml_slow.py); ``A1``
    may be passed when already computed (`h1_information_observed_fast` at the EM
    estimates)."""
    if A1 is None:
        A1 = h1_information_observed_fast(pat, h1.cov, h1.mean)
    B1 = fiml_h1_information_firstorder(pat, h1.cov, h1.mean, cluster=cluster)
    return float(np.sum(B1 * np.linalg.inv(A1).T)), A1.shape[0]


def baseline_yuan_bentler_fast(patterns: Sequence[MissingPatterns], h1: Sequence[H1Result], *,
                               clusters: Sequence[np.ndarray | None] | None = None,
                               h1_traces: Sequence[tuple[float, int]] | None = None):
    """The baseline's Yuan-Bentler (Mplus) test from the fast h1 matrices (restated pattern by
    pattern as ``fiml_baseline_yuan_bentler`` in tests/reference/fiml_slow.py)."""
    from instrument.sem.test.yuan_bentler import yuan_bentler_mplus
    clusters = list(clusters) if clusters is not None else [None] * len(patterns)
    N = sum(pt.n for pt in patterns)
    G = len(patterns)
    p = patterns[0].p
    D = _baseline_delta(p)
    k = 2 * p
    E = np.zeros((G * k, G * k))
    B0g, traces, ndat, chisq_g = [], [], [], []
    for g, (pt, hh, cl) in enumerate(zip(patterns, h1, clusters)):
        b = fiml_baseline(pt)
        s, m = np.diag(b["var"]), b["mean"]
        A = h1_information_observed_fast(pt, s, m, ntotal=N)
        sl = slice(g * k, (g + 1) * k)
        E[sl, sl] = D.T @ A @ D
        B1 = fiml_h1_information_firstorder(pt, s, m, cluster=cl)
        Bg = np.zeros((G * k, G * k))
        Bg[sl, sl] = D.T @ B1 @ D
        B0g.append(Bg)
        t, nd = h1_traces[g] if h1_traces is not None else h1_trace_fast(pt, hh, cluster=cl)
        traces.append(t)
        ndat.append(nd)
        chisq_g.append(2.0 * (hh.logl - b["logl"]))
    df = G * p * (p - 1) // 2
    return yuan_bentler_mplus(float(sum(chisq_g)), df, h1_traces=traces, h1_ndat=ndat,
                              information_inv=np.linalg.inv(E), B0_group=B0g,
                              nobs=[pt.n for pt in patterns], chisq_group=chisq_g)


def fiml_corrected_fast(patterns: Sequence[MissingPatterns], h1: Sequence[H1Result],
                        implied: Sequence[tuple[np.ndarray, np.ndarray]],
                        delta: Sequence[np.ndarray], df: int, *, version: str = "V6",
                        clusters: Sequence[np.ndarray | None] | None = None,
                        h1_information: Sequence[np.ndarray] | None = None) -> dict:
    """lavaan's FIML-corrected robust CFI/RMSEA statistics (Zhang & Savalei, 2023) with the fast
    h1 matrices; restated with the formulas as ``fiml_corrected`` in tests/reference/fiml_slow.py.
    ``clusters`` (per group labels or None) make the V3 first-order matrix cluster-robust (scores
    summed within clusters), as lavaan with ``cluster=``; ``h1_information`` (per group unit
    observed h1 information at the EM estimates) skips recomputing it."""
    version = version.upper()
    if version not in ("V3", "V6"):
        raise ValueError(f"version= must be one of 'V3', 'V6'; got {version!r}.")
    N = sum(pt.n for pt in patterns)
    p = patterns[0].p
    Wm_b, Wc_b, Wmi_b, Gam_b = [], [], [], []
    XX3 = XX3n = 0.0
    clusters = list(clusters) if clusters is not None else [None] * len(patterns)
    A1s = list(h1_information) if h1_information is not None else [None] * len(patterns)
    for pt, hh, (s, m), cl, A1 in zip(patterns, h1, implied, clusters, A1s):
        fg = pt.n / N
        Wm = h1_information_observed_fast(pt, hh.cov, hh.mean) if A1 is None else A1
        Wmi = np.linalg.inv(Wm)
        Wm_b.append(fg * Wm)
        Wc_b.append(fg * _h1_expected_ms(hh.cov))
        Wmi_b.append(Wmi / fg)
        if version == "V3":
            Jm = fiml_h1_information_firstorder(pt, hh.cov, hh.mean, cluster=cl)
            Gam_b.append(Wmi @ Jm @ Wmi / fg)
        XX3 += pt.n * _ml_discrepancy(hh.cov, hh.mean, s, m)
        b = fiml_baseline(pt)
        XX3n += pt.n * _ml_discrepancy(hh.cov, hh.mean, np.diag(b["var"]), b["mean"])
    return corrected_from_blocks(Wm_b, Wc_b, Wmi_b, Gam_b, delta, p=p, npatterns=len(patterns),
                                 df=df, XX3=XX3, XX3n=XX3n, version=version)


def curvature_term(model, x: np.ndarray, moment_grads: Sequence[np.ndarray],
                   weights: Sequence[float], *, h: float = 1e-6) -> np.ndarray:
    """``sum_g w_g sum_k g_gk d^2 m_gk / dx dx'``, the second-derivative part of an observed
    information, for an engine `instrument.sem.model.Model`.

    Notes
    -----
    With ``G`` the symmetric matrix of the moment gradient (``g_rc / 2`` off the diagonal) the
    term is the Hessian of ``phi(x) = tr(G Sigma(x)) + g_mu' mu(x)``. For a model without
    latent regressions (``B = 0``), ``Sigma = Lambda Psi Lambda' + Theta`` and
    ``mu = nu + Lambda alpha`` give the exact non-zero blocks
    ``d^2 phi / d lambda_ia d lambda_jb = 2 G_ij Psi_ab``,
    ``d^2 phi / d lambda_ia d psi_cd = 2 [(G Lambda)_ic [a=d] + (G Lambda)_id [a=c]]`` (c != d;
    ``2 (G Lambda)_ic [a=c]`` for c = d) and ``d^2 phi / d lambda_ia d alpha_b = g_mu,i [a=b]``.
    With latent regressions the term is computed by lavaan's 4-point differences of Delta.
    """
    from instrument.sem.model import _ALPHA, _LAMBDA, _PSI
    if getattr(model, "has_beta", False):
        return _richardson_curvature(fast_delta_fn(model), x, moment_grads, weights, h)
    p = model.p
    r, c = vech_indices(p)
    off = p if model.meanstructure else 0
    C = np.zeros((model.nx, model.nx))
    for mats, gf, Kg, g, wg in zip(model.matrices(x), model.group_free, model.group_K,
                                   moment_grads, weights):
        g = np.asarray(g, dtype=float)
        gv = g[off:]
        Gs = np.zeros((p, p))
        Gs[r, c] = np.where(r == c, gv, gv / 2.0)
        Gs[c, r] = Gs[r, c]
        L, Ps = mats["lambda_"], mats["psi"]
        GL = Gs @ L
        nloc = Kg.shape[0]
        Cl = np.zeros((nloc, nloc))
        cl, li, la = gf[_LAMBDA]
        if len(cl):
            Cl[np.ix_(cl, cl)] += 2.0 * Gs[np.ix_(li, li)] * Ps[np.ix_(la, la)]
            cp, pk, pl = gf[_PSI]
            if len(cp):
                t = (GL[li][:, pk] * (la[:, None] == pl[None, :])
                     + np.where((pk != pl)[None, :], GL[li][:, pl] * (la[:, None] == pk[None, :]),
                                0.0))
                Cl[np.ix_(cl, cp)] += 2.0 * t
                Cl[np.ix_(cp, cl)] += 2.0 * t.T
            ca, ak, _ = gf[_ALPHA]
            if off and len(ca):
                t = g[:p][li][:, None] * (la[:, None] == ak[None, :])
                Cl[np.ix_(cl, ca)] += t
                Cl[np.ix_(ca, cl)] += t.T
        C += wg * (Kg.T @ Cl @ Kg)
    return 0.5 * (C + C.T)


# lavaan 0.6-14 lav_mvnorm_missing_h1_estimate_moments: stopping rule (em.h1.tol,
# em.h1.iter.max) and the ridge of an EM covariance with a tiny eigenvalue
EM_H1_TOL = 1e-5
EM_H1_ITER_MAX = 500
EM_RIDGE_EVTOL = 1e-6
EM_RIDGE = 1e-8


def em_saturated_fast(pat: MissingPatterns, *, tol: float = EM_H1_TOL,
                      max_iter: int = EM_H1_ITER_MAX,
                      start: tuple[np.ndarray, np.ndarray] | None = None) -> H1Result:
    """EM for the saturated normal model, batched over the patterns of each block; the same
    iteration, start and stopping rule as the plain EM (``em_saturated`` in
    tests/reference/fiml_slow.py) (max change of a mean or covariance element below ``tol``,
    at most ``max_iter`` iterations: lavaan's ``em.h1.tol`` and ``em.h1.iter.max``, so the h1
    moments and everything computed from them reproduce lavaan's; a smaller ``tol`` gives the
    exact maximiser).
    The E-step regression of the missing on the observed variables uses the precision matrix
    ``Lam = Sigma^-1`` (``B = -Lam_mm^-1 Lam_mo``, conditional covariance ``Lam_mm^-1``), so
    each pattern needs only the inverse of its small missing-by-missing block. As lavaan does,
    an M-step covariance with an eigenvalue below `EM_RIDGE_EVTOL` gets ``EM_RIDGE`` times its
    largest variance added to the diagonal, so that on degenerate data (few rows, many missing
    cells) the EM settles where lavaan's does instead of drifting to a singular matrix of
    unbounded likelihood (lavaan 0.6-14 ``lav_mvnorm_missing_h1_estimate_moments``)."""
    from instrument.sem.estimators.fiml import fiml_loglik
    p, N = pat.p, pat.n
    if start is None:
        mu, var = pat.available_moments()
        sigma = np.diag(var)
    else:
        mu, sigma = np.array(start[0], float), np.array(start[1], float)
    prep = []
    full_T1 = np.zeros(p)
    full_T2 = np.zeros((p, p))
    for b in pat.blocks:
        n = b.n.astype(float)
        sx = n[:, None] * b.mean
        sxx = n[:, None, None] * (b.cov + b.mean[:, :, None] * b.mean[:, None, :])
        if b.q == p:
            full_T1 += sx.sum(axis=0)
            full_T2 += sxx.sum(axis=0)
            continue
        allv = np.arange(p)
        mis = np.stack([np.setdiff1d(allv, o) for o in b.obs])
        o, m = b.obs, mis
        idx_oo = (o[:, :, None] * p + o[:, None, :]).ravel()
        idx_mo = (m[:, :, None] * p + o[:, None, :]).ravel()
        idx_om = (o[:, None, :] * p + m[:, :, None]).ravel()
        idx_mm = (m[:, :, None] * p + m[:, None, :]).ravel()
        # observed-by-observed sums do not change between iterations
        full_T1 += np.bincount(o.ravel(), weights=sx.ravel(), minlength=p)
        full_T2 += np.bincount(idx_oo, weights=sxx.ravel(), minlength=p * p).reshape(p, p)
        prep.append((o, m, n, sx, sxx, idx_oo, idx_mo, idx_om, idx_mm))
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        T1 = full_T1.copy()
        T2 = full_T2.ravel().copy()
        # regression of the missing on the observed variables from the precision matrix:
        # B = Sigma_mo Sigma_oo^-1 = -Lam_mm^-1 Lam_mo, Cov(x_m | x_o) = Lam_mm^-1
        Lam = np.linalg.inv(sigma)
        Lam = 0.5 * (Lam + Lam.T)
        for o, m, n, sx, sxx, idx_oo, idx_mo, idx_om, idx_mm in prep:
            cmm = np.linalg.inv(Lam[m[:, :, None], m[:, None, :]])
            B = -cmm @ Lam[m[:, :, None], o[:, None, :]]                          # (K, r, q)
            a = mu[m] - np.einsum("krq,kq->kr", B, mu[o])
            bsx = np.einsum("krq,kq->kr", B, sx)
            T1 += np.bincount(m.ravel(), weights=(n[:, None] * a + bsx).ravel(), minlength=p)
            Bsxx = B @ sxx
            xmo = a[:, :, None] * sx[:, None, :] + Bsxx
            mm = (n[:, None, None] * (cmm + a[:, :, None] * a[:, None, :])
                  + a[:, :, None] * bsx[:, None, :] + bsx[:, :, None] * a[:, None, :]
                  + Bsxx @ np.swapaxes(B, 1, 2))
            T2 += np.bincount(idx_mo, weights=xmo.ravel(), minlength=p * p)
            T2 += np.bincount(idx_om, weights=xmo.ravel(), minlength=p * p)
            T2 += np.bincount(idx_mm, weights=mm.ravel(), minlength=p * p)
        mu_new = T1 / N
        sigma_new = T2.reshape(p, p) / N - np.outer(mu_new, mu_new)
        sigma_new = 0.5 * (sigma_new + sigma_new.T)
        if np.linalg.eigvalsh(sigma_new)[0] < EM_RIDGE_EVTOL:
            sigma_new[np.diag_indices(p)] += np.max(np.diag(sigma_new)) * EM_RIDGE
        delta = max(np.max(np.abs(mu_new - mu)), np.max(np.abs(sigma_new - sigma)))
        mu, sigma = mu_new, sigma_new
        if delta < tol:
            converged = True
            break
    return H1Result(cov=sigma, mean=mu, logl=fiml_loglik(pat, sigma, mu), iterations=it,
                    converged=converged)


class FIMLObjectiveCached:
    """`instrument.sem.estimators.fiml.FIMLObjective` whose ``value`` and ``gradient`` share one
    factorisation per pattern block: both are computed together and the last point is cached
    (the optimiser asks for the gradient where it last evaluated the value)."""

    def __init__(self, base):
        self.base = base
        self.patterns, self.delta_fn, self.ntotal = base.patterns, base.delta_fn, base.ntotal
        self._key = None
        self._val = None

    def __getattr__(self, name):
        return getattr(self.base, name)

    def _eval(self, x):
        x = np.asarray(x, dtype=float)
        key = x.tobytes()
        if key == self._key:
            return self._val
        from instrument.sem.estimators.fiml import LOG2PI
        N = self.ntotal
        ll = 0.0
        grads = []
        try:
            for pat, (sigma, mu) in zip(self.patterns, self.base._implied(x)):
                p = pat.p
                gmu = np.zeros(p)
                G = np.zeros(p * p)
                Lam, lds = _precision(sigma)
                for b in pat.blocks:
                    P, logdet = _block_inv_schur(sigma, b, p, Lam, lds)
                    d = b.mean - mu[b.obs]
                    W = b.cov + d[:, :, None] * d[:, None, :]
                    PW = P @ W
                    ll += -0.5 * float(np.sum(b.n * (b.q * LOG2PI + logdet
                                                     + np.einsum("kii->k", PW))))
                    Pd = np.einsum("kij,kj->ki", P, d)
                    gmu += np.bincount(b.obs.ravel(), weights=(-b.n[:, None] * Pd).ravel(),
                                       minlength=p)
                    Gk = 0.5 * b.n[:, None, None] * (P - PW @ P)
                    flat = (b.obs[:, :, None] * p + b.obs[:, None, :]).ravel()
                    G += np.bincount(flat, weights=Gk.ravel(), minlength=p * p)
                G = G.reshape(p, p)
                r, c = vech_indices(p)
                grads.append(np.concatenate([gmu, 2.0 * vech_weights(p) * G[r, c]]) / N)
        except np.linalg.LinAlgError:
            ll, grads = -np.inf, None
        self._key, self._val = key, (ll, grads)
        return self._val

    def loglik(self, x) -> float:
        return self._eval(x)[0]

    def value(self, x) -> float:
        return -self.loglik(x) / self.ntotal

    def moment_gradients(self, x):
        g = self._eval(x)[1]
        if g is None:
            raise np.linalg.LinAlgError("implied covariance matrix not positive definite")
        return g

    def gradient(self, x):
        ds = self.delta_fn(np.asarray(x, dtype=float))
        return sum(np.asarray(D).T @ g for D, g in zip(ds, self.moment_gradients(x)))
