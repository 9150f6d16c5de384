"""Measurement invariance: ladders for every estimator through one equality machinery, verdicts,
score tests, DIF location, partial invariance and latent means.

Modules
-------
ladder
    `invariance`: the ladder of nested multi-group CFAs (configural → metric → scalar → strict,
    or the ordinal ladder with a thresholds step), one table with fit, lavaan's ``lavTestLRT`` and
    a verdict per step; `InvarianceResult` with ``partial()`` and ``latent_means()``.
ordinal
    The ordinal rungs and their `cfa` options: Wu & Estabrook (2016) identification for ordered
    items (semTools ``measEq.syntax``), built by the parameter table like every equality.
verdicts
    The rule sets: Δ-fit cut-offs and ``lrt_dmacs`` (scaled Δχ² and dMACS).
lrt
    ``lavTestLRT`` for nested fits and each group's χ² share.
score
    ``lavTestScore`` for equality constraints; score and information of a released model.
dif
    Item effect sizes (dMACS), score tests of releasing an item's restrictions, the comparison of
    flagged with planted DIF.
steps
    What every ladder shares: the constraints of each step, fitting it, comparing it with its base.
partial
    The partial-invariance specification search.
"""
from instrument.invariance.dif import (STEP_KIND, ReleaseTests, compare_with_truth,
                                       constraint_type, dmacs_continuous, dmacs_ordinal,
                                       expected_score, item_effect_sizes, item_of, item_sds,
                                       release_tests)
from instrument.invariance.ladder import InvarianceResult, invariance, latent_mean_differences
from instrument.invariance.lrt import group_chisq, lrt_table
from instrument.invariance.ordinal import (ORDINAL_LADDER_OPTIONS, ORDINAL_STEP_NOTES,
                                           ORDINAL_STEPS, collapse_empty_categories)
from instrument.invariance.score import score_information, score_test_equality
from instrument.invariance.steps import DEFAULT_STEPS, RELEASE_COLUMNS, STEP_EQUAL
from instrument.invariance.verdicts import (RULE_SETS, rules_for, short_citation, verdict,
                                            verdict_dmacs)

__all__ = [
    "invariance", "InvarianceResult", "latent_mean_differences", "STEP_EQUAL", "DEFAULT_STEPS",
    "RELEASE_COLUMNS", "lrt_table", "group_chisq", "score_test_equality", "score_information",
    "RULE_SETS", "rules_for", "short_citation", "verdict", "verdict_dmacs",
    "ORDINAL_STEPS", "ORDINAL_STEP_NOTES", "ORDINAL_LADDER_OPTIONS", "collapse_empty_categories",
    "dmacs_continuous", "dmacs_ordinal", "expected_score", "item_sds", "item_effect_sizes",
    "ReleaseTests", "release_tests", "item_of", "constraint_type", "compare_with_truth",
    "STEP_KIND",
]
