"""Quantizer: BN folding, float-vs-integer agreement on real data, and the width analysis."""

import pytest
import torch

from spikeforge.model import build_model, get_config, golden, load_embedded
from spikeforge.model.quantize import QuantizationError, _fold, analyze_widths, quantize
from spikeforge.model.train import predict

# Stated tolerance (docs/arithmetic.md): at 8 bits the integer model loses at most 1 point of
# test accuracy and agrees with the float model on >= 97 % of the test images.
TOLERANCE = {8: (0.010, 0.97), 6: (0.015, 0.97), 4: (0.04, 0.94)}


def test_bn_folding_is_exact_in_float64():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    bn = torch.nn.BatchNorm2d(5).double()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w, b = _fold(conv, bn)
    folded = torch.nn.functional.conv2d(x, w, b, padding=1)
    torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def float_predictions(digits):
    return predict(load_embedded(), digits.test_pixels).argmax(1)


@pytest.mark.parametrize("w_bits", [8, 6, 4])
def test_integer_model_follows_float_model_on_digits(w_bits, digits, float_predictions):
    qm = quantize(load_embedded(), w_bits)
    weights = [t for n, t in qm.weights.items() if n.endswith(".weight")]
    lim = 2 ** (w_bits - 1)
    assert all(int(t.min()) >= -lim and int(t.max()) < lim for t in weights)
    int_pred = golden.forward(qm, digits.test_pixels).argmax(1)
    float_acc = (float_predictions == digits.test_labels).double().mean().item()
    int_acc = (int_pred == digits.test_labels).double().mean().item()
    agreement = (int_pred == float_predictions).double().mean().item()
    max_drop, min_agreement = TOLERANCE[w_bits]
    assert int_acc >= float_acc - max_drop, (w_bits, float_acc, int_acc)
    assert agreement >= min_agreement, (w_bits, agreement)


def test_residual_branches_share_one_scale(qmodel8):
    # Every branch into U lands on S_U: a branch with larger weights carries a weight shift instead.
    assert set(qmodel8.weight_shifts) <= {"sps.conv3", "sps.rpe", "block.0.attn.proj", "block.0.mlp.fc2"}
    assert isinstance(qmodel8.thresholds["u"], int)
    assert qmodel8.thresholds["head.lif"] == qmodel8.thresholds["u"] * 16


def test_widths_bound_real_activations(qmodel8, digits, monkeypatch):
    """Run the digits test split at exactly the analysed widths: nothing may overflow, and the
    analysis may not be absurdly loose either (the accumulators use a fair part of their range)."""
    seen = []
    real = golden.sparse_accumulate

    def spy(*args, **kw):
        out = real(*args, **kw)
        seen.append(max(abs(int(out.min())), abs(int(out.max()))))
        return out

    monkeypatch.setattr(golden, "sparse_accumulate", spy)
    golden.forward(qmodel8, digits.test_pixels)
    needed = analyze_widths(qmodel8)
    bound = max(max(abs(r["range"][0]), abs(r["range"][1])) for r in needed["acc_bits"].values())
    assert max(seen) <= bound and max(seen) > bound / 64


def test_too_narrow_width_is_refused_naming_the_layer(qmodel8):
    model = load_embedded()
    for field in ("acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"):
        need = qmodel8.widths[field]
        quantize(model, 8, widths={field: need})  # exactly enough is accepted
        with pytest.raises(QuantizationError, match=rf"layer \S+: {field}={need - 1} could overflow: .* needs {need} bits"):
            quantize(model, 8, widths={field: need - 1})


def test_bad_w_bits_and_unsupported_model():
    with pytest.raises(QuantizationError, match="w_bits must be in 2..16, got 1"):
        quantize(load_embedded(), 1)
    with pytest.raises(QuantizationError, match="mlp_ratios=1"):
        quantize(build_model({**get_config("digits-tiny"), "mlp_ratios": 1}), 8)
