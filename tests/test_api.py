"""Every public function and class of diffbook has type hints and a docstring (DESIGN §3, rule 8)."""

import importlib
import inspect
import pkgutil

import pytest

import diffbook

MODULES = sorted(m.name for m in pkgutil.walk_packages(diffbook.__path__, "diffbook.") if not m.name.split(".")[-1].startswith("_"))


def public_objects():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == name:
                yield f"{name}.{attr}", obj


OBJECTS = list(public_objects())


def test_modules_declare_all():
    missing = [m for m in MODULES if not hasattr(importlib.import_module(m), "__all__") and not m.endswith("__init__")]
    packages = {m for m in MODULES if hasattr(importlib.import_module(m), "__path__")}
    assert not [m for m in missing if m not in packages], missing


@pytest.mark.parametrize("qualname,obj", OBJECTS, ids=[q for q, _ in OBJECTS])
def test_public_api_is_typed_and_documented(qualname, obj):
    assert inspect.getdoc(obj), f"{qualname} has no docstring"
    if getattr(obj, "_is_protocol", False):
        return  # typing.Protocol replaces __init__; its methods are stubs
    functions = [obj] if inspect.isfunction(obj) else [
        f for n, f in vars(obj).items() if inspect.isfunction(f) and (not n.startswith("_") or n == "__init__") and n != "forward"
    ]
    for fn in functions:
        sig = inspect.signature(fn)
        for p in sig.parameters.values():
            if p.name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            assert p.annotation is not inspect.Parameter.empty, f"{qualname}.{fn.__name__}: parameter {p.name} has no type"
        if fn.__name__ != "__init__":
            assert sig.return_annotation is not inspect.Signature.empty, f"{qualname}.{fn.__name__} has no return type"
