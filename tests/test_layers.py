"""The package's layers (DESIGN §3), enforced on the import graph, and a side-effect-free import of every module.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` anywhere in a module
(module level, inside functions, under ``if TYPE_CHECKING``, relative or absolute). A module may import only
from layers below its own, or from its own unit (a top-level module, or a subpackage and its children).
Topic subpackages share a rank but never import one another. Adding a Part II subpackage is one line in
``LAYERS``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "diffbook"

BASE, CORE, NETS, ENGINE, TOPIC, NOTEBOOK = range(6)
# module prefix → rank, lowest first. A "unit" is the longest prefix below that matches a module.
LAYERS: dict[str, int] = {
    "diffbook": BASE,  # the package __init__: names only
    "diffbook.device": BASE,
    "diffbook.scale": BASE,
    "diffbook._checks": BASE,
    "diffbook.schedules": CORE,
    "diffbook.ddpm_tables": CORE,
    "diffbook.sde": CORE,
    "diffbook.param": CORE,
    "diffbook.losses": CORE,
    "diffbook.samplers": CORE,
    "diffbook.toy": CORE,
    "diffbook.ode": CORE,
    "diffbook.guidance": CORE,
    "diffbook.nets": NETS,
    "diffbook.train": ENGINE,
    "diffbook.distributed": ENGINE,
    "diffbook._last_good": ENGINE,
    "diffbook.ema": ENGINE,
    "diffbook.checkpoint": ENGINE,
    "diffbook.metrics": ENGINE,
    "diffbook.data": ENGINE,
    "diffbook.foundations": TOPIC,
    "diffbook.decq": TOPIC,
    "diffbook.discrete": TOPIC,
    "diffbook.sega": TOPIC,
    "diffbook.survival": TOPIC,
    "diffbook.music": TOPIC,
    "diffbook.viz": NOTEBOOK,
    "diffbook.widgets": NOTEBOOK,
    "diffbook.exercises": NOTEBOOK,
    "diffbook.prose": NOTEBOOK,  # myst-nb glue for numbers in the prose
}
# Ranks whose units must not import each other (the topic subpackages sit side by side).
ISOLATED_RANKS = {TOPIC}
# Third-party packages a rank may import, beyond the standard library ("*" = anything).
ALLOWED_THIRD_PARTY: dict[int, set[str]] = {
    BASE: {"torch", "numpy"},
    CORE: {"torch", "numpy", "tqdm"},
}
NOTEBOOK_ONLY = {"matplotlib", "ipywidgets"}  # only NOTEBOOK-rank units may import these


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module, absolute (``from a import b`` gives ``a.b`` when that is a module)
    line: int


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):  # every node: function-level and conditional imports too
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            src = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{src}.{alias.name}"
                found.append(Import(module, sub if sub in MODULES else src, node.lineno))
    return found


ALL_IMPORTS = [imp for m in MODULES for imp in imports_of(m)]


def unit_of(module: str) -> str:
    """The longest LAYERS prefix of an internal module (the bare ``diffbook`` entry is the package __init__ only)."""
    best = None
    for prefix in LAYERS:
        if module == prefix or (prefix != "diffbook" and module.startswith(prefix + ".")):
            if best is None or len(prefix) > len(best):
                best = prefix
    if best is None:
        raise AssertionError(f"{module} has no layer: add its prefix to LAYERS in tests/test_layers.py")
    return best


def top(name: str) -> str:
    return name.split(".")[0]


def where(imp: Import) -> str:
    return f"{MODULES[imp.module].relative_to(ROOT)}:{imp.line}: {imp.module} imports {imp.target}"


# ---------------------------------------------------------------------------------------------------------
# The import graph


def test_every_module_has_a_layer():
    """Catches a new module or subpackage that nobody placed in the layers (it would escape every rule)."""
    missing = [m for m in MODULES if all(not (m == p or (p != "diffbook" and m.startswith(p + "."))) for p in LAYERS)]
    assert not missing, f"modules with no layer: add their prefix to LAYERS in tests/test_layers.py: {missing}"
    assert len(MODULES) > 40 and {"diffbook.schedules", "diffbook.nets.dit", "diffbook.foundations.flows"} <= set(MODULES)


def test_relative_imports_resolve_to_absolute_names():
    """The resolver itself: a wrong resolution would let a relative import slip past every rule below."""
    assert _resolve("diffbook.nets.dit", False, 1, "layers") == "diffbook.nets.layers"
    assert _resolve("diffbook.nets", True, 1, "layers") == "diffbook.nets.layers"
    assert _resolve("diffbook.foundations.flows", False, 2, "viz") == "diffbook.viz"
    assert _resolve("diffbook.foundations.flows", False, 2, None) == "diffbook"
    assert _resolve("diffbook.sde", False, 0, "torch.nn") == "torch.nn"


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if top(imp.target) != "diffbook":
            continue
        src, dst = unit_of(imp.module), unit_of(imp.target)
        if src == dst:
            continue
        r_src, r_dst = LAYERS[src], LAYERS[dst]
        if r_dst > r_src:
            bad.append(f"{where(imp)} (rank {r_dst} above its own rank {r_src})")
        elif r_dst == r_src and r_src in ISOLATED_RANKS:
            bad.append(f"{where(imp)} (sibling topic subpackages never import each other)")
    return bad


def test_no_module_imports_from_a_layer_above_or_a_sibling_topic():
    """Catches: the core importing nets/train/viz, nets importing train, a topic importing another topic."""
    bad = layer_violations(ALL_IMPORTS)
    assert not bad, "imports against the layers of DESIGN §3:\n" + "\n".join(bad)


def test_layer_rule_rejects_planted_violations():
    """The rule is not vacuous: each kind of forbidden edge, planted, is reported."""
    planted = [
        Import("diffbook.samplers", "diffbook.nets.dit", 1),  # core → nets
        Import("diffbook.losses", "diffbook.train", 1),  # core → engine
        Import("diffbook.nets.mlp", "diffbook.metrics.mmd", 1),  # nets → engine
        Import("diffbook.foundations.flows", "diffbook.decq", 1),  # topic → topic
        Import("diffbook.train", "diffbook.viz", 1),  # engine → notebook
    ]
    assert len(layer_violations(planted)) == len(planted)
    allowed = [Import("diffbook.viz", "diffbook.schedules", 1), Import("diffbook.sde", "diffbook.schedules", 1),
               Import("diffbook.nets.dit", "diffbook.nets.layers", 1), Import("diffbook.foundations.flows", "diffbook.train", 1)]
    assert layer_violations(allowed) == []


def third_party_violations(imports: list[Import]) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for imp in imports:
        pkg = top(imp.target)
        if pkg == "diffbook" or pkg in stdlib:
            continue
        rank = LAYERS[unit_of(imp.module)]
        if pkg in NOTEBOOK_ONLY and rank != NOTEBOOK:
            bad.append(f"{where(imp)} (only viz, widgets, exercises may import {pkg})")
        elif rank in ALLOWED_THIRD_PARTY and pkg not in ALLOWED_THIRD_PARTY[rank]:
            bad.append(f"{where(imp)} (the math core needs only {sorted(ALLOWED_THIRD_PARTY[rank])} and the standard library)")
    return bad


def test_only_notebook_helpers_import_matplotlib_and_the_core_needs_only_torch():
    """Catches: a plotting import in the engine (even inside a function), sympy or scipy in the math core."""
    bad = third_party_violations(ALL_IMPORTS)
    assert not bad, "third-party imports against DESIGN §3:\n" + "\n".join(bad)


def test_third_party_rule_rejects_planted_violations():
    planted = [
        Import("diffbook.samplers", "matplotlib.pyplot", 1),
        Import("diffbook.foundations.flows", "ipywidgets", 1),
        Import("diffbook.sde", "sympy", 1),
        Import("diffbook.schedules", "scipy.special", 1),
    ]
    assert len(third_party_violations(planted)) == len(planted)
    fine = [Import("diffbook.viz", "matplotlib.pyplot", 1), Import("diffbook.samplers", "tqdm.auto", 1),
            Import("diffbook.ode", "math", 1), Import("diffbook.foundations.symbolic", "sympy", 1)]
    assert third_party_violations(fine) == []


def test_the_walker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """A module whose only plotting import sits inside a function, and a relative import of a higher layer."""
    fake = tmp_path / "diffbook"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "sde.py").write_text("import torch\n\ndef plot():\n    import matplotlib.pyplot as plt\n    from . import viz\n")
    (fake / "viz.py").write_text("")
    monkeypatch.setitem(MODULES, "diffbook.sde", fake / "sde.py")
    monkeypatch.setitem(MODULES, "diffbook.viz", fake / "viz.py")
    imps = imports_of("diffbook.sde")
    assert {i.target for i in imps} == {"torch", "matplotlib.pyplot", "diffbook.viz"}
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert len(third_party_violations(imps)) == 1 and len(layer_violations(imps)) == 1


# ---------------------------------------------------------------------------------------------------------
# Importing any module does nothing (DESIGN §3 rule 7)

SIDE_EFFECT_PROBE = r'''
import json, os, random, sys, importlib, pkgutil
sys.dont_write_bytecode = True
for name in json.loads(sys.argv[1]):  # the third-party libraries diffbook imports: their own import is not ours
    try:
        importlib.import_module(name)
    except Exception:
        pass
import numpy as np
import torch

calls = []
def spy(name, fn):
    def wrapped(*a, **k):
        calls.append(name)
        return fn(*a, **k)
    return wrapped
torch.cuda.is_available = spy("torch.cuda.is_available", torch.cuda.is_available)
torch.cuda.device_count = spy("torch.cuda.device_count", torch.cuda.device_count)
torch.cuda.init = spy("torch.cuda.init", torch.cuda.init)
torch.backends.mps.is_available = spy("torch.backends.mps.is_available", torch.backends.mps.is_available)

def backend():
    if "matplotlib" not in sys.modules:
        return None
    import matplotlib
    return repr(dict.__getitem__(matplotlib.rcParams, "backend"))

def state():
    return {
        "default dtype": str(torch.get_default_dtype()),
        "grad mode": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "anomaly detection": torch.is_anomaly_enabled(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "torch threads": torch.get_num_threads(),
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "torch RNG": hash(bytes(torch.get_rng_state().numpy())),
        "numpy RNG": int(np.random.get_state()[1].sum()) + int(np.random.get_state()[2]),
        "python RNG": hash(random.getstate()),
        "matplotlib backend": backend(),
        "environment": sorted(os.environ.items()),
        "cwd": os.getcwd(),
    }

before = state()
events = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
NET = ("socket.", "urllib.", "http.", "ftplib.", "smtplib.")
FS = ("os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.unlink", "os.truncate", "shutil.", "os.symlink", "os.link")
def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and isinstance(flags, int) and flags & WRITE_FLAGS):
            events.append(f"open for writing: {path}")
    elif event.startswith(NET):
        events.append(f"network: {event} {args!r}"[:200])
    elif event.startswith(FS):
        events.append(f"file system: {event} {args!r}"[:200])
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork"):
        events.append(f"process: {event} {args!r}"[:200])
sys.addaudithook(hook)

import diffbook
imported, errors = [], []
for info in pkgutil.walk_packages(diffbook.__path__, "diffbook.", onerror=lambda name: errors.append(name)):
    try:
        importlib.import_module(info.name)
        imported.append(info.name)
    except Exception as exc:
        errors.append(f"{info.name}: {type(exc).__name__}: {exc}")
after = state()
changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
print(json.dumps({"imported": imported, "errors": errors, "events": events, "device_calls": calls,
                  "cuda_initialized": torch.cuda.is_initialized(), "changed": changed}, default=str))
'''


def run_probe(code: str, third_party: list[str], cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(third_party)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def third_party_imported() -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    return sorted({imp.target for imp in ALL_IMPORTS if top(imp.target) not in stdlib | {"diffbook"}})


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("import_probe")
    return run_probe(SIDE_EFFECT_PROBE, third_party_imported(), cwd), cwd


def test_import_of_every_module_has_no_side_effects(probe):
    """Catches: a module that probes the device, writes a file, opens a socket, picks a matplotlib backend,
    sets an environment variable or changes torch's global state (dtype, grad mode, RNG, threads) at import."""
    result, cwd = probe
    assert not result["errors"], result["errors"]
    assert sorted(result["imported"]) == sorted(m for m in MODULES if m != "diffbook"), "walk_packages missed modules"
    assert result["device_calls"] == [] and not result["cuda_initialized"], result["device_calls"]
    assert result["events"] == [], result["events"]
    assert result["changed"] == {}, result["changed"]
    assert list(cwd.iterdir()) == []


def test_side_effect_probe_catches_planted_side_effects(tmp_path):
    """The probe is not vacuous: a module that does each forbidden thing at import is reported for each."""
    pkg = tmp_path / "plant" / "diffbook"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(
        "import os, socket, torch, numpy\n"
        "torch.cuda.is_available()\n"
        "torch.set_default_dtype(torch.float64)\n"
        "torch.set_grad_enabled(False)\n"
        "torch.manual_seed(0)\n"
        "numpy.random.seed(0)\n"
        "os.environ['DIFFBOOK_FLAG'] = '1'\n"
        "open('written.txt', 'w').close()\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.01)\nexcept OSError:\n    pass\n"
    )
    code = SIDE_EFFECT_PROBE.replace("import diffbook\n", f"sys.path.insert(0, {str(pkg.parent)!r})\nimport diffbook\n", 1)
    result = run_probe(code, [], tmp_path)
    assert result["imported"] == ["diffbook.bad"]
    assert "torch.cuda.is_available" in result["device_calls"]
    assert any("written.txt" in e for e in result["events"]) and any(e.startswith("network") for e in result["events"])
    assert {"default dtype", "grad mode", "torch RNG", "numpy RNG", "environment"} <= set(result["changed"])


HEAVY = ("matplotlib", "ipywidgets", "sympy")


def heavy_imports(modules: list[str], path: Path = ROOT) -> list[str]:
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(','.join(h for h in {HEAVY!r} if h in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [h for h in proc.stdout.strip().split(",") if h]


def test_engine_and_exercises_package_import_without_plotting_or_sympy():
    """Catches a module-level `import sympy` or `import matplotlib` in the engine (below the teaching helpers),
    or in `diffbook.exercises`' __init__: a reader who imports the engine, or a checker module's package, must
    not pay for them. (Replaces tests/test_device.py::test_import_has_no_side_effects, which imported four modules.)"""
    engine = [m for m in MODULES if m != "diffbook" and LAYERS[unit_of(m)] <= ENGINE]
    assert len(engine) > 20
    assert heavy_imports(engine + ["diffbook.exercises"]) == []
