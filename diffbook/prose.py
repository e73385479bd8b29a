"""Numbers for the prose: every number that a chapter's text quotes from an experiment is *glued* from the
cell that computed it (DESIGN §5), so the text agrees with the outputs at every preset.

In the book's toolchain this is myst-nb's ``glue``: the executed cell stores the value and the built page
pastes it wherever the markdown says ``{glue:text}`key```. Where myst-nb is not installed (e.g. Colab)
nothing is stored and the number is still in the cell's printed output.
"""

from __future__ import annotations

__all__ = ["glue"]


def glue(name: str, value: object, display: bool = False) -> object:
    """Store ``value`` under ``name`` for the page's ``{glue:text}`name``` roles; returns ``value``.

    Args:
        name: the glue key, prefixed with the chapter (``"ch06_fd_unet"``) so it is unique in the book.
        value: what the prose shows: usually an already formatted string (``f"{fd:.1f}"``); a number may be
            formatted in the markdown instead (``{glue:text}`ch06_fd_unet:.1f```).
        display: also show the value as the cell's output (myst-nb's default is to show it; ours is not to).

    Reference: myst-nb, "Glue variables into the page" (Executable Books, 2024).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"glue: name must be a non-empty string, got {name!r}")
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:  # outside the book's toolchain the number is in the printed output
        return value
    _myst_glue(name, value, display=display)
    return value
