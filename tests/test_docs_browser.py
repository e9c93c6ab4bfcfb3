"""The built docs in headless Chromium: formulas typeset, nothing fetched from outside.

Needs the site (``make docs`` builds ``docs/_build/html``) and Debian's
``chromium``; ``make test`` provides both, and the test skips without them.
The site is served on 127.0.0.1; every other request Chromium makes goes to
a recording proxy on 127.0.0.1 that answers none of them, so nothing leaves
the machine and the test sees each request that would have.  Chromium 156
itself still asks two Google services (its component updater and account
sign-in) for updates despite the flags below; those browser requests, which
no page can cause, are the only ones tolerated.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SITE = Path(__file__).resolve().parents[1] / "docs" / "_build" / "html"
PAGES = ["index.html", "derivations/forward.html"]  # the front and closed-form pages
RAW_TEX = ("\\sqrt", "\\frac", "\\bar", "\\mathcal", "\\(", "\\[", "$$")
# Hosts that Chromium's own background services contact with any page open.
BROWSER_SERVICES = ("update.googleapis.com", "accounts.google.com")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,"
    "MediaRouter,Translate,AutofillServerCommunication,CertificateTransparency,"
    "ComponentUpdater,InterestFeedContentSuggestions",
    "--metrics-recording-only",
    "--no-pings",
    "--password-store=basic",
    "--use-mock-keychain",
    "--virtual-time-budget=20000",
]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = [
    pytest.mark.skipif(
        not (SITE / "index.html").is_file(),
        reason=f"no built site at {SITE}: run `make docs`",
    ),
    pytest.mark.skipif(
        _chromium() is None,
        reason="chromium is not installed (apt-get install chromium)",
    ),
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the site and records each path asked for."""

    asked: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.asked.append(self.path)


class _Recorder(socketserver.StreamRequestHandler):
    """A proxy that records the request line and refuses every request."""

    seen: list[str]

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        # Chromium may open a spare connection and close it unused: no request.
        if line:
            self.seen.append(line)
        self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str, list[str], list[str]]]:
    asked: list[str] = []
    seen: list[str] = []
    handler = functools.partial(
        type("Site", (_Quiet,), {"asked": asked}), directory=str(SITE)
    )
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    proxy = socketserver.ThreadingTCPServer(
        ("127.0.0.1", 0), type("Proxy", (_Recorder,), {"seen": seen})
    )
    for server in (site, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield (
            f"http://127.0.0.1:{site.server_address[1]}",
            f"http://127.0.0.1:{proxy.server_address[1]}",
            asked,
            seen,
        )
    finally:
        for server in (site, proxy):
            server.shutdown()
            server.server_close()


def _host(request_line: str) -> str | None:
    """The host a proxied request line names: CONNECT host:port or GET http://host/."""
    target = [*request_line.split(), "", ""][1]
    if "://" in target:
        return urlsplit(target).hostname
    return target.rsplit(":", 1)[0]


def render(url: str, proxy: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as Chromium dumps it."""
    command = [
        str(_chromium()),
        *CHROMIUM_FLAGS,
        f"--proxy-server={proxy}",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Text(HTMLParser):
    """The text a reader sees: everything outside script and style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)


@pytest.mark.parametrize("page", PAGES)
def test_formulas_are_typeset_offline(
    page: str, servers: tuple[str, str, list[str], list[str]], tmp_path: Path
) -> None:
    site, proxy, asked, seen = servers
    asked.clear()
    seen.clear()
    static = (SITE / page).read_text(encoding="utf-8")
    formulas = len(re.findall(r'class="math[ "]', static))

    dom = render(f"{site}/{page}", proxy, tmp_path / "profile")

    text = visible_text(dom)
    assert not [tex for tex in RAW_TEX if tex in text], "raw TeX left on the page"
    assert dom.count("<mjx-container") >= formulas
    if formulas:
        assert any(p.endswith("mathjax/tex-chtml.js") for p in asked)
    from_page = [r for r in seen if _host(r) not in BROWSER_SERVICES]
    assert from_page == [], f"requests that would have left the machine: {from_page}"


def test_the_closed_form_page_has_formulas() -> None:
    static = (SITE / "derivations" / "forward.html").read_text(encoding="utf-8")
    assert len(re.findall(r'class="math[ "]', static)) >= 10


# Attributes that make a browser fetch something: scripts, styles, fonts,
# images, frames.  Links a reader may follow (<a href>) are not fetched.
_FETCHED = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"([^\"]+)\""
    r"|<link\b[^>]*\bhref=\"([^\"]+)\""
    r"|url\(\s*['\"]?([^'\")]+)",
    re.IGNORECASE,
)


def _external(url: str) -> bool:
    return bool(re.match(r"(?:https?:)?//", url)) and not re.match(
        r"(?:https?:)?//(?:127\.0\.0\.1|localhost)[:/]", url
    )


def test_no_page_or_stylesheet_fetches_from_outside() -> None:
    files = [*SITE.rglob("*.html"), *(SITE / "_static").rglob("*.css")]
    fetched = {
        (path.relative_to(SITE).as_posix(), url)
        for path in files
        for match in _FETCHED.finditer(
            path.read_text(encoding="utf-8", errors="ignore")
        )
        for url in match.groups()
        if url and _external(url)
    }
    assert fetched == set()
