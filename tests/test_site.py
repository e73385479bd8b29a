"""Build the website with -W (a warning or a cell error fails it), then open it in headless Chromium and
check what a reader sees: typeset math, figures, working navigation, hidden solutions, and on every page of
the table of contents no error output. The build reuses myst-nb's execution cache, so chapters executed by
`make book` are not executed again. (That a failed build is never published is tested in test_build.py.)"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "jupyter_execute"  # myst-nb writes every executed notebook here
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))


def toc_files() -> list[str]:
    """Every file of `_toc.yml`, in order, without its suffix (``chapters/01_odes``)."""
    def walk(entry) -> list[str]:
        if isinstance(entry, list):
            return [f for e in entry for f in walk(e)]
        if not isinstance(entry, dict):
            return []
        own = [entry["file"]] if "file" in entry else ([entry["root"]] if "root" in entry else [])
        return own + [f for key in ("parts", "chapters", "sections") for f in walk(entry.get(key, []))]

    return [str(Path(f).with_suffix("")) for f in walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))]


TOC = toc_files()
CHAPTERS = [f for f in TOC if f.startswith("chapters/")]  # Part II chapters join automatically
PAGES = ["index.html", "chapters/00_how_to_use.html", "chapters/01_odes.html", "exercises/ch01_odes.html"]
# Text that must never appear in a cell's output on the website
ERROR_TEXT = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception)\b")


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


def shown_figures(doc: str) -> int:
    """How many figures the executed notebook shows on its page: image outputs of cells whose output is not
    removed, not counting figures glued for use elsewhere (``glue(..., display=False)``)."""
    nb = json.loads((EXECUTED / f"{doc}.ipynb").read_text())
    count = 0
    for cell in nb["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or tags & {"remove-output", "remove-cell"}:
            continue
        for out in cell.get("outputs", []):
            if "scrapbook" not in out.get("metadata", {}) and any(k.startswith("image/") for k in out.get("data", {})):
                count += 1
    return count


def has_math(doc: str) -> bool:
    """Whether the page's source writes any math (outside code)."""
    source = next(ROOT.glob(f"{doc}.*"))
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = source.read_text()
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.DOTALL)
    return bool(re.search(r"\$[^$\n]+\$|\{math\}|\\begin\{", text))


@pytest.mark.parametrize("doc", TOC)
def test_no_page_shows_an_error_output(site, doc):
    """No page of the table of contents shows a traceback, an error line or myst-nb's error block in a cell
    output (a failed or stale execution that reached the website)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((site / f"{doc}.html").read_text(), "html.parser")
    assert not soup.select("div.output.traceback"), f"{doc} shows an error output"
    for out in soup.select("div.cell_output"):
        match = ERROR_TEXT.search(out.get_text())
        assert match is None, f"{doc}: a cell output shows {match.group(0)!r}: {out.get_text()[:300]}"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_every_chapter_has_typeset_math_and_decoded_figures(site, browser, doc):
    page, blocked = open_offline(browser, (site / f"{doc}.html").as_uri())
    # math: every math element typeset by MathJax, and no raw TeX left in the text outside code
    if has_math(doc):
        assert page.locator("main mjx-container").count() > 0, f"{doc}: no typeset math"
    untypeset = page.evaluate("() => [...document.querySelectorAll('main .math')]"
                              ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80))")
    assert untypeset == [], f"{doc}: math left as raw TeX: {untypeset[:5]}"
    prose = page.evaluate("""() => { const m = document.querySelector('main').cloneNode(true);
        m.querySelectorAll('pre, code, .highlight, .cell_output, script, style').forEach(e => e.remove());
        return m.textContent; }""")
    for raw in ["\\(", "\\[", "$$", "\\begin{"]:
        assert raw not in prose, f"{doc}: raw {raw!r} in the text"
    # figures: every image decoded by the browser, and every figure the notebook draws is on the page
    decoded = page.evaluate("() => [...document.querySelectorAll('main img')]"
                            ".map(i => i.complete && i.naturalWidth > 0)")
    assert all(decoded), f"{doc}: {decoded.count(False)} of {len(decoded)} images not decoded"
    if next(ROOT.glob(f"{doc}.*")).suffix == ".ipynb":
        expected = shown_figures(doc)
        on_page = page.locator("main .cell_output img").count()
        assert on_page >= expected, f"{doc}: the notebook draws {expected} figures, the page shows {on_page}"
    assert not any("mathjax" in u.lower() for u in blocked), blocked
    page.close()
