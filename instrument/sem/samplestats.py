"""Sample statistics per group: n, covariance (divisor N), mean (lavaan's ``lavsamplestats``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroupStats", "SampleStats"]


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

