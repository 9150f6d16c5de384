"""Population-model plans (``analyses/*.yaml``): the plans `instrument.simulate` draws from.

A plan is YAML with ``name``, ``description``, ``seed`` and a ``simulation`` section (documented key
by key in ``analyses/default.yaml``). `load_plan` finds it (a path or the name of a shipped plan),
reads it as YAML 1.2 with the line of every key (`instrument.plans.read_plan`) and validates the
whole plan against `instrument.plans.PopulationPlanSchema` (the analysis plan with ``simulation``
required): every unknown key, missing key, value of the wrong kind or out of range, and every
inconsistency (more districts than schools, low loadings above high ones) raises one `PlanError`
listing them all, one line each, ``file:line: key.path: what was expected``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from instrument.plans import PlanError, PopulationPlanSchema, check_plan as check_schema, read_plan

ANALYSES_DIR = Path(__file__).resolve().parent / "analyses"


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


def check_plan(spec: Mapping[str, Any], *, source: str = "<dict>", tree: Any = None
               ) -> PopulationPlan:
    """Validate a plan mapping against `instrument.plans.PopulationPlanSchema`; `PlanError` lists
    every problem (with its file line when ``tree``, the line-numbered tree, is given)."""
    check_schema(spec, source=source, tree=tree, schema=PopulationPlanSchema)
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
    spec, tree = read_plan(p)          # YAML 1.2 with the line of every key
    return check_plan(spec, source=str(p), tree=tree)
