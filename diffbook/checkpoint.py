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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

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


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
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
    if not _is_main_process():
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

    Raises:
        pickle.UnpicklingError: if the file holds anything but tensors and plain values (``weights_only=True``).
        ValueError: if the file is not a diffbook checkpoint, or its weights do not fit the built network.
    """
    if not callable(build):
        raise TypeError(f"build must be callable as build(config) -> nn.Module, got {type(build).__name__}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a diffbook checkpoint (no format tag {FORMAT!r})")
    config = payload["config"]

    def rebuild(state: dict) -> nn.Module:
        net = build(config)
        if not isinstance(net, nn.Module):
            raise TypeError(f"build(config) must return an nn.Module, got {type(net).__name__}")
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"the weights in {os.fspath(path)!r} do not fit build(config): {err}") from err
        return net

    model = rebuild(payload["model"])
    ema = rebuild(payload["ema"]).eval().requires_grad_(False) if payload["ema"] is not None else None
    return Checkpoint(model=model, ema=ema, config=config, step=payload["step"])
