"""Decision rules: every cut-off, delta and minimum n the package applies, with its source.

A verdict stores the `Rule` it used, so a report can quote both the threshold and the citation.
Never write a bare threshold in analysis code: add a named `Rule` here and refer to it.
"""
from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass
from typing import Literal

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Rule:
    """A named decision rule: ``value <op> threshold`` passes.

    Attributes
    ----------
    key : str
        The quantity the rule is applied to, in lavaan's vocabulary (``"cfi"``, ``"cfi.delta"``).
    threshold : float
        The cut-off.
    op : {"<=", ">=", "<", ">"}
        How a value is compared with the threshold; the rule passes when the comparison is true.
    source : str
        Full citation of where the rule comes from.
    note : str
        Conditions under which the rule was derived (shown when it is applied outside them).
    """

    key: str
    threshold: float
    op: Literal["<=", ">=", "<", ">"]
    source: str
    note: str = ""

    def passes(self, value: float) -> bool:
        """True when ``value`` satisfies the rule (NaN never passes)."""
        if value != value:  # NaN
            return False
        return bool(_OPS[self.op](value, self.threshold))

    def describe(self) -> str:
        """Human-readable form, e.g. ``"cfi >= 0.95 (Hu & Bentler, 1999)"``."""
        return f"{self.key} {self.op} {self.threshold:g} ({self.source})"

    def cite(self) -> str:
        """The source as an author-year citation, e.g. ``"Hu & Bentler (1999)"`` (`short_cite`)."""
        return short_cite(self.source)

    def to_dict(self) -> dict:
        return asdict(self)


def short_cite(source: str) -> str:
    """'Chen, F. F. (2007). Sensitivity ...' -> 'Chen (2007)'; two authors 'A & B (year)', three
    or more 'A et al. (year)'; the source itself when it does not start author-year."""
    m = re.match(r"\s*([^,(]+?),(.*?)\((\d{4})\)", source)
    if not m:
        return source
    first, rest, year = m.group(1).strip(), m.group(2), m.group(3)
    if "&" not in rest:
        return f"{first} ({year})"
    before, after = rest.split("&", 1)
    if before.count(".,") > 1:
        return f"{first} et al. ({year})"
    return f"{first} & {after.strip().split(',')[0]} ({year})"


# --- linker (predictive validity, issue 10) -------------------------------------------------------
CHRONIC_ABSENCE = Rule(
    "days_absent.share", 0.10, ">=",
    "Every Student Succeeds Act (2015) state reporting of chronic absenteeism, U.S. Department of "
    "Education, Civil Rights Data Collection definition: a student who misses 10% or more of the "
    "days enrolled, for any reason; Attendance Works (2014), 'Chronic absence: missing 10% or more "
    "of school for any reason', https://www.attendanceworks.org/chronic-absence/the-problem/",
    note="Counts excused, unexcused and disciplinary absences; the denominator is days enrolled, "
         "not days in the school year.")
FEW_CLUSTERS_CR1 = Rule(
    "n.clusters", 42, ">=",
    "Angrist, J. D., & Pischke, J.-S. (2009). Mostly Harmless Econometrics, sec. 8.2.3; Cameron, "
    "A. C., & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference. Journal of "
    "Human Resources, 50(2), 317-372. https://doi.org/10.3368/jhr.50.2.317",
    note="Below about 42 clusters CR1 standard errors are too small; prefer CR2 with "
         "Satterthwaite degrees of freedom (Pustejovsky & Tipton, 2018).")
BRIGHT_SPOT_TOP_SHARE = Rule(
    "residual.rank.share", 0.20, "<=",
    "Stage 2 design of the family-engagement study: 'Bright Spot' schools are those in the top 20% "
    "of engagement relative to the score predicted from their demographics, in two consecutive "
    "years (positive-deviance sampling; Pascale, Sternin & Sternin, 2010, The Power of Positive "
    "Deviance, Harvard Business Press).",
    note="A school passes in a year when its residual rank (1 = largest actual - expected score) "
         "divided by the number of schools is at most 0.20; a Bright Spot passes in every year "
         "considered (the last two years when several exist).")
# --- policy: rollups, reliability targets, change (instrument/policy.py) ---------------------
MIN_SCHOOLS_ROLLUP = Rule(
    "n.schools", 3, ">=",
    "Same rule-of-three as small-cell suppression of aggregates: a district mean of fewer than "
    "three schools reveals single schools (NCES Statistical Standard 4-2, 2012)")
RELIABLE_CHANGE = Rule(
    "abs(z)", 1.96, ">=",
    "Jacobson, N. S., & Truax, P. (1991). Clinical significance. J. Consult. Clin. Psychol., "
    "59(1), 12-19. https://doi.org/10.1037/0022-006X.59.1.12")
# --- invariance: change-in-fit rules for measurement invariance (instrument/invariance/) ----
CHEN_2007 = ("Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement "
             "invariance. Structural Equation Modeling, 14(3), 464-504. "
             "https://doi.org/10.1080/10705510701301834")
CHEUNG_RENSVOLD_2002 = ("Cheung, G. W., & Rensvold, R. B. (2002). Evaluating goodness-of-fit "
                        "indexes for testing measurement invariance. Structural Equation Modeling, "
                        "9(2), 233-255. https://doi.org/10.1207/S15328007SEM0902_5")
RUTKOWSKI_SVETINA_2014 = ("Rutkowski, L., & Svetina, D. (2014). Assessing the hypothesis of "
                          "measurement invariance in the context of large-scale international "
                          "surveys. Educational and Psychological Measurement, 74(1), 31-57. "
                          "https://doi.org/10.1177/0013164413498257")
_CHEN_NOTE = ("derived by simulation for two groups, continuous normal indicators and ML "
              "estimation")
# Chen (2007), p. 501: total N > 300 with equal group sizes.
DELTA_CFI_CHEN = Rule("cfi.delta", -0.010, ">=", CHEN_2007, _CHEN_NOTE)
DELTA_RMSEA_CHEN = Rule("rmsea.delta", 0.015, "<=", CHEN_2007, _CHEN_NOTE)
DELTA_SRMR_CHEN_METRIC = Rule("srmr.delta", 0.030, "<=", CHEN_2007, _CHEN_NOTE)
DELTA_SRMR_CHEN_SCALAR = Rule("srmr.delta", 0.010, "<=", CHEN_2007, _CHEN_NOTE)
# Chen (2007), p. 501: total N <= 300 or unequal group sizes.
DELTA_CFI_CHEN_SMALL = Rule("cfi.delta", -0.005, ">=", CHEN_2007, _CHEN_NOTE + "; small/unequal n")
DELTA_RMSEA_CHEN_SMALL = Rule("rmsea.delta", 0.010, "<=", CHEN_2007, _CHEN_NOTE + "; small/unequal n")
DELTA_SRMR_CHEN_SMALL_METRIC = Rule("srmr.delta", 0.025, "<=", CHEN_2007,
                                    _CHEN_NOTE + "; small/unequal n")
DELTA_SRMR_CHEN_SMALL_SCALAR = Rule("srmr.delta", 0.005, "<=", CHEN_2007,
                                    _CHEN_NOTE + "; small/unequal n")
CHEN_N_LARGE = Rule("ntotal", 300, ">", CHEN_2007, "Chen's large-sample condition")
# Groups count as "unequal" when the smallest is below this share of the largest (Chen's unequal
# condition was a 1:3 split; a 2:3 split is treated as equal here).
CHEN_EQUAL_GROUPS = Rule("n.min/n.max", 2 / 3, ">=", CHEN_2007,
                         "Chen compared equal splits with a 1:3 split")
DELTA_CFI_CHEUNG_RENSVOLD = Rule("cfi.delta", -0.01, ">=", CHEUNG_RENSVOLD_2002,
                                 "derived for two groups, ML, continuous indicators")
_RS_NOTE = "derived for 10 to 20 groups of about 1000 each, ML"
DELTA_CFI_RS_METRIC = Rule("cfi.delta", -0.020, ">=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_RMSEA_RS_METRIC = Rule("rmsea.delta", 0.030, "<=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_CFI_RS_SCALAR = Rule("cfi.delta", -0.010, ">=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_RMSEA_RS_SCALAR = Rule("rmsea.delta", 0.010, "<=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
RS_MANY_GROUPS = Rule("ngroups", 10, ">=", RUTKOWSKI_SVETINA_2014, "the many-groups condition")
LRT_ALPHA = Rule("pvalue", 0.05, ">=", "Conventional .05 level for the likelihood-ratio "
                 "(chi-square difference) test; Meredith (1993), Psychometrika 58(4), 525-543")
# Effect size of non-invariance: an item's (or a restriction's) dMACS below .20 is negligible.
# Nye et al. (2019) derived small / medium / large benchmarks of .20 / .40 / .70 from the effect
# sizes of published measurement-equivalence studies; dMACS is defined by Nye & Drasgow (2011).
NYE_DRASGOW_2011 = ("Nye, C. D., & Drasgow, F. (2011). Effect size indices for analyses of "
                    "measurement equivalence: Understanding the practical importance of "
                    "differences between groups. Journal of Applied Psychology, 96(5), 966-980. "
                    "https://doi.org/10.1037/a0022955")
NYE_2019 = ("Nye, C. D., Bradburn, J., Olenick, J., Bialko, C., & Drasgow, F. (2019). How big are "
            "my effects? Examining the magnitude of effect sizes in studies of measurement "
            "equivalence. Organizational Research Methods, 22(3), 678-709. "
            "https://doi.org/10.1177/1094428118761122")
DMACS_SMALL = Rule(
    "dmacs", 0.20, "<", NYE_2019 + "; " + NYE_DRASGOW_2011,
    "Passes (the non-invariance is negligible) below the 'small' benchmark. For ordered items "
    "dMACS is taken on the expected item score of the probit latent-response model (as the dmacs R "
    "package does for categorical indicators); the benchmarks were derived for continuous "
    "indicators.")
# A step of the ladder is rejected only when its restrictions fail the (scaled) chi-square
# difference test at LRT_ALPHA *and* at least one item's restriction reaches DMACS_SMALL.
# Locating items: a specification search by score tests (modification indices) that frees one
# item's restrictions at a time, largest statistic first, among items whose Bonferroni-adjusted
# score test is significant and whose effect reaches DMACS_SMALL; it stops when the step is no
# longer rejected (Yoon & Millsap, 2007), when no item qualifies, or when a factor would keep
# fewer than PARTIAL_MIN_INVARIANT invariant indicators.
YOON_MILLSAP_2007 = ("Yoon, M., & Millsap, R. E. (2007). Detecting violations of factorial "
                     "invariance using data-based specification searches: A Monte Carlo study. "
                     "Structural Equation Modeling, 14(3), 435-463. "
                     "https://doi.org/10.1080/10705510701301677")
SCORE_TEST_ALPHA = Rule(
    "pvalue.bonferroni", 0.05, "<", YOON_MILLSAP_2007,
    "An item is a candidate for release when its score test, multiplied by the number of items "
    "tested at that round (Bonferroni), is below .05; keeps the search's family-wise false-alarm "
    "rate near .05 per round.")
# Partial invariance: at least two invariant indicators per factor are needed to compare latent
# means (Byrne, Shavelson & Muthen, 1989); freeing more than 20% of a step's constrained
# parameters makes partial invariance questionable (Dimitrov, 2010).
PARTIAL_MAX_FREED_SHARE = Rule(
    "freed.share", 0.20, "<=",
    "Dimitrov, D. M. (2010). Testing for factorial invariance in the context of construct "
    "validation. Measurement and Evaluation in Counseling and Development, 43(2), 121-149. "
    "https://doi.org/10.1177/0748175610373459",
    "share of a step's equality constraints that partial invariance frees")
PARTIAL_MIN_INVARIANT = Rule(
    "n.invariant", 2, ">=",
    "Byrne, B. M., Shavelson, R. J., & Muthen, B. (1989). Testing for the equivalence of factor "
    "covariance and mean structures. Psychological Bulletin, 105(3), 456-466. "
    "https://doi.org/10.1037/0033-2909.105.3.456")
# --- report: fit heuristics quoted (not applied as verdicts) in the technical report ----------
_HU_BENTLER_1999 = (
    "Hu, L., & Bentler, P. M. (1999). Cutoff criteria for fit indexes in covariance structure "
    "analysis: Conventional criteria versus new alternatives. Structural Equation Modeling, 6(1), "
    "1-55. https://doi.org/10.1080/10705519909540118")
_HEURISTIC_NOTE = (
    "Derived for ML estimation of continuous, normal indicators in simulated CFA models; a "
    "heuristic, not a test (Marsh, Hau & Wen, 2004, Structural Equation Modeling, 11(3), 320-341. "
    "https://doi.org/10.1207/s15328007sem1103_2)")
FIT_CFI_HU_BENTLER = Rule("cfi", 0.95, ">=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_TLI_HU_BENTLER = Rule("tli", 0.95, ">=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_RMSEA_HU_BENTLER = Rule("rmsea", 0.06, "<=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_SRMR_HU_BENTLER = Rule("srmr", 0.08, "<=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_HEURISTICS = (FIT_CFI_HU_BENTLER, FIT_TLI_HU_BENTLER, FIT_RMSEA_HU_BENTLER, FIT_SRMR_HU_BENTLER)
# --- reliability / item analysis / school aggregation (helper `reliability`) -----------------
ITEM_MIN_CATEGORY_COUNT = Rule(
    "category.n", 10, ">=",
    "Linacre, J. M. (2002). Optimizing rating scale category effectiveness. Journal of Applied "
    "Measurement, 3(1), 85-106 (guideline 1: at least 10 observations per category)",
    note="Applied to every response category of an item; an empty category has n = 0.")
ITEM_MIN_CATEGORY_SHARE = Rule(
    "category.share", 0.05, ">=",
    "Common practice in rating-scale diagnostics (categories chosen by < 5% of respondents are "
    "sparse); cf. Linacre (2002), Journal of Applied Measurement, 3(1), 85-106",
    note="A convention, not a derived bound; collapse sparse adjacent categories before WLSMV.")
ITEM_MAX_FLOOR_CEILING = Rule(
    "floor_ceiling.share", 0.15, "<=",
    "Terwee, C. B., et al. (2007). Quality criteria were proposed for measurement properties of "
    "health status questionnaires. Journal of Clinical Epidemiology, 60(1), 34-42. "
    "https://doi.org/10.1016/j.jclinepi.2006.03.012",
    note="Terwee et al. define it for scale scores (> 15% at the lowest or highest possible "
         "score); applied here to each item's extreme categories.")
ITEM_MIN_ITEM_REST_R = Rule(
    "r.drop", 0.30, ">=",
    "Nunnally, J. C., & Bernstein, I. H. (1994). Psychometric theory (3rd ed.). McGraw-Hill; "
    "Ebel, R. L. (1954). Procedures for the analysis of classroom tests. Educational and "
    "Psychological Measurement, 14(2), 352-364",
    note="Corrected item-total (item-rest) correlation; Ebel's .30 was for achievement items.")
SCHOOL_MEAN_RELIABILITY = Rule(
    "icc2", 0.70, ">=",
    "Klein, K. J., et al. (2000). Multilevel analytical techniques: Commonalities, differences, "
    "and continuing questions. In Klein & Kozlowski (Eds.), Multilevel theory, research, and "
    "methods in organizations (pp. 512-553). Jossey-Bass; LeBreton, J. M., & Senter, J. L. "
    "(2008). Organizational Research Methods, 11(4), 815-852",
    note="Reliability of a school mean (ICC(2) or Spearman-Brown at the school's n).")
SCHOOL_MEAN_RELIABILITY_HIGH = Rule(
    "icc2", 0.80, ">=",
    "Nunnally, J. C., & Bernstein, I. H. (1994). Psychometric theory (3rd ed.). McGraw-Hill "
    "(.80 for research comparisons between groups)",
    note="Stricter target for reporting school-level scores.")
# --- bank (item bank schema) ---------------------------------------------------------------
MIN_ITEMS_PER_CONSTRUCT = Rule(
    "items.per.construct", 3, ">=",
    "Bollen, K. A. (1989). Structural Equations with Latent Variables. Wiley, p. 244 "
    "(three-indicator rule)",
    note="A construct needs at least three items on a form for its one-factor model to be "
         "identified on its own; the shipped bank aims for 5-8.")
# --- simulate / ingest / school scores (area: `simulate` helper, issue 9) ---------------------------
#
# Ingest quality checks, scale scoring and the two suppression gates of school scores.

STRAIGHTLINE_MIN_ITEMS = Rule(
    "straightline.n_items", 10, ">=",
    "Curran, P. G. (2016). Methods for the detection of carelessly invalid responses in survey "
    "data. Journal of Experimental Social Psychology, 66, 4-19. doi:10.1016/j.jesp.2015.07.006 "
    "(long-string / straight-lining index); Johnson, J. A. (2005). Ascertaining the validity of "
    "individual protocols from web-based personality inventories. J. Research in Personality, "
    "39(1), 103-129.",
    "A respondent is flagged as straight-lining when every answered scale item has the same code "
    "and the number of answered items passes this rule (raw codes, before reverse-keying, so an "
    "identical answer to reverse-keyed items is itself the warning sign).")

MIN_SECONDS_PER_ITEM = Rule(
    "duration.seconds_per_item", 2.0, ">=",
    "Huang, J. L., Curran, P. G., Keeney, J., Poposki, E. M., & DeShon, R. P. (2012). Detecting "
    "and deterring insufficient effort responding to surveys. Journal of Business and Psychology, "
    "27(1), 99-114. doi:10.1007/s10869-011-9231-8 (2 seconds per item cut-off).",
    "A response passes when duration / number of scale items on the form >= 2 s; otherwise it is "
    "flagged 'too_fast'. Applied only when the file has a duration column (seconds).")

MIN_ITEM_SHARE = Rule(
    "items.answered_share", 0.5, ">=",
    "Newman, D. A. (2014). Missing data: Five practical guidelines. Organizational Research "
    "Methods, 17(4), 372-411. doi:10.1177/1094428114548590 (scale scores as the mean of available "
    "items when at least half of the items are answered).",
    "A respondent's construct score is the mean of the answered (reverse-recoded) items when the "
    "share of the construct's items answered passes this rule; otherwise the score is missing. "
    "The 'overall' score uses the same share over constructs.")

MIN_N_PRIVACY = Rule(
    "n.respondents", 10, ">=",
    "Seastrom, M. (2010). Statistical Methods for Protecting Personally Identifiable Information in "
    "Aggregate Reporting (SLDS Technical Brief 3, NCES 2011-603). U.S. Department of Education, "
    "National Center for Education Statistics; a minimum n of 10 is the most common subgroup "
    "reporting threshold in states' ESSA accountability plans.",
    "Privacy gate: a school x form x construct result is shown only when at least this many "
    "respondents contributed a score.")

MIN_RESPONSE_RATE_TEACHERS = Rule(
    "response_rate.teacher", 0.50, ">=",
    "UChicago Impact / Illinois State Board of Education, 5Essentials Survey: school reports are "
    "generated when teacher (and student) response rates reach 50 percent "
    "(ISBE 5Essentials FAQ, https://www.isbe.net/5essentials).",
    "Representativeness gate, teacher form: a school score is shown only when the response rate "
    "(respondents / roster_teachers) passes this rule (and the privacy gate holds); an unknown "
    "roster fails it. A reliable mean from a few respondents does not make up for non-response.")

MIN_RESPONSE_RATE_FAMILIES = Rule(
    "response_rate.family", 0.20, ">=",
    "UChicago Impact / Illinois State Board of Education, 5Essentials Parent Supplement: a parent "
    "report is generated when at least 20 percent of parents respond "
    "(ISBE 5Essentials FAQ, https://www.isbe.net/5essentials).",
    "Representativeness gate, family form: as MIN_RESPONSE_RATE_TEACHERS with roster_families.")

MIN_RESPONSE_RATE_OTHER_FORMS = Rule(
    "response_rate.other", 0.50, ">=",
    "UChicago Impact / Illinois State Board of Education, 5Essentials Survey: the staff "
    "threshold of 50 percent (ISBE 5Essentials FAQ, https://www.isbe.net/5essentials), applied "
    "to any form of the bank other than teacher and family (no published threshold of its own).",
    "Representativeness gate, any other form (e.g. principal): as MIN_RESPONSE_RATE_TEACHERS "
    "with the roster column roster_<form>.")

MIN_SCALE_ALPHA = Rule(
    "alpha", 0.70, ">=",
    "Nunnally, J. C. (1978). Psychometric Theory (2nd ed.). McGraw-Hill (.70 for research use).",
    "Internal consistency of a construct's items (Cronbach's alpha, all respondents of a form): "
    "the brief says the items hang together well only when every construct passes.")

MIN_SCALE_OMEGA = Rule(
    "omega", 0.70, ">=",
    "Nunnally, J. C. (1978). Psychometric Theory (2nd ed.). McGraw-Hill (.70 for research use), "
    "applied to coefficient omega (McDonald, R. P. (1999). Test Theory: A Unified Treatment. "
    "Erlbaum) as recommended by Dunn, T. J., Baguley, T., & Brunsden, V. (2014). From alpha to "
    "omega: A practical solution to the pervasive problem of internal consistency estimation. "
    "British Journal of Psychology, 105(3), 399-412. https://doi.org/10.1111/bjop.12046",
    "Reliability of a construct's score from the CFA loadings (omega, all respondents of a form): "
    "the brief names every construct below it.")

MIN_SCHOOL_RELIABILITY = Rule(
    "reliability.school_mean", 0.70, ">=",
    "Nunnally, J. C. (1978). Psychometric Theory (2nd ed.). McGraw-Hill (.70 for research use); "
    "applied to the Spearman-Brown reliability of a school mean, k ICC1 / (1 + (k - 1) ICC1), as in "
    "Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability. In Klein & "
    "Kozlowski (Eds.), Multilevel theory, research, and methods in organizations (pp. 349-381).",
    "Precision of a shown school score: below this reliability the score is still shown (when both "
    "gates hold) but marked as imprecise, with its wider interval; it never decides whether a "
    "score is shown.")

SCORE_INTERVAL_LEVEL = 0.95   # level of the interval printed beside every school score


SCORE_BAND_CUTS = (20.0, 40.0, 60.0, 80.0)
SCORE_BAND_NAMES = ("Very Weak", "Weak", "Neutral", "Strong", "Very Strong")
SCORE_SCALE_SOURCE = (
    "UChicago Consortium on School Research / UChicago Impact, 5Essentials scoring: 1-99 scale, "
    "benchmark mean 50 and 20 points per standard deviation of school means; Very Weak 1-19, Weak "
    "20-39, Neutral 40-59, Strong 60-79, Very Strong 80-99. Bryk, A. S., Sebring, P. B., "
    "Allensworth, E., Luppescu, S., & Easton, J. Q. (2010). Organizing Schools for Improvement: "
    "Lessons from Chicago. University of Chicago Press.")
# --- end simulate / ingest / school scores -------------------------------------------------------

# --- dynamic fit index cut-offs (Monte Carlo) ------------------------------------------------------
MCNEISH_WOLF_2023 = ("McNeish, D., & Wolf, M. G. (2023). Dynamic fit index cutoffs for confirmatory "
                     "factor analysis models. Psychological Methods, 28(1), 61-88. "
                     "https://doi.org/10.1037/met0000425")
MCNEISH_WOLF_ONE = ("McNeish, D., & Wolf, M. G. (2023). Dynamic fit index cutoffs for one-factor "
                    "models. Behavior Research Methods, 55, 1157-1174. "
                    "https://doi.org/10.3758/s13428-022-01847-y")
MCNEISH_2023_CAT = ("McNeish, D. (2023). Dynamic fit index cutoffs for factor analysis with Likert, "
                    "ordinal, or binary responses. American Psychologist, 79(9), 1061-1075. "
                    "https://doi.org/10.1037/amp0001213")
DFI_SPECIFICITY = Rule(
    "quantile.true", 0.95, ">=", MCNEISH_WOLF_2023,
    note="95/5 rule: the cut-off is the 5th percentile of the misspecified model's SRMR/RMSEA "
         "(95th of CFI) and is kept when at least 95% of correct-model replications fit better")
DFI_SPECIFICITY_FALLBACK = Rule(
    "quantile.true", 0.90, ">=", MCNEISH_WOLF_2023,
    note="90/10 rule, reported only where the 95/5 rule gives no cut-off")
DFI_MIN_SENSITIVITY = Rule(
    "sensitivity", 0.50, ">=", MCNEISH_2023_CAT,
    note="categorical DFI: the cut-off is the correct model's 95th percentile (specificity 95%); "
         "a level's sensitivity below 50% gives no cut-off")
DFI_REPS = Rule("reps", 500, ">=", MCNEISH_WOLF_2023, note="replications per misspecification level")
DFI_MAX_N = Rule("n", 2000, "<=", MCNEISH_WOLF_2023,
                 note="the dynamic package simulates at most 2,000 observations per data set")
DFI_CROSS_LOADING_SHRINK = Rule(
    "cross_loading.share_of_max", 0.95, "<=", MCNEISH_WOLF_2023,
    note="a planted cross-loading is the smaller of the item's loading and 95% of the largest "
         "value that keeps the item's residual variance positive")
DFI_ONE_FACTOR_RESIDUAL_CORRELATION = Rule(
    "residual.correlation", 0.30, "<=", MCNEISH_WOLF_ONE,
    note="one-factor DFI: each misspecification is an omitted residual correlation of .30 between "
         "two of the lowest-loading items; levels add 1/3, 2/3 and all of floor(items/2) pairs")

# --- power planning (Monte Carlo) -----------------------------------------------------------------
POWER_TARGET = Rule(
    "power", 0.80, ">=",
    "Cohen, J. (1988). Statistical power analysis for the behavioral sciences (2nd ed.). "
    "Erlbaum; the .80 convention for Monte Carlo power in CFA: Muthen, L. K., & Muthen, B. O. "
    "(2002). How to use a Monte Carlo study to decide on sample size and determine power. "
    "Structural Equation Modeling, 9(4), 599-620. https://doi.org/10.1207/S15328007SEM0904_8",
    note="applied to the share of replications in which the fit passes, the planted DIF is "
         "flagged and the P10->P90 contrast's 95% CI excludes zero")
CONVERGENCE_TARGET = Rule(
    "convergence", 0.95, ">=",
    "Muthen, L. K., & Muthen, B. O. (2002). Structural Equation Modeling, 9(4), 599-620 "
    "(designs whose replications fail to converge are not recommended)",
    note="share of replications whose CFA converged without error")

# --- item response theory (instrument/irt/) --------------------------------------------------------
S_X2_ALPHA = Rule(
    "S_X2.p", 0.01, ">=",
    "Orlando, M., & Thissen, D. (2000). Likelihood-based item-fit indices for dichotomous item "
    "response theory models. Applied Psychological Measurement, 24(1), 50-64; generalized to "
    "polytomous items by Kang, T., & Chen, T. T. (2008). Journal of Educational Measurement, 45(4), "
    "391-406 (nominal alpha .01 as in their simulations).",
    note="An item misfits when the p value of its S-X2 is below .01.")
Q3_RELATIVE = Rule(
    "q3.minus.mean", 0.20, "<=",
    "Christensen, K. B., Makransky, G., & Horton, M. (2017). Critical values for Yen's Q3: "
    "Identification of local dependence in the Rasch model using residual correlations. Applied "
    "Psychological Measurement, 41(3), 178-194. https://doi.org/10.1177/0146621616677520",
    note="A pair is locally dependent when its Q3 exceeds the average Q3 of all pairs by more than "
         "0.2.")
DIF_ALPHA = Rule(
    "dif.chisq.p", 0.01, ">=",
    "Choi, S. W., Gibbons, L. E., & Crane, P. K. (2011). lordif: An R package for detecting "
    "differential item functioning using iterative hybrid ordinal logistic regression/item response "
    "theory and Monte Carlo simulations. Journal of Statistical Software, 39(8), 1-30 "
    "(criterion 'Chisqr', alpha = .01). https://doi.org/10.18637/jss.v039.i08",
    note="Likelihood-ratio chi-square of the ordinal logistic models: uniform (1 vs 2, 1 df), "
         "non-uniform (2 vs 3, 1 df), overall (1 vs 3, 2 df).")
IRT_LR_DIF_ALPHA = Rule(
    "dif.G2.p", 0.01, ">=",
    "Thissen, D., Steinberg, L., & Wainer, H. (1993). Detection of differential item functioning "
    "using the parameters of item response models. In P. W. Holland & H. Wainer (Eds.), "
    "Differential Item Functioning (pp. 67-113). Hillsdale, NJ: Erlbaum (G2 likelihood-ratio test "
    "of an item's parameters across groups); alpha .01 as lordif's criterion, so the two methods "
    "are read at the same level",
    note="Likelihood-ratio G2 of the two-group graded model with the studied item's slope and "
         "intercepts free against the model with them equal (df = number of item parameters); "
         "anchors purified (items flagged by the all-other-items-as-anchors test are dropped, then "
         "the items flagged against those anchors, until the anchor set repeats).")
DIF_R2_LORDIF = Rule(
    "dif.R2.delta", 0.02, "<",
    "Choi, S. W., Gibbons, L. E., & Crane, P. K. (2011). lordif. Journal of Statistical Software, "
    "39(8), 1-30 (criterion 'R2', pseudo.R2 = .02, Nagelkerke). https://doi.org/10.18637/jss.v039.i08",
    note="With criterion='R2' an item has DIF when its Nagelkerke Delta R2 (model 3 minus model 1) "
         "is .02 or more.")
DIF_R2_MODERATE = Rule(
    "dif.R2.delta", 0.035, "<",
    "Jodoin, M. G., & Gierl, M. J. (2001). Evaluating type I error and power rates using an effect "
    "size measure with the logistic regression procedure for DIF detection. Applied Measurement in "
    "Education, 14(4), 329-349 (Nagelkerke Delta R2: < .035 negligible, .035-.070 moderate, > .070 "
    "large); Zumbo, B. D. (1999). A handbook on the theory and methods of differential item "
    "functioning. Ottawa: Directorate of Human Resources Research and Evaluation, Department of "
    "National Defense (.13 / .26 for the same classes).",
    note="Magnitude: Delta R2 below .035 is negligible.")
DIF_R2_LARGE = Rule(
    "dif.R2.delta", 0.070, "<",
    "Jodoin, M. G., & Gierl, M. J. (2001). Applied Measurement in Education, 14(4), 329-349.",
    note="Nagelkerke Delta R2 of .070 or more is large DIF.")
SHORTFORM_REVERSE_SHARE = Rule(
    "share.reverse", 0.34, "<=",
    "Weijters, B., Baumgartner, H., & Schillewaert, N. (2013). Reversed item bias: An integrative "
    "model. Psychological Methods, 18(3), 320-334 (reversed items lower reliability and add a method "
    "factor; keep them a minority in short scales).",
    note="At most a third of a construct's short-form items may be reverse-keyed (1 of 3).")
DIF_MIN_GROUP = Rule(
    "n.group", 200, ">=",
    "Scott, N. W., Fayers, P. M., Aaronson, N. K., Bottomley, A., de Graeff, A., Groenvold, M., "
    "Gundy, C., Koller, M., Petersen, M. A., & Sprangers, M. A. G. (2009). A simulation study "
    "provided sample size guidance for differential item functioning (DIF) studies using short "
    "scales. Journal of Clinical Epidemiology, 62(3), 288-295 (about 200 per group for ordinal "
    "logistic regression). https://doi.org/10.1016/j.jclinepi.2008.06.003",
    note="DIF by ordinal logistic regression is run only when both language groups have at least "
         "200 respondents; otherwise it is reported as not tested.")
