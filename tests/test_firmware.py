"""The firmware compiler: program structure, weight-image layout against the quantized model,
capacity refusals that name the layer, files, disassembly."""

import json

import pytest
import torch

from spikeforge.firmware.compiler import (CapacityError, compile_model, hardware_for, load_program,
                                          memory_images, pixel_rows, save_compiled)
from spikeforge.firmware.program import FIELDS, KINDS, OPS, POSTS, Descriptor, HardwareConfig, unpack_program
from spikeforge.model.quantize import quantize
from spikeforge.model.train import calibrated_model


@pytest.fixture(scope="module")
def micro(digits):
    return quantize(calibrated_model("digits-micro", seed=1, data=digits), 8)


def test_program_walks_the_golden_order(qmodel8):
    c = compile_model(qmodel8, hardware_for(qmodel8))
    names = [d.name for d in c.program]
    assert names == ["sps.conv0", "sps.conv1", "sps.conv2", "sps.conv3", "sps.lif3", "sps.rpe",
                     "block.0.attn.shortcut_lif", "block.0.attn.qkv", "block.0.attn.sdsa", "block.0.attn.proj",
                     "block.0.mlp.fc1_lif", "block.0.mlp.fc1", "block.0.mlp.fc2", "head.gap_lif", "head", "end"]
    ops = {d.name: d for d in c.program}
    assert ops["sps.conv0"].kind == KINDS["pixel3x3"] and ops["sps.conv0"].repeat == 4
    assert ops["sps.conv3"].post == POSTS["U_MAXPOOL"] and ops["sps.rpe"].post == POSTS["U_ADD"]
    assert ops["head"].post == POSTS["LOGITS"] and ops["end"].op == OPS["END"]
    # weight shifts of the residual branches travel with their layers
    assert ops["block.0.attn.proj"].weight_shift == qmodel8.weight_shifts["block.0.attn.proj"]


@pytest.mark.parametrize("lanes", [4, 16, 32])
def test_weight_image_holds_the_model(qmodel8, lanes):
    """Every weight, bias and threshold sits where the hardware reads it: row weight_base + g *
    n_columns + column, lane o - g * P; column = tap * C_in + c for 3x3 layers."""
    c = compile_model(qmodel8, hardware_for(qmodel8, lanes=lanes))
    rows = dict(c.weights)
    biases = dict(c.biases)
    steps = {d.name: d for d in c.program}
    w = qmodel8.weights
    for name in ("sps.conv1", "sps.rpe", "block.0.mlp.fc2", "head"):
        d, wt = steps[name], w[f"{name}.weight"]
        for o in range(wt.shape[0]):
            g, lane = divmod(o, lanes)
            assert biases[d.bias_base + g][lane] == int(w[f"{name}.bias"][o])
            if wt.dim() == 4:
                for c_in in range(wt.shape[1]):
                    for dy in range(3):
                        for dx in range(3):
                            col = (dy * 3 + dx) * d.cin + c_in
                            assert rows[d.weight_base + g * d.n_columns + col][lane] == int(wt[o, c_in, dy, dx])
            else:
                assert [rows[d.weight_base + g * d.n_columns + j][lane] for j in range(wt.shape[1])] == wt[o].tolist()
    # Q, K, V: one step, output channels [Q | K | V] in whole groups
    d = steps["block.0.attn.qkv"]
    gc = -(-32 // lanes)
    for k, n in enumerate("qkv"):
        wt = w[f"block.0.attn.{n}.weight"]
        for o in (0, 31):
            g, lane = divmod(k * gc * lanes + o, lanes)
            assert [rows[d.weight_base + g * 32 + j][lane] for j in range(32)] == wt[o].tolist()
    th = dict(c.thresholds)
    d = steps["sps.conv2"]
    assert [th[d.th_base + o // lanes][o % lanes] for o in range(16)] == qmodel8.thresholds["sps.lif2"]


@pytest.mark.parametrize("override,match", [
    ({"max_channels": 64}, r"layer block\.0\.attn\.qkv: output channels 96 exceeds the hardware's max_channels = 64"),
    ({"max_embed": 16}, r"embedding channels 32 exceeds the hardware's max_embed = 16"),
    ({"max_steps": 2}, r"time steps 4 exceeds the hardware's max_steps = 2"),
    ({"weight_rows": 1000}, r"weight rows 1781 exceeds the hardware's weight_rows = 1000"),
    ({"max_height": 4}, r"layer sps\.conv0: image height 8 exceeds the hardware's max_height = 4"),
    ({"acc_bits": 12}, r"needs acc_bits of 14 exceeds the hardware's acc_bits = 12"),
    ({"max_3x3_channels": 16}, r"layer sps\.rpe: 3x3 input channels 32 exceeds the hardware's max_3x3_channels = 16"),
])
def test_a_model_that_does_not_fit_is_refused_by_name(qmodel8, override, match):
    hw = hardware_for(qmodel8)
    small = HardwareConfig(**{**hw.as_dict(), **override})
    with pytest.raises(CapacityError, match=match):
        compile_model(qmodel8, small)


def test_descriptor_fields_fit_the_hardware_widths(qmodel8, monkeypatch):
    """Every field of a compiled program fits the width the accelerator keeps (``field_bits``), with
    the extremes of the capacities; a field that would not fit is refused by layer and field."""
    from spikeforge.firmware import compiler, program

    hw = hardware_for(qmodel8)
    bits = program.field_bits(hw)
    assert set(bits) == set(FIELDS)
    widest = Descriptor(name="x", op=max(OPS.values()), kind=max(KINDS.values()), post=max(POSTS.values()),
                        height=hw.max_height, width=hw.max_width, steps=hw.max_steps, cin=hw.max_channels,
                        groups=hw.groups, weight_base=hw.weight_rows - 1, n_columns=hw.in_columns,
                        in_base=hw.spike_rows - 1, u_pos_stride=hw.u_rows, weight_shift=16,
                        cout=max(hw.max_channels, hw.max_classes), bias_base=hw.bias_rows - 1,
                        th_base=hw.threshold_rows - 1, out_base=hw.spike_rows - 1,
                        row_stride=hw.max_width * hw.max_steps, u_row_stride=hw.u_rows, out_height=hw.max_height,
                        out_width=hw.max_width, repeat=hw.max_steps, u_groups=hw.max_embed // hw.lanes)
    assert program.field_overflows(widest, hw) == []
    too_tall = Descriptor(name="x", height=1 << bits["height"])
    assert program.field_overflows(too_tall, hw) == [
        f"height = {1 << bits['height']} (needs {bits['height'] + 1} bits, the hardware keeps {bits['height']})"]
    assert program.field_overflows(Descriptor(name="x", weight_shift=17), hw) == [
        "weight_shift = 17 (the hardware takes at most 16)"]
    monkeypatch.setattr(program, "field_bits", lambda hw: {**bits, "height": 3})
    with pytest.raises(CapacityError, match=r"layer sps\.conv0: descriptor field height = 8 \(needs 4 bits, "
                                            r"the hardware keeps 3\)"):
        compiler.compile_model(qmodel8, hw)


def test_or_pools_become_pool_steps(qmodel8):
    qm = quantize(calibrated_model({**qmodel8.config, "pooling_stat": "1011"}, seed=0), 8)
    c = compile_model(qm, hardware_for(qm))
    steps = {d.name: d for d in c.program}
    assert [d.name for d in c.program][:6] == ["sps.conv0", "sps.pool0", "sps.conv1", "sps.conv2", "sps.pool2",
                                               "sps.conv3"]
    p0 = steps["sps.pool0"]
    assert p0.op == OPS["POOL_OR"] and (p0.height, p0.width, p0.out_height, p0.out_width) == (8, 8, 4, 4)
    # the pool reads what the conv wrote and writes what the next conv reads
    assert p0.in_base == steps["sps.conv0"].out_base and steps["sps.conv1"].in_base == p0.out_base != p0.in_base
    assert (steps["sps.conv1"].height, steps["sps.conv3"].height, steps["sps.rpe"].height) == (4, 2, 1)


def test_hardware_config_checks_its_fields():
    with pytest.raises(ValueError, match=r"HardwareConfig\.lanes: expected a positive integer, got 0"):
        HardwareConfig(lanes=0)
    with pytest.raises(ValueError, match=r"max_channels: must be a power of two"):
        HardwareConfig(max_channels=96)
    # spike-buffer words: a power of two, each a whole number of lane groups, wide enough for a pixel row
    assert HardwareConfig(lanes=16, max_channels=128, spike_row_words=8).spike_word_bits == 16
    for words in (3, 16):
        with pytest.raises(ValueError, match=rf"spike_row_words: must be a power of two .* got {words}"):
            HardwareConfig(lanes=16, max_channels=128, spike_row_words=words)
    with pytest.raises(ValueError, match=r"max_in_channels 3 x 8 bit-planes exceed the 16-bit chunk"):
        HardwareConfig(lanes=4, max_channels=128, max_in_channels=3, spike_row_words=8)
    # generation options are bools, not numbers that happen to be truthy
    for name in ("single_port_buffers", "profile_counters", "event_driven"):
        with pytest.raises(ValueError, match=rf"HardwareConfig\.{name}: expected a bool, got 1"):
            HardwareConfig(**{name: 1})


def test_overlay_config_covers_both_models(qmodel8, micro):
    hw = hardware_for([qmodel8, micro])
    for qm in (qmodel8, micro):
        c = compile_model(qm, hw)
        assert c.manifest["hardware_hash"] == hw.config_hash()
        for key, used in c.manifest["capacities_used"].items():
            assert used <= getattr(hw, key)
    assert hw.program_rows == len(compile_model(micro, hw).program) > len(compile_model(qmodel8, hw).program)
    assert hw.config_hash() != hardware_for(qmodel8).config_hash()


def test_files_round_trip_and_disassemble(qmodel8, tmp_path):
    c = compile_model(qmodel8, hardware_for(qmodel8))
    paths = save_compiled(c, tmp_path)
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["format_version"] == 1 and manifest["hardware"]["lanes"] == 16
    images = memory_images(c)
    for key, blob in images.items():
        assert manifest["files"][key]["bytes"] == len(blob) == paths[key].stat().st_size
    assert len(images["program"]) == 4 * len(FIELDS) * len(c.program)
    # weights.bin: row r, lane l at bits 8 * (16 * r + l) (16 lanes x 8 bits per row)
    wb = images["weights"]
    r, lanes = c.weights[100]
    assert [int.from_bytes(wb[16 * r + l:16 * r + l + 1], "little", signed=True) for l in range(16)] == lanes
    descs, m = load_program(paths["program"])
    assert [d.words() for d in descs] == [d.words() for d in c.program]
    assert [d.name for d in descs] == [d.name for d in c.program] and m["hardware_hash"] == c.manifest["hardware_hash"]


def test_program_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "program.bin"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"program\.bin: program image of 10 bytes"):
        load_program(bad)
    with pytest.raises(ValueError, match="no such program file"):
        load_program(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match=r"descriptor x: field cin = -1"):
        Descriptor(name="x", cin=-1).words()
    assert unpack_program(b"") == []


def test_pixel_rows_pack_plane_minor(qmodel8):
    hw = hardware_for(qmodel8)
    px = torch.arange(64).reshape(1, 8, 8) % 17
    rows = pixel_rows(hw, px)
    assert rows[9] == (9, 9) and rows[16] == (16, 16)
    with pytest.raises(ValueError, match=r"pixels must be in \[0, 31\], got \[0, 40\]"):
        pixel_rows(hw, px * 5 % 41)
