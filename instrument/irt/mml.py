"""Graded response and generalized partial credit models by marginal maximum likelihood.

Item response functions (slope-intercept form, as mirt's ``coef()``; one latent trait theta):

* graded (Samejima 1969), logistic or normal-ogive link F:
  ``P(X >= h | theta) = F(a theta + d_h)``, ``h = 1..m``, ``d_1 > ... > d_m``;
  ``P(X = h) = P(X >= h) - P(X >= h + 1)``.
* gpcm (Muraki 1992): ``P(X = h | theta) = exp(h a theta + d_h) / sum_l exp(l a theta + d_l)``,
  ``d_0 = 0``.

IRT difficulties are ``b_h = -d_h / a`` (graded; mirt's ``IRTpars = TRUE``).

Estimation is Bock & Aitkin's (1981) EM with fixed quadrature (61 equally spaced nodes on
[-6, 6] with normal weights, mirt's defaults for one factor). The M-step takes Fisher-scoring steps
per item with the analytic gradient and information of the expected complete-data log-likelihood.
The EM steps are accelerated by squared extrapolation (SQUAREM, Varadhan & Roland 2008; mirt
accelerates its EM too), with the plain EM stopping rule: one EM step changes no parameter by
``tol`` or more.
Standard errors come from the observed information: the Jacobian of the analytic marginal score
(Fisher's identity) by central differences, which equals Louis' (1982) and Oakes' (1999) exact
forms to differencing error.

Multiple groups: the first group's trait is N(0, 1); the others' means and variances are
estimated; items named in ``anchors`` have equal parameters in every group, the rest are free per
group (both the item parameters and the latent distribution need anchors to be identified).

References
----------
Bock, R. D., & Aitkin, M. (1981). Marginal maximum likelihood estimation of item parameters:
Application of an EM algorithm. Psychometrika, 46(4), 443-459. https://doi.org/10.1007/BF02293801
Samejima, F. (1969). Estimation of latent ability using a response pattern of graded scores.
Psychometrika Monograph Supplement, 34(4, Pt. 2), No. 17.
Muraki, E. (1992). A generalized partial credit model: Application of an EM algorithm. Applied
Psychological Measurement, 16(2), 159-176. https://doi.org/10.1177/014662169201600206
Varadhan, R., & Roland, C. (2008). Simple and globally convergent methods for accelerating the
convergence of any EM algorithm. Scandinavian Journal of Statistics, 35(2), 335-353.
https://doi.org/10.1111/j.1467-9469.2007.00585.x
Chalmers, R. P. (2012). mirt: A multidimensional item response theory package for the R
environment. Journal of Statistical Software, 48(6). https://doi.org/10.18637/jss.v048.i06
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from instrument.irt.data import response_matrix
from instrument.results import JSONResult, Meta, Table, hash_frame

MML_MODELS = ("graded", "gpcm")
LINKS = ("logit", "probit")
QUADPTS = 61          # mirt's default for one factor
THETA_LIM = 6.0       # mirt's theta_lim = c(-6, 6)


def quadrature(npts: int = QUADPTS, lim: float = THETA_LIM) -> tuple[np.ndarray, np.ndarray]:
    """Equally spaced nodes on [-lim, lim] with standard normal weights summing to one."""
    nodes = np.linspace(-lim, lim, npts)
    w = np.exp(-0.5 * nodes**2)
    return nodes, w / w.sum()


# --- item response functions -------------------------------------------------------------------------
def category_probs(model: str, link: str, a: np.ndarray, d: np.ndarray, theta: np.ndarray,
                   derivs: bool = False):
    """Category probabilities of a block of items with the same number of categories.

    Parameters
    ----------
    a : (I,) slopes; d : (I, m) intercepts; theta : (Q,) trait values.

    Returns
    -------
    P : (I, Q, m + 1)
    dP : (I, Q, m + 1, m + 1), derivatives with respect to (a, d_1..d_m); only when ``derivs``.
    dtheta : (I, Q, m + 1), derivative with respect to theta; only when ``derivs``.
    """
    I, m = d.shape
    Q = theta.size
    if model == "graded":
        eta = a[:, None, None] * theta[None, :, None] + d[:, None, :]         # I Q m
        if link == "logit":
            F, U = expit(eta), expit(-eta)
            f = F * U
        else:
            F, U = ndtr(eta), ndtr(-eta)
            f = np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)
        ones = np.ones((I, Q, 1))
        zeros = np.zeros((I, Q, 1))
        Ps = np.concatenate([ones, F, zeros], axis=2)                            # I Q m+2
        Us = np.concatenate([zeros, U, ones], axis=2)                            # 1 - Ps
        # P(X = k) from whichever tail keeps precision: upper tails where P(X >= k) > 1/2
        P = np.where(Ps[:, :, :-1] > 0.5, Us[:, :, 1:] - Us[:, :, :-1], Ps[:, :, :-1] - Ps[:, :, 1:])
        if not derivs:
            return P
        dPs = np.zeros((I, Q, m + 2, m + 1))
        dPs[:, :, 1:m + 1, 0] = f * theta[None, :, None]
        idx = np.arange(m)
        dPs[:, :, 1 + idx, 1 + idx] = f
        dP = dPs[:, :, :-1, :] - dPs[:, :, 1:, :]
        fs = np.concatenate([zeros, f, zeros], axis=2) * a[:, None, None]
        dth = fs[:, :, :-1] - fs[:, :, 1:]
        return P, dP, dth
    k = np.arange(m + 1, dtype=float)
    z = a[:, None, None] * theta[None, :, None] * k[None, None, :]
    z = z + np.concatenate([np.zeros((I, 1)), d], axis=1)[:, None, :]
    z -= z.max(axis=2, keepdims=True)
    P = np.exp(z)
    P /= P.sum(axis=2, keepdims=True)
    if not derivs:
        return P
    Ek = P @ k                                                                  # I Q
    dP = np.zeros((I, Q, m + 1, m + 1))
    dP[..., 0] = P * theta[None, :, None] * (k[None, None, :] - Ek[..., None])
    eye = np.eye(m + 1)[:, 1:]
    dP[..., 1:] = P[..., None] * (eye[None, None] - P[:, :, None, 1:])
    dth = a[:, None, None] * P * (k[None, None, :] - Ek[..., None])
    return P, dP, dth


# --- data layout -------------------------------------------------------------------------------------
@dataclass
class _Block:
    """Item instances sharing a number of categories: which item, which groups use it."""

    m: int
    item: np.ndarray                 # item index of each instance
    groups: list[np.ndarray]         # groups each instance applies to
    a: np.ndarray
    d: np.ndarray


def _onehot(x: np.ndarray, ncat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x sum(m_i + 1) indicator matrix of the responses (rows of zeros where missing)."""
    offs = np.concatenate(([0], np.cumsum(ncat + 1)))
    Y = np.zeros((x.shape[0], offs[-1]))
    for i in range(x.shape[1]):
        ok = x[:, i] >= 0
        Y[np.flatnonzero(ok), offs[i] + x[ok, i]] = 1.0
    return Y, offs


def _patterns(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix in lexicographic order: the index of
    each one's first occurrence and its count (``np.unique(z, axis=0)``'s). Rows are coded as
    mixed-radix integers (the first column most significant) when the code fits in 62 bits."""
    radix = z.max(axis=0).astype(np.int64) + 1
    if np.sum(np.log2(radix.astype(float))) < 62:
        code = np.zeros(z.shape[0], np.int64)
        for j in range(z.shape[1]):
            code = code * radix[j] + z[:, j]
        _, first, counts = np.unique(code, return_index=True, return_counts=True)
    else:
        _, first, counts = np.unique(z, axis=0, return_index=True, return_counts=True)
    return first, counts


def _start_values(model: str, link: str, x: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """Start: a = 1 (1.7^-1 for probit), d from the cumulative proportions."""
    obs = x[x >= 0]
    props = np.array([(obs >= h).mean() for h in range(1, m + 1)])
    props = np.clip(props, 0.01, 0.99)
    if model == "graded":
        d = np.log(props / (1 - props))
        if link == "probit":
            d = d / 1.7
        d = np.sort(d)[::-1] if np.any(np.diff(d) >= 0) else d
        d = d - np.arange(m) * 1e-3
        return (1.0 if link == "logit" else 1 / 1.7), d
    cnt = np.array([(obs == h).sum() for h in range(m + 1)], float) + 0.5
    return 1.0, np.log(cnt[1:] / cnt[0])


# --- result ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IRTResult(JSONResult):
    """A unidimensional IRT model fitted by MML.

    Attributes
    ----------
    model : {"graded", "gpcm"}
    link : {"logit", "probit"}
    items : tuple of str
    groups : tuple of str
        Group labels (``("all",)`` for one group).
    parameters : DataFrame
        ``item group par est se``: ``par`` is ``a1`` then ``d1..dm`` (mirt's names); the group is
        ``"all"`` for anchor items and single-group fits.
    latent : DataFrame
        ``group mean var`` of the trait (first group 0 and 1).
    loglik : float
    npar : int
    n : int
    iterations : int
    converged : bool
    vcov : ndarray
        Covariance of the free parameters in the order of ``parameters`` (rows with an ``se``),
        then the latent means and variances of the groups after the first.
    meta : Meta
    """

    model: str
    link: str
    items: tuple[str, ...]
    groups: tuple[str, ...]
    parameters: pd.DataFrame
    latent: pd.DataFrame
    loglik: float
    npar: int
    n: int
    iterations: int
    converged: bool
    vcov: np.ndarray
    meta: Meta = field(default_factory=Meta)

    def item_params(self, item: str, group: str | None = None) -> tuple[float, np.ndarray]:
        """(a, d) of one item (in ``group``, or its shared parameters)."""
        est = self._estimates
        v = est.get((item, group)) if group is not None else None
        if v is None:
            v = est.get((item, "all"))
        if v is None:
            v = est.get((item, self.groups[0]))
        if v is None:
            raise KeyError(f"item {item!r} is not in the model.")
        return float(v[0]), v[1:].copy()

    @cached_property
    def _estimates(self) -> dict[tuple, np.ndarray]:
        """``parameters``' estimates by (item, group), in the table's order (a1, d1..dm)."""
        out: dict[tuple, list] = {}
        for key, e in zip(zip(self.parameters["item"], self.parameters["group"]),
                          self.parameters["est"].to_numpy()):
            out.setdefault(key, []).append(e)
        return {k: np.array(v) for k, v in out.items()}

    def irt_parameters(self) -> pd.DataFrame:
        """Discrimination and difficulties ``item group a b1..bm`` (graded: ``b_h = -d_h / a``;
        gpcm: step difficulties ``b_h = -(d_h - d_{h-1}) / a``)."""
        rows = []
        for (it, g), p in self.parameters.groupby(["item", "group"], sort=False):
            a, d = p["est"].iloc[0], p["est"].to_numpy()[1:]
            b = -d / a if self.model == "graded" else -np.diff(np.concatenate(([0.0], d))) / a
            rows.append({"item": it, "group": g, "a": a, **{f"b{h + 1}": v for h, v in enumerate(b)}})
        return pd.DataFrame(rows)

    def summary(self) -> Table:
        label = {"graded": "graded response", "gpcm": "generalized partial credit"}[self.model]
        return Table(f"IRT {label} model ({self.link}), marginal ML", self.parameters,
                     notes=(f"log-likelihood {self.loglik:.4f}, {self.npar} free parameters, "
                            f"N = {self.n}; EM with {QUADPTS} fixed quadrature nodes on "
                            f"[-{THETA_LIM:g}, {THETA_LIM:g}].",))


# --- the estimator -----------------------------------------------------------------------------------
class _MML:
    """State of one MML fit: blocks of item instances, groups, quadrature."""

    def __init__(self, model, link, x, ncat, gidx, ngroups, anchors_mask, npts, start=None):
        self.model, self.link = model, link
        self.x, self.ncat = x, ncat
        self.G = ngroups
        self.nodes, self.w0 = quadrature(npts)
        # persons with the same group and responses contribute identically: one row per pattern
        first, self.wt = _patterns(np.column_stack([gidx, x + 1]))
        self.gidx = gidx[first]
        self.wt = self.wt.astype(float)
        self.Y, self.offs = _onehot(x[first], ncat)
        # each group's patterns and their counts, for the E-step
        self.by_group = [(self.Y[self.gidx == g], self.wt[self.gidx == g]) for g in range(ngroups)]
        self.mu = np.zeros(ngroups)
        self.sd = np.ones(ngroups)
        self.blocks: list[_Block] = []
        for m in sorted(set(ncat.tolist())):
            items, groups = [], []
            for i in np.flatnonzero(ncat == m):
                if anchors_mask[i] or ngroups == 1:
                    items.append(i)
                    groups.append(np.arange(ngroups))
                else:
                    for g in range(ngroups):
                        items.append(i)
                        groups.append(np.array([g]))
            a = np.empty(len(items))
            d = np.empty((len(items), m))
            for k, (i, gs) in enumerate(zip(items, groups)):
                sel = np.isin(gidx, gs)
                a[k], d[k] = _start_values(model, link, x[sel, i], m)
            self.blocks.append(_Block(m, np.array(items), groups, a, d))
        if start is not None:
            self._warm(start)

    def _warm(self, start: "IRTResult") -> None:
        """Start from a fit of the same items: each instance takes the parameters of its first
        group in ``start`` (shared or group-specific); the latent means and variances too."""
        labels = list(start.groups)
        for b in self.blocks:
            for k, (i, gs) in enumerate(zip(b.item, b.groups)):
                a, d = start.item_params(start.items[i], labels[gs[0]])
                b.a[k], b.d[k] = a, d
        lat = start.latent.set_index("group")
        self.mu = lat["mean"].to_numpy(float).copy()
        self.sd = np.sqrt(lat["var"].to_numpy(float))

    # parameters as one vector: item blocks, then (mu_g, log? no: var_g) for g >= 1
    def get(self) -> np.ndarray:
        parts = [np.column_stack([b.a, b.d]).ravel() for b in self.blocks]
        parts.append(np.column_stack([self.mu[1:], self.sd[1:] ** 2]).ravel())
        return np.concatenate(parts)

    def set(self, v: np.ndarray) -> None:
        k = 0
        for b in self.blocks:
            n = b.a.size * (b.m + 1)
            arr = v[k:k + n].reshape(b.a.size, b.m + 1)
            b.a, b.d = arr[:, 0].copy(), arr[:, 1:].copy()
            k += n
        lat = v[k:].reshape(-1, 2)
        self.mu[1:] = lat[:, 0]
        self.sd[1:] = np.sqrt(np.maximum(lat[:, 1], 1e-8))

    def logprob_table(self, derivs=False):
        """Per group: log P of every item category at the nodes (Q x sum K)."""
        Q = self.nodes.size
        logP = np.full((self.G, Q, self.offs[-1]), 0.0)
        store = []
        for b in self.blocks:
            out = category_probs(self.model, self.link, b.a, b.d, self.nodes, derivs)
            P = out[0] if derivs else out
            store.append(out)
            lp = np.log(np.clip(P, 1e-300, None))
            for k, (i, gs) in enumerate(zip(b.item, b.groups)):
                logP[np.ix_(gs, np.arange(Q), np.arange(self.offs[i], self.offs[i + 1]))] = lp[k]
        return logP, store

    def prior(self) -> np.ndarray:
        z = (self.nodes[None, :] - self.mu[:, None]) / self.sd[:, None]
        w = np.exp(-0.5 * z**2)
        return w / w.sum(axis=1, keepdims=True)                                # G Q

    def estep(self, logP):
        """Posterior weights times pattern counts summed per group (G x Q), expected counts per
        group (G x Q x sumK), log-likelihood."""
        Q = self.nodes.size
        nq = np.empty((self.G, Q))
        counts = np.empty((self.G, Q, self.offs[-1]))
        ll = 0.0
        lprior = np.log(self.prior())
        for g, (Yg, wt) in enumerate(self.by_group):
            E = Yg @ logP[g].T                                  # log joint, then its exp
            E += lprior[g]
            mx = E.max(axis=1, keepdims=True)
            E -= mx
            np.exp(E, out=E)
            s = E.sum(axis=1)
            ll += float(wt @ (np.log(s) + mx[:, 0]))
            c = wt / s                                          # posterior = E * c per row
            nq[g] = c @ E
            counts[g] = E.T @ (Yg * c[:, None])
        return nq, counts, ll

    def item_counts(self, counts, b: _Block) -> np.ndarray:
        """Expected counts (instances x Q x m+1) of a block, summed over each instance's groups."""
        r = np.empty((b.a.size, self.nodes.size, b.m + 1))
        for k, (i, gs) in enumerate(zip(b.item, b.groups)):
            r[k] = counts[gs][:, :, self.offs[i]:self.offs[i + 1]].sum(axis=0)
        return r

    def block_grad_info(self, b: _Block, r: np.ndarray, store=None):
        P, dP, _ = store if store is not None else category_probs(
            self.model, self.link, b.a, b.d, self.nodes, True)
        Pc = np.clip(P, 1e-300, None)
        g = np.einsum("iqk,iqkp->ip", r / Pc, dP)
        Nq = r.sum(axis=2)
        info = np.einsum("iq,iqkp,iqkr->ipr", Nq, dP / Pc[..., None], dP)
        return g, info

    def mstep(self, counts, nsteps=2):
        for b in self.blocks:
            r = self.item_counts(counts, b)
            for _ in range(nsteps):
                g, info = self.block_grad_info(b, r)
                step = np.linalg.solve(info + 1e-10 * np.eye(b.m + 1), g[..., None])[..., 0]
                obj0 = self._obj(b, r, b.a, b.d)
                t = np.ones(b.a.size)
                for _h in range(30):
                    a1 = b.a + t * step[:, 0]
                    d1 = b.d + t[:, None] * step[:, 1:]
                    obj1 = self._obj(b, r, a1, d1)
                    bad = ~(obj1 >= obj0 - 1e-12) | ~self._valid(d1)
                    if not bad.any():
                        break
                    t = np.where(bad, t / 2, t)
                b.a, b.d = a1, d1

    def _valid(self, d):
        if self.model != "graded":
            return np.ones(d.shape[0], bool)
        return np.all(np.diff(d, axis=1) < 0, axis=1)

    def _obj(self, b, r, a, d):
        P = category_probs(self.model, self.link, a, d, self.nodes)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.where(r > 0, np.log(np.clip(P, 1e-300, None)), 0.0)
        return np.einsum("iqk,iqk->i", r, lp)

    def update_latent(self, nq):
        for g in range(1, self.G):
            W = nq[g]
            n = W.sum()
            mu = W @ self.nodes / n
            var = W @ (self.nodes - mu) ** 2 / n
            self.mu[g], self.sd[g] = mu, np.sqrt(var)

    def score(self, v: np.ndarray) -> tuple[float, np.ndarray]:
        """Marginal log-likelihood and its gradient at ``v`` (Fisher's identity)."""
        old = self.get()
        self.set(v)
        logP, _ = self.logprob_table()
        nq, counts, ll = self.estep(logP)
        grads = []
        for b in self.blocks:
            r = self.item_counts(counts, b)
            g, _ = self.block_grad_info(b, r)
            grads.append(g.ravel())
        # latent: d log prior_gq / d(mu, var) with normalised weights
        pr = self.prior()
        for g in range(1, self.G):
            ng = nq[g]
            z = self.nodes - self.mu[g]
            var = self.sd[g] ** 2
            dmu = z / var
            dvar = 0.5 * (z**2 / var**2 - 1 / var)
            grads.append(np.array([ng @ (dmu - pr[g] @ dmu), ng @ (dvar - pr[g] @ dvar)]))
        self.set(old)
        return ll, np.concatenate(grads) if grads else np.zeros(0)

    def em_step(self) -> float:
        """One EM update of the parameters; returns the log-likelihood before it."""
        logP, _ = self.logprob_table()
        nq, counts, ll = self.estep(logP)
        self.mstep(counts)
        if self.G > 1:
            self.update_latent(nq)
        return ll

    def admissible(self, v: np.ndarray) -> bool:
        """Graded intercepts strictly decreasing and latent variances positive at ``v``."""
        k = 0
        for b in self.blocks:
            n = b.a.size * (b.m + 1)
            if not np.all(self._valid(v[k:k + n].reshape(b.a.size, b.m + 1)[:, 1:])):
                return False
            k += n
        return bool(np.all(v[k + 1::2] > 0)) and bool(np.all(np.isfinite(v)))


def _squarem(st: _MML, tol: float, maxit: int) -> tuple[bool, int]:
    """EM accelerated by squared extrapolation (SQUAREM, scheme S3; Varadhan & Roland 2008).

    A cycle takes two EM steps ``v1 = F(v0)``, ``v2 = F(v1)``, extrapolates
    ``v' = v0 - 2 s r + s^2 u`` with ``r = v1 - v0``, ``u = v2 - 2 v1 + v0``,
    ``s = min(-|r| / |u|, -1)`` (``s = -1`` gives ``v2``), and takes one EM step from ``v'``
    when ``v'`` is admissible and its log-likelihood is at least that of ``v1``, else from
    ``v2``. Converged, as plain EM, when one EM step changes no parameter by ``tol`` or more; the
    parameters are then that step's result. Returns (converged, EM steps taken).
    """
    steps = 0

    def step():
        nonlocal steps
        v = st.get()
        ll = st.em_step()
        steps += 1
        return ll, v, st.get()

    while steps < maxit:
        _, v0, v1 = step()
        if np.max(np.abs(v1 - v0)) < tol:
            return True, steps
        if steps >= maxit:
            break
        ll1, _, v2 = step()
        if np.max(np.abs(v2 - v1)) < tol:
            return True, steps
        if steps >= maxit:
            break
        r = v1 - v0
        u = v2 - v1 - r
        nu = np.sqrt(u @ u)
        alpha = min(-np.sqrt(r @ r) / nu, -1.0) if nu > 0 else -1.0
        vx = v0 - 2 * alpha * r + alpha**2 * u
        if alpha < -1.0 and st.admissible(vx):
            st.set(vx)
            llx, vx, v3 = step()
            if llx >= ll1 and np.isfinite(llx):
                if np.max(np.abs(v3 - vx)) < tol:
                    return True, steps
                continue
            st.set(v2)
            if steps >= maxit:
                break
        _, _, v3 = step()
        if np.max(np.abs(v3 - v2)) < tol:
            return True, steps
    return False, steps


def irt(data: pd.DataFrame, items: Sequence[str] | None = None, *, model: str = "graded",
        link: str = "logit", group: str | None = None, anchors: Sequence[str] | None = None,
        quadpts: int = QUADPTS, tol: float = 1e-6, maxit: int = 2000, se: bool = True,
        start: IRTResult | None = None) -> IRTResult:
    """Fit a unidimensional graded response or generalized partial credit model by MML (EM).

    Parameters
    ----------
    data : DataFrame
        Responses coded 0..m per item (NaN missing); a ``group`` column when ``group`` is given.
        Responses coded 1..m+1 are shifted so the lowest observed category is 0.
    items : list of str, optional
        Item columns (all but ``group`` by default).
    model : {"graded", "gpcm"}
    link : {"logit", "probit"}
        Graded model only: logistic (mirt ``"graded"``) or normal-ogive.
    group : str, optional
        Grouping column (e.g. language); the first group in sorted order is the reference.
    anchors : list of str, optional
        Items with equal parameters across groups (default: all items, i.e. invariance).
    tol : float
        EM stops when the largest absolute parameter change is below ``tol``.
    se : bool
        Standard errors from the observed information.
    start : IRTResult, optional
        A fit of the same items, data and groups whose estimates start the EM (e.g. the nested
        model of a likelihood-ratio test); default: starting values from the response proportions.

    Returns
    -------
    IRTResult

    Notes
    -----
    Matches mirt ``mirt(data, 1, itemtype = "graded" | "gpcm")`` coefficients (slope-intercept).
    """
    if model not in MML_MODELS:
        raise ValueError(f"model= must be one of {', '.join(map(repr, MML_MODELS))}; got {model!r}.")
    if link not in LINKS:
        raise ValueError(f"link= must be one of {', '.join(map(repr, LINKS))}; got {link!r}.")
    if model == "gpcm" and link != "logit":
        raise ValueError("link='probit' is defined for model='graded' only.")
    if items is None:
        items = [c for c in data.columns if c != group]
    items, X = response_matrix(data, list(items))
    keep = ~np.all(np.isnan(X), axis=1)
    X = X[keep]
    lo = np.nanmin(X, axis=0)
    x = np.where(np.isnan(X), -1, X - lo).astype(int)
    ncat = x.max(axis=0)
    for j, it in enumerate(items):
        used = np.bincount(x[x[:, j] >= 0, j], minlength=ncat[j] + 1)
        if ncat[j] < 1 or np.any(used == 0):
            raise ValueError(f"column {it!r}: categories {int(lo[j])}..{int(lo[j] + ncat[j])} must "
                             f"all occur; counts {used.tolist()}.")
    if group is not None:
        if group not in data.columns:
            raise ValueError(f"group= column {group!r} is not in the data.")
        gvals = data[group].to_numpy()[keep]
        labels = sorted(pd.unique(gvals[~pd.isna(gvals)]).tolist(), key=str)
        if pd.isna(gvals).any():
            r = int(np.flatnonzero(pd.isna(data[group].to_numpy()))[0])
            raise ValueError(f"row {r + 1}, column {group!r}: expected a group label; got missing.")
        pos = {v: j for j, v in enumerate(labels)}
        gidx = np.array([pos[v] for v in gvals])
    else:
        labels, gidx = ["all"], np.zeros(x.shape[0], int)
    G = len(labels)
    anchors = list(items) if anchors is None else list(anchors)
    bad = [a for a in anchors if a not in items]
    if bad:
        raise ValueError(f"anchors= names items not in the model: {', '.join(bad)}.")
    if G > 1 and not anchors:
        raise ValueError("anchors= must name at least one item when group= is given.")
    mask = np.array([it in anchors for it in items])
    if start is not None and (tuple(start.items) != tuple(items)
                              or tuple(start.groups) != tuple(map(str, labels))):
        raise ValueError("start= must be a fit of the same items and groups.")
    from threadpoolctl import threadpool_limits
    # the products are small (N x sum K x Q): one BLAS thread is fastest, above all on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(model, link, x, X, ncat, gidx, G, mask, labels, items, anchors, group, quadpts,
                    tol, maxit, se, start)


def _fit(model, link, x, X, ncat, gidx, G, mask, labels, items, anchors, group, quadpts, tol,
         maxit, se, start=None) -> IRTResult:
    """EM iterations, observed-information SEs and the result of `irt`."""
    st = _MML(model, link, x, ncat, gidx, G, mask, quadpts, start)
    converged, it_done = _squarem(st, tol, maxit)
    v = st.get()
    logP, _ = st.logprob_table()
    _, _, ll = st.estep(logP)
    npar = v.size
    if se:
        H = np.empty((npar, npar))
        for j in range(npar):
            h = 1e-5 * max(1.0, abs(v[j]))
            e = np.zeros(npar)
            e[j] = h
            H[:, j] = (st.score(v + e)[1] - st.score(v - e)[1]) / (2 * h)
        H = 0.5 * (H + H.T)
        vcov = np.linalg.inv(-H)
        ses = np.sqrt(np.maximum(np.diag(vcov), 0.0))
    else:
        vcov = np.full((npar, npar), np.nan)
        ses = np.full(npar, np.nan)
    rows = []
    k = 0
    for b in st.blocks:
        for j, (i, gs) in enumerate(zip(b.item, b.groups)):
            glab = "all" if len(gs) == G else labels[gs[0]]
            pars = [("a1", b.a[j])] + [(f"d{h + 1}", b.d[j, h]) for h in range(b.m)]
            for name, val in pars:
                rows.append((items[i], glab, name, float(val), float(ses[k])))
                k += 1
    params = pd.DataFrame(rows, columns=["item", "group", "par", "est", "se"])
    order = {it: n for n, it in enumerate(items)}
    perm = np.argsort(params["item"].map(order).to_numpy(), kind="stable")
    params = params.iloc[perm].reset_index(drop=True)
    perm = np.concatenate([perm, np.arange(perm.size, npar)])
    vcov = vcov[np.ix_(perm, perm)]
    latent = pd.DataFrame({"group": labels, "mean": st.mu, "var": st.sd**2})
    meta = Meta(options={"model": model, "link": link, "group": group, "anchors": anchors,
                         "quadpts": quadpts, "tol": tol, "estimator": "MML-EM"},
                data_hash=hash_frame(pd.DataFrame(X, columns=items)))
    return IRTResult(model=model, link=link, items=tuple(items), groups=tuple(map(str, labels)),
                     parameters=params, latent=latent, loglik=float(ll), npar=int(npar),
                     n=int(x.shape[0]), iterations=int(it_done), converged=converged,
                     vcov=vcov, meta=meta)
