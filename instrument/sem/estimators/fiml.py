"""Full-information maximum likelihood (lavaan ``missing = "ml"``/``"fiml"``) on plain arrays.

The data of a group are grouped by missing-data pattern once
(`instrument.sem.samplestats.missing_patterns`, the ``patterns`` part of the group's sample
statistics); every computation then works per pattern on sufficient statistics (pattern means and covariances), and
patterns with the same number of observed variables are stacked and handled by batched linear
algebra, so nothing loops over respondents.

Contents: the pattern-wise log-likelihood and its analytic gradient w.r.t. ``[mu, vech(sigma)]``
(`fiml_loglik`, `fiml_moment_gradient`), casewise scores (`fiml_scores`), the observed h1
information (`fiml_h1_information_observed`), the FIML independence (baseline) model
(`fiml_baseline`), Bentler's SRMR with the EM moments (`srmr_bentler`), an objective for the
engine's optimiser (`FIMLObjective`), FIML with robust (MLR) standard errors (`fiml_mlr_vcov`)
and a missing-data summary (`missing_summary`). The EM for the saturated (h1) model, the
Yuan-Bentler h1 trace and the corrected robust statistics are in
`instrument.sem.estimators.fiml_fast`.

Notes
-----
For pattern k with observed variables o, n_k rows, pattern mean ``ybar_k`` and covariance
``S_k`` (divisor n_k):

.. math::

   \\ell_k = -\\frac{n_k}{2}\\Big[p_o\\log 2\\pi + \\log|\\Sigma_{oo}|
             + \\mathrm{tr}\\big(\\Sigma_{oo}^{-1}(S_k + d_k d_k')\\big)\\Big],\\quad
   d_k = \\bar y_k - \\mu_o

(lavaan ``lav_mvnorm_missing_loglik_samplestats``). ``chisq = 2 (logl_h1 - logl)`` where
``logl_h1`` is the log-likelihood at the EM estimates of the saturated model
(``lav_mvnorm_missing_h1_estimate_moments``), and lavaan's ``fmin = chisq / (2N)``. Standard
errors use the observed information (``information = "observed"``, Hessian of ``-logl/N``).
Rows with no observed value are dropped, as lavaan does (it warns).

Use in the engine (`instrument.sem.cfa_fiml`; FIML always has a meanstructure): the data of
each group are grouped by pattern once (the ``patterns`` part of
`instrument.sem.samplestats.GroupStats`), `FIMLObjective` (value and gradient
of ``-logl/N``) is minimised by the engine's optimiser (`instrument.sem.optim`), the
saturated model comes from the EM of `instrument.sem.estimators.fiml_fast`, and `fiml_mlr_vcov`
gives the robust covariance with ``estimator="MLR"``.

References
----------
Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data. In G. A.
Marcoulides & R. E. Schumacker (Eds.), Advanced structural equation modeling (pp. 243-277).
Erlbaum.
Little, R. J. A., & Rubin, D. B. (2002). Statistical analysis with missing data (2nd ed.), ch. 8
(EM for the multivariate normal). Wiley. https://doi.org/10.1002/9781119013563
Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
https://doi.org/10.1111/0081-1750.00078
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from instrument.sem.samplestats import MissingPatterns, PatternBlock
from instrument.sem.estimators.mlr import (_cluster_sum, _sym_inv, huber_white_vcov, vech,
                                          vech_indices, vech_weights)

__all__ = ["fiml_loglik", "fiml_moment_gradient", "fiml_scores", "fiml_h1_information_observed",
           "fiml_h1_information_firstorder", "fiml_h1_information_expected", "fiml_baseline", "srmr_bentler", "FIMLObjective", "fiml_mlr_vcov", "missing_summary",
           "MissingSummary"]

LOG2PI = float(np.log(2.0 * np.pi))
_CHUNK_ELEMENTS = 2_000_000   # batch size bound (elements) for stacked per-pattern matrices


# --------------------------------------------------------------------------------------------
# patterns
# --------------------------------------------------------------------------------------------
def _block_inv(sigma: np.ndarray, b: PatternBlock) -> tuple[np.ndarray, np.ndarray]:
    """Stacked inverses and log-determinants of ``sigma_oo`` for the patterns of a block."""
    so = sigma[b.obs[:, :, None], b.obs[:, None, :]]
    L = np.linalg.cholesky(so)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    Li = np.linalg.inv(L)
    P = np.swapaxes(Li, 1, 2) @ Li
    return P, logdet


# --------------------------------------------------------------------------------------------
# log-likelihood, gradient, scores, h1 information
# --------------------------------------------------------------------------------------------
def fiml_loglik(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray) -> float:
    """FIML (observed-data) log-likelihood of one group (see module notes)."""
    total = 0.0
    for b in pat.blocks:
        P, logdet = _block_inv(sigma, b)
        d = b.mean - mu[b.obs]
        tr = np.einsum("ki,kij,kj->k", d, P, d)
        multi = np.flatnonzero(b.n > 1)          # single-row patterns have S_k = 0
        tr[multi] += np.einsum("kij,kij->k", P[multi], b.cov[multi])
        total += -0.5 * float(np.sum(b.n * (b.q * LOG2PI + logdet + tr)))
    return total


def fiml_moment_gradient(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray, *,
                         ntotal: int | None = None) -> np.ndarray:
    """Gradient of ``-logl/N`` w.r.t. ``m = [mu, vech(sigma)]`` (length p + p*).

    Per pattern: ``d/d mu_o = -n_k P d_k``; symmetric-matrix derivative w.r.t. ``sigma_oo``
    ``n_k (P - P W_k P) / 2``, scattered into the full matrix; ``vech`` with off-diagonal
    elements doubled. ``ntotal`` defaults to the group's n (pass the total N in multi-group use).
    """
    p = pat.p
    N = pat.n if ntotal is None else ntotal
    gmu = np.zeros(p)
    G = np.zeros(p * p)
    for b in pat.blocks:
        P, _ = _block_inv(sigma, b)
        d = b.mean - mu[b.obs]
        Pd = np.einsum("kij,kj->ki", P, d)
        gmu += np.bincount(b.obs.ravel(), weights=(-b.n[:, None] * Pd).ravel(), minlength=p)
        # P W P = P S_k P + (P d)(P d)'; S_k = 0 for single-row patterns
        PWP = Pd[:, :, None] * Pd[:, None, :]
        multi = np.flatnonzero(b.n > 1)
        if multi.size:
            PWP[multi] += P[multi] @ b.cov[multi] @ P[multi]
        Gk = 0.5 * b.n[:, None, None] * (P - PWP)
        flat = (b.obs[:, :, None] * p + b.obs[:, None, :]).ravel()
        G += np.bincount(flat, weights=Gk.ravel(), minlength=p * p)
    G = G.reshape(p, p)
    r, c = vech_indices(p)
    gs = 2.0 * vech_weights(p) * G[r, c]
    return np.concatenate([gmu, gs]) / N


def fiml_scores(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Casewise scores of the FIML log-likelihood w.r.t. ``[mu, vech(sigma)]``, (n, p + p*).

    Row order = the retained rows (``pat.kept``). For row i in pattern k:
    ``z = P_k (x_io - mu_o)``; mean score ``z`` (zero for missing variables); covariance score
    ``w_rc (z_r z_c - [P_k]_rc)`` with ``P_k`` embedded in a p x p zero matrix (lavaan
    ``lav_mvnorm_missing_scores_mu_vech_sigma``).
    """
    p, n = pat.p, pat.n
    r, c = vech_indices(p)
    w = vech_weights(p)
    out = np.zeros((n, p + r.size))
    for b in pat.blocks:
        P, _ = _block_inv(sigma, b)
        d = b.xo - mu[b.obs][b.row_pattern]
        z = np.einsum("mij,mj->mi", P[b.row_pattern], d)
        zf = np.zeros((b.rows.size, p))
        np.put_along_axis(zf, b.obs[b.row_pattern], z, axis=1)
        Pf = np.zeros((P.shape[0], p, p))
        Pf[np.arange(P.shape[0])[:, None, None], b.obs[:, :, None], b.obs[:, None, :]] = P
        pv = Pf[:, r, c][b.row_pattern]
        out[b.rows, :p] = zf
        out[b.rows, p:] = (zf[:, r] * zf[:, c] - pv) * w
    return out


def fiml_h1_information_firstorder(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray, *,
                                   cluster: np.ndarray | None = None) -> np.ndarray:
    """Unit first-order information from FIML casewise scores, ``S'S / n``
    (lavaan ``lav_mvnorm_missing_information_firstorder``; cluster sums as in `mlr`)."""
    S = fiml_scores(pat, sigma, mu)
    if cluster is not None:
        S = _cluster_sum(S, np.asarray(cluster)[pat.kept])
    return S.T @ S / pat.n


def fiml_h1_information_expected(pat: MissingPatterns, sigma: np.ndarray, *,
                                 ntotal: int | None = None) -> np.ndarray:
    """Unit expected information of the FIML log-likelihood w.r.t. ``[mu, vech(sigma)]``.

    ``sum_k (n_k/N) [[P_k, 0], [0, D'(P_k kron P_k)D / 2]]`` scattered from the observed
    sub-vectors (lavaan ``lav_mvnorm_missing_information_expected``): the observed information
    with ``W_k = sigma_oo`` and ``d_k = 0``.
    """
    return fiml_h1_information_observed(pat, sigma, None, ntotal=ntotal, _expected=True)


def fiml_h1_information_observed(pat: MissingPatterns, sigma: np.ndarray, mu: np.ndarray, *,
                                 ntotal: int | None = None, _expected: bool = False
                                 ) -> np.ndarray:
    """Unit observed information (Hessian of ``-logl/N`` w.r.t. ``[mu, vech(sigma)]``).

    Sum over patterns of ``n_k/N`` times the complete-data observed information of the observed
    sub-vector (`instrument.sem.estimators.mlr.h1_information_observed` with ``W_k``), scattered
    into the full ``(p + p*)`` matrix
    (lavaan ``lav_mvnorm_missing_information_observed_samplestats``).
    Batched over the patterns of a block.
    """
    p = pat.p
    N = pat.n if ntotal is None else ntotal
    r, c = vech_indices(p)
    ps = r.size
    pos = np.full((p, p), -1)
    pos[r, c] = np.arange(ps)
    pos[c, r] = np.arange(ps)
    m = p + ps
    H = np.zeros(m * m)
    for b in pat.blocks:
        q = b.q
        lr, lc = vech_indices(q)
        lw = vech_weights(q)
        ww = np.outer(lw, lw)
        qq = q + lr.size
        Pall, _ = _block_inv(sigma, b)
        # chunks of patterns, so that the stacked (q + q*)^2 blocks stay below ~16 MB each
        step = max(1, int(_CHUNK_ELEMENTS // (qq * qq)))
        for k0 in range(0, Pall.shape[0], step):
            sl = slice(k0, k0 + step)
            P, obs, nk = Pall[sl], b.obs[sl], b.n[sl]
            if _expected:
                d = np.zeros((P.shape[0], q))
                Q = P
            else:
                d = b.mean[sl] - mu[obs]
                W = b.cov[sl] + d[:, :, None] * d[:, None, :]
                Q = P @ W @ P

            def tp(A, B):
                return (A[:, lc[:, None], lr[None, :]] * B[:, lr[:, None], lc[None, :]]
                        + A[:, lc[:, None], lc[None, :]] * B[:, lr[:, None], lr[None, :]]
                        + A[:, lr[:, None], lr[None, :]] * B[:, lc[:, None], lc[None, :]]
                        + A[:, lr[:, None], lc[None, :]] * B[:, lc[:, None], lr[None, :]]) * ww

            ss = 0.5 * (-tp(P, P) + tp(P, Q) + tp(Q, P))
            ss = 0.5 * (ss + np.swapaxes(ss, 1, 2))
            v = np.einsum("kij,kj->ki", P, d)
            ms = (P[:, :, lr] * v[:, None, lc] + P[:, :, lc] * v[:, None, lr]) * lw
            loc = np.zeros((P.shape[0], qq, qq))
            loc[:, :q, :q] = P
            loc[:, :q, q:] = ms
            loc[:, q:, :q] = np.swapaxes(ms, 1, 2)
            loc[:, q:, q:] = ss
            loc *= (nk / N)[:, None, None]
            gidx = np.concatenate([obs, p + pos[obs[:, lr], obs[:, lc]]], axis=1)
            flat = (gidx[:, :, None] * m + gidx[:, None, :]).ravel()
            H += np.bincount(flat, weights=loc.ravel(), minlength=m * m)
    return H.reshape(m, m)


# --------------------------------------------------------------------------------------------
# saturated model (EM) and baseline
# --------------------------------------------------------------------------------------------
def fiml_baseline(pat: MissingPatterns) -> dict:
    """FIML independence model: free means and variances, zero covariances.

    Under MAR its likelihood factorises over variables, so the estimates are the available-case
    means and variances (divisor n_j) and
    ``logl_b = -1/2 sum_j n_j (log 2pi + log v_j + 1)``.

    Returns
    -------
    dict
        ``logl``, ``mean``, ``var``, ``npar`` (2p) and ``df`` (p(p-1)/2 per group; use
        ``baseline.chisq = 2 (logl_h1 - logl_b)``).
    """
    m, v = pat.available_moments()
    nj = (~np.isnan(pat._X)).sum(axis=0)
    logl = -0.5 * float(np.sum(nj * (LOG2PI + np.log(v) + 1.0)))
    return {"logl": logl, "mean": m, "var": v, "npar": 2 * pat.p,
            "df": pat.p * (pat.p - 1) // 2}


def srmr_bentler(sample_cov: np.ndarray, sample_mean: np.ndarray | None, sigma: np.ndarray,
                 mu: np.ndarray | None) -> float:
    """Bentler's SRMR of one group (lavaan ``srmr``/``srmr_bentler``), convention 6.

    Residuals ``(s_ij - sigma_ij)/sqrt(s_ii s_jj)`` over the lower triangle incl. the diagonal,
    plus ``(m_i - mu_i)/sqrt(s_ii)`` when means are given (divisor then p* + p). For FIML pass the
    EM moments (`instrument.sem.estimators.fiml_fast.em_saturated_fast`) as the sample moments.
    Multi-group: ``sum_g (n_g/N) SRMR_g``.
    """
    sd = np.sqrt(np.diag(sample_cov))
    R = (sample_cov - sigma) / np.outer(sd, sd)
    e = vech(R)
    if sample_mean is not None and mu is not None:
        e = np.concatenate([e, (sample_mean - mu) / sd])
    return float(np.sqrt(np.mean(e ** 2)))


# --------------------------------------------------------------------------------------------
# objective for the optimiser, SEs, MLR with FIML
# --------------------------------------------------------------------------------------------
class FIMLObjective:
    """FIML objective for the engine's optimiser: ``value(x) = -logl(x) / N`` summed over groups.

    Parameters
    ----------
    model_implied_fn : callable
        ``x -> list of (sigma, mu)`` per group (the engine's ``model.implied(x)`` mapped to
        tuples, or objects with ``.sigma`` and ``.mu``).
    delta_fn : callable
        ``x -> list of (p + p*, nx)`` Jacobians of ``[mu, vech(sigma)]`` (FIML always has a
        meanstructure).
    patterns : sequence of MissingPatterns
        One per group (`instrument.sem.samplestats.missing_patterns`).

    Notes
    -----
    ``gradient(x) = sum_g Delta_g' g_g`` with ``g_g`` = `fiml_moment_gradient` (divided by the
    total N). lavaan's reported ``fmin`` equals ``value(x) - value_h1`` with
    ``value_h1 = -logl_h1 / N`` (see `fmin`). `observed_information` is the Hessian of ``value``
    by lavaan's 4-point differences of the analytic gradient (``lav_model_hessian``, h = 1e-6),
    the information lavaan uses for FIML standard errors.
    """

    def __init__(self, model_implied_fn: Callable, delta_fn: Callable,
                 patterns: Sequence[MissingPatterns]):
        self.model_implied_fn = model_implied_fn
        self.delta_fn = delta_fn
        self.patterns = list(patterns)
        self.ntotal = sum(p.n for p in self.patterns)

    def _implied(self, x):
        out = []
        for imp in self.model_implied_fn(np.asarray(x, dtype=float)):
            if hasattr(imp, "sigma"):
                out.append((np.asarray(imp.sigma), np.asarray(imp.mu)))
            else:
                out.append((np.asarray(imp[0]), np.asarray(imp[1])))
        if len(out) != len(self.patterns):
            raise ValueError(f"FIMLObjective: implied() returned {len(out)} groups; "
                             f"{len(self.patterns)} pattern sets were given.")
        return out

    def loglik(self, x) -> float:
        """Total FIML log-likelihood at ``x`` (``-inf`` when an implied matrix is not PD)."""
        try:
            return float(sum(fiml_loglik(pt, s, m) for pt, (s, m) in
                             zip(self.patterns, self._implied(x))))
        except np.linalg.LinAlgError:
            return -np.inf

    def value(self, x) -> float:
        return -self.loglik(x) / self.ntotal

    def moment_gradients(self, x) -> list[np.ndarray]:
        return [fiml_moment_gradient(pt, s, m, ntotal=self.ntotal)
                for pt, (s, m) in zip(self.patterns, self._implied(x))]

    def gradient(self, x) -> np.ndarray:
        gs = self.moment_gradients(x)
        ds = self.delta_fn(np.asarray(x, dtype=float))
        return sum(np.asarray(D).T @ g for D, g in zip(ds, gs))

    def fmin(self, x, h1_logl: float) -> float:
        """lavaan's ``fmin``: ``(logl_h1 - logl(x)) / N`` (= chisq / 2N)."""
        return (h1_logl - self.loglik(x)) / self.ntotal

    def observed_information(self, x, *, h: float = 1e-6) -> np.ndarray:
        """Unit observed information: 4-point numeric Hessian of the analytic gradient."""
        x = np.asarray(x, dtype=float)
        nx = x.size
        H = np.zeros((nx, nx))
        for j in range(nx):
            e = np.zeros(nx)
            e[j] = h
            H[:, j] = (self.gradient(x - 2 * e) - 8 * self.gradient(x - e)
                       + 8 * self.gradient(x + e) - self.gradient(x + 2 * e)) / (12 * h)
        return 0.5 * (H + H.T)

    def expected_information(self, x) -> np.ndarray:
        """Unit expected information ``sum_g Delta_g' A1exp_g Delta_g`` (for Fisher scoring)."""
        x = np.asarray(x, dtype=float)
        H = 0.0
        for pt, (s, _), D in zip(self.patterns, self._implied(x), self.delta_fn(x)):
            D = np.asarray(D)
            H = H + D.T @ fiml_h1_information_expected(pt, s, ntotal=self.ntotal) @ D
        return 0.5 * (H + H.T)

    def vcov(self, x, *, information: np.ndarray | None = None) -> np.ndarray:
        """Standard (observed-information) covariance matrix ``E^-1 / N``."""
        E = self.observed_information(x) if information is None else information
        V = np.linalg.inv(E) / self.ntotal
        return 0.5 * (V + V.T)

    def scores(self, x) -> list[np.ndarray]:
        """Casewise scores w.r.t. x per group, ``(n_g, nx)``."""
        ds = self.delta_fn(np.asarray(x, dtype=float))
        return [fiml_scores(pt, s, m) @ np.asarray(D)
                for pt, (s, m), D in zip(self.patterns, self._implied(x), ds)]


def fiml_mlr_vcov(objective: FIMLObjective, x, *, information: np.ndarray | None = None,
                  information_inv: np.ndarray | None = None,
                  clusters: Sequence[np.ndarray | None] | None = None):
    """MLR with FIML: ``E^-1 B0 E^-1 / N`` with ``B0`` from the FIML casewise scores.

    ``B0 = sum_g (n_g/N) Delta_g' B1_g Delta_g`` with ``B1_g`` = `fiml_h1_information_firstorder`
    at the implied moments (structured), ``E`` the observed information (computed when not
    given) and ``E^-1`` its inverse (computed and symmetrised when not given). Returns an
    `instrument.sem.estimators.mlr.MLRVcov`.
    """
    from instrument.sem.estimators.mlr import MLRVcov
    x = np.asarray(x, dtype=float)
    E = objective.observed_information(x) if information is None else information
    if information_inv is None:
        E_inv = np.linalg.inv(E)
        E_inv = 0.5 * (E_inv + E_inv.T)
    else:
        E_inv = information_inv
    clusters = list(clusters) if clusters is not None else [None] * len(objective.patterns)
    N = objective.ntotal
    B0, per = 0.0, []
    for pt, (s, m), D, cl in zip(objective.patterns, objective._implied(x),
                                 objective.delta_fn(x), clusters):
        B1 = fiml_h1_information_firstorder(pt, s, m, cluster=cl)
        b = D.T @ B1 @ D
        per.append(b)
        B0 = B0 + pt.n / N * b
    V = huber_white_vcov(E_inv, B0, N)
    return MLRVcov(vcov=V, se=np.sqrt(np.clip(np.diag(V), 0, None)), information=E,
                   information_inv=E_inv, B0=B0, B0_group=tuple(per), ntotal=N)


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MissingSummary:
    """Missing-data summary (`missing_summary`).

    Attributes
    ----------
    patterns : DataFrame
        One row per pattern (most frequent first), a 0/1 column per variable (1 = observed, as
        ``lavInspect(fit, "patterns")``) and ``n``.
    items : DataFrame
        ``variable``, ``n_observed``, ``n_missing``, ``coverage``.
    coverage : DataFrame
        p x p proportion of rows observed on both variables (``lavInspect(fit, "coverage")``),
        indexed and labelled by variable.
    """

    patterns: pd.DataFrame
    items: pd.DataFrame
    coverage: pd.DataFrame

    def to_dict(self) -> dict:
        from instrument.results import to_jsonable
        return {"patterns": to_jsonable(self.patterns), "items": to_jsonable(self.items),
                "coverage": to_jsonable(self.coverage.reset_index(names="variable"))}

    @classmethod
    def from_dict(cls, d: dict) -> "MissingSummary":
        from instrument.results import from_jsonable
        cov = from_jsonable(d["coverage"]).set_index("variable")
        cov.index.name = None
        return cls(patterns=from_jsonable(d["patterns"]), items=from_jsonable(d["items"]),
                   coverage=cov)

    def summary(self):
        from instrument.results import Table
        n = int(self.patterns["n"].sum())
        return Table("Missing data: coverage per item", self.items,
                     notes=(f"{len(self.patterns)} missing-data patterns in {n} rows; "
                            f"lowest pairwise coverage {float(self.coverage.values.min()):.3f}.",))


def missing_summary(data: pd.DataFrame | np.ndarray, names: Sequence[str] | None = None
                    ) -> MissingSummary:
    """Missing-data summary: patterns with counts, coverage per item and per pair.

    Parameters
    ----------
    data : DataFrame (its columns, or ``names``, are used) or (n, p) array with NaN = missing.
    names : variable names (default: all DataFrame columns, or V1..Vp for arrays).

    Returns
    -------
    MissingSummary
        Coverage is over all rows, empty rows included, as lavaan's ``coverage``.
    """
    if isinstance(data, pd.DataFrame):
        names = list(data.columns) if names is None else list(names)
        missing_cols = [c for c in names if c not in data.columns]
        if missing_cols:
            raise ValueError(f"missing_summary: columns not in the data: {missing_cols}.")
        X = data[names].to_numpy(dtype=float)
    else:
        X = np.asarray(data, dtype=float)
        names = [f"V{j + 1}" for j in range(X.shape[1])] if names is None else list(names)
    if X.shape[1] != len(names):
        raise ValueError(f"missing_summary: {len(names)} names for {X.shape[1]} columns.")
    O = (~np.isnan(X)).astype(int)
    n = X.shape[0]
    masks, counts = np.unique(O, axis=0, return_counts=True)
    order = np.lexsort((-masks.sum(axis=1), -counts))
    pats = pd.DataFrame(masks[order], columns=names)
    pats["n"] = counts[order]
    nobs = O.sum(axis=0)
    items = pd.DataFrame({"variable": names, "n_observed": nobs, "n_missing": n - nobs,
                          "coverage": nobs / n})
    cov = pd.DataFrame(O.T @ O / n, index=names, columns=names)
    return MissingSummary(patterns=pats.reset_index(drop=True), items=items, coverage=cov)


# --------------------------------------------------------------------------------------------
# baseline scaling factor and FIML-corrected robust CFI/RMSEA
# --------------------------------------------------------------------------------------------
def _baseline_delta(p: int) -> np.ndarray:
    """Jacobian of ``[mu, vech(diag(v))]`` w.r.t. ``(mu, v)`` of the independence model."""
    r, c = vech_indices(p)
    D = np.zeros((p + r.size, 2 * p))
    D[:p, :p] = np.eye(p)
    D[p + np.flatnonzero(r == c), p + np.arange(p)] = 1.0
    return D


def _ml_discrepancy(S: np.ndarray, M: np.ndarray, sigma: np.ndarray, mu: np.ndarray) -> float:
    """``F_ML = log|Sigma| + tr(S Sigma^-1) + (M - mu)' Sigma^-1 (M - mu) - log|S| - p``."""
    P = _sym_inv(sigma)
    d = M - mu
    return float(np.linalg.slogdet(sigma)[1] + np.sum(S * P) + d @ P @ d
                 - np.linalg.slogdet(S)[1] - S.shape[0])


def corrected_from_blocks(Wm_b, Wc_b, Wmi_b, Gam_b, delta, *, p: int, npatterns: int, df: int,
                          XX3: float, XX3n: float, version: str) -> dict:
    """The trace part of `instrument.sem.estimators.fiml_fast.fiml_corrected_fast`: from
    the per-group weight blocks, the scaling constants ``c.hat3`` of the model and of the
    baseline, and the corrected statistics (Savalei, 2018, V3 / V6). Every value is NaN (and
    ``singular`` True) when the h1-based information ``Delta' Wm Delta`` is singular to machine
    precision (reciprocal 1-norm condition number below eps, R's ``solve`` rule), where lavaan
    0.6-14 reports the robust indices as NA ("computation of robust RMSEA failed")."""
    from scipy.linalg import block_diag

    Wm, Wc, Wmi = block_diag(*Wm_b), block_diag(*Wc_b), block_diag(*Wmi_b)
    Gam = block_diag(*Gam_b) if version == "V3" else None

    def trace_k(D: np.ndarray) -> float:
        WD = Wm @ D
        U = Wm - WD @ np.linalg.solve(D.T @ WD, WD.T)
        if version == "V6":
            return float(np.sum((Wc @ Wmi) * (U @ Wmi).T))
        M1 = U @ Wmi @ Wc @ Wmi @ U
        return float(np.sum(M1 * Gam.T))

    D = np.vstack([np.asarray(d) for d in delta])
    dfn = npatterns * p * (p - 1) // 2
    E = D.T @ Wm @ D
    if not 1.0 / np.linalg.cond(E, 1) >= np.finfo(float).eps:
        # lavaan inverts this information with solve(), which stops when it is singular to
        # machine precision; lav_fit_*_lavobject then give NA for every robust index
        nan = math.nan
        return {"XX3": nan, "df3": nan, "c.hat3": nan, "XX3.scaled": nan, "XX3.null": nan,
                "df3.null": nan, "c.hat3.null": nan, "singular": True}
    DB = block_diag(*[_baseline_delta(p)] * npatterns)
    k, kb = trace_k(D), trace_k(DB)
    c3, c3n = k / df, kb / dfn
    return {"XX3": XX3, "df3": float(df), "c.hat3": c3, "XX3.scaled": XX3 / c3,
            "XX3.null": XX3n, "df3.null": float(dfn), "c.hat3.null": c3n}


def _h1_expected_ms(S: np.ndarray) -> np.ndarray:
    from instrument.sem.estimators.mlr import h1_information_expected
    return h1_information_expected(S, meanstructure=True)
