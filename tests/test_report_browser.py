"""Browser check: every rendered report loads in a real headless Chromium without console errors,
with every section heading in the rendered DOM and every figure decoded.

Chromium (Debian package ``chromium``) is required: without it these tests FAIL with the install
command, they never skip. Each page is loaded with ``--dump-dom`` and ``--enable-logging=stderr``;
Chromium writes every console message (errors, failed resource loads) to stderr as
``CONSOLE`` lines, which must be absent. A copy of each page gets a small script that counts
images that failed to decode into attributes of ``<body>``, read back from the dumped DOM.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from instrument.report import (BRIEF_SECTIONS, TECHNICAL_SECTIONS, find_chromium, load_results,
                               render)
from instrument.report.pdf import HEADLESS_FLAGS

FIXTURE = Path(__file__).parent / "fixtures" / "report" / "results_example.json"
IMAGE_PROBE = """<script>
window.addEventListener('load', function () {
  var n = 0, broken = 0;
  for (const img of document.images) { n++; if (!img.complete || img.naturalWidth === 0) broken++; }
  document.body.setAttribute('data-images', n);
  document.body.setAttribute('data-broken', broken);
});
</script>"""


def chromium_load(page: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium; return (dumped DOM, console lines from the log)."""
    exe = find_chromium()
    if exe is None:
        pytest.fail("Chromium is required for the browser check and was not found: "
                    "install it with `apt-get install -y chromium` (Debian).")
    with tempfile.TemporaryDirectory(prefix="instrument-browser-") as profile:
        proc = subprocess.run(
            [exe, *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def _probe_copy(src: Path, dst_dir: Path) -> Path:
    text = src.read_text(encoding="utf-8")
    assert "</body>" in text
    dst = dst_dir / f"probe_{src.name}"
    dst.write_text(text.replace("</body>", IMAGE_PROBE + "</body>", 1), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    results = load_results(FIXTURE)
    return {k: render(results, k, out, formats=("html",))[0]
            for k in ("technical", "brief", "cards")}


def _headings(dom: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip()
            for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", dom, flags=re.S)]


EXPECTED = {
    "technical": [f"{i}. {s}" for i, s in enumerate(TECHNICAL_SECTIONS, 1)],
    "brief": list(BRIEF_SECTIONS),
    "cards": ["School score cards"],
}


@pytest.mark.parametrize("kind", ["technical", "brief", "cards"])
def test_page_renders_in_chromium(pages, kind, tmp_path):
    dom, console = chromium_load(_probe_copy(pages[kind], tmp_path))
    assert console == [], "console messages:\n" + "\n".join(console)
    heads = _headings(dom)
    for h in EXPECTED[kind]:
        assert h in heads, (h, heads)
    m = re.search(r'<body[^>]*data-images="(\d+)"[^>]*data-broken="(\d+)"', dom)
    assert m, "the image probe did not run"
    n, broken = map(int, m.groups())
    assert broken == 0
    assert n == pages[kind].read_text(encoding="utf-8").count("<img ")
    if kind == "cards":
        assert len(re.findall(r'<section class="card" id="school-', dom)) == 24
    else:
        assert n >= 1


def test_check_catches_console_errors_and_broken_images(tmp_path):
    """The check can fail: a console error and an undecodable image are both caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><h1>x</h1>"
                   "<img src='data:image/svg+xml;base64,AAAA'>"
                   "<script>console.error('deliberate error')</script></body></html>")
    dom, console = chromium_load(_probe_copy(bad, tmp_path))
    assert any("deliberate error" in ln for ln in console)
    assert 'data-broken="1"' in dom


def test_missing_chromium_fails_rather_than_skips(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_load(tmp_path / "any.html")
