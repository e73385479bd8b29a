"""Exponential moving average (EMA) of a network's weights, the copy diffusion models are evaluated with.

After every optimiser step the shadow weights move a fraction ``1 - decay`` of the way towards the live
ones, ``e <- decay * e + (1 - decay) * p``, so after ``k`` updates with constant ``p`` they are exactly
``p + decay**k (e_0 - p)``. The update is one fused ``torch._foreach_lerp_`` call over all parameters.

Reference: B. T. Polyak and A. B. Juditsky, *Acceleration of Stochastic Approximation by Averaging* (1992);
EMA weights for sampling as in J. Ho, A. Jain, P. Abbeel, *Denoising Diffusion Probabilistic Models* (2020), App. B.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["EMA", "ema_update_", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip the ``torch.compile`` and ``DistributedDataParallel`` wrappers, returning the plain network.

    The wrappers share their parameters with the network they wrap, so updating or saving the unwrapped
    module is the same as doing it to the wrapper, without the ``_orig_mod.`` / ``module.`` key prefixes.

    Reference: Li et al. (2020), *PyTorch Distributed*, §3 (DDP wraps the module and shares its parameters).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _check_decay(decay: float, name: str = "decay") -> float:
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {decay!r}")
    return float(decay)


@torch.no_grad()
def ema_update_(shadow: Sequence[Tensor], params: Sequence[Tensor], decay: float) -> None:
    """In place, ``shadow[i] <- decay * shadow[i] + (1 - decay) * params[i]`` for every ``i``.

    Args:
        shadow: the averaged tensors (updated in place), any shapes.
        params: the live tensors, each of the shape, dtype and device of its partner in ``shadow``.
        decay: in ``[0, 1)``; ``0`` copies ``params``.

    Reference: Polyak & Juditsky (1992); Karras et al. (2024), *Analyzing and Improving the Training Dynamics of Diffusion Models*, §3.1 (the EMA recursion).
    """
    decay = _check_decay(decay)
    for name, seq in (("shadow", shadow), ("params", params)):
        if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)) and not hasattr(seq, "__iter__"):
            raise TypeError(f"{name} must be a sequence of tensors, got {type(seq).__name__}")
    shadow, params = list(shadow), list(params)
    if len(shadow) != len(params):
        raise ValueError(f"shadow and params must have the same length, got {len(shadow)} and {len(params)}")
    for i, (e, p) in enumerate(zip(shadow, params)):  # metadata only: no device sync
        if not isinstance(e, Tensor) or not isinstance(p, Tensor):
            bad, value = ("shadow", e) if not isinstance(e, Tensor) else ("params", p)
            raise TypeError(f"{bad}[{i}] must be a tensor, got {type(value).__name__}")
        if e.shape != p.shape:
            raise ValueError(f"params[{i}] has shape {tuple(p.shape)} but shadow[{i}] has {tuple(e.shape)}")
    _lerp_(shadow, params, decay)


def _lerp_(shadow: list[Tensor], params: list[Tensor], decay: float) -> None:
    """The EMA step without the checks (:class:`EMA` checked its copy once, at construction)."""
    if shadow:
        # lerp(e, p, w) = e + w (p - e) = (1 - w) e + w p: with w = 1 - decay this is the EMA recursion.
        torch._foreach_lerp_(shadow, params, 1.0 - decay)


class EMA:
    """Shadow copy of a network whose parameters track an exponential moving average of the live ones.

    >>> net = nn.Linear(2, 2)
    >>> ema = EMA(net, decay=0.9)
    >>> ema.update(net)          # after each optimiser step
    >>> y = ema.module(torch.zeros(1, 2))   # evaluate with the averaged weights

    Buffers (e.g. batch-norm running statistics, already averages) are copied, not averaged.

    Args:
        model: the network to track; it is deep-copied (wrappers stripped) into :attr:`module`.
        decay: the EMA decay in ``[0, 1)``; the average spans roughly ``1 / (1 - decay)`` steps.

    Attributes:
        module: the shadow network, in eval mode, with ``requires_grad=False``.
        decay: the decay.
        num_updates: how many times :meth:`update` has run.

    Reference: Polyak & Juditsky (1992), Eq. 1.5 (iterate averaging); Ho et al. (2020), App. B (EMA weights for sampling).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = _check_decay(decay)
        self.module = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights towards ``model``'s (the same architecture as at construction)."""
        model = unwrap_model(model)
        params = list(model.parameters())
        shadow = list(self.module.parameters())
        if len(params) != len(shadow):
            raise ValueError(f"model has {len(params)} parameters but the EMA tracks {len(shadow)}")
        _lerp_(shadow, params, self.decay)  # one fused call per step; no per-tensor Python checks
        buffers = list(model.buffers())
        if buffers:
            torch._foreach_copy_(list(self.module.buffers()), buffers)
        self.num_updates += 1

    def copy(self) -> nn.Module:
        """An independent copy of the shadow network, for evaluation elsewhere."""
        return copy.deepcopy(self.module)

    def state_dict(self) -> dict:
        """The shadow network's ``state_dict`` (what a checkpoint stores)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.module.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, span≈{1.0 / (1.0 - self.decay):.0f} steps, num_updates={self.num_updates})"
