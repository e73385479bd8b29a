import subprocess
import sys

import pytest
import torch

from diffbook.device import Timer, autocast, pick_device, seed_everything


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


def test_import_has_no_side_effects():
    code = (
        "import sys, diffbook, diffbook.scale, diffbook.device, diffbook.ode, diffbook.exercises;"
        "bad = [m for m in ('matplotlib', 'ipywidgets', 'sympy') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing the math core pulled in {out}"


@pytest.mark.gpu
def test_autocast_uses_bf16_on_cuda():
    x = torch.randn(8, 8, device="cuda")
    with autocast("cuda"):
        y = x @ x
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), x @ x, rtol=2e-2, atol=2e-1)
