"""The LIF neuron against spikingjelly's MultiStepLIFNode formulas (tau=2, decay_input, v_reset=0,
hard reset, detach_reset, sigmoid surrogate alpha=4)."""

import math

import numpy as np
import pytest
import torch

from spikeforge.model.lif import MultiStepLIFNode


def spec_lif(x: np.ndarray, tau: float, vth: float) -> tuple[np.ndarray, np.ndarray]:
    """The formulas written out step by step in float64: spikes and membranes after reset."""
    v = np.zeros_like(x[0])
    spikes, mems = [], []
    for xt in x:
        h = v + (xt - v) / tau
        s = (h >= vth).astype(x.dtype)
        v = h * (1 - s)
        spikes.append(s)
        mems.append(v)
    return np.stack(spikes), np.stack(mems)


@pytest.mark.parametrize("tau,vth", [(2.0, 1.0), (2.0, 0.5), (4.0, 1.0)])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2, 7)])
def test_forward_matches_formulas(tau, vth, shape):
    rng = np.random.default_rng(1)
    # Dyadic inputs make every step exact in float32, so ties at the threshold are tested for real.
    x = rng.integers(-8, 24, size=shape).astype(np.float64) / 8
    expected, _ = spec_lif(x, tau, vth)
    got = MultiStepLIFNode(tau=tau, v_threshold=vth)(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32))


def test_hand_worked_sequence():
    # Constant input 1.5: H = 0.75 (no spike), H = 0.75 + 0.375 = 1.125 (spike, reset to 0), ...
    x = torch.full((4, 1), 1.5)
    assert MultiStepLIFNode()(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    # Exactly at threshold fires (H >= Vth): X = 2 gives H = 1.
    assert MultiStepLIFNode()(torch.tensor([[2.0]])).item() == 1.0
    # Just below does not.
    assert MultiStepLIFNode()(torch.tensor([[1.999]])).item() == 0.0
    # Hard reset: after a spike the membrane restarts from 0, so 2, 0.5 -> H = 0.25 (no spike).
    assert MultiStepLIFNode()(torch.tensor([[2.0], [1.5]])).flatten().tolist() == [1.0, 0.0]
    # Leak: 1.2 then 0 -> H = 0.6, then 0.3: the membrane decays toward 0.
    assert MultiStepLIFNode()(torch.tensor([[1.2], [0.0], [1.3]])).flatten().tolist() == [0.0, 0.0, 0.0]


def _sg(x, alpha=4.0):
    s = 1 / (1 + math.exp(-alpha * x))
    return alpha * s * (1 - s)


def test_surrogate_gradient_single_step():
    # T = 1, three neurons: dS/dX = sigmoid'(H - Vth) * dH/dX with H = X / tau.
    x = torch.tensor([[0.3, 1.0, 2.5]], requires_grad=True)
    MultiStepLIFNode()(x).sum().backward()
    expected = [_sg(v / 2 - 1.0) / 2 for v in (0.3, 1.0, 2.5)]
    np.testing.assert_allclose(x.grad.flatten().numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("x0", [2.4, 1.2])  # first step fires / does not fire
def test_detach_reset_gradient_through_time(x0):
    """dS1/dX0 = sg'(H1 - Vth) * dH1/dV0 * dV0/dX0 with dV0/dX0 = (1 - S0)/tau: the reset is detached."""
    x = torch.tensor([[x0], [0.9]], requires_grad=True)
    s = MultiStepLIFNode()(x)
    s[1].sum().backward()
    h0 = x0 / 2
    s0 = float(h0 >= 1.0)
    v0 = h0 * (1 - s0)
    h1 = v0 + (0.9 - v0) / 2
    expected_dx0 = _sg(h1 - 1.0) * 0.5 * (1 - s0) * 0.5
    expected_dx1 = _sg(h1 - 1.0) * 0.5
    np.testing.assert_allclose(x.grad.flatten().numpy(), [expected_dx0, expected_dx1], rtol=1e-6, atol=1e-12)


def test_no_state_between_calls():
    node = MultiStepLIFNode()
    x = torch.full((3, 4), 0.9)
    first = node(x)
    second = node(x)
    assert torch.equal(first, second)
    assert len(node.state_dict()) == 0


def test_rejects_bad_tau():
    with pytest.raises(ValueError, match="tau"):
        MultiStepLIFNode(tau=1.0)
