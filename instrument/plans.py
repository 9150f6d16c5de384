"""Analysis plans as one declared schema: every section and every key, with ``file:line`` errors.

A plan (``analyses/*.yaml``) is read as YAML 1.2 with line numbers (`instrument.bank.yamlio`, so
``No``/``Yes``/``on``/``off`` stay text) and validated against `AnalysisPlan`, a pydantic v2
model that forbids unknown keys at every level; its ``simulation`` section is the population
model `Simulation` (`PopulationPlanSchema` is the same plan with ``simulation`` required, for
`instrument.population`). Each problem becomes one line ``file:line: key.path: what was
expected`` (`instrument.bank.yamlio.schema_problems`) and all of them are raised together as
`PlanError`.

Sections
--------
``name``, ``description``, ``seed``
    Free text and the simulation's default seed.
``bank``
    The item bank folder or manifest, relative to the plan file's folder (default: shipped bank).
``simulation``
    The population model of simulated data (`Simulation`, documented key by key in
    ``analyses/default.yaml``; drawn by `instrument.simulate`).
``data``
    Fielded files instead of a simulation: one entry per form of the bank with ``files`` (one file
    or a list, stacked) and the ingest mapping (``columns``, ``ignore``, ``defaults``, ``sheet``,
    ``encoding``, ``labels``, ``language_values``, ``background``, ``format``; or ``mapping:`` a
    mapping file) and optionally ``outcomes:`` a school outcomes file. Paths are relative to the
    plan file's folder. ``form: path`` is short for ``form: {files: [path]}``.
``analysis``
    Settings of the analysis stages (`instrument.pipeline.DEFAULT_ANALYSIS` gives the defaults).
``stages``
    ``stage: false`` switches a stage off (it stands aside, saying the plan switched it off).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from instrument.bank.yamlio import (Expect, Strict, fail_at, plain, read_yaml,
                                     schema_problems)

ESTIMATORS = ("ML", "MLR", "WLSMV", "ULSMV")
MISSING_METHODS = ("listwise", "pairwise", "fiml")
RULE_SETS = ("lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt")
#: Stages a plan may switch off (``stages: {irt: false}``); bank, data and reports always run.
OPTIONAL_STAGES = ("item_analysis", "efa", "cfa", "syntax", "reliability", "invariance",
                   "multilevel", "irt", "irt_dif", "scores", "linker", "policy")


class PlanError(ValueError):
    """A plan that does not follow the schema: one line per problem, ``file:line: key: expected``."""


class InvarianceSpec(Strict):
    """One invariance ladder: a form of the bank and a grouping column."""

    form: str
    group: str


class ShortformSpec(Strict):
    """IRT short form: the form and the items kept per construct."""

    form: str = "teacher"
    items_per_construct: int = Field(3, ge=1)


class AnalysisSettings(Strict):
    """``analysis:``: settings of the analysis stages (missing keys take the defaults)."""

    estimator: Literal["ML", "MLR", "WLSMV", "ULSMV"] = "WLSMV"
    missing: Optional[Literal["listwise", "pairwise", "fiml"]] = None
    split_seed: int = Field(1, ge=0)
    parallel_iterations: int = Field(20, ge=1)
    invariance: list[InvarianceSpec] = []
    invariance_steps: Optional[list[str]] = None
    rule_set: Literal["lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014",
                      "lrt"] = "lrt_dmacs"
    outcomes: list[str] = []
    shortform: ShortformSpec = ShortformSpec()
    # respondent scores behind school scores: raw scale means, or graded-model EAPs with the
    # person measurement error carried into the school SE (`instrument.scores.school_scores`)
    scoring: Literal["mean", "irt"] = "mean"
    # the school score the linker and policy stages use: a construct id or "overall" (None: the
    # bank's overall score; checked against the bank by `instrument.pipeline.linked_construct`)
    linked_construct: Optional[str] = None


class IngestMapping(Strict):
    """How to read a fielded file: inline under ``data: <form>:`` in a plan, or a mapping file
    (`instrument.io.ingest.load_mapping`). Every key is optional; unknown keys are refused.

    ``columns`` file column -> canonical name; ``labels`` scale id (or ``*``) -> {text label:
    code}; ``language_values`` file value -> language code; ``defaults`` column -> constant for
    a column the file lacks; ``ignore`` file columns to skip; ``background`` extra columns kept as
    text; ``sheet`` the xlsx sheet (name or number); ``format``; ``encoding`` of a CSV (a Python
    codec name, checked here so a typo is named before any file is read).
    """

    columns: Optional[dict[str, str]] = None
    labels: Optional[dict[str, dict[str, int]]] = None
    language_values: Optional[dict[str, str]] = None
    defaults: Optional[dict[str, Union[str, int, float]]] = None
    ignore: Optional[list[str]] = None
    background: Optional[list[str]] = None
    sheet: Optional[Union[str, int]] = None
    format: Optional[Literal["csv", "qualtrics", "xlsx", "sav", "dta", "parquet"]] = None
    encoding: Optional[str] = None

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: Optional[str]) -> Optional[str]:
        import codecs

        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}; expected a Python codec name such as "
                                 "utf-8, latin-1 or cp1252") from None
        return v

    def ingest_mapping(self) -> dict[str, Any]:
        """The mapping keys that are set (what `instrument.io.ingest.ingest` reads)."""
        return {k: getattr(self, k) for k in IngestMapping.model_fields
                if getattr(self, k) is not None}


class FormData(IngestMapping):
    """``data: <form>:``: the files of one form and how to read them (an ingest mapping inline,
    or ``mapping:`` a mapping file)."""

    files: list[str] = Field(min_length=1)
    mapping: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if isinstance(v, str):          # form: path
            return {"files": [v]}
        if isinstance(v, Mapping) and isinstance(v.get("files"), str):
            return {**v, "files": [v["files"]]}
        return v


class DataSection(Strict):
    """``data:``: one `FormData` per form of the bank (any form id), and ``outcomes``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, FormData]

    outcomes: Optional[str] = None

    @model_validator(mode="after")
    def _some_form(self) -> "DataSection":
        if not self.__pydantic_extra__:
            raise ValueError("expected at least one form with its files (e.g. teacher: "
                             "{files: [teacher.csv]})")
        return self

    def forms(self) -> dict[str, FormData]:
        """Form id -> its files and mapping, in the plan's order."""
        return dict(self.__pydantic_extra__)


# --------------------------------------------------------------------------------------------
# The population model (``simulation:``)
# --------------------------------------------------------------------------------------------
# Bounds say what the simulator needs to draw a valid population: shares and probabilities in
# [0, 1] (summing to 1 where they are a distribution); correlations strictly inside (-1, 1) so
# correlation matrices stay positive definite; standardized loadings strictly inside (0, 1) so
# every item keeps unique variance; variance shares (ICC, district shares) below 1 so some
# variance stays within the cluster; counts and spreads positive.

OUTCOMES = ("attendance", "chronic_absence", "ela_proficiency", "math_proficiency")
GRADE_BANDS = ("elementary", "middle", "high")
MAR_VARIABLES = ("years_at_school",)

Number = Annotated[float, Field(allow_inf_nan=False)]             # finite
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1)]
OpenShare = Annotated[float, Field(gt=0, lt=1)]
Fraction = Annotated[float, Field(ge=0, lt=1)]       # a variance share below 1 (ICC)
Correlation = Annotated[float, Field(gt=-1, lt=1)]
Effect = Annotated[float, Field(ge=-1, le=1)]


def _sum_to_one(v: dict[str, float]) -> dict[str, float]:
    """Shares of a distribution (grade bands, locales) sum to 1."""
    if abs(sum(v.values()) - 1.0) > 1e-6:
        raise ValueError(f"expected shares summing to 1; got {sum(v.values()):g}")
    return v


def _probabilities_by_k(v: dict[str, list[float]]) -> dict[str, list[float]]:
    """Key k (the number of categories) holds k probabilities > 0 summing to 1."""
    fail_at(((k,), f"expected a list of {k} probabilities > 0 summing to 1; got {p!r}", p)
            for k, p in v.items()
            if len(p) != int(k) or any(x <= 0 for x in p) or abs(sum(p) - 1) > 1e-6)
    return v


def _construct_pair(v: dict[str, float]) -> dict[str, float]:
    """A pair of constructs is written ``a~b`` (which constructs exist is checked against the bank
    when simulating)."""
    fail_at(((k,), "expected a key 'construct_a~construct_b'", k) for k in v if k.count("~") != 1)
    return v


class Schools(Strict):
    """``simulation.schools``: the sample of schools and their covariates."""

    class Enrollment(Strict):
        """Mean enrollment per grade band and its coefficient of variation."""

        class ByBand(Strict):
            elementary: Positive
            middle: Positive
            high: Positive

        mean: ByBand
        cv: NonNegative

    class Poverty(Strict):
        """Share of students in poverty: mean, spread on the logit scale, district share."""

        mean: OpenShare
        sd_logit: NonNegative
        district_share: Fraction

    class ElShare(Strict):
        """Share of English learners: mean, spread on the logit scale, correlation with poverty."""

        mean: OpenShare
        sd_logit: NonNegative
        poverty_correlation: Correlation

    n: int = Field(ge=2)
    districts: int = Field(ge=1)
    district_concentration: Optional[Positive] = None
    grade_band: Annotated[dict[Literal[GRADE_BANDS], Share],  # type: ignore[valid-type]
                          Field(min_length=1), AfterValidator(_sum_to_one)]
    locale: Annotated[dict[str, Share], Field(min_length=1), AfterValidator(_sum_to_one)]
    enrollment: Enrollment
    poverty: Poverty
    el_share: ElShare
    engagement_poverty_correlation: Correlation
    engagement_district_share: Optional[Fraction] = None

    @field_validator("districts")
    @classmethod
    def _at_most_schools(cls, v: int, info: ValidationInfo) -> int:
        n = info.data.get("n")
        if n is not None and v > n:
            raise ValueError(f"expected <= schools.n ({n}); got {v}")   # each holds a school
        return v


class FormPopulation(Strict):
    """``simulation.forms.<form>``: respondents, clustering, measurement model, DIF, missingness."""

    class Respondents(Strict):
        """Respondents per school: negative-binomial mean and dispersion."""

        mean: Positive
        dispersion: Positive

    class ResponseRate(Strict):
        """Response rate: beta mean and concentration."""

        mean: OpenShare
        concentration: Positive

    class SpanishShare(Strict):
        """Share answering in Spanish: a base plus a slope on the school's English-learner share."""

        base: Share
        per_el_share: NonNegative

    class PerConstruct(Strict):
        """``default`` for every construct, construct ids for the exceptions."""

        model_config = ConfigDict(extra="allow")
        __pydantic_extra__: dict[str, Fraction]
        default: Fraction

    class FactorCorrelation(Strict):
        """Correlation of the constructs: a default and named pairs."""

        default: Correlation
        pairs: Optional[Annotated[dict[str, Correlation], AfterValidator(_construct_pair)]] = None

    class Loadings(Strict):
        """Standardized loadings are drawn between low and high."""

        low: OpenShare
        high: OpenShare

        @model_validator(mode="after")
        def _ordered(self) -> "FormPopulation.Loadings":
            if self.low > self.high:
                raise ValueError(f"expected low <= high; got low {self.low:g}, high "
                                 f"{self.high:g}")
            return self

    class ItemOverride(Strict):
        """One item's own loading or difficulty."""

        loading: Optional[OpenShare] = None
        difficulty: Optional[Number] = None

    class Dif(Strict):
        """Language DIF planted on one item for Spanish respondents."""

        item: str
        threshold_shift: Optional[Number] = None
        loading_diff: Optional[Effect] = None

    class Missing(Strict):
        """Missing answers: completely at random, and at random given a respondent variable."""

        class Mar(Strict):
            """Extra missingness below a value of ``variable``."""

            variable: Literal[MAR_VARIABLES]  # type: ignore[valid-type]
            below: Number
            extra: Fraction

        mcar: Fraction
        mar: Optional[Mar] = None

    respondents: Respondents
    response_rate: ResponseRate
    spanish_share: SpanishShare
    icc: PerConstruct
    school_general: Fraction
    factor_correlation: FactorCorrelation
    loadings: Loadings
    difficulty_sd: NonNegative
    category_probabilities: Annotated[
        dict[Annotated[str, Field(pattern=r"^[1-9][0-9]*$"),
                       Expect("the number of categories as key (quoted, e.g. \"4\")")],
             list[Share]], Field(min_length=1),
        AfterValidator(_probabilities_by_k)]
    items: Optional[dict[str, ItemOverride]] = None
    dif: Optional[list[Dif]] = None
    missing: Missing
    years_at_school_mean: NonNegative


class OutcomePopulation(Strict):
    """``simulation.outcomes.<outcome>``: prior rate, its change and the change's causes."""

    class Effects(Strict):
        """Effects of engagement and poverty on the change in the outcome."""

        engagement: Effect
        poverty: Effect

    prior_mean: Share
    prior_poverty: Number
    prior_sd: NonNegative
    change_mean: Effect
    change_sd: NonNegative
    effects: Effects


class Years(Strict):
    """``simulation.years``: several survey years with true school change (absent: one year)."""

    class ChangeEffects(Strict):
        """Effect of the change in engagement on each outcome's change."""

        attendance: Optional[Effect] = None
        chronic_absence: Optional[Effect] = None
        ela_proficiency: Optional[Effect] = None
        math_proficiency: Optional[Effect] = None

    n: int = Field(ge=1)
    first: Optional[int] = Field(None, ge=1900, le=2200)
    change_sd: NonNegative
    change_engagement_effect: Optional[ChangeEffects] = None


class Simulation(Strict):
    """``simulation:``: the population model of simulated data (``analyses/default.yaml``)."""

    class Forms(Strict):
        """Both forms are simulated."""

        teacher: FormPopulation
        family: FormPopulation

    class Outcomes(Strict):
        """Every outcome the linker reads is simulated."""

        attendance: OutcomePopulation
        chronic_absence: OutcomePopulation
        ela_proficiency: OutcomePopulation
        math_proficiency: OutcomePopulation

    schools: Schools
    forms: Forms
    outcomes: Outcomes
    years: Optional[Years] = None


# --------------------------------------------------------------------------------------------
# Self-check plans (``analyses/selfcheck/*.yaml``)
# --------------------------------------------------------------------------------------------

def _ordered_pair(v: list[float]) -> list[float]:
    """An accepted range [low, high] with low <= high."""
    if v[0] > v[1]:
        raise ValueError(f"expected [low, high] with low <= high; got {v}")
    return v


Range = Annotated[list[Share], Field(min_length=2, max_length=2), AfterValidator(_ordered_pair)]


class SelfCheckAccept(Strict):
    """What result passes: ``relbias_abs_max`` and ``coverage`` (``check: loadings``) or
    ``type1`` (``check: metric_invariance``), each a bound or a [low, high] range."""

    relbias_abs_max: Optional[Positive] = None
    coverage: Optional[Range] = None
    type1: Optional[Range] = None


class SelfCheckPlan(Strict):
    """A self-check plan: a population with known truth, a Monte Carlo design and the range a
    correct engine must land in (`instrument.montecarlo.selfcheck`).

    ``check: loadings`` (the default) recovers the loadings from samples of ``n`` rows;
    ``check: metric_invariance`` tests equal loadings across ``groups`` (name: rows) at level
    ``alpha``. ``distribution: t`` needs ``df`` (> 2, so the variance is finite);
    ``distribution: ordinal`` needs the ``thresholds`` every item is cut at (increasing).
    Loadings and factor correlations are standardized, so strictly inside (-1, 1).
    """

    name: str
    check: Literal["loadings", "metric_invariance"] = "loadings"
    model: str
    loadings: dict[str, dict[str, Correlation]] = Field(min_length=1)
    factor_correlations: Optional[dict[
        Annotated[str, Field(pattern=r"^\s*\w+\s*~~\s*\w+\s*$"),
                  Expect("a factor pair such as 'f1 ~~ f2'")], Correlation]] = None
    n: Optional[int] = Field(None, ge=2)
    groups: Optional[dict[str, Annotated[int, Field(ge=2)]]] = Field(None, min_length=2)
    reps: int = Field(ge=1)
    seed: int = Field(ge=0)
    estimator: Literal[ESTIMATORS]  # type: ignore[valid-type]
    distribution: Literal["normal", "t", "ordinal"]
    df: Optional[float] = Field(None, gt=2)
    thresholds: Optional[list[Number]] = Field(None, min_length=1)
    alpha: Optional[OpenShare] = None
    accept: SelfCheckAccept

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"expected increasing thresholds; got {v}")
        return v

    @model_validator(mode="after")
    def _keys_of_the_check(self) -> "SelfCheckPlan":
        needs = {"loadings": ["n", "accept.relbias_abs_max", "accept.coverage"],
                 "metric_invariance": ["groups", "alpha", "accept.type1"]}[self.check]
        needs += {"t": ["df"], "ordinal": ["thresholds"]}.get(self.distribution, [])
        whose = {"df": f"distribution: {self.distribution}",
                 "thresholds": f"distribution: {self.distribution}"}
        fail_at([(tuple(key.split(".")), f"required key missing; expected it with "
                                         f"{whose.get(key, f'check: {self.check}')}", None)
                 for key in needs if _value_at(self, key) is None]
                + [(("factor_correlations", pair), "expected a pair of factors of loadings "
                    f"({', '.join(self.loadings)}); got {pair!r}", pair)
                   for pair in self.factor_correlations or {}
                   if any(f.strip() not in self.loadings for f in pair.split("~~"))])
        return self


def _value_at(model: BaseModel, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part)
    return model


class AnalysisPlan(Strict):
    """A whole analysis plan (see the module docstring for the sections)."""

    name: Optional[str] = None
    description: Optional[str] = None
    seed: Optional[int] = Field(None, ge=0)
    bank: Optional[str] = None
    simulation: Optional[Simulation] = None
    data: Optional[DataSection] = None
    analysis: AnalysisSettings = AnalysisSettings()
    stages: dict[Literal[OPTIONAL_STAGES], bool] = {}   # type: ignore[valid-type]

    @model_validator(mode="after")
    def _simulated_or_fielded(self) -> "AnalysisPlan":
        if self.data is not None and self.simulation is not None:
            raise ValueError("expected either simulation: (simulated data) or data: (fielded "
                             "files), not both")
        return self


class PopulationPlanSchema(AnalysisPlan):
    """A plan to simulate from: an `AnalysisPlan` whose ``simulation`` section is required."""

    simulation: Simulation


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def plan_dir(plan_path: str | Path | None) -> Path:
    """The folder a plan's relative paths (bank, data files, mappings) are relative to: the plan
    file's folder, or the working directory for a plan given as a mapping (``None`` or
    ``"<dict>"``)."""
    return Path(plan_path).parent if plan_path and str(plan_path) != "<dict>" else Path.cwd()


def default_plan_path() -> Path:
    """The shipped default analysis plan (package data)."""
    from importlib.resources import files

    return Path(str(files("instrument") / "analyses" / "default.yaml"))


def read_plan(path: str | Path) -> tuple[dict[str, Any], Any]:
    """The plan file as (plain dict, the line-numbered tree); `PlanError` when it is not a
    readable YAML mapping."""
    p = Path(path)
    if p.is_dir():
        raise PlanError(f"{p}: is a folder; expected an analysis plan (a YAML file).")
    tree, problems = read_yaml(p, str(p))
    if problems:
        raise PlanError("\n".join(str(q) for q in problems))
    if not isinstance(tree, Mapping):
        raise PlanError(f"{p}:1: (top level): expected a mapping of plan sections "
                        "(name, bank, simulation or data, analysis, stages).")
    return plain(tree), tree


def check_plan(spec: Mapping[str, Any], *, source: str = "<plan>", tree: Any = None,
               schema: type[BaseModel] = AnalysisPlan) -> Any:
    """Validate a plan mapping against ``schema`` (`AnalysisPlan`; `PopulationPlanSchema` when
    the plan must simulate; `SelfCheckPlan`); `PlanError` lists every problem, one per line,
    each with the file line found in ``tree`` (the tree `read_plan` returned; none for a
    mapping)."""
    if not isinstance(spec, Mapping):
        raise PlanError(f"{source}: (top level): expected a mapping of plan sections; got "
                        f"{type(spec).__name__}")
    try:
        return schema.model_validate(dict(spec))
    except ValidationError as exc:
        problems = schema_problems(exc, tree if tree is not None else spec, source, schema)
        raise PlanError("\n".join(map(str, problems))) from None


def load_plan(plan: str | Path | None = None) -> dict[str, Any]:
    """Read and validate an analysis plan; the plain mapping (the shipped default when None).

    Raises
    ------
    PlanError
        One line per problem: ``file:line: key.path: what was expected``.
    """
    path = Path(plan) if plan is not None else default_plan_path()
    if not path.exists():
        raise PlanError(f"{path}: plan file not found; expected an analysis plan (a YAML file).")
    spec, tree = read_plan(path)
    check_plan(spec, source=str(path), tree=tree)
    return spec
