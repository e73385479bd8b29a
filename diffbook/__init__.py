"""diffbook: the code behind the book *Fixing Diffusion*.

Importing the package does nothing but define names: no device probing, no downloads, no global state.
Submodules are imported explicitly by the notebooks, e.g. ``from diffbook import ode``.
"""

__version__ = "0.1.0"
