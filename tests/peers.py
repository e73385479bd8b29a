"""Load the peer libraries the tests compare against, without their heavy optional imports.

k-diffusion's package ``__init__`` imports torchvision, clip and wandb (and PyPI's torchvision does not
import beside the local CPU torch). Its ``sampling`` module only needs a few of those names at import
time, so we register an empty parent package and stub modules for what is missing, then import
``k_diffusion.sampling`` itself. Returns None when the peer is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def _stub(name: str, created: list[str], **attrs: object) -> None:
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except Exception:
        pass
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    created.append(name)


def k_diffusion_sampling() -> types.ModuleType | None:
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or spec.submodule_search_locations is None:
        return None
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("k_diffusion", pkg)
    created: list[str] = []
    for name in ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "safetensors", "PIL", "PIL.Image"]:
        _stub(name, created)
    _stub("torchdiffeq", created, odeint=None)
    _stub("torchsde", created, BrownianTree=object)
    try:
        return importlib.import_module("k_diffusion.sampling")
    finally:
        for name in created:  # the stubs must not fool other libraries' feature detection
            sys.modules.pop(name, None)


def diffusers_schedulers() -> tuple[type, type] | None:
    try:
        from diffusers import DDIMScheduler, DDPMScheduler
    except Exception:
        return None
    return DDPMScheduler, DDIMScheduler


if __name__ == "__main__":
    print(Path(__file__).name, k_diffusion_sampling() is not None, diffusers_schedulers() is not None)
