"""The weights after the last finite training step, kept on the device with no host sync (used by
:func:`diffbook.train.train` to stop at the first non-finite loss with exactly those weights).

Reference: the found-inf step skipping of ``torch.amp.GradScaler`` (Micikevicius et al. 2018, §3.2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffbook.ema import EMA

__all__: list[str] = []


class LastGood:
    """Device-side copy of a model's (and its EMA's) parameters and buffers as they were after the last step of
    an unbroken run of finite steps, refreshed every step by a masked copy, with no host sync.

    Each step calls :meth:`refresh` with ``alive``, a 0-dim bool tensor on the device that is true while every
    step so far had a finite loss and gradient norm: ``saved <- where(alive, live, saved)``. Once a step is
    not finite, ``alive`` stays false and ``saved`` keeps the weights after the step before it, so the
    optimiser and EMA updates of the bad step (and of every step after it) are discarded on the device; the
    host finds out at the next check and calls :meth:`restore`. The tensors of one dtype are packed into one
    flat buffer, so a refresh is two calls (``cat`` and ``where``) whatever the number of tensors.
    """

    def __init__(self, model: nn.Module, ema: EMA | None) -> None:
        live = self._state(model) + (self._state(ema.module) if ema is not None else [])
        self.ema, self.ema_updates = ema, ema.num_updates if ema is not None else 0
        self.groups: list[tuple[list[Tensor], list[Tensor], Tensor, list[Tensor]]] = []
        self.loose: list[tuple[Tensor, Tensor]] = []  # non-contiguous tensors: one where each
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in live:
            if t.is_contiguous():
                by_dtype.setdefault(t.dtype, []).append(t)
            else:
                self.loose.append((t, t.detach().clone()))
        for tensors in by_dtype.values():
            flat_live = [t.view(-1) for t in tensors]  # views: they follow the in-place updates
            flat = torch.cat(flat_live)
            saved, offset = [], 0
            for t in tensors:
                saved.append(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()
            self.groups.append((tensors, flat_live, flat, saved))

    @staticmethod
    def _state(module: nn.Module) -> list[Tensor]:
        return [t.detach() for t in list(module.parameters()) + list(module.buffers())]

    def refresh(self, alive: Tensor) -> None:  # detached tensors: no autograd, no no_grad() overhead
        for _, flat_live, flat, _ in self.groups:
            torch.where(alive, torch.cat(flat_live), flat, out=flat)
        for t, saved in self.loose:
            torch.where(alive, t, saved, out=saved)

    @torch.no_grad()
    def restore(self, good_steps: int) -> None:
        """Copy the saved weights back; ``good_steps`` finite steps were taken (sets the EMA's count)."""
        for tensors, _, _, saved in self.groups:
            torch._foreach_copy_(tensors, saved)
        for t, saved in self.loose:
            t.copy_(saved)
        if self.ema is not None:
            self.ema.num_updates = self.ema_updates + good_steps
