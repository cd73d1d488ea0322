"""MetaSpikeFormer (V2) against the original BICLab V2 code: keys and shapes, logits, firing rates, counts.

The expected values were recorded by running the reference implementation itself
(tests/fixtures/reference/README.md, section V2); nothing here is computed by our code first.
"""

import argparse

import pytest
import torch

from spikeforge.model import CONFIGS, MetaSpikeFormer, build_model, describe, load_checkpoint
from spikeforge.model.checkpoint import CheckpointError, read_checkpoint
from spikeforge.model.lif import MultiStepLIFNode
from spikeforge.model.meta_spikeformer import BNAndPadLayer

from conftest import REFERENCE

CASE_NAMES = ["rgb-64x48", "event-kd-40", "ckpt-tiny"]
V2_NAMES = ["metaspikformer-8-360", "metaspikformer-8-384", "metaspikformer-8-512", "metaspikformer-8-768"]


@pytest.fixture(scope="module")
def v2ref():
    return torch.load(REFERENCE / "sdtv2_reference.pt", weights_only=True)


def _case(v2ref, name):
    return next(c for c in v2ref["cases"] if c["name"] == name)


def _model(case):
    return MetaSpikeFormer(**case["config"], T=case["T"])


def _run(model, x):
    """Eval logits and the firing rate of every LIF, keyed by module name."""
    rates = {}
    hooks = [m.register_forward_hook(lambda mod, i, out, n=n: rates.__setitem__(n, float(out.float().mean())))
             for n, m in model.named_modules() if isinstance(m, MultiStepLIFNode)]
    with torch.no_grad():
        logits = model.eval()(x)
    for h in hooks:
        h.remove()
    return logits, rates


@pytest.mark.parametrize("name", CASE_NAMES)
def test_reference_state_dict_loads_strictly_and_gives_same_logits(v2ref, name):
    case = _case(v2ref, name)
    model = _model(case)
    ours = model.state_dict()
    assert list(ours) == list(case["state_dict"]), "key names or order differ from the reference"
    for key, value in case["state_dict"].items():
        assert ours[key].shape == value.shape, key
    model.load_state_dict(case["state_dict"], strict=True)
    logits, rates = _run(model, case["input"])
    assert logits.shape == case["logits"].shape
    torch.testing.assert_close(logits, case["logits"], rtol=0, atol=1e-5)
    assert rates.keys() == case["firing_rates"].keys()
    for key, rate in case["firing_rates"].items():
        assert rates[key] == pytest.approx(rate, abs=1e-7), key


def test_reference_cases_are_not_trivial(v2ref):
    """The logits would prove little if the spikes never moved them; the cases cover kd and 2 input channels."""
    for case in v2ref["cases"]:
        rates = case["firing_rates"]
        assert rates["lif"] > 0.05 and case["logits"].std() > 0.1, case["name"]
        assert sum(0.05 < r < 0.5 for r in rates.values()) >= 0.8 * len(rates), case["name"]
    assert _case(v2ref, "event-kd-40")["config"]["kd"] and _case(v2ref, "event-kd-40")["config"]["in_channels"] == 2


def test_kd_training_returns_both_heads(v2ref):
    case = _case(v2ref, "event-kd-40")
    model = _model(case)
    model.load_state_dict(case["state_dict"])
    with torch.no_grad():
        head, head_kd = model.train()(case["input"][:1])
    assert head.shape == head_kd.shape == (1, case["config"]["num_classes"]) and not torch.equal(head, head_kd)


@pytest.mark.parametrize("name", V2_NAMES)
def test_parameter_counts_equal_reference(v2ref, name):
    assert describe(name)["params"] == v2ref["param_counts"][name]


def test_kd_head_count_equals_reference(v2ref):
    assert describe({**CONFIGS["metaspikformer-8-384"], "kd": True})["params"] == v2ref["param_counts"]["metaspikformer-8-384-kd"]


@pytest.mark.parametrize("name,millions", [("metaspikformer-8-360", 15.11), ("metaspikformer-8-384", 31.33),
                                           ("metaspikformer-8-512", 55.35), ("metaspikformer-8-768", 123.74)])
def test_parameter_counts_equal_paper(name, millions):
    assert round(describe(name)["params"] / 1e6, 2) == millions


def test_state_dict_shapes_of_a_named_config(v2ref):
    expected = v2ref["state_dict_shapes"]["metaspikformer-8-384"]
    with torch.device("meta"):
        ours = build_model("metaspikformer-8-384").state_dict()
    assert list(ours) == list(expected)
    assert {k: list(v.shape) for k, v in ours.items()} == expected


def test_describe_reports_the_stages():
    info = describe("metaspikformer-8-512")
    assert info["arch"] == "meta-spikeformer" and info["T"] == 4 and info["tokens"] == 14 * 14
    assert info["stage_tokens"] == [112 * 112, 56 * 56, 28 * 28, 14 * 14, 14 * 14]
    assert info["embed_dim"] == [128, 256, 512, 640] and info["kd"] is False


def test_optional_layout_keywords():
    model = MetaSpikeFormer(img_size_h=8, img_size_w=8, in_channels=1, num_classes=10, embed_dim=[8, 8, 16, 16],
                            num_heads=2, block_counts=(1, 0, 1, 0, 2, 1), strides=(1, 1, 2, 1, 1), T=2)
    keys = model.state_dict()
    assert "ConvBlock1_2.0.conv1.weight" not in keys and "block3.1.mlp.fc2_bn.running_var" in keys
    assert "block3.2.mlp.fc2_bn.running_var" not in keys and "block4.1.mlp.fc2_bn.running_var" not in keys
    assert model.grids == [(8, 8), (8, 8), (4, 4), (4, 4), (4, 4)]
    assert model.eval()(torch.rand(3, 1, 8, 8)).shape == (3, 10)


# ----------------------------------------------------------------- BNAndPad
def test_bn_and_pad_border_is_bn_of_zero():
    torch.manual_seed(0)
    layer = BNAndPadLayer(pad_pixels=2, num_features=3).eval()
    with torch.no_grad():
        for t in (layer.bn.weight, layer.bn.bias, layer.bn.running_mean):
            t.copy_(torch.randn(3))
        layer.bn.running_var.copy_(torch.rand(3) + 0.5)
    x = torch.randn(2, 3, 4, 5)
    with torch.no_grad():
        out = layer(x)
    assert out.shape == (2, 3, 8, 9)
    bn = torch.nn.functional.batch_norm
    for c in range(3):   # brute force: every border pixel is the BN of a zero input, the interior is BN(x)
        with torch.no_grad():
            zero = bn(torch.zeros(1, 3, 1, 1), layer.bn.running_mean, layer.bn.running_var, layer.bn.weight,
                      layer.bn.bias, False, 0.0, layer.bn.eps)[0, c, 0, 0]
        for i in range(8):
            for j in range(9):
                if 2 <= i < 6 and 2 <= j < 7:
                    continue
                assert out[:, c, i, j].tolist() == pytest.approx([float(zero)] * 2, abs=1e-6), (c, i, j)
    with torch.no_grad():
        torch.testing.assert_close(out[:, :, 2:6, 2:7], layer.bn(x), rtol=0, atol=0)
    assert not torch.allclose(out[:, :, 0, 0], torch.zeros(2, 3))


def test_bn_and_pad_equals_padding_the_input_with_zero_before_bn():
    """Equivalent formulation: BN(zero-padded x) gives the same border and interior."""
    torch.manual_seed(1)
    layer = BNAndPadLayer(pad_pixels=1, num_features=4).eval()
    with torch.no_grad():
        layer.bn.bias.copy_(torch.randn(4))
        layer.bn.running_mean.copy_(torch.randn(4))
        x = torch.randn(1, 4, 3, 3)
        torch.testing.assert_close(layer(x), layer.bn(torch.nn.functional.pad(x, [1] * 4)), rtol=0, atol=1e-6)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,message", [
    (dict(embed_dim=[64, 128, 256]), r"embed_dim must be 4 integers >= 1, got \[64, 128, 256\]"),
    (dict(num_heads=[1, 2, 4]), r"num_heads must be a positive integer .*got \[1, 2, 4\]"),
    (dict(num_heads=7), r"num_heads 7 must divide embed_dim\[2\] = 384"),
    (dict(mlp_ratios=2), r"mlp_ratios must be 4 .*got 2"),
    (dict(depths=[6, 8, 6]), r"depths must be a positive integer .*got \[6, 8, 6\]"),
    (dict(block_counts=(1, 1, 6, 2)), r"block_counts must be 6 integers >= 0"),
    (dict(strides=(2, 2, 2, 2, 0)), r"strides must be 5 integers >= 1"),
    (dict(T=0), r"T must be a positive integer, got 0"),
])
def test_bad_config_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=r"MetaSpikeFormer: " + message):
        MetaSpikeFormer(**kwargs)


def test_unknown_keyword_and_reference_no_ops():
    with pytest.raises(TypeError, match="unexpected keyword argument 'embed_dims'"):
        MetaSpikeFormer(embed_dims=512)
    plain = MetaSpikeFormer(embed_dim=[8, 8, 16, 16], num_heads=2).state_dict()
    ignored = MetaSpikeFormer(embed_dim=[8, 8, 16, 16], num_heads=2, drop_path_rate=0.1, patch_size=16,
                              sr_ratios=[8, 4, 2], qkv_bias=False).state_dict()
    assert {k: v.shape for k, v in plain.items()} == {k: v.shape for k, v in ignored.items()}


def test_bad_input_shape_is_named():
    model = MetaSpikeFormer(embed_dim=[8, 8, 16, 16], num_heads=2, in_channels=2).eval()
    with pytest.raises(ValueError, match=r"input has 3 channels, the model expects 2"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"static batch \[B, C, H, W\].*got shape \(1, 4, 2, 16, 16\)"):
        model(torch.zeros(1, 4, 2, 16, 16))


# ----------------------------------------------------------------- checkpoints
@pytest.fixture
def ckpt_case(v2ref):
    return _case(v2ref, "ckpt-tiny")


def _ckpt_config(case):
    return {**case["config"], "T": case["T"]}


def test_reference_checkpoint_loads_without_arbitrary_pickle(ckpt_case):
    path = REFERENCE / ckpt_case["checkpoint_file"]
    with pytest.raises(Exception):  # proves the file really needs the allow-list (its args Namespace)
        torch.load(path, weights_only=True)
    state, config, kind = read_checkpoint(path)
    assert kind == "sdtv2" and config is None and list(state) == list(ckpt_case["state_dict"])
    model = load_checkpoint(path, _ckpt_config(ckpt_case))   # no "arch": a V2 file means MetaSpikeFormer
    assert isinstance(model, MetaSpikeFormer) and not model.training
    torch.testing.assert_close(_run(model, ckpt_case["input"])[0], ckpt_case["logits"], rtol=0, atol=1e-5)


def test_ddp_prefixed_reference_checkpoint(tmp_path, ckpt_case):
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(REFERENCE / ckpt_case["checkpoint_file"], weights_only=True)
    ckpt["model"] = {f"module.{k}": v for k, v in ckpt["model"].items()}
    torch.save(ckpt, tmp_path / "ddp.pth")
    model = load_checkpoint(tmp_path / "ddp.pth", **_ckpt_config(ckpt_case))
    torch.testing.assert_close(_run(model, ckpt_case["input"])[0], ckpt_case["logits"], rtol=0, atol=1e-5)


def test_our_checkpoint_of_a_v2_model_round_trips(tmp_path, ckpt_case):
    from spikeforge.model import save_checkpoint

    config = {"arch": "meta-spikeformer", **_ckpt_config(ckpt_case)}
    model = build_model(config)
    model.load_state_dict(ckpt_case["state_dict"])
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt", config))
    assert isinstance(loaded, MetaSpikeFormer)
    torch.testing.assert_close(_run(loaded, ckpt_case["input"])[0], ckpt_case["logits"], rtol=0, atol=1e-5)


def test_checkpoint_for_another_config_names_file_and_key(ckpt_case):
    path = REFERENCE / ckpt_case["checkpoint_file"]
    config = {**_ckpt_config(ckpt_case), "embed_dim": [4, 8, 8, 16]}
    with pytest.raises(CheckpointError, match=r"sdtv2_checkpoint\.pth: key 'downsample4\.encode_conv\.weight' has "
                                              r"shape \[8, 8, 3, 3\], the config expects \[16, 8, 3, 3\]"):
        load_checkpoint(path, config)
    with pytest.raises(CheckpointError, match=r"sdtv2_checkpoint\.pth: key 'head_kd\.weight' is missing"):
        load_checkpoint(path, {**_ckpt_config(ckpt_case), "kd": True})


def test_checkpoint_with_a_config_that_does_not_build(ckpt_case):
    path = REFERENCE / ckpt_case["checkpoint_file"]
    with pytest.raises(CheckpointError, match=r"sdtv2_checkpoint\.pth: unknown config 'metaspikformer-9-9'"):
        load_checkpoint(path, "metaspikformer-9-9")
    with pytest.raises(CheckpointError, match=r"sdtv2_checkpoint\.pth: the model config does not build a model: "
                                              r"MetaSpikeFormer: unexpected keyword argument 'embed_dims'"):
        load_checkpoint(path, "digits-tiny")   # a V1 config for a V2 file
    with pytest.raises(CheckpointError, match=r"unknown arch 'sdt3'"):
        load_checkpoint(path, {**_ckpt_config(ckpt_case), "arch": "sdt3"})


def test_info_json_for_a_v2_config(capsys):
    import json

    from spikeforge.host.cli import info

    assert info.run(argparse.Namespace(config="metaspikformer-8-768", json=True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == "metaspikformer-8-768" and out["params"] == 123_741_160 and out["T"] == 4
