"""Population-model plans (``analyses/*.yaml``): safe loading and a schema check.

A plan is YAML with ``name``, ``description``, ``seed`` and a ``simulation`` section (documented key
by key in ``analyses/default.yaml``). `load_plan` reads it as YAML 1.2 with the line of every key
(`instrument.plans.read_plan`) and checks every
key of ``simulation``: an unknown key, a missing key or a value of the wrong kind raises
`PlanError` naming the file, the key path and what was expected. Other top-level sections belong to
other stages and are passed through unchecked.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping


ANALYSES_DIR = Path(__file__).resolve().parent / "analyses"
OUTCOMES = ("attendance", "chronic_absence", "ela_proficiency", "math_proficiency")
GRADE_BANDS = ("elementary", "middle", "high")
MAR_VARIABLES = ("years_at_school",)


from instrument.plans import PlanError  # noqa: E402  one error type for every plan


# --- leaf checkers: return an error string ("expected ...") or "" -----------------------------------

def _num(lo: float = -math.inf, hi: float = math.inf, *, integer: bool = False,
         lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], str]:
    what = "an integer" if integer else "a number"
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(v: Any) -> str:
        ok_type = (isinstance(v, int) and not isinstance(v, bool)) if integer else (
            isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok_type:
            return f"expected {what} in {rng}"
        if (v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi)
                or (isinstance(v, float) and math.isnan(v))):
            return f"expected {what} in {rng}"
        return ""
    return check


def _str(v: Any) -> str:
    return "" if isinstance(v, str) else "expected a string"


PROB = _num(0.0, 1.0)
POS = _num(0.0, lo_open=True)
CORR = _num(-1.0, 1.0, lo_open=True, hi_open=True)


class _Shares:
    """Mapping name -> share in [0, 1], summing to 1."""

    def __init__(self, allowed: tuple[str, ...] | None = None):
        self.allowed = allowed


class _PerConstruct:
    """Mapping with a required ``default`` and construct ids as other keys."""

    def __init__(self, leaf: Callable[[Any], str]):
        self.leaf = leaf


class _ListOf:
    def __init__(self, spec: Mapping[str, Any]):
        self.spec = spec


class _MapOf:
    def __init__(self, spec: Any, keys: tuple[str, ...] | None = None, what: str = "key"):
        self.spec, self.keys, self.what = spec, keys, what


class _ProbsByK:
    """Mapping "k" -> list of k probabilities summing to 1."""


def _opt(key: str) -> str:
    return key + "?"


_FORM_SPEC = {
    "respondents": {"mean": POS, "dispersion": POS},
    "response_rate": {"mean": _num(0, 1, lo_open=True, hi_open=True), "concentration": POS},
    "spanish_share": {"base": PROB, "per_el_share": _num(0.0)},
    "icc": _PerConstruct(_num(0, 1, hi_open=True)),
    "school_general": _num(0, 1, hi_open=True),
    "factor_correlation": {"default": CORR, _opt("pairs"): _MapOf(CORR, what="construct pair")},
    "loadings": {"low": _num(0, 1, lo_open=True, hi_open=True),
                 "high": _num(0, 1, lo_open=True, hi_open=True)},
    "difficulty_sd": _num(0.0),
    "category_probabilities": _ProbsByK(),
    _opt("items"): _MapOf({_opt("loading"): _num(0, 1, lo_open=True, hi_open=True),
                           _opt("difficulty"): _num()}, what="item id"),
    _opt("dif"): _ListOf({"item": _str, _opt("threshold_shift"): _num(),
                          _opt("loading_diff"): _num(-1, 1)}),
    "missing": {"mcar": _num(0, 1, hi_open=True),
                _opt("mar"): {"variable": _str, "below": _num(), "extra": _num(0, 1, hi_open=True)}},
    "years_at_school_mean": _num(0.0),
}

_OUTCOME_SPEC = {"prior_mean": PROB, "prior_poverty": _num(), "prior_sd": _num(0.0),
                 "change_mean": _num(-1, 1), "change_sd": _num(0.0),
                 "effects": {"engagement": _num(-1, 1), "poverty": _num(-1, 1)}}

SIMULATION_SPEC: dict[str, Any] = {
    "schools": {
        "n": _num(2, integer=True),
        "districts": _num(1, integer=True),
        _opt("district_concentration"): POS,
        "grade_band": _Shares(GRADE_BANDS),
        "locale": _Shares(),
        "enrollment": {"mean": _MapOf(POS, keys=GRADE_BANDS, what="grade band"), "cv": _num(0.0)},
        "poverty": {"mean": _num(0, 1, lo_open=True, hi_open=True), "sd_logit": _num(0.0),
                    "district_share": _num(0, 1, hi_open=True)},
        "el_share": {"mean": _num(0, 1, lo_open=True, hi_open=True), "sd_logit": _num(0.0),
                     "poverty_correlation": CORR},
        "engagement_poverty_correlation": CORR,
        _opt("engagement_district_share"): _num(0, 1, hi_open=True),
    },
    "forms": _MapOf(_FORM_SPEC, keys=("teacher", "family"), what="form"),
    "outcomes": _MapOf(_OUTCOME_SPEC, keys=OUTCOMES, what="outcome"),
    # panel (issue 12): several survey years with true school change; absent = one year
    _opt("years"): {"n": _num(1, integer=True), _opt("first"): _num(1900, 2200, integer=True),
                    "change_sd": _num(0.0),
                    _opt("change_engagement_effect"): {_opt(o): _num(-1, 1) for o in OUTCOMES}},
}


def _check(value: Any, spec: Any, path: str, errors: list[str]) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a mapping with keys "
                          f"{[k.rstrip('?') for k in spec]}; got {type(value).__name__}")
            return
        names = {k.rstrip("?"): k for k in spec}
        for k in value:
            if k not in names:
                errors.append(f"{path}.{k}: unknown key; expected one of {sorted(names)}")
        for name, k in names.items():
            if name in value:
                _check(value[name], spec[k], f"{path}.{name}", errors)
            elif not k.endswith("?"):
                errors.append(f"{path}.{name}: required key is missing")
    elif isinstance(spec, _Shares):
        if not isinstance(value, Mapping) or not value:
            errors.append(f"{path}: expected a mapping of name -> share in [0, 1] summing to 1")
            return
        for k, v in value.items():
            if spec.allowed is not None and k not in spec.allowed:
                errors.append(f"{path}.{k}: unknown key; expected one of {list(spec.allowed)}")
            if PROB(v):
                errors.append(f"{path}.{k}: {PROB(v)}; got {v!r}")
                return
        if abs(sum(value.values()) - 1.0) > 1e-6:
            errors.append(f"{path}: expected shares summing to 1; got {sum(value.values()):g}")
    elif isinstance(spec, _PerConstruct):
        if not isinstance(value, Mapping) or "default" not in value:
            errors.append(f"{path}: expected a mapping with a 'default' value and optional "
                          "construct ids as keys")
            return
        for k, v in value.items():
            msg = spec.leaf(v)
            if msg:
                errors.append(f"{path}.{k}: {msg}; got {v!r}")
    elif isinstance(spec, _ProbsByK):
        if not isinstance(value, Mapping) or not value:
            errors.append(f"{path}: expected a mapping number-of-categories -> probabilities")
            return
        for k, v in value.items():
            try:
                kk = int(k)
            except (TypeError, ValueError):
                errors.append(f"{path}.{k}: expected the number of categories as key")
                continue
            if (not isinstance(v, list) or len(v) != kk or any(PROB(p) for p in v)
                    or abs(sum(v) - 1) > 1e-6 or any(p <= 0 for p in v)):
                errors.append(f"{path}.{k}: expected a list of {kk} probabilities > 0 summing "
                              f"to 1; got {v!r}")
    elif isinstance(spec, _ListOf):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list; got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            _check(v, spec.spec, f"{path}[{i}]", errors)
    elif isinstance(spec, _MapOf):
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a mapping of {spec.what} -> value; "
                          f"got {type(value).__name__}")
            return
        for k, v in value.items():
            if spec.keys is not None and k not in spec.keys:
                errors.append(f"{path}.{k}: unknown {spec.what}; expected one of {list(spec.keys)}")
                continue
            _check(v, spec.spec, f"{path}.{k}", errors)
        if spec.keys is not None:
            for k in spec.keys:
                if k not in value:
                    errors.append(f"{path}.{k}: required {spec.what} is missing")
    else:
        msg = spec(value)
        if msg:
            errors.append(f"{path}: {msg}; got {value!r}")


def _semantic_checks(sim: Mapping[str, Any], errors: list[str]) -> None:
    s = sim["schools"]
    if s["districts"] > s["n"]:
        errors.append(f"simulation.schools.districts: expected <= schools.n ({s['n']}); "
                      f"got {s['districts']}")
    for form, f in sim["forms"].items():
        p = f"simulation.forms.{form}"
        if f["loadings"]["low"] > f["loadings"]["high"]:
            errors.append(f"{p}.loadings: expected low <= high; got {f['loadings']}")
        mar = f["missing"].get("mar")
        if mar is not None and mar["variable"] not in MAR_VARIABLES:
            errors.append(f"{p}.missing.mar.variable: expected one of {list(MAR_VARIABLES)}; "
                          f"got {mar['variable']!r}")
        for pair in (f["factor_correlation"].get("pairs") or {}):
            if not isinstance(pair, str) or pair.count("~") != 1:
                errors.append(f"{p}.factor_correlation.pairs.{pair}: expected a key "
                              "'construct_a~construct_b'")


@dataclass(frozen=True)
class PopulationPlan:
    """A checked plan. ``spec`` is the whole YAML mapping; ``simulation`` its checked section."""

    spec: Mapping[str, Any]
    path: str = "<dict>"

    @property
    def name(self) -> str:
        return str(self.spec.get("name", Path(self.path).stem))

    @property
    def seed(self) -> int | None:
        return self.spec.get("seed")

    @property
    def simulation(self) -> Mapping[str, Any]:
        return self.spec["simulation"]

    def to_dict(self) -> dict:
        return {"path": self.path, "spec": copy.deepcopy(dict(self.spec))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PopulationPlan":
        return check_plan(d["spec"], source=d.get("path", "<dict>"))


def check_plan(spec: Mapping[str, Any], *, source: str = "<dict>") -> PopulationPlan:
    """Check a plan mapping against the schema; raise `PlanError` listing every problem."""
    errors: list[str] = []
    if not isinstance(spec, Mapping):
        raise PlanError(f"{source}: expected a YAML mapping at the top level; "
                        f"got {type(spec).__name__}.")
    if "simulation" not in spec:
        errors.append("simulation: required key is missing")
    else:
        _check(spec["simulation"], SIMULATION_SPEC, "simulation", errors)
    seed = spec.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        errors.append(f"seed: expected a non-negative integer or null; got {seed!r}")
    if not errors:
        _semantic_checks(spec["simulation"], errors)
    if errors:
        raise PlanError(f"{source}: plan does not follow the schema:\n  - " + "\n  - ".join(errors))
    return PopulationPlan(spec=copy.deepcopy(dict(spec)), path=source)


def load_plan(plan: str | Path | Mapping[str, Any] | PopulationPlan | None = None) -> PopulationPlan:
    """Load and check a plan.

    Parameters
    ----------
    plan : path, mapping, PopulationPlan or None
        A YAML file; a name of a shipped plan (``"default"``, ``"tiny"``); a mapping with the same
        structure; or None for the shipped ``default.yaml``.

    Returns
    -------
    PopulationPlan

    Raises
    ------
    PlanError
        Naming the file, the key path and what was expected.
    """
    if isinstance(plan, PopulationPlan):
        return plan
    if isinstance(plan, Mapping):
        return check_plan(plan)
    if plan is None:
        plan = "default"
    if not isinstance(plan, (str, Path)):
        raise TypeError("plan= must be a YAML path, a shipped plan name, a mapping or a "
                        f"PopulationPlan; got {type(plan).__name__}.")
    p = Path(plan)
    if not p.suffix and not p.exists() and (ANALYSES_DIR / f"{plan}.yaml").exists():
        p = ANALYSES_DIR / f"{plan}.yaml"
    if not p.exists():
        raise PlanError(f"{p}: plan file not found; expected a YAML file or one of "
                        f"{sorted(q.stem for q in ANALYSES_DIR.glob('*.yaml'))}.")
    from instrument.plans import _population_lines, read_plan

    spec, tree = read_plan(p)          # YAML 1.2 with the line of every key
    try:
        return check_plan(spec, source=str(p))
    except PlanError as exc:           # each problem with its file line
        head = f"{p}: plan does not follow the schema:"
        raise PlanError(head + "\n  - " + "\n  - ".join(
            _population_lines(str(exc), tree, str(p)))) from None
