"""The quantized model file: round trip, and refusal of truncated, corrupted, wrong-version
and inconsistent files (each with a message naming the problem)."""

import hashlib
import json
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
