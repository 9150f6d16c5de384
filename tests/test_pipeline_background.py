"""Stages run in the background by `validate` (`instrument.pipeline.BACKGROUND_STAGES`).

A stand-in list of stages (small functions) goes through the real stage loop: a background stage
runs in another process while the stages after it run, and is recorded in its place in the stage
order with its result, its warnings, its stand-aside reason or its failure (with the error file),
exactly as the same stage run in this process. That the real stages give the same bytes either
way is checked on the tiny plan in tests/test_robustness.py.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from instrument import pipeline
from instrument.pipeline import StandAside, ValidationRun

pytestmark = pytest.mark.skipif(not pipeline._can_fork(),
                                reason="background stages run on Linux only")


def _data(ctx):
    ctx["value"] = 21
    return {"rows": 3}


def _slow(ctx):
    time.sleep(0.5)              # still running when its turn comes: recorded later
    return {"pid": os.getpid(), "double": ctx["value"] * 2, "warnings": ["slow: a warning"]}


def _fails(ctx):
    raise ValueError(f"bad value {ctx['value']}")


def _aside(ctx):
    raise StandAside("nothing to compare")


def _after(ctx):
    return {"pid": os.getpid()}


def _needs_slow(ctx):
    return {"seen": list(ctx["results"])}


STAGES = [("bank", lambda ctx: {}, ()), ("data", _data, ("bank",)),
          ("slow", _slow, ("data",)), ("fails", _fails, ("data",)),
          ("aside", _aside, ("data",)), ("after", _after, ("data",)),
          ("needs_slow", _needs_slow, ("slow",))]


def _run(tmp_path: Path, monkeypatch, background: tuple[str, ...]) -> tuple[ValidationRun, list]:
    monkeypatch.setattr(pipeline, "STAGES", STAGES)
    monkeypatch.setattr(pipeline, "BACKGROUND_STAGES", background)
    tmp_path.mkdir()
    run = ValidationRun(out_dir=tmp_path)
    ctx = {"plan": {}, "out_dir": tmp_path, "results": run.results}
    lines: list[str] = []
    pipeline._run_stages(run, ctx, set(), lines.append)
    return run, lines


def test_background_stages_are_recorded_as_in_one_process(tmp_path, monkeypatch):
    bg, lines = _run(tmp_path / "bg", monkeypatch, ("slow", "fails", "aside"))
    one, _ = _run(tmp_path / "one", monkeypatch, ())
    for run in (bg, one):
        assert [(s.name, s.status) for s in run.stages] == [
            ("bank", "ok"), ("data", "ok"), ("slow", "warning"), ("fails", "failed"),
            ("aside", "n/a"), ("after", "ok"), ("needs_slow", "ok")]
        assert list(run.results) == ["bank", "data", "slow", "after", "needs_slow"]
        assert run.results["slow"]["double"] == 42                    # read ctx as it was
        assert run.stages[2].warnings == ["slow: a warning"]
        assert run.stages[3].message == "ValueError: bad value 21"
        assert "ValueError: bad value 21" in (run.out_dir / "errors" / "fails.txt").read_text()
        assert run.stages[4].message == "nothing to compare"
        # a stage that needs a background stage waits for it, and sees its result
        assert run.results["needs_slow"]["seen"] == ["bank", "data", "slow", "after"]
    assert bg.results["slow"]["pid"] != os.getpid()                   # another process
    assert bg.results["after"]["pid"] == os.getpid()
    assert one.results["slow"]["pid"] == os.getpid()
    assert any("slow" in x and "running in the background" in x for x in lines)
    # the stage after the slow one was recorded before the slow one ended
    assert [x.split("]")[1].split()[0] for x in lines if " done in " in x].index("after") < \
        [x.split("]")[1].split()[0] for x in lines if " done in " in x].index("slow")
    assert [s.to_dict() for s in bg.stages] == [s.to_dict() for s in one.stages]


def test_a_background_stage_switched_off_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "STAGES", STAGES[:3])
    monkeypatch.setattr(pipeline, "BACKGROUND_STAGES", ("slow",))
    run = ValidationRun(out_dir=tmp_path)
    ctx = {"plan": {"stages": {"slow": False}}, "out_dir": tmp_path, "results": run.results}
    lines: list[str] = []
    pipeline._run_stages(run, ctx, set(), lines.append)
    assert [(s.name, s.status) for s in run.stages][-1] == ("slow", "n/a")
    assert not any("background" in x for x in lines)


def test_a_stage_whose_process_cannot_start_runs_in_its_turn(tmp_path, monkeypatch):
    import multiprocessing.context

    def refuse(self):
        raise OSError("Cannot allocate memory")
    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", refuse)
    run, lines = _run(tmp_path / "run", monkeypatch, ("slow",))
    assert run.results["slow"]["pid"] == os.getpid()
    assert [(s.name, s.status) for s in run.stages][:3] == [
        ("bank", "ok"), ("data", "ok"), ("slow", "warning")]
    assert not any("background" in x for x in lines)


def test_the_reports_stage_waits_for_background_stages_when_it_asks(tmp_path, monkeypatch):
    """The reports stage starts while a background stage still runs: ``stage_records(needs)``
    gives the records once the stages it names have finished, ``stage_records()`` waits for
    every stage, records it and writes results.json first."""
    seen = {}

    def _reports(ctx):
        seen["early"] = [s["name"] for s in ctx["stage_records"](("data",))]
        seen["late"] = [s["name"] for s in ctx["stage_records"]()]
        seen["written"] = [s["name"] for s in json.loads(
            (ctx["out_dir"] / "results.json").read_text())["stages"]]
        return {"results": sorted(ctx["results"])}

    stages = [("bank", lambda ctx: {}, ()), ("data", _data, ("bank",)),
              ("slow", _slow, ("data",)), ("after", _after, ("data",)),
              ("reports", _reports, ())]
    monkeypatch.setattr(pipeline, "STAGES", stages)
    monkeypatch.setattr(pipeline, "BACKGROUND_STAGES", ("slow",))
    monkeypatch.setattr(pipeline, "_write", lambda run, ctx: (run.out_dir / "results.json")
                        .write_text(json.dumps({"stages": [s.to_dict() for s in run.stages]})))
    run = ValidationRun(out_dir=tmp_path)
    ctx = {"plan": {}, "out_dir": tmp_path, "results": run.results}
    pipeline._run_stages(run, ctx, set(), lambda s: None)
    assert seen["early"] == ["bank", "data", "after"]        # the slow stage is still running
    assert seen["late"] == seen["written"] == ["bank", "data", "slow", "after"]
    assert run.results["reports"]["results"] == ["after", "bank", "data", "slow"]
    assert "stage_records" not in ctx


def test_the_stage_loop_freezes_its_heap_and_restores_the_collector(tmp_path, monkeypatch):
    """The stages run with the objects that exist at the start frozen and a higher collection
    threshold; afterwards the collector is as it was (also after an error), and objects frozen by
    the calling program stay frozen."""
    import gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    kept = [[] for _ in range(10)]              # gc-tracked objects alive at the start
    with pipeline._long_lived_heap() as freeze:
        assert gc.get_threshold()[0] == pipeline.GC_THRESHOLD
        assert gc.get_freeze_count() >= frozen + len(kept)
        more = [[] for _ in range(10)]
        count = gc.get_freeze_count()
        freeze()                                # as before a fork
        assert gc.get_freeze_count() >= count + len(more)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    with pytest.raises(RuntimeError), pipeline._long_lived_heap():
        raise RuntimeError("a stage loop that fails")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    # a whole stage loop with a background stage leaves it as it was
    _run(tmp_path / "run", monkeypatch, ("slow",))
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
    # objects the calling program froze stay frozen
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with pipeline._long_lived_heap() as freeze:
            freeze()
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()
