"""A short training loop for diffusion networks: a function, not a Trainer (DESIGN §3, §8).

:func:`train` runs ``steps`` optimiser steps of AdamW on the mean of a per-sample loss
``loss_fn(model, batch, generator) -> (n,)``. On CUDA it runs the forward pass under bf16 autocast and
uses fused AdamW; it can ``torch.compile`` the network (not the loop), clips the gradient norm and keeps
an EMA of the weights. The hot loop never waits for the GPU: the loss history and a per-step "finite"
flag are collected on the device, a device-side copy of the weights keeps those after the last finite step
(a masked update, as ``GradScaler`` skips steps with infinite gradients), and once every ``log_every`` steps
the loop reads back the losses and the first bad step in one transfer, to update the progress bar and to
stop at the first NaN or infinite loss (:class:`NonFiniteLossError`) with the weights after the step before it.

Multi-GPU: launch the script with ``torchrun`` and call :func:`~diffbook.distributed.init_distributed` first
(re-exported here). :func:`train` then
wraps the network in ``DistributedDataParallel``, which averages the gradients across ranks; each rank must
draw different data (see :func:`train`'s ``batches``), and only rank 0 shows progress and writes checkpoints.

Reference: I. Loshchilov and F. Hutter, *Decoupled Weight Decay Regularization* (AdamW, ICLR 2019);
R. Pascanu, T. Mikolov, Y. Bengio, *On the difficulty of training recurrent neural networks* (2013), §3.2
(gradient-norm clipping); S. Li et al., *PyTorch Distributed* (VLDB 2020) for DDP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from diffbook.device import autocast, check_device, pick_device
from diffbook.distributed import close_distributed, init_distributed, is_main_process, rank_and_world_size  # re-exported
from diffbook._last_good import LastGood
from diffbook.ema import EMA, unwrap_model

__all__ = [
    "LossFn",
    "NonFiniteLossError",
    "TrainResult",
    "train",
    "init_distributed",
    "close_distributed",
    "rank_and_world_size",
    "is_main_process",
]

LossFn = Callable[[nn.Module, Any, torch.Generator], Tensor]
"""``loss_fn(model, batch, generator) -> loss`` of shape ``(n,)``, one value per sample; draw every random
number (noise levels, noise) from ``generator``. Call the network only through ``model(...)`` (its
``forward``): under DDP ``model`` is a wrapper, and only ``forward`` synchronises the gradients."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained network itself (the one passed in, unwrapped, on the training device).
        ema: a separate network holding the EMA weights (eval mode), or ``None`` when ``ema_decay=None``.
        losses: shape ``(steps,)``, float32 on the CPU: the mean training loss of each step (on this rank).
    """

    model: nn.Module
    ema: nn.Module | None
    losses: Tensor


class NonFiniteLossError(FloatingPointError):
    """:func:`train` met a NaN or infinite loss (or gradient norm); a :class:`FloatingPointError`.

    Attributes:
        step: the first step (0-based) whose loss or gradient norm was not finite.
        restored_step: the number of steps whose weights the model (and EMA) were restored to; equal to
            ``step``: the weights after steps ``0 .. step - 1``, the last finite ones (``0``: the initial weights).
        losses: shape ``(step,)``, float32 on the CPU: the finite losses of the steps before ``step``.
        ema: the EMA network, restored like the model, or ``None`` when training had no EMA.
    """

    def __init__(self, message: str, *, step: int, restored_step: int, losses: Tensor,
                 ema: nn.Module | None = None) -> None:
        super().__init__(message)
        self.step, self.restored_step, self.losses, self.ema = step, restored_step, losses, ema


# ------------------------------------------------------------------------------------------------- helpers


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors in a (nested) tuple, list or dict to ``device``; leave everything else alone."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: _to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def _batch_source(batches: Callable[[int], Any] | Iterable[Any]) -> Callable[[int], Any]:
    """A ``step -> batch`` function from a callable, or from an iterable that is restarted when it runs out."""
    if callable(batches):
        return batches
    if not isinstance(batches, Iterable):
        raise TypeError(f"batches must be a callable step -> batch or an iterable, got {type(batches).__name__}")
    state = {"it": iter(batches)}

    def next_batch(step: int) -> Any:
        try:
            return next(state["it"])
        except StopIteration:
            if state["it"] is batches:  # a one-shot iterator cannot be restarted
                raise ValueError(f"batches ran out after {step} batches; pass more, or a re-iterable") from None
            state["it"] = iter(batches)  # a new epoch of a DataLoader, a list, ...
            try:
                return next(state["it"])
            except StopIteration:
                raise ValueError("batches is empty") from None

    return next_batch


def _tensors(batch: Any) -> list[Tensor]:
    """Every tensor in a (nested) tuple, list or dict."""
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (list, tuple)):
        return [t for v in batch for t in _tensors(v)]
    return []


def _check_first_batch(batch: Any) -> None:
    """Shapes and dtypes are host metadata: checking them costs no synchronisation. Once, on step 0."""
    for t in _tensors(batch):
        if t.ndim >= 1 and t.shape[0] == 0:
            raise ValueError(f"batches gave an empty batch at step 0 (a tensor of shape {tuple(t.shape)}); "
                             "every batch needs at least one example")


def _check_positive(value: Any, name: str, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not (value > 0 and math.isfinite(value)):
        what = "a positive int" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")


# --------------------------------------------------------------------------------------------------- train


def train(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Any] | Iterable[Any],
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    ema_decay: float | None = 0.999,
    grad_clip: float | None = 1.0,
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    compile: bool = False,
    progress: bool = True,
    log_every: int = 50,
    callback: Callable[[int, Tensor], None] | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` AdamW steps on ``loss_fn(model, batch, generator).mean()``.

    Each step: draw a batch, ``loss = loss_fn(model, batch, generator).mean()`` (under bf16 autocast on
    CUDA), backpropagate, clip the global gradient norm to ``grad_clip``, take the optimiser step, update
    the EMA.

    **Non-finite losses.** The loop never waits for the device inside a step. Each step computes, on the
    device, a 0-dim flag ``ok``: its loss and its gradient norm are finite (the norm is computed even without
    clipping; under DDP the flag is all-reduced, so every rank decides alike). A device-side copy of the
    weights (model, EMA, their buffers; one extra copy in memory) is refreshed after the optimiser and EMA
    updates by a masked copy, ``saved <- where(alive, weights, saved)``, where ``alive`` is true while every
    step so far was ``ok``: the updates of the first bad step and of every step after it never reach it,
    as ``GradScaler`` skips a step whose gradients are not finite. Every ``log_every`` steps (and after the
    last) the loop reads back, in one transfer, the mean loss and the first step whose flag is false. If
    there is one, it copies the saved weights back and raises :class:`NonFiniteLossError` naming that step:
    the model and EMA then hold **exactly the weights after the last finite step** (those of a clean run of
    ``err.step`` steps), however late the check came; the steps run between the bad step and the check are
    wasted work, at most ``log_every - 1`` of them.

    Args:
        model: the network; moved to ``device`` in place and trained in place (its initial weights, like
            the data, are the caller's: seed before building it).
        loss_fn: ``loss_fn(model, batch, generator) -> (n,)`` per-sample losses (see :data:`LossFn`).
        batches: either a function ``step -> batch`` (called with ``step = 0, 1, ...``), or an iterable of
            batches (a ``DataLoader``, a list, a generator), restarted when it runs out if it can be. A batch
            is a tensor or a (nested) tuple/list/dict of tensors; its tensors are moved to ``device``.
            **Under DDP each rank must draw different data**: seed the data source with ``seed + rank``
            (:func:`rank_and_world_size`), or use a ``DistributedSampler``.
        steps: the number of optimiser steps, ``>= 1``.
        lr: AdamW's learning rate.
        weight_decay: AdamW's decoupled weight decay, ``>= 0``.
        ema_decay: the EMA decay in ``[0, 1)``, or ``None`` for no EMA.
        grad_clip: clip the global gradient norm to this value before the optimiser step, or ``None`` not
            to clip.
        optimizer: ``optimizer(params) -> torch.optim.Optimizer`` builds the optimiser from the trainable
            parameters instead of AdamW (``lr`` and ``weight_decay`` are then not used), e.g.
            ``lambda p: torch.optim.SGD(p, lr=0.1)``.
        seed: seeds the generator handed to ``loss_fn``, as ``seed + rank`` so that the ranks draw
            different noise.
        generator: use this generator (on ``device``) instead of one made from ``seed``.
        device: where to train; by default, under ``torch.distributed``, the GPU that
            :func:`init_distributed` chose (or the CPU), else :func:`~diffbook.device.pick_device`.
        amp: bf16 autocast for the forward pass (``loss_fn``); by default on CUDA only.
        compile: ``torch.compile`` the network (not the loop). The first steps are slow while it compiles.
        progress: show a tqdm bar (rank 0 only) with the mean loss of the last ``log_every`` steps.
        log_every: every this many steps (and after the last) read the losses back once, to check they are
            finite and to update the bar: the loop's only host-device synchronisation. It sets how late a
            NaN is noticed, not which weights are kept.
        callback: ``callback(step, loss)`` after each step, ``loss`` a 0-dim tensor on the device
            (calling ``.item()`` on it waits for the GPU).

    Returns:
        A :class:`TrainResult` with the trained network, its EMA copy and the loss history.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``, ``loss_fn``, ``callback`` or ``optimizer`` is not
            callable, ``batches`` is neither callable nor iterable, the losses are not floating point, or
            ``loss_fn`` fails on a first batch holding integer tensors (image data must be floating point).
        ValueError: for a non-positive ``steps``, ``lr``, ``log_every`` or ``grad_clip``, a negative
            ``weight_decay``, ``ema_decay`` outside ``[0, 1)``, a device that is not available, a model with
            no trainable parameters, an empty batch, or a loss that is not of shape ``(n,)`` with ``n >= 1``.
        NonFiniteLossError: (a ``FloatingPointError``) at the first NaN or infinite loss or gradient norm;
            the model and EMA hold the weights after the last finite step (see above).

    Reference: Loshchilov & Hutter (2019), Alg. 2 (AdamW); Pascanu et al. (2013), §3.2, Alg. 1 (clipping).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(model, batch, generator), got {type(loss_fn).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(step, loss) or None, got {type(callback).__name__}")
    _check_positive(steps, "steps", integer=True)
    _check_positive(lr, "lr")
    _check_positive(log_every, "log_every", integer=True)
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0
            or not math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a finite non-negative number, got {weight_decay!r}")
    if ema_decay is not None and (
        isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0.0 <= ema_decay < 1.0
    ):
        raise ValueError(f"ema_decay must be a number in [0, 1) or None, got {ema_decay!r}")
    if grad_clip is not None:
        _check_positive(grad_clip, "grad_clip")
    if optimizer is not None and not callable(optimizer):
        raise TypeError(f"optimizer must be callable as optimizer(params) or None, got {type(optimizer).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    for name, flag in (("compile", compile), ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if amp is not None and not isinstance(amp, bool):
        raise TypeError(f"amp must be a bool or None, got {type(amp).__name__}")
    next_batch = _batch_source(batches)

    rank, world_size = rank_and_world_size()
    model = unwrap_model(model)
    if device is None and world_size > 1:  # init_distributed chose this process's GPU
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    # a clear error (not torch's AssertionError) for e.g. device="cuda" on a machine without CUDA
    device = check_device(device, "device") if device is not None else pick_device()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    if generator is None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed + rank)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    elif torch.device(generator.device).type != device.type:
        raise ValueError(f"generator is on {generator.device} but training runs on {device}")

    was_training = model.training
    model.train()
    net: nn.Module = model
    if world_size > 1:
        # DDP broadcasts rank 0's weights at construction and all-reduces (averages) gradients in backward.
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    ema = EMA(model, ema_decay) if ema_decay is not None else None  # after DDP, so every rank starts alike
    if compile:
        net = torch.compile(net)
    if optimizer is None:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda" or None)
    else:
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer(params) must return a torch.optim.Optimizer, got {type(opt).__name__}")

    losses = torch.zeros(steps, device=device)
    finite = torch.zeros(steps, dtype=torch.bool, device=device)  # per step: loss and grad norm finite
    alive = torch.ones((), dtype=torch.bool, device=device)  # every step so far was finite (on every rank)
    step_index = torch.arange(steps, device=device)
    last_good = LastGood(model, ema)  # the weights after the last step of the unbroken finite run
    bar = tqdm(total=steps, disable=not progress or rank != 0, dynamic_ncols=True)
    checked = 0  # steps [0, checked) are known to be finite
    for step in range(steps):
        batch = _to_device(next_batch(step), device)
        if step == 0:
            _check_first_batch(batch)
        try:
            with autocast(device, amp):
                per_sample = loss_fn(net, batch, generator)
        except RuntimeError as err:
            dtypes = sorted({str(t.dtype) for t in _tensors(batch) if not t.is_floating_point()})
            if step == 0 and dtypes:
                raise TypeError(f"loss_fn failed on the first batch, which holds tensors of dtype {', '.join(dtypes)}: "
                                f"{err}. Data fed to a network must be floating point (convert with .float()); "
                                "integer tensors are fine only where loss_fn expects them (labels, tokens)") from err
            raise
        if not isinstance(per_sample, Tensor) or per_sample.ndim != 1:  # shapes are host metadata: no sync
            got = tuple(per_sample.shape) if isinstance(per_sample, Tensor) else type(per_sample).__name__
            raise ValueError(f"loss_fn must return per-sample losses of shape (n,), got {got}")
        if per_sample.shape[0] == 0:
            raise ValueError(f"loss_fn returned no losses (shape (0,)) at step {step}: was the batch empty?")
        if not per_sample.is_floating_point():
            raise TypeError(f"loss_fn must return floating-point losses, got dtype {per_sample.dtype} at step {step}")
        loss = per_sample.float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:  # clip *before* the step, so that the step uses the clipped gradient
            norm = nn.utils.clip_grad_norm_(params, grad_clip)  # the norm stays a device tensor: no sync
        else:  # still check the gradient: an inf gradient with a finite loss would poison the weights
            norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        ok = torch.isfinite(loss.detach()) & torch.isfinite(norm)  # 0-dim, on the device
        if world_size > 1:  # one rank's bad step is every rank's: all stop together, at the same weights
            ok_all = ok.float()
            dist.all_reduce(ok_all, op=dist.ReduceOp.MIN)  # a collective on the device, not a host sync
            ok = ok_all > 0
        opt.step()
        if ema is not None:
            ema.update(model)
        alive &= ok
        last_good.refresh(alive)  # a bad step's update (and every later one) never reaches the saved copy
        losses[step] = loss.detach()
        finite[step] = ok
        if callback is not None:
            callback(step, loss.detach())
        if step + 1 - checked >= log_every or step + 1 == steps:
            window = slice(checked, step + 1)
            first_bad = torch.where(finite[window], steps, step_index[window]).min()
            mean, first = torch.stack([losses[window].mean().double(), first_bad.double()]).tolist()  # the one sync
            if first < steps:
                first = int(first)
                last_good.restore(first)
                bar.close()
                model.train(was_training)
                raise NonFiniteLossError(
                    f"train stopped: the loss (or its gradient norm) at step {first} is not finite "
                    f"(loss {losses[first].item()!r}); the model and EMA hold their weights after the {first} "
                    f"finite steps before it (the update of step {first} and of the {step - first} steps run "
                    f"before the check at step {step + 1} were discarded)",
                    step=first, restored_step=first, losses=losses[:first].cpu(),
                    ema=ema.module if ema is not None else None,
                )
            if not bar.disable:
                bar.set_postfix(loss=f"{mean:.4g}", refresh=False)
                bar.update(step + 1 - checked)
            checked = step + 1
    bar.close()
    model.train(was_training)
    return TrainResult(model=model, ema=ema.module if ema is not None else None, losses=losses.cpu())
