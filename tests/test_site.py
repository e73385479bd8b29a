"""Build the website with -W (a warning or a cell error fails it), then open it in headless Chromium and
check what a reader sees: typeset math, figures, working navigation, hidden solutions. The build reuses
myst-nb's execution cache, so chapters executed by `make book` are not executed again."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))
PAGES = ["index.html", "chapters/00_how_to_use.html", "chapters/01_odes.html", "exercises/ch01_odes.html"]


def build(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([JUPYTER_BOOK, "build", str(path), "-W", "-n", "--keep-going", *extra],
                          capture_output=True, text=True, timeout=3000)


@pytest.fixture(scope="module")
def site() -> Path:
    result = build(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "build succeeded" in result.stdout and "warning" not in result.stdout.split("build succeeded")[-1].lower()
    return HTML


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("DIFFBOOK_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (DIFFBOOK_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("Chromium is not installed (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--allow-file-access-from-files"])
        yield b
        b.close()


def open_offline(browser, url: str):
    """Open a page with every non-file request blocked: the site must work with no network."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = []

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")
    return page, blocked


def test_a_cell_error_fails_the_build(tmp_path):
    """With the book's own configuration, a notebook cell that raises must fail `jupyter-book build -W`."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "references.bib").write_text((ROOT / "references.bib").read_text())
    (tmp_path / "figures").mkdir()
    shutil.copy(ROOT / "figures" / "logo.svg", tmp_path / "figures" / "logo.svg")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: broken\n")
    (tmp_path / "index.md").write_text("# Index\n")
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken"),
                                         nbformat.v4.new_code_cell("raise RuntimeError('cell error')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "broken.ipynb")
    result = build(tmp_path)
    assert result.returncode != 0
    assert "cell error" in result.stdout + result.stderr or "Executing notebook failed" in result.stdout + result.stderr


def test_pages_exist_and_mathjax_is_local(site):
    for page in PAGES:
        assert (site / page).exists(), page
    chapter = (site / "chapters" / "01_odes.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js' in chapter and (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "colab.research.google.com/github/" in chapter  # the launch button


def test_chapter_renders_in_chromium(site, browser):
    page, blocked = open_offline(browser, (site / "chapters" / "01_odes.html").as_uri())
    main = page.locator("main")
    # math: typeset by MathJax, offline, with no raw TeX left in the text
    assert page.locator("mjx-container").count() > 40
    assert page.locator("mjx-container[display='true']").count() >= 5
    text = main.inner_text()
    assert "\\(" not in text and "\\[" not in text and "$$" not in text
    # numbered equations, theorems, proofs, exercises and a bibliography
    assert page.locator(".theorem").count() >= 4 and page.locator(".proof").count() >= 3
    assert page.locator("a[href*='references.html#id']").count() + page.locator("a[href*='references.html']").count() > 0
    # figures: at least five, each decoded by the browser
    imgs = main.locator("img")
    assert imgs.count() >= 5
    assert all(imgs.nth(i).evaluate("el => el.complete && el.naturalWidth > 0") for i in range(imgs.count()))
    # the worked solution is hidden until the reader opens it
    solution = page.locator(".solution")
    assert solution.count() == 1
    assert not solution.locator("p").last.is_visible()
    # every network request was blocked, and nothing essential needed one
    assert not any("mathjax" in u.lower() for u in blocked), blocked
    (ROOT / "_build" / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ROOT / "_build" / "screenshots" / "01_odes.png"), full_page=False)
    page.close()


def test_navigation_links_resolve(site, browser):
    for name in PAGES:
        page, _ = open_offline(browser, (site / name).as_uri())
        hrefs = page.eval_on_selector_all("nav a[href], main a[href]", "els => els.map(e => e.href)")
        local = [h for h in hrefs if h.startswith("file:")]
        assert local, f"{name} has no internal links"
        for href in local:
            target = Path(unquote(urlparse(href).path))
            assert target.exists(), f"{name} links to missing {target}"
        if name == "index.html":
            nav = page.locator("nav.bd-links a")
            assert nav.count() >= len(PAGES) - 1
            page.screenshot(path=str(ROOT / "_build" / "screenshots" / "index.png"))
        page.close()
