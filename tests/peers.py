"""Load the peer libraries the tests compare against, without their heavy optional imports.

k-diffusion's package ``__init__`` imports torchvision, clip and wandb (and PyPI's torchvision does not
import beside the local CPU torch). Its ``sampling`` module only needs a few of those names at import
time, so we register an empty parent package and stub modules for what is missing, import
``k_diffusion.sampling`` itself, and then take every stub and the hollow parent out of ``sys.modules``
again: the loaded module keeps its references, nothing else can see them.

Peers are test dependencies that CI requires (DESIGN §7): :func:`need` skips when one is missing on a
developer's machine but *fails* under ``CI=true`` or ``DIFFBOOK_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

STUBBED = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "safetensors", "PIL", "PIL.Image",
           "torchdiffeq", "torchsde"]
ERRORS: dict[str, str] = {}  # peer name -> why it did not load
_CACHE: dict[str, Any] = {}


def peers_required() -> bool:
    """True in CI: a missing or broken peer must fail the suite, not skip it."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("DIFFBOOK_REQUIRE_PEERS", "") == "1"


def need(name: str, peer: Any) -> Any:
    """Return ``peer``; if it is None, fail in CI and skip (with the reason) elsewhere."""
    import pytest

    if peer is not None:
        return peer
    why = ERRORS.get(name, "not installed")
    if peers_required():
        pytest.fail(f"{name} is required (CI=true or DIFFBOOK_REQUIRE_PEERS=1) but did not load: {why}")
    pytest.skip(f"{name} did not load ({why}); set DIFFBOOK_REQUIRE_PEERS=1 to make this a failure")


def _stub(name: str, created: list[str], **attrs: object) -> None:
    if name in sys.modules:
        return
    if name.split(".")[0] not in created:  # under a stub parent there is nothing real to try
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
    if "k_diffusion" in _CACHE:
        return _CACHE["k_diffusion"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or spec.submodule_search_locations is None:
        ERRORS["k-diffusion"] = "not installed"
        return _CACHE.setdefault("k_diffusion", None)
    had_parent = "k_diffusion" in sys.modules
    created: list[str] = []
    if not had_parent:
        pkg = types.ModuleType("k_diffusion")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["k_diffusion"] = pkg
        created.append("k_diffusion")
    for name in STUBBED:
        attrs = {"odeint": None} if name == "torchdiffeq" else {"BrownianTree": object} if name == "torchsde" else {}
        _stub(name, created, **attrs)
    module = None
    try:
        module = importlib.import_module("k_diffusion.sampling")
    except Exception as exc:
        ERRORS["k-diffusion"] = f"{type(exc).__name__}: {exc}"
    finally:
        # the stubs must not fool other libraries' feature detection, and `import k_diffusion` elsewhere must
        # not find our hollow parent: drop them and the k_diffusion.* entries imported under it
        for name in created:
            sys.modules.pop(name, None)
        if not had_parent:
            for name in [m for m in sys.modules if m.startswith("k_diffusion.")]:
                sys.modules.pop(name)
    return _CACHE.setdefault("k_diffusion", module)


def diffusers_schedulers() -> tuple[type, type] | None:
    try:
        from diffusers import DDIMScheduler, DDPMScheduler
    except Exception as exc:
        ERRORS["diffusers"] = f"{type(exc).__name__}: {exc}"
        return None
    return DDPMScheduler, DDIMScheduler


if __name__ == "__main__":
    print(Path(__file__).name, k_diffusion_sampling() is not None, diffusers_schedulers() is not None, ERRORS)
