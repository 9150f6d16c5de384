"""HTML -> PDF through headless Chromium, driven over the DevTools protocol.

Chromium is the one external tool the reports use; it also runs the browser check in the tests.
Its headless shell (Debian: ``apt-get install -y chromium-headless-shell``) is looked for first:
the same Blink and Skia print code without the desktop browser's services, so a run's PDFs cost
about a third less CPU (most of it the browser's start and its helper processes) and look the
same; the full browser (``chromium``) is used when the shell is not installed. One browser
process prints every document of a run (`Printer`): it is started with
``--remote-debugging-pipe`` and sent DevTools protocol commands
(https://chromedevtools.github.io/devtools-protocol/, one JSON message per command, each ended by
a NUL byte, on file descriptors 3 and 4). Each print worker has one page of its own, in a browser
context of its own (its own renderer process, so two prints use two cores), and opens its
documents there one after another (a new page costs the browser more than a document: about
0.6 s of CPU); each is printed with ``Page.printToPDF``: the CSS ``@page`` size and margins,
``break-before: page`` (one page per school on the score cards), no header or footer, a tagged
(accessible) PDF, as ``--print-to-pdf`` prints. Chromium prints a copy of each file that leaves
the document unrendered except in the pages it prints (`printed_only`). Set
``INSTRUMENT_CHROMIUM`` to a browser binary to use another one.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

#: Browser binaries looked for on PATH, in this order: the headless shells first (Debian's
#: package, then Google's build), then the full browsers.
CANDIDATES = ("chromium-headless-shell", "chrome-headless-shell", "chromium", "chromium-browser",
              "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--disable-dev-shm-usage")
INSTALL_HINT = ("PDF output needs a headless Chromium. On Debian install it with "
                "`apt-get install -y chromium-headless-shell` (or `chromium`), or set "
                "INSTRUMENT_CHROMIUM to a Chromium/Chrome binary; or render HTML only "
                "(`--no-pdf`, formats=('html',)).")
#: ``Page.printToPDF`` options: the page size and margins of the CSS ``@page`` rule, backgrounds
#: only where the CSS asks for them (``print-color-adjust: exact``), no header or footer, and a
#: tagged PDF (its structure tree lets screen readers read the tables and headings).
PRINT_OPTIONS = {"preferCSSPageSize": True, "printBackground": False,
                 "displayHeaderFooter": False, "generateTaggedPDF": True}


#: Put in the head of the copy of each document that Chromium prints: the document is rendered
#: only in the pages it is printed on. Chromium lays a document out in full several times
#: besides the print layout itself: for the screen while it loads it (as parsing proceeds) and
#: again after printing, when it restores the screen view; and once with print media at the
#: size of the page's window, not paginated, just before the print layout (a DevTools trace of
#: a print shows both print layouts). The rule hides the document on screen and, in print
#: media, in any viewport at most `HIDDEN_BELOW_PX` wide; each print page's window is
#: `PRINT_WINDOW_PX` wide, while the page area of a printed page (Letter less its margins: 695
#: px) is far wider. The PDF is the same, byte for byte, structure tree included. The rule has
#: to be in the document itself: a style sheet adopted by a script the page runs on each new
#: document applies only once the document has a script context, which the headless shell
#: creates after parsing.
HIDDEN_BELOW_PX = 32
PRINT_WINDOW_PX = HIDDEN_BELOW_PX // 2
PRINTED_ONLY = (b"<style>@media screen, print and (max-width: %dpx) "
                b"{ html { display: none !important; } }</style>" % HIDDEN_BELOW_PX)

_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)
_DOCTYPE = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<!doctype[^>]*>", re.IGNORECASE)


def printed_only(html: bytes) -> bytes:
    """``html`` with `PRINTED_ONLY` at the end of its head (after the doctype when it has no
    ``</head>``): the document Chromium prints."""
    m = _HEAD_END.search(html) or _DOCTYPE.match(html)
    at = (m.start() if m.re is _HEAD_END else m.end()) if m else 0
    return html[:at] + PRINTED_ONLY + html[at:]


#: Documents `Printer` prints at once: one per core of a 2-core machine (each print keeps one
#: renderer process busy; more at once only share the same cores).
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


def _chromium() -> str:
    exe = find_chromium()
    if exe is None:
        where = os.environ.get("INSTRUMENT_CHROMIUM")
        raise PdfUnavailable((f"INSTRUMENT_CHROMIUM={where!r} is not an executable file. "
                              if where else "No Chromium found on PATH "
                              f"(looked for {', '.join(CANDIDATES)}). ") + INSTALL_HINT)
    return exe


class _Browser:
    """One headless Chromium and its DevTools pipe: `call` sends a command and waits for its
    answer, `event` waits for an event of one page; a thread reads every message and hands each
    to whoever waits for it, so several threads can print at once."""

    def __init__(self, exe: str, timeout: float) -> None:
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="instrument-chromium-")
        self._stderr = open(os.path.join(self._dir, "stderr.txt"), "w+b")  # noqa: SIM115
        to_chrome, from_chrome = os.pipe(), os.pipe()
        # above 4, so that placing them on 3 and 4 in the child cannot overwrite one another;
        # the child keeps only what dup2 makes inheritable there (Python opens every file
        # descriptor non-inheritable), whether or not 3 and 4 are open here
        c_in, c_out = (fcntl.fcntl(to_chrome[0], fcntl.F_DUPFD, 10),
                       fcntl.fcntl(from_chrome[1], fcntl.F_DUPFD, 10))
        for fd in (to_chrome[0], from_chrome[1]):
            os.close(fd)

        def on_3_and_4() -> None:
            os.dup2(c_in, 3)
            os.dup2(c_out, 4)
        try:
            self.proc = subprocess.Popen(
                [exe, *HEADLESS_FLAGS, f"--user-data-dir={os.path.join(self._dir, 'profile')}",
                 "--remote-debugging-pipe"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr, close_fds=False, preexec_fn=on_3_and_4)  # noqa: PLW1509
        except OSError as exc:
            for fd in (c_in, c_out, to_chrome[1], from_chrome[0]):
                os.close(fd)
            self._cleanup()
            raise PdfUnavailable(f"Could not run {exe}: {exc}. " + INSTALL_HINT) from exc
        os.close(c_in)
        os.close(c_out)
        self._out, self._in = to_chrome[1], from_chrome[0]
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[Any, Future] = {}   # command id or (event, session) -> its Future
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="chromium-devtools", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        parts: list[bytes] = []
        while True:
            try:
                chunk = os.read(self._in, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            while (end := chunk.find(b"\0")) >= 0:
                parts.append(chunk[:end])
                msg, parts, chunk = json.loads(b"".join(parts)), [], chunk[end + 1:]
                key = msg["id"] if "id" in msg else (msg.get("method"), msg.get("sessionId"))
                with self._lock:
                    waiter = self._waiting.pop(key, None)
                if waiter is not None:
                    waiter.set_result(msg)
            parts.append(chunk)
        with self._lock:
            self._ended = True
            waiters, self._waiting = list(self._waiting.values()), {}
        for w in waiters:
            w.set_exception(PdfUnavailable(self._why_ended()))

    def _why_ended(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0)
        tail = "\n".join(self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:])
        return f"Chromium ended (exit {code})" + (f":\n{tail}" if tail else ".")

    def _wait(self, key: Any, send: bytes | None = None) -> Future:
        f: Future = Future()
        with self._lock:
            if self._ended:
                raise PdfUnavailable(self._why_ended())
            self._waiting[key] = f
            if send is not None:
                try:
                    _write_all(self._out, send)
                except OSError:     # the browser has gone; the reader says why
                    pass
        return f

    def _result(self, f: Future, what: str) -> dict:
        try:
            return f.result(timeout=self.timeout)
        except FutureTimeout:
            raise PdfUnavailable(f"Chromium did not finish {what} within {self.timeout:g} s.") \
                from None

    def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        """Send one command; its result, or PdfUnavailable with Chromium's error message."""
        with self._lock:
            self._next += 1
            n = self._next
        msg = {"id": n, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = session
        answer = self._result(self._wait(n, json.dumps(msg).encode() + b"\0"), method)
        if "error" in answer:
            raise PdfUnavailable(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer.get("result", {})

    def event(self, method: str, session: str) -> Future:
        """A Future set when page ``session`` sends event ``method`` (ask before acting)."""
        return self._wait((method, session))

    def open_page(self) -> "_Page":
        """A new page in a browser context of its own, ready to print documents one by one."""
        return _Page(self)

    def close(self) -> None:
        """Close the browser and remove its profile folder."""
        if not self._ended:
            try:
                self.call("Browser.close")
            except PdfUnavailable:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        os.close(self._out)
        os.close(self._in)
        self._cleanup()

    def _cleanup(self) -> None:
        self._stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Page:
    """One page of the browser, in a browser context of its own (so a renderer process of its
    own), with a window `PRINT_WINDOW_PX` wide (the viewport set with
    ``Emulation.setDeviceMetricsOverride``; none when it is None): `print_pdf` opens a document
    in it and prints it; `close` removes the context."""

    def __init__(self, browser: _Browser) -> None:
        self.browser = browser
        self.context = browser.call("Target.createBrowserContext")["browserContextId"]
        try:
            target = browser.call("Target.createTarget", url="about:blank",
                                  browserContextId=self.context)["targetId"]
            self.session = browser.call("Target.attachToTarget", targetId=target,
                                        flatten=True)["sessionId"]
            browser.call("Page.enable", self.session)
            if PRINT_WINDOW_PX:
                browser.call("Emulation.setDeviceMetricsOverride", self.session,
                             width=PRINT_WINDOW_PX, height=PRINT_WINDOW_PX, deviceScaleFactor=1,
                             mobile=False)
        except PdfUnavailable:
            self.close()
            raise

    def print_pdf(self, html_path: Path) -> bytes:
        """The PDF Chromium prints of ``html_path``, opened in this page.

        Chromium opens a copy, `printed_only`, written beside the file (a hidden file
        in the same folder, so that relative links resolve as in the original) and removed after
        printing; where the folder takes no new file, the file itself (the same PDF, printed
        more slowly)."""
        try:
            copy = _printable_copy(html_path)
        except OSError:
            copy = None
        try:
            return self._print(copy or html_path, html_path.name)
        finally:
            if copy is not None:
                copy.unlink(missing_ok=True)

    def _print(self, path: Path, name: str) -> bytes:
        b = self.browser
        loaded = b.event("Page.loadEventFired", self.session)
        nav = b.call("Page.navigate", self.session, url=path.as_uri())
        if nav.get("errorText"):
            raise PdfUnavailable(f"Chromium could not open {name}: {nav['errorText']}")
        b._result(loaded, f"loading {name}")
        data = b.call("Page.printToPDF", self.session, **PRINT_OPTIONS)["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        """Remove the page's browser context (and the page with it)."""
        try:
            self.browser.call("Target.disposeBrowserContext", browserContextId=self.context)
        except PdfUnavailable:
            pass


def _printable_copy(html_path: Path) -> Path:
    """Write `printed_only` of ``html_path`` to a new hidden file in its folder."""
    html = printed_only(html_path.read_bytes())
    fd, name = tempfile.mkstemp(prefix=f".{html_path.stem}.", suffix=".print.html",
                                dir=html_path.parent)
    try:
        _write_all(fd, html)
    except OSError:
        os.unlink(name)
        raise
    finally:
        os.close(fd)
    return Path(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 600) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; returns ``pdf_path``.

    Raises
    ------
    PdfUnavailable
        When no Chromium is found, or it fails or times out (the message says why).
    """
    with Printer(1, timeout=timeout) as printer:
        return printer.submit(html_path, pdf_path).result()


class Printer:
    """Prints HTML files to PDF in the background, at most ``workers`` documents at once, all in
    one Chromium, started in the background when the printer is (so it starts while the caller
    writes the first HTML file).

    `submit` starts a print as soon as a worker is free and returns at once, so the caller can
    write the next HTML file while Chromium prints. Each worker prints in a page of its own,
    kept for its next document (a page whose print failed is closed, and the worker's next
    print opens a new one). `Future.result` gives the PDF's path (its bytes made reproducible,
    `reproducible`) or raises `PdfUnavailable`. Use as a context manager: leaving the block
    waits for every print and closes the browser.
    """

    def __init__(self, workers: int = PRINT_WORKERS, *, timeout: float = 600) -> None:
        if workers < 1:
            raise ValueError(f"workers= must be at least 1; got {workers}.")
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chromium-print")
        self._lock = threading.Lock()
        self._browser: _Browser | PdfUnavailable | None = None
        self._local = threading.local()     # the worker thread's page
        self._pages: list[_Page] = []       # every page open, to close
        self._pool.submit(self._start)

    def _start(self) -> None:
        try:
            self._page()
        except PdfUnavailable:   # said by every print
            pass

    def _page(self) -> _Page:
        """The calling worker's page, opened on its first print."""
        page = getattr(self._local, "page", None)
        if page is None:
            page = self._get_browser().open_page()
            with self._lock:
                self._pages.append(page)
            self._local.page = page
        return page

    def _drop_page(self) -> None:
        page = getattr(self._local, "page", None)
        self._local.page = None
        if page is not None:
            with self._lock:
                self._pages.remove(page)
            page.close()

    def _get_browser(self) -> _Browser:
        with self._lock:
            if self._browser is None:
                try:
                    self._browser = _Browser(_chromium(), self.timeout)
                except PdfUnavailable as exc:
                    self._browser = exc
            if isinstance(self._browser, PdfUnavailable):
                raise self._browser
            return self._browser

    def _print(self, html_path: Path, pdf_path: Path) -> Path:
        try:
            try:
                pdf = self._page().print_pdf(html_path)
            except PdfUnavailable:
                self._drop_page()
                raise
        except PdfUnavailable as exc:
            raise PdfUnavailable(f"Chromium failed to print {html_path.name}: {exc}") from None
        if not pdf.startswith(b"%PDF-"):
            raise PdfUnavailable(f"Chromium failed to print {html_path.name}: not a PDF.")
        pdf_path.write_bytes(reproducible(pdf))
        return pdf_path

    def submit(self, html_path: str | Path, pdf_path: str | Path) -> Future:
        """Print ``html_path`` to ``pdf_path`` when a worker is free; the Future holds the path."""
        return self._pool.submit(self._print, Path(html_path).resolve(),
                                 Path(pdf_path).resolve())

    def close(self) -> None:
        """Wait for every print submitted, then close the browser."""
        self._pool.shutdown(wait=True)
        for page in self._pages:
            page.close()
        self._pages = []
        if isinstance(self._browser, _Browser):
            self._browser.close()
        self._browser = None

    def __enter__(self) -> "Printer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NODE_ID = re.compile(rb"\(node([0-9]{8})\)")


#: A leaf of the structure tree's ID name tree: its key range and its (id, element) pairs.
_ID_LEAF = re.compile(rb"/Limits \[\(node[0-9]{8}\) \(node[0-9]{8}\)\]\s*/Names \["
                      rb"((?:\s*\(node[0-9]{8}\) [0-9]+ [0-9]+ R)*)\s*\]")
_ID_PAIR = re.compile(rb"\(node([0-9]{8})\) ([0-9]+ [0-9]+ R)")


def reproducible(pdf: bytes) -> bytes:
    """The PDF with what varies between two prints of one HTML file made fixed: the dates
    (`fixed_dates`) and the DOM node ids Chromium writes into the tagged-PDF structure tree
    (``/ID (node00000067)``, allocated differently from run to run), renumbered in order of
    first appearance, with the ID name tree's pairs put back in the order of the new ids (a name
    tree is sorted by key, PDF 32000-1:2008, 7.9.6). Every replacement has the same length, so
    the cross-reference offsets stay valid."""
    ids: dict[bytes, bytes] = {}

    def renumber(m: re.Match) -> bytes:
        new = ids.setdefault(m.group(1), b"%08d" % (len(ids) + 1))
        return b"(node" + new + b")"

    def sort_leaf(m: re.Match) -> bytes:
        pairs = sorted(_ID_PAIR.findall(m.group(1)))
        if not pairs:
            return m.group(0)
        names = b" ".join(b"(node" + k + b") " + ref for k, ref in pairs)
        leaf = (b"/Limits [(node" + pairs[0][0] + b") (node" + pairs[-1][0] + b")]\n/Names ["
                + names + b"]")
        return leaf if len(leaf) == len(m.group(0)) else m.group(0)
    return _ID_LEAF.sub(sort_leaf, _NODE_ID.sub(renumber, fixed_dates(pdf)))


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
