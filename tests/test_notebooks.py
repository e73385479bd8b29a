"""House rules for every stored notebook: no outputs, the Colab cell first, listed in the book."""

import ast
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


# ---- widget cells: a live control never runs in a build, a test or CI ------------------------------------
# A live ipywidgets control can stall nbclient until the per-cell timeout (seen once in eight runs of
# Chapter 5: 1800 s with the kernel idle). So every cell that creates one carries these tags (myst-nb/nbclient
# skip `skip-execution`, nbval skips `nbval-skip`, the website hides the blank widget) and defines nothing that
# a later cell needs, so skipping it changes nothing else in the notebook.
WIDGET_TAGS = {"skip-execution", "nbval-skip", "remove-output"}
WIDGET_MODULES = ("ipywidgets", "diffbook.widgets")


def code_of(cell: dict) -> ast.Module:
    """A code cell's source as an AST (IPython magics and shell lines blanked)."""
    src = "".join(cell["source"])
    return ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines()))


def is_widget_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in WIDGET_MODULES)


def widget_names(trees: list[ast.Module]) -> set[str]:
    """Names that, anywhere in the notebook, an import binds to a widget module or to something in one:
    ``import ipywidgets as widgets``, ``from diffbook import widgets``, ``from ipywidgets import interact``,
    ``from diffbook.widgets import step_size_explorer``."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in node.names if is_widget_module(a.name))
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.update(a.asname or a.name for a in node.names
                             if is_widget_module(node.module) or is_widget_module(f"{node.module}.{a.name}"))
    return names


def top_level_nodes(tree: ast.Module):
    """Every node of the cell except those inside a function, lambda or class body (they run only when called)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))
        else:
            todo.extend(getattr(node, "decorator_list", []))


def creates_a_control(tree: ast.Module, widget_refs: set[str]) -> bool:
    """Whether running the cell calls into ipywidgets or diffbook.widgets: ``widgets.interact(...)``,
    ``interactive(...)``, ``step_size_explorer(...)``, or ``@interact`` on a function."""

    def is_widget_ref(f: ast.AST) -> bool:
        while isinstance(f, (ast.Attribute, ast.Call)):
            f = f.value if isinstance(f, ast.Attribute) else f.func
        return isinstance(f, ast.Name) and f.id in widget_refs

    for node in top_level_nodes(tree):
        if isinstance(node, ast.Call) and is_widget_ref(node.func):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(is_widget_ref(d) for d in node.decorator_list):
                return True
    return False


def bound_names(tree: ast.Module) -> set[str]:
    """Names a cell binds at its top level (assignments, imports, definitions, loop and with targets)."""
    names = set()
    for node in top_level_nodes(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def used_names(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def widget_cell_problems(nb_cells: list[dict]) -> list[str]:
    code = [(i, c, code_of(c)) for i, c in enumerate(nb_cells) if c["cell_type"] == "code"]
    refs = widget_names([t for _, _, t in code])
    problems = []
    for k, (i, cell, tree) in enumerate(code):
        if not creates_a_control(tree, refs):
            continue
        missing = WIDGET_TAGS - set(cell.get("metadata", {}).get("tags", []))
        if missing:
            problems.append(f"cell {i} creates a widget but lacks the tags {sorted(missing)}")
        later = set().union(*(used_names(t) for _, _, t in code[k + 1:]))
        needed = sorted(bound_names(tree) & later)
        if needed:
            problems.append(f"cell {i} creates a widget and also defines {needed}, which later cells use")
    return problems


WIDGET_NOTEBOOKS = CHAPTERS + sorted((ROOT / "exercises").glob("**/*.ipynb"))


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_widget_cells_are_skipped_by_builds_and_tests_and_define_nothing_later_cells_need(path):
    assert widget_cell_problems(cells(path)) == []


def test_the_widget_cell_rule_finds_every_kind_of_control_and_what_later_cells_need():
    """The detector itself, on hand-made notebooks: every way the book creates a control is found, a cell
    that only defines the drawing function is not, and a widget cell that also defines a later-used name is."""

    def nb(*sources: str, tags: tuple[str, ...] = ()) -> list[dict]:
        return [{"cell_type": "code", "source": s, "metadata": {"tags": list(tags) if s.startswith("#w") else []}}
                for s in sources]

    imports = ("import ipywidgets as widgets\nfrom ipywidgets import interact\n"
               "from diffbook.widgets import step_size_explorer")
    controls = ["#w\nwidgets.interactive(f, n=widgets.IntSlider(3))", "#w\n_ = widgets.interact(f, t=(0.0, 1.0))",
                "#w\ninteract(f, n=3)", "#w\nstep_size_explorer(u, x0, 3.0, exact)",
                "#w\n@widgets.interact(n=(1, 9))\ndef g(n):\n    print(n)",
                "#w\nimport diffbook.widgets as W\nW.step_size_explorer(u)"]
    helper = "def f(n=3):\n    widgets.IntSlider(n)  # runs only when called\n    print(n)"
    for control in controls:
        assert widget_cell_problems(nb(imports, helper, control, tags=tuple(WIDGET_TAGS))) == [], control
        untagged = widget_cell_problems(nb(imports, helper, control))
        assert len(untagged) == 1 and "lacks the tags" in untagged[0], (control, untagged)
    leaky = widget_cell_problems(nb(imports, "#w\nw = widgets.interactive(f, n=3)\nmean = 2.0", "print(mean)",
                                    tags=tuple(WIDGET_TAGS)))
    assert leaky == ["cell 1 creates a widget and also defines ['mean'], which later cells use"]


def test_the_widget_rule_sees_the_books_widget_cells():
    """The rule above is not vacuous: it recognises the live controls the chapters do have."""
    found = []
    for path in CHAPTERS:
        code = [code_of(c) for c in cells(path) if c["cell_type"] == "code"]
        refs = widget_names(code)
        found += [path.name for tree in code if creates_a_control(tree, refs)]
    assert len(set(found)) >= 5, found
