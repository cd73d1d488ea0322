"""The firmware compiler: quantized model + hardware config -> program, weight image, manifest.

:func:`compile_model` walks the model's layer graph (:mod:`spikeforge.model.graph`, the order
the golden model computes in) and emits one :class:`~spikeforge.firmware.program.Descriptor`
per step, placing every layer's weights, biases and thresholds in the accelerator's P-wide
memories and every intermediate spike map in the spike buffer (:func:`place_spike_maps`). A model that does not fit the
hardware's capacities or widths is refused with :class:`CapacityError`, naming the layer, the
quantity and the limit. ``docs/firmware.md`` describes the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spikeforge.model.golden import signed_range
from spikeforge.model.graph import Layer, LayerGraph, Op, Shortcut, layer_graph
from spikeforge.model.quantize import QuantizedModel

from spikeforge.common.files import not_a_file, write_folder

from .memory_map import model_rows
from .program import FIELDS, FORMAT_VERSION, HARDWARE_LIMITS, KINDS, LINKS, OPS, POSTS, WORD_MAX, Descriptor, \
    HardwareConfig, ceil_log2, field_overflows, lanes_problem, row_bits, uart_divisor, unpack_program

__all__ = ["CapacityError", "CompiledFolderError", "Compiled", "compile_model", "place_spike_maps", "hardware_for", "pixel_rows",
           "memory_images", "compiled_files", "save_compiled", "load_manifest", "load_program", "IMAGE_FILES", "MANIFEST"]


class CapacityError(ValueError):
    """The model does not fit the hardware: names the layer, the quantity and the limit."""


class CompiledFolderError(ValueError):
    """A compiled or built folder that is not what its manifest says, or a manifest of the wrong
    shape: names the file, the field, what was expected and what was found."""


#: The layer ops the accelerator runs (the Spike-driven Transformer's; Meta-SpikeFormer's k x k and
#: strided convs and linear attention have no hardware yet).
HARDWARE_OPS = frozenset({Op.PIXEL_CONV, Op.CONV3X3, Op.CONV1X1, Op.LINEAR, Op.OR_POOL, Op.LIF_U, Op.SDSA, Op.GAP})


def _check_ops(graph: LayerGraph) -> None:
    """:class:`CapacityError` naming the first layer the accelerator cannot run."""
    for layer in graph:
        if layer.op not in HARDWARE_OPS or (layer.op is Op.PIXEL_CONV and (layer.kernel, layer.stride) != (3, 1)):
            what = (f"{layer.op.value} {layer.kernel}x{layer.kernel} / stride {layer.stride}" if layer.synaptic
                    else layer.op.value)
            raise CapacityError(f"layer {layer.name}: {what} has no hardware yet (the accelerator runs the "
                                f"Spike-driven Transformer's layers; Meta-SpikeFormer's run in the golden model only)")


def _groups(c: int, p: int) -> int:
    return -(-c // p)


def _needs(qm: QuantizedModel, lanes: int) -> dict:
    """Widths and capacities (not memory rows) that ``qm`` needs at ``lanes``."""
    cfg, w, p = qm.config, qm.widths, lanes
    graph = layer_graph(cfg)
    _check_ops(graph)
    c = graph.u_channels
    # a spike-buffer row holds the widest spike map (a group's maps side by side, each padded to
    # whole lane groups) and the image's pixels, plane-minor
    widest = max([cfg["in_channels"] << max(1, ceil_log2(qm.pixel_bits)), p]
                 + [sum(_groups(layer.cout, p) * p for layer in st.layers) for st in _steps(graph) if st.spikes_out()])
    return dict(
        weight_bits=qm.w_bits, acc_bits=w["acc_bits"], u_bits=w["u_bits"], v_bits=max(w["v_bits"], w["gap_bits"]),
        gap_bits=w["gap_bits"], logit_bits=w["logit_bits"], pixel_bits=qm.pixel_bits,
        max_channels=max(1 << ceil_log2(widest), p), max_embed=_groups(c, p) * p, max_height=cfg["img_size_h"],
        max_width=cfg["img_size_w"], max_steps=cfg["T"], max_in_channels=cfg["in_channels"],
        max_3x3_channels=max(layer.cin for layer in graph if layer.op is Op.CONV3X3),
        max_classes=_groups(cfg["num_classes"], p) * p,
    )


def hardware_for(models, lanes: int = 16, event_driven: bool = True, **overrides) -> HardwareConfig:
    """The smallest :class:`HardwareConfig` that runs every model in ``models`` (one
    :class:`QuantizedModel` or several: an overlay for all of them); ``overrides`` replace any field.
    Memory rows are sized by compiling each model."""
    problem = lanes_problem(lanes)
    if problem:
        raise ValueError(f"hardware_for: lanes: {problem}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(HardwareConfig)})
    if unknown:
        raise ValueError(f"hardware_for: unknown HardwareConfig field(s) {', '.join(unknown)}")
    qms = [models] if isinstance(models, QuantizedModel) else list(models)
    if not qms:
        raise ValueError("hardware_for: no model given")
    base: dict = {}
    for qm in qms:
        for key, value in _needs(qm, lanes).items():
            base[key] = max(base.get(key, value), value)
    for key, value in base.items():
        if key not in overrides and value > HARDWARE_LIMITS[key]:
            raise CapacityError(f"model: needs {key} of {value}, above the largest the hardware can be "
                                f"generated with ({HARDWARE_LIMITS[key]})")
    base.update(lanes=lanes, event_driven=event_driven)
    base.update(overrides)
    rows = ("weight_rows", "bias_rows", "threshold_rows", "spike_rows", "u_rows", "program_rows")
    probe = HardwareConfig(**{**base, **{k: HARDWARE_LIMITS[k] for k in rows}})
    for qm in qms:
        used = compile_model(qm, probe).manifest["capacities_used"]
        for key in rows:
            if key not in overrides:
                base[key] = max(base.get(key, 1), used[key])
    return HardwareConfig(**base)


@dataclass
class Compiled:
    """A compiled model: ``program`` (descriptors), memory images as ``(row, [P ints])`` lists, and
    the ``manifest`` (format version, hardware-config hash, capacities used, layer names)."""

    hardware: HardwareConfig
    program: list[Descriptor]
    weights: list[tuple[int, list[int]]] = field(default_factory=list)
    biases: list[tuple[int, list[int]]] = field(default_factory=list)
    thresholds: list[tuple[int, list[int]]] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, qm: QuantizedModel, hw: HardwareConfig):
        self.qm, self.hw, self.p = qm, hw, hw.lanes
        self.program: list[Descriptor] = []
        self.weights, self.biases, self.thresholds = [], [], []
        self.w_next = self.b_next = self.t_next = 0

    def need(self, layer: str, what: str, value: int, limit: int, knob: str):
        if value > limit:
            raise CapacityError(f"layer {layer}: {what} {value} exceeds the hardware's {knob} = {limit}")

    def fits(self, layer: str, what: str, values: list[int], knob: str):
        """``values`` (a layer's biases or thresholds) fit the hardware's signed ``knob`` width."""
        lo, hi = signed_range(getattr(self.hw, knob))
        if values and (min(values) < lo or max(values) > hi):
            raise CapacityError(f"layer {layer}: {what} span [{min(values)}, {max(values)}], which does not fit "
                                f"{knob} = {getattr(self.hw, knob)}")

    def place_weights(self, name: str, cols: torch.Tensor, bias: torch.Tensor, cout_pad: int | None = None):
        """``cols [C_out, n_columns]`` (column j = one event's weights): rows ``g * n_columns + j``."""
        p, hw = self.p, self.hw
        lo, hi = signed_range(hw.weight_bits)
        if cols.numel() and (int(cols.min()) < lo or int(cols.max()) > hi):
            raise CapacityError(f"layer {name}: weights span [{int(cols.min())}, {int(cols.max())}], "
                                f"which does not fit weight_bits = {hw.weight_bits}")
        cout, ncol = cols.shape
        self.need(name, "weight columns", ncol, hw.in_columns, "in_columns")
        self.fits(name, "biases", [int(v) for v in bias[:cout]], "acc_bits")
        g_count = _groups(cout if cout_pad is None else cout_pad, p)
        wbase, bbase = self.w_next, self.b_next
        for g in range(g_count):
            for j in range(ncol):
                self.weights.append((wbase + g * ncol + j,
                                     [int(cols[o, j]) if o < cout else 0 for o in range(g * p, (g + 1) * p)]))
            self.biases.append((bbase + g, [int(bias[o]) if o < cout else 0 for o in range(g * p, (g + 1) * p)]))
        self.w_next += g_count * ncol
        self.b_next += g_count
        return wbase, ncol, bbase, g_count

    def place_thresholds(self, name: str, per_channel: list[int], groups: int) -> int:
        p = self.p
        self.fits(name, "thresholds", [int(v) for v in per_channel], "v_bits")
        _, hi = signed_range(self.hw.v_bits)
        base = self.t_next
        for g in range(groups):
            self.thresholds.append((base + g, [int(per_channel[c]) if c < len(per_channel) else hi
                                               for c in range(g * p, (g + 1) * p)]))
        self.t_next += groups
        return base


def _th_list(qm: QuantizedModel, domain: str, channels: int) -> list[int]:
    th = qm.thresholds[domain]
    return list(th) if isinstance(th, list) else [int(th)] * channels


#: Descriptor ``kind`` of each synaptic op, and ``post`` of each way a layer's output leaves it.
_KIND = {Op.PIXEL_CONV: "pixel3x3", Op.CONV3X3: "3x3", Op.CONV1X1: "1x1", Op.LINEAR: "1x1"}
_SHORTCUT_POST = {Shortcut.WRITE: "U_WRITE", Shortcut.ADD: "U_ADD", Shortcut.MAXPOOL: "U_MAXPOOL"}


@dataclass
class _Step:
    """One program step: a layer, or a group of layers run together (their spikes side by side)."""

    name: str
    layers: list[Layer]

    @property
    def first(self) -> Layer:
        return self.layers[0]

    def spikes_out(self) -> bool:
        """Its output is a spike map in the spike buffer."""
        return self.first.neurons is not None or self.first.op is Op.OR_POOL


def _steps(graph: LayerGraph) -> list[_Step]:
    steps: list[_Step] = []
    for layer in graph:
        if layer.group is not None and steps and steps[-1].first.group == layer.group:
            steps[-1].layers.append(layer)
        else:
            steps.append(_Step(layer.group or layer.name, [layer]))
    return steps


def place_spike_maps(graph: LayerGraph) -> tuple[dict[str, int], int]:
    """The spike buffer's layout: each step's output spike map at a base row (rows are
    position-major, time-minor: ``base + position * T + t``), first fit over the maps live at the
    same time (a map lives from the step that writes it to the last step that reads it; a group's
    layers share one map). Returns ``({step or layer name: base}, rows used)``."""
    steps = _steps(graph)
    alias = {layer.name: st.name for st in steps for layer in st.layers}
    first, last, rows = {}, {}, {}
    for i, st in enumerate(steps):
        for layer in st.layers:
            for src in layer.inputs:
                if src in first:
                    last[alias[src]] = i
        if st.spikes_out():
            first[st.name] = last[st.name] = i
            rows[st.name] = st.first.out_height * st.first.out_width * graph.T
    placed: dict[str, int] = {}
    for name in first:                       # in the order they are written
        busy = sorted((placed[o], placed[o] + rows[o]) for o in placed
                      if first[o] <= last[name] and first[name] <= last[o])
        base = 0
        for lo, hi in busy:
            if base + rows[name] <= lo:
                break
            base = max(base, hi)
        placed[name] = base
    bases = {**placed, **{layer: placed[st] for layer, st in alias.items() if st in placed}}
    return bases, max((placed[n] + rows[n] for n in placed), default=0)


def compile_model(qm: QuantizedModel, hw: HardwareConfig) -> Compiled:
    """Compile ``qm`` for ``hw``: one descriptor per step of its layer graph; raises
    :class:`CapacityError` naming the first layer that does not fit."""
    cfg, p = qm.config, hw.lanes
    graph = layer_graph(cfg)
    _check_ops(graph)
    b = _Builder(qm, hw)
    T, c = graph.T, graph.u_channels
    model = "model"
    # widths and global capacities ------------------------------------------------------------
    for knob, have in (("weight_bits", qm.w_bits), ("acc_bits", qm.widths["acc_bits"]),
                       ("u_bits", qm.widths["u_bits"]), ("v_bits", qm.widths["v_bits"]),
                       ("v_bits", qm.widths["gap_bits"]), ("gap_bits", qm.widths["gap_bits"]),
                       ("logit_bits", qm.widths["logit_bits"]), ("pixel_bits", qm.pixel_bits)):
        b.need(model, f"needs {knob} of", have, getattr(hw, knob), knob)
    b.need(model, "time steps", T, hw.max_steps, "max_steps")
    entry = graph.layers[0]
    b.need(entry.name, "image height", entry.height, hw.max_height, "max_height")
    b.need(entry.name, "image width", entry.width, hw.max_width, "max_width")
    b.need(entry.name, "input channels", entry.cin, hw.max_in_channels, "max_in_channels")
    b.need(model, "embedding channels", _groups(c, p) * p, hw.max_embed, "max_embed")
    b.need(model, "classes", sum(layer.cout for layer in graph if layer.logits), hw.max_classes, "max_classes")
    if qm.shift != 1:
        raise CapacityError(f"{model}: LIF leak shift {qm.shift} (tau = 2**shift); the hardware's LIFs use shift 1")
    gc = _groups(c, p)
    base, spike_rows = place_spike_maps(graph)
    u = dict(u_pos_stride=T * gc, u_groups=gc)    # the residual stream's layout (rows: position, t, group)
    for step in _steps(graph):
        layer = step.first
        in_base = base.get(layer.inputs[0], 0) if layer.inputs else 0
        out_base = base.get(step.name, 0)
        if layer.synaptic:
            b.program.append(_conv(b, step, in_base, out_base, T, gc))
        elif layer.op is Op.OR_POOL:
            b.program.append(Descriptor(name=layer.name, op=OPS["POOL_OR"], height=layer.height, width=layer.width,
                                        steps=T, cin=layer.cin, cout=layer.cout, in_base=in_base, out_base=out_base,
                                        row_stride=layer.width * T, out_height=layer.out_height,
                                        out_width=layer.out_width))
        elif layer.op is Op.SDSA:
            if _steps_of(graph, layer.inputs) != 1:   # the SDSA unit reads Q, K and V side by side in a row
                raise CapacityError(f"layer {layer.name}: Q, K and V must be one group of layers (one spike map)")
            b.program.append(Descriptor(name=layer.name, op=OPS["SDSA"], height=layer.height, width=layer.width,
                                        steps=T, cin=layer.cin, groups=gc, cout=layer.cout, in_base=in_base,
                                        out_base=out_base, u_groups=gc))
        else:   # Op.LIF_U, Op.GAP: LIFs of U (a GAP's of its token sum)
            op = "LIF_U" if layer.op is Op.LIF_U else "GAP"
            d = Descriptor(name=layer.name, op=OPS[op], height=layer.height, width=layer.width, steps=T, cin=c,
                           groups=gc, cout=c, out_base=out_base, **u)
            d.th_base = b.place_thresholds(layer.name, _th_list(qm, layer.neurons.domain, c), gc)
            b.program.append(d)
    b.program.append(Descriptor(name="end", op=OPS["END"]))

    used = {"weight_rows": b.w_next, "bias_rows": b.b_next, "threshold_rows": b.t_next, "spike_rows": spike_rows,
            "u_rows": graph.tokens * T * gc, "program_rows": len(b.program)}
    for key, value in used.items():
        b.need(model, key.replace("_", " "), value, getattr(hw, key), key)
    for d in b.program:
        bad = field_overflows(d, hw)
        if bad:
            raise CapacityError(f"layer {d.name}: descriptor field {'; '.join(bad)}")
    manifest = {
        "format_version": FORMAT_VERSION,
        "hardware_hash": hw.config_hash(),
        "hardware": hw.as_dict(),
        "model": {k: cfg[k] for k in sorted(cfg)},
        "pixel_max": qm.pixel_max,
        "capacities_used": used,
        "layers": [d.name for d in b.program],
        "domains": sorted(graph.domains()),
    }
    return Compiled(hw, b.program, b.weights, b.biases, b.thresholds, manifest)


def _steps_of(graph: LayerGraph, names) -> int:
    """How many program steps the layers ``names`` run in."""
    return len({st.name for st in _steps(graph) for layer in st.layers if layer.name in names})


def _conv(b: _Builder, step: _Step, in_base: int, out_base: int, T: int, gc: int) -> Descriptor:
    """The CONV descriptor of a synaptic step (its weights, biases and thresholds placed)."""
    qm, hw, p = b.qm, b.hw, b.p
    layer, name = step.first, step.name
    kind = _KIND[layer.op]
    cin = layer.cin
    if layer.neurons is not None:
        post = "LIF"
    elif layer.shortcut is not None:
        post = _SHORTCUT_POST[layer.shortcut]
    else:
        post = "LOGITS"
    if len(step.layers) == 1:
        wt_, bias = qm.weights[f"{name}.weight"], qm.weights[f"{name}.bias"]
        cout, cout_pad = layer.cout, None
        ths = _th_list(qm, layer.neurons.domain, cout) if post == "LIF" else None
    else:
        # a group: output channels side by side, each layer's padded to whole lane groups
        pads = [_groups(m.cout, p) * p for m in step.layers]
        cout, cout_pad = sum(m.cout for m in step.layers), sum(pads)
        wt_ = torch.zeros(cout_pad, cin, dtype=torch.int64)
        bias = torch.zeros(cout_pad, dtype=torch.int64)
        ths = [signed_range(hw.v_bits)[1]] * cout_pad
        off = 0
        for m, pad in zip(step.layers, pads):
            wt_[off:off + m.cout] = qm.weights[f"{m.name}.weight"]
            bias[off:off + m.cout] = qm.weights[f"{m.name}.bias"]
            ths[off:off + m.cout] = _th_list(qm, m.neurons.domain, m.cout)
            if qm.weight_shifts.get(m.name, 0):
                raise CapacityError(f"layer {m.name}: a weight shift on Q/K/V is not supported")
            off += pad
    if kind != "1x1":
        three = kind == "3x3"
        b.need(name, "3x3 input channels", cin, hw.max_3x3_channels if three else hw.max_in_channels,
               "max_3x3_channels" if three else "max_in_channels")
        cols = wt_.permute(0, 2, 3, 1).reshape(wt_.shape[0], 9 * cin)  # column tap * cin + c
    else:
        cols = wt_
    b.need(name, "input channels", cin, hw.max_channels, "max_channels")
    b.need(name, "output channels", cout if cout_pad is None else cout_pad, hw.max_channels, "max_channels")
    b.need(name, "map height", layer.height, hw.max_height, "max_height")
    b.need(name, "map width", layer.width, hw.max_width, "max_width")
    wbase, ncol, bbase, g = b.place_weights(name, cols, bias, cout_pad)
    # the output map's size matters where the post-op writes U (a max-pool shrinks it)
    out_h, out_w = (layer.out_height, layer.out_width) if post in ("U_WRITE", "U_MAXPOOL") else (1, 1)
    steps = 1 if layer.op is Op.PIXEL_CONV else T
    d = Descriptor(name=name, op=OPS["CONV"], kind=KINDS[kind], post=POSTS[post], height=layer.height,
                   width=layer.width, steps=steps, cin=cin, groups=g, cout=cout, weight_base=wbase, n_columns=ncol,
                   bias_base=bbase, weight_shift=qm.weight_shifts.get(name, 0), in_base=in_base,
                   out_base=out_base if post == "LIF" else 0, row_stride=layer.width * steps,
                   u_pos_stride=T * gc, u_row_stride=out_w * T * gc, out_height=out_h, out_width=out_w,
                   repeat=T if layer.op is Op.PIXEL_CONV else 1, u_groups=gc)
    if post == "LIF":
        d.th_base = b.place_thresholds(name, ths, g)
    return d


def pixel_rows(hw: HardwareConfig, pixels: torch.Tensor) -> list[tuple[int, int]]:
    """Pixel-memory rows of one image ``[C, H, W]``: row ``y * W + x`` packs channel ``c``'s value at
    bits ``c * 2**plane_bits ..`` (plane-minor, as the encoder's bit-plane mode reads them)."""
    ci, h, w = pixels.shape
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= 1 << hw.pixel_bits):
        raise ValueError(f"pixels must be in [0, {(1 << hw.pixel_bits) - 1}], "
                         f"got [{int(pixels.min())}, {int(pixels.max())}]")
    pb = hw.plane_bits
    return [(y * w + x, sum(int(pixels[c, y, x]) << (c << pb) for c in range(ci))) for y in range(h) for x in range(w)]


# ------------------------------------------------------------------------------------------ files

#: Files of a compiled model folder (``spikeforge generate QMODEL --out DIR``).
IMAGE_FILES = {"program": "program.bin", "weights": "weights.bin", "biases": "biases.bin",
               "thresholds": "thresholds.bin"}
#: The manifest file of a compiled (``spikeforge generate``) or built (``spikeforge build``) folder.
MANIFEST = "manifest.json"


def memory_images(compiled: Compiled) -> dict[str, bytes]:
    """The binary images of :func:`~spikeforge.firmware.memory_map.model_rows`: ``program.bin``
    (32-bit little-endian words, :data:`FIELDS` per descriptor) and one file per memory, rows 0.. in
    order, each row its P lanes (two's complement, lane 0 in the lowest bits) packed little-endian
    into ``ceil(P * bits / 8)`` bytes."""
    out = {}
    for space, rows in model_rows(compiled).items():
        if [r for r, _ in rows] != list(range(len(rows))):
            raise ValueError(f"{space}: rows are not contiguous from 0")
        nbytes = -(-row_bits(compiled.hardware)[space] // 8)
        out[space] = b"".join(value.to_bytes(nbytes, "little") for _, value in rows)
    return out


def compiled_files(compiled: Compiled) -> dict[str, bytes]:
    """The files of a compiled model folder, name -> bytes: the :data:`IMAGE_FILES` and
    :data:`MANIFEST` (the compiler's manifest plus each image's size and SHA-256)."""
    images = memory_images(compiled)
    files = {key: {"file": IMAGE_FILES[key], "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
             for key, blob in images.items()}
    manifest = {**compiled.manifest, "files": files}
    return {**{IMAGE_FILES[key]: blob for key, blob in images.items()},
            MANIFEST: (json.dumps(manifest, indent=1) + "\n").encode()}


def save_compiled(compiled: Compiled, out_dir, extra: dict[str, bytes] | None = None) -> dict[str, Path]:
    """Write :func:`compiled_files` (and ``extra`` files, e.g. the accelerator's Verilog) into
    ``out_dir``, all or none (:func:`~spikeforge.common.files.write_folder`). Returns the paths by
    image key (``program``, ``weights``, ...), ``manifest`` and each extra file's name."""
    written = write_folder(out_dir, {**compiled_files(compiled), **(extra or {})})
    keys = {name: key for key, name in IMAGE_FILES.items()} | {MANIFEST: "manifest"}
    return {keys.get(name, name): path for name, path in written.items()}


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_manifest(folder_or_path) -> dict:
    """The validated ``manifest.json`` of a ``spikeforge generate QMODEL --out DIR`` folder or a
    ``spikeforge build --out DIR`` folder, as a dict (the JSON as written).

    ``folder_or_path``: the folder (``str`` or :class:`~pathlib.Path`), or the manifest file itself.
    Either kind carries ``hardware`` (every :class:`HardwareConfig` field, a valid config) and
    ``hardware_hash`` (its :meth:`~HardwareConfig.config_hash`). A **compiled** manifest also
    carries ``format_version`` (:data:`FORMAT_VERSION`), ``layers`` (one step name per descriptor
    of ``program.bin``) and ``files`` (``file``, ``bytes``, ``sha256`` of each :data:`IMAGE_FILES`
    image, which must be there with that size and hash). A **build** manifest (one with ``link``
    or ``board``) carries ``link`` (``uart`` / ``stream``), ``clock_hz`` (an integer in
    1..2**32-1, as HELLO reports it) and, for a UART, ``baud`` (the same, and one the clock can
    produce: :func:`~spikeforge.firmware.program.uart_divisor`, which ``uart_divisor`` must equal when
    present; a stream link has no baud: absent, 0 or null); ``format_version``, when present,
    is :data:`FORMAT_VERSION`.

    Example: ``hw = HardwareConfig.from_dict(load_manifest(folder)["hardware"])``.

    Raises :class:`CompiledFolderError` (a :class:`ValueError`) naming the file, the field, what
    was expected and what was found."""
    mpath = Path(folder_or_path)
    if mpath.is_dir():
        mpath = mpath / MANIFEST
    if not mpath.exists():
        raise CompiledFolderError(f"{mpath}: no such file (expected a `spikeforge generate` or `spikeforge build` "
                                  f"output folder or its {MANIFEST})")
    try:
        m = json.loads(mpath.read_bytes())
    except ValueError as exc:   # JSONDecodeError, UnicodeDecodeError
        raise CompiledFolderError(f"{mpath}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CompiledFolderError(f"{mpath}: not a manifest (JSON nested too deeply)") from None
    except OSError as exc:      # a folder, unreadable
        raise CompiledFolderError(f"{mpath}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(m, dict):
        raise CompiledFolderError(f"{mpath}: expected a JSON object, got {type(m).__name__}")

    def bad(name: str, expected: str, got) -> CompiledFolderError:
        return CompiledFolderError(f"{mpath}: {name}: expected {expected}, got {got!r}")

    build = "link" in m or "board" in m
    required = ("link", "clock_hz") if build else ("format_version", "layers", "files")
    missing = [k for k in (*required, "hardware", "hardware_hash") if k not in m]
    if missing:
        kind = "a `spikeforge build` manifest" if build else "a compiled model's manifest"
        raise CompiledFolderError(f"{mpath}: missing field(s) {', '.join(missing)} (of {kind})")
    if (not build or "format_version" in m) and (not _is_int(m["format_version"])
                                                  or m["format_version"] != FORMAT_VERSION):
        raise bad("format_version", str(FORMAT_VERSION), m["format_version"])
    if not isinstance(m["hardware"], dict):
        raise CompiledFolderError(f"{mpath}: hardware: expected an object of HardwareConfig fields, "
                                  f"got {type(m['hardware']).__name__}")
    try:
        hw = HardwareConfig.from_dict(m["hardware"])
    except (ValueError, TypeError) as exc:
        raise CompiledFolderError(f"{mpath}: hardware: {exc}") from None
    if m["hardware_hash"] != hw.config_hash():
        raise bad("hardware_hash", f"{hw.config_hash()} (the hash of hardware)", m["hardware_hash"])
    if build:
        _check_build_manifest(m, mpath, bad)
    else:
        _check_compiled_manifest(m, hw, mpath, bad)
    return m


def _check_build_manifest(m: dict, mpath: Path, bad) -> None:
    """The link, clock and baud of a ``spikeforge build`` manifest (see :func:`load_manifest`)."""
    link, clock, baud = m["link"], m["clock_hz"], m.get("baud")
    if not isinstance(link, str) or link not in LINKS:
        raise bad("link", f"one of {', '.join(LINKS)}", link)
    if not _is_int(clock) or not 1 <= clock <= WORD_MAX:
        raise bad("clock_hz", f"an integer in 1..{WORD_MAX}", clock)
    divisor = m.get("uart_divisor")
    if link == "stream":
        if baud not in (None, 0) or isinstance(baud, bool):
            raise bad("baud", "0 or null (a stream link has no UART)", baud)
        if divisor is not None:
            raise bad("uart_divisor", "none (null) on a stream link", divisor)
        return
    if not _is_int(baud) or not 1 <= baud <= WORD_MAX:
        raise bad("baud", f"an integer in 1..{WORD_MAX}", baud)
    try:
        div = uart_divisor(clock, baud)
    except ValueError as exc:
        raise CompiledFolderError(f"{mpath}: baud: {exc}") from None
    if "uart_divisor" in m and divisor != div:
        raise bad("uart_divisor", f"{div} ({clock} Hz / {baud} baud)", divisor)


def _check_compiled_manifest(m: dict, hw: HardwareConfig, mpath: Path, bad) -> None:
    """The steps, capacities and image files of a compiled manifest (see :func:`load_manifest`)."""
    layers, files = m["layers"], m["files"]
    if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
        raise bad("layers", "a list of step names", layers if not isinstance(layers, list) else
                  next(n for n in layers if not isinstance(n, str)))
    if not isinstance(files, dict):
        raise bad("files", f"an object with entries {', '.join(IMAGE_FILES)}", files)
    missing = [k for k in IMAGE_FILES if k not in files]
    unknown = sorted(set(files) - set(IMAGE_FILES))
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"unknown {', '.join(unknown)}"] if unknown else [])
        raise CompiledFolderError(f"{mpath}: files: {'; '.join(problems)} (expected {', '.join(IMAGE_FILES)})")
    for key, name in IMAGE_FILES.items():
        entry = files[key]
        if not isinstance(entry, dict) or set(entry) != {"file", "bytes", "sha256"}:
            raise bad(f"files.{key}", "an object with file, bytes, sha256", entry)
        if entry["file"] != name:
            raise bad(f"files.{key}.file", repr(name), entry["file"])
        if not _is_int(entry["bytes"]) or entry["bytes"] < 0:
            raise bad(f"files.{key}.bytes", "a non-negative integer", entry["bytes"])
        if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            raise bad(f"files.{key}.sha256", "64 hex digits", entry["sha256"])
    step = 4 * len(FIELDS)
    n_bytes = files["program"]["bytes"]
    if n_bytes % step:
        raise bad("files.program.bytes", f"a multiple of {step} (whole descriptors)", n_bytes)
    if len(layers) != n_bytes // step:
        raise bad("layers", f"{n_bytes // step} step names (one per descriptor of {IMAGE_FILES['program']}, "
                            f"{n_bytes} bytes)", len(layers))
    used = m.get("capacities_used", {})
    if not isinstance(used, dict):
        raise bad("capacities_used", "an object of memory rows", used)
    for key, value in used.items():
        limit = getattr(hw, key, None) if key.endswith("_rows") else None
        if limit is None:
            raise bad("capacities_used", "memory-row fields of HardwareConfig", key)
        if not _is_int(value) or not 0 <= value <= limit:
            raise bad(f"capacities_used.{key}", f"at most {limit} (hardware.{key})", value)
    if not isinstance(m.get("model", {}), dict):
        raise bad("model", "an object (the model's config)", m["model"])
    if "pixel_max" in m and (not _is_int(m["pixel_max"]) or m["pixel_max"] < 1):
        raise bad("pixel_max", "a positive integer", m["pixel_max"])
    domains = m.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(n, str) for n in domains):
        raise bad("domains", "a list of LIF domain names", domains)
    if "program_rows" in used and used["program_rows"] != len(layers):
        raise bad("capacities_used.program_rows", f"{len(layers)} (one row per step)", used["program_rows"])
    for key, name in IMAGE_FILES.items():
        _check_image(mpath.parent / name, files[key], mpath)


def _check_image(path: Path, entry: dict, mpath: Path) -> None:
    """``path`` has the size and SHA-256 that ``entry`` (of ``mpath``'s ``files``) records."""
    if not path.is_file():
        raise CompiledFolderError(f"{path}: missing (listed in {mpath})")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise CompiledFolderError(f"{path}: bytes: expected {entry['bytes']}, got {size} (the size {mpath.name} "
                                  f"records)")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != entry["sha256"]:
        raise CompiledFolderError(f"{path}: sha256: expected {entry['sha256']}, got {digest.hexdigest()} "
                                  f"(the file changed after {mpath.name} was written)")


def load_program(path) -> tuple[list[Descriptor], dict | None]:
    """Read ``program.bin``. With a ``manifest.json`` beside it, the folder is validated first
    (:func:`load_manifest`: every image's size and hash), the steps get the manifest's names, and
    the program is checked against the manifest's hardware: every ``op`` / ``kind`` / ``post`` is
    known, every field fits (:func:`~spikeforge.firmware.program.field_overflows`), and the last
    step, only it, is ``END``. Without a manifest the codes and ``END`` are still checked.
    Returns ``(descriptors, manifest or None)``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {not_a_file(path, 'program file')}")
    mpath = path.parent / MANIFEST
    manifest = load_manifest(mpath) if mpath.is_file() else None
    if manifest is not None and "layers" not in manifest:
        raise CompiledFolderError(f"{mpath}: a `spikeforge build` manifest (no layers), not a compiled model's: "
                                  f"{path.name} cannot be checked against it")
    blob = path.read_bytes()
    if manifest is not None and path.resolve() != (path.parent / IMAGE_FILES["program"]).resolve():
        _check_image(path, manifest["files"]["program"], mpath)    # another name: check this file too
    try:
        descs = unpack_program(blob, (manifest or {}).get("layers"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    _check_program(path, descs, HardwareConfig.from_dict(manifest["hardware"]) if manifest is not None else None)
    return descs, manifest


def _check_program(path: Path, descs: list[Descriptor], hw: HardwareConfig | None) -> None:
    """Known codes and ``END`` as the last step only; with ``hw`` (the manifest's), also fields
    that fit it and no more steps than its program memory holds."""
    end = OPS["END"]
    if hw is not None and len(descs) > hw.program_rows:
        raise CompiledFolderError(f"{path}: steps: expected at most {hw.program_rows} (hardware.program_rows), "
                                  f"got {len(descs)}")
    for i, d in enumerate(descs):
        where = f"{path}: step {i} ({d.name})"
        for name, codes in (("op", OPS), ("kind", KINDS), ("post", POSTS)):
            if getattr(d, name) not in codes.values():
                raise CompiledFolderError(f"{where}: {name}: expected one of 0..{max(codes.values())}, "
                                          f"got {getattr(d, name)}")
        bad = field_overflows(d, hw) if hw is not None else []
        if bad:
            raise CompiledFolderError(f"{where}: {'; '.join(bad)}")
        if d.op == end and i != len(descs) - 1:
            raise CompiledFolderError(f"{where}: END before the last step (step {len(descs) - 1})")
    if not descs:
        raise CompiledFolderError(f"{path}: expected a program ending with END, got no steps")
    if descs[-1].op != end:
        names = {v: k for k, v in OPS.items()}
        raise CompiledFolderError(f"{path}: step {len(descs) - 1} ({descs[-1].name}): expected the last step to be "
                                  f"END, got {names[descs[-1].op]}")
