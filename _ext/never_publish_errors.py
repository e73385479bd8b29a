"""A Sphinx extension that keeps error outputs off the website, even after a failed build.

Jupyter Book 1 (Sphinx 7, myst-nb 1.4, jupyter-cache) has two holes through which a failed execution gets
published by a build that passes with ``-W``:

1. **Sphinx re-reads only sources that changed.** When a notebook fails (say ``diffbook`` is not
   importable), the build fails, but Sphinx still stores the page, traceback included, in
   ``_build/.doctrees``. After the reader fixes the environment the notebook is unchanged, so the next build
   reads nothing, executes nothing, emits no warning, passes ``-W`` and publishes the stored tracebacks.
   (jupyter-cache itself is not at fault: it caches only successful executions.) Here a page whose
   execution failed, or that shows an error output, is marked outdated on every build until it is clean, so
   it is executed again and fails again or succeeds.
2. **An error that nbclient allowed is cached as a success.** A cell tagged ``raises-exception``, or a build
   once run with ``allow_errors: true``, puts a notebook whose outputs contain a traceback into the cache,
   and every later build reuses it. Here every error output on a page (a traceback, or a stderr stream that
   carries one) is a warning, so ``-W`` fails the build, and the page's cache record is dropped, so the next
   build executes the notebook again instead of reusing the error.

3. **The cache is keyed on each notebook's code alone.** A build at ``DIFFBOOK_SCALE=tiny`` (the tests) followed
   by one at ``small`` (``make book``) would publish the tiny outputs, and after a change to ``diffbook`` the
   outputs of the old code. Here the preset and a hash of the package's sources are stored beside the cache;
   when they differ from the current ones, the cache is cleared and every page is executed again.

The book never shows an error on purpose; a page that wants to show one should print the message.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

# A stderr stream that carries a Python traceback or an uncaught error line ("ValueError: ...").
# Warnings ("UserWarning: ...") and progress bars are not errors.
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w*(Error|Exception): ", re.MULTILINE)
ATTR = "diffbook_unclean_docs"  # docnames to read again on the next build


KEY_FILE = "diffbook-inputs.key"  # beside jupyter-cache's database: what the cached outputs were computed from


def inputs_key(srcdir: str | Path) -> str:
    """What every executed output depends on besides the notebook itself: the size preset and the package's
    source files (``diffbook/**/*.py`` under the book's root)."""
    preset = os.environ.get("DIFFBOOK_SCALE", "small").strip().lower() or "small"  # diffbook.scale's default
    digest = hashlib.sha256(f"DIFFBOOK_SCALE={preset}\n".encode())
    root = Path(srcdir)
    for path in sorted((root / "diffbook").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def _cache_dir(app: Sphinx) -> Path | None:
    config = getattr(app.env, "mystnb_config", None)  # myst-nb's resolved settings
    if config is None or config.execution_mode != "cache" or not config.execution_cache_path:
        return None
    return Path(config.execution_cache_path)


def _unclean(env: BuildEnvironment) -> set[str]:
    if not hasattr(env, ATTR):
        setattr(env, ATTR, set())
    return getattr(env, ATTR)


def error_outputs(doctree: nodes.Node) -> list[nodes.Element]:
    """The output nodes of a page that show an error: myst-nb's ``output traceback`` blocks, and
    ``output stderr`` blocks whose text carries a traceback or an uncaught error line."""

    def is_error(node: nodes.Node) -> bool:
        if not isinstance(node, nodes.Element):
            return False
        classes = node.get("classes", [])
        if "output" not in classes:
            return False
        return "traceback" in classes or ("stderr" in classes and bool(ERROR_TEXT.search(node.astext())))

    return list(doctree.findall(is_error))


def _drop_cache_records(app: Sphinx, docname: str) -> int:
    """Remove the jupyter-cache records of this page's notebook, so the next build executes it again."""
    cache_dir = _cache_dir(app)
    if cache_dir is None:
        return 0
    from jupyter_cache import get_cache

    source = Path(app.env.doc2path(docname)).resolve()
    cache = get_cache(str(cache_dir))
    dropped = 0
    for record in cache.list_cache_records():
        if Path(record.uri).resolve() == source:
            cache.remove_cache(record.pk)
            dropped += 1
    return dropped


def check_page(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: warn about every error output on the page and remember the page as unclean."""
    env = app.env
    docname = env.docname
    exec_data = (getattr(env, "nb_metadata", {}).get(docname) or {}).get("exec_data") or {}
    failed = exec_data.get("succeeded") is False  # myst-nb has already warned "Executing notebook failed"
    errors = error_outputs(doctree)
    for node in errors:
        first = node.astext().strip().splitlines()[-1:] or [""]
        logger.warning(f"an error output would be published: {first[0][:200]}", location=node,
                       type="diffbook", subtype="error_output")
    if errors and not failed and _drop_cache_records(app, docname):
        logger.warning(f"{docname}: removed its cached execution, which contained an error; the next build "
                       "executes the notebook again", location=docname, type="diffbook", subtype="error_output")
    if failed or errors:
        _unclean(env).add(docname)


def read_unclean_again(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str],
                       removed: set[str]) -> list[str]:
    """``env-get-outdated``: every page that failed or showed an error last time is read (executed) again; and
    every page, with the cache cleared, when the preset or the package changed since the cache was filled."""
    fresh = set(env.found_docs) - set(removed) - set(added) - set(changed)
    cache_dir = _cache_dir(app)
    if cache_dir is not None:
        key, key_file = inputs_key(app.srcdir), cache_dir / KEY_FILE
        old = key_file.read_text().strip() if key_file.exists() else None
        if old != key:
            if cache_dir.exists():
                from jupyter_cache import get_cache

                get_cache(str(cache_dir)).clear_cache()
                logger.info(f"DIFFBOOK_SCALE or the diffbook package changed since the execution cache was filled "
                            f"({old} -> {key}): cleared it; every notebook is executed again")
            cache_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key + "\n")
            return sorted(fresh)
    return sorted(_unclean(env) & fresh)


def forget(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    """``env-purge-doc``: a page about to be read again starts clean."""
    _unclean(env).discard(docname)


def merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    """``env-merge-info``: keep the marks made by parallel readers."""
    _unclean(env).update(_unclean(other) & set(docnames))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", read_unclean_again)
    app.connect("env-purge-doc", forget)
    app.connect("env-merge-info", merge)
    app.connect("doctree-read", check_page)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
