"""House rules for every stored notebook: no outputs, the Colab cell first, listed in the book."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))
NOTEBOOKS = CHAPTERS + EXERCISES + SOLUTIONS


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert CHAPTERS and EXERCISES and SOLUTIONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_first_cell_installs_diffbook_only_in_colab(path):
    first = cells(path)[0]
    src = "".join(first["source"])
    assert first["cell_type"] == "code"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), "hide the install cell on the website"
    assert 'if "google.colab" in sys.modules:' in src, "the install must run only in Colab"
    assert f"git+{repository_url()}" in src, "install from the repository set in _config.yml"
    code = re.sub(r"#[^\n]*", "", src)
    assert not re.search(r"\btorch\b", code), "never install or reinstall torch"


def test_every_chapter_and_exercise_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for path in CHAPTERS + EXERCISES:
        assert str(path.relative_to(ROOT).with_suffix("")) in toc, f"{path} is not in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_the_template_sections(path):
    text = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
    for needle in ["Learning goals", "{prf:theorem}", "{prf:proof}", "{cite}", "## Summary", "## Exercises", "{solution}"]:
        assert needle in text, f"{path.name} lacks {needle}"


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_each_exercise_notebook_has_a_solution(path):
    assert (ROOT / "exercises" / "solutions" / path.name).exists()


def test_appendix_lists_every_misconception_with_an_existing_test():
    """Every Misconception box of a chapter has a row in the appendix, and the row's test exists."""
    appendix = (ROOT / "appendix" / "notation.md").read_text()
    rows = [line for line in appendix.splitlines() if line.startswith("| \"")]
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for path in CHAPTERS:
        text = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
        boxes = len(re.findall(r"\{admonition\}\s*Misconception", text))
        listed = [r for r in rows if f"chapters/{path.stem}`" in r]
        assert len(listed) == boxes, f"{path.name}: {boxes} misconception boxes, {len(listed)} rows in the appendix"
    for row in rows:
        name = re.findall(r"`(test_\w+)`", row)
        assert name and f"def {name[0]}(" in tests, row
