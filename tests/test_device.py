
import pytest
import torch

from diffbook.device import Timer, autocast, check_device, pick_device, seed_everything


def test_pick_device_cpu_and_override(monkeypatch):
    monkeypatch.delenv("DIFFBOOK_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("DIFFBOOK_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_pick_device_rejects_bad_input():
    with pytest.raises(ValueError, match="prefer='banana' is not a device string"):
        pick_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_a_clear_value_error_everywhere(monkeypatch):
    """Catches torch's ``AssertionError: Torch not compiled with CUDA enabled`` (and a RuntimeError from
    ``torch.Generator("cuda")``): every function that takes a device says which argument and why."""
    calls = [
        (lambda: pick_device("cuda"), "prefer='cuda'"),
        (lambda: pick_device(torch.device("cuda", 0)), "prefer='cuda:0'"),
        (lambda: check_device("cuda:1", "where"), "where='cuda:1'"),
        (lambda: seed_everything(0, device="cuda"), "device='cuda'"),
        (lambda: Timer("cuda"), "device='cuda'"),
        (lambda: autocast("cuda"), "device='cuda'"),
    ]
    for call, words in calls:
        with pytest.raises(ValueError, match=rf"{words} but CUDA is not available on this machine"):
            call()
    monkeypatch.setenv("DIFFBOOK_DEVICE", "cuda")
    with pytest.raises(ValueError, match="DIFFBOOK_DEVICE='cuda' but CUDA is not available"):
        pick_device()


def test_device_arguments_of_the_wrong_type_are_type_errors():
    for bad in (0.5, True, ["cpu"]):
        with pytest.raises(TypeError, match="prefer must be a device string"):
            pick_device(bad)
        with pytest.raises(TypeError, match="device must be a device string"):
            seed_everything(0, device=bad)
    with pytest.raises(ValueError, match="device='gpu' is not a device string"):
        Timer("gpu")
    with pytest.raises(TypeError, match="enabled must be a bool"):
        autocast("cpu", enabled="yes")
    assert check_device(torch.device("cpu")) == torch.device("cpu") == check_device("cpu")


def test_seed_everything_is_reproducible():
    a = torch.randn(5, generator=seed_everything(7))
    b = torch.randn(5, generator=seed_everything(7))
    c = torch.randn(5, generator=seed_everything(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(1.5)  # type: ignore[arg-type]


def test_autocast_is_a_no_op_on_cpu():
    x = torch.randn(4, 4)
    with autocast("cpu"):
        y = x @ x
    assert y.dtype == torch.float32


def test_timer_measures_elapsed_time():
    with Timer() as t:
        sum(range(10_000))
    assert 0.0 <= t.seconds < 5.0


@pytest.mark.gpu
def test_autocast_uses_bf16_on_cuda():
    x = torch.randn(8, 8, device="cuda")
    with autocast("cuda"):
        y = x @ x
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), x @ x, rtol=2e-2, atol=2e-1)
