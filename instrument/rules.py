"""Decision rules: every cut-off, delta and minimum n the package applies, with its source.

A verdict stores the `Rule` it used, so a report can quote both the threshold and the citation.
Never write a bare threshold in analysis code: add a named `Rule` here and refer to it.
"""
from __future__ import annotations

import operator
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

    def to_dict(self) -> dict:
        return asdict(self)


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
    "Precision gate, teacher form: passes when the response rate (respondents / roster_teachers) "
    "passes this rule, or, when it does not or the roster is unknown, when the reliability of the "
    "school mean passes MIN_SCHOOL_RELIABILITY.")

MIN_RESPONSE_RATE_FAMILIES = Rule(
    "response_rate.family", 0.20, ">=",
    "UChicago Impact / Illinois State Board of Education, 5Essentials Parent Supplement: a parent "
    "report is generated when at least 20 percent of parents respond "
    "(ISBE 5Essentials FAQ, https://www.isbe.net/5essentials).",
    "Precision gate, family form: as MIN_RESPONSE_RATE_TEACHERS with roster_families.")

MIN_SCHOOL_RELIABILITY = Rule(
    "reliability.school_mean", 0.70, ">=",
    "Nunnally, J. C. (1978). Psychometric Theory (2nd ed.). McGraw-Hill (.70 for research use); "
    "applied to the Spearman-Brown reliability of a school mean, k ICC1 / (1 + (k - 1) ICC1), as in "
    "Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability. In Klein & "
    "Kozlowski (Eds.), Multilevel theory, research, and methods in organizations (pp. 349-381).",
    "Precision gate alternative: a school whose response rate is below its form's rule (or unknown) "
    "is still shown when the reliability of its mean passes this rule.")

SCORE_BAND_CUTS = (20.0, 40.0, 60.0, 80.0)
SCORE_BAND_NAMES = ("Very Weak", "Weak", "Neutral", "Strong", "Very Strong")
SCORE_SCALE_SOURCE = (
    "UChicago Consortium on School Research / UChicago Impact, 5Essentials scoring: 1-99 scale, "
    "benchmark mean 50 and 20 points per standard deviation of school means; Very Weak 1-19, Weak "
    "20-39, Neutral 40-59, Strong 60-79, Very Strong 80-99. Bryk, A. S., Sebring, P. B., "
    "Allensworth, E., Luppescu, S., & Easton, J. Q. (2010). Organizing Schools for Improvement: "
    "Lessons from Chicago. University of Chicago Press.")
# --- end simulate / ingest / school scores -------------------------------------------------------
