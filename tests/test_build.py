"""The build never publishes an error: a failed execution fails `jupyter-book build -W`, and a later build after
the reader fixes the environment executes the notebook again instead of re-publishing the stored traceback.

Each test builds a throw-away mini book in a temporary folder with a copy of the book's own configuration
(`_config.yml` and the `_ext/` extension it loads), so it tests exactly what `make book` runs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))
# What an error output looks like in the built HTML: myst-nb's traceback block, or the text of one.
ERROR_HTML = re.compile(r'class="[^"]*\boutput traceback\b|Traceback \(most recent call last\)|ModuleNotFoundError')


def mini_book(root: Path, cells: list) -> Path:
    """A book with the real configuration and one notebook, `chapters/nb.ipynb`, made of ``cells``."""
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copytree(ROOT / "_ext", root / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "references.bib", root / "references.bib")
    (root / "figures").mkdir()
    shutil.copy(ROOT / "figures" / "logo.svg", root / "figures" / "logo.svg")
    (root / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: chapters/nb\n")
    (root / "index.md").write_text("# Index\n")
    (root / "chapters").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter\n\nSome math: $x^2$."), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "chapters" / "nb.ipynb")
    return root


def build(path: Path, pythonpath: Path | None = None, scale: str = "tiny") -> subprocess.CompletedProcess:
    """`jupyter-book build -W -n --keep-going`, as `make book` runs it; stdout and stderr together."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               DIFFBOOK_SCALE=scale)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # the kernel inherits it
    return subprocess.run([JUPYTER_BOOK, "build", str(path), "-W", "-n", "--keep-going"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def report(book: Path) -> str:
    """The traceback myst-nb saved for the mini book's failed notebook."""
    text = (book / "_build" / "html" / "reports" / "chapters" / "nb.err.log").read_text()
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # without the terminal colours


def executed(log: str) -> bool:
    return "Executing notebook using" in log


@pytest.mark.slow
def test_a_cell_error_fails_the_build(tmp_path):
    """With the book's own configuration, a notebook cell that raises must fail `jupyter-book build -W`."""
    book = mini_book(tmp_path, [nbformat.v4.new_code_cell("raise RuntimeError('cell error')")])
    result = build(book)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "Executing notebook failed" in result.stdout
    assert "RuntimeError: cell error" in report(book)


@pytest.mark.slow
def test_a_build_after_fixing_the_environment_executes_again_and_publishes_no_traceback(tmp_path):
    """The reported sequence: build 1 runs where the notebook's module is not importable and fails; the
    reader makes it importable; build 2 must execute the notebook again and publish its real output, not the
    traceback that Sphinx stored from build 1 (before the fix it passed -W in seconds, executing nothing)."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (tmp_path / "book").mkdir()
    cell = nbformat.v4.new_code_cell("import minimod\nprint('value', minimod.VALUE * 2)")
    book = mini_book(tmp_path / "book", [cell])
    page = book / "_build" / "html" / "chapters" / "nb.html"

    first = build(book, pythonpath=mods)
    assert first.returncode != 0 and "Executing notebook failed" in first.stdout, first.stdout[-3000:]
    assert "ModuleNotFoundError: No module named 'minimod'" in report(book)

    (mods / "minimod.py").write_text("VALUE = 21\n")  # the reader fixes the environment
    second = build(book, pythonpath=mods)
    assert second.returncode == 0, second.stdout[-3000:]
    assert executed(second.stdout), "the notebook that failed in build 1 was not executed again"
    html = page.read_text()
    assert "value 42" in html
    assert not ERROR_HTML.search(html), ERROR_HTML.search(html)

    third = build(book, pythonpath=mods)  # a clean page is not executed again: rebuilds stay cheap
    assert third.returncode == 0 and not executed(third.stdout), third.stdout[-3000:]
    assert "value 42" in page.read_text()


@pytest.mark.slow
def test_a_build_at_another_preset_or_after_a_package_change_executes_again(tmp_path):
    """The execution cache is keyed on the notebook's code alone: without more, a build at `small` after one at
    `tiny` (the tests build the site at `tiny`) published the tiny outputs, and a change to `diffbook` left
    the old code's outputs on the website."""
    package = tmp_path / "diffbook"  # a stand-in package at the book's root, where the real one lives
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    book = mini_book(tmp_path, [nbformat.v4.new_code_cell(
        "import os, diffbook\nprint('preset', os.environ['DIFFBOOK_SCALE'], 'value', diffbook.VALUE)")])
    page = book / "_build" / "html" / "chapters" / "nb.html"
    steps = [("tiny", None, True, "preset tiny value 1"),
             ("tiny", None, False, "preset tiny value 1"),  # nothing changed: the cache is used
             ("small", None, True, "preset small value 1"),
             ("small", "VALUE = 2\n", True, "preset small value 2")]
    for scale, source, expect_run, expect_text in steps:
        if source is not None:
            (package / "__init__.py").write_text(source)
        result = build(book, pythonpath=tmp_path, scale=scale)
        assert result.returncode == 0, result.stdout[-3000:]
        assert executed(result.stdout) == expect_run, (scale, source, result.stdout[-2000:])
        assert expect_text in page.read_text(), (scale, source)


@pytest.mark.slow
def test_an_error_output_in_a_cached_execution_fails_every_build(tmp_path):
    """nbclient lets a `raises-exception` cell fail and jupyter-cache stores the result as a success, so a
    rebuild would reuse the traceback forever. Every build with such a page must fail with -W, and execute the
    notebook again rather than reuse the cached error."""
    cells = [nbformat.v4.new_code_cell("raise ValueError('shown on the page')",
                                       metadata={"tags": ["raises-exception"]}),
             nbformat.v4.new_code_cell("print('after')")]
    book = mini_book(tmp_path, cells)
    for attempt in range(2):
        result = build(book)
        assert result.returncode != 0, f"build {attempt + 1} passed -W with an error output on the page"
        assert "an error output would be published: ValueError: shown on the page" in result.stdout
        assert executed(result.stdout), f"build {attempt + 1} reused a cached execution that shows an error"


def test_error_outputs_finds_tracebacks_and_error_streams_but_not_warnings_or_progress_bars():
    """The page check behind the two tests above, on hand-made doctrees: what counts as an error output."""
    from docutils import nodes

    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from never_publish_errors import error_outputs
    finally:
        sys.path.remove(str(ROOT / "_ext"))

    def page(*blocks: tuple[str, str]) -> nodes.section:
        section = nodes.section()
        for classes, text in blocks:
            section += nodes.literal_block(text, text, classes=classes.split())
        return section

    clean = page(("output stream", "Traceback is a word we may print on stdout"),
                 ("output stderr", "train: 100%|##########| 300/300 [00:02<00:00, 120.1it/s, loss=0.31]"),
                 ("output stderr", "/x.py:3: UserWarning: the sampler ran on CPU\n  warnings.warn(msg)"),
                 ("highlight", "ValueError: in a code block of the text, not an output"))
    assert error_outputs(clean) == []
    bad = page(("output traceback", "----> 1 import minimod\nModuleNotFoundError: No module named 'minimod'"),
               ("output stderr", "Traceback (most recent call last):\n  File \"x.py\"\nKeyError: 'a'"),
               ("output stderr", "step 3\nRuntimeError: CUDA out of memory"))
    assert [n.astext()[:9] for n in error_outputs(bad)] == ["----> 1 i", "Traceback", "step 3\nRu"]


WIDGET_TAGS = ["skip-execution", "nbval-skip", "remove-output"]  # the widget-cell rule of tests/test_notebooks.py


@pytest.mark.slow
def test_a_widget_cell_is_executed_neither_by_the_build_nor_by_nbval(tmp_path):
    """The tags of a live-widget cell really keep it from running: a tagged cell that would raise (or stall,
    as an `interact` cell once did for the whole per-cell timeout) leaves the build and nbval green."""
    cells = [nbformat.v4.new_code_cell("x = 1"),
             nbformat.v4.new_code_cell("raise RuntimeError('a widget cell was executed')",
                                       metadata={"tags": WIDGET_TAGS}),
             nbformat.v4.new_code_cell("print('x is', x)")]
    book = mini_book(tmp_path, cells)
    result = build(book)
    assert result.returncode == 0, result.stdout[-3000:]
    from bs4 import BeautifulSoup

    page = BeautifulSoup((book / "_build" / "html" / "chapters" / "nb.html").read_text(), "html.parser")
    assert [out.get_text().strip() for out in page.select("div.cell_output")] == ["x is 1"]
    nbval = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                            "-p", "no:randomly", "-q", "chapters/nb.ipynb"], cwd=book, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
    assert nbval.returncode == 0, nbval.stdout[-3000:]


def test_the_per_cell_timeout_is_minutes_and_the_same_for_the_build_and_nbval():
    """A stalled cell (a live widget, a hung kernel) must fail within minutes, not the 30 minutes it once cost;
    the build (myst-nb) and the tests (nbval) use the one limit chosen in `_config.yml`."""
    import yaml

    build_timeout = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]
    addopts = re.search(r'^addopts = "([^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    nbval_timeout = int(re.search(r"--nbval-cell-timeout[= ](\d+)", addopts).group(1))
    assert 120 <= build_timeout <= 900, build_timeout
    assert nbval_timeout == build_timeout
