"""The quantized model file: round trip, and refusal of truncated, corrupted, wrong-version
and inconsistent files (each with a message naming the problem), of crafted headers with a valid
checksum (fields out of range, too much work per image, pathological JSON), and of requested widths
that int64 cannot hold. tests/test_qfile_fuzz.py fuzzes the header."""

import hashlib
import json
import re
import struct

import pytest
import torch

from spikeforge.model import golden
from spikeforge.model.qfile import MAGIC, QModelFileError, load_qmodel, save_qmodel


@pytest.fixture
def saved(tmp_path, qmodel8):
    return save_qmodel(qmodel8, tmp_path / "m.sfq")


def _split(blob):
    (hlen,) = struct.unpack_from("<I", blob, 8)
    return json.loads(blob[12:12 + hlen]), blob[12 + hlen:-32]


def _rewrite(path, header, data):
    """Write a file with a modified header/data and a *valid* checksum (to reach the semantic checks)."""
    head = json.dumps(header).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + data
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_round_trip_is_exact(saved, qmodel8, digits):
    loaded = load_qmodel(saved)
    assert loaded.thresholds == qmodel8.thresholds and loaded.widths == qmodel8.widths
    assert loaded.weight_shifts == qmodel8.weight_shifts and loaded.shift == qmodel8.shift
    assert all(torch.equal(loaded.weights[k], v) for k, v in qmodel8.weights.items())
    px = digits.test_pixels[:16]
    assert torch.equal(golden.forward(loaded, px), golden.forward(qmodel8, px))
    assert not saved.read_bytes().startswith(b"\x80")  # not a pickle


def test_truncated(saved):
    blob = saved.read_bytes()
    for cut in (len(blob) - 1, len(blob) // 2, 20, 5):
        saved.write_bytes(blob[:cut])
        with pytest.raises(QModelFileError, match="truncated|bad magic"):
            load_qmodel(saved)


def test_corrupted_byte(saved):
    blob = bytearray(saved.read_bytes())
    blob[-100] ^= 0x01  # one bit of tensor data
    saved.write_bytes(bytes(blob))
    with pytest.raises(QModelFileError, match="checksum mismatch"):
        load_qmodel(saved)


def test_not_a_qmodel(tmp_path):
    p = tmp_path / "x.sfq"
    p.write_bytes(b"PK\x03\x04 something else entirely" * 4)
    with pytest.raises(QModelFileError, match="not a SpikeForge quantized model"):
        load_qmodel(p)


def test_wrong_version(saved):
    header, data = _split(saved.read_bytes())
    header["version"] = 2
    _rewrite(saved, header, data)
    with pytest.raises(QModelFileError, match="format version 2 is not supported"):
        load_qmodel(saved)


@pytest.mark.parametrize("mutate,message", [
    (lambda h: h["thresholds"].__setitem__("head.lif", 7), "threshold 'head.lif' = 7 is inconsistent"),
    (lambda h: h["thresholds"].__setitem__("sps.lif1", [3, 4]), "threshold 'sps.lif1' has 2 per-channel values, expected 8"),
    (lambda h: h["thresholds"].pop("u"), "threshold 'u' is missing"),
    (lambda h: h["widths"].__setitem__("acc_bits", 9), r"inconsistent widths: layer sps.conv0: acc_bits=9 could overflow"),
    (lambda h: h["config"].__setitem__("embed_dims", 64), r"tensor sps.conv0.weight: shape \[4, 1, 3, 3\], the config needs \[8, 1, 3, 3\]"),
    (lambda h: h.pop("w_bits"), "field 'w_bits' is missing"),
    (lambda h: h.__setitem__("w_bits", 4), r"tensor sps.conv0.weight: values \[-127, \d+\] do not fit w_bits=4"),
    (lambda h: h["weight_shifts"].__setitem__("nonsense", 1), r"weight_shifts\[.nonsense.\]"),
    (lambda h: h["weight_shifts"].__setitem__("head", 1), r"weight_shifts\[.head.\] = 1: only the residual-stream branches"),
    (lambda h: h.__setitem__("tensors", [{"name": 3}]), "field .tensors. has a malformed entry"),
    (lambda h: h["config"].__setitem__("pooling_stat", "01"), "field .config. has impossible values"),
])
def test_inconsistent_header(saved, mutate, message):
    header, data = _split(saved.read_bytes())
    mutate(header)
    _rewrite(saved, header, data)
    with pytest.raises(QModelFileError, match=message):
        load_qmodel(saved)


def test_failed_save_leaves_nothing(tmp_path, qmodel8):
    bad = type(qmodel8)(**{**qmodel8.__dict__, "weights": {**qmodel8.weights, "sps.conv0.bias": torch.tensor([2 ** 40])}})
    with pytest.raises(QModelFileError, match="does not fit int32"):
        save_qmodel(bad, tmp_path / "m.sfq")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad input: a valid checksum is not sanity
# Each header below carries a valid SHA-256 (``_rewrite``): the loader must still refuse it with its own
# error, naming the field. ``_permissive`` opens every width to 63 bits, so that the width analysis alone
# cannot refuse the header and the range checks are what is tested.

def _permissive(header):
    header["widths"] = {f: 63 for f in header["widths"]}
    return header


def _fix_head(header):
    """Make ``head.lif == tokens x u`` hold for the header's (mutated) config."""
    from spikeforge.model.quantize import config_tokens

    try:
        header["thresholds"]["head.lif"] = header["thresholds"]["u"] * config_tokens(header["config"])
    except (TypeError, ValueError):  # a config too broken to count its tokens
        pass
    return header


def _write_model(path, header, weights):
    """Write ``header`` with ``weights`` (name -> int tensor) laid out as its tensors, and a valid checksum."""
    entries, chunks, offset = [], [], 0
    for name, t in weights.items():
        data = t.to(torch.int32).numpy().astype("<i4").tobytes()
        entries.append({"name": name, "dtype": "int32", "shape": list(t.shape), "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    _rewrite(path, {**header, "tensors": entries}, b"".join(chunks))


def _refused(path, message):
    with pytest.raises(QModelFileError, match=message) as info:
        load_qmodel(path)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize("field,value,expected", [
    ("T", 0, "an integer in 1..64"),
    ("T", 65, "an integer in 1..64"),
    ("T", 10000, "an integer in 1..64"),
    ("T", 10 ** 9, "an integer in 1..64"),
    ("T", 10 ** 19, "an integer in 1..64"),
    ("T", 1e9, "an integer in 1..64"),
    ("T", 1e30, "an integer in 1..64"),
    ("img_size_h", 1025, "an integer in 1..1024"),
    ("img_size_w", 10 ** 6, "an integer in 1..1024"),
    ("img_size_h", 0, "an integer in 1..1024"),
    ("in_channels", 1025, "an integer in 1..1024"),
    ("embed_dims", 4104, "a multiple of 8 in 8..4096"),
    ("embed_dims", 36, "a multiple of 8 in 8..4096"),
    ("depths", 65, "an integer in 0..64"),
    ("depths", -1, "an integer in 0..64"),
    ("num_classes", 100_001, "an integer in 1..100000"),
    ("num_heads", 0, "an integer in 1..4096"),
    ("num_heads", -1, "an integer in 1..4096"),
    ("num_heads", 5, "a divisor of embed_dims = 32"),
    ("num_heads", 64, "a divisor of embed_dims = 32"),
    ("mlp_ratios", 0, r"a number in 0.125..16"),
    ("mlp_ratios", -4, r"a number in 0.125..16"),
    ("mlp_ratios", 17, r"a number in 0.125..16"),
    ("mlp_ratios", 1e30, r"a number in 0.125..16"),
    ("mlp_ratios", "4", r"a number in 0.125..16"),
    ("pooling_stat", "0021", "4 characters of 0/1"),
    ("pooling_stat", 1, "4 characters of 0/1"),
])
def test_config_field_out_of_range(saved, field, value, expected):
    """T = 10000 used to load (and exhaust memory in the golden model); num_heads 0 or -1 loaded and ran."""
    header, data = _split(saved.read_bytes())
    header["config"][field] = value
    _rewrite(saved, _fix_head(_permissive(header)), data)
    _refused(saved, rf"field 'config' has impossible values: {field} = {re.escape(repr(value))}, "
                    rf"expected {expected}")


def test_config_field_missing_or_unknown(saved):
    header, data = _split(saved.read_bytes())
    del header["config"]["T"]
    _rewrite(saved, header, data)
    _refused(saved, "field 'config.T' is missing")
    header["config"]["T"], header["config"]["t"] = 4, 4
    _rewrite(saved, header, data)
    _refused(saved, "field 'config' has an unknown key 't'")


def test_mlp_ratio_zero_with_matching_tensors(tmp_path, qmodel8):
    """mlp_ratios = 0 with empty fc1/fc2 tensors (as the config asks) raised torch's RuntimeError."""
    header, _ = _split(save_qmodel(qmodel8, tmp_path / "m.sfq").read_bytes())
    header["config"]["mlp_ratios"] = 0
    header["thresholds"]["block.0.mlp.hidden"] = 1
    weights = dict(qmodel8.weights)
    weights["block.0.mlp.fc1.weight"] = torch.zeros(0, 32, dtype=torch.int64)
    weights["block.0.mlp.fc1.bias"] = torch.zeros(0, dtype=torch.int64)
    weights["block.0.mlp.fc2.weight"] = torch.zeros(32, 0, dtype=torch.int64)
    _write_model(tmp_path / "m.sfq", header, weights)
    _refused(tmp_path / "m.sfq", r"mlp_ratios = 0, expected a number in 0.125..16")


def test_work_per_image_is_bounded(saved):
    """Every field in range, but 1024 x 1024 images over T = 64 steps: the golden model's largest tensor
    would take 72 GiB per image. Refused before any work, with the figure and the limit."""
    from spikeforge.model.qfile import MAX_BYTES_PER_IMAGE, implied_bytes_per_image

    header, data = _split(saved.read_bytes())
    header["config"].update(img_size_h=1024, img_size_w=1024, T=64)
    _rewrite(saved, _fix_head(_permissive(header)), data)
    implied = implied_bytes_per_image(header["config"])
    assert implied == 64 * 1024 * 1024 * 9 * 16 * 8 > MAX_BYTES_PER_IMAGE  # sps.conv3's im2col, int64
    _refused(saved, rf"the model implies {implied} bytes per image, the limit is {MAX_BYTES_PER_IMAGE}")


def test_named_configs_are_within_the_limits():
    """The limits leave room for every named config, the V1 paper's largest (imagenet-8-768) at T = 16 too."""
    from spikeforge.model.configs import CONFIGS, arch_of
    from spikeforge.model.qfile import MAX_BYTES_PER_IMAGE, check_config

    for name, config in CONFIGS.items():
        check_config(config, name)
        if arch_of(config) == "sdt":   # (Meta-SpikeFormer's at 224 px: T = 4; its 3x3 im2col grows with T)
            check_config({**config, "T": 16}, name)
    with pytest.raises(QModelFileError, match="imagenet-8-768: field 'config'.*bytes per image"):
        check_config({**CONFIGS["imagenet-8-768"], "T": 64}, "imagenet-8-768")
    assert MAX_BYTES_PER_IMAGE >= 2 << 30


@pytest.mark.parametrize("field,value,message", [
    ("shift", 10 ** 6, r"field 'shift' is 1000000, expected an integer in 1..16"),
    ("shift", 17, r"field 'shift' is 17, expected an integer in 1..16"),
    ("shift", 0, r"field 'shift' is 0, expected an integer in 1..16"),
    ("shift", True, r"field 'shift' is True, expected an integer in 1..16"),
    ("w_bits", 17, r"field 'w_bits' is 17, expected an integer in 2..16"),
    ("w_bits", 1, r"field 'w_bits' is 1, expected an integer in 2..16"),
    ("pixel_max", 0, r"field 'pixel_max' is 0, expected an integer in 1..65535"),
    ("pixel_max", 10 ** 18, r"field 'pixel_max' is 10{18}, expected an integer in 1..65535"),
    ("pixel_bits", 4, r"field 'pixel_bits' is 4, expected pixel_max.bit_length\(\) = 5"),
    ("pixel_bits", 10 ** 6, r"field 'pixel_bits' is 1000000, expected an integer in 1..16"),
    ("version", True, r"format version True is not supported"),
    ("version", 1.0, r"format version 1.0 is not supported"),
    ("extra", 1, r"unknown field 'extra'"),
])
def test_header_field_out_of_range(saved, field, value, message):
    """shift = 10**6 used to load and run."""
    header, data = _split(saved.read_bytes())
    header[field] = value
    _rewrite(saved, _permissive(header), data)
    _refused(saved, message)


def test_pixel_range_is_bounded(saved):
    """pixel_max = 2**16 with a consistent pixel_bits = 17 used to load (17 bit-planes of the first conv)."""
    header, data = _split(saved.read_bytes())
    header.update(pixel_max=1 << 16, pixel_bits=17)
    _rewrite(saved, _permissive(header), data)
    _refused(saved, r"field 'pixel_max' is 65536, expected an integer in 1..65535")


@pytest.mark.parametrize("value", [0, 64, 100, 10 ** 6, -1, True, 16.0, "16", None])
@pytest.mark.parametrize("field", ["acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"])
def test_width_out_of_range(saved, field, value):
    """Widths above 63 bits used to load; the golden model's int64 arithmetic cannot hold them."""
    header, data = _split(saved.read_bytes())
    _permissive(header)["widths"][field] = value
    _rewrite(saved, header, data)
    _refused(saved, rf"width '{field}' is {re.escape(repr(value))}, expected an integer in 1..63")


def test_width_missing_or_unknown(saved):
    header, data = _split(saved.read_bytes())
    del header["widths"]["gap_bits"]
    _rewrite(saved, header, data)
    _refused(saved, "width 'gap_bits' is missing")
    header["widths"]["gap_bits"], header["widths"]["vbits"] = 20, 20
    _rewrite(saved, header, data)
    _refused(saved, r"width 'vbits' is not a design width \(acc_bits, v_bits, u_bits, gap_bits, logit_bits\)")


@pytest.mark.parametrize("mutate,message", [
    # 2**62 passed the width analysis at v_bits = 63 (which only asks th - 1 to fit), then built hardware for a minute.
    (lambda h: h["thresholds"].__setitem__("sps.lif1", [1 << 62] * 8), r"threshold 'sps.lif1' = 4611686018427387904 "
     r"does not fit v_bits=63 \(at most 4611686018427387903\)"),
    (lambda h: h["thresholds"].update({"u": 1 << 58, "head.lif": (1 << 58) * 16}), r"threshold 'head.lif' = "
     r"4611686018427387904 does not fit gap_bits=63"),
    # The hardware stores every threshold in v_bits two's complement: 2**19 at v_bits = 20 would wrap to -2**19.
    (lambda h: h.__setitem__("widths", {**h["widths"], "v_bits": 20})
     or h["thresholds"].__setitem__("block.0.attn.q", [1 << 19] * 32), r"threshold 'block.0.attn.q' = 524288 "
     r"does not fit v_bits=20"),
    (lambda h: h["thresholds"].__setitem__("junk", 5), r"threshold 'junk' is not part of a model with this config"),
    (lambda h: h["thresholds"].__setitem__("junk", "x"), r"threshold 'junk' is not part of a model with this config"),
    (lambda h: h["thresholds"].__setitem__("sps.lif0", [1, 2, 3, True]), r"threshold 'sps.lif0' is missing or not"),
    (lambda h: h.__setitem__("thresholds", [1, 2]), r"field 'thresholds' is \[1, 2\], expected an object"),
])
def test_thresholds_must_fit_their_widths(saved, mutate, message):
    header, data = _split(saved.read_bytes())
    _permissive(header)
    mutate(header)
    _rewrite(saved, header, data)
    _refused(saved, message)


def _duplicate_first_tensor(header, data):
    first = dict(header["tensors"][0])
    header["tensors"].append({**first, "offset": len(data)})
    return data + data[first["offset"]:first["offset"] + first["nbytes"]]


@pytest.mark.parametrize("mutate,message", [
    (lambda h, d: h["tensors"][0].__setitem__("shape", [8.0, 1, 3, 3]) or d,
     r"tensor sps.conv0.weight: shape \[8.0, 1, 3, 3\] is not a list of integers"),
    (lambda h, d: h["tensors"][0].__setitem__("shape", [8, True, 3, 3]) or d,
     r"tensor sps.conv0.weight: shape \[8, True, 3, 3\] is not a list of integers"),
    (lambda h, d: h["tensors"][0].__setitem__("offset", 1.0) or d, r"tensor sps.conv0.weight: bad entry"),
    (_duplicate_first_tensor, r"tensor sps.conv0.weight appears twice"),
    (lambda h, d: h["scales"].__setitem__("u", "abc") or d,
     r"field 'scales' has 'u' = 'abc', expected a finite number"),
    (lambda h, d: h["scales"].__setitem__("u", [1.0, None]) or d, r"field 'scales' has 'u' = \[1.0, None\]"),
    (lambda h, d: h.__setitem__("scales", [1.0]) or d, r"field 'scales' is \[1.0\], expected an object"),
    (lambda h, d: h["weight_shifts"].__setitem__("sps.conv3", True) or d, r"weight_shifts\['sps.conv3'\] = True"),
    (lambda h, d: h.__setitem__("config", [1]) or d, r"field 'config' is \[1\], expected an object"),
])
def test_malformed_fields(saved, mutate, message):
    header, data = _split(saved.read_bytes())
    data = mutate(header, data)
    _rewrite(saved, header, data)
    _refused(saved, message)


def _raw_header(path, text: bytes, data=b""):
    body = MAGIC + struct.pack("<I", len(text)) + text + data
    path.write_bytes(body + hashlib.sha256(body).digest())


@pytest.mark.parametrize("make,message", [
    (lambda head: b"[" * 100_000 + b"]" * 100_000, r"corrupted header \(nested too deeply\)"),
    (lambda head: b"[" * 100_000, r"corrupted header \(nested too deeply\)"),
    (lambda head: head.replace(b'"T": 4', b'"T": ' + b"9" * 5000),
     r"corrupted header \(an integer of 5000 digits, at most 20 are read\)"),
    (lambda head: head.replace(b'"T": 4', b'"T": -' + b"9" * 21),
     r"corrupted header \(an integer of 21 digits, at most 20 are read\)"),
    (lambda head: head.replace(b'"T": 4', b'"T": 1e999'), r"corrupted header \(a number out of range: 1e999\)"),
    (lambda head: head.replace(b'"scales": {', b'"scales": {"x": -1e999, '),
     r"corrupted header \(a number out of range: -1e999\)"),
    (lambda head: head.replace(b'"scales": {', b'"scales": {"x": NaN, '), r"corrupted header \(NaN is not JSON\)"),
    (lambda head: head.replace(b'"T": 4', b'"T": Infinity'), r"corrupted header \(Infinity is not JSON\)"),
    (lambda head: b"\xff\xfe", r"corrupted header"),
    (lambda head: b'"just a string"', r"corrupted header \(not a JSON object\)"),
])
def test_header_text_pathologies(saved, make, message):
    """Deep nesting raised RecursionError, a 5000-digit integer Python's own ValueError; inf and NaN loaded."""
    header, data = _split(saved.read_bytes())
    head = json.dumps(header).encode()
    assert b'"T": 4' in head and b'"scales": {' in head
    _raw_header(saved, make(head), data)
    _refused(saved, message)


def test_header_length_is_bounded(saved):
    """A valid header padded to just over the limit (64 MiB of JSON whitespace) used to be parsed."""
    from spikeforge.model.qfile import MAX_HEADER_BYTES

    header, data = _split(saved.read_bytes())
    head = json.dumps(header).encode()
    _raw_header(saved, head + b" " * (MAX_HEADER_BYTES + 1 - len(head)), data)
    _refused(saved, rf"header of {MAX_HEADER_BYTES + 1} bytes, the limit is {MAX_HEADER_BYTES}")


def test_widest_widths_run_in_int64(tmp_path, qmodel8, digits):
    """63-bit widths everywhere load and run (the largest the golden model's int64 arithmetic holds)."""
    header, data = _split(save_qmodel(qmodel8, tmp_path / "m.sfq").read_bytes())
    _rewrite(tmp_path / "m.sfq", _permissive(header), data)
    loaded = load_qmodel(tmp_path / "m.sfq")
    px = digits.test_pixels[:4]
    assert torch.equal(golden.forward(loaded, px), golden.forward(qmodel8, px))


# ------------------------------------------------------------------ requested widths (quantize)

@pytest.mark.parametrize("field", ["acc_bits", "v_bits", "u_bits", "gap_bits", "logit_bits"])
@pytest.mark.parametrize("value", [100, 64, 0, -1, True, 16.0, "16", None])
def test_quantize_refuses_unrepresentable_widths(field, value):
    """quantize(widths={"v_bits": 100}) was accepted, then failed in the golden model ("int too big to
    convert"). Refused before any work: the model is not even looked at."""
    from spikeforge.model.quantize import QuantizationError, quantize

    with pytest.raises(QuantizationError, match=rf"requested width {field} = {re.escape(repr(value))}: "
                                                rf"expected an integer in 1..63"):
        quantize(None, 8, widths={field: value})


def test_quantize_refuses_unknown_width():
    from spikeforge.model.quantize import QuantizationError, quantize

    with pytest.raises(QuantizationError, match=r"requested width 'vbits' is not a design width"):
        quantize(None, 8, widths={"vbits": 20})


def test_quantize_accepts_the_widest_widths(qmodel8, digits):
    from spikeforge.model import load_embedded
    from spikeforge.model.quantize import WIDTH_FIELDS, quantize

    qm = quantize(load_embedded(), 8, widths={f: 63 for f in WIDTH_FIELDS})
    assert qm.widths == {f: 63 for f in WIDTH_FIELDS}
    px = digits.test_pixels[:4]
    assert torch.equal(golden.forward(qm, px), golden.forward(qmodel8, px))


def test_cli_quantize_refuses_v_bits_100(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "q.sfq"
    proc = subprocess.run([sys.executable, "-m", "spikeforge.host.cli", "quantize", "--v-bits", "100",
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "requested width v_bits = 100: expected an integer in 1..63" in proc.stderr
    assert not out.exists()


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, saved):
    """A 50 GB (sparse) file whose header matches it is refused from its size, not read into memory."""
    header, data = _split(saved.read_bytes())
    header["tensors"][0]["nbytes"] += 50 << 30
    big = tmp_path / "big.sfq"
    head = json.dumps(header).encode()
    with open(big, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(head)) + head + data)
        f.truncate(12 + len(head) + len(data) + (50 << 30) + 32)
    with pytest.raises(QModelFileError, match=r"bytes of tensors, more than any model this SpikeForge reads"):
        load_qmodel(big)


def test_a_device_or_folder_is_not_a_quantized_model(tmp_path):
    with pytest.raises(QModelFileError, match=r"/dev/zero: is not a regular file \(expected a quantized model file\)"):
        load_qmodel("/dev/zero")
    with pytest.raises(QModelFileError, match=r"is a folder, not a quantized model file"):
        load_qmodel(tmp_path)
