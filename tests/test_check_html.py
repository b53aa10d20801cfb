"""`make check-html`'s checker (ci/check_html.py) on tiny hand-written sites.

tests/fixtures/html/site/ has a clean chapter and one page per defect; the checker must pass the
clean one and report each defect with its kind, and nothing else. Needs Playwright
(ci/html-requirements.txt) and a system Chromium (`apt-get install -y chromium`); skipped
without them. One browser for the module: a few seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tests" / "fixtures" / "html" / "site"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_html", ROOT / "ci" / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_html", module)
    spec.loader.exec_module(module)
    return module


check_html = _load_checker()
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed: pip install -r ci/html-requirements.txt",
)
if check_html.find_chromium() is None:
    pytest.skip(check_html.INSTALL_HINT, allow_module_level=True)

# The fixture's search index knows "perceptron" (chapter 01) and not chapter 03's term.
TERMS = {"perceptron": "book/01_clean", "unfindable": "book/03_unsearchable"}

EXPECTED = {
    "book/01_clean": set(),
    "book/raw_latex": {"raw-latex"},
    "book/broken_image": {"broken-image"},
    "book/missing_alt": {"missing-alt"},
    "book/wide_code": {"cut-line"},
    "book/console_error": {"console-error"},
    "book/broken_link": {"broken-link"},
    "book/02_no_links": {"chapter-links"},
    "book/05_bad_notebook": {"chapter-links"},
    "book/03_unsearchable": {"search"},
    "book/dark_figure": {"dark-figure"},
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    shots = tmp_path_factory.mktemp("check-html")
    with sync_api.sync_playwright() as playwright:
        browser = check_html.launch(playwright)
        try:
            report = check_html.check_site(SITE, browser, search_terms=TERMS, screenshots=shots)
        finally:
            browser.close()
    return report, shots


def details(findings, page, kind):
    return [f.detail for f in findings if f.page == page and f.kind == kind]


def test_pages_found_redirect_stub_skipped():
    names = {check_html.page_name(SITE, p) for p in check_html.find_pages(SITE)}
    assert names == set(EXPECTED)  # index.html is a redirect; search.html is checked apart


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_each_page_reports_exactly_its_defect(result, page):
    findings = result[0].findings
    kinds = {f.kind for f in findings if f.page == page}
    assert kinds == EXPECTED[page], [str(f) for f in findings if f.page == page]


def test_every_defect_kind_is_exercised(result):
    assert {f.kind for f in result[0].findings} == set(check_html.KINDS)
    assert {f.page for f in result[0].findings} <= set(
        EXPECTED
    )  # nothing on the search page itself


def test_details_say_what_a_reader_would_see(result):
    findings = result[0].findings
    (latex,) = details(findings, "book/raw_latex", "raw-latex")
    assert "\\frac{1}{2}" in latex
    assert sorted(details(findings, "book/missing_alt", "missing-alt")) == [
        "../_images/opaque.png (empty alt)",
        "../_images/opaque.png (no alt attribute)",
        "../_images/opaque.png (the alt text is the file name)",
    ]
    assert details(findings, "book/broken_image", "broken-image") == ["../_images/corrupt.png"]
    (cut,) = details(findings, "book/wide_code", "cut-line")
    assert cut.startswith("code line 2,") and "some_function_with_a_long_name" in cut
    assert any(
        "callSomethingThatDoesNotExist" in d
        for d in details(findings, "book/console_error", "console-error")
    )
    broken = " ".join(details(findings, "book/broken_link", "broken-link"))
    assert "missing_page.html" in broken and "'no-such-anchor' on book/01_clean" in broken
    no_links = " ".join(details(findings, "book/02_no_links", "chapter-links"))
    assert "no Colab launch link" in no_links and "is not an .ipynb" in no_links
    (bad,) = details(findings, "book/05_bad_notebook", "chapter-links")
    assert "does not parse as a notebook" in bad
    (search,) = details(findings, "book/03_unsearchable", "search")
    assert "'unfindable'" in search
    (dark,) = details(findings, "book/dark_figure", "dark-figure")
    assert "transparent figure on dark background" in dark and "transparent.png" in dark
    assert str(check_html.Finding("p", "k", "d")) == "p: k: d"


def test_transparent_figure_on_a_light_card_passes_with_a_note(result):
    report = result[0]
    assert not details(report.findings, "book/01_clean", "dark-figure")
    assert any("01_clean" in n and "transparent.png" in n for n in report.notes)
    # opaque and transparent on 01_clean, transparent on dark_figure (broken images not sampled)
    assert (report.figures, report.transparent) == (3, 2)


def test_screenshots_of_chapters(result):
    shots = result[1]
    saved = {p.name for p in shots.iterdir()}
    assert {"01_clean.png", "01_clean-dark.png", "03_unsearchable.png"} <= saved
    assert "raw_latex.png" not in saved  # only chapters (NN_name)
