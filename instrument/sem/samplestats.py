"""Sample statistics (lavaan's ``lavsamplestats``): one `SampleStats` for every estimator.

`SampleStats` holds one `GroupStats` per group. Every group has its moments (``n``, ``cov`` with
divisor N, ``mean``; the raw rows ``data`` only when a casewise estimator needs them); the other
parts are optional and filled by the stage that needs them, as lavaan's slots are:

* ``ordinal``: `SampleStatsOrdinal`, the two-step statistics of ordered indicators (thresholds,
  polychoric correlations, ``NACOV`` and the DWLS weight; computed by
  `instrument.sem.polychoric.sample_stats_ordinal`, lavaan's ``th``, ``WLS.obs``, ``NACOV``,
  ``WLS.V``);
* ``patterns``: `MissingPatterns`, the rows grouped by missing-data pattern (`missing_patterns`,
  lavaan's ``lav_samplestats_missing_patterns``) and ``h1``: `H1Result`, the saturated model fitted
  by EM on them (`instrument.sem.estimators.fiml_fast.em_saturated_fast`, lavaan's
  ``missing.h1``);
* ``cluster``: `ClusterStats`, the within and between statistics of two-level data
  (`cluster_stats_from`, lavaan's ``YLp``).

`SampleStats.to_dict` keeps the moments and the ordinal part (what a result needs to be
re-analysed); raw rows, missing-data patterns and cluster statistics are respondent-level and are
not written.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.results import Table, dumps, from_jsonable, to_jsonable
from instrument.sem.data import SemData

__all__ = ["GroupStats", "SampleStats", "SampleStatsOrdinal", "MissingPatterns", "PatternBlock",
           "missing_patterns", "H1Result", "ClusterStats", "cluster_stats_from"]


# --------------------------------------------------------------------------------------------
# ordinal part
# --------------------------------------------------------------------------------------------
def _json_equal(a: Any, b: object) -> bool:
    """``a == b`` for result types compared through their JSON forms (NotImplemented for
    another type)."""
    if type(b) is not type(a):
        return NotImplemented
    return dumps(a.to_dict()) == dumps(b.to_dict())


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


@dataclass(frozen=True, eq=False)
class SampleStatsOrdinal:
    """Two-step sample statistics of one group for WLSMV (lavaan's ``lavSampleStats`` slots).

    Attributes
    ----------
    group : str or None
        Group label (None for a single-group analysis).
    n : int
        Number of rows used (lavaan's ``nobs``): after listwise deletion, or all rows of the group
        with ``missing="pairwise"``.
    ov_names : tuple of str
        Variables in the order used for every vector and matrix below.
    ov_types : tuple of str
        ``"ordered"`` or ``"numeric"`` per variable.
    nlevels : tuple of int
        Number of (observed) categories per variable, 0 for numeric ones.
    levels : tuple of tuple
        The observed category values in order (empty for numeric variables).
    th : ndarray
        lavaan's ``th``: thresholds of every ordered variable in order; for a numeric variable its
        mean (so ``wls_obs`` holds ``-th`` there).
    th_names : tuple of str
        ``x|t1, x|t2, ...`` (``x`` for a numeric variable).
    th_idx : tuple of int
        lavaan's ``th.idx``: 1-based variable number of each threshold, 0 for numeric means.
    cor : ndarray (p, p)
        Polychoric / polyserial / Pearson correlation matrix.
    cov : ndarray (p, p)
        ``cor`` rescaled by the standard deviations of the numeric variables (lavaan's ``cov``).
    mean : ndarray (p,)
        0 for ordered variables, the sample mean for numeric ones.
    var : ndarray (p,)
        1 for ordered variables, the ML (divisor n) variance for numeric ones.
    wls_obs : ndarray (m,)
        The moment vector ``s`` (see the module docstring for its order).
    wls_obs_names : tuple of str
        lavaan's names of ``wls_obs`` (``A1|t1``, ``C1~1``, ``C1~~C1``, ``A1~~A2``, ...).
    NACOV : ndarray (m, m)
        ``lavInspect(fit, "gamma")``: ``n`` times the asymptotic covariance of ``wls_obs``.
    WLS_V : ndarray (m, m)
        DWLS weight ``diag(1 / diag(NACOV))`` (``lavInspect(fit, "wls.v")``).
    zero_cell_tables : tuple of (str, str)
        Pairs of ordered variables whose bivariate table has an empty cell.
    warnings : tuple of str
    """

    group: str | None
    n: int
    ov_names: tuple[str, ...]
    ov_types: tuple[str, ...]
    nlevels: tuple[int, ...]
    levels: tuple[tuple, ...]
    th: np.ndarray
    th_names: tuple[str, ...]
    th_idx: tuple[int, ...]
    cor: np.ndarray
    cov: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    wls_obs: np.ndarray
    wls_obs_names: tuple[str, ...]
    NACOV: np.ndarray | None
    WLS_V: np.ndarray | None
    zero_cell_tables: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        """Equal when the JSON forms are equal (arrays compared element by element)."""
        return _json_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def WLS_VD(self) -> np.ndarray | None:
        """Diagonal of `WLS_V` (lavaan's ``WLS.VD``)."""
        return None if self.WLS_V is None else np.diag(self.WLS_V).copy()

    @property
    def WLS_W_full(self) -> np.ndarray | None:
        """Full WLS weight matrix ``NACOV^-1`` (estimator ``"WLS"``)."""
        return None if self.NACOV is None else np.linalg.inv(self.NACOV)

    @property
    def ACOV(self) -> np.ndarray | None:
        """Finite-sample covariance of ``wls_obs``: ``NACOV / n``."""
        return None if self.NACOV is None else self.NACOV / self.n

    @property
    def nth(self) -> int:
        return len(self.th)

    def thresholds_frame(self) -> pd.DataFrame:
        """Thresholds as a DataFrame with columns ``lhs op rhs est`` (``x | t1``)."""
        rows = [(nm.split("|")[0], "|", nm.split("|")[1], float(t))
                for nm, t in zip(self.th_names, self.th) if "|" in nm]
        return pd.DataFrame(rows, columns=["lhs", "op", "rhs", "est"])

    def cor_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cor, index=list(self.ov_names), columns=list(self.ov_names))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SampleStatsOrdinal":
        d = from_jsonable(dict(d))
        mats = {"th", "cor", "cov", "mean", "var", "wls_obs", "NACOV", "WLS_V"}
        kw = {}
        for k in cls.__dataclass_fields__:
            v = d.get(k)
            if k in mats:
                kw[k] = None if v is None else _arr(v)
            elif k in ("ov_names", "ov_types", "th_names", "wls_obs_names", "warnings"):
                kw[k] = tuple(v)
            elif k in ("nlevels", "th_idx"):
                kw[k] = tuple(int(x) for x in v)
            elif k == "levels":
                kw[k] = tuple(tuple(x) for x in v)
            elif k == "zero_cell_tables":
                kw[k] = tuple(tuple(x) for x in v)
            else:
                kw[k] = v
        return cls(**kw)

    def summary(self) -> Table:
        frame = pd.DataFrame({"name": list(self.wls_obs_names), "est": self.wls_obs})
        if self.NACOV is not None:
            frame["se"] = np.sqrt(np.diag(self.NACOV) / self.n)
        title = "Sample thresholds and correlations (two-step)"
        if self.group is not None:
            title += f", group {self.group}"
        return Table(title, frame, notes=(f"n = {self.n}",) + tuple(self.warnings), digits=4)


# --------------------------------------------------------------------------------------------
# missing-data part: patterns and the EM saturated model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatternBlock:
    """Patterns sharing the same number of observed variables ``q`` (stacked for batching).

    Attributes
    ----------
    obs : (K, q) int, observed-variable indices of each pattern (sorted).
    n : (K,) int, rows per pattern.
    mean : (K, q) pattern means.  cov : (K, q, q) pattern covariances (divisor n_k).
    rows : (m,) int, positions (in the group's retained rows) of the rows of this block.
    row_pattern : (m,) int, the block-local pattern of each row.
    xo : (m, q) the observed values of those rows.
    """

    obs: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    rows: np.ndarray
    row_pattern: np.ndarray
    xo: np.ndarray

    @property
    def q(self) -> int:
        return int(self.obs.shape[1])


@dataclass(frozen=True)
class MissingPatterns:
    """One group's data organised by missing-data pattern (`missing_patterns`).

    Attributes
    ----------
    p : number of variables.  n : number of retained rows (at least one observed value).
    n_empty : rows dropped because every value was missing.
    masks : (K, p) bool, observed-variable mask of each pattern; counts : (K,) rows per pattern.
    blocks : tuple of PatternBlock, grouped by number of observed variables.
    kept : (n,) int, positions of the retained rows in the input.
    """

    p: int
    n: int
    n_empty: int
    masks: np.ndarray
    counts: np.ndarray
    blocks: tuple
    kept: np.ndarray
    _X: np.ndarray = field(repr=False, default=None)

    @property
    def npatterns(self) -> int:
        return int(self.masks.shape[0])

    def available_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Available-case means and variances (divisor n_j) of each variable."""
        X = self._X
        return np.nanmean(X, axis=0), np.nanvar(X, axis=0)


def missing_patterns(X: np.ndarray) -> MissingPatterns:
    """Group the rows of ``X`` (NaN = missing) by missing-data pattern.

    Returns
    -------
    MissingPatterns
        Patterns ordered by first appearance; rows without any observed value are dropped
        (``n_empty``), as lavaan does.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"missing_patterns: X must be a 2-d array (n x p); got shape {X.shape}.")
    if np.isinf(X).any():
        raise ValueError("missing_patterns: X contains infinite values; use NaN for missing.")
    obs = ~np.isnan(X)
    keep = obs.any(axis=1)
    kept = np.flatnonzero(keep)
    Xk, Ok = X[keep], obs[keep]
    n, p = Xk.shape
    if n == 0:
        raise ValueError("missing_patterns: every row is empty (all values missing).")
    masks, first, inv, counts = np.unique(Ok, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    inv = inv.ravel()
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    masks, counts, inv = masks[order], counts[order], rank[inv]
    q_of = masks.sum(axis=1)
    blocks = []
    for q in np.unique(q_of)[::-1]:
        pids = np.flatnonzero(q_of == q)
        local = np.full(masks.shape[0], -1)
        local[pids] = np.arange(pids.size)
        obs_idx = np.stack([np.flatnonzero(masks[k]) for k in pids])
        rows = np.flatnonzero(np.isin(inv, pids))
        rp = local[inv[rows]]
        xo = np.take_along_axis(Xk[rows], obs_idx[rp], axis=1)
        nk = counts[pids]
        sums = np.zeros((pids.size, q))
        np.add.at(sums, rp, xo)
        mean = sums / nk[:, None]
        dev = xo - mean[rp]
        cov = np.zeros((pids.size, q, q))
        np.add.at(cov, rp, dev[:, :, None] * dev[:, None, :])
        cov /= nk[:, None, None]
        blocks.append(PatternBlock(obs=obs_idx, n=nk, mean=mean, cov=cov, rows=rows,
                                   row_pattern=rp, xo=xo))
    return MissingPatterns(p=p, n=n, n_empty=int((~keep).sum()), masks=masks, counts=counts,
                           blocks=tuple(blocks), kept=kept, _X=Xk)


@dataclass(frozen=True)
class H1Result:
    """EM estimates of the saturated model: ``cov`` (p x p), ``mean`` (p,), ``logl``
    (lavaan ``unrestricted.logl``), ``iterations``, ``converged``."""

    cov: np.ndarray
    mean: np.ndarray
    logl: float
    iterations: int
    converged: bool

    def to_dict(self) -> dict:
        return to_jsonable({"cov": self.cov, "mean": self.mean, "logl": self.logl,
                            "iterations": self.iterations, "converged": self.converged})

    @classmethod
    def from_dict(cls, d: dict) -> "H1Result":
        return cls(cov=np.asarray(d["cov"], float), mean=np.asarray(d["mean"], float),
                   logl=float(d["logl"]), iterations=int(d["iterations"]),
                   converged=bool(d["converged"]))

    def summary(self) -> Table:
        return Table("Saturated (h1) model by EM",
                     pd.DataFrame({"statistic": ["logl", "iterations"],
                                   "value": [self.logl, float(self.iterations)]}), digits=4)


# --------------------------------------------------------------------------------------------
# two-level part: within and between statistics
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterStats:
    """Sufficient statistics of clustered data for the two-level normal likelihood.

    Attributes
    ----------
    ov_names : tuple of str
    N, J : int
        Number of level-1 units (teachers) and clusters (schools).
    W : ndarray (p, p)
        Pooled within sums of squares and cross-products sum_j sum_i (y_ij - ybar_j)(..)'.
    sizes : ndarray (K,)
        The distinct cluster sizes n_k.
    counts : ndarray (K,)
        Number of clusters m_k of each size.
    means : ndarray (K, p)
        Mean over clusters of size n_k of the cluster means.
    covs : ndarray (K, p, p)
        Covariance (divisor m_k) of those cluster means.
    grand_mean : ndarray (p,)
    """

    ov_names: tuple
    N: int
    J: int
    W: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    grand_mean: np.ndarray
    cluster_means: np.ndarray
    cluster_sizes: np.ndarray
    YY: np.ndarray

    @property
    def p(self) -> int:
        return len(self.ov_names)

    @property
    def S_PW(self) -> np.ndarray:
        """Pooled within covariance W / (N - J)."""
        return self.W / (self.N - self.J)


def cluster_stats_from(d: SemData) -> ClusterStats:
    """`ClusterStats` of the single group of a data step with ``cluster=``."""
    Y = d.blocks[0]
    _, inv = np.unique(d.clusters[0], return_inverse=True)
    nj = np.bincount(inv)
    J, N = len(nj), len(Y)
    variables = d.ov
    cm = np.vstack([np.bincount(inv, weights=Y[:, v]) for v in range(Y.shape[1])]).T / nj[:, None]
    R = Y - cm[inv]
    W = R.T @ R
    sizes, sinv, counts = np.unique(nj, return_inverse=True, return_counts=True)
    p = len(variables)
    means = np.zeros((len(sizes), p))
    covs = np.zeros((len(sizes), p, p))
    for k in range(len(sizes)):
        M = cm[sinv == k]
        means[k] = M.mean(axis=0)
        D = M - means[k]
        covs[k] = D.T @ D / len(M)
    return ClusterStats(tuple(variables), int(N), int(J), W, sizes.astype(float),
                        counts.astype(float), means, covs, Y.mean(axis=0), cm, nj.astype(float),
                        Y.T @ Y)


# --------------------------------------------------------------------------------------------
# the sample statistics of every estimator
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GroupStats:
    """The sample statistics of one group: moments, and the optional parts an estimator needs.

    Attributes
    ----------
    n : int
        Number of observations used (lavaan's ``nobs``).
    cov : ndarray (p, p)
        Sample covariance with divisor N (lavaan's ``sample.cov``); with ordered indicators the
        polychoric correlations rescaled to the numeric variables' variances.
    mean : ndarray (p,)
    data : ndarray (n, p) or None
        Raw rows, kept only when an estimator needs them (MLR); None otherwise.
    ov_names : tuple of str
    group : str or None
        The group label (None in a single-group analysis).
    ordinal : SampleStatsOrdinal or None
        Thresholds, polychoric correlations and their asymptotic covariance (WLSMV/ULSMV).
    patterns : MissingPatterns or None
        Missing-data patterns (FIML).
    h1 : H1Result or None
        The saturated model by EM on ``patterns`` (FIML); ``cov``/``mean`` are then its
        estimates.
    cluster : ClusterStats or None
        Within and between statistics (two-level ML).
    """

    n: int
    cov: np.ndarray
    mean: np.ndarray
    data: np.ndarray | None = None
    ov_names: tuple = ()
    group: str | None = None
    ordinal: SampleStatsOrdinal | None = None
    patterns: MissingPatterns | None = None
    h1: H1Result | None = None
    cluster: ClusterStats | None = None

    @functools.cached_property
    def cov_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``cov``, ascending (computed once: the positive-definiteness checks of
        the data step and the ML objective's log|S| share them)."""
        return np.linalg.eigvalsh(self.cov)

    @classmethod
    def from_data(cls, x: np.ndarray, ov_names, *, keep_data: bool = False,
                  **parts: Any) -> "GroupStats":
        """Moments of the complete rows ``x`` (and any optional ``parts``)."""
        x = np.asarray(x, float)
        n = x.shape[0]
        mean = x.mean(axis=0)
        xc = x - mean
        cov = xc.T @ xc / n
        return cls(n, cov, mean, x if keep_data else None, tuple(ov_names), **parts)

    @classmethod
    def from_ordinal(cls, o: SampleStatsOrdinal) -> "GroupStats":
        """A group whose moments are those of its two-step ordinal statistics."""
        return cls(o.n, o.cov, o.mean, None, tuple(o.ov_names), o.group, ordinal=o)

    def to_dict(self) -> dict:
        """JSON form: the ordinal part's fields when there is one (they include n, cov, mean and
        ov_names), else the moments."""
        if self.ordinal is not None:
            return self.ordinal.to_dict()
        return to_jsonable({"n": self.n, "cov": self.cov, "mean": self.mean,
                            "ov_names": list(self.ov_names), "group": self.group})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GroupStats":
        if "wls_obs" in d:
            return cls.from_ordinal(SampleStatsOrdinal.from_dict(d))
        d = from_jsonable(dict(d))
        return cls(int(d["n"]), _arr(d["cov"]), _arr(d["mean"]), None, tuple(d["ov_names"]),
                   d.get("group"))


@dataclass(frozen=True, eq=False)
class SampleStats:
    """Sample statistics of all groups (lavaan's ``lavsamplestats``).

    Attributes
    ----------
    groups : sequence of GroupStats
    missing : str
        The missing-data method the statistics were computed under.
    group_var : str or None
        The grouping column.
    """

    groups: Sequence[GroupStats] = field(default_factory=list)
    missing: str = "listwise"
    group_var: str | None = None

    def __eq__(self, other: object) -> bool:
        """Equal when the JSON forms are equal."""
        return _json_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def ntotal(self) -> int:
        return int(sum(g.n for g in self.groups))

    @property
    def ngroups(self) -> int:
        return len(self.groups)

    @property
    def group_labels(self) -> tuple:
        return tuple(g.group for g in self.groups)

    @property
    def ordinal(self) -> tuple[SampleStatsOrdinal, ...]:
        """The ordinal part of every group (each must have one)."""
        out = tuple(g.ordinal for g in self.groups)
        if any(o is None for o in out):
            raise ValueError("these sample statistics have no ordinal part (thresholds, "
                             "polychoric correlations); they come from "
                             "instrument.sem.polychoric.sample_stats_ordinal")
        return out

    def to_dict(self) -> dict:
        return {"groups": [g.to_dict() for g in self.groups], "missing": self.missing,
                "group_var": self.group_var}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SampleStats":
        return cls(groups=tuple(GroupStats.from_dict(g) for g in d["groups"]),
                   missing=d.get("missing", "listwise"), group_var=d.get("group_var"))

    def summary(self) -> Table:
        rows = [(g.group, g.n, len(g.ov_names),
                 g.ordinal.nth if g.ordinal is not None else 0,
                 len(g.ordinal.wls_obs) if g.ordinal is not None else np.nan)
                for g in self.groups]
        title = ("Categorical sample statistics" if all(g.ordinal is not None for g in self.groups)
                 else "Sample statistics")
        return Table(title, pd.DataFrame(rows, columns=["group", "n", "nvar", "nth", "nstat"]))
