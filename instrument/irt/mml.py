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
The E-step sums over the distinct (group, response pattern) rows. Given theta the responses are
independent, so a pattern's likelihood at the nodes is the product of its likelihoods on a leading
and a trailing half of the items; with few items and many persons the distinct halves are far
fewer than the patterns, and the marginal likelihoods and posterior counts come from matrix
products of the two halves' tables (`_MML.estep`).
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
from instrument.sem.optim import single_threaded_blas

MML_MODELS = ("graded", "gpcm")
LINKS = ("logit", "probit")
QUADPTS = 61          # mirt's default for one factor
THETA_LIM = 6.0       # mirt's theta_lim = c(-6, 6)
EM_MAXIT = 2000       # EM steps before a fit is reported as not converged


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
        Ps = np.empty((I, Q, m + 2))                                             # P(X >= k)
        Ps[..., 0], Ps[..., 1:-1], Ps[..., -1] = 1.0, F, 0.0
        Us = np.empty((I, Q, m + 2))                                             # 1 - Ps
        Us[..., 0], Us[..., 1:-1], Us[..., -1] = 0.0, U, 1.0
        # P(X = k) from whichever tail keeps precision: upper tails where P(X >= k) > 1/2
        P = np.where(Ps[:, :, :-1] > 0.5, Us[:, :, 1:] - Us[:, :, :-1], Ps[:, :, :-1] - Ps[:, :, 1:])
        if not derivs:
            return P
        # dP(X = k) = dP(X >= k) - dP(X >= k + 1); d P(X >= h) / d(a, d_h) = f_h (theta, 1)
        fs = np.zeros((I, Q, m + 2))
        fs[..., 1:-1] = f
        df = fs[:, :, :-1] - fs[:, :, 1:]                                        # f_k - f_{k+1}
        dP = np.zeros((I, Q, m + 1, m + 1))
        dP[..., 0] = df * theta[None, :, None]
        h = np.arange(1, m + 1)
        dP[:, :, h, h] = f
        dP[:, :, h - 1, h] = -f
        return P, dP, df * a[:, None, None]
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
    """Item instances sharing a number of categories: which item, which groups use it, and the
    category probabilities (with their derivatives) at the current parameters once computed."""

    m: int
    item: np.ndarray                 # item index of each instance
    groups: list[np.ndarray]         # groups each instance applies to
    a: np.ndarray
    d: np.ndarray
    member: np.ndarray               # instances x G: 1 where the instance applies to the group
    cols: np.ndarray                 # instances x (m + 1): the item's columns of the one-hot coding
    probs: tuple | None = None       # category_probs(..., derivs=True) at (a, d), or None


def _onehot(x: np.ndarray, ncat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x sum(m_i + 1) indicator matrix of the responses (rows of zeros where missing)."""
    offs = np.concatenate(([0], np.cumsum(ncat + 1)))
    Y = np.zeros((x.shape[0], offs[-1]))
    for i in range(x.shape[1]):
        ok = x[:, i] >= 0
        Y[np.flatnonzero(ok), offs[i] + x[ok, i]] = 1.0
    return Y, offs


def _distinct(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix in lexicographic order: the index of
    each one's first occurrence, the distinct row of each row, and the counts
    (``np.unique(z, axis=0)``'s). Rows are coded as mixed-radix integers (the first column most
    significant) when the code fits in 62 bits."""
    radix = z.max(axis=0, initial=0).astype(np.int64) + 1
    if np.sum(np.log2(radix.astype(float))) < 62:
        code = np.zeros(z.shape[0], np.int64)
        for j in range(z.shape[1]):
            code = code * radix[j] + z[:, j]
        _, first, inv, counts = np.unique(code, return_index=True, return_inverse=True,
                                          return_counts=True)
    else:
        _, first, inv, counts = np.unique(z, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    return first, inv.ravel(), counts


class _Patterns:
    """The responses of one fit as the E-step reads them.

    Persons with the same group and responses contribute identically, so the E-step runs over the
    distinct (group, response pattern) rows with their counts ``wt``, sorted by group and then by
    the items' codes; ``rows[g]`` is group g's slice.

    A pattern's likelihood at the nodes is the product of its likelihoods on a leading and a
    trailing half of the items, and with few items and many persons a group has far fewer distinct
    halves than patterns. ``halves[g]`` holds, for the leading and the trailing half, the one-hot
    coding of the group's distinct halves (rows), their columns of the stacked categories and each
    pattern's half. The items are split in the middle when the two tables' product has at most
    `_SPLIT` times as many cells as the group has patterns; otherwise the leading half is all
    the items and the trailing half is empty (one distinct half, no columns).
    """

    def __init__(self, x: np.ndarray, ncat: np.ndarray, gidx: np.ndarray, ngroups: int):
        self.x, self.ncat, self.gidx = x, ncat, gidx
        first, _, wt = _distinct(np.column_stack([gidx, x + 1]))
        px, pg = x[first], gidx[first]
        self.wt = wt.astype(float)
        Y, self.offs = _onehot(px, ncat)
        bounds = np.searchsorted(pg, np.arange(ngroups + 1))     # pg is sorted: groups are runs
        self.rows = [slice(bounds[g], bounds[g + 1]) for g in range(ngroups)]
        I = x.shape[1]
        self.halves = []
        for rows in self.rows:
            z = px[rows] + 1
            h = (I + 1) // 2
            split = [_distinct(z[:, :h])[:2], _distinct(z[:, h:])[:2]]
            if split[0][0].size * split[1][0].size > _SPLIT * z.shape[0]:
                h = I
                split = [(np.arange(z.shape[0]), np.arange(z.shape[0])), _distinct(z[:, I:])[:2]]
            self.halves.append([(Y[rows][f, self.offs[lo]:self.offs[hi]],
                                 slice(self.offs[lo], self.offs[hi]), inv)
                                for (f, inv), (lo, hi) in zip(split, ((0, h), (h, I)))])


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
# The E-step's tables of exponentiated log-likelihoods (each row's maximum 1) keep no entry below
# _FLUSH, so that no product of two entries is subnormal (subnormal arithmetic is two orders of
# magnitude slower); a pattern whose product of halves sums below _UNDERFLOW is recomputed from the
# logs, so what the flush drops (at most Q * _FLUSH) is below 1e-48 of any sum kept. The items are
# split in halves when the halves' product table has at most _SPLIT cells per pattern (its matrix
# products then cost less than the exponentials of the patterns' own rows).
_FLUSH = 1e-150
_UNDERFLOW = 1e-100
_SPLIT = 32


def _expected_loglik(r: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Expected complete-data log-likelihood of each item instance: sum over nodes and categories
    of the expected counts times log P (instances x Q x m+1 arrays)."""
    return np.einsum("iqk,iqk->i", r, np.log(np.maximum(P, 1e-300)))


class _MML:
    """State of one MML fit: blocks of item instances, groups, quadrature."""

    def __init__(self, model, link, pats: _Patterns, ngroups, anchors_mask, npts, start=None):
        self.model, self.link = model, link
        self.pats = pats
        self.G = ngroups
        self.nodes, _ = quadrature(npts)     # the prior is renormalised per group (`prior`)
        self.mu = np.zeros(ngroups)
        self.sd = np.ones(ngroups)
        ncat, offs = pats.ncat, pats.offs
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
            member = np.zeros((len(items), ngroups))
            for k, gs in enumerate(groups):
                member[k, gs] = 1.0
            cols = offs[np.array(items)][:, None] + np.arange(m + 1)
            a = np.empty(len(items))
            d = np.empty((len(items), m))
            if start is None:
                for k, (i, gs) in enumerate(zip(items, groups)):
                    sel = np.isin(pats.gidx, gs)
                    a[k], d[k] = _start_values(model, link, pats.x[sel, i], m)
            self.blocks.append(_Block(m, np.array(items), groups, a, d, member, cols))
        if start is not None:
            self._warm(start)
        # where each block's log-probabilities go in the per-group table (group, column) and
        # where they come from (instance, category)
        self._dest = []
        for b in self.blocks:
            k, g, c = np.nonzero(b.member[:, :, None] * np.ones(b.m + 1))
            self._dest.append((g, b.cols[k, c], k, c))

    def _warm(self, start: "IRTResult") -> None:
        """Start from a fit of the same items: each instance takes the parameters of its first
        group in ``start`` (shared or group-specific); the latent means and variances too."""
        labels = list(start.groups)
        for b in self.blocks:
            for k, (i, gs) in enumerate(zip(b.item, b.groups)):
                a, d = start.item_params(start.items[i], labels[gs[0]])
                b.a[k], b.d[k] = a, d
        self.mu = start.latent["mean"].to_numpy(float).copy()       # rows in the groups' order
        self.sd = np.sqrt(start.latent["var"].to_numpy(float))

    # parameters as one vector: item blocks, then (mu_g, var_g) for g >= 1
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
            b.probs = None
            k += n
        lat = v[k:].reshape(-1, 2)
        self.mu[1:] = lat[:, 0]
        self.sd[1:] = np.sqrt(np.maximum(lat[:, 1], 1e-8))

    def probs(self, b: _Block) -> tuple:
        """(P, dP, dtheta) of a block at its current parameters (`category_probs` with
        derivatives), computed once per parameter value."""
        if b.probs is None:
            b.probs = category_probs(self.model, self.link, b.a, b.d, self.nodes, True)
        return b.probs

    def logprob_table(self) -> np.ndarray:
        """Per group: log P of every item category at the nodes (G x Q x sum K)."""
        logP = np.empty((self.G, self.nodes.size, self.pats.offs[-1]))
        for b, (g, col, k, c) in zip(self.blocks, self._dest):
            lp = np.log(np.maximum(self.probs(b)[0], 1e-300))
            logP[g, :, col] = lp[k, :, c]
        return logP

    def prior(self) -> np.ndarray:
        z = (self.nodes[None, :] - self.mu[:, None]) / self.sd[:, None]
        w = np.exp(-0.5 * z**2)
        return w / w.sum(axis=1, keepdims=True)                                # G Q

    def estep(self, logP):
        """Posterior weights times pattern counts summed per group (G x Q), expected counts per
        group (G x Q x sumK), log-likelihood.

        Per group, with the halves of `_Patterns`: ``TA`` (distinct leading halves x Q) holds
        exp(sum of the half's log P + log prior - row maximum ``mA``), ``TB`` the same for the
        trailing halves without the prior. Pattern p = (a, b) has joint ``TA[a] * TB[b]`` at the
        nodes, so with ``S = TA TB'`` its marginal likelihood is ``S[a, b] exp(mA[a] + mB[b])``.
        With ``C[a, b]`` = count / ``S[a, b]`` of each pattern, the posterior counts summed over
        the patterns sharing a leading half are ``TA * (C TB)`` and over those sharing a
        trailing half ``TB * (C' TA)``: the expected counts of the half's categories follow from
        its one-hot coding, and no (patterns x Q) array is formed. A pattern whose halves'
        rows barely overlap (``S`` below `_UNDERFLOW`) is computed from the summed logs instead.
        """
        pats = self.pats
        Q = self.nodes.size
        nq = np.empty((self.G, Q))
        counts = np.empty((self.G, Q, pats.offs[-1]))
        ll = 0.0
        lprior = np.log(self.prior())
        for g, rows in enumerate(pats.rows):
            tables = []
            for j, (Yh, cols, _) in enumerate(pats.halves[g]):
                L = Yh @ logP[g][:, cols].T
                if j == 0:
                    L += lprior[g]
                mx = L.max(axis=1)
                T = np.exp(L - mx[:, None])
                T[T < _FLUSH] = 0.0
                tables.append((L, mx, T))
            (YA, cA, iA), (YB, cB, iB) = pats.halves[g]
            (LA, mA, TA), (LB, mB, TB) = tables
            wt = pats.wt[rows]
            s = (TA @ TB.T)[iA, iB]
            scale = mA[iA] + mB[iB]
            low = s < _UNDERFLOW
            C = np.zeros((TA.shape[0], TB.shape[0]))
            C[iA, iB] = np.where(low, 0.0, wt / s)
            RA = TA * (C @ TB)
            nq[g] = RA.sum(axis=0)
            counts[g][:, cA] = RA.T @ YA
            counts[g][:, cB] = (TB * (C.T @ TA)).T @ YB
            if low.any():
                L = LA[iA[low]] + LB[iB[low]]
                mx = L.max(axis=1)
                E = np.exp(L - mx[:, None])
                s[low], scale[low] = E.sum(axis=1), mx
                E *= (wt[low] / s[low])[:, None]
                nq[g] += E.sum(axis=0)
                counts[g][:, cA] += E.T @ YA[iA[low]]
                counts[g][:, cB] += E.T @ YB[iB[low]]
            ll += float(wt @ (np.log(s) + scale))
        return nq, counts, ll

    def item_counts(self, counts, b: _Block) -> np.ndarray:
        """Expected counts (instances x Q x m+1) of a block, summed over each instance's groups."""
        return np.einsum("kg,gqkc->kqc", b.member, counts[:, :, b.cols])

    def block_grad_info(self, b: _Block, r: np.ndarray):
        """Gradient and information (Fisher scoring) of the expected complete-data
        log-likelihood of a block's instances at their current parameters."""
        P, dP, _ = self.probs(b)
        Pc = np.maximum(P, 1e-300)
        I, Q, K, p = dP.shape
        D = dP.reshape(I, Q * K, p)
        g = ((r / Pc).reshape(I, 1, Q * K) @ D)[:, 0]
        # sum over nodes of N_q sum_k dP_k dP_k' / P_k, N_q the node's expected count
        info = np.swapaxes(D * (r.sum(axis=2)[:, :, None] / Pc).reshape(I, Q * K, 1), 1, 2) @ D
        return g, info

    def mstep(self, counts, nsteps=2):
        """``nsteps`` Fisher-scoring steps per block, each halved (per instance) until the
        expected complete-data log-likelihood does not fall and graded intercepts stay ordered."""
        for b in self.blocks:
            r = self.item_counts(counts, b)
            obj0 = _expected_loglik(r, self.probs(b)[0])
            diag = np.arange(b.m + 1)
            for _ in range(nsteps):
                g, info = self.block_grad_info(b, r)
                info[:, diag, diag] += 1e-10
                step = np.linalg.solve(info, g[..., None])[..., 0]
                t = np.ones(b.a.size)
                for _h in range(30):
                    a1 = b.a + t * step[:, 0]
                    d1 = b.d + t[:, None] * step[:, 1:]
                    trial = category_probs(self.model, self.link, a1, d1, self.nodes, True)
                    obj1 = _expected_loglik(r, trial[0])
                    bad = ~(obj1 >= obj0 - 1e-12) | ~self._valid(d1)
                    if not bad.any():
                        break
                    t = np.where(bad, t / 2, t)
                b.a, b.d, b.probs, obj0 = a1, d1, trial, obj1

    def _valid(self, d):
        if self.model != "graded":
            return np.ones(d.shape[0], bool)
        return (d[:, 1:] < d[:, :-1]).all(axis=1)

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
        nq, counts, ll = self.estep(self.logprob_table())
        grads = []
        for b in self.blocks:
            g, _ = self.block_grad_info(b, self.item_counts(counts, b))
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
        nq, counts, ll = self.estep(self.logprob_table())
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
        quadpts: int = QUADPTS, tol: float = 1e-6, maxit: int = EM_MAXIT, se: bool = True,
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
    return _estimate(_responses(data, items, group), model, link, anchors, quadpts, tol, maxit,
                     se, start)


@dataclass(frozen=True)
class _Responses:
    """The checked responses of `irt`: item names, their values and codes, the groups' labels
    and the distinct patterns the E-step reads (`_Patterns`)."""

    items: list[str]
    X: np.ndarray                    # values of the persons with a response (NaN missing)
    labels: list
    group: str | None
    pats: _Patterns
    data_hash: str


def _responses(data: pd.DataFrame, items: Sequence[str], group: str | None) -> _Responses:
    """Check and code the responses of `irt`: categories 0..m from the lowest observed, every
    category used, a label for every person when ``group`` is given."""
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
    return _Responses(items=items, X=X, labels=labels, group=group,
                      pats=_Patterns(x, ncat, gidx, len(labels)),
                      data_hash=hash_frame(pd.DataFrame(X, columns=items)))


def _estimate(resp: _Responses, model: str, link: str, anchors: Sequence[str] | None,
              quadpts: int, tol: float, maxit: int, se: bool,
              start: IRTResult | None = None) -> IRTResult:
    """EM iterations, observed-information SEs and the result of `irt` for checked responses
    (a likelihood-ratio test fits several models to one `_responses`)."""
    items, labels = resp.items, resp.labels
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
    # the products are small (patterns x sum K x Q): one BLAS thread is fastest, above all on a
    # busy machine
    with single_threaded_blas():
        st = _MML(model, link, resp.pats, G, mask, quadpts, start)
        converged, it_done = _squarem(st, tol, maxit)
        v = st.get()
        _, _, ll = st.estep(st.logprob_table())
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
    rows, item_of = [], []
    k = 0
    for b in st.blocks:
        for j, (i, gs) in enumerate(zip(b.item, b.groups)):
            glab = "all" if len(gs) == G else labels[gs[0]]
            pars = [("a1", b.a[j])] + [(f"d{h + 1}", b.d[j, h]) for h in range(b.m)]
            for name, val in pars:
                rows.append((items[i], glab, name, float(val), float(ses[k])))
                item_of.append(i)
                k += 1
    perm = np.argsort(item_of, kind="stable")                   # the table in the items' order
    params = pd.DataFrame([rows[j] for j in perm], columns=["item", "group", "par", "est", "se"])
    perm = np.concatenate([perm, np.arange(perm.size, npar)])
    vcov = vcov[np.ix_(perm, perm)]
    latent = pd.DataFrame({"group": labels, "mean": st.mu, "var": st.sd**2})
    meta = Meta(options={"model": model, "link": link, "group": resp.group, "anchors": anchors,
                         "quadpts": quadpts, "tol": tol, "estimator": "MML-EM"},
                data_hash=resp.data_hash)
    return IRTResult(model=model, link=link, items=tuple(items), groups=tuple(map(str, labels)),
                     parameters=params, latent=latent, loglik=float(ll), npar=int(npar),
                     n=int(resp.X.shape[0]), iterations=int(it_done), converged=converged,
                     vcov=vcov, meta=meta)
