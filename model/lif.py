"""Multi-step leaky integrate-and-fire neurons (float, trainable).

Semantics are those of spikingjelly's
``MultiStepLIFNode(tau=2., decay_input=True, v_reset=0., detach_reset=True,
surrogate_function=Sigmoid(alpha=4.))``, the neuron every layer of the
Spike-driven Transformer uses, re-implemented here so that neither spikingjelly
nor cupy is needed.

For an input sequence ``X[t]`` (``t = 0 .. T-1``, time is the first dimension)
and membrane ``V[-1] = v_reset = 0``::

    H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau      # charge (decay_input)
    S[t] = Heaviside(H[t] - v_threshold)                   # fire: 1 where H >= Vth
    V[t] = H[t] * (1 - S[t]) + v_reset * S[t]               # hard reset

In the backward pass the Heaviside step takes the gradient of
``sigmoid(alpha * x)``, i.e. ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)``,
and the reset uses ``S.detach()`` (``detach_reset``), so no gradient flows
through the reset path.

The membrane is not kept between calls: every ``forward`` starts from
``v_reset``, so nothing leaks from one input batch to the next.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SigmoidSurrogate", "heaviside_sigmoid", "MultiStepLIFNode"]


class SigmoidSurrogate(torch.autograd.Function):
    """Heaviside step ``x >= 0`` forward; ``d/dx sigmoid(alpha * x)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad_output * ctx.alpha * s * (1.0 - s), None


def heaviside_sigmoid(x: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    """Spike function: ``(x >= 0)`` with the sigmoid surrogate gradient of slope ``alpha``."""
    return SigmoidSurrogate.apply(x, alpha)


class MultiStepLIFNode(nn.Module):
    """LIF neurons over a whole sequence ``[T, ...]`` (see the module docstring).

    Parameters
    ----------
    tau:
        Membrane time constant (2 in every layer of the Spike-driven Transformer).
    v_threshold:
        Firing threshold ``Vth`` (1.0; 0.5 for the SDSA attention neuron).
    v_reset:
        Reset potential and initial membrane (0).
    alpha:
        Slope of the sigmoid surrogate gradient (4).
    detach_reset:
        Whether the reset is excluded from the gradient (True, as in the reference).

    The module has no parameters and no buffers, so its ``state_dict`` is empty,
    as spikingjelly's is.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        alpha: float = 4.0,
        detach_reset: bool = True,
    ):
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"MultiStepLIFNode: tau must be > 1, got {tau}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = float(v_reset)
        self.alpha = float(alpha)
        self.detach_reset = bool(detach_reset)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
            f"alpha={self.alpha}, detach_reset={self.detach_reset}"
        )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Spikes ``S[t]`` (same shape and dtype as ``x_seq``, values 0/1)."""
        v = torch.full_like(x_seq[0], self.v_reset)
        spikes = []
        for x in x_seq:
            h = v + (x - (v - self.v_reset)) / self.tau
            s = heaviside_sigmoid(h - self.v_threshold, self.alpha)
            s_reset = s.detach() if self.detach_reset else s
            v = h * (1.0 - s_reset) + self.v_reset * s_reset
            spikes.append(s)
        return torch.stack(spikes)
