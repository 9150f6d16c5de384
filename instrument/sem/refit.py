"""Refit one built CFA to many data sets: the Monte Carlo path of `cfa` for ML.

`cfa()` parses the syntax, builds the parameter table and the model matrices, computes the sample
moments, optimises and assembles a full `CFAResult`. A Monte Carlo study fits the same model to
hundreds of data sets, so `Refit` runs the first steps once and, per data set, only the stages that
depend on the data: sample moments, the ML optimiser, expected-information standard errors and the
fit measures a study records (chi-square, CFI, RMSEA, SRMR). Every number comes from the same
functions `cfa()` uses (`MLObjective`, `optimize`, `expected_information`, `instrument.sem.fit`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.sem.estimators.ml import MLObjective, expected_information
from instrument.sem.optim import optimize, single_threaded_blas
from instrument.sem.model import Model
from instrument.sem.samplestats import GroupStats, SampleStats
from instrument.sem.fit import cfi as _cfi
from instrument.sem.fit import chisq as _chisq
from instrument.sem.fit import rmsea as _rmsea
from instrument.sem.fit import srmr as _srmr
from instrument.sem.partable import build_partable, model_variables
from instrument.sem.syntax import parse_syntax

__all__ = ["Refit", "RefitResult"]


@dataclass(frozen=True)
class RefitResult:
    """One refit: free parameters ``x`` (in `Refit.free` order), their standard errors ``se``,
    ``converged``, ``iterations`` and ``fit_measures`` (``chisq df pvalue cfi rmsea srmr``)."""

    x: np.ndarray
    se: np.ndarray
    converged: bool
    iterations: int
    fit_measures: Mapping[str, float]


class Refit:
    """A single-group ML CFA built once and refitted to new data sets.

    Parameters
    ----------
    model : str
        lavaan syntax (as for `cfa`).
    ov_names : sequence of str, optional
        Column order of the data passed to `fit` (the model's observed variables when None).
    std_lv : bool
        Identify factors by unit variances instead of marker loadings (lavaan ``std.lv``).
    start : {"default", "population"} or ndarray
        Starting values of every refit: ``"default"`` computes `cfa`'s starting values from each
        data set; an array (or `start_from`) starts every refit from the same point, e.g. the
        population solution, so results do not depend on the order of the refits.

    Notes
    -----
    Estimates, standard errors and fit measures equal ``cfa(model, data, estimator="ML")`` (no
    mean structure, listwise complete data): same objective, optimiser, information matrix and
    fit-measure functions. ``se=False`` in `fit` skips the information matrix.
    """

    def __init__(self, model: str, ov_names: Sequence[str] | None = None, *,
                 std_lv: bool = False, start: str | np.ndarray = "default"):
        rows = parse_syntax(model)
        if any(r.op == "|" for r in rows):
            raise NotImplementedError("Refit fits continuous indicators by ML; use cfa() with "
                                      "ordered= for thresholds")
        ov, _ = model_variables(rows)
        self.ov_names = list(ov if ov_names is None else ov_names)
        missing = [v for v in ov if v not in self.ov_names]
        if missing:
            raise ValueError(f"ov_names= lacks the model's observed variables {missing}")
        self.pt = build_partable(rows, ngroups=1, group_labels=["1"], ov_names=self.ov_names,
                                 meanstructure=False, std_lv=std_lv, group_equal=(),
                                 group_partial=())
        self.model = Model.from_partable(self.pt)
        self._cols = [self.ov_names.index(v) for v in self.model.ov_names]
        p = self.model.p
        self.df = p * (p + 1) // 2 - self.model.nx
        self.baseline_df = p * (p - 1) // 2
        self.start = start

    @property
    def free(self) -> pd.DataFrame:
        """``lhs op rhs`` of each free parameter, in the order of `RefitResult.x`."""
        f = self.pt.frame
        return f.iloc[self.model.x_rows][["lhs", "op", "rhs"]].reset_index(drop=True)

    def start_from(self, cov: np.ndarray) -> np.ndarray:
        """The ML solution for the population covariance ``cov`` (data-column order): the
        parameter values every refit can start from."""
        c = np.asarray(cov, float)[np.ix_(self._cols, self._cols)]
        stats = SampleStats([GroupStats(n=1000, cov=c, mean=np.zeros(len(self._cols)),
                                        ov_names=tuple(self.model.ov_names))])
        with single_threaded_blas():
            return optimize(MLObjective(self.model, stats), self.model.start_x(stats)).x

    def fit(self, data: pd.DataFrame | np.ndarray, *, se: bool = True) -> RefitResult:
        """Fit the model to one data set (rows with a missing value are dropped)."""
        x = data[self.ov_names].to_numpy(float) if isinstance(data, pd.DataFrame) \
            else np.asarray(data, float)
        x = x[:, self._cols]
        x = x[~np.isnan(x).any(axis=1)]
        with single_threaded_blas():
            gs = GroupStats.from_data(x, self.model.ov_names)
            stats = SampleStats([gs])
            obj = MLObjective(self.model, stats)
            x0 = self.model.start_x(stats) if isinstance(self.start, str) \
                else np.asarray(self.start, float)
            res = optimize(obj, x0)
            nan = np.full(self.model.nx, np.nan)
            se_x = nan
            if se:
                try:
                    info = expected_information(self.model, res.x, stats)
                    se_x = np.sqrt(np.clip(np.diag(np.linalg.inv(info)), 0, None) / obj.N)
                except np.linalg.LinAlgError:
                    se_x = nan
            fm = self._measures(obj, res.x, res.value, gs)
        return RefitResult(res.x, se_x, bool(res.converged), int(res.iterations), fm)

    def _measures(self, obj: MLObjective, x: np.ndarray, fval: float, gs: GroupStats) -> dict:
        if not obj.sample_pd:
            nan = math.nan
            return {"chisq": nan, "df": float(self.df), "pvalue": nan, "cfi": nan, "rmsea": nan,
                    "srmr": nan}
        chisq = obj.N * fval
        bl = _chisq.baseline_chisq(obj.S, obj.n)
        sigma = self.model.implied(x)[0].sigma
        return {"chisq": chisq, "df": float(self.df),
                "pvalue": _chisq.chisq_pvalue(chisq, self.df),
                "cfi": _cfi.cfi(chisq, self.df, bl, self.baseline_df),
                "rmsea": _rmsea.rmsea(chisq, self.df, obj.N),
                "srmr": _srmr.srmr([_srmr.srmr_group(gs.cov, sigma)[0]], [gs.n])}
