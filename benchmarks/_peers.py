"""Peers for the benchmarks: the same loaders the tests use (tests/peers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from peers import diffusers_schedulers, k_diffusion_sampling  # noqa: E402

__all__ = ["diffusers_schedulers", "k_diffusion_sampling"]
