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

:func:`load_qmodel` checks, in order: magic, the header's length (at most :data:`MAX_HEADER_BYTES`),
header JSON (strict: no NaN or infinities, integers of at most :data:`MAX_INT_DIGITS` digits, no
nesting deeper than Python's recursion limit), size (truncation, trailing bytes), checksum
(corruption), format and version. The checksum proves integrity, not sanity, so every field is
then checked as if the file came from anywhere: no unknown fields; each field present, typed and
in its range (:data:`CONFIG_LIMITS`, :data:`PARAM_LIMITS`, :data:`WIDTH_LIMIT`); the work the config
implies per image within :data:`MAX_BYTES_PER_IMAGE` (:func:`implied_bytes_per_image`); every tensor
present once, typed and shaped as the config requires; weights fit ``w_bits``; the thresholds
positive, within their widths and consistent; weight shifts and scales well-formed; and the widths
cover the width analysis. Any file, whatever its bytes, either loads or raises
:class:`QModelFileError` naming the file and the field (expected vs got). :func:`save_qmodel` writes
atomically: a failed write leaves no file behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import reprlib
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from spikeforge.common.files import atomic_write_bytes, not_a_file
from .golden import signed_range
from .graph import Op, layer_graph
from .meta_spikeformer import REFERENCE_BLOCK_COUNTS, REFERENCE_STRIDES
from .limits import MAX_WEIGHT_SHIFT, MAX_WIDTH_BITS
from .quantize import WIDTH_FIELDS, QuantizationError, QuantizedModel, check_widths

__all__ = ["QMODEL_FORMAT", "QMODEL_VERSION", "MAGIC", "QModelFileError", "save_qmodel", "load_qmodel",
           "expected_shapes", "check_config", "implied_bytes_per_image", "Limit", "CONFIG_LIMITS", "PARAM_LIMITS",
           "WIDTH_LIMIT", "HEADER_FIELDS", "MAX_HEADER_BYTES", "MAX_INT_DIGITS", "MAX_BYTES_PER_IMAGE", "MAX_TENSOR_BYTES"]

MAGIC = b"SPKFQMDL"
QMODEL_FORMAT = "spikeforge-qmodel"
QMODEL_VERSION = 1
_DIGEST = 32
#: The header's fields (format version 1); any other is refused.
HEADER_FIELDS = ("format", "version", "config", "w_bits", "pixel_max", "pixel_bits", "shift", "thresholds",
                 "widths", "weight_shifts", "scales", "tensors")
_TENSOR_KEYS = {"name", "dtype", "shape", "offset", "nbytes"}


class QModelFileError(ValueError):
    """A quantized model file that cannot be used; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------ limits
#
# What a file may ask for. The paper's largest model, imagenet-8-768, has 224 x 224 images, embed 768,
# depth 8 and T = 4 (T = 16 on DVS gestures); the named configs (model/configs.py) sit well inside
# every limit, imagenet-8-768 at T = 16 included, so the limits only refuse what no user means.

#: Longest header read (its JSON text), in bytes. imagenet-8-768's header is about 1.3 MB (one threshold
#: and one scale per channel of every per-channel LIF): 64 MiB leaves 50 times that.
MAX_HEADER_BYTES = 64 << 20
#: Longest integer read from the header, in digits (the sign apart): every integer field fits int64 (19).
MAX_INT_DIGITS = 20
#: Most tensor bytes a file may hold (checked from its size before its data is read): 2**28 int32
#: parameters, twice the largest seed-paper model (Meta-SpikeFormer 8-768, 123.74 M parameters).
MAX_TENSOR_BYTES = 4 << 28
#: Largest tensor the golden model may build for one image, in bytes (:func:`implied_bytes_per_image`).
#: imagenet-8-768 needs 331 MiB at T = 4 (1.3 GiB at T = 16), gesture-2-256 576 MiB at T = 16; the golden
#: model's peak is a small multiple of it, within this machine class's 24 GiB.
MAX_BYTES_PER_IMAGE = 2 << 30


@dataclass(frozen=True)
class Limit:
    """A field's allowed values: an integer (with ``real``, any finite number) in ``lo..hi``,
    a multiple of ``multiple``, with ``pattern`` a string matching it (``what`` describes it), with
    ``length`` a list of that many such integers, or with ``boolean`` true or false."""

    lo: int | float = 0
    hi: int | float = 0
    real: bool = False
    multiple: int = 1
    pattern: str | None = None
    what: str = ""
    length: int | None = None
    boolean: bool = False

    def admits(self, value) -> bool:
        if self.boolean:
            return isinstance(value, bool)
        if self.pattern is not None:
            return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None
        if self.length is not None:
            item = replace(self, length=None)
            return isinstance(value, list) and len(value) == self.length and all(item.admits(v) for v in value)
        kinds = (int, float) if self.real else int
        return (isinstance(value, kinds) and not isinstance(value, bool) and self.lo <= value <= self.hi
                and (self.real or value % self.multiple == 0))

    def __str__(self) -> str:
        if self.boolean:
            return "true or false"
        if self.pattern is not None:
            return self.what
        if self.length is not None:
            return f"a list of {self.length} integers in {self.lo}..{self.hi}"
        if self.multiple > 1:
            return f"a multiple of {self.multiple} in {self.lo}..{self.hi}"
        return f"{'a number' if self.real else 'an integer'} in {self.lo}..{self.hi}"


#: The config's fields and their ranges (``num_heads`` must also divide ``embed_dims``, as the float
#: model requires; ``mlp_ratios`` >= 1/8 keeps the MLP's hidden layer at least one channel wide).
CONFIG_LIMITS: dict[str, Limit] = {
    "img_size_h": Limit(1, 1024), "img_size_w": Limit(1, 1024), "in_channels": Limit(1, 1024),
    "num_classes": Limit(1, 100_000), "embed_dims": Limit(8, 4096, multiple=8), "depths": Limit(0, 64),
    "T": Limit(1, 64), "pooling_stat": Limit(pattern="[01]{4}", what="4 characters of 0/1"),
    "num_heads": Limit(1, 4096), "mlp_ratios": Limit(0.125, 16, real=True),
}
#: A Meta-SpikeFormer (V2) config's fields (``model/meta_spikeformer.py``; ``num_heads`` must divide
#: the transformer stages' widths ``embed_dim[2]`` and ``embed_dim[3]``).
META_CONFIG_LIMITS: dict[str, Limit] = {
    "arch": Limit(pattern="meta-spikeformer", what="'meta-spikeformer'"),
    "img_size_h": Limit(1, 1024), "img_size_w": Limit(1, 1024), "in_channels": Limit(1, 1024),
    "num_classes": Limit(1, 100_000), "embed_dim": Limit(2, 4096, length=4), "num_heads": Limit(1, 4096),
    "mlp_ratios": Limit(4, 4), "depths": Limit(1, 1024), "kd": Limit(boolean=True), "T": Limit(1, 64),
    "block_counts": Limit(0, 64, length=6), "strides": Limit(1, 8, length=5),
}
#: What a V2 config without ``block_counts`` / ``strides`` means (the reference's layout).
META_LAYOUT_DEFAULTS = {"block_counts": list(REFERENCE_BLOCK_COUNTS), "strides": list(REFERENCE_STRIDES)}
#: The config limits of each architecture (``"arch"``; a config without it is V1).
ARCH_CONFIG_LIMITS = {"sdt": CONFIG_LIMITS, "meta-spikeformer": META_CONFIG_LIMITS}
#: The header's scalar parameters: weight width (as :func:`~spikeforge.model.quantize.quantize`
#: takes it), the largest pixel (up to 16-bit images; ``pixel_bits`` must be its bit length: the
#: first conv's bit-planes) and the LIF leak shift ``k`` of ``H = V + ((X - V) >> k)`` (tau = 2**k;
#: the quantizer writes 1, the hardware runs only 1).
PARAM_LIMITS: dict[str, Limit] = {
    "w_bits": Limit(2, 16), "pixel_max": Limit(1, (1 << 16) - 1), "pixel_bits": Limit(1, 16), "shift": Limit(1, 16),
}
#: Every design width (:data:`~spikeforge.model.quantize.WIDTH_FIELDS`): what int64 arithmetic holds.
WIDTH_LIMIT = Limit(1, MAX_WIDTH_BITS)
_WIDTH_LIMITS = {f: WIDTH_LIMIT for f in WIDTH_FIELDS}

# How each part of the header words a missing, an unknown and a bad field.
_MESSAGES = {
    None: {"missing": "field '{name}' is missing", "unknown": "unknown field {shown} (format version 1 has: {known})",
           "bad": "field '{name}' is {value}, expected {expected}"},
    "config": {"missing": "field 'config.{name}' is missing",
               "unknown": "field 'config' has an unknown key {shown} (it has: {known})",
               "bad": "field 'config' has impossible values: {name} = {value}, expected {expected}"},
    "widths": {"missing": "width '{name}' is missing", "unknown": "width {shown} is not a design width ({known})",
               "bad": "width '{name}' is {value}, expected {expected}"},
}
_KNOWN = {None: HEADER_FIELDS, "config": tuple(CONFIG_LIMITS), "widths": WIDTH_FIELDS}
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 3, 60, 60, 60
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 8


def _show(value) -> str:
    """A short repr (a header value can be any JSON: huge, deeply nested)."""
    return _repr.repr(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _error(source, part: str | None, problem: str, name, value=None, expected="", known=None) -> QModelFileError:
    """``problem`` (missing, unknown or bad) with field ``name`` of ``part`` of the header (None: the top level);
    ``known``: the fields ``part`` has (default: format version 1's)."""
    text = _MESSAGES[part][problem].format(name=name, shown=_show(name), value=_show(value), expected=expected,
                                           known=", ".join(_KNOWN[part] if known is None else known))
    return QModelFileError(f"{source}: {text}")


def _check_fields(source, part, box: dict, limits: dict[str, Limit], closed: bool = True) -> None:
    """Every field of ``limits`` present in ``box`` and admitted; with ``closed``, no other field."""
    for name, limit in limits.items():
        if name not in box:
            raise _error(source, part, "missing", name)
        if not limit.admits(box[name]):
            raise _error(source, part, "bad", name, box[name], limit)
    for name in box if closed else ():
        if name not in limits:
            raise _error(source, part, "unknown", name, known=limits)


def _object(source, header: dict, name: str, kind: type = dict):
    """Top-level field ``name``: present and a JSON object (``kind=list``: an array)."""
    if name not in header:
        raise _error(source, None, "missing", name)
    if not isinstance(header[name], kind):
        raise _error(source, None, "bad", name, header[name], "an object" if kind is dict else "a list")
    return header[name]


def _largest_tensor(config: dict) -> tuple[int, str]:
    """(elements, description) of the largest int64 tensor :func:`golden.forward` builds for one image."""
    return layer_graph(config).largest_tensor()


def implied_bytes_per_image(config: dict) -> int:
    """Bytes of the largest int64 tensor the golden model builds for one image of ``config``.

    The candidates: each 3x3 stage's im2col (``T x H x W x 9 C_in`` at the stage's resolution;
    ``sps.conv0``'s once, not T times) and output (``T x C_out x H x W``), the encoder's
    ``T x max(embed_dims, hidden) x N`` and the head's ``T x num_classes``. The golden model's peak
    memory per image is a small multiple of it (a layer's input, im2col and output live together).
    """
    return 8 * _largest_tensor(config)[0]


def check_config(config, source="config") -> None:
    """Refuse (:class:`QModelFileError`, prefixed with ``source``) a config outside :data:`CONFIG_LIMITS`,
    whose ``num_heads`` does not divide ``embed_dims``, or which implies more than
    :data:`MAX_BYTES_PER_IMAGE` bytes per image in the golden model."""
    if not isinstance(config, dict):
        raise _error(source, None, "bad", "config", config, "an object")
    arch = config.get("arch", "sdt")
    if not isinstance(arch, str) or arch not in ARCH_CONFIG_LIMITS:
        raise _error(source, "config", "bad", "arch", arch, f"one of {', '.join(ARCH_CONFIG_LIMITS)}")
    # V2's own layout keywords default to the reference's layout (the named configs leave them out);
    # V1 configs carry no arch key, or "sdt"
    given = ({**META_LAYOUT_DEFAULTS, **config} if arch != "sdt"
             else {k: v for k, v in config.items() if k != "arch"})
    _check_fields(source, "config", given, ARCH_CONFIG_LIMITS[arch])
    if arch == "sdt" and config["embed_dims"] % config["num_heads"]:
        raise _error(source, "config", "bad", "num_heads", config["num_heads"],
                     f"a divisor of embed_dims = {config['embed_dims']}")
    if arch != "sdt" and any(config["embed_dim"][i] % config["num_heads"] for i in (2, 3)):
        raise _error(source, "config", "bad", "num_heads", config["num_heads"],
                     f"a divisor of embed_dim[2] and embed_dim[3] = {config['embed_dim'][2:]}")
    elements, what = _largest_tensor(config)
    if 8 * elements > MAX_BYTES_PER_IMAGE:
        raise QModelFileError(f"{source}: field 'config' asks too much: the model implies {8 * elements} bytes per "
                              f"image, the limit is {MAX_BYTES_PER_IMAGE} (the golden model's largest tensor, "
                              f"{what}, int64)")


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Shape of every integer tensor a quantized model of ``config`` must have."""
    return layer_graph(config).weight_shapes()


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


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits, at most {MAX_INT_DIGITS} are read")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number out of range: {text[:40]}")
    return value


def _parse_constant(text: str):
    raise ValueError(f"{text} is not JSON")


def _parse_header(path: Path, text: bytes) -> dict:
    """The header as a JSON object; anything else, or JSON that Python would read unbounded, is refused."""
    try:
        header = json.loads(text.decode(), parse_int=_parse_int, parse_float=_parse_float,
                            parse_constant=_parse_constant)
    except RecursionError:
        raise QModelFileError(f"{path}: corrupted header (nested too deeply)") from None
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError and the refusals above
        raise QModelFileError(f"{path}: corrupted header ({exc})") from None
    if not isinstance(header, dict):
        raise QModelFileError(f"{path}: corrupted header (not a JSON object)")
    return header


def _check_scales(path, scales: dict) -> None:
    """The real factors (informational): a finite number, or a list of them, per name."""
    for name, value in scales.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise QModelFileError(f"{path}: field 'scales' has {_show(name)} = {_show(value)}, expected a finite "
                                  f"number or a list of them")


def load_qmodel(path: str | os.PathLike) -> QuantizedModel:
    """Read and validate a quantized model file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise QModelFileError(f"{path}: {not_a_file(path, 'quantized model file')}")
    with open(path, "rb") as f:   # the fixed fields and the header first: they bound what is read next
        size = os.fstat(f.fileno()).st_size
        fixed = f.read(len(MAGIC) + 4)
        if fixed[:len(MAGIC)] != MAGIC:
            raise QModelFileError(f"{path}: not a SpikeForge quantized model (bad magic {fixed[:8]!r}, "
                                  f"expected {MAGIC!r})")
        if size < len(MAGIC) + 4 + _DIGEST:
            raise QModelFileError(f"{path}: truncated: {size} bytes is shorter than the fixed fields")
        (hlen,) = struct.unpack_from("<I", fixed, len(MAGIC))
        data_start = len(MAGIC) + 4 + hlen
        if data_start + _DIGEST > size:
            raise QModelFileError(f"{path}: truncated: the header says {hlen} bytes, the file has {size} in all")
        if hlen > MAX_HEADER_BYTES:
            raise QModelFileError(f"{path}: header of {hlen} bytes, the limit is {MAX_HEADER_BYTES}")
        header = _parse_header(path, f.read(hlen))
        entries = header.get("tensors")
        if isinstance(entries, list) and all(isinstance(e, dict) and _is_int(e.get("nbytes")) for e in entries):
            expected_size = data_start + sum(e["nbytes"] for e in entries) + _DIGEST
            if size < expected_size:
                raise QModelFileError(f"{path}: truncated: expected {expected_size} bytes, got {size}")
            if size > expected_size:
                raise QModelFileError(f"{path}: {size - expected_size} unexpected trailing bytes")
        if size - data_start - _DIGEST > MAX_TENSOR_BYTES:
            raise QModelFileError(f"{path}: {size - data_start - _DIGEST} bytes of tensors, more than any model "
                                  f"this SpikeForge reads ({MAX_TENSOR_BYTES} bytes: {MAX_TENSOR_BYTES // 4} int32 "
                                  f"parameters)")
        f.seek(0)
        blob = f.read()
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise QModelFileError(f"{path}: corrupted: SHA-256 checksum mismatch")
    if header.get("format") != QMODEL_FORMAT:
        raise QModelFileError(f"{path}: field 'format' is {_show(header.get('format'))}, expected {QMODEL_FORMAT!r}")
    version = header.get("version")
    if not _is_int(version) or version != QMODEL_VERSION:
        raise QModelFileError(f"{path}: format version {_show(version)} is not supported "
                              f"(this SpikeForge reads version {QMODEL_VERSION})")
    for name in header:
        if name not in HEADER_FIELDS:
            raise _error(path, None, "unknown", name)

    # Scalars and the config first: they bound everything the rest of the file may imply.
    config = _object(path, header, "config")
    check_config(config, path)
    _check_fields(path, None, header, PARAM_LIMITS, closed=False)
    w_bits, pixel_max, pixel_bits, shift = (header[f] for f in PARAM_LIMITS)
    if pixel_bits != pixel_max.bit_length():
        raise QModelFileError(f"{path}: field 'pixel_bits' is {pixel_bits}, expected pixel_max.bit_length() = "
                              f"{pixel_max.bit_length()}")
    widths = _object(path, header, "widths")
    _check_fields(path, "widths", widths, _WIDTH_LIMITS)
    entries = _object(path, header, "tensors", list)
    thresholds = _object(path, header, "thresholds")
    weight_shifts = _object(path, header, "weight_shifts")
    scales = _object(path, header, "scales")

    shapes = expected_shapes(config)
    data = blob[data_start:-_DIGEST]
    weights: dict[str, torch.Tensor] = {}
    for e in entries:
        if not isinstance(e, dict) or set(e) != _TENSOR_KEYS:
            raise QModelFileError(f"{path}: field 'tensors' has a malformed entry {_show(e)}")
    for e in entries:
        name = e["name"]
        if not isinstance(name, str) or name not in shapes:
            raise QModelFileError(f"{path}: tensor {_show(name)} is not part of a model with this config")
        if name in weights:
            raise QModelFileError(f"{path}: tensor {name} appears twice")
        if e["dtype"] != "int32" or not _is_int(e["offset"]) or not isinstance(e["shape"], list):
            raise QModelFileError(f"{path}: tensor {name}: bad entry {_show(e)}")
        if not all(_is_int(n) for n in e["shape"]):
            raise QModelFileError(f"{path}: tensor {name}: shape {_show(e['shape'])} is not a list of integers")
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

    graph = layer_graph(config)
    channels_of = graph.threshold_channels()
    neurons = [layer for layer in graph if layer.neurons is not None and layer.neurons.domain is not None]
    widths_of = {layer.neurons.domain: layer.neurons.width for layer in neurons}
    # neurons reading U (its LIFs, the token sum's) share one threshold: U has one scale
    shared = {layer.neurons.domain for layer in neurons if layer.op in (Op.LIF_U, Op.GAP)}
    for gap in (layer for layer in graph if layer.op is Op.GAP):   # (its stream's, maybe read by no LIF)
        shared.add(gap.u_domain)
        widths_of.setdefault(gap.u_domain, "v_bits")
    for name in thresholds:
        if name not in channels_of:
            raise QModelFileError(f"{path}: threshold {_show(name)} is not part of a model with this config")
    for name, channels in channels_of.items():
        th = thresholds.get(name)
        values = th if isinstance(th, list) and name not in shared else [th]
        if isinstance(th, list) and len(th) != channels:
            raise QModelFileError(f"{path}: threshold {name!r} has {len(th)} per-channel values, expected {channels}")
        if not values or not all(_is_int(v) and v >= 1 for v in values):
            raise QModelFileError(f"{path}: threshold {name!r} is missing or not a positive integer "
                                  f"(or a list of {channels} of them)")
        # The membrane holds the threshold: v_bits (the head LIF's, gap_bits), as in the golden model;
        # the hardware stores every threshold in v_bits two's complement (firmware.compiler._needs).
        width = widths_of[name]
        hi = signed_range(widths[width])[1]
        if max(values) > hi:
            raise QModelFileError(f"{path}: threshold {name!r} = {max(values)} does not fit {width}={widths[width]} "
                                  f"(at most {hi})")
    shiftable = graph.residual_branches()
    for name, wshift in weight_shifts.items():
        if name not in shiftable or not _is_int(wshift) or not 0 <= wshift <= MAX_WEIGHT_SHIFT:
            raise QModelFileError(f"{path}: weight_shifts[{_show(name)}] = {_show(wshift)}: only the residual-stream "
                                  f"branches ({', '.join(shiftable)}) take a shift, of 0..{MAX_WEIGHT_SHIFT}")
    for gap in (layer for layer in graph if layer.op is Op.GAP):
        name, u, tokens = gap.neurons.domain, gap.u_domain, gap.height * gap.width
        if thresholds[name] != thresholds[u] * tokens:
            raise QModelFileError(f"{path}: threshold {name!r} = {thresholds[name]} is inconsistent: "
                                  f"expected tokens x {u} = {tokens} x {thresholds[u]}")
    _check_scales(path, scales)
    qm = QuantizedModel(config=config, w_bits=w_bits, pixel_max=pixel_max, pixel_bits=pixel_bits, shift=shift,
                        weights=weights, thresholds=thresholds, widths=widths, weight_shifts=weight_shifts,
                        scales=scales)
    try:
        check_widths(qm)
    except QuantizationError as exc:
        raise QModelFileError(f"{path}: inconsistent widths: {exc}") from None
    return qm
