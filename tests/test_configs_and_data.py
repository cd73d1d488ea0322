"""Named configs and the digits split."""

import pytest
import torch

from spikeforge.model import CONFIGS, build_model, describe, get_config, load_embedded
from spikeforge.model.data import PIXEL_MAX, load_digits_split, normalize_pixels


def test_digits_configs_are_small():
    tiny = describe("digits-tiny")
    assert tiny["params"] <= 30_000 and tiny["tokens"] == 16 and tiny["T"] == 4
    assert describe("digits-small")["params"] > tiny["params"]


@pytest.mark.parametrize("name,tokens", [("imagenet-8-384", 196), ("cifar10-2-256", 64), ("gesture-2-256", 256)])
def test_tokens(name, tokens):
    assert describe(name)["tokens"] == tokens


def test_unknown_config_lists_known():
    with pytest.raises(KeyError, match="known configs: imagenet-8-384"):
        get_config("imagenet-9-999")


def test_unsupported_reference_options_are_refused():
    with pytest.raises(ValueError, match="spike_mode='plif' is not supported"):
        build_model({**CONFIGS["digits-tiny"], "spike_mode": "plif"})
    with pytest.raises(TypeError, match="unexpected keyword argument 'embed_dim'"):
        build_model({**CONFIGS["digits-tiny"], "embed_dim": 3})


def test_bad_input_shape_is_named():
    model = build_model("digits-tiny")
    with pytest.raises(ValueError, match=r"input has 3 channels, the model expects 1"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got shape \(8, 8\)"):
        model(torch.zeros(8, 8))


def test_digits_split_is_fixed_and_stratified(digits):
    assert len(digits.train_labels) == 1437 and len(digits.test_labels) == 360
    assert digits.train_pixels.shape[1:] == (1, 8, 8) and digits.train_pixels.dtype == torch.uint8
    assert int(digits.train_pixels.max()) == PIXEL_MAX and int(digits.test_pixels.min()) == 0
    counts = torch.bincount(digits.test_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    again = load_digits_split()
    assert torch.equal(again.test_pixels, digits.test_pixels) and torch.equal(again.test_labels, digits.test_labels)


def test_state_does_not_leak_across_forwards(digits):
    model = load_embedded()
    a, b = normalize_pixels(digits.test_pixels[:2]).split(1)
    with torch.no_grad():
        fresh_b = model(b)
        assert not torch.equal(model(a), fresh_b)  # different images really give different outputs
        assert torch.equal(model(b), fresh_b)
