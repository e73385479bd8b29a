"""The closed forms in diffbook.foundations.flows are exact: they are what Chapter 1 checks its numerics against."""

import torch

from diffbook.foundations import flows

f64 = torch.float64
# inside radius ~1.5, where the backward flow exists for the times used below
X = torch.randn(64, 2, dtype=f64, generator=torch.Generator().manual_seed(1)) * 0.5


def test_limit_cycle_flow_solves_the_ode():
    u = flows.limit_cycle_field(0.7, 1.3)
    for t in (0.3, 1.0, -0.1):
        eps = 1e-6
        deriv = (flows.limit_cycle_flow(X, t + eps, 0.7, 1.3) - flows.limit_cycle_flow(X, t - eps, 0.7, 1.3)) / (2 * eps)
        assert torch.allclose(deriv, u(torch.tensor(t), flows.limit_cycle_flow(X, t, 0.7, 1.3)), atol=1e-7)
    assert torch.allclose(flows.limit_cycle_flow(X, 0.0), X)


def test_limit_cycle_flow_is_a_group():
    """psi_s o psi_t = psi_{s+t} (uniqueness of solutions), and psi_{-t} inverts psi_t."""
    assert torch.allclose(flows.limit_cycle_flow(flows.limit_cycle_flow(X, 0.4), 0.5), flows.limit_cycle_flow(X, 0.9))
    assert torch.allclose(flows.limit_cycle_flow(flows.limit_cycle_flow(X, 0.7), -0.7), X, atol=1e-12)


def test_limit_cycle_log_det_matches_autograd_jacobian():
    for x in X[:8]:
        jac = torch.autograd.functional.jacobian(lambda z: flows.limit_cycle_flow(z[None], 0.8, a=0.9)[0], x)
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, flows.limit_cycle_log_det(x[None], 0.8, a=0.9)[0])


def test_linear_flow_matches_matrix_exponential_series():
    A = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=f64)  # rotation by t
    t = 0.5
    rot = torch.tensor([[torch.cos(torch.tensor(t)), -torch.sin(torch.tensor(t))],
                        [torch.sin(torch.tensor(t)), torch.cos(torch.tensor(t))]], dtype=f64)
    assert torch.allclose(flows.linear_flow(A, X, t), X @ rot.T)
