"""The instrument as a policy tool: district and state rollups, band accuracy, convergence, change.

Inputs are plain DataFrames: respondent-level construct scores for the variance decomposition, and
the long school-scores table of `instrument.scores.school_scores` (one row per school x form x
construct with ``n``, ``mean``, ``se``, ``reliability``, ``score``, ``band``, ``suppressed``) for
everything else. Outputs are DataFrames or frozen dataclasses that serialise to JSON.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument import rules
from instrument.results import Meta, Table, from_jsonable, to_jsonable

# Reporting-band cut points on the 1-99 scale (lower bounds of bands 2..5) and their names.
BAND_CUTS: tuple[float, ...] = rules.SCORE_BAND_CUTS
BAND_NAMES: tuple[str, ...] = rules.SCORE_BAND_NAMES


def _check_columns(df: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; expected at least {list(needed)}.")


# --------------------------------------------------------------------------------------------
# 1. Three-level variance decomposition
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VarianceComponents:
    """Variance of a construct score split into district, school and respondent parts.

    Attributes
    ----------
    value : str
        The decomposed column.
    tau_district, tau_school, sigma2 : float
        REML variance components: between districts, between schools within districts, within
        schools (respondents).
    icc_district, icc_school : float
        Shares of the total variance: ``tau_district / total`` and ``tau_school / total``.
    n, n_schools, n_districts : int
        Respondents, schools and districts used.
    mean_respondents, mean_schools : float
        Average respondents per school and schools per district.
    converged : bool
        Whether the REML fit converged (a warning is issued when it did not).
    """

    value: str
    tau_district: float
    tau_school: float
    sigma2: float
    n: int
    n_schools: int
    n_districts: int
    mean_respondents: float
    mean_schools: float
    converged: bool

    @property
    def total(self) -> float:
        return self.tau_district + self.tau_school + self.sigma2

    @property
    def icc_district(self) -> float:
        return self.tau_district / self.total

    @property
    def icc_school(self) -> float:
        return self.tau_school / self.total

    def district_reliability(self, n_schools: float, n_respondents: float) -> float:
        """Reliability of a district mean from ``n_schools`` schools of ``n_respondents`` each.

        Notes
        -----
        ``tau_d / (tau_d + tau_s / m + sigma2 / (m k))``: the generalisability coefficient of a
        mean over m schools nested in the district and k respondents nested in each school
        (Brennan, 2001, ch. 4; Raudenbush & Bryk, 2002, eq. 8.13 for the two-level analogue).
        """
        m, k = float(n_schools), float(n_respondents)
        return self.tau_district / (self.tau_district + self.tau_school / m + self.sigma2 / (m * k))

    def school_reliability(self, n_respondents: float) -> float:
        """Reliability of a school mean from k respondents: ``tau_s / (tau_s + sigma2 / k)``."""
        return self.tau_school / (self.tau_school + self.sigma2 / float(n_respondents))

    def min_schools(self, target: rules.Rule, n_respondents: float, max_schools: int = 500) -> int | None:
        """Smallest number of schools per district whose district mean reaches ``target``.

        Returns None when even ``max_schools`` schools do not reach it (the district variance is
        too small for a reliable district comparison at that respondent count).
        """
        for m in range(1, max_schools + 1):
            if target.passes(self.district_reliability(m, n_respondents)):
                return m
        return None

    def advice(self, targets: Sequence[rules.Rule] = (rules.SCHOOL_MEAN_RELIABILITY, rules.SCHOOL_MEAN_RELIABILITY_HIGH),
               respondents: Sequence[int] = (5, 10, 20, 40)) -> pd.DataFrame:
        """Minimum schools per district for each target reliability and respondents per school."""
        rows = []
        for t in targets:
            for k in respondents:
                rows.append({"target": t.threshold, "respondents_per_school": k,
                             "min_schools": self.min_schools(t, k),
                             "school_reliability": self.school_reliability(k),
                             "source": t.source})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(icc_district=self.icc_district, icc_school=self.icc_school)
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping) -> "VarianceComponents":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def summary(self) -> Table:
        frame = pd.DataFrame([
            {"level": "district", "variance": self.tau_district, "share": self.icc_district},
            {"level": "school", "variance": self.tau_school, "share": self.icc_school},
            {"level": "respondent", "variance": self.sigma2, "share": self.sigma2 / self.total},
        ])
        notes = [f"REML, {self.n} respondents in {self.n_schools} schools in "
                 f"{self.n_districts} districts."]
        if not self.converged:
            notes.append("The REML fit did not converge: treat the components as unreliable.")
        return Table(f"Variance components of {self.value}", frame, notes)


def variance_components(df: pd.DataFrame, value: str, *, school: str = "school_id",
                        district: str = "district_id") -> VarianceComponents:
    """Three-level variance decomposition (respondents in schools in districts) by REML.

    Parameters
    ----------
    df : DataFrame
        One row per respondent with ``value``, ``school`` and ``district`` columns. Rows with a
        missing value are excluded (their count is given by ``n``).
    value : str
        The score to decompose (e.g. a construct's respondent mean).

    Returns
    -------
    VarianceComponents

    Notes
    -----
    Fits ``value ~ 1 + (1 | district) + (1 | district:school)`` by REML with statsmodels
    ``MixedLM`` (district as the grouping factor, schools as a variance component), the model
    lme4's ``lmer(y ~ 1 + (1|district/school))`` fits. School ids must be unique across districts.

    References
    ----------
    Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical linear models* (2nd ed.), ch. 8. Sage.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

    _check_columns(df, [value, school, district], "variance_components data")
    d = df[[value, school, district]].dropna()
    nested = d.groupby(school)[district].nunique()
    if (nested > 1).any():
        bad = list(nested[nested > 1].index[:5])
        raise ValueError(f"school ids {bad} appear in more than one district; school ids must be "
                         "unique across districts for a nested decomposition.")
    # the design lme4's formula gives: an intercept, a random intercept per district and, within
    # each district, one variance-component column per school (MixedLM's exog_vc)
    y = d[value].to_numpy(float)
    ones = np.ones((len(d), 1))
    # each district's school indicators, in MixedLM's group order (sorted labels) and row order
    groups = d[district].to_numpy()
    by_district = {g: pd.get_dummies(rows[school].astype(str))
                   for g, rows in d.groupby(district, sort=False)}
    labels = sorted(by_district)
    vc = VCSpec(["school"], [[list(by_district[g].columns) for g in labels]],
                [[by_district[g].to_numpy(float) for g in labels]])
    model = MixedLM(y, ones, groups=groups, exog_re=ones, exog_vc=vc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(reml=True, method=["lbfgs", "powell"])
    converged = bool(fit.converged) and not any("converge" in str(w.message).lower() for w in caught)
    if not converged:
        warnings.warn(f"variance_components({value!r}): the REML fit did not converge.", stacklevel=2)
    n_schools = d[school].nunique()
    n_districts = d[district].nunique()
    return VarianceComponents(
        value=value, tau_district=float(np.asarray(fit.cov_re)[0, 0]), tau_school=float(fit.vcomp[0]),
        sigma2=float(fit.scale), n=len(d), n_schools=n_schools, n_districts=n_districts,
        mean_respondents=len(d) / n_schools, mean_schools=n_schools / n_districts,
        converged=converged)


# --------------------------------------------------------------------------------------------
# 2. Rollups of school scores to district and state
# --------------------------------------------------------------------------------------------

def _per_year(fn, scores: pd.DataFrame, outcomes: pd.DataFrame | None = None, **kw):
    """``fn`` applied to each survey year of a panel's scores (and outcomes, when they have a
    ``year`` column), results stacked with a leading ``year`` column."""
    frames = []
    for y in sorted(scores["year"].dropna().unique()):
        sc = scores[scores["year"] == y].drop(columns="year")
        args = [sc]
        if outcomes is not None:
            args.append(outcomes[outcomes["year"] == y].drop(columns="year")
                        if "year" in outcomes.columns else outcomes)
        out = fn(*args, **kw)
        out.insert(0, "year", y)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _visible(scores: pd.DataFrame) -> pd.DataFrame:
    """School rows that may be aggregated: not suppressed and with a score."""
    _check_columns(scores, ["school_id", "form", "construct", "score", "se", "suppressed"],
                   "school scores")
    return scores[~scores["suppressed"].astype(bool) & scores["score"].notna()]


def _scale_se(scores: pd.DataFrame) -> pd.Series:
    """SE of a school's 1-99 score: the raw-mean SE times the points per raw unit.

    ``score = 50 + 20 (mean - benchmark) / sd`` so ``d score / d mean = 20 / sd``; the ratio is
    recovered per form and construct from two schools' (mean, score) pairs when ``score_se`` is
    not given.
    """
    if "score_se" in scores.columns:
        return scores["score_se"].astype(float)
    out = pd.Series(np.nan, index=scores.index)
    for _, g in scores.groupby(["form", "construct"]):
        ok = g[(g["score"] > 1) & (g["score"] < 99)]  # clipped scores carry no slope information
        if len(ok) >= 2 and ok["mean"].std() > 0:
            slope = np.polyfit(ok["mean"].astype(float), ok["score"].astype(float), 1)[0]
            out.loc[g.index] = g["se"].astype(float) * abs(slope)
    return out


def rollup(scores: pd.DataFrame, outcomes: pd.DataFrame | None = None, *, level: str = "district",
           weight: str | None = None, min_schools: rules.Rule = rules.MIN_SCHOOLS_ROLLUP,
           privacy: rules.Rule | None = None) -> pd.DataFrame:
    """District or state rollup of reported school scores with a measurement-error interval.

    Parameters
    ----------
    scores : DataFrame
        Long school scores (see module docstring). Suppressed schools never contribute.
    outcomes : DataFrame, optional
        School table supplying ``district_id`` (if absent from scores) and the weight column.
    level : {"district", "state"}
    weight : str, optional
        Column to weight schools by (e.g. ``"enrollment"``); unweighted when None.
    min_schools : Rule
        Precision gate: a unit with fewer reported schools is suppressed.
    privacy : Rule, optional
        Privacy gate on the unit's total respondents (defaults to `rules.MIN_N_PRIVACY`).

    Returns
    -------
    DataFrame
        One row per unit x form x construct: ``unit``, ``form``, ``construct``, ``n_schools``,
        ``n_respondents``, ``score`` (weighted mean of school scores), ``se``, ``ci.lower``,
        ``ci.upper``, ``sd_schools`` (spread of school scores), ``suppressed``,
        ``suppression_reason``. Suppressed units have no score, SE or interval. Scores with a
        ``year`` column (a panel) are rolled up per year, with a leading ``year`` column (and a
        year's rows of ``outcomes`` when it has one too).

    Notes
    -----
    Schools are the whole population of the unit, so the interval reflects only the sampling of
    respondents within schools: ``se = sqrt(sum w_j^2 se_j^2) / sum w_j`` with ``se_j`` the SE of
    school j's 1-99 score (Kish, 1965, sec. 2.8 for the variance of a weighted mean of independent
    estimates).
    """
    if level not in ("district", "state"):
        raise ValueError(f"level= must be one of 'district', 'state'; got {level!r}.")
    if "year" in scores.columns:
        return _per_year(rollup, scores, outcomes, level=level, weight=weight,
                         min_schools=min_schools, privacy=privacy)
    privacy = privacy or rules.MIN_N_PRIVACY
    vis = _visible(scores).copy()
    vis["score_se"] = _scale_se(vis)
    if outcomes is not None:
        extra = [c for c in ("district_id", weight) if c and c not in vis.columns]
        if extra:
            _check_columns(outcomes, ["school_id", *extra], "outcomes")
            vis = vis.merge(outcomes[["school_id", *extra]], on="school_id", how="left")
    if weight is not None and weight not in vis.columns:
        raise ValueError(f"weight={weight!r} is not a column of scores or outcomes.")
    vis["unit"] = vis["district_id"].astype(str) if level == "district" else "state"
    all_units = (scores.assign(unit=scores["district_id"].astype(str) if level == "district"
                               else "state")[["unit", "form", "construct"]].drop_duplicates())
    rows = []
    z = stats.norm.ppf(0.975)
    for key, g in vis.groupby(["unit", "form", "construct"]):
        w = g[weight].astype(float).to_numpy() if weight else np.ones(len(g))
        s = g["score"].astype(float).to_numpy()
        se_j = g["score_se"].astype(float).to_numpy()
        mean = float(np.sum(w * s) / np.sum(w))
        se = float(np.sqrt(np.sum(w ** 2 * se_j ** 2)) / np.sum(w))
        rows.append({"unit": key[0], "form": key[1], "construct": key[2], "n_schools": len(g),
                     "n_respondents": int(g["n"].sum()), "score": mean, "se": se,
                     "ci.lower": mean - z * se, "ci.upper": mean + z * se,
                     "sd_schools": float(np.std(s, ddof=1)) if len(g) > 1 else np.nan})
    out = all_units.merge(pd.DataFrame(rows, columns=["unit", "form", "construct", "n_schools",
                                                      "n_respondents", "score", "se", "ci.lower",
                                                      "ci.upper", "sd_schools"]),
                          on=["unit", "form", "construct"], how="left")
    out["n_schools"] = out["n_schools"].fillna(0).astype(int)
    out["n_respondents"] = out["n_respondents"].fillna(0).astype(int)
    reason = np.where(~out["n_schools"].map(min_schools.passes),
                      f"fewer than {min_schools.threshold:g} reported schools",
                      np.where(~out["n_respondents"].map(privacy.passes),
                               f"fewer than {privacy.threshold:g} respondents", ""))
    out["suppressed"] = reason != ""
    out["suppression_reason"] = reason
    out.loc[out["suppressed"], ["score", "se", "ci.lower", "ci.upper", "sd_schools"]] = np.nan
    return out.sort_values(["form", "construct", "unit"]).reset_index(drop=True)


def equity_gaps(scores: pd.DataFrame, outcomes: pd.DataFrame, *, by: str = "poverty",
                quartiles: bool = True) -> pd.DataFrame:
    """School scores by subgroup of schools (e.g. poverty quartile, grade band, locale).

    Parameters
    ----------
    by : str
        An outcomes column. Numeric columns are cut into quartiles (Q1 lowest) when
        ``quartiles``; other columns are used as they are.

    Returns
    -------
    DataFrame
        One row per form x construct x subgroup: ``subgroup``, ``n_schools``, ``score`` (mean),
        ``se`` (between-school SE of the mean), ``ci.lower``, ``ci.upper``; plus, per form x
        construct, a row ``subgroup = "gap"`` with the last minus the first subgroup (Q4 - Q1 for
        quartiles) and its Welch interval. Suppressed schools are excluded. Panels (a ``year``
        column) are analysed per year, with a leading ``year`` column.
    """
    if "year" in scores.columns:
        return _per_year(equity_gaps, scores, outcomes, by=by, quartiles=quartiles)
    _check_columns(outcomes, ["school_id", by], "outcomes")
    vis = _visible(scores).merge(outcomes[["school_id", by]].rename(columns={by: "_by"}),
                                 on="school_id", how="left").dropna(subset=["_by"])
    if quartiles and pd.api.types.is_numeric_dtype(vis["_by"]):
        school_vals = outcomes.drop_duplicates("school_id").set_index("school_id")[by]
        q = pd.qcut(school_vals, 4, labels=["Q1", "Q2", "Q3", "Q4"])
        vis["_by"] = vis["school_id"].map(q).astype(str)
    rows = []
    for (form, construct), g in vis.groupby(["form", "construct"]):
        groups = {k: v["score"].astype(float).to_numpy() for k, v in sorted(g.groupby("_by"))}
        for k, s in groups.items():
            m, se = float(s.mean()), float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else np.nan
            t = stats.t.ppf(0.975, len(s) - 1) if len(s) > 1 else np.nan
            rows.append({"form": form, "construct": construct, "by": by, "subgroup": str(k),
                         "n_schools": len(s), "score": m, "se": se,
                         "ci.lower": m - t * se, "ci.upper": m + t * se})
        keys = list(groups)
        if len(keys) >= 2 and len(groups[keys[0]]) > 1 and len(groups[keys[-1]]) > 1:
            res = stats.ttest_ind(groups[keys[-1]], groups[keys[0]], equal_var=False)
            ci = res.confidence_interval(0.95)
            diff = float(groups[keys[-1]].mean() - groups[keys[0]].mean())
            rows.append({"form": form, "construct": construct, "by": by,
                         "subgroup": f"gap {keys[-1]} - {keys[0]}",
                         "n_schools": len(groups[keys[0]]) + len(groups[keys[-1]]), "score": diff,
                         "se": float(diff / res.statistic) if res.statistic else np.nan,
                         "ci.lower": float(ci.low), "ci.upper": float(ci.high)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 3. Classification accuracy and consistency of reporting bands
# --------------------------------------------------------------------------------------------

def band_of(score: np.ndarray | float, cuts: Sequence[float] = BAND_CUTS) -> np.ndarray:
    """Index (0-based) of the band each score falls in; a score on a cut belongs to the upper band."""
    return np.searchsorted(np.asarray(cuts, dtype=float), np.asarray(score, dtype=float), side="right")


def band_probabilities(score: np.ndarray, se: np.ndarray,
                       cuts: Sequence[float] = BAND_CUTS) -> np.ndarray:
    """P(true score in band k | observed score, SE) under a normal error model (Rudner, 2001).

    Returns an (n_schools, n_bands) array whose rows sum to 1.
    """
    s = np.asarray(score, dtype=float)[:, None]
    e = np.asarray(se, dtype=float)[:, None]
    edges = np.concatenate([[-np.inf], np.asarray(cuts, dtype=float), [np.inf]])[None, :]
    cdf = stats.norm.cdf((edges - s) / e)
    return np.diff(cdf, axis=1)


@dataclass(frozen=True)
class ClassificationAccuracy:
    """Expected accuracy and consistency of band assignments (see `classification_accuracy`).

    Attributes
    ----------
    overall : dict
        ``accuracy`` (expected share of schools whose true score is in their reported band),
        ``misclassified`` (1 - accuracy), ``consistency`` (probability a parallel administration
        puts the school in the same band), ``n_schools``.
    by_band : DataFrame
        The same per reported band.
    by_school : DataFrame
        ``school_id``, ``band``, ``p_correct`` (probability the reported band is right).
    cuts : tuple
        The band cut points used.
    """

    overall: Mapping[str, float]
    by_band: pd.DataFrame
    by_school: pd.DataFrame
    cuts: tuple[float, ...] = BAND_CUTS
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"overall": dict(self.overall), "by_band": self.by_band,
                            "by_school": self.by_school, "cuts": list(self.cuts),
                            "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping) -> "ClassificationAccuracy":
        d = from_jsonable(dict(d))
        return cls(overall=d["overall"], by_band=d["by_band"], by_school=d["by_school"],
                   cuts=tuple(d["cuts"]), meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        o = self.overall
        return Table("Classification accuracy of reporting bands", self.by_band,
                     [f"Overall expected accuracy {o['accuracy']:.3f}, consistency "
                      f"{o['consistency']:.3f}, over {o['n_schools']} schools "
                      f"({self.meta.options.get('method', 'bayes')} method; Rudner, 2001; Morris, 1983)."])


def classification_accuracy(score: np.ndarray, se: np.ndarray, *, school_id: Sequence | None = None,
                            cuts: Sequence[float] = BAND_CUTS, names: Sequence[str] = BAND_NAMES,
                            method: str = "bayes") -> ClassificationAccuracy:
    """Expected classification accuracy and consistency for scores reported in bands.

    Parameters
    ----------
    score, se : array
        Reported scores and their standard errors on the same scale as ``cuts``.
    method : {"bayes", "rudner"}
        How a school's true score is described given its observed score (see Notes).

    Notes
    -----
    ``method="rudner"`` takes school j's true score as N(x_j, e_j²) (Rudner, 2001, 2005).
    ``method="bayes"`` (default) uses the normal-normal posterior instead:
    ``T_j | x_j ~ N(m + r_j (x_j - m), r_j e_j²)`` with ``r_j = s_T² / (s_T² + e_j²)``,
    ``m`` the mean and ``s_T² = var(x) - mean(e²)`` the true-score variance (Morris, 1983).
    Rudner's version ignores regression to the mean, so it overstates the accuracy of extreme
    bands and of flags in the tails; the posterior version is exact when true scores are normal.

    Accuracy is ``mean_j P(T_j in reported band)``. Consistency is the chance that a parallel
    measurement falls in the same band: ``sum_k P_jk²`` (Rudner) or
    ``P(X'_j in reported band)`` with ``X'_j ~ N(posterior mean, posterior var + e_j²)`` (bayes).
    Per-band rows average over the schools reported in that band.

    References
    ----------
    Rudner, L. M. (2001). Computing the expected proportions of misclassified examinees.
    *Practical Assessment, Research & Evaluation, 7*(14). https://doi.org/10.7275/an9m-2035
    Rudner, L. M. (2005). Expected classification accuracy. *Practical Assessment, Research &
    Evaluation, 10*(13). https://doi.org/10.7275/56a5-6b14
    Morris, C. N. (1983). Parametric empirical Bayes inference. *JASA, 78*(381), 47-55.
    https://doi.org/10.1080/01621459.1983.10477920
    """
    if method not in ("bayes", "rudner"):
        raise ValueError(f"method= must be one of 'bayes', 'rudner'; got {method!r}.")
    score = np.asarray(score, dtype=float)
    se = np.asarray(se, dtype=float)
    if score.shape != se.shape:
        raise ValueError("score and se must have the same length.")
    if np.any(~np.isfinite(se)) or np.any(se <= 0):
        raise ValueError("se must be positive and finite for every school (suppressed schools "
                         "must be removed before computing classification accuracy).")
    if len(names) != len(cuts) + 1:
        raise ValueError(f"names= needs {len(cuts) + 1} band names for {len(cuts)} cuts.")
    band = band_of(score, cuts)
    rows = np.arange(len(score))
    if method == "rudner":
        p = band_probabilities(score, se, cuts)
        consistency = np.sum(p ** 2, axis=1)
    else:
        var_true = max(float(np.var(score, ddof=1)) - float(np.mean(se ** 2)), 0.0) \
            if len(score) > 1 else 0.0
        r = var_true / (var_true + se ** 2)
        post_mean = score.mean() + r * (score - score.mean())
        post_sd = np.sqrt(r) * se
        p = band_probabilities(post_mean, np.maximum(post_sd, 1e-12), cuts)
        consistency = band_probabilities(post_mean, np.sqrt(post_sd ** 2 + se ** 2), cuts)[rows, band]
    p_correct = p[rows, band]
    by_school = pd.DataFrame({"school_id": list(school_id) if school_id is not None
                              else np.arange(len(score)),
                              "band": [names[b] for b in band], "p_correct": p_correct,
                              "consistency": consistency})
    by_band = []
    for k, name in enumerate(names):
        m = band == k
        by_band.append({"band": name, "n_schools": int(m.sum()),
                        "accuracy": float(p_correct[m].mean()) if m.any() else np.nan,
                        "consistency": float(consistency[m].mean()) if m.any() else np.nan})
    overall = {"accuracy": float(p_correct.mean()), "misclassified": float(1 - p_correct.mean()),
               "consistency": float(consistency.mean()), "n_schools": int(len(score))}
    return ClassificationAccuracy(overall, pd.DataFrame(by_band), by_school, tuple(cuts),
                                  Meta(options={"cuts": list(cuts), "names": list(names),
                                                "method": method}))


def band_probability(score: np.ndarray, se: np.ndarray, *,
                     cuts: Sequence[float] = BAND_CUTS) -> np.ndarray:
    """P(a school's true score lies in the band its reported score is in), per school.

    The posterior of `classification_accuracy` (``method="bayes"``) over the schools given, so
    that the probability printed beside a school's score is the quantity whose mean is the
    band accuracy of the technical report. NaN where ``score`` or ``se`` is missing.
    """
    score = np.asarray(score, dtype=float)
    se = np.asarray(se, dtype=float)
    out = np.full(len(score), np.nan)
    ok = np.isfinite(score) & np.isfinite(se) & (se > 0)
    if ok.sum() >= 2:
        res = classification_accuracy(score[ok], se[ok], cuts=cuts)
        out[ok] = res.by_school["p_correct"].to_numpy(float)
    return out


def flag_accuracy(score: np.ndarray, se: np.ndarray, threshold: float, *,
                  method: str = "bayes") -> dict[str, float]:
    """Accuracy of a binary flag ``score >= threshold`` (e.g. a Bright Spot flag).

    Uses `classification_accuracy` with one cut.

    Returns ``accuracy`` (mean probability the flag is right), ``accuracy_flagged`` (among flagged
    schools), ``false_flag_rate`` (expected share of flagged schools whose true score is below the
    threshold) and ``n_flagged``.
    """
    acc = classification_accuracy(score, se, cuts=(threshold,), names=("not flagged", "flagged"),
                                  method=method)
    flagged = acc.by_school["band"].eq("flagged").to_numpy()
    pc = acc.by_school["p_correct"].to_numpy()
    return {"accuracy": acc.overall["accuracy"],
            "accuracy_flagged": float(pc[flagged].mean()) if flagged.any() else float("nan"),
            "false_flag_rate": float(1 - pc[flagged].mean()) if flagged.any() else float("nan"),
            "n_flagged": int(flagged.sum())}


def scores_accuracy(scores: pd.DataFrame) -> pd.DataFrame:
    """`classification_accuracy` per form x construct of a long school-scores table.

    Returns one row per form x construct with ``n_schools``, ``accuracy``, ``misclassified`` and
    ``consistency``; suppressed schools are excluded. Panels (a ``year`` column): per year.
    """
    if "year" in scores.columns:
        return _per_year(scores_accuracy, scores)
    vis = _visible(scores).copy()
    vis["score_se"] = _scale_se(vis)
    rows = []
    for (form, construct), g in vis.dropna(subset=["score_se"]).groupby(["form", "construct"]):
        g = g[g["score_se"] > 0]
        if len(g) == 0:
            continue
        res = classification_accuracy(g["score"].to_numpy(), g["score_se"].to_numpy(),
                                      school_id=g["school_id"].tolist())
        rows.append({"form": form, "construct": construct, **res.overall})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# 4. Teacher-family convergence
# --------------------------------------------------------------------------------------------

def convergence(scores: pd.DataFrame, *, forms: tuple[str, str] = ("teacher", "family")) -> pd.DataFrame:
    """School-level correlation of two forms' scores per construct, corrected for unreliability.

    Returns
    -------
    DataFrame
        One row per construct: ``n_schools`` (schools reported on both forms), ``r`` (Pearson
        correlation of the school means), ``ci.lower``, ``ci.upper`` (Fisher z), ``rel_a``,
        ``rel_b`` (mean reliability of the school means of each form), ``r_corrected`` =
        ``r / sqrt(rel_a rel_b)`` (Spearman's correction for attenuation; Spearman, 1904).
        Panels (a ``year`` column): per year, with a leading ``year`` column (schools are paired
        within a year).
    """
    if "year" in scores.columns:
        return _per_year(convergence, scores, forms=forms)
    _check_columns(scores, ["school_id", "form", "construct", "mean", "reliability", "suppressed"],
                   "school scores")
    vis = scores[~scores["suppressed"].astype(bool) & scores["mean"].notna()]
    a, b = (vis[vis["form"] == f] for f in forms)
    both = a.merge(b, on=["school_id", "construct"], suffixes=("_a", "_b"))
    rows = []
    for construct, g in both.groupby("construct"):
        n = len(g)
        if n < 4:
            rows.append({"construct": construct, "n_schools": n})
            continue
        r = float(np.corrcoef(g["mean_a"], g["mean_b"])[0, 1])
        zc, h = np.arctanh(r), stats.norm.ppf(0.975) / math.sqrt(n - 3)
        rel_a, rel_b = float(g["reliability_a"].mean()), float(g["reliability_b"].mean())
        rows.append({"construct": construct, "n_schools": n, "r": r,
                     "ci.lower": float(np.tanh(zc - h)), "ci.upper": float(np.tanh(zc + h)),
                     "rel_a": rel_a, "rel_b": rel_b, "r_corrected": r / math.sqrt(rel_a * rel_b)})
    return pd.DataFrame(rows, columns=["construct", "n_schools", "r", "ci.lower", "ci.upper",
                                       "rel_a", "rel_b", "r_corrected"])


# --------------------------------------------------------------------------------------------
# 5. Change over time
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChangeResult:
    """School change between two survey years.

    Attributes
    ----------
    by_school : DataFrame
        ``school_id``, ``form``, ``construct``, ``change`` (later minus earlier 1-99 score),
        ``se`` = sqrt(se1² + se2²), ``z``, ``beyond_error`` (|z| >= the reliable-change rule).
    summary_frame : DataFrame
        Per form x construct: ``n_schools``, ``var_change`` (observed variance of change),
        ``error_var`` (mean squared SE), ``reliability_change`` = 1 - error_var / var_change,
        ``n_beyond_error``, ``share_beyond_error``.
    rule : dict
        The reliable-change rule used.
    """

    by_school: pd.DataFrame
    summary_frame: pd.DataFrame
    rule: Mapping[str, object]
    years: tuple

    def to_dict(self) -> dict:
        return to_jsonable({"by_school": self.by_school, "summary_frame": self.summary_frame,
                            "rule": dict(self.rule), "years": list(self.years)})

    @classmethod
    def from_dict(cls, d: Mapping) -> "ChangeResult":
        d = from_jsonable(dict(d))
        return cls(d["by_school"], d["summary_frame"], d["rule"], tuple(d["years"]))

    def summary(self) -> Table:
        return Table(f"School change {self.years[0]} to {self.years[1]}", self.summary_frame,
                     [f"Change beyond measurement error: {rules.RELIABLE_CHANGE.describe()}."])


def change(scores: pd.DataFrame, *, year: str = "year", years: tuple | None = None) -> ChangeResult:
    """Change in school scores between two survey years, with its SE and reliability.

    Parameters
    ----------
    scores : DataFrame
        Long school scores with a ``year`` column holding at least two years.
    years : (earlier, later), optional
        Which two years to compare; the first and last present by default.

    Notes
    -----
    Reliability of change scores: ``(var(D) - mean(SE_D²)) / var(D)``, the share of observed
    between-school variance in change that is not measurement error (Lord, 1956; Rogosa,
    Brandt & Zimowski, 1982). A school's change is beyond measurement error when
    ``|D / SE_D| >= 1.96`` (Jacobson & Truax, 1991, reliable change index). Both years must be on
    one benchmark (`instrument.scores.school_scores` of a panel does this). Scores clipped at 1
    or 99 have truncated errors, so when many schools sit at the clip the error variance is
    overstated and the reliability understated.
    """
    _check_columns(scores, [year], "school scores")
    present = sorted(scores[year].dropna().unique())
    if years is None:
        if len(present) < 2:
            raise ValueError(f"change() needs at least two values in column {year!r}; found {present}.")
        years = (present[0], present[-1])
    for y in years:
        if y not in present:
            raise ValueError(f"year {y!r} is not in column {year!r} (found {present}).")
    early, late = (_visible(scores[scores[year] == y]).copy() for y in years)
    for d in (early, late):
        d["score_se"] = _scale_se(d)
    key = ["school_id", "form", "construct"]
    both = early[key + ["score", "score_se"]].merge(late[key + ["score", "score_se"]], on=key,
                                                    suffixes=("_1", "_2"))
    both["change"] = both["score_2"] - both["score_1"]
    both["se"] = np.sqrt(both["score_se_1"] ** 2 + both["score_se_2"] ** 2)
    both["z"] = both["change"] / both["se"]
    both["beyond_error"] = both["z"].abs().map(rules.RELIABLE_CHANGE.passes)
    rows = []
    for (form, construct), g in both.groupby(["form", "construct"]):
        var = float(g["change"].var(ddof=1)) if len(g) > 1 else np.nan
        err = float(np.mean(g["se"] ** 2))
        rows.append({"form": form, "construct": construct, "n_schools": len(g),
                     "mean_change": float(g["change"].mean()), "var_change": var,
                     "error_var": err, "reliability_change": 1 - err / var if var > 0 else np.nan,
                     "n_beyond_error": int(g["beyond_error"].sum()),
                     "share_beyond_error": float(g["beyond_error"].mean())})
    by_school = both[key + ["score_1", "score_2", "change", "se", "z", "beyond_error"]]
    return ChangeResult(by_school.reset_index(drop=True), pd.DataFrame(rows),
                        rules.RELIABLE_CHANGE.to_dict(), tuple(years))


def change_link(scores: pd.DataFrame, outcomes: pd.DataFrame, *,
                outcome: str = "chronic_absence", construct: str | None = None,
                form: str = "teacher", years: tuple | None = None, year: str = "year",
                controls: Sequence[str] = ("poverty", "<outcome>_prior"), **kw):
    """Does improvement in practice predict improvement in outcomes? (`link` on changes.)

    Parameters
    ----------
    scores : DataFrame
        Long school scores of two or more years (``year`` column; e.g. `school_scores` of a
        panel), all years on one benchmark.
    outcomes : DataFrame
        School outcomes. With a ``year`` column: the later year's rows are used and
        ``<outcome>_prior`` is replaced by the earlier year's ``<outcome>``, so the dependent
        variable is the outcome change between the two survey years. Without one: the table is
        taken as the later year's, its ``<outcome>_prior`` as the earlier year's value (adjacent
        years).
    outcome, construct, form : str
        As in `instrument.linker.link`.
    years : (earlier, later), optional
        Survey years compared (first and last by default), as in `change`.
    controls : sequence of str
        Controls of the outcome change (default: poverty and the earlier outcome level).
    **kw
        Passed to `instrument.linker.link` (``cluster``, ``weights``, ``se_type``, ``rates_in``,
        ``level``).

    Returns
    -------
    instrument.linker.LinkResult
        With ``change=True``; its ``score`` term is the school's score change ``D`` (1-99 points,
        later minus earlier) and the dependent variable the outcome change. Schools suppressed
        in either year are counted as suppressed in ``sample``.

    Notes
    -----
    ``Delta y_s = a + b D_s + controls + e`` by OLS with cluster-robust (CR2) SEs by district.
    ``D_s`` carries the error of both years' scores, so ``b`` is attenuated by the reliability
    of change; `link`'s errors-in-variables correction uses ``lambda = 1 - mean(SE_D^2) /
    var(D)`` (the `change` reliability; Lord, 1956; Rogosa, Brandt & Zimowski, 1982) and reports
    ``est_corrected = b / lambda_z`` (Fuller, 1987, sec. 2.2). The earlier outcome level is a
    control because outcome changes regress to the mean.
    """
    import dataclasses

    from instrument.linker import default_construct, link

    construct = default_construct(scores, construct)
    res = change(scores, year=year, years=years)
    y1, y2 = res.years
    bs = res.by_school[(res.by_school["form"] == form) & (res.by_school["construct"] == construct)]
    sel = scores[(scores["form"] == form) & (scores["construct"] == construct)
                 & scores[year].isin([y1, y2])]
    if sel.empty:
        raise ValueError(f"scores has no rows for form={form!r}, construct={construct!r} in "
                         f"years {y1} and {y2}.")
    _check_columns(scores, ["district_id"], "school scores")
    district = sel.drop_duplicates("school_id").set_index("school_id")["district_id"]
    ch = pd.DataFrame({"school_id": bs["school_id"].to_numpy(),
                       "district_id": district.reindex(bs["school_id"]).to_numpy(),
                       "form": form, "construct": construct,
                       "score": bs["change"].to_numpy(float), "mean": bs["change"].to_numpy(float),
                       "se": bs["se"].to_numpy(float), "suppressed": False})
    gone = sorted(set(district.index) - set(bs["school_id"]))
    if gone:
        ch = pd.concat([ch, pd.DataFrame({"school_id": gone, "district_id": district.loc[gone]
                                          .to_numpy(), "form": form, "construct": construct,
                                          "score": np.nan, "mean": np.nan, "se": np.nan,
                                          "suppressed": True})], ignore_index=True)
    _check_columns(outcomes, ["school_id", outcome], "outcomes")
    if year in outcomes.columns:
        early = outcomes[outcomes[year] == y1].set_index("school_id")[outcome]
        late = outcomes[outcomes[year] == y2].drop(columns=year).copy()
        if late.empty or early.empty:
            raise ValueError(f"outcomes has a {year!r} column but no rows for year "
                             f"{y1 if early.empty else y2}; expected both survey years.")
        late[f"{outcome}_prior"] = late["school_id"].map(early).to_numpy(float)
    else:
        late = outcomes
    r = link(ch, late, outcome=outcome, construct=construct, form=form, controls=controls,
             change=True, **kw)
    note = (f"Score = change in the {form} {construct} score from {y1} to {y2} (1-99 points); "
            f"the outcome is the change in {outcome} over the same years.")
    meta = dataclasses.replace(r.meta, options={**r.meta.options, "years": [y1, y2],
                                                "score": "change"})
    return dataclasses.replace(r, notes=(*r.notes, note), meta=meta)
