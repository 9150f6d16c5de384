"""`validate`: run an analysis plan end to end and write every result under one folder.

The pipeline is a list of named stages. Each stage takes the shared context (plan, data and
earlier results) and returns plain results that are written to ``results.json``. A stage that fails
is recorded with its error and the remaining stages still run; the exit status reports the failure.
"""
from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from instrument.results import to_jsonable


@dataclass
class StageOutcome:
    """What happened in one stage: ``status`` is "ok", "failed" or "unavailable"."""

    name: str
    status: str
    message: str = ""


@dataclass
class ValidationRun:
    """The outcome of `validate`: per-stage status, results and the output folder."""

    out_dir: Path
    stages: list[StageOutcome] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages)


# Stages are registered in order; (name, function or None when the stage has not landed yet).
Stage = Callable[[dict[str, Any]], Any]
STAGES: list[tuple[str, Stage | None]] = [
    ("bank", None),
    ("simulate_or_ingest", None),
    ("item_analysis", None),
    ("efa", None),
    ("cfa", None),
    ("reliability", None),
    ("invariance", None),
    ("multilevel", None),
    ("scores", None),
    ("linker", None),
    ("reports", None),
]


def validate(plan: str | Path | None = None, out_dir: str | Path = "validation",
             progress: Callable[[str], None] | None = None) -> ValidationRun:
    """Run every available stage of an analysis plan and write ``results.json`` to ``out_dir``.

    Parameters
    ----------
    plan : path, optional
        An analysis plan (YAML); the shipped default plan when omitted.
    out_dir : path
        Folder for results, reports and quarantine files (created if needed).
    progress : callable, optional
        Called with a line of text as each stage starts and ends.
    """
    say = progress or (lambda s: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = ValidationRun(out_dir=out)
    ctx: dict[str, Any] = {"plan_path": plan, "out_dir": out, "results": run.results}
    for name, fn in STAGES:
        if fn is None:
            run.stages.append(StageOutcome(name, "unavailable", "not yet implemented"))
            say(f"[{name}] not yet available")
            continue
        say(f"[{name}] running")
        try:
            run.results[name] = fn(ctx)
            run.stages.append(StageOutcome(name, "ok"))
            say(f"[{name}] done")
        except Exception as exc:  # a failed stage is recorded; the others still run
            run.stages.append(StageOutcome(name, "failed", f"{type(exc).__name__}: {exc}"))
            say(f"[{name}] FAILED: {exc}")
            ctx.setdefault("tracebacks", {})[name] = traceback.format_exc()
    payload = {"stages": [s.__dict__ for s in run.stages], "results": run.results}
    (out / "results.json").write_text(json.dumps(to_jsonable(payload), indent=1, sort_keys=True))
    return run
