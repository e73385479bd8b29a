"""Bad input gets a clear error in the upper engine (nets, train, ema, checkpoint, device, data, metrics).

A table-driven fuzz: every public function, class constructor and network ``forward`` of these modules is sent
each class of bad input — ``None``, a wrong type, NaN/inf, negative or zero sizes, empty tensors, an integer
dtype, a wrong shape — and must raise ``ValueError`` (a bad value or shape) or ``TypeError`` (a bad type) whose
message names the argument. Each row is ``(callable, kwargs, expected exception, words the message must hold)``,
as in ``tests/test_bad_input.py`` for the math core.

NaN *values inside tensors* are checked only where a function reads its data once per call (metrics, data
splits): a network's ``forward`` is the hot loop of training and sampling, where a value check would cost a
host sync per call; ``train`` catches non-finite losses instead (tests/test_train.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffbook import checkpoint, device, ema, train
from diffbook.data import digits, patches, toy2d
from diffbook.metrics import bits, frechet, histogram, image, mmd, sliced_wasserstein
from diffbook.nets import attention, classifier, dit, layers, mlp, rope, unet

# ------------------------------------------------------------------------------------------ case generators


NUMBER = (TypeError, ValueError)
"""A number of the wrong type (``None``, ``"3"``, ``2.5`` for an int, ``True``): either error, naming the argument
("steps must be a positive int, got 2.5" is as clear as a TypeError)."""


def ints(fn, good, arg, *, minimum=1, allow_none=False):
    """An int argument: wrong types raise either error, values below ``minimum`` ValueErrors."""
    rows = [(2.5, NUMBER), ("3", NUMBER), (True, NUMBER), (minimum - 1, ValueError), (minimum - 7, ValueError)]
    if not allow_none:
        rows.append((None, NUMBER))
    return [(fn, {**good, arg: v}, e, [arg]) for v, e in rows]


def reals(fn, good, arg, *, positive=False, nonnegative=False, below_one=False, allow_none=False):
    """A real argument: None and strings raise either error, NaN/inf and out-of-range values ValueErrors."""
    rows = [("0.5", NUMBER), (True, NUMBER), (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError)]
    if not allow_none:
        rows.append((None, NUMBER))
    if positive:
        rows += [(0.0, ValueError), (-1.0, ValueError)]
    if nonnegative:
        rows += [(-1e-3, ValueError)]
    if below_one:
        rows += [(1.0, ValueError), (1.5, ValueError)]
    return [(fn, {**good, arg: v}, e, [arg]) for v, e in rows]


def tensors(fn, good, arg, *, wrong_shape=None, empty=True, nan=False, integer=True):
    """A floating tensor argument: None, a list and an integer dtype are TypeErrors; an empty tensor, a wrong
    shape and (where the function reads values once per call) NaN/inf entries are ValueErrors."""
    t = good[arg]
    rows = [(None, TypeError), (t.tolist(), TypeError)]
    if integer:
        rows.append((t.round().long(), TypeError))
    if empty:
        rows.append((t[:0], ValueError))
    if wrong_shape is not None:
        rows.append((wrong_shape, ValueError))
    if nan:
        for bad in (math.nan, math.inf):
            u = t.clone()
            u.view(-1)[0] = bad
            rows.append((u, ValueError))
    return [(fn, {**good, arg: v}, e, [arg]) for v, e in rows]


def objects(fn, good, arg, values, error=TypeError):
    return [(fn, {**good, arg: v}, error, [arg]) for v in values]


def generators(fn, good, arg="generator"):
    return objects(fn, good, arg, [5, "seed", torch.randn(2)])


def dtypes(fn, good, arg="dtype"):
    return objects(fn, good, arg, [torch.long, "float32", float], NUMBER)


def devices(fn, good, arg="device"):
    rows = objects(fn, good, arg, [0.5, ["cpu"]])
    rows.append((fn, {**good, arg: "gpu"}, ValueError, [arg]))
    if not torch.cuda.is_available():
        rows.append((fn, {**good, arg: "cuda"}, ValueError, [arg, "CUDA is not available"]))
    return rows


def bools(fn, good, arg):
    return objects(fn, good, arg, [None, 1, "yes"], NUMBER)


# ------------------------------------------------------------------------------------------------- fixtures

torch.manual_seed(0)
X2 = torch.randn(16, 2)
Y2 = torch.randn(12, 2) + 1.0
IMG = torch.rand(3, 1, 8, 8)
IMG2 = torch.rand(3, 1, 8, 8)
TOK = torch.randn(2, 6, 16)
LIN = nn.Linear(2, 2)


def mse_loss(model, batch, generator):
    return (model(batch) - batch).pow(2).mean(dim=1)


TINY_MLP = mlp.MLP(2, hidden=8, depth=1)
TINY_UNET = unet.UNet(1, channels=8, channel_mult=(1, 2), heads=2, groups=4)
TINY_DIT = dit.DiT(1, patch_size=2, hidden=16, depth=1, heads=2)
TINY_DIT_COND = dit.DiT(1, patch_size=2, hidden=16, depth=1, heads=2, num_classes=3)
TINY_CLF = classifier.NoisyClassifier(1, channels=4, num_classes=3, emb_dim=8)
MHA = attention.MultiHeadAttention(16, 2)
ANGLES = rope.rope_angles(torch.arange(6.0), 8)
FEATS = torch.randn(40, 3)
COV = torch.eye(3)
MU = torch.zeros(3)
DIGITS = (torch.rand(20, 1, 8, 8), torch.arange(20) % 2)
CLF = frechet.FeatureClassifier(1, 2, width=4, feature_dim=8)


def logp(points):
    return -0.5 * (points**2).sum(-1)


# ------------------------------------------------------------------------------------------------- the table

CASES: list = []
add = CASES.extend

# device
add(objects(device.pick_device, {}, "prefer", [0.5, True, ["cpu"]]))
add([(device.pick_device, {"prefer": "banana"}, ValueError, ["prefer", "not a device string"])])
add(devices(device.check_device, {"device": "cpu"}))
add(devices(device.autocast, {"device": "cpu"}))
add(objects(device.autocast, {"device": "cpu"}, "enabled", ["yes", 1]))
add(devices(device.seed_everything, {"seed": 0, "device": "cpu"}))
add(objects(device.seed_everything, {"device": "cpu"}, "seed", [None, 1.5, "3", True]))
add(devices(device.Timer, {"device": "cpu"}))
add(objects(device.check_float_dtype, {}, "dtype", [torch.long, torch.bool, "float32", float, None]))

# ema
add(objects(ema.unwrap_model, {}, "model", [None, "net", torch.zeros(2)]))
add(objects(ema.EMA, {"decay": 0.9}, "model", [None, "net"]))
add(reals(ema.EMA, {"model": LIN}, "decay", nonnegative=True, below_one=True))
add(reals(ema.ema_update_, {"shadow": [torch.zeros(2)], "params": [torch.ones(2)]}, "decay", nonnegative=True,
          below_one=True))
add(objects(ema.ema_update_, {"params": [torch.ones(2)], "decay": 0.5}, "shadow", [None, 3, [1.0]]))
add(objects(ema.ema_update_, {"shadow": [torch.zeros(2)], "decay": 0.5}, "params", [None, 3, ["a"]]))
add([(ema.ema_update_, {"shadow": [torch.zeros(2)], "params": [torch.ones(3)], "decay": 0.5}, ValueError, ["params", "shape"])])

# checkpoint
add(objects(checkpoint.plain_config, {}, "config", [None, "width=3", 3, {"dtype": torch.float32}, {1: "a"}]))
add(objects(checkpoint.save_checkpoint, {"model": LIN, "config": {}}, "path", [None, 3]))
add(objects(checkpoint.save_checkpoint, {"path": "/tmp/diffbook_fuzz.pt", "config": {}}, "model", [None, "net"]))
add(objects(checkpoint.save_checkpoint, {"path": "/tmp/diffbook_fuzz.pt", "model": LIN}, "config", [None, "w"]))
add(objects(checkpoint.save_checkpoint, {"path": "/tmp/diffbook_fuzz.pt", "model": LIN, "config": {}}, "ema", ["e", 3]))
add(ints(checkpoint.save_checkpoint, {"path": "/tmp/diffbook_fuzz.pt", "model": LIN, "config": {}, "step": 0}, "step",
         minimum=0))
add(objects(checkpoint.load_checkpoint, {"build": lambda c: LIN}, "path", [None, 3]))
add(objects(checkpoint.load_checkpoint, {"path": "/tmp/diffbook_fuzz.pt"}, "build", [None, "Net"]))

# train
TRAIN = {"model": nn.Linear(2, 2), "loss_fn": mse_loss, "batches": lambda step: X2, "steps": 2, "device": "cpu",
         "progress": False}
add(objects(train.train, TRAIN, "model", [None, "net", LIN.weight]))
add(objects(train.train, TRAIN, "loss_fn", [None, 3]))
add(objects(train.train, TRAIN, "batches", [None, 3]))
add(ints(train.train, TRAIN, "steps"))
add(ints(train.train, TRAIN, "log_every"))
add(reals(train.train, TRAIN, "lr", positive=True))
add(reals(train.train, TRAIN, "weight_decay", nonnegative=True))
add(reals(train.train, TRAIN, "ema_decay", nonnegative=True, below_one=True, allow_none=True))
add(reals(train.train, TRAIN, "grad_clip", positive=True, allow_none=True))
add(objects(train.train, TRAIN, "seed", [None, 1.5, "0", True]))
add(generators(train.train, TRAIN))
add(devices(train.train, TRAIN))
add(objects(train.train, TRAIN, "amp", ["yes", 1]))
add(bools(train.train, TRAIN, "compile"))
add(bools(train.train, TRAIN, "progress"))
add(objects(train.train, TRAIN, "callback", [3, "print"]))
add(objects(train.train, TRAIN, "optimizer", [3, "sgd"]))
add([
    (train.train, {**TRAIN, "batches": lambda step: X2[:0]}, ValueError, ["batches", "empty"]),
    (train.train, {**TRAIN, "batches": lambda step: X2.long()}, TypeError, ["loss_fn", "torch.int64"]),
    (train.train, {**TRAIN, "batches": []}, ValueError, ["batches", "empty"]),
    (train.train, {**TRAIN, "loss_fn": lambda m, b, g: mse_loss(m, b, g).mean()}, ValueError, ["loss_fn", "(n,)"]),
    (train.train, {**TRAIN, "loss_fn": lambda m, b, g: mse_loss(m, b, g).long()}, TypeError, ["loss_fn", "floating"]),
    (train.train, {**TRAIN, "batches": lambda step: X2 * math.nan}, train.NonFiniteLossError, ["step 0", "not finite"]),
])
add(objects(train.init_distributed, {}, "backend", [3, ["gloo"]]))

# nets.layers
add(tensors(layers.sinusoidal_embedding, {"values": torch.rand(4), "dim": 8}, "values", wrong_shape=torch.rand(2, 2),
            empty=False, integer=False))
add(ints(layers.sinusoidal_embedding, {"values": torch.rand(4), "dim": 8}, "dim", minimum=2))
add([(layers.sinusoidal_embedding, {"values": torch.rand(4), "dim": 7}, ValueError, ["dim", "even"])])
add(reals(layers.sinusoidal_embedding, {"values": torch.rand(4), "dim": 8}, "max_period", positive=True))
add(tensors(layers.sincos_position_embedding, {"positions": torch.rand(4, 2), "dim": 8}, "positions",
            wrong_shape=torch.rand(4), empty=False, integer=False))
add(ints(layers.sincos_position_embedding, {"positions": torch.rand(4, 2), "dim": 8}, "dim", minimum=4))
add([(layers.sincos_position_embedding, {"positions": torch.rand(4, 2), "dim": 6}, ValueError, ["dim", "divisible"])])
add(objects(layers.expand_noise_level, {"n": 3, "device": "cpu"}, "noise_level", [None, "0.1", [0.1, 0.2, 0.3], True]))
add([(layers.expand_noise_level, {"noise_level": torch.rand(2), "n": 3, "device": "cpu"}, ValueError, ["noise_level", "(3,)"])])
add(ints(layers.expand_noise_level, {"noise_level": 0.5, "device": "cpu"}, "n"))
add(devices(layers.expand_noise_level, {"noise_level": 0.5, "n": 3}))
add(objects(layers.drop_labels, {"p": 0.1, "null_label": 10}, "labels", [None, [1, 2], torch.rand(3)]))
add(reals(layers.drop_labels, {"labels": torch.arange(4), "null_label": 10}, "p", nonnegative=True))
add([(layers.drop_labels, {"labels": torch.arange(4), "p": 1.5, "null_label": 10}, ValueError, ["p", "[0, 1]"])])
add(ints(layers.drop_labels, {"labels": torch.arange(4), "p": 0.1}, "null_label", minimum=0))
add(generators(layers.drop_labels, {"labels": torch.arange(4), "p": 0.1, "null_label": 10}))
MOD = {"x": TOK, "shift": torch.rand(2, 16), "scale": torch.rand(2, 16)}
add(tensors(layers.modulate, MOD, "x", wrong_shape=torch.rand(3, 6, 16), empty=False))
add(tensors(layers.modulate, MOD, "shift", wrong_shape=torch.rand(2, 8), empty=False))
add(tensors(layers.modulate, MOD, "scale", wrong_shape=torch.rand(2, 8), empty=False))
add(ints(layers.TimestepEmbedding, {}, "dim"))
add(ints(layers.TimestepEmbedding, {"dim": 8}, "freq_dim", minimum=2))
add(reals(layers.TimestepEmbedding, {"dim": 8}, "max_period", positive=True))
add(reals(layers.TimestepEmbedding, {"dim": 8}, "scale", positive=True))
add(tensors(layers.TimestepEmbedding(8).forward, {"noise_level": torch.rand(4)}, "noise_level",
            wrong_shape=torch.rand(4, 1), empty=False, integer=False))
add(ints(layers.LabelEmbedding, {"dim": 8}, "num_classes"))
add(ints(layers.LabelEmbedding, {"num_classes": 3}, "dim"))
LE = layers.LabelEmbedding(3, 8)
add(objects(LE.forward, {"n": 4, "device": "cpu"}, "labels", [[0, 1, 2, 0], torch.rand(4), torch.ones(4, dtype=torch.bool)]))
add([(LE.forward, {"labels": torch.arange(3), "n": 4, "device": "cpu"}, ValueError, ["labels", "(4,)"])])
add(ints(layers.AdaLNZero, {"dim": 8, "chunks": 2}, "cond_dim"))
add(ints(layers.AdaLNZero, {"cond_dim": 8, "chunks": 2}, "dim"))
add(ints(layers.AdaLNZero, {"cond_dim": 8, "dim": 8}, "chunks"))
add(tensors(layers.AdaLNZero(8, 4, 2).forward, {"c": torch.rand(3, 8)}, "c", wrong_shape=torch.rand(3, 5), empty=False))

# nets.rope
add(ints(rope.rope_frequencies, {}, "dim", minimum=2))
add([(rope.rope_frequencies, {"dim": 5}, ValueError, ["dim", "even"])])
add(reals(rope.rope_frequencies, {"dim": 8}, "base", positive=True))
add([(rope.rope_frequencies, {"dim": 8, "base": 1.0}, ValueError, ["base", "> 1"])])
add(devices(rope.rope_frequencies, {"dim": 8}))
add(tensors(rope.rope_angles, {"positions": torch.arange(5.0), "dim": 8}, "positions", empty=False, integer=False))
add(objects(rope.rope_angles, {"positions": torch.arange(5.0)}, "dim", [None, 2.5, "8"]))
add(reals(rope.rope_angles, {"positions": torch.arange(5.0), "dim": 8}, "base", positive=True))
add(tensors(rope.axial_rope_angles, {"positions": torch.rand(5, 2), "dim": 8}, "positions", wrong_shape=torch.rand(5),
            empty=False, integer=False))
add([(rope.axial_rope_angles, {"positions": torch.rand(5, 2), "dim": 6}, ValueError, ["dim", "divisible"])])
add(tensors(rope.rotary_tables, {"angles": ANGLES}, "angles", empty=False))
add(tensors(rope.rotate_half, {"x": TOK}, "x", wrong_shape=torch.rand(2, 3, 5), empty=False))
add(tensors(rope.apply_rotary, {"x": torch.rand(6, 8), "rotary": ANGLES}, "x", wrong_shape=torch.rand(6, 6),
            empty=False))
add(objects(rope.apply_rotary, {"x": torch.rand(6, 8)}, "rotary", [None, 3, (torch.rand(6, 8),)]))
add([(rope.apply_rotary, {"x": torch.rand(6, 8), "rotary": torch.rand(6, 3)}, ValueError, ["rotary", "columns"])])
add(tensors(rope.apply_rope, {"x": torch.rand(6, 8), "positions": torch.arange(6.0)}, "x",
            wrong_shape=torch.rand(6, 7), empty=False))
add(tensors(rope.apply_rope, {"x": torch.rand(6, 8), "positions": torch.arange(6.0)}, "positions", empty=False,
            integer=False))
add(tensors(rope.apply_axial_rope, {"x": torch.rand(6, 8), "positions": torch.rand(6, 2)}, "x",
            wrong_shape=torch.rand(6, 6), empty=False))
add(ints(rope.grid_positions, {"width": 3}, "height"))
add(ints(rope.grid_positions, {"height": 3}, "width"))
add(objects(rope.grid_positions, {"height": 2, "width": 2}, "offset", [None, 1.0, (1.0,), ("a", "b")]))
add(objects(rope.grid_positions, {"height": 2, "width": 2}, "scale", [None, "1", (1.0,)]))
add([(rope.grid_positions, {"height": 2, "width": 2, "scale": math.nan}, ValueError, ["scale"]),
     (rope.grid_positions, {"height": 2, "width": 2, "scale": 0.0}, ValueError, ["scale"]),
     (rope.grid_positions, {"height": 2, "width": 2, "offset": (math.inf, 0.0)}, ValueError, ["offset"])])

# nets.attention
add(ints(attention.block_causal_mask, {"k_len": 4, "block_size": 2}, "q_len"))
add(ints(attention.block_causal_mask, {"q_len": 2, "block_size": 2}, "k_len"))
add(ints(attention.block_causal_mask, {"q_len": 2, "k_len": 4}, "block_size"))
add([(attention.block_causal_mask, {"q_len": 5, "k_len": 4, "block_size": 2}, ValueError, ["q_len", "k_len"])])
add(ints(attention.MultiHeadAttention, {"heads": 2}, "dim"))
add(ints(attention.MultiHeadAttention, {"dim": 16}, "heads"))
add([(attention.MultiHeadAttention, {"dim": 16, "heads": 3}, ValueError, ["heads", "divid"])])
add(tensors(MHA.forward, {"x": TOK}, "x", wrong_shape=torch.rand(2, 6, 8)))
add([(MHA.forward, {"x": TOK, "rope": torch.rand(5, 4)}, ValueError, ["rope", "shape"]),
     (MHA.forward, {"x": TOK, "block_size": 0}, ValueError, ["block_size"]),
     (MHA.forward, {"x": TOK, "mask": torch.ones(6, 6, dtype=torch.bool), "block_size": 2}, ValueError, ["mask", "block_size"]),
     (MHA.forward, {"x": TOK, "mask": "causal"}, TypeError, ["mask"])])
add(tensors(MHA.forward_cached, {"x": TOK}, "x", wrong_shape=torch.rand(2, 6, 8)))
add(objects(MHA.forward_cached, {"x": TOK}, "cache", ["cache", (TOK, TOK)]))
add(objects(attention.KVCache, {"v": torch.rand(1, 2, 3, 4)}, "k", [None, [1.0]]))
add([(attention.KVCache, {"k": torch.rand(1, 2, 3, 4), "v": torch.rand(1, 2, 2, 4)}, ValueError, ["k", "v", "shape"])])

# the networks: constructors and forward
for net_cls, good in [(mlp.MLP, {"dim": 2}), (unet.UNet, {"in_channels": 1, "channels": 8, "channel_mult": (1, 2), "heads": 2,
                                                         "groups": 4}),
                      (dit.DiT, {"in_channels": 1, "hidden": 16, "depth": 1, "heads": 2}),
                      (classifier.NoisyClassifier, {"in_channels": 1})]:
    first = next(iter(good))
    add(ints(net_cls, good, first))
    add(objects(net_cls, good, "num_classes", [2.5, "10", True], TypeError))
    add([(net_cls, {**good, "num_classes": 0}, ValueError, ["num_classes"])])
add(ints(mlp.MLP, {"dim": 2}, "hidden"))
add(ints(mlp.MLP, {"dim": 2}, "depth"))
add(reals(mlp.MLP, {"dim": 2}, "time_scale", positive=True))
add(ints(unet.UNet, {"in_channels": 1, "groups": 4}, "channels"))
add(objects(unet.UNet, {"in_channels": 1}, "channel_mult", [None, 2, (), (1, 0), (1, 2.5)], NUMBER))
add([(unet.UNet, {"in_channels": 1, "groups": 5}, ValueError, ["groups"])])
add(reals(unet.UNet, {"in_channels": 1}, "dropout", nonnegative=True, below_one=True))
add(ints(dit.DiT, {"in_channels": 1, "hidden": 16, "heads": 2}, "depth"))
add(ints(dit.DiT, {"in_channels": 1, "hidden": 16, "depth": 1}, "heads"))
add(ints(dit.DiT, {"in_channels": 1, "hidden": 16, "depth": 1, "heads": 2}, "patch_size"))
add(reals(dit.DiT, {"in_channels": 1, "hidden": 16, "depth": 1, "heads": 2}, "mlp_ratio", positive=True))
add(reals(dit.DiT, {"in_channels": 1, "hidden": 16, "depth": 1, "heads": 2}, "rope_base", positive=True))
add(objects(dit.DiT.from_preset, {"in_channels": 1}, "name", ["XL/2", None], ValueError))
add(ints(dit.DiTBlock, {"heads": 2}, "hidden"))
add(ints(dit.DiTBlock, {"hidden": 16}, "heads"))
add(ints(classifier.NoisyClassifier, {}, "channels"))
add([(classifier.NoisyClassifier, {"num_classes": 1}, ValueError, ["num_classes"])])
add(tensors(dit.patchify, {"x": IMG, "patch_size": 2}, "x", wrong_shape=torch.rand(3, 1, 7, 8), empty=False))
add(ints(dit.patchify, {"x": IMG}, "patch_size"))
add(tensors(dit.unpatchify, {"patches": torch.rand(2, 16, 4), "patch_size": 2, "height": 8, "width": 8}, "patches",
            wrong_shape=torch.rand(2, 15, 4), empty=False, integer=False))
add(ints(dit.unpatchify, {"patches": torch.rand(2, 16, 4), "patch_size": 2, "width": 8}, "height"))

for net, x, wrong in [(TINY_MLP, X2, torch.rand(16, 3)), (TINY_UNET, IMG, torch.rand(3, 1, 7, 7)),
                      (TINY_DIT, IMG, torch.rand(3, 2, 8, 8))]:
    good = {"x": x, "noise_level": 0.5}
    add(tensors(net.forward, good, "x", wrong_shape=wrong))
    add(objects(net.forward, good, "noise_level", [None, "0.5", [0.1] * len(x), True]))
    add([(net.forward, {**good, "noise_level": torch.rand(len(x) + 1)}, ValueError, ["noise_level", "shape"]),
         (net.forward, {**good, "labels": torch.zeros(len(x), dtype=torch.long)}, ValueError, ["labels", "unconditional"])])
COND = {"x": IMG, "noise_level": 0.5, "labels": torch.tensor([0, 1, 2])}
add(objects(TINY_DIT_COND.forward, COND, "labels", [[0, 1, 2], torch.rand(3), torch.ones(3, dtype=torch.bool)]))
add([(TINY_DIT_COND.forward, {**COND, "labels": torch.arange(2)}, ValueError, ["labels", "(3,)"]),
     (TINY_DIT.forward, {"x": IMG, "noise_level": 0.5, "pos_scale": 0.0}, ValueError, ["scale"]),
     (TINY_DIT.forward, {"x": IMG, "noise_level": 0.5, "pos_offset": (math.nan, 0.0)}, ValueError, ["offset"])])
add(tensors(TINY_CLF.forward, {"x": IMG, "sigma": 0.5}, "x", wrong_shape=torch.rand(3, 2, 8, 8)))
add(objects(TINY_CLF.forward, {"x": IMG}, "sigma", [None, "0.5", [0.5] * 3]))
add([(TINY_CLF.forward, {"x": IMG, "sigma": s}, ValueError, ["sigma"]) for s in (0.0, -1.0, math.nan, math.inf)])

# data
for sampler in (toy2d.sample_moons, toy2d.sample_swiss_roll, toy2d.sample_rings, toy2d.sample_checkerboard):
    add(ints(sampler, {}, "n"))
    add(reals(sampler, {"n": 8}, "noise", nonnegative=True))
    add(generators(sampler, {"n": 8}))
    add(dtypes(sampler, {"n": 8}))
    add(devices(sampler, {"n": 8}))
add(ints(toy2d.sample_rings, {"n": 8}, "n_rings"))
add(ints(toy2d.sample_checkerboard, {"n": 8}, "cells", minimum=2))
add([(toy2d.sample_checkerboard, {"n": 8, "cells": 3}, ValueError, ["cells", "even"])])
add(bools(digits.load_digits, {}, "upsample"))
add(dtypes(digits.load_digits, {}))
add(tensors(digits.train_test_split, {"images": DIGITS[0], "labels": DIGITS[1]}, "images",
            wrong_shape=torch.rand(19, 1, 8, 8), integer=False))
add(objects(digits.train_test_split, {"images": DIGITS[0]}, "labels", [None, [0] * 20, torch.rand(20)], NUMBER))
add([(digits.train_test_split, {"images": DIGITS[0], "labels": DIGITS[1][:5]}, ValueError, ["labels", "20"])])
add(reals(digits.train_test_split, {"images": DIGITS[0], "labels": DIGITS[1]}, "test_fraction", positive=True,
          below_one=True))
add(generators(digits.train_test_split, {"images": DIGITS[0], "labels": DIGITS[1]}))
add(objects(patches.photo_path, {}, "name", [None, "mona_lisa", 3], (TypeError, ValueError)))
add(objects(patches.load_photo, {}, "name", [None, "mona_lisa"], (TypeError, ValueError)))
add(bools(patches.load_photo, {"name": "china"}, "grayscale"))
add(ints(patches.load_photo, {"name": "china"}, "downscale"))
add(dtypes(patches.load_photo, {"name": "china"}))
add(ints(patches.split_columns, {"split": "train", "test_fraction": 0.25}, "width", minimum=2))
add(objects(patches.split_columns, {"width": 100, "test_fraction": 0.25}, "split", [None, "validation"], (TypeError, ValueError)))
add(reals(patches.split_columns, {"width": 100, "split": "train"}, "test_fraction", positive=True, below_one=True))
add(ints(patches.sample_patches, {}, "n"))
add(ints(patches.sample_patches, {"n": 2}, "size"))
add(ints(patches.sample_patches, {"n": 2}, "downscale"))
add(objects(patches.sample_patches, {"n": 2}, "photos", [None, "china", (), ("mona_lisa",)], (TypeError, ValueError)))
add(generators(patches.sample_patches, {"n": 2}))
add(dtypes(patches.sample_patches, {"n": 2}))
add(bools(patches.sample_patches, {"n": 2}, "grayscale"))
add([(patches.sample_patches, {"n": 2, "size": 100000}, ValueError, ["size"])])

# metrics
MMD = {"x": X2, "y": Y2, "bandwidth": 1.0}
add(tensors(mmd.mmd2, MMD, "x", wrong_shape=torch.rand(16, 3), nan=True))
add(tensors(mmd.mmd2, MMD, "y", wrong_shape=torch.rand(12), nan=True))
add(reals(mmd.mmd2, {"x": X2, "y": Y2}, "bandwidth", positive=True))
add(objects(mmd.mmd2, {"x": X2, "y": Y2}, "bandwidth", [[], [1.0, -1.0], torch.rand(2, 2)], (TypeError, ValueError)))
add(ints(mmd.mmd2, MMD, "block_size"))
add(bools(mmd.mmd2, MMD, "unbiased"))
add([(mmd.mmd2, {**MMD, "x": X2[:1]}, ValueError, ["x", "2"])])  # the unbiased estimate needs two points
add(tensors(mmd.gaussian_kernel, MMD, "x", wrong_shape=torch.rand(16, 3)))
add(reals(mmd.gaussian_kernel, {"x": X2, "y": Y2}, "bandwidth", positive=True))
add(tensors(mmd.median_bandwidth, {"x": X2}, "x", wrong_shape=torch.rand(16), nan=True))
add(ints(mmd.median_bandwidth, {"x": X2}, "max_points", minimum=2))
add(generators(mmd.median_bandwidth, {"x": X2}))
add(objects(mmd.as_bandwidths, {"like": X2}, "bandwidth", [None, "1", [], [0.0]], (TypeError, ValueError)))
SW = {"x": X2, "y": X2 + 1.0, "generator": torch.Generator().manual_seed(0)}
add(tensors(sliced_wasserstein.sliced_wasserstein, SW, "x", wrong_shape=torch.rand(16, 3), nan=True))
add(tensors(sliced_wasserstein.sliced_wasserstein, SW, "y", wrong_shape=torch.rand(16), nan=True))
add([(sliced_wasserstein.sliced_wasserstein, {**SW, "y": Y2}, ValueError, ["same shape"])])
add(reals(sliced_wasserstein.sliced_wasserstein, SW, "p", positive=True))
add([(sliced_wasserstein.sliced_wasserstein, {**SW, "p": 0.5}, ValueError, ["p", ">= 1"])])
add(ints(sliced_wasserstein.sliced_wasserstein, SW, "n_projections"))
add(generators(sliced_wasserstein.sliced_wasserstein, {"x": X2, "y": X2 + 1.0}))
add([row for row in tensors(sliced_wasserstein.sliced_wasserstein, {**SW, "directions": torch.randn(5, 2)},
                            "directions", wrong_shape=torch.randn(5, 3), nan=True)
     if row[1]["directions"] is not None])  # None is the default: draw random directions
add(ints(sliced_wasserstein.random_directions, {"dim": 2}, "n_projections"))
add(ints(sliced_wasserstein.random_directions, {"n_projections": 3}, "dim"))
add(generators(sliced_wasserstein.random_directions, {"n_projections": 3, "dim": 2}))
add(dtypes(sliced_wasserstein.random_directions, {"n_projections": 3, "dim": 2}))
IMG_PAIR = {"x": IMG, "y": IMG2}
add(tensors(image.mse, IMG_PAIR, "x", wrong_shape=torch.rand(3, 1, 8, 7), nan=True))
add(tensors(image.mse, IMG_PAIR, "y", wrong_shape=torch.rand(8, 8), nan=True))
add(tensors(image.psnr, {**IMG_PAIR, "data_range": 1.0}, "x", wrong_shape=torch.rand(3, 1, 8, 7), nan=True))
add(reals(image.psnr, IMG_PAIR, "data_range", positive=True))
SSIM = {"x": torch.rand(2, 1, 16, 16), "y": torch.rand(2, 1, 16, 16), "data_range": 1.0}
add(tensors(image.ssim, SSIM, "x", wrong_shape=torch.rand(2, 1, 16, 15), nan=True))
add(reals(image.ssim, {k: v for k, v in SSIM.items() if k != "data_range"}, "data_range", positive=True))
add(ints(image.ssim, SSIM, "window_size"))
add([(image.ssim, {**SSIM, "window_size": 4}, ValueError, ["window_size", "odd"]),
     (image.ssim, {**SSIM, "window_size": 17}, ValueError, ["window_size"])])
add(reals(image.ssim, SSIM, "sigma", positive=True))
add(reals(image.ssim, SSIM, "k1", positive=True))
add(reals(image.ssim, SSIM, "k2", positive=True))
add(bools(image.ssim, SSIM, "return_map"))
add(ints(image.gaussian_window, {}, "size"))
add(reals(image.gaussian_window, {}, "sigma", positive=True))
add(dtypes(image.gaussian_window, {}))
add(tensors(frechet.gaussian_stats, {"feats": FEATS}, "feats", wrong_shape=torch.rand(40), nan=True))
add([(frechet.gaussian_stats, {"feats": FEATS[:1]}, ValueError, ["feats", "2"])])
FD = {"mu1": MU, "cov1": COV, "mu2": MU + 1, "cov2": 2 * COV}
add(tensors(frechet.frechet_distance, FD, "mu1", wrong_shape=torch.zeros(4), nan=True, empty=False))
add(tensors(frechet.frechet_distance, FD, "cov2", wrong_shape=torch.eye(4), nan=True, empty=False))
add([(frechet.frechet_distance, {**FD, "cov1": -COV}, ValueError, ["cov1", "positive semi-definite"]),
     (frechet.frechet_distance, {**FD, "cov1": torch.tensor([[1.0, 2.0], [0.0, 1.0]])}, ValueError, ["cov1"])])
add(tensors(frechet.frechet_distance_from_features, {"feats1": FEATS, "feats2": FEATS + 1}, "feats1",
            wrong_shape=torch.rand(40, 4), nan=True))
TFC = {"images": DIGITS[0], "labels": DIGITS[1], "steps": 1}
add(tensors(frechet.train_feature_classifier, TFC, "images", wrong_shape=torch.rand(20, 8, 8), nan=True))
add(objects(frechet.train_feature_classifier, TFC, "labels", [None, [0] * 20, torch.rand(20)]))
add(ints(frechet.train_feature_classifier, TFC, "steps"))
add(ints(frechet.train_feature_classifier, TFC, "batch_size"))
add(reals(frechet.train_feature_classifier, TFC, "lr", positive=True))
add(generators(frechet.train_feature_classifier, TFC))
add(objects(frechet.features, {"images": DIGITS[0]}, "classifier", [None, "clf", LIN]))
add(tensors(frechet.features, {"classifier": CLF, "images": DIGITS[0]}, "images", wrong_shape=torch.rand(20, 2, 8, 8),
            nan=True))
add(ints(frechet.features, {"classifier": CLF, "images": DIGITS[0]}, "batch_size"))
add(tensors(frechet.classifier_accuracy, {"classifier": CLF, "images": DIGITS[0], "labels": DIGITS[1]}, "images",
            wrong_shape=torch.rand(20, 8, 8)))
add(objects(frechet.classifier_accuracy, {"classifier": CLF, "images": DIGITS[0]}, "labels", [None, torch.rand(20)]))
add(ints(frechet.FeatureClassifier, {}, "in_channels"))
add(ints(frechet.FeatureClassifier, {}, "width"))
add(ints(frechet.FeatureClassifier, {}, "feature_dim"))
add([(frechet.FeatureClassifier, {"n_classes": 1}, ValueError, ["n_classes"])])
for fn, good, arg in [(bits.nats_to_bits, {}, "nll"), (bits.bits_per_dim, {"num_dims": 4}, "nll"),
                      (bits.bits_per_character, {"num_characters": 4}, "nll"), (bits.perplexity, {"num_tokens": 4}, "nll")]:
    add(objects(fn, good, arg, [None, "1.0", True]))
    add([(fn, {**good, arg: v}, ValueError, [arg]) for v in (math.nan, -math.inf, torch.tensor([1.0, math.nan]))])
add(ints(bits.bits_per_dim, {"nll": 1.0}, "num_dims"))
add(ints(bits.bits_per_dim, {"nll": 1.0, "num_dims": 4}, "n_bits", allow_none=True))
add(ints(bits.bits_per_character, {"nll": 1.0}, "num_characters"))
add(ints(bits.perplexity, {"nll": 1.0}, "num_tokens"))
add(ints(bits.dequantization_offset, {}, "n_bits"))
add(ints(bits.dequantization_offset, {"n_bits": 8}, "levels", minimum=2, allow_none=True))
add(reals(histogram.grid_2d, {"hi": 1.0, "bins": 4}, "lo"))
add(reals(histogram.grid_2d, {"lo": -1.0, "bins": 4}, "hi"))
add([(histogram.grid_2d, {"lo": 1.0, "hi": -1.0, "bins": 4}, ValueError, ["hi", "lo"])])
add(ints(histogram.grid_2d, {"lo": -1.0, "hi": 1.0}, "bins"))
add(dtypes(histogram.grid_2d, {"lo": -1.0, "hi": 1.0, "bins": 4}))
HIST = {"samples": X2, "lo": -3.0, "hi": 3.0, "bins": 4}
add(tensors(histogram.histogram_2d, HIST, "samples", wrong_shape=torch.rand(16, 3), nan=True))
add(ints(histogram.histogram_2d, HIST, "bins"))
CP = {"log_density": logp, "lo": -3.0, "hi": 3.0, "bins": 4}
add(objects(histogram.cell_probabilities, CP, "log_density", [None, 3]))
add(ints(histogram.cell_probabilities, CP, "subdivide"))
add(tensors(histogram.histogram_tv, {**CP, "samples": X2}, "samples", wrong_shape=torch.rand(16, 3), nan=True))
add(objects(histogram.histogram_tv, {**HIST}, "log_density", [None, 3]))
add(ints(histogram.expected_noise_tv, CP, "n"))
add(objects(histogram.expected_noise_tv, {"n": 10, "lo": -3.0, "hi": 3.0, "bins": 4}, "log_density", [None, 3]))


def _id(case) -> str:
    fn, kwargs, exc, words = case
    name = getattr(fn, "__qualname__", type(fn).__name__)
    return f"{name}-{words[0]}"


@pytest.mark.parametrize("fn, kwargs, error, words", CASES, ids=[_id(c) for c in CASES])
def test_bad_input_raises_a_clear_error_naming_the_argument(fn, kwargs, error, words):
    with pytest.raises(error) as info:
        fn(**kwargs)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {type(info.value).__name__}: {message}"


def test_the_table_covers_every_public_callable_of_the_upper_engine():
    """A new public function or class in these modules must get its rows here."""
    modules = [device, ema, checkpoint, train, layers, rope, attention, mlp, unet, dit, classifier, toy2d, digits,
               patches, mmd, sliced_wasserstein, image, frechet, bits, histogram]
    tested = {getattr(fn, "__qualname__", None) for fn, *_ in CASES}
    tested |= {getattr(fn, "__qualname__", "").split(".")[0] for fn, *_ in CASES}
    exempt = {"rank_and_world_size", "is_main_process", "close_distributed",  # no arguments
              "Checkpoint", "TrainResult", "NonFiniteLossError"}  # frozen results, built by the library itself
    missing = []
    for module in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and getattr(obj, "__module__", None) == module.__name__ and name not in exempt:
                if name not in tested:
                    missing.append(f"{module.__name__}.{name}")
    assert missing == [], missing
    assert len(CASES) > 500
