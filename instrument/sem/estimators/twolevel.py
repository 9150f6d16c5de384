"""Two-level (random-intercept) ML: the likelihood, its gradient and expected information, the
saturated model by EM, and the objective in the protocol of the engine's optimiser.

Teachers (level 1) are nested in schools (level 2): y_ij = mu + b_j + w_ij with
Cov(w) = Sigma_W(theta_W) (the ``level: 1`` model) and Cov(b) = Sigma_B(theta_B),
E(y) = mu_B(theta_B) (the ``level: 2`` model, which carries the intercepts). Everything here is a
function of the ``cluster`` part of the sample statistics
(`instrument.sem.samplestats.ClusterStats`): `twolevel_loglik` (with its analytic gradient),
`twolevel_expected_information`, `saturated_em` (lavaan 0.6-14's EM for h1) and
`TwoLevelObjective`, which `instrument.sem.optim.optimize` minimises for the model
(`_CFAStructure`: a within and a between CFA on one parameter vector), the exact saturated model
and the baseline (`_Saturated`). The fit, its result type and the reliability coefficients are in
`instrument.sem.twolevel`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from instrument.sem.estimators.ml import moment_weight
from instrument.sem.optim import gradient_jacobian
from instrument.sem.model import Model, vech_indices
from instrument.sem.partable import ParTable
from instrument.sem.samplestats import ClusterStats, GroupStats, SampleStats

__all__ = ["twolevel_loglik", "twolevel_expected_information", "TwoLevelObjective",
           "saturated_em"]

_LOG2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------- likelihood
def _chol_inv_logdet(S: np.ndarray) -> tuple[np.ndarray, float] | None:
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(L)
    return Li.T @ Li, 2.0 * float(np.sum(np.log(np.diag(L))))


def twolevel_loglik(cs: ClusterStats, sigma_w: np.ndarray, sigma_b: np.ndarray,
                    mu: np.ndarray, *, gradient: bool = False):
    """Two-level normal log-likelihood of random-intercept data (and its gradient).

    Parameters
    ----------
    cs : ClusterStats
    sigma_w, sigma_b : ndarray (p, p)
        Within and between covariance matrices.
    mu : ndarray (p,)
        Mean vector (carried by the between level).
    gradient : bool
        Also return d logl / d [vech(Sigma_W), vech(Sigma_B), mu] (vech as in lavaan; an
        off-diagonal entry moves both symmetric cells).

    Returns
    -------
    float, or (float, ndarray) with ``gradient=True``; ``-inf`` when Sigma_W or
    Sigma_W + n Sigma_B is not positive definite.

    Notes
    -----
    For a cluster of size n with mean ybar_j and within SSCP W_j, the stacked vector has
    covariance I_n (x) Sigma_W + 1 1' (x) Sigma_B, whose determinant is
    |Sigma_W|^(n-1) |Sigma_W + n Sigma_B| (McDonald & Goldstein, 1989), so

        logl = -1/2 [ N p log 2pi + (N - J) log|Sigma_W| + tr(Sigma_W^-1 W)
                      + sum_j ( log|V_j| + n_j (ybar_j - mu)' V_j^-1 (ybar_j - mu) ) ],
        V_j = Sigma_W + n_j Sigma_B,

    with the cluster sum computed once per distinct cluster size (lavaan's
    ``lav_mvnorm_cluster_loglik_samplestats_2l`` groups clusters the same way).

    References
    ----------
    McDonald, R. P., & Goldstein, H. (1989). Balanced versus unbalanced designs for linear
    structural relations in two-level data. British Journal of Mathematical and Statistical
    Psychology, 42(2), 215-232. https://doi.org/10.1111/j.2044-8317.1989.tb00911.x
    Muthen, B. O. (1990). Mean and covariance structure analysis of hierarchical data. UCLA
    Statistics Series, 62.
    Rosseel, Y. (2021). Evaluating the observed log-likelihood function in two-level structural
    equation modeling with missing data. Psychometrika, 86, 28-69.
    """
    p, N, J = cs.p, cs.N, cs.J
    r = _chol_inv_logdet(sigma_w)
    if r is None:
        return (-np.inf, None) if gradient else -np.inf
    Wi, ldw = r
    WiW = Wi @ cs.W
    ll = N * p * _LOG2PI + (N - J) * ldw + float(np.trace(WiW))
    if gradient:
        Gw = (N - J) * Wi - WiW @ Wi
        Gb = np.zeros((p, p))
        gmu = np.zeros(p)
    n, m = cs.sizes, cs.counts
    V = sigma_w[None] + n[:, None, None] * sigma_b[None]        # one per cluster size
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return (-np.inf, None) if gradient else -np.inf
    Li = np.linalg.inv(L)
    Vi = np.swapaxes(Li, 1, 2) @ Li
    ldv = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    dm = cs.means - mu
    A = cs.covs + dm[:, :, None] * dm[:, None, :]
    ll += float(np.sum(m * (ldv + n * np.einsum("kij,kij->k", Vi, A))))
    if gradient:
        T = m[:, None, None] * (Vi - n[:, None, None] * (Vi @ A @ Vi))
        Gw += T.sum(axis=0)
        Gb += (n[:, None, None] * T).sum(axis=0)
        gmu += np.einsum("k,kij,kj->i", m * n, Vi, dm)
    ll *= -0.5
    if not gradient:
        return ll
    vr, vc = vech_indices(p)
    mult = np.where(vr == vc, 1.0, 2.0)
    g = np.concatenate([-0.5 * Gw[vr, vc] * mult, -0.5 * Gb[vr, vc] * mult, gmu])
    return ll, g


def _unvech(v: np.ndarray, p: int) -> np.ndarray:
    vr, vc = vech_indices(p)
    S = np.zeros((p, p))
    S[vr, vc] = v
    S[vc, vr] = v
    return S


# ---------------------------------------------------------------------------------- structures
class _Saturated:
    """h1: Sigma_W, Sigma_B and mu unrestricted (x = [vech W, vech B, mu])."""

    def __init__(self, p: int, diagonal: bool = False):
        self.p = p
        ps = p * (p + 1) // 2
        vr, vc = vech_indices(p)
        keep = np.ones(ps, bool) if not diagonal else (vr == vc)
        self.sel = np.concatenate([keep, keep, np.ones(p, bool)])
        self.J = np.eye(2 * ps + p)[:, self.sel]
        self.nx = int(self.sel.sum())

    def moments(self, x):
        full = self.J @ x
        ps = self.p * (self.p + 1) // 2
        return _unvech(full[:ps], self.p), _unvech(full[ps:2 * ps], self.p), full[2 * ps:]

    def jacobian(self, x):
        return self.J

    def start(self, cs: ClusterStats):
        SW, SB = cs.S_PW, _between_start(cs)
        vr, vc = vech_indices(self.p)
        full = np.concatenate([SW[vr, vc], SB[vr, vc], cs.grand_mean])
        return full[self.sel]


def _between_start(cs: ClusterStats) -> np.ndarray:
    """Moment estimate of Sigma_B ((S_B - S_PW)/c, Muthen 1994), made positive definite."""
    nj, N, J = cs.cluster_sizes, cs.N, cs.J
    D = cs.cluster_means - cs.grand_mean
    SB = (D * nj[:, None]).T @ D / (J - 1)
    c = (N ** 2 - np.sum(nj ** 2)) / (N * (J - 1))
    S = (SB - cs.S_PW) / c
    w, V = np.linalg.eigh(S)
    floor = 0.05 * np.abs(np.diag(S)).mean() + 1e-6
    return (V * np.maximum(w, floor)) @ V.T


class _CFAStructure:
    """Within CFA (Sigma_W only) and between CFA (Sigma_B and mu) on one parameter vector."""

    def __init__(self, pt_w: ParTable, pt_b: ParTable, ov_names: Sequence[str]):
        self.mw, self.mb = Model.from_partable(pt_w), Model.from_partable(pt_b)
        self.nxw, self.nxb = self.mw.nx, self.mb.nx
        self.nx = self.nxw + self.nxb
        p = len(ov_names)
        self.p = p
        self.iw = np.array([pt_w.ov_names.index(v) for v in ov_names])
        self.ib = np.array([pt_b.ov_names.index(v) for v in ov_names])
        vr, vc = vech_indices(p)
        self.vr, self.vc = vr, vc

        def vech_rows(idx):
            pos = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(*vech_indices(p)))}
            a, b = idx[vr], idx[vc]
            return np.array([pos[(max(i, j), min(i, j))] for i, j in zip(a, b)])
        self.rw = vech_rows(self.iw)
        self.rb = vech_rows(self.ib)

    def split(self, x):
        return x[:self.nxw], x[self.nxw:]

    def moments(self, x):
        xw, xb = self.split(x)
        iw = self.mw.implied(xw)[0]
        ib = self.mb.implied(xb)[0]
        SW = iw.sigma[np.ix_(self.iw, self.iw)]
        SB = ib.sigma[np.ix_(self.ib, self.ib)]
        return SW, SB, ib.mu[self.ib]

    def jacobian(self, x):
        xw, xb = self.split(x)
        p, ps = self.p, self.p * (self.p + 1) // 2
        Dw = self.mw.delta(xw)[0][p:]           # drop the (fixed-zero) within mean rows
        Db = self.mb.delta(xb)[0]
        Dbm, Dbs = Db[:p], Db[p:]
        Jm = np.zeros((2 * ps + p, self.nx))
        Jm[:ps, :self.nxw] = Dw[self.rw]
        Jm[ps:2 * ps, self.nxw:] = Dbs[self.rb]
        Jm[2 * ps:, self.nxw:] = Dbm[self.ib]
        return Jm

    def start(self, cs: ClusterStats):
        p = self.p
        ow = np.argsort(self.iw)
        sw = SampleStats([GroupStats(cs.N - cs.J, cs.S_PW[np.ix_(ow, ow)], np.zeros(p))])
        SB = _between_start(cs)
        ob = np.argsort(self.ib)
        sb = SampleStats([GroupStats(cs.J, SB[np.ix_(ob, ob)], cs.grand_mean[ob])])
        return np.concatenate([self.mw.start_x(sw), self.mb.start_x(sb)])


def saturated_em(cs: ClusterStats, *, tol: float = 1e-4, max_iter: int = 5000
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Unrestricted two-level model (h1) by EM, as lavaan 0.6-14 fits it.

    Parameters
    ----------
    cs : ClusterStats
    tol : float
        Stop when the log-likelihood increases by less than ``tol`` in one iteration
        (the default 1e-4 of lavaan 0.6-14's ``lav_mvnorm_cluster_em_sat``, which the
        two-level h1 uses; verified: it reproduces lavaan's ``unrestricted.logl`` to 4e-12).
    max_iter : int

    Returns
    -------
    (Sigma_W, Sigma_B, mu, logl, iterations)

    Notes
    -----
    Starts at Sigma_W = Sigma_B = I, mu = 0. E-step per cluster j (size n_j), with
    Omega_j = (Sigma_W + n_j Sigma_B)/n_j and K_j = Sigma_B Omega_j^-1: the cluster effect
    v_j has E(v_j) = mu_B + K_j (ybar_j - mu), Cov(v_j) = Sigma_B - K_j Sigma_B. M-step:
    mu_B = mean_j E(v_j), mu_W = sum_j n_j (ybar_j - E(v_j)) / N, Sigma_B = mean_j E(v v') -
    mu_B mu_B', Sigma_W = [sum_ij y_ij y_ij' - sum_j n_j (ybar_j E(v_j)' + E(v_j) ybar_j' -
    E(v_j v_j'))] / N - mu_W mu_W', with mu = mu_W + mu_B. The stopping rule is lavaan's
    (``lav_mvnorm_cluster_em_sat``), so the h1 log-likelihood -- and with it chisq, the
    baseline chisq and SRMR -- equal lavaan's to rounding rather than to the EM tolerance;
    the engine's optimiser on `_Saturated` gives the exact maximum instead.

    References
    ----------
    Raudenbush, S. W. (1995). Maximum likelihood estimation for unbalanced multilevel covariance
    structure models via the EM algorithm. British Journal of Mathematical and Statistical
    Psychology, 48(2), 359-370. https://doi.org/10.1111/j.2044-8317.1995.tb01068.x
    """
    p, N, J = cs.p, cs.N, cs.J
    SW, SB = np.eye(p), np.eye(p)
    mw, mb = np.zeros(p), np.zeros(p)
    fx_old = twolevel_loglik(cs, SW, SB, mw + mb)
    fx, it = fx_old, 0
    ybar, nj = cs.cluster_means, cs.cluster_sizes
    kidx = np.searchsorted(cs.sizes, nj)
    for it in range(1, max_iter + 1):
        mu = mw + mb
        n = cs.sizes
        Om = (SW[None] + n[:, None, None] * SB[None]) / n[:, None, None]
        K = SB[None] @ np.linalg.inv(Om)                       # per cluster size
        Covv = cs.counts[:, None, None] * (SB[None] - K @ SB[None])
        Covv = (Covv + np.swapaxes(Covv, 1, 2)) / 2
        Ev = np.einsum("jab,jb->ja", K[kidx], ybar - mu) + mb  # per cluster
        EvEv = Ev[:, :, None] * Ev[:, None, :]
        Evv_sum = Covv.sum(axis=0) + EvEv.sum(axis=0)
        Evv_nsum = (n[:, None, None] * Covv).sum(axis=0) + np.einsum("j,jab->ab", nj, EvEv)
        MW = (nj[:, None] * (ybar - Ev)).sum(axis=0)
        MB = Ev.sum(axis=0)
        YE = (nj[:, None] * ybar).T @ Ev
        CW2 = Evv_nsum - YE - YE.T
        CB = Evv_sum
        mw, mb = MW / N, MB / J
        SW = (cs.YY + CW2) / N - np.outer(mw, mw)
        SB = CB / J - np.outer(mb, mb)
        fx = twolevel_loglik(cs, SW, SB, mw + mb)
        if fx - fx_old < tol:
            break
        fx_old = fx
    return SW, SB, mw + mb, float(fx), it


# ---------------------------------------------------------------------------------- objective
def twolevel_expected_information(cs: ClusterStats, sigma_w: np.ndarray, sigma_b: np.ndarray
                                  ) -> np.ndarray:
    """Expected (Fisher) information of `twolevel_loglik` for [vech(Sigma_W), vech(Sigma_B), mu].

    Notes
    -----
    In a random-intercept model the pooled within SSCP W is Wishart(Sigma_W, N - J) and
    independent of the cluster means ybar_j ~ N(mu, Omega_j), Omega_j = Sigma_B + Sigma_W / n_j.
    With M(S) = blockdiag(S^-1, 1/2 D'(S^-1 (x) S^-1) D) the normal-theory weight of
    [mean, vech(cov)] (`instrument.sem.estimators.ml.moment_weight`) and C(S) its covariance
    block, and dOmega_j = dSigma_B + dSigma_W / n_j,

        I_WW = (N - J) C(Sigma_W) + sum_j C(Omega_j) / n_j^2,  I_WB = sum_j C(Omega_j) / n_j,
        I_BB = sum_j C(Omega_j),  I_mumu = sum_j Omega_j^-1,

    summed once per distinct cluster size (m_k clusters of size n_k). It is positive definite
    wherever the likelihood is finite, so Fisher scoring on it is a descent method.

    References
    ----------
    Muthen, B. O. (1990). Mean and covariance structure analysis of hierarchical data. UCLA
    Statistics Series, 62.
    """
    p = cs.p
    vr, vc = vech_indices(p)
    ps = len(vr)
    info = np.zeros((2 * ps + p, 2 * ps + p))
    W, B, M = slice(0, ps), slice(ps, 2 * ps), slice(2 * ps, 2 * ps + p)
    info[W, W] = (cs.N - cs.J) * moment_weight(sigma_w, False, vr, vc)
    for n, m in zip(cs.sizes, cs.counts):
        Om = sigma_b + sigma_w / n
        Wt = moment_weight(Om, True, vr, vc)
        C = m * Wt[p:, p:]
        info[W, W] += C / n ** 2
        info[W, B] += C / n
        info[B, B] += C
        info[M, M] += m * Wt[:p, :p]
    info[B, W] = info[W, B].T
    return info


class TwoLevelObjective:
    """-logl / N of a two-level structure, in the protocol of
    `instrument.sem.optim.optimize`.

    ``structure`` maps the parameters x to (Sigma_W, Sigma_B, mu) (``moments(x)``) and gives
    their Jacobian (``jacobian(x)``, rows [vech Sigma_W, vech Sigma_B, mu]); ``value``,
    ``gradient`` and ``expected_information`` (E[Hessian]/2 of the value:
    J' I J / (2N) with I from `twolevel_expected_information`) are per level-1 unit, so the
    optimiser's gradient tolerance 1e-9 is max |d logl / dx| < 1e-9 N.
    """

    def __init__(self, structure, cs: ClusterStats):
        self.structure, self.cs = structure, cs

    def value(self, x: np.ndarray) -> float:
        ll = twolevel_loglik(self.cs, *self.structure.moments(x))
        return -ll / self.cs.N if np.isfinite(ll) else np.inf

    def gradient(self, x: np.ndarray) -> np.ndarray:
        _, g = twolevel_loglik(self.cs, *self.structure.moments(x), gradient=True)
        if g is None:
            raise FloatingPointError("the two-level likelihood is not finite")
        return -(self.structure.jacobian(x).T @ g) / self.cs.N

    def gradient_and_information(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        SW, SB, mu = self.structure.moments(x)
        _, g = twolevel_loglik(self.cs, SW, SB, mu, gradient=True)
        if g is None:
            raise FloatingPointError("the two-level likelihood is not finite")
        Jm = self.structure.jacobian(x)
        info = Jm.T @ twolevel_expected_information(self.cs, SW, SB) @ Jm
        return -(Jm.T @ g) / self.cs.N, info / (2.0 * self.cs.N)

    def expected_information(self, x: np.ndarray) -> np.ndarray:
        return self.gradient_and_information(x)[1]

    def observed_information(self, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Hessian of -logl (total, not per unit): central differences of the analytic
        gradient, lavaan 0.6-14's ``information = "observed"`` for two-level data."""
        return self.cs.N * gradient_jacobian(self.gradient, x, h=h, richardson=False)
