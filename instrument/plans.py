"""Analysis plans as one declared schema: every section and every key, with ``file:line`` errors.

A plan (``analyses/*.yaml``) is read as YAML 1.2 with line numbers (`instrument.bank.yamlio`, so
``No``/``Yes``/``on``/``off`` stay text) and validated against `AnalysisPlan`, a pydantic v2
model that forbids unknown keys at every level. Each problem becomes one line
``file:line: key.path: what was expected`` and all of them are raised together as `PlanError`.

Sections
--------
``name``, ``description``, ``seed``
    Free text and the simulation's default seed.
``bank``
    The item bank folder or manifest, relative to the plan file's folder (default: shipped bank).
``simulation``
    The population model of simulated data (`instrument.population`, documented key by key in
    ``analyses/default.yaml``).
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
from typing import Any, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from instrument.bank.yamlio import LineDict, LineList, read_yaml

ESTIMATORS = ("ML", "MLR", "WLSMV", "ULSMV")
MISSING_METHODS = ("listwise", "pairwise", "fiml")
RULE_SETS = ("lrt_dmacs", "chen2007", "cheung_rensvold2002", "rutkowski_svetina2014", "lrt")
#: Stages a plan may switch off (``stages: {irt: false}``); bank, data and reports always run.
OPTIONAL_STAGES = ("item_analysis", "efa", "cfa", "syntax", "reliability", "invariance",
                   "multilevel", "irt", "irt_dif", "scores", "linker", "policy")
MAPPING_KEYS = ("columns", "labels", "language_values", "defaults", "ignore", "background",
                "sheet", "format", "encoding")


class PlanError(ValueError):
    """A plan that does not follow the schema: one line per problem, ``file:line: key: expected``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InvarianceSpec(_Strict):
    """One invariance ladder: a form of the bank and a grouping column."""

    form: str
    group: str


class ShortformSpec(_Strict):
    """IRT short form: the form and the items kept per construct."""

    form: str = "teacher"
    items_per_construct: int = Field(3, ge=1)


class AnalysisSettings(_Strict):
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


class FormData(_Strict):
    """``data: <form>:``: the files of one form and how to read them (an ingest mapping)."""

    files: list[str] = Field(min_length=1)
    mapping: Optional[str] = None
    columns: Optional[dict[str, str]] = None
    labels: Optional[dict[str, dict[str, int]]] = None
    language_values: Optional[dict[str, str]] = None
    defaults: Optional[dict[str, Union[str, int, float]]] = None
    ignore: Optional[list[str]] = None
    background: Optional[list[str]] = None
    sheet: Optional[Union[str, int]] = None
    format: Optional[Literal["csv", "qualtrics", "xlsx", "sav", "dta", "parquet"]] = None
    encoding: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if isinstance(v, str):          # form: path
            return {"files": [v]}
        if isinstance(v, Mapping) and isinstance(v.get("files"), str):
            return {**v, "files": [v["files"]]}
        return v

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
        """The inline mapping keys that are set (`instrument.io.ingest.load_mapping`'s keys)."""
        return {k: getattr(self, k) for k in MAPPING_KEYS if getattr(self, k) is not None}


class DataSection(BaseModel):
    """``data:``: one `FormData` per form of the bank (any form id), and ``outcomes``."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
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


class AnalysisPlan(_Strict):
    """A whole analysis plan (see the module docstring for the sections)."""

    name: Optional[str] = None
    description: Optional[str] = None
    seed: Optional[int] = Field(None, ge=0)
    bank: Optional[str] = None
    simulation: Optional[dict[str, Any]] = None
    data: Optional[DataSection] = None
    analysis: AnalysisSettings = AnalysisSettings()
    stages: dict[Literal[OPTIONAL_STAGES], bool] = {}   # type: ignore[valid-type]

    @model_validator(mode="after")
    def _simulated_or_fielded(self) -> "AnalysisPlan":
        if self.data is not None and self.simulation is not None:
            raise ValueError("expected either simulation: (simulated data) or data: (fielded "
                             "files), not both")
        return self


# --------------------------------------------------------------------------------------------
# Errors with file:line
# --------------------------------------------------------------------------------------------

def _line_of(root: Any, loc: tuple) -> tuple[int | None, list[str]]:
    """The line of the deepest key of ``loc`` found in ``root``, and the key path as text."""
    line = getattr(root, "line", None) or None
    node, path = root, []
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.line_of(part) or line
            node = node[part]
            path.append(str(part))
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.line_of(part) or line
            node = node[part]
            path.append(f"[{part}]")
        elif isinstance(part, int):
            path.append(f"[{part}]")
        elif isinstance(part, str) and not part[:1].isupper() and "[" not in part:
            path.append(part)       # a key that is absent (missing) or a validator's name
    return line, path


def _model_at(loc: tuple) -> Any:
    """The pydantic model whose key ``loc[-1]`` is (walking `AnalysisPlan`'s fields), or None."""
    import typing

    model: Any = AnalysisPlan
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        f = model.model_fields.get(part)
        if f is None:
            model = (FormData if model is DataSection else None)
            continue
        ann = f.annotation
        for _ in range(3):      # Optional[...], list[...]
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel) or not args:
                break
            ann = args[-1]
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _expected(err: Mapping[str, Any], loc: tuple = ()) -> str:
    """What pydantic's error means, said as 'what was expected; got what'."""
    import difflib

    t, got, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if t == "extra_forbidden":
        model = _model_at(loc)
        keys = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1) if loc else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"unknown key{hint}; expected one of {keys}" if keys
                else "unknown key; expected only the keys the schema declares")
    if t == "missing":
        return "required key missing"
    if t == "literal_error":
        return f"expected one of {ctx.get('expected', '')}; got {got!r}"
    if t in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number; got {got!r}"
    if t in ("string_type",):
        return f"expected text; got {got!r}"
    if t in ("bool_type", "bool_parsing"):
        return f"expected true or false; got {got!r}"
    if t in ("float_type", "float_parsing"):
        return f"expected a number; got {got!r}"
    if t in ("list_type",):
        return f"expected a list; got {type(got).__name__}"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of key: value; got {type(got).__name__}"
    if t in ("greater_than_equal", "greater_than", "too_short"):
        return f"expected {err['msg'].lower().replace('input should be ', '')}; got {got!r}"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg']}; got {got!r}"


def errors_as_lines(exc: ValidationError, root: Any, file: str, prefix: tuple = ()) -> list[str]:
    """Each pydantic error as ``file:line: key.path: what was expected``."""
    out = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        line, path = _line_of(root, loc)
        key = ".".join(path).replace(".[", "[") or "(top level)"
        where = f"{file}:{line}" if line else file
        out.append((line or 0, f"{where}: {key}: {_expected(err, loc)}"))
    return list(dict.fromkeys(text for _, text in sorted(out, key=lambda x: x[0])))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def default_plan_path() -> Path:
    """The shipped default analysis plan (package data)."""
    from importlib.resources import files

    return Path(str(files("instrument") / "analyses" / "default.yaml"))


def read_plan(path: str | Path) -> tuple[dict[str, Any], Any]:
    """The plan file as (plain dict, the line-numbered tree); `PlanError` when it is not a
    readable YAML mapping."""
    from instrument.bank.yamlio import plain

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


def check_plan(spec: Mapping[str, Any], *, source: str = "<plan>", tree: Any = None
               ) -> AnalysisPlan:
    """Validate a plan mapping against `AnalysisPlan` (and its ``simulation`` section against the
    population-model schema); `PlanError` lists every problem, one per line."""
    lines: list[str] = []
    try:
        plan = AnalysisPlan.model_validate(dict(spec))
    except ValidationError as exc:
        lines = errors_as_lines(exc, tree if tree is not None else spec, source)
        plan = None
    sim = spec.get("simulation")
    if isinstance(sim, Mapping) and spec.get("data") is None:
        from instrument.population import PlanError as PopulationPlanError, check_plan as sim_check

        try:
            sim_check(spec, source=source)
        except PopulationPlanError as exc:
            lines.extend(_population_lines(str(exc), tree, source))
    if lines:
        raise PlanError("\n".join(lines))
    return plan


def _population_lines(message: str, tree: Any, source: str) -> list[str]:
    """The population checker's ``key.path: expected`` lines with the file line added."""
    out = []
    for raw in message.splitlines()[1:] or [message]:
        text = raw.strip().removeprefix("- ")
        key = text.split(":", 1)[0]
        parts = tuple(int(p) if p.isdigit() else p for p in key.replace("[", ".").replace("]", "")
                      .split(".") if p)
        line, _ = _line_of(tree, parts) if tree is not None else (None, [])
        out.append(f"{source}:{line}: {text}" if line else f"{source}: {text}")
    return out


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
