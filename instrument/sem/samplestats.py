"""Sample statistics per group: n, covariance (divisor N), mean (lavaan's ``lavsamplestats``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroupStats", "SampleStats", "data_warnings"]


@dataclass(frozen=True)
class GroupStats:
    """Moments of one group.

    Attributes
    ----------
    n : int
        Number of (complete) observations.
    cov : ndarray (p, p)
        Sample covariance with divisor N (lavaan's ``sample.cov``).
    mean : ndarray (p,)
    data : ndarray (n, p) or None
        Raw rows, kept only when an estimator needs them (MLR, FIML); None otherwise.
    ov_names : tuple of str
    """

    n: int
    cov: np.ndarray
    mean: np.ndarray
    data: np.ndarray | None = None
    ov_names: tuple = ()

    @classmethod
    def from_data(cls, x: np.ndarray, ov_names, *, keep_data: bool = False) -> "GroupStats":
        x = np.asarray(x, float)
        n = x.shape[0]
        mean = x.mean(axis=0)
        xc = x - mean
        cov = xc.T @ xc / n
        return cls(n, cov, mean, x if keep_data else None, tuple(ov_names))


@dataclass(frozen=True)
class SampleStats:
    """Sample statistics of all groups (lavaan's ``lavsamplestats``)."""

    groups: list = field(default_factory=list)

    @property
    def ntotal(self) -> int:
        return int(sum(g.n for g in self.groups))

    @property
    def ngroups(self) -> int:
        return len(self.groups)


def data_warnings(stats: SampleStats, labels) -> list[str]:
    """Problems of the sample statistics that lavaan warns about, one message each: items with
    zero variance, n <= p, and a sample covariance matrix that is not positive definite."""
    out = []
    for gs, lab in zip(stats.groups, labels):
        gname = f" in group {lab}" if len(stats.groups) > 1 else ""
        p = gs.cov.shape[0]
        const = [v for v, s in zip(gs.ov_names, np.diag(gs.cov)) if s <= 0]
        if const:
            out.append(f"variable(s) {const} have zero variance{gname}")
        if gs.n <= p:
            out.append(f"too few observations{gname}: n = {gs.n} <= number of variables p = {p}")
        ev = np.linalg.eigvalsh(gs.cov)
        if ev[0] <= 1e-10 * max(ev[-1], 1e-300):
            out.append(f"the sample covariance matrix{gname} is not positive definite "
                       f"(smallest eigenvalue {ev[0]:.3g})")
    return out
