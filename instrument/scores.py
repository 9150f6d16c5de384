"""School scores: respondent scale scores aggregated to schools, reported on a 1-99 scale.

A score is shown only when two gates hold: privacy (enough respondents) and representativeness
(a high enough response rate). Precision (the reliability of the school mean and the score's
standard error) decides how a shown score is presented, never whether non-response is ignored.
See DATA_CONTRACT.md, "School scores".

Nothing in the output identifies a respondent: rows are school x form x construct.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument.policy import band_probability
from instrument.responses import ResponseSet
from instrument.results import Table
from instrument.rules import (MIN_ITEM_SHARE, MIN_N_PRIVACY, MIN_RESPONSE_RATE_FAMILIES,
                              MIN_RESPONSE_RATE_TEACHERS, MIN_SCHOOL_RELIABILITY,
                              SCHOOL_MEAN_RELIABILITY_HIGH, SCORE_BAND_CUTS, SCORE_BAND_NAMES,
                              SCORE_INTERVAL_LEVEL, SCORE_SCALE_SOURCE, Rule)

SCORE_COLUMNS = ("school_id", "district_id", "form", "construct", "n", "response_rate", "mean", "se",
                 "reliability", "precision", "score", "score_se", "ci.lower", "ci.upper", "band",
                 "band_probability", "suppressed", "suppression_code", "suppression_reason")
# blanked (NaN / None) in suppressed rows
BLANKED = ("mean", "se", "precision", "score", "score_se", "ci.lower", "ci.upper", "band",
           "band_probability")
# Codes of `suppression_code` (joined with "; "): the report words them in each language.
SUPPRESSION_CODES = ("privacy", "response_rate", "response_rate_unknown")
ROSTER_COLUMN = {"teacher": "roster_teachers", "family": "roster_families"}
RESPONSE_RATE_RULE = {"teacher": MIN_RESPONSE_RATE_TEACHERS, "family": MIN_RESPONSE_RATE_FAMILIES}
SCORE_MEAN, SCORE_SD_POINTS, SCORE_MIN, SCORE_MAX = 50.0, 20.0, 1.0, 99.0


def roster_column(form: str) -> str:
    """The outcomes column holding a school's roster size for ``form`` (``roster_<form>``)."""
    return ROSTER_COLUMN.get(form, f"roster_{form}")


def response_rate_rule(form: str) -> Rule:
    """The representativeness gate of ``form`` (`MIN_RESPONSE_RATE_OTHER_FORMS` for a form
    other than teacher and family)."""
    from instrument.rules import MIN_RESPONSE_RATE_OTHER_FORMS

    return RESPONSE_RATE_RULE.get(form, MIN_RESPONSE_RATE_OTHER_FORMS)


def respondent_scores(responses: ResponseSet, *, bank: Any,
                      min_item_share: Rule = MIN_ITEM_SHARE) -> pd.DataFrame:
    """Scale score of every respondent: mean of the answered reverse-recoded items per construct.

    Returns a DataFrame with ``school_id``, ``district_id`` and one column per construct plus
    ``overall`` where the bank defines one for this form (`overall_columns`) (NaN where too few
    items were answered). Respondent ids are not carried.

    Notes
    -----
    score_c = mean of the answered items of construct c after ``bank.recode_reverse``, when the
    share of c's items answered passes `MIN_ITEM_SHARE`; ``overall`` is the unweighted mean of the
    keyed scores of the bank's overall constructs when the share of them scored passes the same
    rule (constructs on different response scales are averaged in their own units).
    """
    form = responses.form
    rec = bank.recode_reverse(responses.item_frame(), form=form)
    constructs = list(dict.fromkeys(
        bank.items.set_index("item_id").loc[list(responses.items), "construct"]))
    out = responses.data[["school_id", "district_id"]].reset_index(drop=True).copy()
    for c in constructs:
        cols = [i for i in bank.items_for(form, c) if i in rec.columns]
        x = rec[cols].to_numpy(float)
        fin = np.isfinite(x)
        answered = fin.sum(axis=1)
        m = np.where(fin, x, 0.0).sum(axis=1) / np.maximum(answered, 1)
        ok = np.array([min_item_share.passes(a / len(cols)) for a in answered])
        out[c] = np.where(ok & (answered > 0), m, np.nan)
    over = overall_columns(bank, form, constructs)
    if over:
        cs = out[over].to_numpy(float)
        k = np.isfinite(cs).sum(axis=1)
        ok = np.array([min_item_share.passes(a / len(over)) for a in k]) & (k > 0)
        s = np.where(np.isfinite(cs), cs, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["overall"] = np.where(ok, s / np.maximum(k, 1), np.nan)
    return out


def overall_columns(bank: Any, form: str, constructs: Sequence[str]) -> list[str]:
    """The constructs a respondent's ``overall`` score averages on ``form``: the bank's declared
    overall constructs (`instrument.bank.Bank.overall_constructs`), in the bank's order; empty,
    so that no overall score is computed, when the bank defines none for the form or when
    ``constructs`` (those scored) lack one of them (an overall score of a subset would be a
    different score under the same name).

    The overall score is a mean of keyed construct scores (reverse-keyed items recoded before
    each construct is scored), so higher means more of every construct it averages.
    """
    over = bank.overall_constructs(form)
    return over if over and set(over) <= set(constructs) else []


def respondent_factor_scores(responses: ResponseSet, fit: Any, *, bank: Any,
                             method: str = "regression") -> pd.DataFrame:
    """CFA factor scores of every respondent, on reverse-recoded items.

    Parameters
    ----------
    responses : ResponseSet
        One form's raw responses; reverse-keyed items are recoded with ``bank.recode_reverse``
        before scoring (the CFA is fitted to recoded items).
    fit : CFAResult
        A fitted CFA (`instrument.cfa`) whose observed variables are item ids of this form; for a
        multiple-group fit, the group column (e.g. ``language``) must be a column of the data.
    method : {"regression", "Bartlett"}
        Passed to ``fit.factor_scores`` (lavaan ``lavPredict(fit, method=)``).

    Returns
    -------
    DataFrame
        ``school_id``, ``district_id``, one column per latent variable of the fit (named as in
        the model syntax; these are the constructs) and ``overall`` where the bank defines one
        (`overall_columns`: the unweighted mean of those constructs' factor scores).
        Respondents with a missing answer on any of the fit's items get NaN (lavaan's listwise ``lavPredict``).

    Notes
    -----
    Regression (Thomson) scores ``f = Phi Lambda' Sigma^-1 (y - mu)`` shrink towards the mean;
    Bartlett scores ``(Lambda' Theta^-1 Lambda)^-1 Lambda' Theta^-1 (y - mu)`` do not. School
    means of either are aggregated exactly like raw scale scores (see `school_scores`).

    References
    ----------
    Thomson, G. H. (1935). The definition and measurement of "g" (general intelligence). Journal
    of Educational Psychology, 26, 241-262. Bartlett, M. S. (1937). The statistical conception of
    mental factors. British Journal of Psychology, 28, 97-104.
    """
    for attr in ("factor_scores", "ov_names", "lv_names"):
        if not hasattr(fit, attr):
            raise TypeError("fit= must be a CFAResult (from instrument.cfa) or None; got "
                            f"{type(fit).__name__}.")
    if method not in ("regression", "Bartlett"):
        raise ValueError(f"method= must be one of 'regression', 'Bartlett'; got {method!r}.")
    ov = list(fit.ov_names)
    unknown = [v for v in ov if v not in responses.items]
    if unknown:
        raise ValueError(f"fit= has observed variable(s) {unknown} that are not items of the "
                         f"{responses.form} responses ({responses.source}); expected item ids of "
                         "that form.")
    rec = bank.recode_reverse(responses.item_frame(), form=responses.form)
    data = rec.reset_index(drop=True)
    group = (getattr(fit, "meta", None) and fit.meta.options.get("group")) or None
    if group is not None:
        if group not in responses.data.columns:
            raise ValueError(f"fit= is a multiple-group fit by {group!r} but the responses have "
                             "no such column.")
        data[group] = responses.data[group].to_numpy()
    fs = fit.factor_scores(data, method=method)
    out = responses.data[["school_id", "district_id"]].reset_index(drop=True).copy()
    lv = list(fit.lv_names)
    for c in lv:
        out[c] = fs[c].to_numpy(float)
    over = overall_columns(bank, responses.form, lv)
    if over:
        out["overall"] = out[over].mean(axis=1, skipna=False)
    return out


def respondent_irt_scores(responses: ResponseSet, *, bank: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IRT trait estimates of every respondent: EAP of a logistic graded model per construct.

    Returns
    -------
    (scores, se)
        ``scores``: ``school_id``, ``district_id``, one column per construct and ``overall``
        where the bank defines one (`overall_columns`: the mean of those K construct EAPs);
        ``se``: the same columns holding each EAP's posterior SD (``overall``:
        ``sqrt(sum se_c^2) / K``, the constructs' items being disjoint). NaN where the
        respondent answered none of a construct's items.

    Notes
    -----
    Each construct's graded model is fitted by MML (`instrument.irt.irt`) to the
    reverse-recoded items (categories shifted to start at 0); EAP and its posterior SD as mirt
    ``fscores(method = "EAP")`` (`instrument.irt.fscores`). The trait scale is N(0, 1) in the
    respondents of these data.
    """
    from instrument.irt import fscores, irt

    form = responses.form
    rec = bank.recode_reverse(responses.item_frame(), form=form).reset_index(drop=True)
    constructs = list(dict.fromkeys(
        bank.items.set_index("item_id").loc[list(responses.items), "construct"]))
    ids = responses.data[["school_id", "district_id"]].reset_index(drop=True)
    out, err = ids.copy(), ids.copy()
    for c in constructs:
        cols = [i for i in bank.items_for(form, c) if i in rec.columns]
        x = rec[cols] - rec[cols].min()
        fit = irt(x, cols, se=False, tol=1e-5)
        sc = fscores(fit, x)
        out[c] = sc["theta"].to_numpy(float)
        err[c] = sc["se"].to_numpy(float)
    over = overall_columns(bank, form, constructs)
    if over:
        out["overall"] = out[over].mean(axis=1, skipna=False)
        err["overall"] = np.sqrt((err[over] ** 2).sum(axis=1, skipna=False)) / len(over)
    return out, err


def _icc1_anova(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA ICC1 with the n0 group size (NaN values dropped).

    Notes
    -----
    ICC1 = (MSB - MSW) / (MSB + (n0 - 1) MSW), n0 = (N - sum n_j^2 / N) / (J - 1). Equals
    ``icc1_anova_n0`` of the MathAchieve reference (psych/multilevel conventions). To be replaced by
    ``instrument.multilevel.icc`` when that lands.

    References
    ----------
    Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability. In K. J. Klein
    & S. W. J. Kozlowski (Eds.), Multilevel theory, research, and methods in organizations
    (pp. 349-381). Jossey-Bass.
    """
    ok = np.isfinite(values)
    y = values[ok]
    g = pd.factorize(groups[ok])[0]
    N, J = len(y), int(g.max()) + 1 if len(y) else 0
    if J < 2 or N <= J:
        return float("nan")
    n = np.bincount(g, minlength=J).astype(float)
    s = np.bincount(g, weights=y, minlength=J)
    means = s / n
    grand = y.mean()
    ssb = float((n * (means - grand) ** 2).sum())
    ssw = float(((y - means[g]) ** 2).sum())
    msb, msw = ssb / (J - 1), ssw / (N - J)
    n0 = (N - (n ** 2).sum() / N) / (J - 1)
    return float((msb - msw) / (msb + (n0 - 1) * msw))


def spearman_brown(icc1: float, k: float | np.ndarray) -> np.ndarray:
    """Reliability of a mean of k respondents: k ICC1 / (1 + (k - 1) ICC1) (NaN when k < 1).

    References
    ----------
    Bliese (2000), eq. for ICC(2) via Spearman-Brown; Spearman, C. (1910). British Journal of
    Psychology, 3, 271-295; Brown, W. (1910). British Journal of Psychology, 3, 296-322.
    """
    k = np.asarray(k, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = k * icc1 / (1 + (k - 1) * icc1)
    return np.where(k >= 1, r, np.nan)


def band_of(score: float) -> str | None:
    """Named band of a 1-99 score (cuts 20/40/60/80; 5Essentials); None for NaN."""
    if score is None or not np.isfinite(score):
        return None
    return SCORE_BAND_NAMES[int(np.searchsorted(SCORE_BAND_CUTS, score, side="right"))]


def round_score(score: np.ndarray | float) -> np.ndarray:
    """A 1-99 score as it is printed: the nearest whole number, halves rounded up.

    Bands are assigned from this number, so that the band shown always agrees with the number
    shown (a mean of 39.6 is printed 40 and is in the band starting at 40).
    """
    return np.floor(np.asarray(score, dtype=float) + 0.5)


def precision_of(reliability: float) -> str | None:
    """How precise a shown school score is: "high" (reliability of the school mean passes
    `SCHOOL_MEAN_RELIABILITY_HIGH`, .80), "adequate" (passes `MIN_SCHOOL_RELIABILITY`, .70) or
    "low" (shown with its wider interval and a caution); None when unknown."""
    if reliability is None or not np.isfinite(reliability):
        return None
    if SCHOOL_MEAN_RELIABILITY_HIGH.passes(reliability):
        return "high"
    return "adequate" if MIN_SCHOOL_RELIABILITY.passes(reliability) else "low"


def benchmark_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Benchmark of the 1-99 scale from shown (unsuppressed) school means: ``form construct mean
    sd n_schools`` (sd with ddof=1)."""
    shown = scores[~scores["suppressed"]]
    g = shown.groupby(["form", "construct"], sort=False)["mean"]
    return g.agg(mean="mean", sd="std", n_schools="count").reset_index()


def _benchmark_lookup(benchmark: Any, form: str) -> dict[str, tuple[float, float]]:
    if benchmark is None:
        return {}
    if isinstance(benchmark, pd.DataFrame):
        b = benchmark
        if "form" in b.columns:
            b = b[b["form"] == form]
        return {r.construct: (float(r.mean), float(r.sd)) for r in b.itertuples()}
    if isinstance(benchmark, Mapping):
        out = {}
        for c, v in benchmark.items():
            if isinstance(v, Mapping):
                out[c] = (float(v["mean"]), float(v["sd"]))
            else:
                out[c] = (float(v[0]), float(v[1]))
        return out
    raise TypeError("benchmark= must be None, a DataFrame with columns construct, mean, sd, or a "
                    f"mapping construct -> {{'mean', 'sd'}}; got {type(benchmark).__name__}.")


def school_scores(responses: ResponseSet, *, bank: Any, outcomes: pd.DataFrame | None = None,
                  icc1: Mapping[str, float] | None = None, fit: Any = None, benchmark: Any = None,
                  min_n: Rule = MIN_N_PRIVACY, min_response_rate: Rule | None = None,
                  min_item_share: Rule = MIN_ITEM_SHARE, scoring: str = "mean") -> pd.DataFrame:
    """School scores of one form, one row per school x construct (and ``overall`` where the bank
    defines one for the form, `overall_columns`).

    Parameters
    ----------
    responses : ResponseSet
        One form's responses (raw codes; reverse-keyed items are recoded here).
    bank : Bank
        Item bank (``items``, ``items_for``, ``recode_reverse``).
    outcomes : DataFrame, optional
        School outcomes table; its ``roster_teachers`` / ``roster_families`` give response rates.
    icc1 : mapping construct -> float, optional
        ICC1 per construct (and ``overall``) for the reliability of school means; when None it is
        estimated from these data by the one-way ANOVA ICC1 (n0 version).
    fit : CFAResult, optional
        A fitted CFA of this form's (reverse-recoded) items: school means are then means of the
        respondents' regression factor scores (`respondent_factor_scores`), one row per latent
        variable of the fit plus ``overall`` (mean of a respondent's factor scores); the 1-99
        scale, SE, reliability and gates are computed from them as for raw means. None (default):
        raw scale means of the bank's constructs.
    benchmark : DataFrame or mapping, optional
        Benchmark mean and SD of school means per construct for the 1-99 scale; when None, the
        mean and SD (ddof=1) of this data's school means that pass both gates.
    min_n : Rule
        Privacy gate (default `MIN_N_PRIVACY`, n >= 10).
    min_response_rate : Rule, optional
        Representativeness gate; by default `MIN_RESPONSE_RATE_TEACHERS` (.50) or
        `MIN_RESPONSE_RATE_FAMILIES` (.20) by form (5Essentials reporting thresholds).
    min_item_share : Rule
        Share of a construct's items a respondent must answer to be scored (default .5).
    scoring : {"mean", "irt"}
        ``"mean"`` (default): respondent scores are raw scale means (or factor scores with
        ``fit``). ``"irt"``: respondent scores are EAP estimates of a graded model per construct
        (`respondent_irt_scores`), and each respondent's measurement error is carried into the
        school SE (see Notes).

    Returns
    -------
    DataFrame
        Columns `SCORE_COLUMNS`. Suppressed rows have every column of `BLANKED` empty;
        ``suppression_code`` lists the failed gates (`SUPPRESSION_CODES`) and
        ``suppression_reason`` says which gate failed with the numbers.
        When the responses have a ``year`` column (a panel, e.g. from a plan with
        ``simulation.years``), each year is scored separately and a ``year`` column follows
        ``district_id``: long scores, one row per school x year x construct (see Notes).

    Notes
    -----
    n = respondents with a score; mean = mean of respondent scores; se = sd (ddof=1) / sqrt(n);
    reliability = n ICC1 / (1 + (n - 1) ICC1) (Spearman-Brown); response_rate = respondents of the
    school / roster. score = `round_score`(clip(50 + 20 (mean - benchmark mean) / benchmark SD,
    1, 99)); score_se = 20 se / benchmark SD; ci = score -/+ z score_se (`SCORE_INTERVAL_LEVEL`,
    clipped to 1-99); band from the rounded score: Very Weak < 20 <= Weak < 40 <= Neutral < 60
    <= Strong < 80 <= Very Strong; precision = `precision_of`(reliability); band_probability =
    the posterior probability that the school's true score is in the band shown, among the shown
    schools of the construct (`instrument.policy.band_probability`, Morris 1983).
    Privacy gate: n passes `min_n`. Representativeness gate: the response rate passes its rule; an
    unknown roster fails it (whether the respondents represent the school cannot be told). A row
    is shown only when both gates pass; a reliable mean does not make up for low response.

    With ``scoring="irt"`` the school mean is the mean of the respondents' EAPs and
    ``se^2 = sd^2 / n + mean(se_i^2) / n``: the sampling variance of the mean of the EAPs plus the
    posterior variance of the mean of the respondents' true traits given their answers (posterior
    errors independent across respondents), so each respondent's measurement error ``se_i`` (the
    EAP's posterior SD) is carried into the school SE, as the three-level measurement model
    5Essentials scores schools with puts person error at level 1 (Raudenbush, S. W., & Bryk,
    A. S. (2002). Hierarchical Linear Models (2nd ed.), ch. 8; Thousand Oaks, CA: Sage). The sum
    is conservative: the spread of the EAPs already carries their measurement error, so in
    simulated schools (``benchmarks/irt_school_se.py``: 6 graded items, 15 or 40 respondents)
    this SE was about 12% larger than the SD of the school means' errors, which ``sd / sqrt(n)``
    alone matched (95% interval coverage 95.3% and 97.5% against 92.2% and 95.0%).

    Years: every year uses one benchmark, so that scores of different years are on one scale and
    their difference is change (`instrument.policy.change`): the given ``benchmark``, or else the
    first year's shown school means (`benchmark_table` of the first year; a construct with no
    shown school that year takes the first year that has one). ICC1 (when not given)
    and response rates are per year; an outcomes table with a ``year`` column gives each year's
    rosters, one without serves every year.

    References
    ----------
    UChicago Consortium on School Research 5Essentials scoring; see
    ``instrument.rules.SCORE_SCALE_SOURCE`` and the cited sources of each gate's Rule.
    """
    if not isinstance(responses, ResponseSet):
        raise TypeError(f"responses= must be a ResponseSet; got {type(responses).__name__}.")
    if scoring not in ("mean", "irt"):
        raise ValueError(f"scoring= must be one of 'mean', 'irt'; got {scoring!r}.")
    if scoring == "irt" and fit is not None:
        raise ValueError("scoring='irt' scores respondents by IRT; fit= (a CFA) cannot be used "
                         "with it.")
    if scoring == "irt" and "year" in responses.data.columns:
        raise ValueError("scoring='irt' is not available for panel responses (a 'year' column); "
                         "score each year's ResponseSet separately.")
    if "year" in responses.data.columns:
        return _school_scores_by_year(responses, bank=bank, outcomes=outcomes, icc1=icc1,
                                      fit=fit, benchmark=benchmark, min_n=min_n,
                                      min_response_rate=min_response_rate,
                                      min_item_share=min_item_share)
    for name, rule in (("min_n", min_n), ("min_response_rate", min_response_rate),
                       ("min_item_share", min_item_share)):
        if rule is not None and not isinstance(rule, Rule):
            raise TypeError(f"{name}= must be an instrument.rules.Rule; got "
                            f"{type(rule).__name__}.")
    if outcomes is not None and not isinstance(outcomes, pd.DataFrame):
        raise TypeError(f"outcomes= must be a DataFrame or None; got {type(outcomes).__name__}.")
    form = responses.form
    rate_rule = min_response_rate or response_rate_rule(form)
    person_se = None
    if scoring == "irt":
        rs, person_se = respondent_irt_scores(responses, bank=bank)
    elif fit is not None:
        rs = respondent_factor_scores(responses, fit, bank=bank)
    else:
        rs = respondent_scores(responses, bank=bank, min_item_share=min_item_share)
    constructs = [c for c in rs.columns if c not in ("school_id", "district_id")]
    if icc1 is None:
        icc1 = {c: _icc1_anova(rs[c].to_numpy(float), rs["school_id"].to_numpy()) for c in constructs}
    else:
        missing = [c for c in constructs if c not in icc1]
        if missing:
            raise ValueError(f"icc1= lacks construct(s) {missing}; expected a value for each of "
                             f"{constructs}.")
    district = rs.groupby("school_id", sort=True)["district_id"].first()
    respondents = rs.groupby("school_id", sort=True).size()
    roster = pd.Series(np.nan, index=district.index)
    if outcomes is not None:
        if "school_id" in outcomes.columns and outcomes["school_id"].duplicated().any():
            dup = list(outcomes.loc[outcomes["school_id"].duplicated(), "school_id"].unique()[:5])
            raise ValueError(f"outcomes= has several rows for school_id(s) {dup}"
                             + (" (a 'year' column, but the responses have none: pass one "
                                "year's outcome rows)" if "year" in outcomes.columns else "")
                             + "; expected one row per school.")
        col = roster_column(form)
        if col not in outcomes.columns or "school_id" not in outcomes.columns:
            raise ValueError(f"outcomes= lacks column 'school_id' or {col!r}; expected the school "
                             "outcomes table of DATA_CONTRACT.md.")
        # schools of the outcomes table without any respondent are listed too (n = 0, suppressed)
        o = outcomes.set_index("school_id")
        extra = o.index.difference(district.index)
        if len(extra):
            district = pd.concat([district, o.loc[extra, "district_id"]
                                  if "district_id" in o.columns
                                  else pd.Series(pd.NA, index=extra)]).sort_index()
            respondents = respondents.reindex(district.index).fillna(0)
        roster = outcomes.set_index("school_id")[col].reindex(district.index).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (respondents / roster).where(roster > 0)

    bm = _benchmark_lookup(benchmark, form)
    frames = []
    for c in constructs:
        g = rs.groupby("school_id", sort=True)[c]
        n = g.count().reindex(district.index).fillna(0).astype(int)
        mean = g.mean().reindex(district.index)
        sd = g.std(ddof=1).reindex(district.index)
        if person_se is not None:
            err2 = (person_se[c] ** 2).where(rs[c].notna()).groupby(rs["school_id"]).mean()
            sd = np.sqrt(sd**2 + err2.reindex(district.index))
        se = sd / np.sqrt(n.where(n > 0))
        rel = spearman_brown(float(icc1[c]), n.to_numpy(float))
        frames.append(pd.DataFrame({
            "school_id": district.index, "district_id": district.to_numpy(), "form": form,
            "construct": c, "n": n.to_numpy(), "response_rate": rate.to_numpy(float),
            "mean": mean.to_numpy(float), "se": se.to_numpy(float), "reliability": rel}))
    out = pd.concat(frames, ignore_index=True)

    codes, reasons = [], []
    for r in out.itertuples():
        code, why = [], []
        if not min_n.passes(r.n):
            code.append("privacy")
            why.append(f"privacy gate: n = {r.n} < {min_n.threshold:g}")
        if not np.isfinite(r.response_rate):
            code.append("response_rate_unknown")
            why.append("representativeness gate: response rate unknown (no roster)")
        elif not rate_rule.passes(r.response_rate):
            code.append("response_rate")
            why.append(f"representativeness gate: response rate {r.response_rate:.2f} < "
                       f"{rate_rule.threshold:g}")
        codes.append("; ".join(code))
        reasons.append("; ".join(why))
    out["suppression_code"] = codes
    out["suppression_reason"] = reasons
    out["suppressed"] = out["suppression_reason"] != ""

    score, score_se = np.full(len(out), np.nan), np.full(len(out), np.nan)
    for c in constructs:
        idx = (out["construct"] == c).to_numpy()
        if c in bm:
            mu, sd = bm[c]
        elif benchmark is None:
            shown = out.loc[idx & ~out["suppressed"].to_numpy(), "mean"]
            mu, sd = float(shown.mean()), float(shown.std(ddof=1))
        else:
            raise ValueError(f"benchmark= lacks construct {c!r}; expected mean and sd for each of "
                             f"{constructs}.")
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (out.loc[idx, "mean"].to_numpy(float) - mu) / sd
        score[idx] = np.clip(SCORE_MEAN + SCORE_SD_POINTS * z, SCORE_MIN, SCORE_MAX)
        score_se[idx] = SCORE_SD_POINTS * out.loc[idx, "se"].to_numpy(float) / sd
    score = round_score(score)
    zq = float(stats.norm.ppf(0.5 + SCORE_INTERVAL_LEVEL / 2))
    out["precision"] = [precision_of(v) for v in out["reliability"]]
    out["score"] = score
    out["score_se"] = score_se
    out["ci.lower"] = np.clip(score - zq * score_se, SCORE_MIN, SCORE_MAX)
    out["ci.upper"] = np.clip(score + zq * score_se, SCORE_MIN, SCORE_MAX)
    out["band"] = [band_of(s) for s in score]
    sup = out["suppressed"].to_numpy()
    out["band_probability"] = np.nan
    for c in constructs:
        shown = (out["construct"] == c).to_numpy() & ~sup
        out.loc[shown, "band_probability"] = band_probability(score[shown], score_se[shown])
    out["band"] = out["band"].astype(object)
    out["precision"] = out["precision"].astype(object)
    for c in BLANKED:
        out.loc[sup, c] = None if c in ("band", "precision") else np.nan
    return out[list(SCORE_COLUMNS)]


def _school_scores_by_year(responses: ResponseSet, *, bank: Any, outcomes: pd.DataFrame | None,
                           benchmark: Any, **kw: Any) -> pd.DataFrame:
    """`school_scores` of each year of a stacked panel on one benchmark: the given one, or per
    construct the shown school means of the first year that has any (a construct with no shown
    school in a year gets that year's own, all-suppressed, blank scores)."""
    d = responses.data
    if d["year"].isna().any():
        rows = list(np.flatnonzero(d["year"].isna().to_numpy())[:5])
        raise ValueError(f"responses ({responses.source}) column 'year' is missing in row(s) "
                         f"{rows}; expected a survey year in every row.")
    if outcomes is not None and not isinstance(outcomes, pd.DataFrame):
        raise TypeError(f"outcomes= must be a DataFrame or None; got {type(outcomes).__name__}.")
    frames = []
    given, bm, constructs = benchmark, {}, []
    for y in sorted(d["year"].unique()):
        rs_y = ResponseSet(form=responses.form, data=d[d["year"] == y].drop(columns="year"),
                           items=responses.items, source=responses.source)
        o_y = outcomes
        if outcomes is not None and "year" in outcomes.columns:
            o_y = outcomes[outcomes["year"] == y].drop(columns="year")
            if o_y.empty:
                raise ValueError(f"outcomes= has a 'year' column but no rows for year {y}; "
                                 "expected the rosters of every survey year.")
        if given is not None:
            sc = school_scores(rs_y, bank=bank, outcomes=o_y, benchmark=given, **kw)
        else:
            sc = school_scores(rs_y, bank=bank, outcomes=o_y, benchmark=bm or None, **kw) \
                if constructs and set(constructs) <= set(bm) else None
            if sc is None:  # a construct without a benchmark yet: this year's shown schools
                sc = school_scores(rs_y, bank=bank, outcomes=o_y, benchmark=None, **kw)
                constructs = list(dict.fromkeys(sc["construct"]))
                own = {r.construct: (float(r.mean), float(r.sd))
                       for r in benchmark_table(sc).itertuples()}
                if bm:
                    full = {c: bm.get(c, own.get(c, (np.nan, np.nan))) for c in constructs}
                    sc = school_scores(rs_y, bank=bank, outcomes=o_y, benchmark=full, **kw)
                bm.update({c: v for c, v in own.items() if c not in bm})
        sc.insert(2, "year", y)
        frames.append(sc)
    return pd.concat(frames, ignore_index=True)


def suppression_list(scores: pd.DataFrame) -> pd.DataFrame:
    """The suppressed rows of a school-scores table with their reasons (no numbers shown)."""
    s = scores[scores["suppressed"]]
    year = ["year"] if "year" in s.columns else []
    return s[["school_id", "district_id", *year, "form", "construct", "n", "suppression_reason"]
             ].reset_index(drop=True)


def scores_summary(scores: pd.DataFrame) -> Table:
    """Per form x construct: schools shown, suppressed, and band counts."""
    rows = []
    for (f, c), g in scores.groupby(["form", "construct"], sort=False):
        row = {"form": f, "construct": c, "schools": len(g), "shown": int((~g["suppressed"]).sum()),
               "suppressed": int(g["suppressed"].sum())}
        for b in SCORE_BAND_NAMES:
            row[b] = int((g["band"] == b).sum())
        rows.append(row)
    rate_rules = "; ".join(response_rate_rule(f).describe()
                           for f in dict.fromkeys(scores["form"]))
    return Table("School scores", pd.DataFrame(rows), notes=(
        f"1-99 scale and bands: {SCORE_SCALE_SOURCE}",
        f"Privacy gate: {MIN_N_PRIVACY.describe()}",
        f"Representativeness gate: {rate_rules}",
        f"Precision (how a shown score is presented): {MIN_SCHOOL_RELIABILITY.describe()}"))
