"""FLOPs counted by PyTorch's dispatcher (``torch.utils.flop_counter``), not estimated by hand.

A multiply-add counts as 2 FLOPs (the counter's convention for matmuls, convolutions and attention);
element-wise operations (norms, activations, softmax) are not counted, as usual.

Reference: Kaplan et al. (2020), §2.1 (counting 2 FLOPs per multiply-add in transformer cost estimates).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from diffbook._checks import check_state
from diffbook.decq.tokenizer import DecQAutoencoder

__all__ = ["count_flops", "tokenizer_flops"]


def count_flops(fn: Callable[..., Any], *args: Any, modules: tuple[nn.Module, ...] = (), **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` without gradients, as counted by ``FlopCounterMode``.

    Attention runs on SDPA's *math* backend while counting: on the CPU the fused kernel
    (``_scaled_dot_product_flash_attention_for_cpu``) is not in the counter's table and its ``QKᵀ`` and ``AV``
    products would be silently missed. The parameters of ``modules`` are frozen during the count (the
    counter's module tracker fails on parameters that require grad under ``no_grad``) and restored after.

    Reference: Kaplan et al. (2020), §2.1.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    counter = FlopCounterMode(display=False)
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            fn(*args, **kwargs)
    finally:
        for p in params:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def tokenizer_flops(model: DecQAutoencoder, images: Tensor) -> dict[str, int]:
    """FLOPs of encoding and decoding ``images`` ``(n, C, H, W)``: keys ``encoder``, ``condensers``, ``decoder``, ``total``.

    ``encoder`` is the frozen encoder's forward pass (with the taps it must return), ``condensers`` the
    queries' extra work, ``decoder`` the ViT decoder on ``[queries ; patches]``.

    Reference: Kaplan et al. (2020), §2.1.
    """
    if not isinstance(model, DecQAutoencoder):
        raise TypeError(f"model must be a DecQAutoencoder, got {type(model).__name__}")
    check_state(images, "images")
    taps = model.taps if len(model.condensers) else ()
    enc = count_flops(model.encoder.encode, images, taps, modules=(model,))
    tok = count_flops(model.tokens, images, modules=(model,))
    with torch.no_grad():
        queries, patches = model.tokens(images)  # type: ignore[misc]
    dec = count_flops(model.decode, queries, patches, modules=(model,))
    return {"encoder": enc, "condensers": tok - enc, "decoder": dec, "total": tok + dec}
