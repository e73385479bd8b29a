"""Numbers in the prose come from the page (DESIGN §5, issue 8 §7).

Every number in a chapter's markdown that an experiment produces must be inserted from an executed cell
with myst-nb glue (``glue("ch03_corr", f"{value:.2f}", display=False)`` in a code cell and
``{glue:text}`ch03_corr` `` in the text), so the prose agrees with the outputs at every preset. This file
scans the markdown of every ``chapters/*.ipynb`` statically (nothing is executed): after stripping math,
code, MyST roles (glue, cite, eq, ...), directive fences and options, link targets, HTML and heading
numbers, it flags every remaining

* decimal (``3.14``), percentage (``97 %``), scientific literal (``1e-5``, ``10⁻³``), factor (``65×``), and
* integer ≥ 13 (so "Chapter 5", "2-D", "order 2" and "8×8" pass), except a year (19xx/20xx) and a number
  right after a reference word ("Exercise 1.4", "Chapter 13", "Eq. 17"),

unless the token is in the chapter's allow-list, notebook metadata
``{"diffbook": {"prose_constants": ["1000", "0.5"]}}``: exact tokens (sign dropped) that are constants of
the mathematics or paper numbers (the latter followed by a ``{cite}``). Keep it short; every entry must
occur in the prose.

It also checks that every glue key a chapter's markdown uses is glued by an executed code cell of the same
chapter (a static look for ``glue("key"``), and that keys carry the chapter prefix (``ch03_``), so they are
unique in the book. Chapters are found by glob, so Part II chapters are covered from their first commit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

# --------------------------------------------------------------------------------------------------------
# Stripping: everything that is not prose a reader reads as a number.

# Directives whose body is not prose (code, math, raw output, pasted glue).
_NON_PROSE_DIRECTIVES = {
    "code", "code-block", "code-cell", "sourcecode", "math", "raw", "literalinclude", "mermaid",
    "glue", "glue:any", "glue:figure", "glue:math", "glue:md", "bibliography", "toctree", "tableofcontents",
}
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_REF_WORDS = (
    r"(?:Chapters?|Ch\.?|Sections?|Sec\.?|§|Exercises?|Ex\.?|Equations?|Eqs?\.?|Theorems?|Thm\.?|Lemmas?|"
    r"Definitions?|Def\.?|Propositions?|Prop\.?|Corollary|Corollaries|Remarks?|Examples?|Algorithms?|Alg\.?|"
    r"Figures?|Figs?\.?|Tables?|Tab\.?|Appendix|Appendices|Parts?|Lines?)"
)


def _strip_fences(text: str) -> str:
    """Drop code fences (with their bodies), directive fences and option lines; keep directive bodies.

    MyST nests directives by using a longer (or different) fence for the outer one, so a stack is kept.
    A fence line's directive title (e.g. an admonition's) is prose and is kept.
    """
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # (fence string, body is prose)
    options = ""  # "" in the body, "head" right after a directive's fence, "yaml" inside its --- block
    for line in text.split("\n"):
        m = _FENCE.match(line)
        closes = bool(
            m and stack and m["fence"][0] == stack[-1][0][0] and len(m["fence"]) >= len(stack[-1][0])
            and not m["info"].strip()
        )
        if stack and not stack[-1][1]:  # inside a literal body: only its own closing fence counts
            if closes:
                stack.pop()
            continue
        if closes:
            stack.pop()
            options = ""
            continue
        if m:
            directive = re.match(r"\{([\w:.-]+)\}\s*(.*)", m["info"].strip())
            if directive is None:  # a plain code fence (``` python): its body is code
                stack.append((m["fence"], False))
                continue
            prose = directive[1] not in _NON_PROSE_DIRECTIVES
            stack.append((m["fence"], prose))
            options = "head" if prose else ""
            if prose:
                out.append(directive[2])
            continue
        if options == "head" and re.match(r"^\s*:[\w-]+:", line):  # :label:, :class:, ... after the fence
            continue
        if options and line.strip() == "---":  # options as a YAML block, up to the next ---
            options = "yaml" if options == "head" else ""
            continue
        if options == "yaml":
            continue
        options = ""
        out.append(line)
    return "\n".join(out)


def strip_non_prose(markdown: str) -> str:
    """The prose of one markdown cell, with everything that is not read as a number removed."""
    text = _strip_fences(markdown)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)  # HTML comments
    text = re.sub(r"^\s*%.*$", " ", text, flags=re.M)  # MyST comments
    text = re.sub(r"^\s*\([\w:.-]+\)=\s*$", " ", text, flags=re.M)  # (label)= targets
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)  # display math
    text = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", " ", text, flags=re.S)  # amsmath environments
    text = re.sub(r"\{[\w:.-]+\}(`+)(.*?)\1", " ", text, flags=re.S)  # MyST roles: {glue:text}`k`, {cite}`x`
    text = re.sub(r"(`+)(.+?)\1", " ", text, flags=re.S)  # inline code
    text = re.sub(r"(?<!\\)\$(?:\\.|[^$\\])+?(?<!\\)\$", " ", text, flags=re.S)  # inline math
    text = re.sub(r"\{\{.*?\}\}", " ", text, flags=re.S)  # substitutions
    text = re.sub(r"\]\([^)]*\)", "] ", text)  # link targets
    text = re.sub(r"\[\^[^\]]*\]", " ", text)  # footnote references
    text = re.sub(r"https?://\S+", " ", text)  # bare addresses
    text = re.sub(r"</?[A-Za-z][^>]*>", " ", text)  # HTML tags and autolinks
    text = re.sub(r"^(\s*#+\s+)[\d.]+\s", r"\1", text, flags=re.M)  # heading numbers
    return text


# --------------------------------------------------------------------------------------------------------
# Number tokens.

_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_NUM = r"\d{1,3}(?:[,\u2009\u202f]\d{3})+|\d+(?:\.\d+)?"  # 10,000 or 3.14 or 256
_TOKEN = re.compile(
    rf"(?<![\w.,\u2009\u202f])(?P<tok>"
    rf"(?P<sci>(?:{_NUM})[eE][-+−]?\d+|\d+[⁻⁺]?[{_SUP}]+)"  # 1e-5, 10⁻³
    rf"|(?P<pct>(?:{_NUM})\s?%)"  # 97 %, 97%
    rf"|(?P<fac>(?:{_NUM})\s?[×x](?![\d\w]|\s?\d))"  # 65×, 3x (but not 8×8)
    rf"|(?P<big>(?:{_NUM})[kKM](?!\w))"  # 50k
    rf"|(?P<num>{_NUM})(?![\w])"  # 3.14, 256
    rf")"
)
# A reference word, then possibly a list of earlier numbers: "Ch. 10 and 14", "Eqs. (3), (7)".
_REF_BEFORE = re.compile(rf"(?<!\w){_REF_WORDS}\s*(?:\(?\d+(?:\.\d+)*\)?\s*(?:,|and|or|&|–|-)\s*)*\(?$")


def _is_year(token: str) -> bool:
    return bool(re.fullmatch(r"(19|20)\d\d", token)) and int(token) % 100 != 0 and token != "2048"


def flag_numbers(prose: str) -> list[tuple[str, str]]:
    """The experimental-looking number tokens of stripped prose, each with its sentence.

    "The FD is 7.9 after 256 steps in Chapter 5." gives the tokens "7.9" and "256".
    """
    flagged = []
    for m in _TOKEN.finditer(prose):
        tok = m["tok"]
        if m["num"] is not None:
            value = tok.replace(",", "").replace("\u2009", "").replace("\u202f", "")
            if "." not in value and (int(value) < 13 or _is_year(value)):
                continue
            if _REF_BEFORE.search(prose[max(0, m.start() - 40) : m.start()]):
                continue  # "Exercise 1.4", "Chapter 13", "Eq. (17)"
        flagged.append((tok, _sentence(prose, m.start(), m.end())))
    return flagged


def _sentence(text: str, start: int, end: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n\n", 0, start))
    right = [i for i in (text.find(". ", end), text.find("\n\n", end)) if i >= 0]
    s = text[left + 1 : min(right) + 1 if right else len(text)]
    return " ".join(s.split())


def normalise(token: str) -> str:
    """The form of a token that the allow-list holds: no spaces, no thousands separators."""
    return re.sub(r"[\s,\u2009\u202f]", "", token)


# --------------------------------------------------------------------------------------------------------
# Glue keys.

_GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
_GLUE_DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\{glue(?::\w+)?\}\s+(\S+)", re.M)
_GLUE_CALL = re.compile(r"\bglue\(\s*(f?)(['\"])(.+?)\2")


def used_glue_keys(markdown: str) -> set[str]:
    keys = {k.split(":")[0] if "::" not in k else k for k in _GLUE_ROLE.findall(markdown)}
    return keys | set(_GLUE_DIRECTIVE.findall(markdown))


def glued_key_patterns(code: str) -> list[re.Pattern]:
    """A pattern per ``glue("key", ...)`` call; an f-string's ``{...}`` matches any text."""
    patterns = []
    for f, _, key in _GLUE_CALL.findall(code):
        if f:
            parts = re.split(r"\{[^{}]*\}", key)
            patterns.append(re.compile(".+".join(re.escape(p) for p in parts)))
        else:
            patterns.append(re.compile(re.escape(key)))
    return patterns


# --------------------------------------------------------------------------------------------------------
# Notebooks.


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def markdown_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def executed_code(nb: dict) -> str:
    """The code cells a build and a test run execute (a `skip-execution` cell glues nothing)."""
    return "\n".join(
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and "skip-execution" not in c.get("metadata", {}).get("tags", [])
    )


def allow_list(nb: dict) -> list[str]:
    return list(nb.get("metadata", {}).get("diffbook", {}).get("prose_constants", []))


def unglued_numbers(nb: dict) -> list[tuple[str, str]]:
    allowed = {normalise(t) for t in allow_list(nb)}
    return [(tok, s) for md in markdown_cells(nb) for tok, s in flag_numbers(strip_non_prose(md)) if normalise(tok) not in allowed]


def chapter_prefix(path: Path) -> str:
    return f"ch{path.name[:2]}_"


# --------------------------------------------------------------------------------------------------------
# The scanner itself: it must flag what the rule is about and pass what it is not about.


@pytest.mark.parametrize(
    "markdown, expected",
    [
        ("At small the FD is 7.9 and the accuracy 97.3 %.", ["7.9", "97.3 %"]),
        ("It reaches 3.1 to 3.3 bits/dim with 256 steps, 65× faster.", ["3.1", "3.3", "256", "65×"]),
        ("An error of 1e-5, or 10⁻³, in 20% of 2,000 runs.", ["1e-5", "10⁻³", "20%", "2,000"]),
        ("Take 50k samples; the 2.5x speed-up holds.", ["50k", "2.5x"]),
        ("A table | 0.91 | 13 |", ["0.91", "13"]),
        ("```{admonition} Misconception at 0.32\n:class: warning\n\nThe MMD is 0.38.\n```", ["0.32", "0.38"]),
    ],
)
def test_scanner_flags_experimental_numbers(markdown, expected):
    assert [t for t, _ in flag_numbers(strip_non_prose(markdown))] == expected


@pytest.mark.parametrize(
    "markdown",
    [
        "Chapter 5 uses 2-D data, order 2 and 8×8 digits, in 3 steps of 12.",
        "The value $0.5$ and $$x = 1.25$$ and \\begin{aligned} 3.5 \\end{aligned} are math.",
        "Inline code `1e-3` and {glue:text}`ch01_err:.2f` and {cite}`song2021`; {eq}`eq-13`.",
        "```python\nx = 0.123\n```\nand\n~~~\n256\n~~~",
        "```{prf:theorem} Title\n:label: thm-17\n\nBody.\n```",
        "```{figure} a.png\n---\nwidth: 480px\nname: fig-17\n---\nA caption.\n```",
        "````{admonition} A\n```{code-block}\ny = 99.5\n```\n````",
        "See [the docs](https://x.org/v2.1/page), [notes](notes/2.5/a.md) and <span id='a3.5'>x</span>\n(sec-42)=\n",
        "## 3.2 A numbered heading",
        "Anderson (1982) {cite}`anderson1982reverse`; Song et al. 2021.",
        "Exercise 1.4, Eq. (17), Chapter 13, Section 2.3 and Algorithm 2; Ch. 10 and 14, Thm 5.2.1, §4.2.",
        "Use float64, fp32 and bf16 on an H200.",
    ],
)
def test_scanner_passes_constants_code_math_roles_and_references(markdown):
    assert flag_numbers(strip_non_prose(markdown)) == []


def test_glue_keys_are_found_in_markdown_and_code():
    md = "A {glue:text}`ch03_corr:.2f`, a {glue}`ch03_n` and\n```{glue:figure} ch03_fig\n```"
    assert used_glue_keys(md) == {"ch03_corr", "ch03_n", "ch03_fig"}
    pats = glued_key_patterns('glue("ch03_corr", 0.5, display=False)\nglue(f"ch03_n_{k}", n)')
    assert any(p.fullmatch("ch03_corr") for p in pats) and any(p.fullmatch("ch03_n_128") for p in pats)
    assert not any(p.fullmatch("ch03_other") for p in pats)


# --------------------------------------------------------------------------------------------------------
# The chapters.


def test_there_are_chapters():
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_experimental_numbers_in_the_prose_are_glued(path):
    flagged = unglued_numbers(_load(path))
    report = "\n".join(f"  {tok!r:>10}  in: {s}" for tok, s in flagged)
    assert not flagged, (
        f"{path.name}: {len(flagged)} number(s) in the prose are typed, not glued from an executed cell. "
        "Glue them (myst_nb.glue + {glue:text}), or, for a constant or a cited paper number, add the token to "
        f"the notebook metadata diffbook.prose_constants:\n{report}"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_glue_keys_in_the_prose_are_glued_by_the_chapter(path):
    nb = _load(path)
    used = set().union(*(used_glue_keys(md) for md in markdown_cells(nb)))
    patterns = glued_key_patterns(executed_code(nb))
    missing = sorted(k for k in used if not any(p.fullmatch(k) for p in patterns))
    assert not missing, f"{path.name}: glue keys used in the prose but glued by no executed code cell: {missing}"
    unprefixed = sorted(k for k in used if not k.startswith(chapter_prefix(path)))
    assert not unprefixed, f"{path.name}: glue keys must start with {chapter_prefix(path)!r}: {unprefixed}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_allow_listed_constants_occur_in_the_prose(path):
    nb = _load(path)
    tokens = {normalise(t) for md in markdown_cells(nb) for t, _ in flag_numbers(strip_non_prose(md))}
    stale = [t for t in allow_list(nb) if normalise(t) not in tokens]
    assert not stale, f"{path.name}: diffbook.prose_constants lists tokens the prose no longer has: {stale}"
