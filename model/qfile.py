"""The quantized model file (``.sfq``): self-describing, versioned, checksummed, no pickle.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"SPKFQMDL"
    8       4     header length L (uint32)
    12      L     header: UTF-8 JSON (format, version, config, w_bits, pixel_max, pixel_bits,
                  shift, thresholds, widths, weight_shifts, scales,
                  tensors: [{name, dtype, shape, offset, nbytes}])
    12+L    D     tensor data: each tensor int32, C order, at its ``offset`` from the data start
    12+L+D  32    SHA-256 of every byte before it

:func:`load_qmodel` checks, in order: magic, header JSON, size (truncation, trailing bytes),
checksum (corruption),
format and version, then that every field and tensor is present, typed and shaped as
the config requires, that weights fit ``w_bits``, that the thresholds are consistent,
and that the widths cover the width analysis. Every failure raises
:class:`QModelFileError` naming the file and the field. :func:`save_qmodel` writes
atomically: a failed write leaves no file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write_bytes
from .golden import signed_range
from .quantize import (MAX_WEIGHT_SHIFT, WIDTH_FIELDS, QuantizationError, QuantizedModel, check_widths,
                       config_tokens, lif_domains, residual_branches)

__all__ = ["QMODEL_FORMAT", "QMODEL_VERSION", "MAGIC", "QModelFileError", "save_qmodel", "load_qmodel",
           "expected_shapes"]

MAGIC = b"SPKFQMDL"
QMODEL_FORMAT = "spikeforge-qmodel"
QMODEL_VERSION = 1
_DIGEST = 32
_CONFIG_FIELDS = {"img_size_h": int, "img_size_w": int, "in_channels": int, "num_classes": int, "embed_dims": int,
                  "depths": int, "T": int, "pooling_stat": str, "num_heads": int, "mlp_ratios": (int, float)}


class QModelFileError(ValueError):
    """A quantized model file that cannot be used; the message names the file and the problem."""


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Shape of every integer tensor a quantized model of ``config`` must have."""
    d, hidden = config["embed_dims"], int(config["embed_dims"] * config["mlp_ratios"])
    chans = [config["in_channels"], d // 8, d // 4, d // 2, d]
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(4):
        shapes[f"sps.conv{i}.weight"] = (chans[i + 1], chans[i], 3, 3)
        shapes[f"sps.conv{i}.bias"] = (chans[i + 1],)
    shapes["sps.rpe.weight"], shapes["sps.rpe.bias"] = (d, d, 3, 3), (d,)
    for i in range(config["depths"]):
        for n in ("q", "k", "v", "proj"):
            shapes[f"block.{i}.attn.{n}.weight"], shapes[f"block.{i}.attn.{n}.bias"] = (d, d), (d,)
        shapes[f"block.{i}.mlp.fc1.weight"], shapes[f"block.{i}.mlp.fc1.bias"] = (hidden, d), (hidden,)
        shapes[f"block.{i}.mlp.fc2.weight"], shapes[f"block.{i}.mlp.fc2.bias"] = (d, hidden), (d,)
    shapes["head.weight"], shapes["head.bias"] = (config["num_classes"], d), (config["num_classes"],)
    return shapes


def _threshold_channels(config: dict) -> dict[str, int]:
    """LIF threshold name -> its channel count (the output channels of the layers feeding it)."""
    shapes = expected_shapes(config)
    chans = {dom: shapes[f"{layers[0]}.weight"][0] for dom, layers in lif_domains(config["depths"]).items()
             if dom != "head"}
    chans["head.lif"] = chans["u"]  # the head LIF integrates the token sum of U
    return chans


def save_qmodel(qm: QuantizedModel, path: str | os.PathLike) -> Path:
    path = Path(path)
    lo, hi = signed_range(32)
    entries, chunks, offset = [], [], 0
    for name, t in qm.weights.items():
        if int(t.min()) < lo or int(t.max()) > hi:
            raise QModelFileError(f"{path}: tensor {name} does not fit int32")
        data = t.to(torch.int32).numpy().astype("<i4").tobytes()
        entries.append({"name": name, "dtype": "int32", "shape": list(t.shape), "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    header = {
        "format": QMODEL_FORMAT, "version": QMODEL_VERSION, "config": qm.config, "w_bits": qm.w_bits,
        "pixel_max": qm.pixel_max, "pixel_bits": qm.pixel_bits, "shift": qm.shift,
        "thresholds": qm.thresholds, "widths": qm.widths, "weight_shifts": qm.weight_shifts,
        "scales": qm.scales, "tensors": entries,
    }
    head = json.dumps(header, indent=1).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + b"".join(chunks)
    blob = body + hashlib.sha256(body).digest()
    return atomic_write_bytes(path, blob)


def _field(path, header, name, types):
    if name not in header:
        raise QModelFileError(f"{path}: field {name!r} is missing")
    value = header[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise QModelFileError(f"{path}: field {name!r} has type {type(value).__name__}, expected "
                              f"{getattr(types, '__name__', types)}")
    return value


def load_qmodel(path: str | os.PathLike) -> QuantizedModel:
    """Read and validate a quantized model file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise QModelFileError(f"{path}: no such quantized model file")
    blob = path.read_bytes()
    if blob[:len(MAGIC)] != MAGIC:
        raise QModelFileError(f"{path}: not a SpikeForge quantized model (bad magic {blob[:8]!r}, expected {MAGIC!r})")
    if len(blob) < len(MAGIC) + 4 + _DIGEST:
        raise QModelFileError(f"{path}: truncated: {len(blob)} bytes is shorter than the fixed fields")
    (hlen,) = struct.unpack_from("<I", blob, len(MAGIC))
    data_start = len(MAGIC) + 4 + hlen
    if data_start + _DIGEST > len(blob):
        raise QModelFileError(f"{path}: truncated: the header says {hlen} bytes, the file has {len(blob)} in all")
    try:
        header = json.loads(blob[len(MAGIC) + 4:data_start].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QModelFileError(f"{path}: corrupted header ({exc})") from None
    if not isinstance(header, dict):
        raise QModelFileError(f"{path}: corrupted header (not a JSON object)")
    entries = header.get("tensors")
    if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("nbytes"), int) for e in entries):
        expected_size = data_start + sum(e["nbytes"] for e in entries) + _DIGEST
        if len(blob) < expected_size:
            raise QModelFileError(f"{path}: truncated: expected {expected_size} bytes, got {len(blob)}")
        if len(blob) > expected_size:
            raise QModelFileError(f"{path}: {len(blob) - expected_size} unexpected trailing bytes")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise QModelFileError(f"{path}: corrupted: SHA-256 checksum mismatch")
    if header.get("format") != QMODEL_FORMAT:
        raise QModelFileError(f"{path}: field 'format' is {header.get('format')!r}, expected {QMODEL_FORMAT!r}")
    if header.get("version") != QMODEL_VERSION:
        raise QModelFileError(f"{path}: format version {header.get('version')!r} is not supported "
                              f"(this SpikeForge reads version {QMODEL_VERSION})")

    config = _field(path, header, "config", dict)
    for name, types in _CONFIG_FIELDS.items():
        _field(path, config, name, types)
    if (len(config["pooling_stat"]) != 4 or set(config["pooling_stat"]) - {"0", "1"} or config["T"] < 1
            or config["embed_dims"] < 8 or config["embed_dims"] % 8 or config["depths"] < 0
            or min(config["img_size_h"], config["img_size_w"], config["in_channels"], config["num_classes"]) < 1):
        raise QModelFileError(f"{path}: field 'config' has impossible values: {config}")
    entries = _field(path, header, "tensors", list)
    for e in entries:
        if not isinstance(e, dict) or set(e) != {"name", "dtype", "shape", "offset", "nbytes"}:
            raise QModelFileError(f"{path}: field 'tensors' has a malformed entry {e!r}")
    w_bits = _field(path, header, "w_bits", int)
    pixel_max = _field(path, header, "pixel_max", int)
    pixel_bits = _field(path, header, "pixel_bits", int)
    shift = _field(path, header, "shift", int)
    thresholds = _field(path, header, "thresholds", dict)
    widths = _field(path, header, "widths", dict)
    weight_shifts = _field(path, header, "weight_shifts", dict)
    scales = _field(path, header, "scales", dict)
    if not 2 <= w_bits <= 16 or pixel_max < 1 or pixel_bits != pixel_max.bit_length() or shift < 1:
        raise QModelFileError(f"{path}: inconsistent parameters: w_bits={w_bits}, pixel_max={pixel_max}, "
                              f"pixel_bits={pixel_bits}, shift={shift}")

    shapes = expected_shapes(config)
    data = blob[data_start:-_DIGEST]
    weights: dict[str, torch.Tensor] = {}
    for e in entries:
        name = e.get("name")
        if name not in shapes:
            raise QModelFileError(f"{path}: tensor {name!r} is not part of a model with this config")
        if e.get("dtype") != "int32" or not isinstance(e.get("offset"), int) or not isinstance(e.get("shape"), list):
            raise QModelFileError(f"{path}: tensor {name}: bad entry {e}")
        if tuple(e["shape"]) != shapes[name]:
            raise QModelFileError(f"{path}: tensor {name}: shape {e['shape']}, the config needs {list(shapes[name])}")
        count = int(np.prod(shapes[name]))
        if e["nbytes"] != 4 * count or e["offset"] < 0 or e["offset"] + e["nbytes"] > len(data):
            raise QModelFileError(f"{path}: tensor {name}: offset/size out of bounds")
        arr = np.frombuffer(data, dtype="<i4", count=count, offset=e["offset"]).reshape(shapes[name])
        weights[name] = torch.from_numpy(arr.astype(np.int64))
    for name in shapes:
        if name not in weights:
            raise QModelFileError(f"{path}: tensor {name} is missing")
    wlo, whi = signed_range(w_bits)
    for name, t in weights.items():
        if name.endswith(".weight") and (int(t.min()) < wlo or int(t.max()) > whi):
            raise QModelFileError(f"{path}: tensor {name}: values [{int(t.min())}, {int(t.max())}] "
                                  f"do not fit w_bits={w_bits}")
    for name, channels in _threshold_channels(config).items():
        th = thresholds.get(name)
        values = th if isinstance(th, list) and name not in ("u", "head.lif") else [th]
        if isinstance(th, list) and len(th) != channels:
            raise QModelFileError(f"{path}: threshold {name!r} has {len(th)} per-channel values, expected {channels}")
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise QModelFileError(f"{path}: threshold {name!r} is missing or not a positive integer "
                                  f"(or a list of {channels} of them)")
    shiftable = residual_branches(config["depths"])
    for name, wshift in weight_shifts.items():
        if name not in shiftable or not isinstance(wshift, int) or not 0 <= wshift <= MAX_WEIGHT_SHIFT:
            raise QModelFileError(f"{path}: weight_shifts[{name!r}] = {wshift!r}: only the residual-stream branches "
                                  f"({', '.join(shiftable)}) take a shift, of 0..{MAX_WEIGHT_SHIFT}")
    if thresholds["head.lif"] != thresholds["u"] * config_tokens(config):
        raise QModelFileError(f"{path}: threshold 'head.lif' = {thresholds['head.lif']} is inconsistent: "
                              f"expected tokens x u = {config_tokens(config)} x {thresholds['u']}")
    for f in WIDTH_FIELDS:
        if not isinstance(widths.get(f), int):
            raise QModelFileError(f"{path}: width {f!r} is missing or not an integer")
    qm = QuantizedModel(config=config, w_bits=w_bits, pixel_max=pixel_max, pixel_bits=pixel_bits, shift=shift,
                        weights=weights, thresholds=thresholds, widths=widths, weight_shifts=weight_shifts,
                        scales=scales)
    try:
        check_widths(qm)
    except QuantizationError as exc:
        raise QModelFileError(f"{path}: inconsistent widths: {exc}") from None
    return qm
