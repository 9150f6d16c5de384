"""Slow restatements of the FIML robust statistics, checked against lavaan and against the
fast production versions in `instrument.sem.estimators.fiml_fast`.

`em_saturated` is the plain EM for the saturated model (lavaan's stopping rule); `fiml_h1_trace`,
`fiml_baseline_yuan_bentler` and `fiml_corrected` build the Yuan-Bentler traces and lavaan's
FIML-corrected robust CFI/RMSEA inputs (Zhang & Savalei, 2023) pattern by pattern.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from instrument.sem.samplestats import H1Result, MissingPatterns
from instrument.sem.estimators.fiml import (_block_inv,
                                            _h1_expected_ms, _ml_discrepancy, fiml_loglik,
                                            corrected_from_blocks, fiml_baseline,
                                            fiml_h1_information_firstorder,
                                            fiml_h1_information_observed, fiml_scores)
from instrument.sem.estimators.mlr import _cluster_sum, vech_indices
from instrument.sem.test.yuan_bentler import yuan_bentler_mplus


def em_saturated(pat: MissingPatterns, *, tol: float = 1e-5, max_iter: int = 500,
                 start: tuple[np.ndarray, np.ndarray] | None = None) -> H1Result:
    """Maximum-likelihood mean and covariance under MAR by the EM algorithm.

    E-step per pattern on sufficient statistics: with ``B = sigma_mo sigma_oo^-1`` and
    ``a = mu_m - B mu_o``, ``sum E[x_m] = n_k a + B sum x_o``,
    ``sum E[x_m x_m'] = n_k (sigma_mm - B sigma_om + a a') + a (B sx)' + (B sx) a' + B Sxx B'``,
    ``sum E[x_m x_o'] = a sx' + B Sxx``. Starts from the available-case means and variances
    (zero covariances) and stops when the largest absolute change in a mean or ``vech(sigma)``
    element is below ``tol`` or after ``max_iter`` iterations: lavaan's rule and defaults
    (``lav_mvnorm_missing_h1_estimate_moments``, ``em.h1.tol = 1e-5``, ``em.h1.iter.max = 500``),
    so the EM moments, and everything computed from them (SRMR, the FIML-corrected robust
    indices), reproduce lavaan's; pass a smaller ``tol`` for the exact maximiser. As lavaan, a
    ridge of ``1e-8 max(diag)`` is added to the diagonal when an eigenvalue falls below 1e-6.
    """
    p, N = pat.p, pat.n
    if start is None:
        mu, var = pat.available_moments()
        sigma = np.diag(var)
    else:
        mu, sigma = np.array(start[0], float), np.array(start[1], float)
    # per block: missing-variable indices and the pattern sufficient statistics
    prep = []
    allv = np.arange(p)
    for b in pat.blocks:
        mis = np.stack([np.setdiff1d(allv, o) for o in b.obs])
        sx = b.n[:, None] * b.mean
        sxx = b.n[:, None, None] * (b.cov + b.mean[:, :, None] * b.mean[:, None, :])
        prep.append((b.obs, mis, b.n.astype(float), sx, sxx))

    def scatter(rows_idx, cols_idx, vals):
        flat = (rows_idx[:, :, None] * p + cols_idx[:, None, :]).ravel()
        return np.bincount(flat, weights=vals.ravel(), minlength=p * p)

    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        T1 = np.zeros(p)
        T2 = np.zeros(p * p)
        for o, mis, nk, sx, sxx in prep:
            T1 += np.bincount(o.ravel(), weights=sx.ravel(), minlength=p)
            T2 += scatter(o, o, sxx)
            if mis.shape[1] == 0:
                continue
            soo = sigma[o[:, :, None], o[:, None, :]]
            smo = sigma[mis[:, :, None], o[:, None, :]]
            B = np.swapaxes(np.linalg.solve(soo, np.swapaxes(smo, 1, 2)), 1, 2)
            a = mu[mis] - np.einsum("kmq,kq->km", B, mu[o])
            bsx = np.einsum("kmq,kq->km", B, sx)
            T1 += np.bincount(mis.ravel(), weights=(nk[:, None] * a + bsx).ravel(), minlength=p)
            xmo = a[:, :, None] * sx[:, None, :] + B @ sxx
            T2 += scatter(mis, o, xmo) + scatter(o, mis, np.swapaxes(xmo, 1, 2))
            cmm = sigma[mis[:, :, None], mis[:, None, :]] - B @ np.swapaxes(smo, 1, 2)
            mm = (nk[:, None, None] * (cmm + a[:, :, None] * a[:, None, :])
                  + a[:, :, None] * bsx[:, None, :] + bsx[:, :, None] * a[:, None, :]
                  + B @ sxx @ np.swapaxes(B, 1, 2))
            T2 += scatter(mis, mis, mm)
        T2 = T2.reshape(p, p)
        mu_new = T1 / N
        sigma_new = T2 / N - np.outer(mu_new, mu_new)
        sigma_new = 0.5 * (sigma_new + sigma_new.T)
        if np.linalg.eigvalsh(sigma_new)[0] < 1e-6:      # lavaan's ridge for near-singular S
            sigma_new[np.diag_indices(p)] += np.max(np.diag(sigma_new)) * 1e-8
        delta = max(np.max(np.abs(mu_new - mu)), np.max(np.abs(sigma_new - sigma)))
        mu, sigma = mu_new, sigma_new
        if delta < tol:
            converged = True
            break
    return H1Result(cov=sigma, mean=mu, logl=fiml_loglik(pat, sigma, mu), iterations=it,
                    converged=converged)

def fiml_h1_trace(pat: MissingPatterns, h1: H1Result, *, cluster: np.ndarray | None = None,
                  A1: np.ndarray | None = None, B1: np.ndarray | None = None
                  ) -> tuple[float, int]:
    """``tr(B1 A1^-1)`` of the unstructured h1 model under FIML (at the EM estimates), and ndat.

    ``A1`` = `fiml_h1_information_observed`, ``B1`` = `fiml_h1_information_firstorder`, both at
    ``(h1.cov, h1.mean)`` (pass them when already computed); the input of
    `instrument.sem.test.yuan_bentler.yuan_bentler_mplus`.
    """
    if A1 is None:
        A1 = fiml_h1_information_observed(pat, h1.cov, h1.mean)
    if B1 is None:
        B1 = fiml_h1_information_firstorder(pat, h1.cov, h1.mean, cluster=cluster)
    return float(np.sum(B1 * np.linalg.inv(A1).T)), A1.shape[0]

def _baseline_information(pat: MissingPatterns, var: np.ndarray, mean: np.ndarray,
                          ntotal: int) -> np.ndarray:
    """``Delta_b' A1obs Delta_b`` of the independence model (means, variances): only the mean and
    diagonal-variance rows of the FIML observed information, without forming the full matrix.
    """
    p = pat.p
    H = np.zeros(4 * p * p)
    sigma = np.diag(var)
    for b in pat.blocks:
        P, _ = _block_inv(sigma, b)
        d = b.mean - mean[b.obs]
        W = b.cov + d[:, :, None] * d[:, None, :]
        Q = P @ W @ P
        v = np.einsum("kij,kj->ki", P, d)
        wt = (b.n / ntotal)[:, None, None]
        mm = wt * P
        ss = wt * 0.5 * (-P * P + 2.0 * P * Q)
        ms = wt * P * v[:, None, :]
        o = b.obs
        for blk, ro, co in ((mm, 0, 0), (ss, p, p), (ms, 0, p),
                            (np.swapaxes(ms, 1, 2), p, 0)):
            flat = ((ro + o)[:, :, None] * (2 * p) + (co + o)[:, None, :]).ravel()
            H += np.bincount(flat, weights=blk.ravel(), minlength=4 * p * p)
    return H.reshape(2 * p, 2 * p)


def fiml_baseline_yuan_bentler(patterns: Sequence[MissingPatterns], h1: Sequence[H1Result], *,
                               clusters: Sequence[np.ndarray | None] | None = None,
                               h1_traces: Sequence[float] | None = None):
    """Yuan-Bentler (Mplus) test of the FIML baseline (independence) model (MLR + FIML).

    The baseline is linear in its parameters (means and variances), so its observed information
    is exactly ``sum_g (n_g/N) Delta_b' A1obs_g Delta_b`` at the baseline estimates, and
    ``B0_g = Delta_b' B1_g Delta_b`` from FIML casewise scores at the baseline moments.
    ``h1_traces`` (per group, `fiml_h1_trace`) are reused when given.

    Returns
    -------
    instrument.sem.test.yuan_bentler.YuanBentlerResult
        ``chisq`` = ``baseline.chisq`` and ``scaling_factor`` = ``baseline.chisq.scaling.factor``.
    """
    clusters = list(clusters) if clusters is not None else [None] * len(patterns)
    N = sum(pt.n for pt in patterns)
    G = len(patterns)
    p = patterns[0].p
    r, c = vech_indices(p)
    sel = np.concatenate([np.arange(p), p + np.flatnonzero(r == c)])
    k = 2 * p
    E = np.zeros((G * k, G * k))
    B0g, traces, ndat, chisq_g = [], [], [], []
    for g, (pt, hh, cl) in enumerate(zip(patterns, h1, clusters)):
        b = fiml_baseline(pt)
        sl = slice(g * k, (g + 1) * k)
        E[sl, sl] = _baseline_information(pt, b["var"], b["mean"], N)
        sc = fiml_scores(pt, np.diag(b["var"]), b["mean"])[:, sel]
        if cl is not None:
            sc = _cluster_sum(sc, np.asarray(cl)[pt.kept])
        Bg = np.zeros((G * k, G * k))
        Bg[sl, sl] = sc.T @ sc / pt.n
        B0g.append(Bg)
        if h1_traces is None:
            t, nd = fiml_h1_trace(pt, hh, cluster=cl)
        else:
            t, nd = h1_traces[g], p + p * (p + 1) // 2
        traces.append(t)
        ndat.append(nd)
        chisq_g.append(2.0 * (hh.logl - b["logl"]))
    df = G * p * (p - 1) // 2
    return yuan_bentler_mplus(float(sum(chisq_g)), df, h1_traces=traces, h1_ndat=ndat,
                              information_inv=np.linalg.inv(E), B0_group=B0g,
                              nobs=[pt.n for pt in patterns], chisq_group=chisq_g)

def fiml_corrected(patterns: Sequence[MissingPatterns], h1: Sequence[H1Result],
                   implied: Sequence[tuple[np.ndarray, np.ndarray]], delta: Sequence[np.ndarray],
                   df: int, *, version: str = "V6",
                   h1_info: Sequence[tuple[np.ndarray, np.ndarray | None]] | None = None
                   ) -> dict[str, float]:
    """Ingredients of lavaan's FIML-corrected robust CFI/RMSEA (Zhang & Savalei).

    lavaan 0.6-14 (``lav_fit_fiml_corrected``) reports ``cfi.robust``, ``tli.robust``,
    ``rmsea.robust`` for every FIML fit: version ``"V6"`` with the standard test
    (``estimator = "ML"``), ``"V3"`` with a scaled test (MLR).

    Parameters
    ----------
    patterns, h1 : per group missing-data patterns and EM estimates (``S~``, ``M~``).
    implied : per group ``(sigma, mu)`` of the fitted model at the FIML estimates.
    delta : per group Jacobians of ``[mu, vech(sigma)]`` w.r.t. the free parameters.
    df : model degrees of freedom.
    version : {"V3", "V6"}
    h1_info : optional per group ``(Wm, Jm)``: `fiml_h1_information_observed` and
        `fiml_h1_information_firstorder` at the EM estimates (``Jm`` only needed for V3).

    Returns
    -------
    dict
        ``XX3`` (N F_ML of the FIML estimates at the EM moments, summed over groups), ``df3``,
        ``c.hat3``, ``XX3.scaled``, ``XX3.null``, ``df3.null``, ``c.hat3.null``: lavaan's robust
        CFI/TLI/RMSEA inputs (`instrument.sem.fit.measures.RobustStat`).

    Notes
    -----
    With group weights ``f_g = n_g/N``: ``Wm`` = FIML observed h1 information at the EM
    estimates, ``Wc`` = complete-data h1 information at ``(S~, M~)``, ``Jm`` = FIML first-order
    h1 information at the EM estimates, all block-diagonal over groups (``f_g Wm_g``,
    ``f_g Wc_g``, ``Wm_g^-1 / f_g``), ``E = Delta' Wm Delta`` (observed information of type
    "h1", unstructured) and ``U = Wm - Wm Delta E^-1 Delta' Wm``:

    * V6: ``k = tr(Wc Wm^-1 U Wm^-1)``;
    * V3: ``k = tr(U Wm^-1 Wc Wm^-1 U Gamma)`` with ``Gamma = bdiag(Wm_g^-1 Jm_g Wm_g^-1 / f_g)``;

    ``c.hat3 = k / df``; the baseline's ``c.hat3.null`` uses the independence model's Jacobian.

    References
    ----------
    Zhang, X., & Savalei, V. (2023). New computations for RMSEA and CFI following FIML and TS
    estimation with missing data. Psychological Methods, 28(2), 263-283.
    https://doi.org/10.1037/met0000445
    """
    version = version.upper()
    if version not in ("V3", "V6"):
        raise ValueError(f"version= must be one of 'V3', 'V6'; got {version!r}.")
    N = sum(pt.n for pt in patterns)
    p = patterns[0].p
    Wm_b, Wc_b, Wmi_b, Gam_b = [], [], [], []
    XX3 = XX3n = 0.0
    h1_info = list(h1_info) if h1_info is not None else [(None, None)] * len(patterns)
    for pt, hh, (s, m), (Wm, Jm) in zip(patterns, h1, implied, h1_info):
        fg = pt.n / N
        if Wm is None:
            Wm = fiml_h1_information_observed(pt, hh.cov, hh.mean)
        Wc = _h1_expected_ms(hh.cov)
        Wmi = np.linalg.inv(Wm)
        Wm_b.append(fg * Wm)
        Wc_b.append(fg * Wc)
        Wmi_b.append(Wmi / fg)
        if version == "V3":
            if Jm is None:
                Jm = fiml_h1_information_firstorder(pt, hh.cov, hh.mean)
            Gam_b.append(Wmi @ Jm @ Wmi / fg)
        XX3 += pt.n * _ml_discrepancy(hh.cov, hh.mean, s, m)
        b = fiml_baseline(pt)
        XX3n += pt.n * _ml_discrepancy(hh.cov, hh.mean, np.diag(b["var"]), b["mean"])

    return corrected_from_blocks(Wm_b, Wc_b, Wmi_b, Gam_b, delta, p=p, npatterns=len(patterns),
                                 df=df, XX3=XX3, XX3n=XX3n, version=version)
