"""One rank of the distributed-training test, started by tests/test_train.py through torchrun.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR``.
Each rank trains the same initial network on its own data and writes ``OUT_DIR/rank{r}.pt`` (its final
weights, its initial weights and the seed of the generator it was handed) and ``OUT_DIR/stderr{r}.txt``
(its progress bar); rank 0 alone writes the checkpoint ``OUT_DIR/ckpt.pt``. The test imports
:func:`build`, :func:`data`, :func:`loss_fn` and the settings below to rerun the training in one process.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffbook import train as T  # noqa: E402
from diffbook.checkpoint import save_checkpoint  # noqa: E402

STEPS = 6
SETTINGS = dict(steps=STEPS, lr=1e-2, ema_decay=0.9, grad_clip=None, seed=7, log_every=2)


def build() -> nn.Module:
    """The same initial network on every rank (DDP would broadcast rank 0's weights anyway)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))


def data(rank: int, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-dependent data: a generator seeded with ``100 + rank``, and a rank-dependent target."""
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(n, 3, generator=g)
    y = torch.sin(x.sum(dim=1, keepdim=True)) + rank
    return x, y


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Deterministic per-sample squared error, so that a one-process run on both ranks' data is comparable."""
    x, y = batch
    return (model(x) - y).pow(2).mean(dim=1)


def main(out: Path) -> None:
    device = T.init_distributed()
    rank, world_size = T.rank_and_world_size()
    assert world_size == 2, world_size
    model = build()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    seeds: list[int] = []

    def recording_loss(model, batch, generator):
        seeds.append(generator.initial_seed())
        return loss_fn(model, batch, generator)

    batch = data(rank)
    with open(out / f"stderr{rank}.txt", "w") as err, contextlib.redirect_stderr(err):
        result = T.train(model, recording_loss, lambda step: batch, device=device, progress=True, **SETTINGS)
    torch.save(
        {"model": result.model.state_dict(), "initial": initial, "seed": seeds[0], "device": str(device)},
        out / f"rank{rank}.pt",
    )
    save_checkpoint(out / "ckpt.pt", result.model, {"rank": rank}, ema=result.ema, step=STEPS)
    T.close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
