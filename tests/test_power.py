"""Power planning: design cells, the field-test analysis of one replication, the recommended
design, the CLI, and the technical report's Monte Carlo section."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import instrument as ins
from instrument import rules
from instrument.montecarlo import PlanPopulation, PowerResult
from instrument.montecarlo.power import FieldTestAnalysis, _recommend, power
from instrument.results import dumps


@pytest.fixture(scope="module")
def small_power():
    return power("tiny", schools=[12, 16], respondents=[12], reps=2, seed=5, estimator="ML",
                 dif=False, missing="listwise")


def test_cells_overrides_reach_the_simulation():
    pop = PlanPopulation("tiny", {"schools.n": 16, "forms.teacher.respondents.mean": 9.0})
    sim = pop.draw(np.random.default_rng(1))
    assert sim.outcomes["school_id"].nunique() == 16
    with pytest.raises(ValueError, match="not a section"):
        PlanPopulation("tiny", {"schools.nope.n": 3}).spec()


def test_power_table_and_round_trip(small_power):
    t = small_power.table
    assert t[["schools", "respondents"]].values.tolist() == [[12, 12], [16, 12]]
    assert (t["reps"] == 2).all() and t["convergence"].between(0, 1).all()
    reps = small_power.replications
    assert len(reps) == 4 and set(reps["status"]) <= {"ok", "nonconverged", "error"}
    ok = reps[reps["status"] == "ok"]
    assert len(ok) and ok["icc2"].between(-1, 1).all() and ok["gates.pass"].between(0, 1).all()
    assert ok["loading.coverage"].between(0, 1).all()
    assert np.isnan(t["dif_power"]).all()       # dif=False: not measured, not invented
    back = PowerResult.from_dict(json.loads(dumps(small_power)))
    assert dumps(back) == dumps(small_power)
    assert "Power of the teacher field test" in small_power.summary().as_text()


def test_recommended_design_is_the_smallest_meeting_every_target():
    spec = PlanPopulation("tiny").spec()
    t = pd.DataFrame({"schools": [100, 100, 200, 200], "respondents": [8.0, 15.0, 8.0, 15.0],
                      "convergence": [1.0, 1.0, 1.0, 1.0], "p_fit_pass": [0.5, 0.9, 0.85, 0.95],
                      "link_power": [0.3, 0.82, 0.81, 0.99], "dif_power": [0.9] * 4})
    rec = _recommend(t, spec, "teacher", dif=True)
    assert (rec["schools"], rec["respondents"]) == (100, 15.0)     # 1500 < 1600 respondents
    assert f"p_fit_pass >= {rules.POWER_TARGET.threshold:g}" in rec["targets"]
    t2 = t.assign(dif_power=0.1)
    assert "schools" not in _recommend(t2, spec, "teacher", dif=True)


def test_missing_data_method_defaults_to_validates():
    from instrument.pipeline import missing_method
    for est in ("WLSMV", "ML", "MLR"):
        a = FieldTestAnalysis("teacher", estimator=est)
        assert a._missing() == {"missing": missing_method(est)}
        assert a.describe()["missing"] == missing_method(est)
    assert FieldTestAnalysis(missing="listwise")._missing() == {"missing": "listwise"}


def test_dif_study_of_one_replication():
    sim = ins.simulate("tiny", seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = FieldTestAnalysis("teacher", estimator="ML", dif_form="family",
                                missing="listwise")._dif(sim, ins.load_bank())
    assert set(out) == {"dif.estimable", "dif.power", "dif.false_alarm"}
    assert 0 <= out["dif.power"] <= 1 and 0 <= out["dif.false_alarm"] <= 1


def test_cli_power_and_report_section(tmp_path, small_power):
    from click.testing import CliRunner

    from instrument.cli import main
    from instrument.report.render import render_html
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps({"results": {}, "stages": {}}))
    r = CliRunner().invoke(main, ["power", "tiny", "--schools", "12", "--respondents", "6",
                                  "--reps", "1", "--estimator", "ML", "--no-dif",
                                  "--missing", "listwise",
                                  "--scheduler", "inprocess", "--into", str(res_file)])
    assert r.exit_code == 0, r.output
    doc = json.loads(res_file.read_text())
    assert doc["results"]["power"]["table"]
    bad = CliRunner().invoke(main, ["power", "tiny", "--schools", "x"])
    assert bad.exit_code != 0 and "--schools" in bad.output and "Traceback" not in bad.output
    # the report section renders from the results alone
    hs = pd.read_csv("tests/fixtures/cfa/HolzingerSwineford1939.csv")
    fit = ins.cfa("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9", hs)
    d = json.loads(dumps(ins.dynamic_cutoffs(fit, reps=10, seed=1)))
    html = render_html({"dfi": {"teacher": d}, "power": json.loads(dumps(small_power))})
    assert "Dynamic and fixed fit cut-offs: teacher" in html
    assert "Hu &amp; Bentler (1999), fixed" in html and "DFI level 2" in html
    assert "Power of the teacher field test by design" in html
    assert "Power by number of schools" in html and "data:image/svg+xml" in html
    assert "McNeish" in html
    empty = render_html({})
    assert "Monte Carlo studies" in empty and "instrument dfi" in empty


def test_power_uses_the_plans_bank_and_its_linked_construct(tmp_path):
    """A plan whose bank declares no overall score: power refuses to guess a score and names the
    constructs; with ``construct=`` the ICC, gates and linker use that construct's scores."""
    import shutil

    import yaml

    from instrument.bank import shipped_bank_path
    from instrument.population import load_plan
    bank = tmp_path / "bank"
    shutil.copytree(shipped_bank_path(), bank)
    p = bank / "bank.yaml"
    head, sep, _ = p.read_text().partition("\noverall:\n")
    assert sep
    p.write_text(head + "\n")
    spec = dict(load_plan("tiny").spec, bank="bank")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert PlanPopulation(str(plan)).bank().overall is None
    with pytest.raises(ValueError, match="no overall score; expected construct=.*mindsets"):
        power(str(plan), schools=[12], respondents=[12], reps=1, estimator="ML", dif=False)
    with pytest.raises(ValueError, match="'nope' is not a construct"):
        power(str(plan), schools=[12], respondents=[12], reps=1, construct="nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = power(str(plan), schools=[12], respondents=[12], reps=1, seed=5, estimator="ML",
                    dif=False, missing="listwise", construct="communication",
                    scheduler="inprocess")
    assert res.table["reps"].iloc[0] == 1
    assert res.replications["status"].iloc[0] == "ok"
    assert np.isfinite(res.replications["icc2"].iloc[0])


def test_dif_form_is_where_the_plan_plants_dif():
    from instrument.montecarlo.power import _dif_form
    from instrument.population import check_plan, load_plan
    spec = load_plan("tiny").spec
    assert _dif_form(load_plan("tiny")) == "family"
    moved = dict(spec, simulation=dict(spec["simulation"], forms={
        "teacher": dict(spec["simulation"]["forms"]["teacher"],
                        dif=spec["simulation"]["forms"]["family"]["dif"]),
        "family": dict(spec["simulation"]["forms"]["family"], dif=[])}))
    assert _dif_form(check_plan(moved)) == "teacher"
    none = dict(spec, simulation=dict(spec["simulation"], forms={
        f: dict(fs, dif=[]) for f, fs in spec["simulation"]["forms"].items()}))
    assert _dif_form(check_plan(none)) is None
