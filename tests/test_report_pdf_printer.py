"""Background PDF printing: `instrument.report.pdf.Printer` and the reports stage that uses it.

A stand-in "Chromium" (a Python script set through INSTRUMENT_CHROMIUM) answers the DevTools
protocol on its pipe (file descriptors 3 and 4) as the browser does, prints a small PDF after a
short pause and logs how many prints were running when each started, so the tests check what
the printer promises without the real browser: one browser for every print, prints overlap,
never more than ``workers`` at once, one page per worker, each document opened as a hidden copy
beside it that leaves it unrendered on screen (removed after printing), every PDF is made, a failed print is reported for its own document
only and closes its page, and the reports stage lists its files in the same order as before (the technical
report, the briefs, the cards).
"""
from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.report.pdf import PRINTED_ONLY, PdfUnavailable, Printer
from instrument.report.render import pipeline_stage
from instrument.results import from_jsonable

FIXTURE = Path(__file__).parent / "fixtures" / "report" / "results_example.json"

# Answers each command on fd 3 (NUL-ended JSON) on fd 4; Page.printToPDF answers after 0.4 s in
# a thread of its own, and "log" gets one line per print with the number running when it
# started, "starts" one line per browser started. A page whose name holds "fail" gets an error.
FAKE = r"""#!{python}
import base64, json, os, sys, threading, time
SCREEN = {screen!r}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "starts"), "a") as fh:
    fh.write("1\n")
lock, running, pages = threading.Lock(), [0], {{}}
def send(msg):
    with lock:
        os.write(4, json.dumps(msg).encode() + b"\0")
def print_pdf(m):
    with lock:
        running[0] += 1
        with open(os.path.join(here, "log"), "a") as fh:
            fh.write(f"{{running[0]}}\n")
    time.sleep(0.4)
    with lock:
        running[0] -= 1
    if "fail" in pages[m["sessionId"]].rsplit("/", 1)[-1]:
        send({{"id": m["id"], "error": {{"code": -32000, "message": "cannot print"}}}})
    else:
        send({{"id": m["id"], "result": {{"data": base64.b64encode(b"%PDF-1.4 fake\n").decode()}}}})
buf, n = b"", 0
while True:
    chunk = os.read(3, 65536)
    if not chunk:
        break
    buf += chunk
    while b"\0" in buf:
        raw, buf = buf.split(b"\0", 1)
        m = json.loads(raw)
        method, n = m["method"], n + 1
        with open(os.path.join(here, "methods"), "a") as fh:
            fh.write(method + "\n")
        if method == "Page.printToPDF":
            threading.Thread(target=print_pdf, args=(m,)).start()
            continue
        result = {{}}
        if method == "Target.createBrowserContext":
            result = {{"browserContextId": f"c{{n}}"}}
        elif method == "Target.createTarget":
            result = {{"targetId": f"t{{n}}"}}
        elif method == "Target.attachToTarget":
            result = {{"sessionId": f"s{{n}}"}}
        elif method == "Emulation.setDeviceMetricsOverride":
            with open(os.path.join(here, "windows"), "a") as fh:
                fh.write(f"{{m['sessionId']}} {{m['params']['width']}}\n")
        elif method == "Page.navigate":
            pages[m["sessionId"]] = url = m["params"]["url"]
            with open(url[len("file://"):], "rb") as doc, \
                    open(os.path.join(here, "opened"), "a") as fh:
                fh.write(f"{{url.rsplit('/', 2)[-2]}} {{url.rsplit('/', 1)[-1]}} "
                         f"{{SCREEN in doc.read()}}\n")
        send({{"id": m["id"], "result": result}})
        if method == "Page.navigate":
            send({{"method": "Page.loadEventFired", "params": {{}}, "sessionId": m["sessionId"]}})
        if method == "Browser.close":
            sys.exit(0)
"""


@pytest.fixture
def fake_chromium(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "chromium"
    d.mkdir()
    exe = d / "chromium"
    exe.write_text(FAKE.format(python=sys.executable, screen=PRINTED_ONLY))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(exe))
    return d


def _pages(tmp_path: Path, names: list[str]) -> list[Path]:
    pages = []
    for n in names:
        p = tmp_path / f"{n}.html"
        p.write_text("<!DOCTYPE html><p>page</p>")
        pages.append(p)
    return pages


def _running_at_start(fake: Path) -> list[int]:
    return [int(x) for x in (fake / "log").read_text().split()]


def _browsers_started(fake: Path) -> int:
    return len((fake / "starts").read_text().split())


def test_prints_run_two_at_once_and_no_more(tmp_path, fake_chromium):
    pages = _pages(tmp_path, ["a", "b", "c", "d", "e"])
    with Printer(workers=2) as printer:
        futures = [printer.submit(p, p.with_suffix(".pdf")) for p in pages]
    assert [f.result() for f in futures] == [p.with_suffix(".pdf").resolve() for p in pages]
    assert all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF-") for p in pages)
    counts = _running_at_start(fake_chromium)
    assert len(counts) == 5
    assert max(counts) == 2          # two prints overlapped, and never three
    assert _browsers_started(fake_chromium) == 1


def _methods(fake: Path) -> list[str]:
    return (fake / "methods").read_text().split()


def test_each_worker_prints_in_one_narrow_page_a_copy_rendered_only_in_print(tmp_path,
                                                                            fake_chromium):
    from instrument.report.pdf import HIDDEN_BELOW_PX

    pages = _pages(tmp_path, ["a", "b", "c", "d", "e"])
    with Printer(workers=2) as printer:
        for p in pages:
            printer.submit(p, p.with_suffix(".pdf"))
    methods = _methods(fake_chromium)
    assert methods.count("Page.navigate") == 5
    opened = methods.count("Target.createBrowserContext")
    assert 1 <= opened <= 2
    assert methods.count("Target.disposeBrowserContext") == opened
    # each page's window is narrower than the width below which the print-only rule hides the
    # document
    windows = [line.split() for line in (fake_chromium / "windows").read_text().splitlines()]
    assert len({w[0] for w in windows}) == len(windows) == opened
    assert all(0 < int(w[1]) <= HIDDEN_BELOW_PX for w in windows)
    # each document was opened as a hidden copy in its own folder, with the print-only rule in it
    docs = sorted(line.split() for line in (fake_chromium / "opened").read_text().splitlines())
    assert [d[0] for d in docs] == [tmp_path.name] * 5
    assert [d[1].split(".")[1] for d in docs] == ["a", "b", "c", "d", "e"]
    assert all(d[1].startswith(".") and d[1].endswith(".print.html") for d in docs)
    assert all(d[2] == "True" for d in docs)
    # and the copies are gone
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == \
        sorted([p.name for p in pages] + [p.with_suffix(".pdf").name for p in pages])


def test_a_folder_that_takes_no_copy_prints_the_file_itself(tmp_path, fake_chromium,
                                                             monkeypatch):
    from instrument.report import pdf

    def no_copy(path):
        raise PermissionError(path)
    monkeypatch.setattr(pdf, "_printable_copy", no_copy)
    (page,) = _pages(tmp_path, ["a"])
    with Printer(workers=1) as printer:
        assert printer.submit(page, page.with_suffix(".pdf")).result().name == "a.pdf"
    assert (fake_chromium / "opened").read_text().split() == [tmp_path.name, "a.html", "False"]


@pytest.mark.parametrize("html, expected", [
    (b"<!DOCTYPE html><html><head><title>t</title></head><body>x</body></html>",
     b"<!DOCTYPE html><html><head><title>t</title>" + PRINTED_ONLY
     + b"</head><body>x</body></html>"),
    (b"<!doctype html>\n<HEAD><meta charset=utf-8></HEAD >x",
     b"<!doctype html>\n<HEAD><meta charset=utf-8>" + PRINTED_ONLY + b"</HEAD >x"),
    (b"\xef\xbb\xbf<!DOCTYPE html><p>page</p>",
     b"\xef\xbb\xbf<!DOCTYPE html>" + PRINTED_ONLY + b"<p>page</p>"),
    (b"<p>page</p>", PRINTED_ONLY + b"<p>page</p>"),
])
def test_the_print_only_rule_goes_in_the_head(html, expected):
    from instrument.report.pdf import printed_only

    assert printed_only(html) == expected


def test_a_failed_print_closes_its_page(tmp_path, fake_chromium):
    pages = _pages(tmp_path, ["fail", "good"])
    with Printer(workers=1) as printer:
        futures = [printer.submit(p, p.with_suffix(".pdf")) for p in pages]
    assert futures[1].result().name == "good.pdf"
    methods = _methods(fake_chromium)
    assert methods.count("Target.createBrowserContext") == 2
    assert methods.count("Target.disposeBrowserContext") == 2


def test_one_worker_prints_one_at_a_time(tmp_path, fake_chromium):
    pages = _pages(tmp_path, ["a", "b", "c"])
    with Printer(workers=1) as printer:
        for p in pages:
            printer.submit(p, p.with_suffix(".pdf"))
    assert _running_at_start(fake_chromium) == [1, 1, 1]


def test_a_failed_print_is_its_own_error(tmp_path, fake_chromium):
    pages = _pages(tmp_path, ["good", "fail", "fine"])
    with Printer() as printer:
        futures = [printer.submit(p, p.with_suffix(".pdf")) for p in pages]
    assert futures[0].result().name == "good.pdf"
    with pytest.raises(PdfUnavailable, match=r"failed to print fail\.html: Page\.printToPDF: "
                                             r"cannot print"):
        futures[1].result()
    assert futures[2].result().name == "fine.pdf"


def test_report_command_prints_a_pdf(tmp_path, fake_chromium):
    # in its own process, as from a shell: the browser's pipe goes on its file descriptors 3
    # and 4 whatever this process holds there
    res = subprocess.run([sys.executable, "-m", "instrument", "report", str(FIXTURE), "--kind",
                          "brief", "--lang", "en", "--out", str(tmp_path / "r"), "--pdf"],
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "r" / "policy_brief.pdf").read_bytes().startswith(b"%PDF-"), res.stdout


def test_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers= must be at least 1; got 0"):
        Printer(workers=0)


def test_reports_stage_prints_every_report_in_the_background(tmp_path, fake_chromium):
    results = from_jsonable(json.loads(FIXTURE.read_text())["results"])
    out = pipeline_stage({"results": results, "out_dir": tmp_path / "run"})
    assert out["pdf"] is True and out["note"] == "" and out["pdf_files"] == 5
    stems = ["technical_report", "policy_brief", "policy_brief_es", "school_cards",
             "school_cards_es"]
    assert out["files"] == [f"reports/{s}.{ext}" for s in stems for ext in ("html", "pdf")]
    assert len(_running_at_start(fake_chromium)) == 5
    assert _browsers_started(fake_chromium) == 1


def test_reports_stage_names_the_report_whose_print_failed(tmp_path, monkeypatch,
                                                           fake_chromium):
    results = from_jsonable(json.loads(FIXTURE.read_text())["results"])
    # the Spanish cards' page fails to print; every other PDF is made
    render_mod = importlib.import_module("instrument.report.render")
    stems = dict(render_mod.FILE_STEMS)
    monkeypatch.setitem(render_mod.FILE_STEMS, "cards", stems["cards"] + "_fail")
    out = pipeline_stage({"results": results, "out_dir": tmp_path / "run"})
    assert out["pdf"] is False and out["pdf_files"] == 3
    assert "No PDF of school_cards_fail: " in out["note"]
    assert "No PDF of school_cards_fail_es: " in out["note"]
    assert "reports/technical_report.pdf" in out["files"]
    assert "reports/school_cards_fail.html" in out["files"]
    assert "reports/school_cards_fail.pdf" not in out["files"]
