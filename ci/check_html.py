"""`make check-html`: open every page of the built book in headless Chromium, as a reader does.

    python ci/check_html.py _build/html [--screenshots _build/check-html] [--pages book/01_...]

The site is served over a local http.server (search needs http://, not file://) and every page
is opened at 1280x900 in light mode, after MathJax has typeset it. One line per finding,
``page: defect: detail``, then a summary; exit status 1 when anything was found, 2 when the
check could not run (no site, no Chromium, no Playwright).

Defects (the `kind` of a finding):
  raw-latex       LaTeX visible as text in prose (outside code, pre and typeset maths)
  broken-image    an image that did not load (complete and naturalWidth == 0)
  missing-alt     an image without alt text (or an empty one)
  cut-line        a code or output block wider than its box: the reader sees a scroll bar
  console-error   a JavaScript error, a console.error or a resource that failed to load
  broken-link     an internal link to a missing page, or a #fragment with no such id there
  chapter-links   a chapter (NN_name) without its Colab launch link or its .ipynb download
  search          the search page does not find a chapter's key term (SEARCH_TERMS)
  dark-figure     in dark mode, a figure with a transparent background on a dark page

Chromium is the system one (Debian's `chromium` package), through Playwright's executable_path:
no browser download. Screenshots of each chapter's first screen (light and dark) are saved
under --screenshots for a person to look at, with the findings in findings.txt.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
INSTALL_HINT = "no Chromium found: install it with `apt-get install -y chromium` (or set CHROMIUM)"

# A key term of each chapter, and the chapter the search page must list for it.
SEARCH_TERMS = {
    "perceptron": "book/01_perceptron",
    "backpropagation": "book/02_backpropagation",
    "early stopping": "book/03_training_an_mlp",
    "Adam": "book/04_optimisers_and_schedules",
    "convolution": "book/05_convolutional_networks",
    "positional encoding": "book/06_attention_and_transformers",
    "discriminator": "book/07_gans",
    "Grad-CAM": "book/08_interpretability",
    "fine-tuning": "book/09_transfer_learning",
}

# Pages that are not the book's text: theme files, viewcode's source listings, generated indexes.
SKIP_DIRS = ("_static", "_sources", "_images", "_modules", "_downloads")
SKIP_PAGES = ("genindex.html", "search.html", "py-modindex.html")
CHAPTER = re.compile(r"^\d\d")
IMAGE_FILE = re.compile(r"\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)
TRANSPARENT_FRACTION = 0.2  # above this, a figure's background counts as transparent
DARK_LUMINANCE = 0.4  # below this (0 black, 1 white), a background counts as dark

# Text that is LaTeX the reader should never see: $...$, $$, \( \) \[ \], \command, ^{ and _{.
RAW_LATEX = re.compile(
    r"\$\$|\$[^\s$][^$\n]{0,200}?\$|\\[()\[\]]|\\[A-Za-z]{2,}\b|[\^_]\{",
)

KINDS = (
    "raw-latex",
    "broken-image",
    "missing-alt",
    "cut-line",
    "console-error",
    "broken-link",
    "chapter-links",
    "search",
    "dark-figure",
)


@dataclass(frozen=True)
class Finding:
    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


# ---------------------------------------------------------------------------------------------
# Serving the site and reading it from disk


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "application/javascript",
        ".ipynb": "application/x-ipynb+json",
    }

    def log_message(self, format, *args):
        pass


class Server:
    """The site over http://127.0.0.1:<free port>/, in a daemon thread."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.refresh = a.get("content")


@functools.cache
def _parse(path: Path) -> _Ids:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def page_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel[: -len(".html")] if rel.endswith(".html") else rel


def find_pages(root: Path) -> list[Path]:
    """Every HTML page of the book's text (redirect stubs such as index.html excluded)."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.as_posix() in SKIP_PAGES:
            continue
        if _parse(path).refresh is not None:
            continue
        pages.append(path)
    return pages


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright, executable: str | None = None):
    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError(INSTALL_HINT)
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])


# ---------------------------------------------------------------------------------------------
# What runs in the page

_SETTLE = """async () => {
  for (const img of document.images) img.loading = "eager";
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  if (document.fonts) await document.fonts.ready;
}"""

_UNFOLD = """() => {
  for (const d of document.querySelectorAll("details")) d.open = true;
  for (const e of document.querySelectorAll(".toggle-hidden")) e.classList.remove("toggle-hidden");
}"""

# Text of the prose, one string per block element, with code, pre, typeset maths and scripts
# left out (a left-out element leaves a space, so $a<code>x</code>b$ does not hide a $...$).
_PROSE = """() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main")
    || document.body;
  const skip = "pre, code, kbd, samp, script, style, textarea, mjx-container, .MathJax, "
    + "mjx-assistive-mml, .highlight, .output, .cell_output, svg";
  const block = "p, li, dd, dt, td, th, h1, h2, h3, h4, h5, h6, figcaption, caption, "
    + "blockquote, div, section, article, main, body";
  const texts = new Map();
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const b = parent.closest(block) || main;
    texts.set(b, (texts.get(b) || "") + node.nodeValue);
  }
  return [...texts.values()].map(t => t.replace(/\\s+/g, " ").trim()).filter(t => t);
}"""

_IMAGES = """() => [...document.images].map(img => ({
  src: img.getAttribute("src") || "",
  alt: img.getAttribute("alt"),
  logo: !!img.closest(".navbar-brand, .logo") || img.classList.contains("logo__image"),
  broken: img.complete && img.naturalWidth === 0,
  output: !!img.closest(".cell_output, .output, figure"),
}))"""

# Blocks wider than their box. For each, the first line whose text is wider than the box's
# content width (measured with the block's own font), else the longest line.
_WIDE = """() => {
  const els = [...document.querySelectorAll("pre, .highlight, .output")]
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1);
  const innermost = els.filter(e => !els.some(o => o !== e && e.contains(o)));
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  return innermost.map(e => {
    const pre = e.matches("pre") ? e : (e.querySelector("pre") || e);
    const style = getComputedStyle(pre);
    ctx.font = style.font;
    const box = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const lines = pre.innerText.replace(/\\n$/, "").split("\\n");
    let first = -1, cut = 0, longest = 0;
    lines.forEach((line, i) => {
      const w = ctx.measureText(line.replace(/\\t/g, "        ")).width;
      if (w > box + 1) { cut += 1; if (first < 0) first = i; }
      if (w > ctx.measureText(lines[longest]).width) longest = i;
    });
    const i = first >= 0 ? first : longest;
    return {line: i + 1, text: lines[i] || "", cut: Math.max(cut, 1),
            scroll: e.scrollWidth, client: e.clientWidth,
            kind: e.matches(".output, .cell_output *") || e.closest(".cell_output")
              ? "output" : "code"};
  });
}"""

_LINKS = """() => [...document.querySelectorAll("a[href]")].map(a => ({
  raw: a.getAttribute("href"), href: a.href,
  download: a.classList.contains("btn-download-source-button"),
}))"""

# In dark mode: each figure's share of transparent pixels, and the colour the reader sees behind
# it (the first opaque background from the image itself up to the page).
_DARK = """() => {
  const rgba = s => (s.match(/[\\d.]+/g) || [0, 0, 0, 0]).map(Number);
  const behind = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const lum = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  const imgs = [...document.querySelectorAll(".cell_output img, .output img, figure img")];
  return imgs.filter(img => img.naturalWidth > 0).map(img => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    let data;
    try { data = ctx.getImageData(0, 0, canvas.width, canvas.height).data; }
    catch (err) { return {src: img.getAttribute("src"), error: String(err)}; }
    let transparent = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] < 128) transparent += 1;
    const bg = behind(img);
    return {src: img.getAttribute("src"), transparent: transparent / (data.length / 4),
            background: bg, luminance: lum(bg),
            theme: document.documentElement.dataset.theme || ""};
  });
}"""

# The pydata theme's dark mode: html[data-theme] (its toggle also stores the mode).
_THEME = """mode => {
  document.documentElement.dataset.theme = mode;
  document.documentElement.dataset.mode = mode;
  try { localStorage.setItem("mode", mode); localStorage.setItem("theme", mode); } catch (e) {}
}"""

_SEARCH_DONE = """() => {
  const s = document.querySelector("#search-results .search-summary");
  return !!s && /finished|did not match/i.test(s.textContent);
}"""

_SEARCH_HITS = """() => [...document.querySelectorAll("#search-results ul.search li a")]
  .map(a => a.href)"""


# ---------------------------------------------------------------------------------------------
# The checks


def _excerpt(text: str, start: int, end: int, width: int = 30) -> str:
    a, b = max(0, start - width), min(len(text), end + width)
    return ("…" if a else "") + text[a:b] + ("…" if b < len(text) else "")


def _short(text: str, n: int = 90) -> str:
    text = text.rstrip()
    return text if len(text) <= n else text[: n - 1] + "…"


class Checker:
    def __init__(self, root: Path, browser, base: str, screenshots: Path | None = None):
        self.root = root.resolve()
        self.browser = browser
        self.base = base
        self.screenshots = screenshots
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.figures = 0  # figures in cell outputs, sampled in dark mode
        self.transparent = 0  # of which more than TRANSPARENT_FRACTION transparent
        self.light = browser.new_context(viewport=VIEWPORT, color_scheme="light")
        self.light.add_init_script("try { localStorage.setItem('mode', 'light'); } catch (e) {}")

    def close(self) -> None:
        self.light.close()

    def add(self, page: str, kind: str, detail: str) -> None:
        finding = Finding(page, kind, detail)
        if finding not in self.findings:
            self.findings.append(finding)

    def _open(self, context, url: str, name: str):
        """A new tab at url, settled; console errors and page errors become findings."""
        tab = context.new_page()

        def on_console(msg):
            if msg.type == "error":
                if msg.location and msg.location.get("url", "").endswith("/favicon.ico"):
                    return  # Chromium asks every site for one; the book has none, by design
                where = msg.location.get("url", "") if msg.location else ""
                where = where.replace(self.base, "")
                text = msg.text + (f" ({where})" if where and where not in msg.text else "")
                self.add(name, "console-error", _short(text, 200))

        tab.on("console", on_console)
        tab.on("pageerror", lambda err: self.add(name, "console-error", _short(str(err), 200)))
        tab.goto(url, wait_until="load")
        tab.evaluate(_SETTLE)
        return tab

    # -- one page ------------------------------------------------------------------------------

    def check_page(self, path: Path) -> None:
        name = page_name(self.root, path)
        stem = path.stem
        chapter = bool(CHAPTER.match(stem))
        tab = self._open(self.light, self.base + path.relative_to(self.root).as_posix(), name)
        try:
            if chapter and self.screenshots is not None:
                self.screenshots.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(self.screenshots / f"{stem}.png"))
            self._raw_latex(tab, name)
            has_figures = self._images(tab, name)
            links = tab.evaluate(_LINKS)
            self._links(links, path, name)
            if chapter:
                self._chapter_links(links, path, name)
            if has_figures or chapter:
                self._dark(tab, name, screenshot=chapter)
            tab.evaluate(_UNFOLD)
            self._wide(tab, name)
        finally:
            tab.close()

    def _raw_latex(self, tab, name: str) -> None:
        for text in tab.evaluate(_PROSE):
            matches = list(RAW_LATEX.finditer(text))
            if matches:
                first = matches[0]
                more = f" (+{len(matches) - 1} more in this paragraph)" if len(matches) > 1 else ""
                excerpt = _excerpt(text, first.start(), first.end(), width=40)
                self.add(name, "raw-latex", f"{excerpt!r}{more}")

    def _images(self, tab, name: str) -> bool:
        has_figures = False
        for img in tab.evaluate(_IMAGES):
            src = _short(img["src"], 80) or "(no src)"
            if img["broken"]:
                self.add(name, "broken-image", src)
            alt = (img["alt"] or "").strip()
            what = "logo " if img["logo"] else ""
            if not alt:
                why = "no alt attribute" if img["alt"] is None else "empty alt"
                self.add(name, "missing-alt", f"{what}{src} ({why})")
            elif alt == img["src"] or IMAGE_FILE.search(alt):
                # docutils' default when no alt is given: the image's own path
                self.add(name, "missing-alt", f"{what}{src} (the alt text is the file name)")
            if img["output"] and not img["broken"]:
                self.figures += 1
            has_figures = has_figures or (img["output"] and not img["broken"])
        return has_figures

    def _wide(self, tab, name: str) -> None:
        for block in tab.evaluate(_WIDE):
            more = f" (+{block['cut'] - 1} more cut)" if block["cut"] > 1 else ""
            self.add(
                name,
                "cut-line",
                f"{block['kind']} line {block['line']}{more}, {block['scroll']} px in "
                f"{block['client']} px: {_short(block['text'])!r}",
            )

    def _target(self, href: str) -> tuple[Path, str] | None:
        """The file under the site root an internal link points at, and its fragment."""
        if not href.startswith(self.base):
            return None
        parts = urlsplit(href)
        rel = unquote(parts.path).lstrip("/")
        target = self.root / rel
        if rel == "" or rel.endswith("/"):
            target = target / "index.html"
        return target, unquote(parts.fragment)

    def _links(self, links, path: Path, name: str) -> None:
        for link in links:
            raw = (link["raw"] or "").strip()
            if not raw or raw == "#" or raw.startswith(("javascript:", "mailto:")):
                continue
            target = self._target(link["href"])
            if target is None:
                continue
            file, fragment = target
            if not file.is_file():
                self.add(name, "broken-link", f"{raw} (no {file.relative_to(self.root)})")
            elif fragment and file.suffix == ".html" and fragment not in _parse(file).ids:
                where = "" if file == path else f" on {page_name(self.root, file)}"
                self.add(name, "broken-link", f"{raw} (no id {fragment!r}{where})")

    def _chapter_links(self, links, path: Path, name: str) -> None:
        notebook = f"{path.stem}.ipynb"
        colab = [x for x in links if "colab.research.google.com" in x["href"]]
        if not any(notebook in x["href"] for x in colab):
            found = f" (Colab links: {', '.join(x['href'] for x in colab)})" if colab else ""
            self.add(name, "chapter-links", f"no Colab launch link to {notebook}{found}")
        downloads = [x for x in links if x["download"]]
        if not downloads:
            self.add(name, "chapter-links", "no download button for the .ipynb")
        for link in downloads:
            href = link["raw"]
            if not urlsplit(href).path.endswith(".ipynb"):
                self.add(name, "chapter-links", f"download link {href} is not an .ipynb")
                continue
            target = self._target(link["href"])
            if target is None or not target[0].is_file():
                self.add(name, "chapter-links", f"download link {href}: no such file")
                continue
            problem = _notebook_problem(target[0])
            if problem:
                self.add(name, "chapter-links", f"download link {href}: {problem}")

    def _dark(self, tab, name: str, screenshot: bool) -> None:
        """Switch the open page to dark mode (as the theme's toggle does), sample, switch back."""
        tab.emulate_media(color_scheme="dark")
        tab.evaluate(_THEME, "dark")
        try:
            if screenshot and self.screenshots is not None:
                stem = name.rsplit("/", 1)[-1]
                tab.screenshot(path=str(self.screenshots / f"{stem}-dark.png"))
            figures = tab.evaluate(_DARK)
        finally:
            tab.emulate_media(color_scheme="light")
            tab.evaluate(_THEME, "light")
        for fig in figures:
            src = _short(fig["src"] or "", 80)
            if "error" in fig:
                self.notes.append(f"{name}: could not read the pixels of {src}: {fig['error']}")
                continue
            if fig["transparent"] <= TRANSPARENT_FRACTION:
                continue
            self.transparent += 1
            bg = "rgb({}, {}, {})".format(*(round(c) for c in fig["background"]))
            if fig["luminance"] < DARK_LUMINANCE:
                self.add(
                    name,
                    "dark-figure",
                    f"transparent figure on dark background: {src} "
                    f"({fig['transparent']:.0%} transparent pixels on {bg})",
                )
            else:
                self.notes.append(
                    f"{name}: {src} is {fig['transparent']:.0%} transparent; in dark mode the "
                    f"page shows it on {bg} (light: readable)"
                )

    # -- search --------------------------------------------------------------------------------

    def check_search(self, terms: dict[str, str]) -> None:
        if not (self.root / "search.html").is_file():
            for term, page in terms.items():
                self.add(page, "search", f"no search.html to look up {term!r}")
            return
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        tab = None
        for term, page in terms.items():
            if tab is not None:
                tab.close()
            url = f"{self.base}search.html?q={term.replace(' ', '+')}"
            tab = self._open(self.light, url, "search")
            try:
                tab.wait_for_function(_SEARCH_DONE, timeout=15000)
            except PlaywrightTimeout:
                self.add(page, "search", f"{term!r}: the search page did not finish in 15 s")
                continue
            hits = tab.evaluate(_SEARCH_HITS)
            wanted = self.base + page + ".html"
            if not any(h.split("#")[0].split("?")[0] == wanted for h in hits):
                listed = ", ".join(
                    sorted({h.replace(self.base, "").split("#")[0].split("?")[0] for h in hits})
                )
                self.add(
                    page, "search", f"{term!r} does not list it (found: {listed or 'nothing'})"
                )
        if tab is not None:
            tab.close()


def _notebook_problem(path: Path) -> str | None:
    """Why path is not a notebook Jupyter or Colab would open, or None."""
    try:
        import nbformat
    except ImportError:  # pragma: no cover - nbformat ships with jupyter-book
        return None
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # any reason it does not open
        return f"does not parse as a notebook ({type(err).__name__}: {_short(str(err), 80)})"
    if not nb.cells:
        return "the notebook has no cells"
    return None


@dataclass
class Report:
    findings: list[Finding]
    notes: list[str]  # what passed but a person may want to know
    pages: int  # pages checked
    terms: int  # search terms looked up
    figures: int  # figures in cell outputs, sampled in dark mode
    transparent: int  # of which with a transparent background


def check_site(
    root: Path,
    browser,
    pages: list[Path] | None = None,
    search_terms: dict[str, str] | None = None,
    screenshots: Path | None = None,
) -> Report:
    """Check the pages of the built site at root (all of them unless pages is given)."""
    root = Path(root).resolve()
    pages = find_pages(root) if pages is None else [Path(p).resolve() for p in pages]
    terms = SEARCH_TERMS if search_terms is None else search_terms
    with Server(root) as server:
        checker = Checker(root, browser, server.base, screenshots)
        try:
            for path in pages:
                checker.check_page(path)
            checker.check_search(terms)
        finally:
            checker.close()
    return Report(
        checker.findings,
        checker.notes,
        len(pages),
        len(terms),
        checker.figures,
        checker.transparent,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built HTML, e.g. _build/html")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/check-html"))
    parser.add_argument(
        "--pages", nargs="*", help="only these pages (e.g. book/08_interpretability)"
    )
    parser.add_argument("--notes", action="store_true", help="also print what passed with notes")
    args = parser.parse_args(argv)

    root = args.site.resolve()
    if not (root / "search.html").is_file() and not any(root.glob("*.html")):
        print(f"check-html: {args.site} is not a built site (run make book)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(
            "check-html: Playwright is missing: pip install -r ci/html-requirements.txt",
            file=sys.stderr,
        )
        return 2
    chromium = find_chromium()
    if chromium is None:
        print(f"check-html: {INSTALL_HINT}", file=sys.stderr)
        return 2
    pages = None
    if args.pages:
        pages = [root / (p if p.endswith(".html") else p + ".html") for p in args.pages]

    start = time.monotonic()
    with sync_playwright() as playwright:
        browser = launch(playwright, chromium)
        try:
            report = check_site(root, browser, pages=pages, screenshots=args.screenshots)
        finally:
            browser.close()
    seconds = time.monotonic() - start

    for finding in report.findings:
        print(finding)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
        lines = [str(f) for f in report.findings]
        (args.screenshots / "findings.txt").write_text("".join(f"{x}\n" for x in lines))
    if args.notes:
        for note in report.notes:
            print(f"note: {note}")
    counts = Counter(f.kind for f in report.findings)
    per_kind = ", ".join(f"{kind} {counts[kind]}" for kind in KINDS if counts[kind])
    print(
        f"check-html: {report.pages} pages and {report.terms} search terms checked in "
        f"{seconds:.1f} s with {chromium}; {report.figures} figures sampled in dark mode, "
        f"{report.transparent} with a transparent background"
    )
    print(
        f"check-html: {len(report.findings)} findings"
        + (f" ({per_kind})" if per_kind else "")
        + f"; screenshots of each chapter's first screen and findings.txt in {args.screenshots}/"
    )
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
