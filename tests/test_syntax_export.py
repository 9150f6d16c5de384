"""lavaan and Mplus syntax export (instrument.report.syntax_export).

`TestLavaanOracle`: the files exported for the small plan's teacher form were fitted by lavaan
0.6-14 exactly as the `.lav` header says (tests/fixtures/syntax_export/lavaan_teacher.R); the
export is byte-stable and the package's own CFA on the same data matches lavaan's numbers, so
the exported files reproduce the fit. Mplus is not available here: the `.inp` is checked for its
statements only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from instrument.report.syntax_export import (MISSING_CODE, lavaan_syntax, mplus_input,
                                             mplus_names, write_syntax)
from instrument.sem.syntax import parse_syntax

MODEL = ("visual =~ x1 + x2 + x3\ntextual =~ x4 + NA*x5 + 0.5*x6\n"
         "x1 ~~ x4\nx2 ~~ 0.3*x2\ntextual ~ visual\nx3 ~ 1")
NAMES = [f"x{i}" for i in range(1, 7)]


def _section(text: str, head: str) -> str:
    return text.split(head, 1)[1]


class TestMplusNames:
    def test_short_names_kept_long_names_cut_and_unique(self):
        m = mplus_names(["x1", "language_culture", "language_other", "LANGUAGE", "leadership"])
        assert m["x1"] == "x1" and m["leadership"] == "leadersh"
        assert all(len(v) <= 8 for v in m.values())
        assert len({v.lower() for v in m.values()}) == 5
        assert m["language_culture"] == "language"
        assert m["language_other"] == "langua_2"

    def test_name_must_start_with_letter(self):
        with pytest.raises(ValueError, match="begin with a letter"):
            mplus_names(["_x"])


class TestMplusInput:
    def test_sections_and_statements(self):
        t = mplus_input(MODEL, names=["id2", *NAMES], data_file="d.dat")
        for head in ("TITLE:", "DATA: FILE = \"d.dat\";", "VARIABLE: NAMES ARE", "USEVARIABLES",
                     "MISSING ARE ALL (-999);", "ANALYSIS:", "ESTIMATOR = ML;",
                     "INFORMATION = EXPECTED;", "MODEL:", "OUTPUT:"):
            assert head in t, head
        assert "LISTWISE = ON;" in t
        assert "CATEGORICAL" not in t
        names = _section(t, "NAMES ARE").split(";")[0].split()
        assert names == ["id2", *NAMES]
        use = _section(t, "USEVARIABLES ARE").split(";")[0].split()
        assert sorted(use) == sorted(NAMES)
        model = _section(t, "MODEL:")
        assert "visual BY x1 x2 x3;" in model
        assert "textual BY x4 x5* x6@0.5;" in model
        assert "x1 WITH x4;" in model and "x2@0.3;" in model
        assert "textual ON visual;" in model and "[x3];" in model
        assert max(len(line) for line in t.splitlines()) <= 90

    def test_wlsmv_declares_categorical_fiml_drops_listwise(self):
        t = mplus_input(MODEL, names=NAMES, data_file="d.dat", estimator="WLSMV",
                        ordered=NAMES[:3], missing="fiml")
        assert "CATEGORICAL ARE x1 x2 x3;" in t and "ESTIMATOR = WLSMV;" in t
        assert "LISTWISE" not in t and "INFORMATION" not in t

    def test_ulsmv_pairwise_theta(self):
        t = mplus_input(MODEL, names=NAMES, data_file="d.dat", estimator="ULSMV",
                        ordered=NAMES, missing="pairwise", parameterization="theta")
        assert "ESTIMATOR = ULSMV;" in t and "PARAMETERIZATION = THETA;" in t
        assert "LISTWISE" not in t
        lav = lavaan_syntax(MODEL, estimator="WLSMV", ordered=NAMES, missing="pairwise",
                            parameterization="theta")
        assert 'missing = "pairwise", parameterization = "theta"' in lav
        with pytest.raises(ValueError, match="pairwise' applies to WLSMV/ULSMV only"):
            mplus_input(MODEL, names=NAMES, data_file="d.dat", missing="pairwise")

    def test_long_names_are_mapped_everywhere(self):
        model = "language_culture =~ item_number_1 + item_number_2 + item_number_3"
        names = ["item_number_1", "item_number_2", "item_number_3"]
        t = mplus_input(model, names=names, data_file="d.dat")
        m = mplus_names([*names, "language_culture"])
        assert f"{m['language_culture']} BY {m['item_number_1']} {m['item_number_2']} " \
               f"{m['item_number_3']};" in t
        assert "language_culture = language" in t      # the renaming is listed
        body = [ln for ln in t.splitlines() if not ln.startswith("!")]
        assert "item_number_1" not in "\n".join(body)

    @pytest.mark.parametrize("kw, msg", [
        ({"estimator": "mlr"}, "estimator= must be one of 'ML', 'MLR', 'WLSMV', 'ULSMV'; "
                               "got 'mlr'"),
        ({"parameterization": "gamma"}, "parameterization= must be one of 'delta', 'theta'"),
        ({"missing": "ml"}, "missing= must be one of"),
        ({"estimator": "WLSMV"}, "needs ordered="),
        ({"names": NAMES[:-1]}, "not in names=: x6"),
        ({"ordered": ["zz"]}, "ordered= names not in names=: zz"),
    ])
    def test_bad_options(self, kw, msg):
        args = {"names": NAMES, "data_file": "d.dat", **kw}
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            mplus_input(MODEL, **args)


class TestLavaan:
    def test_model_kept_and_call_documented(self):
        t = lavaan_syntax(MODEL, form="teacher", estimator="WLSMV", ordered=["x1"],
                          missing="listwise", names=NAMES, data_file="teacher_cfa.dat")
        body = [ln for ln in t.splitlines() if ln and not ln.startswith("#")]
        assert [(r.lhs, r.op, r.rhs) for r in parse_syntax("\n".join(body))] == \
               [(r.lhs, r.op, r.rhs) for r in parse_syntax(MODEL)]
        assert 'estimator = "WLSMV", ordered = c("x1")' in t
        assert 'read.table("teacher_cfa.dat"' in t and f'na.strings = "{MISSING_CODE}"' in t

    def test_bad_syntax_is_an_error(self):
        from instrument.sem.syntax import ModelSyntaxError
        with pytest.raises(ModelSyntaxError):
            lavaan_syntax("f =~ ")


def test_write_syntax_files_and_data(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.integers(1, 6, size=(20, 6)).astype(float), columns=NAMES)
    df.iloc[2, 1] = np.nan
    df.insert(0, "school_id", "S1")   # not a model variable: not written
    paths = write_syntax(tmp_path, "teacher", MODEL, df)
    assert [p.name for p in paths] == ["teacher.lav", "teacher.inp", "teacher_cfa.dat"]
    back = pd.read_csv(paths[2], sep=" ", header=None, na_values=[str(MISSING_CODE)])
    ov = ["x1", "x2", "x3", "x4", "x5", "x6"]
    assert back.shape == (20, 6)
    np.testing.assert_array_equal(back.to_numpy(float), df[ov].to_numpy(float))
    assert "S1" not in paths[2].read_text()
    assert paths[2].read_text().splitlines()[2].split()[1] == str(MISSING_CODE)
    assert "." not in paths[2].read_text()        # whole-number codes written as integers
    with pytest.raises(ValueError, match="data lacks the model's variables: x6"):
        write_syntax(tmp_path, "t", MODEL, df.drop(columns="x6"))


ORACLE = Path(__file__).parent / "fixtures" / "syntax_export"
RTOL_CHISQ, ATOL_EST, RTOL_SE = 1e-6, 1e-5, 1e-4     # refs/README.md suggested tolerances


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    lav = (ORACLE / "teacher.lav").read_text()
    model = "\n".join(ln for ln in lav.splitlines() if ln and not ln.startswith("#"))
    cols = re.findall(r'"([^"]+)"', next(ln for ln in lav.splitlines()
                                         if "col.names" in ln))[1:]
    data = pd.read_csv(ORACLE / "teacher_cfa.dat", sep=" ", header=None, names=cols,
                       na_values=[str(MISSING_CODE)])
    out = tmp_path_factory.mktemp("syntax")
    write_syntax(out, "teacher", model, data)
    return model, data, out


class TestLavaanOracle:
    def test_export_is_byte_stable(self, exported):
        _, _, out = exported
        for name in ("teacher.lav", "teacher.inp", "teacher_cfa.dat"):
            assert (out / name).read_bytes() == (ORACLE / name).read_bytes(), name

    def test_fit_of_the_exported_files_matches_lavaan(self, exported):
        from instrument.sem.cfa import cfa

        model, data, _ = exported
        ref = json.loads((ORACLE / "lavaan_teacher.json").read_text())
        fit = cfa(model, data, estimator="ML")
        fm = fit.fit_measures
        assert fm["ntotal"] == ref["fit_measures"]["ntotal"]
        assert fm["df"] == ref["fit_measures"]["df"]
        np.testing.assert_allclose(fm["chisq"], ref["fit_measures"]["chisq"], rtol=RTOL_CHISQ)
        for k in ("cfi", "tli", "rmsea", "srmr"):
            np.testing.assert_allclose(fm[k], ref["fit_measures"][k], rtol=RTOL_CHISQ)
        est = fit.estimates[fit.estimates["op"] == "=~"].set_index(["lhs", "rhs"])
        for r in ref["loadings"]:
            e = est.loc[(r["lhs"], r["rhs"])]
            np.testing.assert_allclose(e["est"], r["est"], atol=ATOL_EST)
            np.testing.assert_allclose(e["se"], r["se"], rtol=RTOL_SE, atol=1e-12)
