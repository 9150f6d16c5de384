"""Maximum likelihood discrepancy, its analytic gradient and information matrices.

`MLObjective` is minimised by the engine's optimiser (`instrument.sem.optim.optimize`), which
needs only ``value(x)``, ``gradient(x)`` and ``expected_information(x)``.
"""
from __future__ import annotations

import numpy as np

from instrument.sem.model import Model
from instrument.sem.samplestats import SampleStats

__all__ = ["MLObjective", "expected_information",
           "factored_information", "weighted_delta", "gamma_nt", "moment_weight"]


def moment_weight(sigma: np.ndarray, meanstructure: bool, vr: np.ndarray,
                  vc: np.ndarray) -> np.ndarray:
    """The normal-theory weight W for the moment vector ``[mu, vech(Sigma)]``.

    Notes
    -----
    W = blockdiag(Sigma^-1, 1/2 D'(Sigma^-1 (x) Sigma^-1) D) (lavaan's
    ``lav_model_h1_information_expected`` for ML); element (ab, cd) of the covariance block is
    (s_ac s_bd + s_ad s_bc) w_ab w_cd / 4 with s = Sigma^-1 and w = 2 off the diagonal, 1 on it.
    The factors h = w / 2 (1 or 1/2, exact scalings) are carried by the gathered rows: h_ab by
    the rows of s at (a, b), h_cd by choosing between s and s / 2 in the column gathers.
    """
    Si = np.linalg.inv(sigma)
    p = sigma.shape[0]
    diag = vr == vc
    R = Si[vr] * np.where(diag, 0.5, 1.0)[:, None]
    Cv = Si[vc]
    Cx = np.concatenate([0.5 * Cv, Cv], axis=1)     # column j: s_cj / 2, column p + j: s_cj
    half = np.where(diag, 0, p)
    Wc = R.take(vr, axis=1)
    U = Cx.take(vc + half, axis=1)
    Wc *= U
    R.take(vc, axis=1, out=U)
    U *= Cx.take(vr + half, axis=1)
    Wc += U
    if not meanstructure:
        return Wc
    p = sigma.shape[0]
    ps = len(vr)
    W = np.zeros((p + ps, p + ps))
    W[:p, :p] = Si
    W[p:, p:] = Wc
    return W


def gamma_nt(sigma: np.ndarray, meanstructure: bool, vr, vc) -> np.ndarray:
    """Normal-theory asymptotic covariance of ``[mean, vech(S)]`` (inverse of `moment_weight`):
    Gamma[(ab),(cd)] = s_ac s_bd + s_ad s_bc, mean block Sigma."""
    S = sigma
    R, C = S[vr], S[vc]
    G = R.take(vr, axis=1) * C.take(vc, axis=1) + R.take(vc, axis=1) * C.take(vr, axis=1)
    if not meanstructure:
        return G
    p, ps = S.shape[0], len(vr)
    out = np.zeros((p + ps, p + ps))
    out[:p, :p] = S
    out[p:, p:] = G
    return out


class MLObjective:
    """F_ML = sum_g (n_g / N) [log|Sigma_g| + tr(S_g Sigma_g^-1) - log|S_g| - p + (m-mu)' Sigma^-1 (m-mu)].

    Parameters
    ----------
    model : Model
    stats : SampleStats
    likelihood : {"normal", "wishart"}
        ``"wishart"`` uses S with divisor N - 1 and weights (n_g - 1)/(N - G).

    Notes
    -----
    chisq = N F_ML (lavaan's ``fx`` is F/2, so chisq = 2 N fx); with wishart chisq = (N - G) F.
    The gradient is sum_g w_g Delta_g' g_g with g = [-2 Sigma^-1 (m - mu), vech-weighted
    Sigma^-1 - Sigma^-1 (S + dd') Sigma^-1]. Bollen (1989), Structural Equations with Latent
    Variables, ch. 4.
    """

    def __init__(self, model: Model, stats: SampleStats, likelihood: str = "normal"):
        self.model, self.stats, self.likelihood = model, stats, likelihood
        G = stats.ngroups
        if likelihood == "wishart":
            self.n = np.array([g.n - 1 for g in stats.groups], float)
            self.S = [g.cov * g.n / (g.n - 1) for g in stats.groups]
            evs = [g.cov_eigenvalues * g.n / (g.n - 1) for g in stats.groups]
        else:
            self.n = np.array([g.n for g in stats.groups], float)
            self.S = [g.cov for g in stats.groups]
            evs = [g.cov_eigenvalues for g in stats.groups]
        self.N = float(self.n.sum())
        self.w = self.n / self.N
        self.means = [g.mean for g in stats.groups]
        self.logdetS = []
        self.sample_pd = True
        for ev in evs:
            if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
                # not positive definite: F is only defined up to the constant log|S|;
                # optimise with 0 in its place (the chi-square is then undefined)
                self.sample_pd = False
                self.logdetS.append(0.0)
            else:
                self.logdetS.append(float(np.sum(np.log(ev))))
        self.ngroups = G
        self._gcols = [_selection_columns(K) for K in model.group_K]

    def group_values(self, x: np.ndarray) -> np.ndarray:
        """F_g per group (inf when an implied matrix is not positive definite)."""
        out = []
        p = self.model.p
        for imp, S, m, ldS in zip(self.model.implied(x), self.S, self.means, self.logdetS):
            try:
                c = np.linalg.cholesky(imp.sigma)
            except np.linalg.LinAlgError:
                out.append(np.inf)
                continue
            ld = 2.0 * np.log(np.diag(c)).sum()
            Si = np.linalg.inv(imp.sigma)
            F = ld + np.sum(S * Si) - ldS - p
            if imp.mu is not None:
                d = m - imp.mu
                F += d @ Si @ d
            out.append(F)
        return np.array(out)

    def value(self, x: np.ndarray) -> float:
        """F_ML (weighted over groups)."""
        return float(self.w @ self.group_values(x))

    def moment_gradients(self, x: np.ndarray) -> list[np.ndarray]:
        """dF_g / d[mu, vech Sigma] per group (unweighted)."""
        vr, vc = self.model.vr, self.model.vc
        out = []
        for _, R, gm in self._moment_parts(x):
            gs = R[vr, vc] * np.where(vr == vc, 1.0, 2.0)
            out.append(gs if gm is None else np.concatenate([gm, gs]))
        return out

    def _moment_parts(self, x: np.ndarray) -> list[tuple]:
        """Per group (Sigma^-1, R, g_mu): dF_g/dSigma_ij = R_ij taking every element as its own
        argument (R = Sigma^-1 - Sigma^-1 (S + dd') Sigma^-1) and dF_g/dmu = -2 Sigma^-1 d, or
        None without a mean structure."""
        out = []
        for imp, S, m in zip(self.model.implied(x), self.S, self.means):
            Si = np.linalg.inv(imp.sigma)
            St = S
            gm = None
            if imp.mu is not None:
                d = m - imp.mu
                St = S + np.outer(d, d)
                gm = -2.0 * Si @ d
            out.append((Si, Si - Si @ St @ Si, gm))
        return out

    def gradient(self, x: np.ndarray, deltas: list | None = None) -> np.ndarray:
        """Analytic gradient dF/dx = sum_g w_g Delta_g' dF_g/dm_g."""
        deltas = self.model.delta(x) if deltas is None else deltas
        g = np.zeros(self.model.nx)
        for w, D, gm in zip(self.w, deltas, self.moment_gradients(x)):
            g += w * (D.T @ gm)
        return g

    def gradient_and_information(self, x: np.ndarray, *, wrt: str = "x"
                                 ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of F and unit expected information from the rank-2 factors of Delta
        (`factored_information`), without forming Delta.

        ``wrt="x"`` (default): with respect to the optimiser's parameters (per group mapped
        through ``model.group_K``); ``wrt="free"``: with respect to every free table row, so
        equality constraints are released (the ingredients of score tests, lavaan's
        ``lavTestScore``).

        Notes
        -----
        With dSigma_t = a_t b_t' + b_t a_t' (`Model.delta_factors`): dF/dx_t = 2 a_t' R b_t +
        g_mu' dmu/dx_t (R and g_mu of `_moment_parts`).
        """
        mdl = self.model
        key = (np.asarray(x, float).tobytes(), wrt, getattr(mdl, "_k_version", 0))
        last = getattr(self, "_gi_last", None)
        if last is not None and last[0] == key:
            return last[1].copy(), last[2].copy()
        k = mdl.nx if wrt == "x" else len(mdl.free_rows)
        g = np.zeros(k)
        info = np.zeros((k, k))
        dmu = mdl.delta_mean(x) if mdl.meanstructure else [None] * self.ngroups
        for w, (fa, fb), Kg, xc, cols, (Si, R, gm), Dm in zip(
                self.w, mdl.delta_factors(x), mdl.group_K, self._gcols, mdl.group_cols,
                self._moment_parts(x), dmu):
            gc = 2.0 * np.einsum("ij,ij->j", fa, R @ fb)
            if Dm is not None:
                gc += Dm.T @ gm
            Ic = factored_information(Si, fa, fb, Dm)
            if wrt == "x" and xc is not None:      # K_g selects distinct columns of x
                g[xc] += w * gc
                info[np.ix_(xc, xc)] += w * Ic
            elif wrt == "x":
                g += w * (Kg.T @ gc)
                info += w * (Kg.T @ Ic @ Kg)
            else:
                g[cols] += w * gc
                info[np.ix_(cols, cols)] += w * Ic
        info = 0.5 * (info + info.T)
        self._gi_last = (key, g.copy(), info.copy())     # the fit's SEs ask again at the optimum
        return g, info

    def expected_information(self, x: np.ndarray, deltas: list | None = None) -> np.ndarray:
        """Unit expected information sum_g w_g Delta_g' W_g Delta_g (E[Hessian of F] / 2)."""
        return expected_information(self.model, x, self.stats, likelihood=self.likelihood,
                                    deltas=deltas)


def _unvech(D: np.ndarray, p: int, vr: np.ndarray, vc: np.ndarray) -> np.ndarray:
    """Columns of D (vech of symmetric matrices) -> array (k, p, p)."""
    k = D.shape[1]
    out = np.zeros((k, p, p))
    out[:, vr, vc] = D.T
    out[:, vc, vr] = D.T
    return out


def weighted_delta(model: Model, sigma: np.ndarray, D: np.ndarray) -> np.ndarray:
    """W @ D for the normal-theory weight W of `moment_weight`, without forming W.

    Notes
    -----
    For a column d = [d_mu, vech(dSigma)]: W d = [Sigma^-1 d_mu, 1/2 D'vec(Sigma^-1 dSigma
    Sigma^-1)], and D'vec(M) is vech(M) with the off-diagonal elements doubled.
    """
    p = model.p
    vr, vc = model.vr, model.vc
    Si = np.linalg.inv(sigma)
    off = p if model.meanstructure else 0
    dS = _unvech(D[off:], p, vr, vc)
    M = Si @ dS @ Si
    w = np.where(vr == vc, 0.5, 1.0)
    out = np.empty_like(D)
    out[off:] = (M[:, vr, vc] * w).T
    if off:
        out[:off] = Si @ D[:off]
    return out


def _selection_columns(K: np.ndarray) -> np.ndarray | None:
    """The column of x of each row of ``K`` when every row is a unit vector and no two rows
    share a column (then ``K' A K`` is ``A`` placed at those columns); None otherwise."""
    if K.size == 0 or not np.all((K == 0.0) | (K == 1.0)) or not np.all(K.sum(axis=1) == 1.0):
        return None
    cols = K.argmax(axis=1)
    return cols if len(np.unique(cols)) == len(cols) else None


def factored_information(Si: np.ndarray, fa: np.ndarray, fb: np.ndarray,
                         Dm: np.ndarray | None = None) -> np.ndarray:
    """One group's unit expected information Delta' W Delta from the rank-2 factors of Delta.

    Notes
    -----
    With dSigma_t = a_t b_t' + b_t a_t' (`instrument.sem.model.Model.delta_factors`), the
    covariance part 1/2 tr(Sigma^-1 dSigma_s Sigma^-1 dSigma_t) equals
    ``(P_ab o P_ab')_st + (P_aa o P_bb)_st`` with P_ab = A' Sigma^-1 B etc. (o: elementwise),
    so it costs O(p^2 q + p q^2) for q parameters instead of O(p^2 q^2); the mean part is
    ``Dm' Sigma^-1 Dm``. Equals `weighted_delta` applied to the full Delta.
    """
    U = Si @ fa
    V = Si @ fb
    Pab = fa.T @ V
    I = Pab * Pab.T + (fa.T @ U) * (fb.T @ V)
    if Dm is not None:
        I += Dm.T @ Si @ Dm
    return I


def expected_information(model: Model, x: np.ndarray, stats: SampleStats, *,
                         likelihood: str = "normal", deltas: list | None = None) -> np.ndarray:
    """Expected (Fisher) information per observation: sum_g (n_g/N) Delta_g' W_g Delta_g.

    Notes
    -----
    lavaan's ``lav_model_information_expected`` (ML, structured h1), W from `moment_weight`
    at the implied moments. The covariance matrix of the estimates is its inverse divided by N
    (N - G with wishart).
    """
    n = np.array([g.n - (1 if likelihood == "wishart" else 0) for g in stats.groups], float)
    w = n / n.sum()
    info = np.zeros((model.nx, model.nx))
    if deltas is None:       # fast path: rank-2 factors of Delta, Delta never formed
        dmu = model.delta_mean(x) if model.meanstructure else [None] * len(w)
        for wg, (fa, fb), Kg, imp, Dm in zip(w, model.delta_factors(x), model.group_K,
                                             model.implied(x), dmu):
            Ic = factored_information(np.linalg.inv(imp.sigma), fa, fb, Dm)
            xc = _selection_columns(Kg)
            if xc is None:
                info += wg * (Kg.T @ Ic @ Kg)
            else:
                info[np.ix_(xc, xc)] += wg * Ic
        return 0.5 * (info + info.T)
    for wg, D, imp in zip(w, deltas, model.implied(x)):
        info += wg * (D.T @ weighted_delta(model, imp.sigma, D))
    return 0.5 * (info + info.T)
