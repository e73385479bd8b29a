"""Chapter 1's theorems about integrators, checked numerically (orders are measured, never assumed)."""

import pytest
import torch

from diffbook import ode
from diffbook.foundations import convergence, flows

f64 = torch.float64
U = flows.limit_cycle_field(1.0, 1.0)
X0 = torch.tensor([[0.6, 0.0], [0.2, 0.3], [-0.4, 0.9], [1.3, -0.5]], dtype=f64)


def measured_order(step, n_steps=(16, 32, 64, 128, 256), t1=1.0):
    hs, errs = convergence.global_errors(step, U, X0, 0.0, t1, lambda x: flows.limit_cycle_flow(x, t1), n_steps)
    return convergence.fit_order(hs, errs), errs


@pytest.mark.parametrize("step,order,tol", [(ode.euler_step, 1.0, 0.1), (ode.heun_step, 2.0, 0.1), (ode.rk4_step, 4.0, 0.2)])
def test_thm_orders_global(step, order, tol):
    """Theorem (orders of Euler and Heun): global error O(h) and O(h^2); RK4 O(h^4) as a reference."""
    p, errs = measured_order(step)
    assert abs(p - order) < tol, p
    assert (errs[1:] < errs[:-1]).all()


@pytest.mark.parametrize("step,order", [(ode.euler_step, 2.0), (ode.heun_step, 3.0)])
def test_misconception_local_error_is_one_order_higher(step, order):
    """Misconception "Euler errs by O(h) per step": the local error is O(h^2) (O(h^3) for Heun)."""
    hs = torch.tensor([0.016, 0.008, 0.004, 0.002, 0.001], dtype=f64)
    t0 = torch.tensor(0.0, dtype=f64)
    errs = [float((step(U, t0, X0, h) - flows.limit_cycle_flow(X0, float(h))).norm(dim=1).max()) for h in hs]
    p = convergence.fit_order(hs, errs)
    assert abs(p - order) < 0.15, p
    assert abs(p - (order - 1.0)) > 0.8  # the misconception's prediction is clearly rejected


def test_fit_order_recovers_a_power_law_and_rejects_bad_input():
    hs = torch.tensor([0.1, 0.05, 0.025])
    assert convergence.fit_order(hs, 3.0 * hs**2.5) == pytest.approx(2.5, abs=1e-6)
    with pytest.raises(ValueError, match="same length"):
        convergence.fit_order([0.1], [0.2])
    with pytest.raises(ValueError, match="positive"):
        convergence.fit_order([0.1, 0.05], [0.0, 1.0])


def test_linear_flow_and_backward_integration():
    A = torch.tensor([[-0.1, -1.0], [1.0, -0.1]], dtype=f64)
    u = flows.linear_field(A)
    ts = ode.time_grid(0.0, 2.0, 400)
    x1 = ode.integrate(u, X0, ts, step=ode.rk4_step)
    assert torch.allclose(x1, flows.linear_flow(A, X0, 2.0), atol=1e-10)
    back = ode.integrate(u, x1, ts.flip(0), step=ode.rk4_step)  # running time backwards undoes the flow
    assert torch.allclose(back, X0, atol=1e-10)


def test_keep_path_and_callback():
    ts = ode.time_grid(0.0, 1.0, 10)
    seen = []
    path = ode.integrate(U, X0, ts, keep_path=True, callback=lambda i, t, x: seen.append((i, float(t))))
    assert path.shape == (11, *X0.shape) and torch.equal(path[0], X0)
    assert [i for i, _ in seen] == list(range(1, 11)) and seen[-1][1] == pytest.approx(1.0)


def test_divergence_matches_closed_forms():
    x = torch.randn(50, 2, dtype=f64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(0.0, dtype=f64)
    r2 = (x**2).sum(1)
    assert torch.allclose(ode.divergence(flows.limit_cycle_field(0.7, 2.0), t, x), 0.7 * (2 - 4 * r2), atol=1e-12)
    A = torch.tensor([[0.3, 2.0], [-1.0, -0.8]], dtype=f64)
    assert torch.allclose(ode.divergence(flows.linear_field(A), t, x), torch.full((50,), -0.5, dtype=f64))


def test_thm_change_of_variables_exact():
    """Theorem (instantaneous change of variables) against the exact Jacobian of the limit-cycle flow."""
    p0 = torch.distributions.MultivariateNormal(torch.tensor([0.6, 0.0], dtype=f64), 0.35**2 * torch.eye(2, dtype=f64))
    x = p0.sample((200,))
    exact = p0.log_prob(x) - flows.limit_cycle_log_det(x, 1.0)
    errs = []
    for n in (50, 100, 200):
        xT, logp = ode.transport(U, x, ode.time_grid(0.0, 1.0, n), p0.log_prob)
        errs.append(float((logp - exact).abs().max()))
    assert errs[-1] < 5e-5
    assert abs(convergence.fit_order([1 / 50, 1 / 100, 1 / 200], errs) - 2.0) < 0.15
    # and backwards: the density at the moved points, evaluated from scratch, converges to it as well
    # (backwards the flow expands the compressed ring, so the error constant is larger than forwards)
    back = []
    for n in (100, 200, 400):
        logq = ode.log_density_at(U, flows.limit_cycle_flow(x, 1.0), ode.time_grid(0.0, 1.0, n), p0.log_prob)
        back.append(float((logq - exact).abs().max()))
    assert back[-1] < 5e-4
    assert abs(convergence.fit_order([1 / 100, 1 / 200, 1 / 400], back) - 2.0) < 0.15


def test_log_density_is_minus_infinity_where_the_flow_does_not_reach():
    """Backwards, the limit-cycle field blows up outside r = 1/sqrt(1 - e^{-2T}); p_T is 0 there."""
    p0 = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=f64), torch.eye(2, dtype=f64))
    r_max = (1.0 / (1.0 - torch.exp(torch.tensor(-2.0)))) ** 0.5
    pts = torch.tensor([[float(r_max) * 1.1, 0.0], [0.5, 0.0]], dtype=f64)
    logp = ode.log_density_at(U, pts, ode.time_grid(0.0, 1.0, 200), p0.log_prob)
    assert logp[0] == float("-inf") and torch.isfinite(logp[1])


def test_bad_input_is_named():
    ts = ode.time_grid(0.0, 1.0, 4)
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        ode.integrate(U, torch.ones(3, 2, dtype=torch.long), ts)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        ode.integrate(U, [[0.0, 1.0]], ts)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        ode.integrate(U, X0, torch.tensor([0.0, 0.5, 0.2], dtype=f64))
    with pytest.raises(ValueError, match="1-D tensor of at least 2 times"):
        ode.integrate(U, X0, torch.tensor([0.0], dtype=f64))
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        ode.time_grid(0.0, 1.0, 0)
    with pytest.raises(ValueError, match="x must have shape"):
        ode.divergence(U, torch.tensor(0.0), torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        flows.limit_cycle_flow(torch.zeros(3, 3, dtype=f64), 1.0)
