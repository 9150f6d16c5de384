"""HTML -> PDF through headless Chromium (``--print-to-pdf``).

Chromium is the one external tool the reports use (Debian: ``apt-get install -y chromium``); it
also runs the browser check in the tests. It honours the CSS ``@page`` size and margins and
``break-before: page``, which the score cards use for one page per school. Set
``INSTRUMENT_CHROMIUM`` to a browser binary to use another one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--disable-dev-shm-usage")
INSTALL_HINT = ("PDF output needs a headless Chromium. On Debian/Ubuntu install it with "
                "`apt-get install -y chromium`, or set INSTRUMENT_CHROMIUM to a Chromium/Chrome "
                "binary; or render HTML only (`--no-pdf`, formats=('html',)).")


#: Chromium processes `Printer` runs at once: one per core of a 2-core machine (each print keeps
#: one renderer busy; more at once only share the same cores).
PRINT_WORKERS = 2


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
    pdf_path.write_bytes(reproducible(pdf_path.read_bytes()))
    return pdf_path


class Printer:
    """Prints HTML files to PDF in the background, at most ``workers`` Chromium processes at once.

    `submit` starts a print (`html_to_pdf`) as soon as a worker is free and returns at once, so
    the caller can write the next HTML file while Chromium prints; each print runs in its own
    Chromium process, so two prints use two cores. `Future.result` gives the PDF's path or raises
    `PdfUnavailable`. Use as a context manager: leaving the block waits for every print.
    """

    def __init__(self, workers: int = PRINT_WORKERS, *, timeout: float = 600) -> None:
        if workers < 1:
            raise ValueError(f"workers= must be at least 1; got {workers}.")
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chromium-print")

    def submit(self, html_path: str | Path, pdf_path: str | Path) -> Future:
        """Print ``html_path`` to ``pdf_path`` when a worker is free; the Future holds the path."""
        return self._pool.submit(html_to_pdf, html_path, pdf_path, timeout=self.timeout)

    def close(self) -> None:
        """Wait for every print submitted."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Printer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NODE_ID = re.compile(rb"\(node([0-9]{8})\)")


def reproducible(pdf: bytes) -> bytes:
    """The PDF with what varies between two prints of one HTML file made fixed: the dates
    (`fixed_dates`) and the DOM node ids Chromium writes into the tagged-PDF structure tree
    (``/ID (node00000067)``, allocated differently from run to run), renumbered in order of
    first appearance. Every replacement has the same length, so the cross-reference offsets
    stay valid."""
    ids: dict[bytes, bytes] = {}

    def renumber(m: re.Match) -> bytes:
        new = ids.setdefault(m.group(1), b"%08d" % (len(ids) + 1))
        return b"(node" + new + b")"
    return _NODE_ID.sub(renumber, fixed_dates(pdf))


_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:[0-9]{14}(Z|[+-][0-9]{2}'[0-9]{2}'?)?\)")


def fixed_dates(pdf: bytes) -> bytes:
    """The PDF with its creation and modification dates made reproducible.

    Chromium stamps the time of printing into the document information dictionary, the only
    bytes that differ between two prints of one HTML file. With ``SOURCE_DATE_EPOCH`` set (the
    reproducible-builds convention, https://reproducible-builds.org/specs/source-date-epoch/)
    the dates become that time in UTC; without it the entries are blanked out. Either way the
    replacement has the same length, so the cross-reference offsets stay valid.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    stamp = None
    if epoch.isdigit():
        from datetime import datetime, timezone

        stamp = datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y%m%d%H%M%S")

    def sub(m: re.Match) -> bytes:
        old = m.group(0)
        if stamp is not None:
            new = b"/" + m.group(1) + b" (D:" + stamp.encode() + b"Z)"
            if len(new) <= len(old):
                return new + b" " * (len(old) - len(new))
        return b" " * len(old)
    return _PDF_DATE.sub(sub, pdf)
