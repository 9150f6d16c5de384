"""HTML -> PDF through headless Chromium (``--print-to-pdf``).

Chromium is the one external tool the reports use (Debian: ``apt-get install -y chromium``); it
also runs the browser check in the tests. It honours the CSS ``@page`` size and margins and
``break-before: page``, which the score cards use for one page per school. Set
``INSTRUMENT_CHROMIUM`` to a browser binary to use another one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--disable-dev-shm-usage")
INSTALL_HINT = ("PDF output needs a headless Chromium. On Debian/Ubuntu install it with "
                "`apt-get install -y chromium`, or set INSTRUMENT_CHROMIUM to a Chromium/Chrome "
                "binary; or render HTML only (`--no-pdf`, formats=('html',)).")


class PdfUnavailable(RuntimeError):
    """Raised when a PDF is asked for and no Chromium can be found or run."""


def find_chromium() -> str | None:
    """Path of the Chromium binary to use (``INSTRUMENT_CHROMIUM`` first), or None."""
    env = os.environ.get("INSTRUMENT_CHROMIUM")
    if env:
        return env if (Path(env).is_file() and os.access(env, os.X_OK)) else None
    for name in CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 600) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; returns ``pdf_path``.

    Raises
    ------
    PdfUnavailable
        When no Chromium is found, or it fails or times out (the message says why).
    """
    exe = find_chromium()
    if exe is None:
        where = os.environ.get("INSTRUMENT_CHROMIUM")
        raise PdfUnavailable((f"INSTRUMENT_CHROMIUM={where!r} is not an executable file. "
                              if where else "No Chromium found on PATH "
                              f"(looked for {', '.join(CANDIDATES)}). ") + INSTALL_HINT)
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    with tempfile.TemporaryDirectory(prefix="instrument-chromium-") as profile:
        cmd = [exe, *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={pdf_path}", html_path.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise PdfUnavailable(f"Chromium did not finish printing {html_path.name} within "
                                 f"{timeout:g} s.") from exc
        except OSError as exc:
            raise PdfUnavailable(f"Could not run {exe}: {exc}. " + INSTALL_HINT) from exc
    if proc.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise PdfUnavailable(f"Chromium failed to print {html_path.name} "
                             f"(exit {proc.returncode}):\n{tail}")
    return pdf_path
