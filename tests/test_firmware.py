"""The firmware compiler: program structure, weight-image layout against the quantized model,
capacity refusals that name the layer, files, disassembly."""

import dataclasses
import hashlib
import json

import pytest
import torch

from spikeforge.firmware import compiler as compiler_module
from spikeforge.firmware.compiler import (CapacityError, CompiledFolderError, compile_model, hardware_for,
                                          load_manifest, load_program, memory_images, pixel_rows, save_compiled)
from spikeforge.firmware.program import (FIELDS, HARDWARE_LIMITS, KINDS, OPS, POSTS, Descriptor, HardwareConfig,
                                         pack_program, unpack_program)
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


# ------------------------------------------------------------------------------ bad input (issue: no tracebacks)

@pytest.mark.parametrize("lanes", [3, 6, 48, 128, 1000])
def test_lanes_outside_the_hardware_range_are_refused_by_name(lanes):
    """P is a power of two in 1..64 (it divides max_channels, a power of two); the message names
    lanes, whatever the derived fields say."""
    with pytest.raises(ValueError, match=rf"HardwareConfig\.lanes: expected a power of two in 1\.\.64, got {lanes}$"):
        HardwareConfig(lanes=lanes, max_channels=256, max_embed=256)
    for ok in (1, 2, 64):
        assert HardwareConfig(lanes=ok, max_channels=128, max_embed=64).groups == 128 // ok


@pytest.mark.parametrize("name,value", [("weight_bits", 64), ("v_bits", 1 << 40), ("pixel_bits", 64),
                                        ("weight_rows", 1 << 30), ("spike_rows", 1 << 40), ("program_rows", 1 << 21),
                                        ("max_channels", 1 << 13), ("max_height", 1 << 11), ("max_steps", 1000),
                                        ("max_classes", 1 << 20), ("max_3x3_channels", 1 << 20),
                                        ("max_in_channels", 1 << 20), ("spike_row_words", 1 << 20)])
def test_every_integer_field_has_an_upper_bound(name, value):
    limit = HARDWARE_LIMITS[name]
    assert value > limit
    with pytest.raises(ValueError, match=rf"HardwareConfig\.{name}: expected at most {limit} .*, got {value}$"):
        HardwareConfig(**{name: value})
    ints = [f for f in HardwareConfig().as_dict() if f not in HardwareConfig.bool_fields()]
    assert sorted(HARDWARE_LIMITS) == sorted(ints)
    # at the limit is accepted (the widths, and a memory's depth)
    assert HardwareConfig(weight_bits=HARDWARE_LIMITS["weight_bits"]).weight_bits == 63
    assert HardwareConfig(weight_rows=HARDWARE_LIMITS["weight_rows"]).weight_rows == HARDWARE_LIMITS["weight_rows"]


def test_from_dict_needs_every_field_of_a_dict():
    d = HardwareConfig().as_dict()
    assert HardwareConfig.from_dict(d) == HardwareConfig()
    partial = {k: v for k, v in d.items() if k not in ("max_steps", "weight_rows")}
    with pytest.raises(ValueError, match=r"HardwareConfig: missing field\(s\) max_steps, weight_rows"):
        HardwareConfig.from_dict(partial)
    for bad in ([1], "lanes", None, 5):
        with pytest.raises(ValueError, match=rf"HardwareConfig: expected a dict of fields, got {type(bad).__name__}"):
            HardwareConfig.from_dict(bad)
    with pytest.raises(ValueError, match=r"unknown field\(s\) speed"):
        HardwareConfig.from_dict({**d, "speed": 1})
    assert HardwareConfig(lanes=8).max_channels == 128      # constructing directly keeps the defaults


@pytest.mark.parametrize("lanes", [0, -16, 3, 128, "16", 16.0, True])
def test_hardware_for_checks_lanes_first(qmodel8, lanes):
    with pytest.raises(ValueError, match=rf"hardware_for: lanes: expected a power of two in 1\.\.64, got {lanes!r}"):
        hardware_for(qmodel8, lanes=lanes)


def test_hardware_for_refuses_unknown_overrides(qmodel8):
    with pytest.raises(ValueError, match=r"hardware_for: unknown HardwareConfig field\(s\) speed"):
        hardware_for(qmodel8, speed=3)


def _with(qm, thresholds=None, biases=None, widths=None):
    w = dict(qm.weights)
    for name, (index, value) in (biases or {}).items():
        b = w[f"{name}.bias"].clone()
        b[index] = value
        w[f"{name}.bias"] = b
    return dataclasses.replace(qm, weights=w, thresholds={**qm.thresholds, **(thresholds or {})},
                               widths={**qm.widths, **(widths or {})})


def test_thresholds_and_biases_that_do_not_fit_are_refused_by_layer(qmodel8):
    hw = hardware_for(qmodel8)
    huge = _with(qmodel8, thresholds={"sps.lif1": 2 ** 62})
    match = r"layer sps\.conv1: thresholds span \[\d+, 4611686018427387904\], which does not fit v_bits = 20"
    with pytest.raises(CapacityError, match=match):
        compile_model(huge, hw)
    with pytest.raises(CapacityError, match=match):
        hardware_for(huge)
    per_channel = _with(qmodel8, thresholds={"block.0.attn.k": [-(2 ** 40)] + qmodel8.thresholds["block.0.attn.k"][1:]})
    with pytest.raises(CapacityError, match=r"layer block\.0\.attn\.qkv: thresholds span \[-1099511627776, "):
        compile_model(per_channel, hw)
    shared = _with(qmodel8, thresholds={"u": 2 ** 30})
    with pytest.raises(CapacityError, match=r"layer sps\.lif3: thresholds span \[1073741824, 1073741824\]"):
        compile_model(shared, hw)
    bias = _with(qmodel8, biases={"sps.rpe": (0, 2 ** 40)})
    with pytest.raises(CapacityError, match=r"layer sps\.rpe: biases span \[-?\d+, 1099511627776\], which does not "
                                            r"fit acc_bits = 14"):
        hardware_for(bias)
    with pytest.raises(CapacityError, match=r"layer head: biases span \[-32768, "):
        compile_model(_with(qmodel8, biases={"head": (1, -(2 ** 15))}), hw)


def test_widths_and_capacities_beyond_the_hardware_limits_are_capacity_errors(qmodel8):
    with pytest.raises(CapacityError, match=r"model: needs v_bits of 64, above the largest the hardware can be "
                                            r"generated with \(63\)"):
        hardware_for(_with(qmodel8, widths={"v_bits": 64}))
    big = _with(qmodel8)
    big.config = {**qmodel8.config, "T": 1000}
    with pytest.raises(CapacityError, match=r"model: needs max_steps of 1000, above the largest"):
        hardware_for(big)


# ------------------------------------------------------------------------------ compiled folders

@pytest.fixture(scope="module")
def compiled8(qmodel8):
    return compile_model(qmodel8, hardware_for(qmodel8))


@pytest.fixture
def folder(compiled8, tmp_path):
    save_compiled(compiled8, tmp_path)
    return tmp_path


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, m):
    (folder / "manifest.json").write_text(m if isinstance(m, str) and m.startswith("{") else json.dumps(m))


def _rewrite_program(folder, descs, names=None):
    """Replace program.bin with ``descs`` and keep the manifest consistent with it (sizes, hash, names)."""
    blob = pack_program(descs)
    (folder / "program.bin").write_bytes(blob)
    m = _manifest(folder)
    m["files"]["program"].update(bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    m["layers"] = names if names is not None else [d.name for d in descs]
    m["capacities_used"]["program_rows"] = len(descs)
    _write_manifest(folder, m)


def test_load_manifest_reads_what_save_compiled_writes(folder):
    assert "load_manifest" in compiler_module.__all__ and "CompiledFolderError" in compiler_module.__all__
    assert issubclass(CompiledFolderError, ValueError)
    m = load_manifest(folder)
    assert m == _manifest(folder) == load_manifest(folder / "manifest.json") == load_manifest(str(folder))
    descs, m2 = load_program(folder / "program.bin")
    assert m2 == m and descs[-1].op == OPS["END"]


def test_a_cut_program_is_refused(folder):
    """Cutting the first descriptor off program.bin used to load, every step under the next one's name."""
    blob = (folder / "program.bin").read_bytes()
    (folder / "program.bin").write_bytes(blob[4 * len(FIELDS):])
    with pytest.raises(CompiledFolderError, match=rf"program\.bin: bytes: expected {len(blob)}, got "
                                                  rf"{len(blob) - 4 * len(FIELDS)}"):
        load_program(folder / "program.bin")


def test_a_program_without_a_manifest_is_still_checked(folder, tmp_path):
    """Without a manifest there are no names or hardware, but the codes and END are still checked."""
    blob = (folder / "program.bin").read_bytes()
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "program.bin").write_bytes(blob)
    descs, manifest = load_program(alone / "program.bin")
    assert manifest is None and descs[-1].op == OPS["END"]
    (alone / "program.bin").write_bytes(blob[:-4 * len(FIELDS)])            # END cut off
    with pytest.raises(CompiledFolderError, match=r"expected the last step to be END"):
        load_program(alone / "program.bin")
    (alone / "program.bin").write_bytes((99).to_bytes(4, "little") + blob[4:])   # op 99
    with pytest.raises(CompiledFolderError, match=r"step 0 .*op: expected one of 0\.\.5, got 99"):
        load_program(alone / "program.bin")


def test_a_deeply_nested_manifest_is_refused(folder):
    (folder / "manifest.json").write_text("[" * 100_000)
    with pytest.raises(CompiledFolderError, match="nested too deeply"):
        load_manifest(folder)


@pytest.mark.parametrize("image", ["program.bin", "weights.bin", "thresholds.bin"])
def test_a_changed_or_missing_image_is_refused_by_name(folder, image):
    path = folder / image
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(CompiledFolderError, match=rf"{image}: sha256: expected [0-9a-f]{{64}}, got [0-9a-f]{{64}}"):
        load_manifest(folder)
    with pytest.raises(CompiledFolderError, match=rf"{image}: sha256"):
        load_program(folder / "program.bin")
    path.unlink()
    with pytest.raises(CompiledFolderError, match=rf"{image}: missing \(listed in .*manifest\.json\)"):
        load_manifest(folder)


def _set(path, value):
    def edit(m):
        *keys, last = path
        for k in keys:
            m = m[k]
        if value is KeyError:
            del m[last]
        else:
            m[last] = value
    return edit


@pytest.mark.parametrize("edit,match", [
    (lambda m: [], r"manifest\.json: expected a JSON object, got list"),
    (lambda m: "str", r"manifest\.json: expected a JSON object, got str"),
    (lambda m: "{not json", r"manifest\.json: not valid JSON"),
    (_set(["hardware"], [1]), r"manifest\.json: hardware: expected an object of HardwareConfig fields, got list"),
    (_set(["hardware", "max_steps"], KeyError), r"manifest\.json: hardware: .*missing field\(s\) max_steps"),
    (_set(["hardware", "lanes"], 128), r"manifest\.json: hardware: .*lanes: expected a power of two in 1\.\.64"),
    (_set(["hardware_hash"], "0" * 64), r"manifest\.json: hardware_hash: expected [0-9a-f]{64} \(the hash of "
                                        r"hardware\), got '0{64}'"),
    (_set(["layers"], 5), r"manifest\.json: layers: expected a list of step names, got 5"),
    (_set(["layers"], ["a", 3]), r"manifest\.json: layers: expected a list of step names"),
    (_set(["format_version"], 2), r"manifest\.json: format_version: expected 1, got 2"),
    (_set(["format_version"], KeyError), r"manifest\.json: missing field\(s\) format_version"),
    (_set(["files"], [1]), r"manifest\.json: files: expected an object"),
    (_set(["files", "weights"], KeyError), r"manifest\.json: files: missing weights"),
    (_set(["files", "weights", "sha256"], KeyError), r"manifest\.json: files\.weights: expected an object with "
                                                     r"file, bytes, sha256"),
    (_set(["files", "weights", "file"], "../weights.bin"), r"files\.weights\.file: expected 'weights\.bin', got "
                                                           r"'\.\./weights\.bin'"),
    (_set(["files", "weights", "bytes"], -1), r"files\.weights\.bytes: expected a non-negative integer, got -1"),
    (_set(["files", "weights", "sha256"], "xyz"), r"files\.weights\.sha256: expected 64 hex digits, got 'xyz'"),
    (_set(["capacities_used", "weight_rows"], 1 << 20), r"capacities_used\.weight_rows: expected at most"),
    (_set(["pixel_max"], 0), r"manifest\.json: pixel_max: expected a positive integer, got 0"),
    (_set(["model"], []), r"manifest\.json: model: expected an object \(the model's config\), got \[\]"),
    (_set(["domains"], "u"), r"manifest\.json: domains: expected a list of LIF domain names, got 'u'"),
    (lambda m: {**m, "layers": m["layers"][1:]}, r"manifest\.json: layers: expected 16 step names \(one per "
                                                 r"descriptor of program\.bin, \d+ bytes\), got 15"),
])
def test_a_manifest_of_the_wrong_shape_is_refused(folder, edit, match):
    m = _manifest(folder)
    out = edit(m)
    _write_manifest(folder, m if out is None else out)
    with pytest.raises(CompiledFolderError, match=match):
        load_manifest(folder)
    with pytest.raises(CompiledFolderError, match=match):
        load_program(folder / "program.bin")


def test_the_program_is_checked_against_its_manifest(folder, compiled8):
    descs = list(compiled8.program)
    _rewrite_program(folder, descs[:-1])            # no END: the sequencer would run off the program
    with pytest.raises(CompiledFolderError, match=r"program\.bin: step 14 \(head\): expected the last step to be "
                                                  r"END, got CONV"):
        load_program(folder / "program.bin")
    _rewrite_program(folder, descs[:3] + [descs[-1]] + descs[4:])     # an END in the middle
    with pytest.raises(CompiledFolderError, match=r"program\.bin: step 3 \(end\): END before the last step"):
        load_program(folder / "program.bin")
    tall = dataclasses.replace(descs[1], height=1 << 20)
    _rewrite_program(folder, [descs[0], tall] + descs[2:])
    with pytest.raises(CompiledFolderError, match=r"program\.bin: step 1 \(sps\.conv1\): height = 1048576 \(needs 21 "
                                                  r"bits, the hardware keeps 4\)"):
        load_program(folder / "program.bin")
    odd = dataclasses.replace(descs[1], op=7)
    _rewrite_program(folder, [descs[0], odd] + descs[2:])
    with pytest.raises(CompiledFolderError, match=r"program\.bin: step 1 \(sps\.conv1\): op: expected one of 0\.\.5, "
                                                  r"got 7"):
        load_program(folder / "program.bin")


def test_a_program_beside_a_build_manifest_is_refused(folder, compiled8):
    hw = compiled8.hardware
    _write_manifest(folder, {"board": "x", "link": "stream", "clock_hz": 50_000_000, "baud": 0,
                             "hardware": hw.as_dict(), "hardware_hash": hw.config_hash()})
    with pytest.raises(CompiledFolderError, match=r"manifest\.json: a `spikeforge build` manifest \(no layers\), "
                                                  r"not a compiled model's"):
        load_program(folder / "program.bin")


def _build_manifest(hw, **kw):
    return {"board": "icebreaker", "device": "iCE40UP5K", "family": "ice40", "link": "uart", "clock_hz": 24_000_000,
            "baud": 3_000_000, "uart_divisor": 8, "pll": None, "hardware": hw.as_dict(),
            "hardware_hash": hw.config_hash(), "hello": "00", **kw}


@pytest.mark.parametrize("change,match", [
    ({}, None),
    ({"link": "stream", "baud": 0, "uart_divisor": None}, None),
    ({"link": "stream", "baud": None, "uart_divisor": None}, None),
    ({"link": "stream", "baud": 0, "uart_divisor": 8}, r"uart_divisor: expected none \(null\) on a stream link, got 8"),
    ({"format_version": 1}, None),
    ({"baud": 0}, r"manifest\.json: baud: expected an integer in 1\.\.4294967295, got 0"),
    ({"baud": -9600}, r"baud: expected an integer in 1\.\.4294967295, got -9600"),
    ({"baud": "3000000"}, r"baud: expected an integer in 1\.\.4294967295, got '3000000'"),
    ({"baud": None}, r"baud: expected an integer in 1\.\.4294967295, got None"),
    ({"link": "stream", "baud": 9600}, r"baud: expected 0 or null \(a stream link has no UART\), got 9600"),
    ({"clock_hz": 0}, r"clock_hz: expected an integer in 1\.\.4294967295, got 0"),
    ({"clock_hz": 1 << 32}, r"clock_hz: expected an integer in 1\.\.4294967295, got 4294967296"),
    ({"clock_hz": 24e6}, r"clock_hz: expected an integer in 1\.\.4294967295, got 24000000\.0"),
    ({"link": "spi"}, r"link: expected one of uart, stream, got 'spi'"),
    ({"clock_hz": KeyError}, r"manifest\.json: missing field\(s\) clock_hz \(of a `spikeforge build` manifest\)"),
    ({"baud": 12_000_000}, r"manifest\.json: baud: UART: 12000000 baud needs at least 4 clock cycles per bit"),
    ({"uart_divisor": 9}, r"uart_divisor: expected 8 \(24000000 Hz / 3000000 baud\), got 9"),
    ({"format_version": 0}, r"format_version: expected 1, got 0"),
    ({"hardware_hash": "ab"}, r"hardware_hash: expected [0-9a-f]{64}"),
])
def test_load_manifest_reads_build_manifests(tmp_path, change, match):
    hw = HardwareConfig()
    m = {k: v for k, v in _build_manifest(hw, **change).items() if v is not KeyError}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    if match is None:
        assert load_manifest(tmp_path) == m
    else:
        with pytest.raises(CompiledFolderError, match=match):
            load_manifest(tmp_path)


def test_load_manifest_names_a_missing_manifest(tmp_path):
    with pytest.raises(CompiledFolderError, match=r"manifest\.json: no such file"):
        load_manifest(tmp_path)
    with pytest.raises(CompiledFolderError, match=r"nothing\.json: no such file"):
        load_manifest(tmp_path / "nothing.json")
