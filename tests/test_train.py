"""The training loop, the EMA and checkpoints: exact EMA formulas, reproducibility, DDP gradient averaging."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pickle
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import diffbook
from diffbook import ema as ema_module
from diffbook import train as T
from diffbook.checkpoint import FORMAT, load_checkpoint, plain_config, save_checkpoint
from diffbook.ema import EMA, ema_update_, unwrap_model

CPU = torch.device("cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(os.path.abspath(diffbook.__file__)) + os.sep


def regression_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return x, x @ w + 0.3


def mse(model, batch, generator):
    x, y = batch
    return (model(x) - y).pow(2).mean(dim=1)


def noisy_mse(model, batch, generator):
    """Uses the generator, as a diffusion loss does for its noise draws."""
    x, y = batch
    x = x + 0.1 * torch.randn(x.shape, generator=generator, device=x.device)
    return (model(x) - y).pow(2).mean(dim=1)


def mlp(seed: int = 0, width: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, width), nn.SiLU(), nn.Linear(width, 1))


def run(model=None, loss_fn=mse, batches=None, **kw):
    kw = {"steps": 20, "device": CPU, "progress": False, **kw}
    return T.train(model if model is not None else mlp(), loss_fn, batches or (lambda step: regression_data()), **kw)


# ------------------------------------------------------------------------------------------------ training


def test_loss_decreases_on_a_regression_problem():
    res = run(steps=300, lr=1e-2, ema_decay=None)
    assert res.losses.shape == (300,) and res.losses.dtype == torch.float32 and res.losses.device == CPU
    first, last = res.losses[:5].mean(), res.losses[-20:].mean()
    assert last < 0.02 * first, (first, last)


def test_same_seeds_give_identical_loss_history_and_weights():
    a = run(loss_fn=noisy_mse, seed=3)
    b = run(loss_fn=noisy_mse, seed=3)
    c = run(loss_fn=noisy_mse, seed=4)
    assert torch.equal(a.losses, b.losses)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.losses, c.losses)  # the generator really drives the noise
    g = torch.Generator().manual_seed(3)
    d = run(loss_fn=noisy_mse, generator=g)
    assert torch.equal(a.losses, d.losses)  # seed=3 and an injected generator seeded with 3 agree (one rank)


def grad_norms(clip):
    norms = []

    def record(step, loss):
        norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))

    model = mlp()
    x, y = regression_data()
    run(model, batches=lambda step: (x, 50.0 * y), grad_clip=clip, callback=record)
    return torch.stack(norms)


def test_grad_clipping_caps_the_gradient_norm():
    raw = grad_norms(None)
    assert (raw > 5.0).all(), raw  # the problem is scaled so that every raw gradient exceeds the cap
    clipped = grad_norms(0.5)
    assert (clipped <= 0.5 * (1 + 1e-5)).all(), clipped
    torch.testing.assert_close(clipped, torch.full_like(clipped, 0.5), rtol=1e-5, atol=0)


def test_train_ema_is_the_naive_recursion_and_differs_from_the_model():
    model, decay = mlp(), 0.9
    shadow = [p.detach().clone().double() for p in model.parameters()]

    def naive(step, loss):
        for e, p in zip(shadow, model.parameters()):
            e.mul_(decay).add_((1 - decay) * p.detach().double())

    res = run(model, steps=30, lr=1e-2, ema_decay=decay, callback=naive)
    assert res.model is model and res.ema is not model
    assert not res.ema.training and not any(p.requires_grad for p in res.ema.parameters())
    for e, p, q in zip(shadow, res.ema.parameters(), res.model.parameters()):
        torch.testing.assert_close(p.double(), e, rtol=0, atol=1e-6)
        assert (p - q).abs().max() > 1e-3
    assert run(ema_decay=None).ema is None
    zero = run(ema_decay=0.0)  # decay 0: the EMA is the model
    for p, q in zip(zero.ema.parameters(), zero.model.parameters()):
        assert torch.equal(p, q)


def test_batches_may_be_an_iterable_restarted_each_epoch():
    x, y = regression_data(48)
    loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    res = run(batches=loader, steps=7)
    assert res.losses.shape == (7,)
    assert res.losses[0] != res.losses[1]  # different batches
    with pytest.raises(ValueError, match="batches ran out after 3"):
        run(batches=iter(loader), steps=7)


def test_grad_clipping_is_applied_before_the_optimizer_step():
    """Catches clipping moved after ``optimizer.step()``: with SGD at lr = 1 the applied update *is* the
    gradient, so after one step the parameters moved by exactly the clipped norm c (the raw norm is ~100 c)."""
    x, y = regression_data()
    for clip in (0.5, 2.0):
        model = mlp()
        before = [p.detach().clone() for p in model.parameters()]
        raw = []

        def record(step, loss):
            raw.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))

        run(model, batches=lambda step: (x, 50.0 * y), steps=1, grad_clip=clip, ema_decay=None,
            optimizer=lambda params: torch.optim.SGD(params, lr=1.0), callback=record)
        moved = torch.linalg.vector_norm(torch.stack([(p - b).norm() for p, b in zip(model.parameters(), before)]))
        torch.testing.assert_close(moved, torch.tensor(clip), rtol=1e-5, atol=0)
        torch.testing.assert_close(raw[0], torch.tensor(clip), rtol=1e-5, atol=0)  # the grads left behind, too
    unclipped = mlp()
    before = [p.detach().clone() for p in unclipped.parameters()]
    run(unclipped, batches=lambda step: (x, 50.0 * y), steps=1, grad_clip=None, ema_decay=None,
        optimizer=lambda params: torch.optim.SGD(params, lr=1.0))
    moved = torch.linalg.vector_norm(torch.stack([(p - b).norm() for p, b in zip(unclipped.parameters(), before)]))
    assert moved > 50.0, moved  # the problem is scaled so that clipping really acts
    with pytest.raises(TypeError, match="optimizer"):
        run(optimizer=lambda params: "sgd")


SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "numpy", "__format__")


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts calls, made from any module of the ``diffbook`` package (train.py, ema.py, ...), of every Tensor
    method that reads a value back to the host: ``.item()``, ``.tolist()``, ``float()``, ``int()``, ``bool()``
    (an ``if tensor:``), ``.numpy()``, f-strings. torch's own files are not counted, nor this test file (whose
    loss functions contain no sync)."""
    calls = []

    def counting(name, original):
        def method(self, *args, **kwargs):
            caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
            if caller.startswith(PACKAGE_DIR):  # the package's own syncs, not torch's
                calls.append((name, os.path.relpath(caller, PACKAGE_DIR)))
            return original(self, *args, **kwargs)

        return method

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    return calls


@pytest.mark.parametrize("progress", [True, False])
def test_one_host_sync_per_log_every_steps_detects_float_bool_tolist_and_item(count_syncs, progress):
    """Catches a ``float(loss)`` (or ``bool``, ``.item()``, ``.tolist()``) sync added to every step: the loop reads
    back once per ``log_every`` steps (NaN check and progress bar together), never per step."""
    run(steps=30, progress=progress, log_every=10)
    assert len(count_syncs) == 3, count_syncs
    count_syncs.clear()
    run(steps=60, progress=progress, log_every=10)
    assert len(count_syncs) == 6, count_syncs
    count_syncs.clear()
    run(steps=25, progress=progress, log_every=10)
    assert len(count_syncs) == 3, count_syncs  # at steps 10, 20 and the last


def test_the_sync_counter_sees_every_kind_of_sync(count_syncs):
    """The counter itself: each way of reading a tensor back, written in train.py's module, is counted."""
    t = torch.tensor(1.5)
    code = "float(t); bool(t); int(t); t.item(); t.tolist(); f'{t:.3g}'; t.numpy(); [0, 1][torch.tensor(1)]"
    exec(compile(code, T.__file__, "exec"), {"t": t, "torch": torch})
    assert sorted(name for name, _ in count_syncs) == sorted(["__float__", "__bool__", "__int__", "item", "tolist",
                                                              "__format__", "numpy", "__index__"]), count_syncs


def test_the_sync_counter_catches_a_per_step_sync_in_ema_update(count_syncs, monkeypatch):
    """Catches a per-step ``bool(torch.isfinite(p).all())`` in ``EMA.update``: a sync outside train.py, in
    another module of the package, is counted too (the wrapper's code is attributed to diffbook/ema.py)."""
    source = ("def update(self, model):\n"
              "    bool(torch.isfinite(next(model.parameters())).all())\n"
              "    return original(self, model)\n")
    namespace = {"torch": torch, "original": EMA.update}
    exec(compile(source, ema_module.__file__, "exec"), namespace)
    monkeypatch.setattr(EMA, "update", namespace["update"])
    run(steps=30, log_every=10)
    assert sorted(count_syncs) == sorted([("tolist", "train.py")] * 3 + [("__bool__", "ema.py")] * 30), count_syncs
    count_syncs.clear()
    run(steps=30, log_every=10, ema_decay=None)  # no EMA, no injected sync: back to one per check
    assert count_syncs == [("tolist", "train.py")] * 3, count_syncs


def nan_from(bad_step, x, y):
    """Clean regression batches until ``bad_step``, then a batch with a NaN in it."""

    def batches(step):
        if step < bad_step:
            return x, y
        return torch.where(torch.arange(len(x))[:, None] == 0, torch.nan, x), y

    return batches


@pytest.mark.parametrize("bad_step, log_every", [(7, 50), (13, 5), (3, 5), (7, 1), (10, 5), (0, 50)])
def test_train_stops_at_the_first_nan_loss_and_keeps_the_weights_after_the_last_finite_step(bad_step, log_every):
    """Catches training on through NaN batches, and a stop that loses the good steps since the last check (with a
    NaN at step 7 and ``log_every=50`` the weights came back as after 0 steps): a FloatingPointError names the
    step, and the model and EMA hold exactly the weights of a clean run of ``bad_step`` steps (steps 0 .. bad_step-1)
    even though the check comes up to ``log_every - 1`` steps later."""
    x, y = regression_data()
    model = mlp()
    with pytest.raises(T.NonFiniteLossError, match=rf"at step {bad_step} is not finite") as info:
        run(model, batches=nan_from(bad_step, x, y), steps=60, lr=1e-2, log_every=log_every, ema_decay=0.9)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == bad_step and err.restored_step == bad_step and err.losses.shape == (bad_step,)
    assert torch.isfinite(err.losses).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    if bad_step:
        clean = run(mlp(), batches=lambda step: (x, y), steps=bad_step, lr=1e-2, log_every=log_every, ema_decay=0.9)
        clean_model, clean_ema = list(clean.model.parameters()), list(clean.ema.parameters())
        torch.testing.assert_close(err.losses, clean.losses, rtol=0, atol=0)
    else:  # a NaN at the very first step: the initial weights come back, in the model and in the EMA
        clean_model = clean_ema = list(mlp().parameters())
    for p, q in zip(model.parameters(), clean_model):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for p, q in zip(err.ema.parameters(), clean_ema):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert model.training  # mlp() starts in training mode, and train restores it even when it raises


def test_a_nan_run_makes_no_extra_host_syncs(count_syncs):
    """The exact stop costs no sync per step: a clean run reads back once per check, and a NaN at step 7 with
    ``log_every=50`` reaches the check at step 50 with no read-back before it."""
    x, y = regression_data()
    run(batches=lambda step: (x, y), steps=50, log_every=50)
    assert count_syncs == [("tolist", "train.py")], count_syncs
    count_syncs.clear()
    with pytest.raises(T.NonFiniteLossError):
        run(batches=nan_from(7, x, y), steps=100, log_every=50)
    assert count_syncs[0] == ("tolist", "train.py") and len(count_syncs) <= 3, count_syncs  # + the error message


def test_train_stops_on_an_infinite_gradient_norm_with_a_finite_loss():
    """A finite loss whose gradient is infinite would poison the weights just as well."""
    x, y = regression_data()

    def loss_fn(model, batch, generator):
        x, y = batch
        out = model(x)
        kink = (out[:, 0] - out[:, 0].detach()).abs().sqrt()  # = 0, but d sqrt(|z|)/dz at z = 0 is not finite
        return (out - y).pow(2).mean(dim=1) + kink

    model = mlp()
    with pytest.raises(T.NonFiniteLossError, match="at step 0 is not finite") as info:
        run(model, loss_fn=loss_fn, steps=4, log_every=2)
    assert torch.isfinite(info.value.losses).all() and info.value.losses.shape == (0,)
    for p, q in zip(model.parameters(), mlp().parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_train_rejects_empty_batches_and_integer_data_with_a_clear_error():
    """Catches zero-size batches (the mean of no losses is NaN) and integer images reaching the network."""
    x, y = regression_data()
    with pytest.raises(ValueError, match="empty batch at step 0"):
        run(batches=lambda step: (x[:0], y[:0]))
    with pytest.raises(ValueError, match=r"no losses \(shape \(0,\)\) at step 1"):
        run(batches=lambda step: (x[: 8 * (step == 0)], y[: 8 * (step == 0)]), steps=3)
    with pytest.raises(TypeError, match=r"dtype torch.int64.*floating point"):
        run(batches=lambda step: (x.long(), y))
    with pytest.raises(TypeError, match="floating-point losses"):
        run(loss_fn=lambda m, b, g: (m(b[0]) - b[1]).pow(2).mean(dim=1).round().long())

    def token_loss(model, batch, generator):  # integer tensors are fine where loss_fn expects them
        tokens, y = batch
        return (model(tokens.float()) - y).pow(2).mean(dim=1)

    assert run(batches=lambda step: (x.round().long(), y), loss_fn=token_loss, steps=3).losses.shape == (3,)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_on_cuda_without_cuda_is_a_clear_value_error():
    """Catches torch's bare ``AssertionError: Torch not compiled with CUDA enabled``."""
    for device in ("cuda", torch.device("cuda"), "cuda:1"):
        with pytest.raises(ValueError, match=r"device='cuda(:1)?' but CUDA is not available"):
            run(device=device)
    with pytest.raises(ValueError, match="device='gpu' is not a device string"):
        run(device="gpu")
    with pytest.raises(TypeError, match="device must be a device string"):
        run(device=0.5)


def test_train_restores_the_training_flag_and_returns_a_frozen_result():
    model = mlp().eval()
    res = run(model, steps=2)
    assert not res.model.training
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.losses = None


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": -3}, ValueError, "steps"),
        ({"steps": 2.5}, ValueError, "steps"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"ema_decay": -0.1}, ValueError, "ema_decay"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"log_every": 0}, ValueError, "log_every"),
        ({"loss_fn": 42}, TypeError, "loss_fn"),
        ({"model": "net"}, TypeError, "model"),
        ({"batches": 42}, TypeError, "batches"),
        ({"callback": 1}, TypeError, "callback"),
        ({"generator": 5}, TypeError, "generator"),
        ({"loss_fn": lambda m, b, g: mse(m, b, g).mean()}, ValueError, r"per-sample losses of shape \(n,\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=name):
        run(**kwargs)


def test_init_distributed_without_torchrun_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert isinstance(T.init_distributed(), torch.device)
    assert not torch.distributed.is_initialized()
    assert T.rank_and_world_size() == (0, 1) and T.is_main_process()
    T.close_distributed()  # harmless when nothing was joined


# ----------------------------------------------------------------------------------------------------- EMA


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_ema_matches_the_closed_form_for_constant_parameters(dtype, tol):
    """e_k = p + decay^k (e_0 - p) after k updates towards a constant p."""
    net = mlp().to(dtype)
    ema = EMA(net, decay=0.95)
    e0 = [p.detach().clone() for p in net.parameters()]
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
    for k in range(1, 41):
        ema.update(net)
        if k in (1, 7, 40):
            for e, p, s in zip(e0, net.parameters(), ema.module.parameters()):
                torch.testing.assert_close(s, p + 0.95**k * (e - p), rtol=0, atol=tol)
    assert ema.num_updates == 40


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_ema_matches_a_naive_loop_on_a_changing_sequence(dtype, tol):
    """Same recursion, different rounding (lerp vs. d e + (1 - d) p): fp32 drifts by a few ulps over 200 steps."""
    torch.manual_seed(2)
    shapes = [(5, 3), (3,), (2, 2, 2)]
    decay = 0.99
    params = [torch.randn(s, dtype=dtype) for s in shapes]
    shadow = [p.clone() for p in params]
    naive = [p.clone() for p in params]
    for _ in range(200):
        params = [p + 0.1 * torch.randn_like(p) for p in params]
        ema_update_(shadow, params, decay)
        naive = [decay * e + (1 - decay) * p for e, p in zip(naive, params)]
    for s, e in zip(shadow, naive):
        torch.testing.assert_close(s, e, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="decay"):
        ema_update_(shadow, params, 1.0)
    with pytest.raises(ValueError, match="same length"):
        ema_update_(shadow, params[:1], 0.5)


def test_ema_copies_buffers_and_strips_wrappers():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = EMA(torch.compile(net), decay=0.5)  # compiling is lazy: nothing is compiled here
    assert isinstance(ema.module, nn.Sequential)
    net(torch.randn(8, 3) * 4 + 2)  # changes the running statistics
    ema.update(net)
    for b, s in zip(net.buffers(), ema.module.buffers()):
        assert torch.equal(b, s)
    assert unwrap_model(torch.compile(net)) is net
    copy = ema.copy()
    assert copy is not ema.module and torch.equal(copy[0].weight, ema.module[0].weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.5)


# ----------------------------------------------------------------------------------------------- checkpoint


@dataclasses.dataclass(frozen=True)
class NetConfig:
    width: int = 16
    act: str = "silu"
    hidden: tuple[int, ...] = (16, 8)


def build_net(config: NetConfig) -> nn.Module:
    act = {"silu": nn.SiLU, "tanh": nn.Tanh}[config.act]
    layers, d = [], 4
    for h in config.hidden:
        layers += [nn.Linear(d, h), act()]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, 1))


def test_checkpoint_round_trip_is_exact(tmp_path):
    config = NetConfig(act="tanh")
    torch.manual_seed(0)
    model = build_net(config)
    ema = EMA(model, 0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    path = save_checkpoint(tmp_path / "sub" / "net.pt", torch.compile(model), config, ema=ema, step=123)
    assert path.exists() and not path.with_name("net.pt.tmp").exists()

    ckpt = load_checkpoint(path, lambda c: build_net(NetConfig(**c)))
    assert ckpt.step == 123 and ckpt.config == dataclasses.asdict(config) and ckpt.config["hidden"] == (16, 8)
    x = torch.randn(10, 4)
    for built, original in [(ckpt.model, model), (ckpt.ema, ema.module)]:
        for (k, a), (k2, b) in zip(built.state_dict().items(), original.state_dict().items()):
            assert k == k2 and torch.equal(a, b)
        assert torch.equal(built(x), original(x))
    assert not torch.equal(ckpt.model(x), ckpt.ema(x))

    save_checkpoint(tmp_path / "plain.pt", model, {"width": 16})
    assert load_checkpoint(tmp_path / "plain.pt", lambda c: build_net(NetConfig())).ema is None


EXECUTED = []


def _mark_executed():
    EXECUTED.append(True)
    return {}


class Payload:
    """Unpickling this runs :func:`_mark_executed`: the kind of object ``weights_only`` must refuse."""

    def __reduce__(self):
        return (_mark_executed, ())


def test_loading_an_arbitrary_pickled_object_fails_under_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "config": Payload(), "step": 0, "model": {}, "ema": None}, path)
    with pytest.raises(pickle.UnpicklingError, match="evil.pt' is not a valid diffbook checkpoint.*_mark_executed") as info:
        load_checkpoint(path, lambda c: build_net(NetConfig()))
    assert "weights_only=False" not in str(info.value) and "weights_only` set to `False" not in str(info.value)
    assert EXECUTED == []
    torch.load(path, weights_only=False)  # the payload is real: a full unpickle runs it
    assert EXECUTED == [True]


def test_checkpoint_rejects_bad_configs_and_foreign_files(tmp_path):
    model = build_net(NetConfig())
    with pytest.raises(TypeError, match=r"config\['dtype'\]"):
        save_checkpoint(tmp_path / "a.pt", model, {"dtype": torch.float32})
    with pytest.raises(TypeError, match=r"config\['sizes'\]\[1\]"):
        plain_config({"sizes": [1, object()]})
    with pytest.raises(TypeError, match="config must be a dict or a dataclass"):
        save_checkpoint(tmp_path / "a.pt", model, "width=16")
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path / "a.pt", model, {}, step=-1)
    torch.save({"weights": model.state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt' is not a valid diffbook checkpoint .no format tag"):
        load_checkpoint(tmp_path / "foreign.pt", lambda c: model)
    save_checkpoint(tmp_path / "b.pt", model, NetConfig())
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(tmp_path / "b.pt", lambda c: build_net(NetConfig(hidden=(4,))))
    with pytest.raises(TypeError, match="build"):
        load_checkpoint(tmp_path / "b.pt", "build_net")


def _broken_files(tmp_path):
    """(name, bytes) of files that are not checkpoints: each must give an error naming the file."""
    model = build_net(NetConfig())
    good = save_checkpoint(tmp_path / "good.pt", model, NetConfig()).read_bytes()
    rng = torch.Generator().manual_seed(0)
    noise = bytes(torch.randint(0, 256, (2000,), generator=rng, dtype=torch.uint8).tolist())
    return [
        ("empty.pt", b"", "the file is empty"),
        ("truncated.pt", good[: len(good) // 2], "truncated"),
        ("header_only.pt", good[:30], "truncated"),
        ("random.pt", noise, "truncated, or another format"),
        ("pickle_then_noise.pt", pickle.dumps({"a": 1}) + noise, "another format"),
        ("text.pt", b"model weights go here\n", "another format"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_broken_checkpoint_files_give_an_error_naming_the_path(tmp_path, index):
    """Catches ``OSError: [Errno 22]``, a bare ``EOFError`` and torch's advice to retry with
    ``weights_only=False`` for empty, truncated and random files."""
    name, data, words = _broken_files(tmp_path)[index]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path, lambda c: build_net(NetConfig(**c)))
    message = str(info.value)
    assert f"{str(path)!r} is not a valid diffbook checkpoint" in message and words in message, message
    assert "weights_only" not in message, message


def test_checkpoint_with_wrong_entries_or_config_keys_names_the_path(tmp_path):
    model = build_net(NetConfig())
    state = model.state_dict()
    cases = [
        ({"format": FORMAT, "config": {}, "model": state}, r"lacks the entries \['ema', 'step'\]"),
        ({"format": FORMAT, "config": [1], "step": 0, "model": state, "ema": None}, "config is a list"),
        ({"format": FORMAT, "config": {}, "step": -2, "model": state, "ema": None}, "step is -2"),
        ({"format": FORMAT, "config": {}, "step": 0, "model": [1, 2], "ema": None}, "'model' entry is not a state_dict"),
        ([1, 2, 3], "no format tag"),
    ]
    for i, (payload, words) in enumerate(cases):
        path = tmp_path / f"bad{i}.pt"
        torch.save(payload, path)
        with pytest.raises(ValueError, match=rf"bad{i}.pt' is not a valid diffbook checkpoint.*{words}"):
            load_checkpoint(path, lambda c: build_net(NetConfig(**c)))
    # a real checkpoint whose config keys the build function does not know
    path = save_checkpoint(tmp_path / "keys.pt", model, {"width": 16, "depth": 3})
    with pytest.raises(ValueError, match=r"build\(config\) failed on the config saved in .*keys.pt' "
                                         r"\(keys \['depth', 'width'\]\): TypeError"):
        load_checkpoint(path, lambda c: build_net(NetConfig(**c)))
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*missing.pt"):
        load_checkpoint(tmp_path / "missing.pt", lambda c: model)
    with pytest.raises(ValueError, match="it is not a file"):
        load_checkpoint(tmp_path, lambda c: model)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        load_checkpoint(3, lambda c: model)


# ------------------------------------------------------------------------------------------------------ DDP


def _load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", os.path.join(HERE, "ddp_worker.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ddp_on_two_cpu_ranks_averages_gradients(tmp_path):
    """Two Gloo ranks on different data end with identical weights: those of one process on both data sets."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.path.dirname(HERE)}
    env.pop("DIFFBOOK_DEVICE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    start = time.perf_counter()
    proc = subprocess.run(
        [*cmd, os.path.join(HERE, "ddp_worker.py"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=180
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["device"] == r1["device"] == "cpu"

    for k in r0["model"]:
        torch.testing.assert_close(r0["model"][k], r1["model"][k], rtol=0, atol=1e-7)
        assert torch.equal(r0["initial"][k], r1["initial"][k])
        assert not torch.equal(r0["model"][k], r0["initial"][k])
    assert r0["seed"] != r1["seed"]  # each rank got its own noise generator (seed + rank)

    w = _load_worker()
    settings = {**w.SETTINGS, "device": CPU, "progress": False}
    batch0, batch1 = w.data(0), w.data(1)
    alone = T.train(w.build(), w.loss_fn, lambda step: batch0, **settings).model.state_dict()
    both = tuple(torch.cat(pair) for pair in zip(batch0, batch1))  # equal halves: mean loss = mean of rank means
    union = T.train(w.build(), w.loss_fn, lambda step: both, **settings).model.state_dict()
    for k in alone:
        assert (r0["model"][k] - alone[k]).abs().max() > 1e-3  # rank 1's data mattered
        torch.testing.assert_close(r0["model"][k], union[k], rtol=0, atol=1e-5)

    ckpt = load_checkpoint(tmp_path / "ckpt.pt", lambda c: w.build())
    assert ckpt.config == {"rank": 0} and ckpt.step == w.STEPS  # rank 0 alone wrote it
    assert "6/6" in (tmp_path / "stderr0.txt").read_text()
    assert (tmp_path / "stderr1.txt").read_text() == ""  # no progress bar on rank 1
    assert elapsed < 120, f"torchrun with two ranks took {elapsed:.1f} s"  # ~6 s here, ~17 s on a GPU box


# ------------------------------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
def test_bf16_autocast_training_step_on_cuda():
    dtypes = []

    def loss_fn(model, batch, generator):
        x, y = batch
        out = model(x + 0.01 * torch.randn(x.shape, generator=generator, device=x.device))
        dtypes.append(out.dtype)
        return (out.float() - y).pow(2).mean(dim=1)

    res = run(loss_fn=loss_fn, device="cuda", steps=200, lr=1e-2)
    assert set(dtypes) == {torch.bfloat16}  # the forward pass ran under bf16 autocast
    assert all(p.dtype == torch.float32 and p.is_cuda for p in res.model.parameters())  # fp32 master weights
    assert res.losses.device == CPU and torch.isfinite(res.losses).all()
    assert res.losses[-20:].mean() < 0.05 * res.losses[:5].mean()
    assert next(res.ema.parameters()).is_cuda
    off = run(loss_fn=loss_fn, device="cuda", steps=2, amp=False)
    assert dtypes[-1] == torch.float32 and torch.isfinite(off.losses).all()


@pytest.mark.gpu
def test_compiled_training_on_cuda():
    res = run(device="cuda", steps=200, lr=1e-2, compile=True)
    assert isinstance(res.model, nn.Sequential)  # the plain network comes back, not the compiled wrapper
    assert torch.isfinite(res.losses).all()
    assert res.losses[-20:].mean() < 0.05 * res.losses[:5].mean()
    eager = run(device="cuda", steps=200, lr=1e-2)
    torch.testing.assert_close(res.losses, eager.losses, rtol=0.05, atol=1e-3)
