"""Checkpoints: a network's ``state_dict`` plus the plain config that rebuilds it (DESIGN §3 rule 10).

A checkpoint file holds only tensors and plain Python values (``dict``, ``list``, ``tuple``, ``str``, ``int``,
``float``, ``bool``, ``None``), so :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``:
loading never runs code from the file. The network's class is not stored; the caller passes a ``build``
function that turns the config back into a network.

Reference: PyTorch documentation, *Saving and loading models* and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffbook.distributed import is_main_process
from diffbook.ema import EMA, unwrap_model

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "plain_config"]

FORMAT = "diffbook-checkpoint-1"
_SCALARS = (type(None), bool, int, float, str)


def plain_config(config: Any) -> dict[str, Any]:
    """``config`` as a ``dict`` of plain Python values: a dataclass goes through ``dataclasses.asdict``.

    Raises:
        TypeError: if ``config`` is neither a dict nor a dataclass instance, or holds a value that is not a
            plain Python value (the error names where it sits, e.g. ``config['widths'][2]``).
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or a dataclass instance, got {type(config).__name__}")
    _check_plain(config, "config")
    return config


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} must have str keys, got key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint config holds only dict, list, tuple, str, int, float, "
        "bool and None (store e.g. a dtype as its name)"
    )


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: Any,
    ema: EMA | nn.Module | None = None,
    step: int = 0,
) -> Path | None:
    """Write ``model``'s weights, its config, the optional EMA weights and the step count to ``path``.

    Under ``torch.distributed`` only rank 0 writes (the ranks hold identical weights); other ranks return
    ``None`` at once, without waiting. The file is written next to ``path`` and renamed into place, so an
    interrupted save never leaves a half-written checkpoint.

    Args:
        path: the file to write (parent folders are created).
        model: the network; ``torch.compile`` and ``DistributedDataParallel`` wrappers are stripped.
        config: a dict or dataclass instance of plain values from which ``build`` rebuilds the network.
        ema: an :class:`~diffbook.ema.EMA` or the EMA network (e.g. ``TrainResult.ema``), or ``None``.
        step: the number of optimiser steps taken.

    Returns:
        The path written, or ``None`` on ranks other than 0.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if ema is not None and not isinstance(ema, (EMA, nn.Module)):
        raise TypeError(f"ema must be an EMA, an nn.Module or None, got {type(ema).__name__}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    config = plain_config(config)
    if not is_main_process():
        return None
    if isinstance(ema, EMA):
        ema_state = ema.state_dict()
    elif ema is not None:
        ema_state = unwrap_model(ema).state_dict()
    else:
        ema_state = None
    payload = {
        "format": FORMAT,
        "config": config,
        "step": step,
        "model": unwrap_model(model).state_dict(),
        "ema": ema_state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes:
        model: the rebuilt network with the saved weights.
        ema: a second rebuilt network with the saved EMA weights (eval mode), or ``None`` if none were saved.
        config: the saved config as a plain dict.
        step: the saved step count.
    """

    model: nn.Module
    ema: nn.Module | None
    config: dict[str, Any]
    step: int


_NOT_VALID = "is not a valid diffbook checkpoint"


def _read_payload(path: Path, where: str, map_location: str | torch.device) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file and never advise
    ``weights_only=False``; then check the entries that :func:`save_checkpoint` writes."""
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint file at {where}")
    if not path.is_file():
        raise ValueError(f"{where} {_NOT_VALID}: it is not a file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{where} {_NOT_VALID}: the file is empty (0 bytes); was the save interrupted?")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive that ends in its central directory
        raise ValueError(f"{where} {_NOT_VALID}: it is not a torch.save archive ({size} bytes; truncated, or "
                         "another format?)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message advises retrying with weights_only=False, which would run code from the file: never.
        found = [line.strip() for line in str(err).splitlines() if "Unsupported" in line or "GLOBAL" in line]
        raise pickle.UnpicklingError(
            f"{where} {_NOT_VALID}: it holds Python objects other than tensors and plain values"
            + (f" ({found[0]})" if found else "") + "; diffbook refuses to unpickle them (loading never runs code "
            "from a checkpoint). Re-save the network with diffbook.checkpoint.save_checkpoint."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        first = str(err).split(". ")[0].strip()
        raise ValueError(f"{where} {_NOT_VALID} (truncated? wrong format?): {type(err).__name__}: {first}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{where} {_NOT_VALID} (no format tag {FORMAT!r}: a torch file of another kind)")
    missing = sorted({"config", "step", "model", "ema"} - set(payload))
    if missing:
        raise ValueError(f"{where} {_NOT_VALID}: it lacks the entries {missing}")
    if not isinstance(payload["config"], dict):
        raise ValueError(f"{where} {_NOT_VALID}: its config is a {type(payload['config']).__name__}, not a dict")
    if isinstance(payload["step"], bool) or not isinstance(payload["step"], int) or payload["step"] < 0:
        raise ValueError(f"{where} {_NOT_VALID}: its step is {payload['step']!r}, not a non-negative int")
    for key in ("model", "ema"):
        state = payload[key]
        if (key == "model" or state is not None) and not (
            isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        ):
            raise ValueError(f"{where} {_NOT_VALID}: its {key!r} entry is not a state_dict of tensors")
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    build: Callable[[dict[str, Any]], nn.Module],
    *,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild its network(s).

    Args:
        path: the checkpoint file.
        build: ``build(config) -> nn.Module`` makes an untrained network from the saved config dict (for a
            dataclass config, e.g. ``lambda c: Net(NetConfig(**c))``); it is called once more for the EMA.
        map_location: where the saved tensors are loaded before being copied into the built networks.

    Returns:
        A :class:`Checkpoint` with the rebuilt network(s), the config dict and the step.

    Raises:
        TypeError: if ``path`` is not a path or ``build`` is not callable, or ``build`` returns no ``nn.Module``.
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is not a valid diffbook checkpoint (empty, truncated, random bytes, another
            format, missing entries), if ``build(config)`` fails on the saved config, or if the weights do not
            fit the built network. Every message names the path.
        pickle.UnpicklingError: if the file holds Python objects other than tensors and plain values; they are
            refused (``weights_only=True``) and nothing in the file is run.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not callable(build):
        raise TypeError(f"build must be callable as build(config) -> nn.Module, got {type(build).__name__}")
    where = repr(os.fspath(path))
    payload = _read_payload(Path(path), where, map_location)
    config = payload["config"]

    def rebuild(state: dict) -> nn.Module:
        try:
            net = build(config)
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"build(config) failed on the config saved in {where} (keys {sorted(config)}): "
                             f"{type(err).__name__}: {err}") from err
        if not isinstance(net, nn.Module):
            raise TypeError(f"build(config) must return an nn.Module, got {type(net).__name__}")
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"the weights in {where} do not fit build(config): {err}") from err
        return net

    model = rebuild(payload["model"])
    ema = rebuild(payload["ema"]).eval().requires_grad_(False) if payload["ema"] is not None else None
    return Checkpoint(model=model, ema=ema, config=config, step=payload["step"])
