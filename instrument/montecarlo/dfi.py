"""Dynamic fit index (DFI) cut-offs: fit-index cut-offs simulated for one model and sample size.

The fitted model's standardized solution (loadings, factor and residual correlations, rounded to
four decimals) is the population of the correct model. Misspecified populations add what the
analysis model omits, at increasing levels:

* multi-factor models (McNeish & Wolf, 2023, Psych. Methods; the ``dynamic`` package's ``cfaHB``):
  level ``i`` of ``F - 1`` adds ``i`` cross-loadings. The candidates are, per factor, its
  lowest-loading item among those with one loading and no residual covariance; factors with more
  than two indicators come first, then lower loadings. Each candidate cross-loads on the factor
  with the highest coefficient H (Hancock & Mueller, 2001) whose pair with the item's factor has
  not been used yet. The magnitude is ``min(lambda, 0.95 (sqrt(lambda^2 phi^2 + 1 - lambda^2) -
  lambda phi))`` (the largest value keeping the residual variance positive, shrunk by 5%).
* one-factor models (McNeish & Wolf, 2023, Behav. Res. Methods; ``cfaOne``): items sorted by
  loading; residual correlations of .30 between consecutive pairs of the lowest-loading items;
  with ``m`` such items and ``k = floor(m/2)`` pairs, levels add ``floor(k/3)``, ``floor(2k/3)``
  and ``k`` pairs (4 items: one level of one pair; 5 items: levels of 1 and 2 pairs).

For each population, ``reps`` data sets of ``min(N, 2000)`` rows are drawn and the analysis model is
refitted (ML for ML/MLR fits; WLSMV on data cut at the fitted thresholds for WLSMV fits: McNeish,
2023). Cut-offs per level and index:

* ML (95/5 rule): the 5th percentile of the misspecified SRMR and RMSEA (95th of CFI), kept when
  the correct model's 95th percentile (5th of CFI) is on the good side of it; otherwise the 90/10
  pair; otherwise none.
* WLSMV (McNeish, 2023): the cut-off is the correct model's 95th percentile of SRMR and RMSEA
  (5th of CFI; specificity 95%); each level reports its sensitivity, the share of misspecified
  replications beyond the cut-off (read from the misspecified quantiles in 1% steps as the
  ``dynamic`` package does), and no cut-off where it is below 50%.

Checked against ``dynamic``'s Holzinger-Swineford example (``benchmarks/dfi_vs_dynamic.md``): the
same misspecification (x2 cross-loading .424 on textual); there the 95/5 rule separates nothing
at level 1 and the published .040/.044/.984 are the 90/10 cut-offs, which lavaan refits of the
same population reproduce (.040/.046/.984) and ours match within 2-2.5 Monte Carlo SEs
(.039/.043/.986); on identical data sets the refits agree with lavaan to 1e-7.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument import rules
from instrument.montecarlo.population import MomentPopulation
from instrument.montecarlo.runner import MonteCarloResult, montecarlo
from instrument.results import Meta, Table, from_jsonable, to_jsonable

__all__ = ["dynamic_cutoffs", "DFIResult", "misspecifications", "standardized_solution",
           "FitIndices"]

INDICES = ("srmr", "rmsea", "cfi")
_DIGITS = 4   # the dynamic package rounds the standardized solution to 4 decimals


@dataclass(frozen=True)
class StandardizedModel:
    """A CFA's standardized solution: the population of the correct model."""

    ov_names: tuple
    lv_names: tuple
    loadings: Mapping[tuple, float]            # (factor, item) -> loading
    factor_cor: Mapping[tuple, float]          # (factor, factor) -> correlation (both orders)
    residual_cor: Mapping[tuple, float]        # (item, item) -> residual correlation
    thresholds: Mapping[str, tuple]            # item -> thresholds (ordered items)

    def covariance(self, cross: Sequence[tuple] = (), resid: Sequence[tuple] = ()) -> np.ndarray:
        """Implied correlation matrix with extra cross-loadings ``(factor, item, value)`` and
        residual correlations ``(item, item, value)``; residual variances make every variance 1."""
        ov, lv = list(self.ov_names), list(self.lv_names)
        L = np.zeros((len(ov), len(lv)))
        for (f, i), v in self.loadings.items():
            L[ov.index(i), lv.index(f)] = v
        for f, i, v in cross:
            L[ov.index(i), lv.index(f)] = v
        Phi = np.eye(len(lv))
        for (a, b), v in self.factor_cor.items():
            Phi[lv.index(a), lv.index(b)] = v
        common = L @ Phi @ L.T
        theta = 1.0 - np.diag(common)
        if np.any(theta <= 0):
            bad = [ov[k] for k in np.flatnonzero(theta <= 0)]
            raise ValueError(f"standardized loadings leave no residual variance for {bad}")
        Th = np.diag(theta)
        rc = dict(self.residual_cor)
        for a, b, v in resid:
            rc[(a, b)] = v
        for (a, b), v in rc.items():
            i, j = ov.index(a), ov.index(b)
            Th[i, j] = Th[j, i] = v * math.sqrt(theta[i] * theta[j])
        return common + Th


def standardized_solution(fit: Any) -> StandardizedModel:
    """The ``std.all`` solution of a single-group CFA, rounded to four decimals."""
    if len(fit.group_labels) != 1:
        raise ValueError("dynamic_cutoffs() needs a single-group fit; got "
                         f"{len(fit.group_labels)} groups")
    est = fit.estimates
    lv = tuple(fit.lv_names)
    ov = tuple(fit.ov_names)
    loadings, fcor, rcor, thr = {}, {}, {}, {}
    for lhs, op, rhs, v in est[["lhs", "op", "rhs", "std.all"]].itertuples(index=False):
        v = round(float(v), _DIGITS)
        if op == "=~" and rhs in ov:
            loadings[(lhs, rhs)] = v
        elif op == "=~":
            raise NotImplementedError("dynamic_cutoffs() covers first-order CFA models; "
                                      f"{lhs} =~ {rhs} is a higher-order factor")
        elif op == "~~" and lhs != rhs and lhs in lv and rhs in lv:
            fcor[(lhs, rhs)] = fcor[(rhs, lhs)] = v
        elif op == "~~" and lhs != rhs and lhs in ov and rhs in ov:
            rcor[(lhs, rhs)] = v
        elif op == "~" and lhs in lv:
            raise NotImplementedError("dynamic_cutoffs() covers CFA models; regressions among "
                                      f"factors ({lhs} ~ {rhs}) are not simulated")
    th = est[est["op"] == "|"]
    for v in ov:
        rows = th[th["lhs"] == v]
        if len(rows):
            order = rows["rhs"].str.extract(r"(\d+)$")[0].astype(int).to_numpy()
            thr[v] = tuple(np.round(rows["est"].to_numpy(float)[np.argsort(order)], _DIGITS))
    return StandardizedModel(ov, lv, loadings, fcor, rcor, thr)


def _coefficient_h(std: StandardizedModel) -> dict:
    """Coefficient H per factor: 1 / (1 + 1 / sum(l^2 / (1 - l^2))) (Hancock & Mueller, 2001)."""
    out = {}
    for f in std.lv_names:
        s = sum(v * v / (1 - v * v) for (g, _), v in std.loadings.items() if g == f)
        out[f] = 1.0 / (1.0 + 1.0 / s) if s > 0 else 0.0
    return out


def _solo_items(std: StandardizedModel) -> list:
    """(factor, item, loading) of items with one loading and no residual covariance, in model
    order."""
    count: dict = {}
    for (f, i) in std.loadings:
        count[i] = count.get(i, 0) + 1
    with_cov = {a for a, _ in std.residual_cor} | {b for _, b in std.residual_cor}
    return [(f, i, v) for (f, i), v in std.loadings.items()
            if count[i] == 1 and i not in with_cov]


def misspecifications(std: StandardizedModel) -> list[dict]:
    """The misspecification added at each level (cumulative: level ``k`` has entries 1..k).

    Returns
    -------
    list of dict
        ``level kind lhs rhs magnitude`` with kind ``"cross_loading"`` (``lhs =~ rhs``) or
        ``"residual_correlation"`` (``lhs ~~ rhs``); one entry per level for multi-factor models,
        one or more pairs per level for one-factor models.
    """
    solo = _solo_items(std)
    if len(std.lv_names) == 1:
        return _one_factor_levels(solo)
    return _multi_factor_levels(std, solo)


def _one_factor_levels(solo: list) -> list[dict]:
    items = sorted(solo, key=lambda t: abs(t[2]))        # stable: model order breaks ties
    m = len(items)
    if m < 4:
        raise ValueError(f"a one-factor DFI needs at least 4 items without residual covariances; "
                         f"got {m}")
    if m == 4:
        used, levels = items[:2], [1]
    elif m == 5:
        used, levels = items[:4], [1, 2]
    else:
        k = m // 2
        used, levels = items[:2 * k], [k // 3, (2 * k) // 3, k]
    pairs = [(used[2 * j + 1][1], used[2 * j][1]) for j in range(len(used) // 2)]
    r = rules.DFI_ONE_FACTOR_RESIDUAL_CORRELATION.threshold
    out = []
    for lev, npairs in enumerate(levels, start=1):
        for a, b in pairs[:npairs]:
            out.append({"level": lev, "kind": "residual_correlation", "lhs": a, "rhs": b,
                        "magnitude": r})
    return out


def _multi_factor_levels(std: StandardizedModel, solo: list) -> list[dict]:
    nf = len(std.lv_names)
    n_ind = {f: sum(1 for (g, _) in std.loadings if g == f) for f in std.lv_names}
    best: dict = {}
    for f, i, v in solo:                                   # lowest loading per factor
        if f not in best or abs(v) < abs(best[f][2]):
            best[f] = (f, i, v)
    cand = sorted(best.values(), key=lambda t: (0 if n_ind[t[0]] > 2 else 1, abs(t[2])))
    cand = cand[:nf - 1]
    if len(cand) < nf - 1:
        raise ValueError("not enough items with one loading and no residual covariance to build "
                         f"{nf - 1} misspecification levels")
    H = _coefficient_h(std)
    used_pairs: set = set()
    chosen = []
    for f, i, v in sorted(cand, key=lambda t: abs(t[2])):
        targets = [g for g in std.lv_names if g != f and frozenset((f, g)) not in used_pairs]
        if not targets:
            raise ValueError(f"no factor left for a cross-loading of {i}")
        g = max(targets, key=lambda t: H[t])               # first in model order on ties
        used_pairs.add(frozenset((f, g)))
        phi = std.factor_cor.get((f, g), 0.0)
        shrink = rules.DFI_CROSS_LOADING_SHRINK.threshold
        max_allow = round(shrink * (math.sqrt(v * v * phi * phi + 1 - v * v) - v * phi), _DIGITS)
        chosen.append({"kind": "cross_loading", "lhs": g, "rhs": i,
                       "magnitude": min(v, max_allow), "_order": (0 if n_ind[f] > 2 else 1, v,
                                                                  -H[g])})
    chosen.sort(key=lambda d: d["_order"])
    out = []
    for lev in range(1, len(chosen) + 1):
        for d in chosen[:lev]:
            out.append({"level": lev, **{k: d[k] for k in ("kind", "lhs", "rhs", "magnitude")}})
    return out


class FitIndices:
    """Analysis of one replication: refit a model and return SRMR, RMSEA and CFI.

    ML refits go through `instrument.sem.refit.Refit` (the model is built once per process); WLSMV
    refits through `cfa` with ``ordered=True`` and report ``srmr`` and the scaled ``rmsea.scaled``
    and ``cfi.scaled`` (as ``dynamic::catHB`` reads them from lavaan) under the names of `INDICES`.
    """

    def __init__(self, model: str, *, estimator: str = "ML", ordered: bool = False):
        self.model, self.estimator, self.ordered = model, estimator, bool(ordered)
        self._refit = None

    def __getstate__(self):
        return {"model": self.model, "estimator": self.estimator, "ordered": self.ordered}

    def __setstate__(self, state):
        self.__dict__.update(state, _refit=None)

    def describe(self) -> dict:
        return {"analysis": "fit indices", "model": self.model, "estimator": self.estimator,
                "ordered": self.ordered}

    def __call__(self, data: pd.DataFrame) -> dict:
        if self.ordered:
            from instrument import cfa
            fit = cfa(self.model, data, estimator=self.estimator, ordered=True, se="none")
            fm = fit.fit_measures
            vals = (fm["srmr"], fm["rmsea.scaled"], fm["cfi.scaled"])
            converged = fit.converged
        else:
            if self._refit is None:
                from instrument.sem.refit import Refit
                self._refit = Refit(self.model, list(data.columns))
            out = self._refit.fit(data, se=False)
            fm = out.fit_measures
            vals = (fm["srmr"], fm["rmsea"], fm["cfi"])
            converged = out.converged
        return {"converged": converged, **dict(zip(INDICES, map(float, vals)))}


@dataclass(frozen=True)
class DFIResult:
    """Dynamic fit index cut-offs for one model and sample size.

    Attributes
    ----------
    cutoffs : DataFrame
        One row per level and index: ``level index cutoff rule sensitivity magnitude``; level 0
        (WLSMV only) is the correct model's cut-off with its specificity. ``rule`` is ``"95/5"``,
        ``"90/10"`` or ``"none"`` (ML), ``"specificity 95%"`` (WLSMV).
    misspecifications : DataFrame
        ``level kind lhs rhs magnitude`` (cumulative: level k contains rows of levels 1..k).
    fitted : dict
        The fitted model's SRMR, RMSEA and CFI (scaled RMSEA/CFI for WLSMV).
    verdict : DataFrame
        ``index fitted cutoff_level1 level`` where ``level`` is the highest level whose cut-off
        the fitted value is worse than (0: better than every cut-off).
    distributions : DataFrame
        ``population rep status srmr rmsea cfi`` for the correct model (``population = 0``) and
        each level.
    n, reps : int
    estimator : str
    meta : Meta
    """

    cutoffs: pd.DataFrame
    misspecifications: pd.DataFrame
    fitted: Mapping[str, float]
    verdict: pd.DataFrame
    distributions: pd.DataFrame
    n: int
    reps: int
    estimator: str
    meta: Meta = field(default_factory=Meta)

    def table(self) -> pd.DataFrame:
        """Wide table: one row per level, columns SRMR, RMSEA, CFI and the magnitude added."""
        rows = []
        for lev, g in self.cutoffs.groupby("level", sort=True):
            row = {"level": int(lev)}
            for r in g.itertuples(index=False):
                row[r.index] = r.cutoff
                row[f"{r.index}.rule"] = r.rule
            mag = self.misspecifications[self.misspecifications["level"] == lev]["magnitude"]
            row["magnitude"] = float(mag.iloc[-1]) if len(mag) else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> Table:
        t = self.table()
        cols = ["level"] + [c for c in ("srmr", "rmsea", "cfi") if c in t.columns] + ["magnitude"]
        notes = [f"{self.reps} replications per population of N = {self.n}, {self.estimator} "
                 f"refits. Fitted: " + ", ".join(f"{k.upper()} {v:.3f}"
                                                  for k, v in self.fitted.items()) + "."]
        notes.append("Blank: no cut-off (the correct and misspecified distributions overlap beyond "
                     "the rule); magnitude: the misspecification added at that level.")
        for r in self.verdict.itertuples(index=False):
            notes.append(f"{r.index.upper()}: " + _verdict_text(int(r.level)))
        return Table("Dynamic fit index cut-offs", t[cols], notes=tuple(notes))

    def to_dict(self) -> dict:
        return to_jsonable({"cutoffs": self.cutoffs, "misspecifications": self.misspecifications,
                            "fitted": dict(self.fitted), "verdict": self.verdict,
                            "distributions": self.distributions, "n": self.n, "reps": self.reps,
                            "estimator": self.estimator, "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DFIResult":
        return cls(cutoffs=from_jsonable(d["cutoffs"]),
                   misspecifications=from_jsonable(d["misspecifications"]),
                   fitted=dict(d["fitted"]), verdict=from_jsonable(d["verdict"]),
                   distributions=from_jsonable(d["distributions"]), n=int(d["n"]),
                   reps=int(d["reps"]), estimator=str(d["estimator"]),
                   meta=Meta.from_dict(d["meta"]))


def _verdict_text(level: int) -> str:
    if level == 0:
        return "better than the level-1 cut-off: misfit smaller than the level-1 misspecification."
    return (f"worse than the level-{level} cut-off: misfit at least as large as the level-{level} "
            "misspecification.")


def _quantile(x: np.ndarray, q: float) -> float:
    """R's default (type 7) quantile, numpy's ``linear`` method."""
    return float(np.quantile(x, q)) if len(x) else math.nan


def _cutoffs_ml(true: pd.DataFrame, levels: list[pd.DataFrame]) -> list[dict]:
    rows = []
    spec, fall = rules.DFI_SPECIFICITY.threshold, rules.DFI_SPECIFICITY_FALLBACK.threshold
    for lev, mis in enumerate(levels, start=1):
        for idx in INDICES:
            t, m = true[idx].to_numpy(), mis[idx].to_numpy()
            cut, rule = math.nan, "none"
            for s, name in ((spec, "95/5"), (fall, "90/10")):
                if idx == "cfi":
                    t_q, m_q = _quantile(t, 1 - s), _quantile(m, s)
                    ok = t_q > m_q
                else:
                    t_q, m_q = _quantile(t, s), _quantile(m, 1 - s)
                    ok = t_q < m_q
                if ok:
                    cut, rule = m_q, name
                    break
            sens = (float(np.mean(m <= cut)) if idx == "cfi" else float(np.mean(m >= cut))) \
                if rule != "none" else math.nan
            rows.append({"level": lev, "index": idx, "cutoff": cut, "rule": rule,
                         "sensitivity": sens})
    return rows


def _cutoffs_categorical(true: pd.DataFrame, levels: list[pd.DataFrame]) -> list[dict]:
    spec = rules.DFI_SPECIFICITY.threshold
    min_sens = rules.DFI_MIN_SENSITIVITY.threshold
    grid = np.round(np.arange(0.05, 1.0 + 1e-9, 0.01), 2)       # misspecified quantiles 5%..100%
    rows = []
    for idx in INDICES:
        t = true[idx].to_numpy()
        t_cut = _quantile(t, 1 - spec) if idx == "cfi" else _quantile(t, spec)
        rows.append({"level": 0, "index": idx, "cutoff": t_cut, "rule": "specificity 95%",
                     "sensitivity": spec})
    for lev, mis in enumerate(levels, start=1):
        for idx in INDICES:
            t = true[idx].to_numpy()
            m = mis[idx].to_numpy()
            cut, sens = math.nan, math.nan
            for q in grid:
                if idx == "cfi":
                    t_q, m_q = _quantile(t, 1 - spec), _quantile(m, 1 - q)
                    ok = m_q <= t_q
                else:
                    t_q, m_q = _quantile(t, spec), _quantile(m, q)
                    ok = m_q >= t_q
                if ok:
                    cut, sens = m_q, float(1 - q)
                    break
            rule = "specificity 95%"
            if not sens >= min_sens:
                cut, rule = math.nan, "none"
            rows.append({"level": lev, "index": idx, "cutoff": cut, "rule": rule,
                         "sensitivity": sens})
    return rows


def _level_reached(value: float, idx: str, cuts: pd.DataFrame) -> int:
    reached = 0
    for r in cuts[(cuts["index"] == idx) & (cuts["level"] > 0)].itertuples(index=False):
        if r.cutoff != r.cutoff:
            continue
        worse = value <= r.cutoff if idx == "cfi" else value >= r.cutoff
        if worse:
            reached = max(reached, int(r.level))
    return reached


def _study_seed(seed: int, k: int) -> int:
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1, np.uint32)[0])


def dynamic_cutoffs(fit: Any, *, reps: int = int(rules.DFI_REPS.threshold), seed: int = 1,
                    n: int | None = None, scheduler: Any = None, workers: int | None = None,
                    path: str | None = None, progress: bool | None = None) -> DFIResult:
    """McNeish & Wolf's dynamic fit index cut-offs for a fitted single-group CFA.

    Parameters
    ----------
    fit : CFAResult
        An ML/MLR fit (continuous DFI, ML refits) or a WLSMV fit (categorical DFI: data cut at
        the fitted thresholds, WLSMV refits, McNeish 2023).
    reps : int
        Replications per population (correct model and each level); 500 as in ``dynamic``.
    seed : int
        Study seed; population ``k`` (0 = correct model) runs with seed
        ``SeedSequence([seed, k])``.
    n : int, optional
        Rows per data set; the fit's N capped at 2,000 (as ``dynamic``) when None.
    scheduler, workers, path, progress
        As in `instrument.montecarlo` (``path``: one study directory per population below it).

    Returns
    -------
    DFIResult

    References
    ----------
    McNeish, D., & Wolf, M. G. (2023). Dynamic fit index cutoffs for confirmatory factor analysis
    models. Psychological Methods, 28(1), 61-88. https://doi.org/10.1037/met0000425
    McNeish, D., & Wolf, M. G. (2023). Dynamic fit index cutoffs for one-factor models. Behavior
    Research Methods, 55, 1157-1174. https://doi.org/10.3758/s13428-022-01847-y
    McNeish, D. (2023). Dynamic fit index cutoffs for factor analysis with Likert, ordinal, or
    binary responses. American Psychologist. https://doi.org/10.1037/amp0001213
    Hancock, G. R., & Mueller, R. O. (2001). Rethinking construct reliability within latent
    variable systems. In Structural equation modeling: Present and future (pp. 195-216).
    """
    opts = fit.meta.options
    ordered = bool(opts.get("ordered"))
    estimator = "WLSMV" if ordered else "ML"
    model = opts.get("model")
    if not model:
        raise ValueError("the fit does not record its model syntax (meta.options['model'])")
    std = standardized_solution(fit)
    miss = misspecifications(std)
    n_fit = int(fit.sample[0]["n"])
    n_sim = int(min(n_fit, rules.DFI_MAX_N.threshold)) if n is None else int(n)
    analysis = FitIndices(model, estimator=estimator, ordered=ordered)
    nlev = max(d["level"] for d in miss)
    pops = [std.covariance()]
    for lev in range(1, nlev + 1):
        cur = [d for d in miss if d["level"] == lev]
        cross = [(d["lhs"], d["rhs"], d["magnitude"]) for d in cur if d["kind"] == "cross_loading"]
        resid = [(d["lhs"], d["rhs"], d["magnitude"]) for d in cur
                 if d["kind"] == "residual_correlation"]
        pops.append(std.covariance(cross, resid))
    thresholds = dict(std.thresholds) if ordered else {}
    studies: list[MonteCarloResult] = []
    for k, cov in enumerate(pops):
        pop = MomentPopulation(std.ov_names, cov, n_sim, None, thresholds)
        sub = None if path is None else f"{path}/population-{k}"
        studies.append(montecarlo(pop, analysis, reps=reps, seed=_study_seed(seed, k),
                                  scheduler=scheduler, workers=workers, path=sub,
                                  progress=progress))
    frames = []
    for k, st in enumerate(studies):
        d = st.replications[["rep", "status"] + [c for c in INDICES
                                                   if c in st.replications.columns]].copy()
        d.insert(0, "population", k)
        frames.append(d)
    dist = pd.concat(frames, ignore_index=True)
    ok = [st.ok.dropna(subset=list(INDICES)) if set(INDICES) <= set(st.replications.columns)
          else st.ok for st in studies]
    if any(len(o) == 0 for o in ok):
        raise RuntimeError("a population had no converged replication; see the distributions")
    rows = (_cutoffs_categorical if ordered else _cutoffs_ml)(ok[0], ok[1:])
    cuts = pd.DataFrame(rows)
    mags = {}
    for d in miss:
        mags[d["level"]] = d["magnitude"]
    cuts["magnitude"] = [mags.get(int(lv), math.nan) for lv in cuts["level"]]
    fm = fit.fit_measures
    fitted = {"srmr": float(fm["srmr"]),
              "rmsea": float(fm["rmsea.scaled" if ordered else "rmsea"]),
              "cfi": float(fm["cfi.scaled" if ordered else "cfi"])}
    verdict = pd.DataFrame([{"index": idx, "fitted": fitted[idx],
                             "level": _level_reached(fitted[idx], idx, cuts)} for idx in INDICES])
    options = {"model": model, "estimator": estimator, "n": n_sim, "reps": int(reps),
               "levels": nlev, "converged": [int((st.replications["status"] == "ok").sum())
                                              for st in studies]}
    return DFIResult(cutoffs=cuts, misspecifications=pd.DataFrame(miss), fitted=fitted,
                     verdict=verdict, distributions=dist, n=n_sim, reps=int(reps),
                     estimator=estimator, meta=Meta(options=options, seed=int(seed)))
