"""Populations a Monte Carlo study draws its replications from.

A population has one method, ``draw(rng)``, that returns one simulated data set from a
`numpy.random.Generator`. Two kinds exist:

* `MomentPopulation`: multivariate normal (or multivariate t) data with given means and
  covariances, optionally cut into ordered categories at given thresholds: the latent-response
  model of Muthen (1984). `MomentPopulation.from_fit` takes a fitted CFA's implied moments and
  (for WLSMV fits) its thresholds, so a fitted model becomes a population.
* `PlanPopulation`: a population plan (``analyses/*.yaml``) drawn with `instrument.simulate`;
  each draw is a full `Simulation` (both forms, outcomes and the truth).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["MomentPopulation", "PlanPopulation", "derived_seed"]


def derived_seed(rng: np.random.Generator) -> int:
    """A non-negative 63-bit integer seed drawn from ``rng`` (for functions that take an int)."""
    return int(rng.integers(0, 2**63 - 1, dtype=np.int64))


@dataclass(frozen=True)
class MomentPopulation:
    """Normal (or t) data with given moments, optionally cut into ordered categories.

    Attributes
    ----------
    ov_names : tuple of str
        Column names of the drawn data.
    cov : ndarray (p, p)
        Population covariance (for ordered variables: of the latent responses).
    n : int
        Rows per replication.
    mean : ndarray (p,) or None
        Population means (zero when None).
    thresholds : dict, optional
        ``{variable: (tau_1, ..., tau_{K-1})}``: the variable's latent response is cut at these
        thresholds into categories ``1..K`` (``1 + #{k: x* > tau_k}``).
    t_df : float, optional
        Draw from the multivariate t with this many degrees of freedom (> 4), scaled so that its
        covariance is ``cov``: excess kurtosis 6 / (t_df - 4) in every variable. Normal when None.
    """

    ov_names: tuple
    cov: np.ndarray
    n: int
    mean: np.ndarray | None = None
    thresholds: Mapping[str, Sequence[float]] = field(default_factory=dict)
    t_df: float | None = None

    def __post_init__(self):
        cov = np.asarray(self.cov, float)
        p = len(self.ov_names)
        if cov.shape != (p, p):
            raise ValueError(f"cov= must be {p} x {p} (one row per name in ov_names); "
                             f"got shape {cov.shape}")
        if int(self.n) < 2:
            raise ValueError(f"n= must be an integer >= 2; got {self.n!r}")
        bad = [v for v in self.thresholds if v not in self.ov_names]
        if bad:
            raise ValueError(f"thresholds= names {bad} are not in ov_names")
        if self.t_df is not None and not self.t_df > 4:
            raise ValueError(f"t_df= must be > 4 (finite kurtosis); got {self.t_df!r}")
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "_chol", np.linalg.cholesky(cov))

    def draw(self, rng: np.random.Generator) -> pd.DataFrame:
        """One data set of ``n`` rows: ``mean + L z`` (z standard normal, or scaled t)."""
        p = len(self.ov_names)
        z = rng.standard_normal((int(self.n), p))
        if self.t_df is not None:
            w = rng.chisquare(self.t_df, size=(int(self.n), 1))
            z *= np.sqrt((self.t_df - 2.0) / w)
        x = z @ self._chol.T
        if self.mean is not None:
            x += np.asarray(self.mean, float)
        df = pd.DataFrame(x, columns=list(self.ov_names))
        for v, tau in self.thresholds.items():
            df[v] = 1 + np.searchsorted(np.asarray(tau, float), df[v].to_numpy(), side="left")
        return df

    def describe(self) -> dict:
        """Plain-data description (for provenance and resuming a study)."""
        return {"kind": "moments", "ov_names": list(self.ov_names), "n": int(self.n),
                "cov": self.cov, "mean": None if self.mean is None else np.asarray(self.mean),
                "thresholds": {k: list(map(float, v)) for k, v in self.thresholds.items()},
                "t_df": self.t_df}

    def with_n(self, n: int) -> "MomentPopulation":
        return MomentPopulation(self.ov_names, self.cov, int(n), self.mean,
                                dict(self.thresholds), self.t_df)

    @classmethod
    def from_fit(cls, fit: Any, n: int | None = None, *, group: int = 0) -> "MomentPopulation":
        """The fitted model's implied moments (and thresholds) as a population.

        Parameters
        ----------
        fit : CFAResult
            ML/MLR fits give the implied covariance and means; WLSMV fits give the implied
            latent-response correlations and the estimated thresholds (rows ``op == "|"``).
        n : int, optional
            Rows per replication; the fit's N (of ``group``) when None.
        """
        imp = fit.implied[group]
        ov = tuple(fit.ov_names)
        cov = np.asarray(imp["cov"], float)
        mean = imp.get("mean")
        est = fit.estimates
        thr = est[est["op"] == "|"]
        if "group" in thr.columns and len(thr):
            thr = thr[thr["group"] == thr["group"].min() + group]
        thresholds = {}
        for v in ov:
            rows = thr[thr["lhs"] == v]
            if len(rows):
                order = rows["rhs"].str.extract(r"(\d+)$")[0].astype(int).to_numpy()
                thresholds[v] = tuple(rows["est"].to_numpy(float)[np.argsort(order)])
        if thresholds:
            mean = None
        if n is None:
            n = int(fit.sample[group]["n"])
        return cls(ov, cov, int(n), None if mean is None else np.asarray(mean, float),
                   thresholds)


@dataclass(frozen=True)
class PlanPopulation:
    """A population plan drawn with `instrument.simulate` (one `Simulation` per draw).

    Attributes
    ----------
    plan : str, path or mapping
        The population plan (see ``analyses/default.yaml``).
    overrides : dict
        Values set in the plan's ``simulation`` section before drawing, keyed by dotted path
        (``{"schools.n": 200, "forms.teacher.respondents.mean": 15}``): the design cells of a
        power study.
    """

    plan: Any = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> Any:
        """The checked plan with the overrides applied (loaded once per population object)."""
        cached = self.__dict__.get("_spec")
        if cached is not None:
            return cached
        from instrument.population import check_plan, load_plan
        p = load_plan(self.plan)
        if self.overrides:
            raw = copy.deepcopy(dict(p.spec))
            for key, value in self.overrides.items():
                node = raw["simulation"]
                parts = key.split(".")
                for k in parts[:-1]:
                    if not isinstance(node.get(k), dict):
                        raise ValueError(f"overrides= key {key!r}: simulation.{k} is not a "
                                         f"section of the plan {p.path}")
                    node = node[k]
                node[parts[-1]] = value
            p = check_plan(raw, source=p.path)
        object.__setattr__(self, "_spec", p)
        return p

    def __getstate__(self):
        return {"plan": self.plan, "overrides": self.overrides}

    def __setstate__(self, state):
        object.__setattr__(self, "plan", state["plan"])
        object.__setattr__(self, "overrides", state["overrides"])

    def bank_path(self) -> str | None:
        """The plan's item bank (``bank:``, relative to the plan file's folder, as
        `instrument validate` reads it), or None for the shipped bank."""
        where = self.spec().spec.get("bank")
        if not where:
            return None
        from instrument.plans import plan_dir
        return str(plan_dir(self.spec().path) / where)

    def bank(self) -> Any:
        """The plan's item bank (`bank_path`), loaded once per population object (and per
        process)."""
        cached = self.__dict__.get("_bank")
        if cached is None:
            from instrument.bank import load_bank
            cached = load_bank(self.bank_path())
            object.__setattr__(self, "_bank", cached)
        return cached

    def draw(self, rng: np.random.Generator) -> Any:
        from instrument.simulate import simulate
        return simulate(self.spec(), seed=derived_seed(rng), bank=self.bank())

    def describe(self) -> dict:
        p = self.spec()
        return {"kind": "plan", "plan": p.name, "path": p.path, "overrides": dict(self.overrides)}
