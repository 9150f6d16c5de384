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
