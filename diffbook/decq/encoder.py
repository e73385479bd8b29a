"""Frozen encoders behind one protocol: ``encode(images) -> (final patch tokens, hidden states at the taps)``.

Convention for every backend: the hidden state at tap ``l`` is the **input of block** ``l`` (``l = 0`` is
the patch embedding plus positions; ``l = depth`` is the output of the last block before the final norm),
i.e. Hugging Face's ``hidden_states[l]``, with non-patch tokens (CLS, registers) dropped. The final patch
tokens go through a LayerNorm **without** affine parameters, as in RAE.

Backends:

* :class:`TinyViT`: a small ViT that :func:`train_tiny_encoder` trains once to classify textured digits and
  then freezes; the texture is irrelevant to the label, so the deep layers learn to discard it.
* :class:`DinoV2Encoder`: DINOv2 with registers through ``transformers``; ``from_pretrained`` downloads
  only when the reader asks, and ``random_tiny`` builds a randomly initialised tiny config for tests.

References: Zheng et al., *Diffusion Transformers with Representation Autoencoders* (2025), §3 (a frozen
representation encoder as the tokenizer; non-affine final LayerNorm); Oquab et al., *DINOv2* (2024);
Darcet et al., *Vision Transformers Need Registers* (2024).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffbook._checks import check_int, check_state
from diffbook.nets.layers import sincos_position_embedding
from diffbook.nets.rope import grid_positions
from diffbook.nets.vit import ViTBlock

__all__ = ["Encoder", "TinyViT", "DinoV2Encoder", "train_tiny_encoder", "freeze", "check_frozen", "check_taps",
           "default_taps"]


@runtime_checkable
class Encoder(Protocol):
    """What DecQ needs from a frozen encoder.

    Attributes:
        dim: token width ``D``; depth: number of blocks; patch_size: pixels per patch side.

    Reference: Zheng et al. (2025), §3 (the frozen representation encoder of RAE).
    """

    dim: int
    depth: int
    patch_size: int

    def encode(self, images: Tensor, taps: tuple[int, ...] = ()) -> tuple[Tensor, list[Tensor]]:
        """``images`` ``(n, C, H, W)`` → final patch tokens ``(n, N, D)`` and ``[h_l (n, N, D) for l in taps]``."""
        ...


def default_taps(depth: int, count: int = 4) -> tuple[int, ...]:
    """``count`` taps spread from the shallowest layer: ``l_i = i · depth // count``.

    ``default_taps(12) == (0, 3, 6, 9)`` (the paper's choice), ``default_taps(4) == (0, 1, 2, 3)``.

    Reference: Wang et al. (2026), DecQ, §3 (condensers at layers 0, 3, 6, 9 of 12).
    """
    check_int(depth, "depth")
    check_int(count, "count")
    if count > depth:
        raise ValueError(f"count must be <= depth={depth}, got {count}")
    return tuple(i * depth // count for i in range(count))


def check_taps(taps: object, depth: int, name: str = "taps") -> tuple[int, ...]:
    """``taps`` must be a tuple of ints in ``[0, depth]``; returns it as a tuple.

    Reference: Wang et al. (2026), §3 (tap layers of the condensers).
    """
    if isinstance(taps, (str, bytes)) or not isinstance(taps, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of layer indices, got {type(taps).__name__}")
    for t in taps:
        if isinstance(t, bool) or not isinstance(t, int):
            raise TypeError(f"{name} must hold ints, got {t!r}")
        if not 0 <= t <= depth:
            raise ValueError(f"{name} must lie in [0, {depth}] (the encoder has depth {depth}), got {t}")
    return tuple(taps)


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients and put ``module`` in eval mode; returns it (no tensor shapes involved).

    Reference: Zheng et al. (2025), §3 (the encoder stays frozen).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    module.requires_grad_(False)
    return module.eval()


def check_frozen(encoder: object, name: str = "encoder") -> None:
    """``encoder`` must follow :class:`Encoder` and have no parameter with ``requires_grad`` (no tensor shapes).

    Reference: Wang et al. (2026), §3 (only queries, condensers and decoder are trained).
    """
    if not isinstance(encoder, Encoder) or not isinstance(encoder, nn.Module):
        raise TypeError(f"{name} must be an nn.Module following the Encoder protocol, got {type(encoder).__name__}")
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(f"{name} must be frozen (call diffbook.decq.freeze), but {len(trainable)} parameters "
                         f"require grad, e.g. {trainable[0]!r}")


def _check_images(images: object, channels: int, patch: int) -> Tensor:
    check_state(images, "images")
    assert isinstance(images, Tensor)
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[1] != channels:
        raise ValueError(f"images must have shape (n, {channels}, H, W) with n >= 1, got {tuple(images.shape)}")
    if images.shape[2] % patch or images.shape[3] % patch:
        raise ValueError(f"images' height and width must be divisible by the patch size {patch}, "
                         f"got {tuple(images.shape[2:])}")
    return images


class TinyViT(nn.Module):
    """A small ViT classifier: patch embedding, fixed 2-D sin-cos positions, ``depth`` blocks, non-affine LN.

    Args:
        in_channels, image_size: input images ``(n, in_channels, image_size, image_size)``.
        patch_size: patch side; ``image_size`` must be divisible by it.
        dim, depth, heads: width, number of blocks and heads.
        num_classes: classes of the mean-pooled linear head (used only to train the encoder).

    Reference: Dosovitskiy et al. (2021), Eqs. 1–4; Zheng et al. (2025), §3 (non-affine final LayerNorm).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 16, *, patch_size: int = 4, dim: int = 32,
                 depth: int = 4, heads: int = 4, num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("patch_size", patch_size),
                            ("dim", dim), ("depth", depth), ("heads", heads), ("num_classes", num_classes)):
            check_int(value, name)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be divisible by patch_size, got {patch_size}")
        self.in_channels, self.image_size, self.patch_size = in_channels, image_size, patch_size
        self.dim, self.depth = dim, depth
        self.grid = image_size // patch_size
        self.patch = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        pos = sincos_position_embedding(grid_positions(self.grid, self.grid), dim)
        self.register_buffer("pos", pos, persistent=False)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)

    def encode(self, images: Tensor, taps: tuple[int, ...] = ()) -> tuple[Tensor, list[Tensor]]:
        """``images`` ``(n, C, H, W)`` → final tokens ``(n, N, dim)`` (non-affine LN) and ``[h_l for l in taps]``.

        Reference: Zheng et al. (2025), §3.
        """
        images = _check_images(images, self.in_channels, self.patch_size)
        taps = check_taps(taps, self.depth)
        h = self.patch(images).flatten(2).transpose(1, 2)
        if h.shape[1] != self.pos.shape[0]:
            raise ValueError(f"images must be {self.image_size} × {self.image_size}, got {tuple(images.shape[2:])}")
        h = h + self.pos.to(h.dtype)
        states = [h]
        for block in self.blocks:
            h = block(h)
            states.append(h)
        return F.layer_norm(h, (self.dim,)), [states[t] for t in taps]

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(n, num_classes)`` from the mean of the final tokens."""
        final, _ = self.encode(images)
        return self.head(final.mean(1))


def train_tiny_encoder(images: Tensor, labels: Tensor, *, steps: int = 600, batch_size: int = 64, lr: float = 2e-3,
                       seed: int = 0, **vit_kwargs: int) -> TinyViT:
    """Train a :class:`TinyViT` to classify ``images`` ``(n, C, H, W)`` with labels ``(n,)``, then freeze it.

    AdamW with a cosine learning rate; the initial weights and batches come from ``seed`` only.

    Reference: Loshchilov & Hutter (2019), Alg. 2 (AdamW).
    """
    check_state(images, "images")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, C, H, W), got {tuple(images.shape)}")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be an integer tensor of shape ({images.shape[0]},)")
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyViT(images.shape[1], images.shape[2], num_classes=int(labels.max()) + 1, **vit_kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return freeze(model)  # type: ignore[return-value]


class DinoV2Encoder(nn.Module):
    """DINOv2 with registers (Hugging Face ``Dinov2WithRegistersModel``) behind the :class:`Encoder` protocol.

    ``images`` in ``[-1, 1]`` are mapped to ``[0, 1]``, grey images repeated to RGB, optionally resized
    (bicubic) to ``resize``, and normalised with the ImageNet mean and std; the CLS token and the registers
    are dropped from every hidden state, and the final tokens get a non-affine LayerNorm of the last hidden
    state (RAE drops the model's own affine final norm).

    Args:
        model: a ``transformers.Dinov2WithRegistersModel``.
        resize: side to resize the images to (e.g. 224 for 256² inputs), or ``None``.

    Reference: Zheng et al. (2025), §3 and the RAE code (``stage1/encoders/dinov2.py``); Darcet et al. (2024).
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, model: nn.Module, *, resize: int | None = None) -> None:
        super().__init__()
        config = getattr(model, "config", None)
        if config is None or not hasattr(config, "num_register_tokens"):
            raise TypeError(f"model must be a transformers Dinov2WithRegistersModel, got {type(model).__name__}")
        if resize is not None:
            check_int(resize, "resize")
        self.model = freeze(model)
        self.resize = resize
        self.dim = int(config.hidden_size)
        self.depth = int(config.num_hidden_layers)
        self.patch_size = int(config.patch_size)
        self.skip = 1 + int(config.num_register_tokens)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, name: str = "facebook/dinov2-with-registers-base", *, resize: int | None = 224) -> DinoV2Encoder:
        """Download (once, into the Hugging Face cache) and wrap the real weights. Only on explicit request."""
        from transformers import Dinov2WithRegistersModel

        return cls(Dinov2WithRegistersModel.from_pretrained(name), resize=resize)

    @classmethod
    def random_tiny(cls, *, image_size: int = 28, patch_size: int = 14, dim: int = 32, depth: int = 4,
                    heads: int = 4, registers: int = 4, seed: int = 0) -> DinoV2Encoder:
        """A randomly initialised tiny DINOv2-with-registers (nothing downloaded), for tests and CPU runs."""
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        config = Dinov2WithRegistersConfig(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                                           intermediate_size=4 * dim, image_size=image_size, patch_size=patch_size,
                                           num_register_tokens=registers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Dinov2WithRegistersModel(config)
        return cls(model)

    def encode(self, images: Tensor, taps: tuple[int, ...] = ()) -> tuple[Tensor, list[Tensor]]:
        """``images`` ``(n, 1 or 3, H, W)`` in ``[-1, 1]`` → final ``(n, N, D)`` and ``[h_l (n, N, D) for l in taps]``.

        Reference: Zheng et al. (2025), §3.
        """
        check_state(images, "images")
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (n, 1 or 3, H, W), got {tuple(images.shape)}")
        taps = check_taps(taps, self.depth)
        x = (images + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize is not None:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bicubic", align_corners=False)
        _check_images(x, 3, self.patch_size)
        x = (x - self.mean) / self.std
        out = self.model(pixel_values=x, output_hidden_states=True)
        hidden = [h[:, self.skip:] for h in out.hidden_states]
        return F.layer_norm(hidden[-1], (self.dim,)), [hidden[t] for t in taps]
