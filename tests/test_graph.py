"""The layer graph: one description of a network, checked against the float model and by hand."""

import pytest
import torch

from spikeforge.firmware.compiler import compile_model, hardware_for, place_spike_maps
from spikeforge.model import build_model, get_config
from spikeforge.model.graph import PIXELS, U, Op, Shortcut, layer_graph
from spikeforge.model.quantize import quantize
from spikeforge.model.sdt import SpikeDrivenTransformer

CONFIGS = ["digits-tiny", "digits-small", "cifar10-2-256", "imagenet-8-384", "gesture-2-256"]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_synaptic_layer_is_a_module_of_the_float_model_with_its_shape(name):
    """The graph's sources are the reference's modules, and their weights have the graph's shapes."""
    cfg = get_config(name)
    if name.startswith("imagenet"):
        cfg = dict(cfg, img_size_h=32, img_size_w=32)   # the shapes do not depend on the image size
    model = build_model(cfg)
    graph = layer_graph(cfg)
    # every conv of the model is in the graph, once (but the reference's talking_heads, which its
    # forward never calls)
    convs = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear))
             and not n.endswith("talking_heads")]
    assert sorted(layer.source[0] for layer in graph.synaptic()) == sorted(convs)
    for layer in graph.synaptic():
        conv, bn = layer.source
        w = model.get_submodule(conv).weight
        shape = tuple(w.shape[:2]) if w.dim() == 4 and w.shape[2:] == (1, 1) else tuple(w.shape)
        assert shape == layer.weight_shape, layer.name
        if bn is not None:
            assert model.get_submodule(bn).num_features == layer.cout
    assert graph.tokens == SpikeDrivenTransformer.tokens_for(cfg["img_size_h"], cfg["img_size_w"], cfg["pooling_stat"])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_value_is_produced_before_it_is_read(name):
    graph = layer_graph(get_config(name))
    seen = {PIXELS}
    u_written = False
    for layer in graph:
        for src in layer.inputs:
            if src == U:
                assert u_written, layer.name
            else:
                assert src in seen, (layer.name, src)
        if layer.shortcut is not None:
            assert layer.shortcut is not Shortcut.ADD or u_written, layer.name
            u_written = True
        seen.add(layer.name)
    assert sum(layer.logits for layer in graph) == 1


def test_domains_of_sdt_v1_by_hand():
    """The scale domains of one encoder block, written out (the quantizer's per-channel / shared scales)."""
    graph = layer_graph(get_config("digits-tiny"))
    assert graph.domains() == {
        "sps.lif0": ["sps.conv0"], "sps.lif1": ["sps.conv1"], "sps.lif2": ["sps.conv2"],
        "u": ["sps.conv3", "sps.rpe", "block.0.attn.proj", "block.0.mlp.fc2"],
        "block.0.attn.q": ["block.0.attn.q"], "block.0.attn.k": ["block.0.attn.k"],
        "block.0.attn.v": ["block.0.attn.v"], "block.0.mlp.hidden": ["block.0.mlp.fc1"], "head": ["head"]}
    assert graph.residual_branches() == ["sps.conv3", "sps.rpe", "block.0.attn.proj", "block.0.mlp.fc2"]
    assert graph.threshold_channels() == {"sps.lif0": 4, "sps.lif1": 8, "sps.lif2": 16, "u": 32,
                                          "block.0.attn.q": 32, "block.0.attn.k": 32, "block.0.attn.v": 32,
                                          "block.0.mlp.hidden": 128, "head.lif": 32}
    assert [layer.group for layer in graph if layer.group] == ["block.0.attn.qkv"] * 3


def test_pools_shrink_the_maps_as_the_reference_does():
    cfg = dict(get_config("digits-tiny"), img_size_h=12, img_size_w=12, pooling_stat="1111")
    graph = layer_graph(cfg)
    maps = {layer.name: (layer.height, layer.width, layer.out_height, layer.out_width) for layer in graph}
    assert maps["sps.conv0"] == (12, 12, 12, 12)
    assert maps["sps.pool0"] == (12, 12, 6, 6)
    assert maps["sps.conv2"] == (3, 3, 3, 3)
    assert maps["sps.conv3"] == (2, 2, 1, 1)          # stage 4 max-pools the membrane into U
    assert graph.token_grid == (1, 1)
    assert [layer.op for layer in graph][:4] == [Op.PIXEL_CONV, Op.OR_POOL, Op.CONV3X3, Op.OR_POOL]


@pytest.mark.parametrize("stat,rows", [("0001", 2 * 12 * 12 * 4), ("1111", 12 * 12 * 4 + 6 * 6 * 4),
                                       ("0000", 2 * 12 * 12 * 4)])
def test_spike_maps_live_at_once_never_share_rows(stat, rows):
    """First-fit placement: maps whose lifetimes overlap get disjoint rows. The rows used, by hand:
    no pool before the tokens: two full maps (a stage's input and output; later, a block's input
    and Q|K|V); all pools: stage 0's map and its pooled copy."""
    cfg = dict(get_config("digits-tiny"), img_size_h=12, img_size_w=12, pooling_stat=stat)
    graph = layer_graph(cfg)
    base, used = place_spike_maps(graph)
    assert used == rows
    # a map (a group's: its first layer's) lives from its writer to its last reader
    owner = {layer.name: next(m.name for m in graph if m.group == layer.group) if layer.group else layer.name
             for layer in graph}
    span = {}
    for i, layer in enumerate(graph):
        for src in layer.inputs:
            if owner.get(src) in span:
                span[owner[src]][1] = i
        if layer.neurons is not None or layer.op is Op.OR_POOL:
            span.setdefault(owner[layer.name], [i, i])
    assert set(span) <= set(base)
    size = {n: graph.layer(n).out_height * graph.layer(n).out_width * graph.T for n in span}
    for x in span:
        for y in span:
            if x != y and span[x][0] <= span[y][1] and span[y][0] <= span[x][1]:
                assert base[x] + size[x] <= base[y] or base[y] + size[y] <= base[x], (x, y)


def test_a_pooled_model_compiles_with_fewer_spike_rows_than_two_full_maps():
    torch.manual_seed(0)
    cfg = dict(get_config("digits-tiny"), img_size_h=12, img_size_w=12, pooling_stat="1111")
    qm = quantize(build_model(cfg).eval(), 8)
    compiled = compile_model(qm, hardware_for(qm, 16))
    assert compiled.manifest["capacities_used"]["spike_rows"] == 12 * 12 * 4 + 6 * 6 * 4
    steps = {d.name: d for d in compiled.program}
    assert steps["sps.pool0"].in_base == steps["sps.conv0"].out_base
    assert steps["sps.conv1"].in_base == steps["sps.pool0"].out_base
    assert steps["head"].in_base == steps["head.gap_lif"].out_base
