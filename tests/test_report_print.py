"""The brief and the school cards as printed: PDFs made by headless Chromium from a REAL
`validate` run (the small simulated plan), in English and Spanish.

Checked on the printed pages (text read back with pypdf) and in the laid-out page (Chromium at
the printed width): every page says the data are simulated; one card per page; no score is shown
unless both the privacy and the response-rate gates hold; every shown score has its interval and
the chance its band is right; the band agrees with the number printed; no table is wider than
the page. Chromium is required: without it these tests FAIL with the install command.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from instrument import rules
from instrument.pipeline import validate
from instrument.report import find_chromium, render
from instrument.report.i18n import ES
from instrument.report.pdf import HEADLESS_FLAGS
from instrument.results import from_jsonable
from instrument.scores import band_of

PLAN = Path(__file__).parent / "fixtures" / "pipeline" / "small.yaml"
SIMULATED = {"en": "Simulated data", "es": "Datos simulados"}
SCHOOL = {"en": "School ", "es": "Escuela "}
BAND_NAMES = {"en": {b: b for b in rules.SCORE_BAND_NAMES},
              "es": {ES[b]: b for b in rules.SCORE_BAND_NAMES}}
# Letter width less the CSS @page side margins (16 mm each) at 96 px per inch.
PRINT_WIDTH_PX = int(round((8.5 - 2 * 16 / 25.4) * 96))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if find_chromium() is None:
        pytest.fail("Chromium is required to print the reports: install it with "
                    "`apt-get install -y chromium` (Debian).")
    out = tmp_path_factory.mktemp("print")
    r = validate(PLAN, out)
    assert r.ok, [(s.name, s.message) for s in r.stages if s.status != "ok"]
    payload = json.loads((out / "results.json").read_text())
    assert r.results["reports"]["pdf"] is True, r.results["reports"]["note"]
    return out, payload


@pytest.fixture(scope="module")
def scores(run) -> pd.DataFrame:
    return from_jsonable(run[1]["results"]["scores"]["table"])


def _pdf(run, stem: str) -> list[str]:
    return [p.extract_text() or "" for p in PdfReader(run[0] / "reports" / f"{stem}.pdf").pages]


def _html(run, stem: str) -> str:
    return (run[0] / "reports" / f"{stem}.html").read_text(encoding="utf-8")


def _stem(kind: str, lang: str) -> str:
    return {"brief": "policy_brief", "cards": "school_cards"}[kind] + ("" if lang == "en"
                                                                       else "_es")


def test_provenance_recorded_without_machine_paths(run):
    out, payload = run
    prov = payload["results"]["data"]["provenance"]
    assert prov["source"] == "simulated" and prov["plan_file"] == "small.yaml"
    assert prov["seed"] == 20261125 and len(prov["plan_sha256"]) == 64
    text = (out / "results.json").read_text()
    assert str(out.resolve()) not in text and str(PLAN.resolve().parent) not in text


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("kind", ["brief", "cards"])
def test_every_printed_page_says_simulated(run, kind, lang):
    pages = _pdf(run, _stem(kind, lang))
    assert len(pages) >= 2
    missing = [i + 1 for i, p in enumerate(pages) if SIMULATED[lang] not in p]
    assert not missing, f"pages without the simulated-data line: {missing}"


@pytest.mark.parametrize("lang", ["en", "es"])
def test_one_card_per_page(run, scores, lang):
    pages = _pdf(run, _stem("cards", lang))
    assert len(pages) == scores["school_id"].nunique()
    for i, p in enumerate(pages):
        heads = re.findall(SCHOOL[lang] + r"(S\d+)", p)
        assert len(set(heads)) == 1, f"page {i + 1}: {heads}"


def _card_rows(html: str) -> dict[tuple[str, str], list[dict]]:
    """(school, form heading) -> rows of the card's score table as printed."""
    out: dict[tuple[str, str], list[dict]] = {}
    for card in re.split(r'<section class="card" id="school-', html)[1:]:
        sid = card.split('"', 1)[0]
        for block in card.split('<div class="form">')[1:]:
            form = re.search(r"<h3>(.*?)</h3>", block).group(1)
            rows = []
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", block, flags=re.S)[1:]:
                cells = [re.sub(r"<[^>]+>", "", c).strip()
                         for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)]
                rows.append({"cells": cells, "dot": 'class="dot"' in tr})
            out[(sid, form)] = rows
    return out


@pytest.mark.parametrize("lang", ["en", "es"])
def test_scores_only_behind_both_gates_with_interval_and_band(run, scores, lang):
    html = _html(run, _stem("cards", lang))
    cards = _card_rows(html)
    rate_rule = {"teacher": rules.MIN_RESPONSE_RATE_TEACHERS,
                 "family": rules.MIN_RESPONSE_RATE_FAMILIES}
    shown_printed = 0
    for (sid, _), rows in cards.items():
        for r in rows:
            if not r["dot"]:
                assert not re.search(r"^\d+$", r["cells"][-1] if r["cells"] else ""), r
                continue
            shown_printed += 1
            label, _, score, interval, band, p_band = r["cells"]
            band = re.sub(r"\s*\(.*\)$", "", band)            # "(less precise)" marker
            lo, hi = (int(x) for x in interval.split("–"))
            assert lo <= int(score) <= hi
            assert band_of(float(score)) == BAND_NAMES[lang][band]
            assert re.fullmatch(r"\d+%", p_band)
    shown = scores[~scores["suppressed"].astype(bool)]
    assert shown_printed == len(shown) > 0
    for r in shown.itertuples():
        assert rules.MIN_N_PRIVACY.passes(r.n)
        assert rate_rule[r.form].passes(r.response_rate)
    assert (scores["suppressed"].astype(bool)).any()


def test_brief_mentions_gates_band_accuracy_and_suppression(run):
    for lang, words in (("en", ("band accuracy", "band consistency", "are not shown")),
                        ("es", ("exactitud de la categoría", "consistencia de la categoría",
                                "no se muestran"))):
        text = " ".join(_pdf(run, _stem("brief", lang)))
        text = re.sub(r"\s+", " ", text)
        for w in words:
            assert w in text, (lang, w)


@pytest.mark.parametrize("stem", ["policy_brief", "policy_brief_es", "school_cards",
                                  "school_cards_es"])
def test_no_table_wider_than_the_page(run, stem):
    """Chromium lays the page out at the printed width; every table must fit it."""
    page = run[0] / "reports" / f"{stem}.html"
    probe = page.with_name(f"probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", """<script>
window.addEventListener('load', function () {
  var w = document.documentElement.clientWidth, bad = [];
  for (const t of document.querySelectorAll('table')) {
    var r = t.getBoundingClientRect();
    if (r.right > w + 1 || t.scrollWidth > t.parentElement.clientWidth + 1) bad.push(t.className);
  }
  document.body.setAttribute('data-wide', bad.length);
});
</script></body>""", 1), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="instrument-print-") as profile:
        proc = subprocess.run(
            [find_chromium(), *HEADLESS_FLAGS, f"--user-data-dir={profile}",
             f"--window-size={PRINT_WIDTH_PX},1000", "--virtual-time-budget=5000",
             "--blink-settings=mediaTypeOverride=print", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=300)
    m = re.search(r'data-wide="(\d+)"', proc.stdout)
    assert m, proc.stderr[-2000:]
    assert m.group(1) == "0", f"{m.group(1)} table(s) wider than the printed page in {stem}"


def test_spanish_reports_have_every_translation(run):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in ("brief", "cards"):
            render(run[1], kind, run[0] / "again", formats=("html",), lang="es")


@pytest.mark.parametrize("stem", ["policy_brief", "school_cards", "technical_report"])
def test_the_copy_chromium_prints_gives_the_pdf_of_the_file_itself(run, stem, tmp_path,
                                                                    monkeypatch):
    """Chromium prints, in a narrow window, a hidden copy of each report that is rendered only
    in print pages: the PDF is byte for byte the one printed from the file itself in a window of
    Chromium's default size, and no copy is left behind."""
    from instrument.report import pdf

    reports = run[0] / "reports"
    assert not [p.name for p in reports.iterdir() if p.name.startswith(".")]

    def no_copy(path):
        raise PermissionError(path)
    monkeypatch.setattr(pdf, "_printable_copy", no_copy)
    monkeypatch.setattr(pdf, "PRINT_WINDOW_PX", None)
    plain = pdf.html_to_pdf(reports / f"{stem}.html", tmp_path / f"{stem}.pdf")
    assert plain.read_bytes() == (reports / f"{stem}.pdf").read_bytes()
