"""`CFAResult`: the plain-data result of `instrument.cfa()` (re-exported by `instrument.results`).

It holds numbers, strings, tuples and DataFrames only (no reference to the data); methods that
need the model (modification indices, residuals, factor scores) rebuild it from the stored
parameter table and sample moments.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.results import Meta, Table, from_jsonable, to_jsonable
from instrument.sem.samplestats import SampleStats

__all__ = ["CFAResult"]

_EST_COLS = ("lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue", "ci.lower",
             "ci.upper", "std.lv", "std.all")
_SUMMARY_FIT = ("npar", "ntotal", "chisq", "df", "pvalue", "baseline.chisq", "baseline.df",
                "cfi", "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue",
                "srmr", "logl", "aic", "bic", "bic2")
_SUMMARY_FIT_ROBUST = ("chisq.scaled", "df.scaled", "pvalue.scaled", "chisq.scaling.factor",
                       "cfi.scaled", "tli.scaled", "rmsea.scaled", "cfi.robust", "tli.robust",
                       "rmsea.robust", "rmsea.ci.lower.robust", "rmsea.ci.upper.robust")


@dataclass(frozen=True)
class CFAResult:
    """Result of `instrument.cfa()` (lavaan's fitted object as plain data).

    Attributes
    ----------
    partable : DataFrame
        lavaan's parameter table with ``est``, ``se`` and ``start`` filled in.
    fit_measures : dict
        lavaan's ``fitMeasures()`` names (see `instrument.sem.fit.FIT_MEASURE_NAMES`).
    estimates : DataFrame
        ``lhs op rhs group label est se z pvalue ci.lower ci.upper std.lv std.all``
        (lavaan's ``parameterEstimates()`` plus ``standardizedSolution()``'s est.std as std.all).
    converged : bool
    iterations : int
    warnings : tuple of str
        Problems found (non-convergence, Heywood cases, non-PD matrices, singular information,
        n <= p, constant variables).
    meta : Meta
        Options used, data hash, version.
    implied : list of dict
        Per group ``cov`` (p x p) and ``mean`` (p, or None).
    sample : list of dict
        Per group ``n``, ``cov`` (divisor N) and ``mean``.
    vcov : DataFrame
        Covariance matrix of the unique free parameters (column ``name`` plus one per parameter).
    ov_names, lv_names, group_labels : tuple
    constraints, defined : tuple
        The ``==`` constraints as (lhs, rhs) and the ``:=`` parameters as (name, expression)
        (their estimates are the group-0 rows of `estimates`).
    categorical_stats : SampleStats or None
        WLSMV/ULSMV fits: the sample thresholds, polychoric correlations, their asymptotic
        covariance and weight per group (what difference and score tests refit against).
    srmr_group : tuple of float
        SRMR of each group (the overall value is their n-weighted mean).
    """

    partable: pd.DataFrame
    fit_measures: Mapping[str, float]
    estimates: pd.DataFrame
    converged: bool
    iterations: int
    warnings: tuple
    meta: Meta
    implied: list
    sample: list
    vcov: pd.DataFrame
    ov_names: tuple = ()
    lv_names: tuple = ()
    group_labels: tuple = ()
    constraints: tuple = ()
    srmr_group: tuple = ()
    missing_data: tuple = ()   # FIML: per group {patterns, items, coverage, npatterns, n_empty}
    defined: tuple = ()
    categorical_stats: SampleStats | None = None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """JSON-serialisable dict (`from_dict` restores an equal result)."""
        return to_jsonable({
            "type": "CFAResult", "partable": self.partable, "fit_measures": dict(self.fit_measures),
            "estimates": self.estimates, "converged": self.converged,
            "iterations": self.iterations, "warnings": list(self.warnings),
            "meta": self.meta.to_dict(), "implied": self.implied, "sample": self.sample,
            "vcov": self.vcov, "ov_names": list(self.ov_names), "lv_names": list(self.lv_names),
            "group_labels": list(self.group_labels),
            "constraints": [list(c) for c in self.constraints],
            "defined": [list(c) for c in self.defined],
            "srmr_group": list(self.srmr_group),
            "missing_data": [dict(m) for m in self.missing_data],
            "categorical_stats": (None if self.categorical_stats is None
                                  else self.categorical_stats.to_dict())})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CFAResult":
        """Inverse of `to_dict`."""
        def frame(v):
            f = from_jsonable(v)
            for c in ("lhs", "op", "rhs", "label", "plabel", "name"):
                if c in f.columns:
                    f[c] = f[c].fillna("").astype(str)
            return f

        def mom(lst):
            out = []
            for g in lst:
                e = {}
                for k, v in g.items():
                    e[k] = np.asarray(v, float) if isinstance(v, list) else v
                out.append(e)
            return out

        fm = {k: (np.nan if v is None else v) for k, v in d["fit_measures"].items()}
        cstats = None
        if d.get("categorical_stats") is not None:
            cstats = SampleStats.from_dict(d["categorical_stats"])
        return cls(partable=frame(d["partable"]), fit_measures=fm, estimates=frame(d["estimates"]),
                   converged=bool(d["converged"]), iterations=int(d["iterations"]),
                   warnings=tuple(d["warnings"]), meta=Meta.from_dict(d["meta"]),
                   implied=mom(d["implied"]), sample=mom(d["sample"]), vcov=frame(d["vcov"]),
                   ov_names=tuple(d["ov_names"]), lv_names=tuple(d["lv_names"]),
                   group_labels=tuple(d["group_labels"]),
                   constraints=tuple(tuple(c) for c in d.get("constraints", [])),
                   defined=tuple(tuple(c) for c in d.get("defined", [])),
                   srmr_group=tuple(d.get("srmr_group", [])),
                   missing_data=tuple({k: from_jsonable(v) for k, v in m.items()}
                                      for m in d.get("missing_data", [])),
                   categorical_stats=cstats)

    def __eq__(self, other) -> bool:
        if not isinstance(other, CFAResult):
            return NotImplemented
        from instrument.results import dumps
        return dumps(self.to_dict()) == dumps(other.to_dict())

    __hash__ = None

    # ------------------------------------------------------------------ model rebuild
    def _no_categorical(self, what: str) -> None:
        """WLSMV/ULSMV fits (ordered indicators) do not support the ML post-estimation yet."""
        if str(self.meta.options.get("estimator", "ML")).upper() in ("WLSMV", "ULSMV"):
            raise NotImplementedError(
                f"{what}() is not available for {self.meta.options['estimator']} fits (ordered "
                "indicators); the standardized solution is in .estimates['std.all'] and the fit "
                "measures in .fit_measures.")

    def _rebuilt(self):
        from instrument.sem.model import Model
        from instrument.sem.samplestats import GroupStats, SampleStats
        from instrument.sem.partable import PARTABLE_COLUMNS, ParTable
        meanstructure = bool((self.partable["op"] == "~1").any())
        pt = ParTable(self.partable[list(PARTABLE_COLUMNS)].copy(), self.ov_names, self.lv_names,
                      len(self.group_labels), self.group_labels, meanstructure, self.constraints,
                      defined=self.defined)
        model = Model.from_partable(pt)
        x = model.partable_to_x(self.partable["est"].to_numpy(float))
        stats = SampleStats([GroupStats(int(s["n"]), np.asarray(s["cov"], float),
                                        np.asarray(s["mean"], float), None, self.ov_names)
                             for s in self.sample])
        return model, x, stats

    @property
    def ngroups(self) -> int:
        return len(self.group_labels)

    # ------------------------------------------------------------------ accessors
    def fitmeasures(self, names: Sequence[str] | str | None = None) -> dict:
        """Selected fit measures by lavaan name; unknown names raise ValueError."""
        from instrument.sem.fit import check_names
        if names is None:
            return dict(self.fit_measures)
        out = {}
        for n in check_names(names):
            out[n] = self.fit_measures.get(n, np.nan)
        return out

    @property
    def r2(self) -> dict | list:
        """R² of the observed (and endogenous latent) variables; a list of dicts per group."""
        from instrument.sem.post import r2
        if str(self.meta.options.get("estimator", "ML")).upper() in ("WLSMV", "ULSMV"):
            # latent responses: 1 - standardized residual variance (lavaan's R-square)
            e = self.estimates
            out = []
            for g in range(1, self.ngroups + 1):
                sel = e[(e["op"] == "~~") & (e["lhs"] == e["rhs"]) & (e["group"] == g)
                        & e["lhs"].isin(self.ov_names)]
                out.append({v: float(1.0 - s) for v, s in zip(sel["lhs"], sel["std.all"])})
            return out[0] if self.ngroups == 1 else out
        model, x, _ = self._rebuilt()
        out = r2(model, x)
        return out[0] if self.ngroups == 1 else out

    def residuals(self, type: str = "raw") -> dict | list:
        """Residual moments as DataFrames, ``{"cov": DataFrame, "mean": Series or None}``
        (a list per group with several groups).

        Parameters
        ----------
        type : {"raw", "cor.bentler", "cor.bollen", "standardized"}
            lavaan's ``residuals(fit, type=)``; "standardized" gives z statistics.
        """
        from instrument.sem.post import residuals
        self._no_categorical("residuals")
        model, x, stats = self._rebuilt()
        vcx = None
        if type == "standardized":
            vcx = self.vcov.drop(columns=["name"]).to_numpy(float)
        res = residuals(model, x, stats, type=type, vcov_x=vcx, ntotal=stats.ntotal)
        out = []
        for r in res:
            out.append({"cov": pd.DataFrame(r["cov"], index=self.ov_names, columns=self.ov_names),
                        "mean": None if r["mean"] is None else pd.Series(r["mean"],
                                                                         index=self.ov_names)})
        return out[0] if self.ngroups == 1 else out

    def standardized_solution(self, *, type: str = "std.all") -> pd.DataFrame:
        """lavaan's ``standardizedSolution()``: ``lhs op rhs group est.std se z pvalue ci.lower
        ci.upper`` with delta-method standard errors (95% intervals).

        Parameters
        ----------
        type : {"std.all", "std.lv"}
        """
        from instrument.sem.fit.dist import Z975, norm_sf

        from instrument.sem.post import standardized_se
        self._no_categorical("standardized_solution")
        model, x, _ = self._rebuilt()
        vcx = self.vcov.drop(columns=["name"]).to_numpy(float)
        from instrument.sem.optim import single_threaded_blas
        with single_threaded_blas():
            est, se = standardized_se(model, x, vcx, type=type)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, est / se, np.nan)
        q = Z975
        p = self.partable
        return pd.DataFrame({"lhs": p["lhs"].to_numpy(), "op": p["op"].to_numpy(),
                             "rhs": p["rhs"].to_numpy(), "group": p["group"].to_numpy(),
                             "est.std": est, "se": se, "z": z,
                             "pvalue": 2 * norm_sf(np.abs(z)),
                             "ci.lower": est - q * se, "ci.upper": est + q * se})

    def modindices(self, *, sort: bool = True, minimum_value: float = 0.0) -> pd.DataFrame:
        """Modification indices for fixed-to-zero loadings and residual covariances
        (lavaan ``modindices()``: columns ``lhs op rhs group mi epc sepc.lv sepc.all sepc.nox``).
        """
        from instrument.sem.post import modindices
        from instrument.sem.optim import single_threaded_blas
        self._no_categorical("modindices")
        model, x, stats = self._rebuilt()
        with single_threaded_blas():
            mi = modindices(model, x, stats,
                            likelihood=self.meta.options.get("likelihood", "normal"))
        mi = mi[mi["mi"] >= minimum_value]
        if sort:
            mi = mi.sort_values("mi", ascending=False, kind="stable")
        return mi.reset_index(drop=True)

    def factor_scores(self, data: pd.DataFrame, *, method: str = "regression") -> pd.DataFrame:
        """Factor scores for the rows of ``data`` (lavaan ``lavPredict(fit, method=)``).

        Parameters
        ----------
        data : DataFrame
            Must contain the observed variables (and the group column for multi-group fits).
            A row with missing values is scored from its answered variables when the fit used
            FIML (lavaan ``lavPredict``); after a listwise fit it gets NaN scores, and a
            warning says how many.
        method : {"regression", "Bartlett"}

        Returns
        -------
        DataFrame with one column per latent variable, indexed like ``data``.
        """
        from instrument.sem.post import factor_scores
        if method not in ("regression", "Bartlett"):
            raise ValueError(f"method= must be one of 'regression', 'Bartlett'; got {method!r}")
        missing = [v for v in self.ov_names if v not in data.columns]
        if missing:
            raise ValueError(f"data lacks the observed variable column(s) {missing}")
        self._no_categorical("factor_scores")
        model, x, stats = self._rebuilt()
        out = pd.DataFrame(np.nan, index=data.index, columns=list(self.lv_names))
        complete = data[list(self.ov_names)].notna().all(axis=1)
        fiml = self.meta.options.get("missing") == "fiml"
        # FIML fits score incomplete rows from their answered items (lavPredict); listwise fits
        # leave them NaN, and say so
        ok = data[list(self.ov_names)].notna().any(axis=1) if fiml else complete
        if not ok.all():
            warnings.warn(f"factor_scores: {int((~ok).sum())} of {len(ok)} rows have "
                          + ("no answered observed variable" if fiml else
                             "a missing value on an observed variable (a listwise fit)")
                          + " and get NaN scores"
                          + ("." if fiml else "; fit with missing='fiml' to score them from "
                             "their answered items."), UserWarning, stacklevel=2)
        group = self.meta.options.get("group")
        if self.ngroups > 1:
            gcol = data[group].astype(str)
            masks = [(ok & (gcol == lab)).to_numpy() for lab in self.group_labels]
        else:
            masks = [ok.to_numpy()]
        blocks = [data.loc[mk, list(self.ov_names)].to_numpy(float) for mk in masks]
        scores = factor_scores(model, x, blocks, stats, method=method)
        for mk, sc in zip(masks, scores):
            out.loc[mk, :] = sc
        return out

    # ------------------------------------------------------------------ display
    def summary(self) -> Table:
        """lavaan-style summary: a fit block then the parameter block (est, se, z, p, std)."""
        fm = self.fit_measures
        recs = []
        for k in _SUMMARY_FIT + _SUMMARY_FIT_ROBUST:
            if k in fm:
                recs.append({"section": "Fit", "parameter": k, "est": float(fm[k])})
        heads = {"=~": "Latent Variables", "~": "Regressions", "~~": "Variances/Covariances",
                 "~1": "Intercepts/Means", ":=": "Defined Parameters"}
        for _, r in self.estimates.iterrows():
            sec = heads.get(r["op"], r["op"])
            if self.ngroups > 1 and int(r["group"]) > 0:
                sec = f"{sec} [{self.group_labels[int(r['group']) - 1]}]"
            name = f"{r['lhs']} {r['op']} {r['rhs']}".strip()
            if r["label"]:
                name += f" ({r['label']})"
            fixed = not np.isfinite(r["z"])      # fixed parameters: no se/z/p, as lavaan prints
            recs.append({"section": sec, "parameter": name, "est": r["est"],
                         "se": np.nan if fixed else r["se"],
                         "z": r["z"], "pvalue": r["pvalue"], "std.lv": r["std.lv"],
                         "std.all": r["std.all"]})
        frame = pd.DataFrame(recs, columns=["section", "parameter", "est", "se", "z", "pvalue",
                                            "std.lv", "std.all"])
        if self.ngroups == 1:
            n = str(self.sample[0]["n"])
        else:
            n = ", ".join(f"{lab}: {s['n']}" for lab, s in zip(self.group_labels, self.sample))
        opts = self.meta.options
        notes = [f"Estimator {opts.get('estimator', 'ML')} ({opts.get('likelihood', 'normal')} "
                 f"likelihood{', missing = fiml' if opts.get('missing') == 'fiml' else ''}), "
                 f"{'converged' if self.converged else 'NOT converged'} after {self.iterations} "
                 f"iterations; N = {n}; information = {opts.get('information', 'expected')}, "
                 f"se = {opts.get('se', 'standard')}, test = {opts.get('test', 'standard')}."]
        if str(opts.get("estimator", "ML")).upper() in ("WLSMV", "ULSMV"):
            notes = [f"Estimator {opts['estimator']} ({opts.get('parameterization')} "
                     f"parameterization, missing = {opts.get('missing')}, se = robust.sem, test = "
                     f"scaled.shifted), {'converged' if self.converged else 'NOT converged'} "
                     f"after {self.iterations} iterations; N = {n}."]
            if opts.get("why"):
                notes.append(f"Why: {opts['why']}.")
        notes += [f"Warning: {w}" for w in self.warnings]
        est_name = str(opts.get("estimator", "ML")).upper()
        est_name = est_name if est_name in ("WLSMV", "ULSMV") else "ML"
        return Table(f"Confirmatory factor analysis (lavaan-compatible {est_name})", frame,
                     tuple(notes))
