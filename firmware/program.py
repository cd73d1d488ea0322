"""The accelerator's program format: layer descriptors, memory spaces and the hardware config.

A program is a list of **descriptors**, one per layer step, each :data:`FIELDS` as 32-bit
unsigned words (one word per field, in that order). The sequencer fetches one descriptor per
step and stops at ``op = END``. ``docs/firmware.md`` documents every field.

:class:`HardwareConfig` is the generation-time configuration of one accelerator (lanes, widths,
capacities); its :meth:`~HardwareConfig.config_hash` ties a compiled program to the hardware
that can run it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from amaranth.lib.enum import IntEnum

# The integer contract's bounds: the largest ``weight_shift`` of a CONV (the accumulator's shifter; the
# quantizer caps shifts at it) and the widest datapath width.
from spikeforge.model.limits import MAX_WEIGHT_SHIFT, MAX_WIDTH_BITS

__all__ = ["FORMAT_VERSION", "MAX_WEIGHT_SHIFT", "FIELDS", "Op", "Kind", "Post", "Space", "OPS", "KINDS", "POSTS", "SPACES", "HardwareConfig", "Descriptor",
           "pack_program", "unpack_program", "pack_lanes", "ceil_log2", "row_bits", "words_per_row", "space_rows", "row_words", "write_port_layout",
           "field_bits", "field_max", "field_overflows", "FIELD_LIMITS",
           "MAX_LANES", "MAX_WIDTH_BITS", "MAX_CHANNELS", "MAX_MAP_SIDE", "MAX_STEPS", "MAX_MEMORY_ROWS",
           "HARDWARE_LIMITS", "lanes_problem", "MAX_MEMORY_BITS", "memory_bits", "memory_problem", "WORD_MAX",
           "LINKS", "uart_divisor", "UART_BITS_PER_BYTE", "uart_wire_seconds", "step_listing"]

#: Version of the program / weight-image / manifest format.
FORMAT_VERSION = 1

#: Descriptor fields, in word order.
FIELDS = (
    "op", "kind", "post", "height", "width", "steps", "cin", "groups", "cout",
    "weight_base", "n_columns", "bias_base", "weight_shift", "th_base", "in_base", "out_base",
    "row_stride", "u_pos_stride", "u_row_stride", "out_height", "out_width", "repeat", "u_groups",
)


class Op(IntEnum, shape=3):
    """``op``: what the step does."""

    END = 0
    CONV = 1
    LIF_U = 2
    SDSA = 3
    GAP = 4
    POOL_OR = 5


class Kind(IntEnum, shape=2):
    """``kind`` of a CONV: its input and window (named ``1x1``, ``3x3``, ``pixel3x3`` in :data:`KINDS`)."""

    CONV_1X1 = 0
    CONV_3X3 = 1
    PIXEL_3X3 = 2


class Post(IntEnum, shape=3):
    """``post``: what happens to each group of P accumulator sums (or U values, token sums)."""

    LIF = 0
    U_WRITE = 1
    U_ADD = 2
    U_MAXPOOL = 3
    LOGITS = 4


class Space(IntEnum, shape=3):
    """Memory spaces of the accelerator's write port (``space`` field of a write)."""

    PROGRAM = 0
    WEIGHTS = 1
    BIASES = 2
    THRESHOLDS = 3
    PIXELS = 4


# The codes by the names programs, files and messages use (``OPS["CONV"]``; the values are the
# enum members, which compare and pack as their integers).
#: :class:`Op` by name.
OPS = {o.name: o for o in Op}
#: :class:`Kind` by name.
KINDS = {"1x1": Kind.CONV_1X1, "3x3": Kind.CONV_3X3, "pixel3x3": Kind.PIXEL_3X3}
#: :class:`Post` by name.
POSTS = {p.name: p for p in Post}
#: :class:`Space` by the name of the memory (``SPACES["weights"]``).
SPACES = {sp.name.lower(): sp for sp in Space}
#: Largest 32-bit word: a descriptor field, and a build's clock (Hz) and baud as HELLO reports them.
WORD_MAX = (1 << 32) - 1
#: Link kinds of a board's host link, as HELLO reports them (``uart``: a UART PHY; ``stream``: an
#: AXI4-Stream byte port for a PCIe DMA).
LINKS = {"uart": 0, "stream": 1}


def uart_divisor(clock_hz: int, baud: int) -> int:
    """Clock cycles per UART bit; :class:`ValueError` when the baud cannot be made within 2 %."""
    if baud <= 0 or clock_hz <= 0:
        raise ValueError(f"UART: clock {clock_hz} Hz and baud {baud} must be positive")
    div = round(clock_hz / baud)
    if div < 4:
        raise ValueError(f"UART: {baud} baud needs at least 4 clock cycles per bit; a {clock_hz} Hz clock gives "
                         f"{clock_hz / baud:.2f}")
    err = abs(clock_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"UART: {baud} baud from a {clock_hz} Hz clock is off by {100 * err:.1f} % (limit 2 %)")
    return div


#: Bits a byte takes on the UART link (8N1: start bit, 8 data bits, stop bit).
UART_BITS_PER_BYTE = 10


def uart_wire_seconds(nbytes: float, baud: int) -> float:
    """Seconds ``nbytes`` take on the UART link at ``baud`` (:data:`UART_BITS_PER_BYTE` bits a byte,
    no gaps between bytes): the wire time of a transfer, whatever the host and device add to it."""
    return UART_BITS_PER_BYTE * nbytes / baud


def ceil_log2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


# ------------------------------------------------------------------ limits of a HardwareConfig
# The largest value of each integer field of :class:`HardwareConfig` (the smallest is 1), so that
# no configuration implies an unbounded memory or datapath in the generator, the simulators or
# the driver. Each limit is stated once, here.

#: Lanes P: the accelerator is generated for 1..64 lanes (README). P is a power of two: it divides
#: ``max_channels`` (a power of two, a spike-buffer row), and a row holds ``max_channels // P`` groups.
MAX_LANES = 64
#: Widest spike-buffer row (``max_channels`` bits) and so the most channels of any layer (Q, K and V
#: together), of U (``max_embed``), of a 3x3 layer's or the image's input, of the classes (the head
#: is a layer) and of ``spike_row_words``: 4096 holds an embedding of 1024 (Q/K/V together: 3072
#: channels; an MLP of ratio 4: 4096).
MAX_CHANNELS = 4096
#: Largest map side (``max_height``, ``max_width``): the pixel memory has ``max_height * max_width``
#: rows, so this keeps it within :data:`MAX_MEMORY_ROWS`.
MAX_MAP_SIDE = 1024
#: Most time steps T (``max_steps``): spiking models run 1..16; 256 leaves room.
MAX_STEPS = 256
#: Deepest memory (``weight_rows``, ``bias_rows``, ``threshold_rows``, ``spike_rows``, ``u_rows``,
#: ``program_rows``): 2**20 rows, 128 times the ULX3S's 8192 weight rows, and still a bounded
#: image in a simulator or the driver.
MAX_MEMORY_ROWS = 1 << 20

#: The largest value of each integer :class:`HardwareConfig` field (the limits above).
HARDWARE_LIMITS = {
    "lanes": MAX_LANES,
    **dict.fromkeys(("weight_bits", "acc_bits", "u_bits", "v_bits", "gap_bits", "logit_bits", "pixel_bits"),
                    MAX_WIDTH_BITS),
    **dict.fromkeys(("max_channels", "max_embed", "max_in_channels", "max_3x3_channels", "max_classes",
                     "spike_row_words"), MAX_CHANNELS),
    "max_height": MAX_MAP_SIDE, "max_width": MAX_MAP_SIDE, "max_steps": MAX_STEPS,
    **dict.fromkeys(("weight_rows", "bias_rows", "threshold_rows", "spike_rows", "u_rows", "program_rows"),
                    MAX_MEMORY_ROWS),
}


def lanes_problem(lanes) -> str | None:
    """What is wrong with ``lanes`` as the accelerator's P (``None`` when it is a power of two in
    1..:data:`MAX_LANES`), as ``"expected ..., got ..."``: the one check of P."""
    if isinstance(lanes, int) and not isinstance(lanes, bool) and 1 <= lanes <= MAX_LANES \
            and not lanes & (lanes - 1):
        return None
    return f"expected a power of two in 1..{MAX_LANES}, got {lanes!r}"


@dataclass(frozen=True)
class HardwareConfig:
    """Generation-time parameters of one accelerator (an overlay: any model within them runs).

    Widths: ``weight_bits``, ``acc_bits`` (accumulators, biases), ``u_bits`` (residual stream U),
    ``v_bits`` (every LIF membrane and threshold, the head LIF's included: at least the model's
    ``v_bits`` and ``gap_bits``), ``gap_bits`` (token sums), ``logit_bits``. Capacities:
    ``max_channels`` (spike-buffer row: any layer's input or output channels, Q/K/V together),
    ``max_embed`` (U channels), ``max_height``/``max_width`` (feature maps), ``max_steps`` (T),
    ``max_in_channels`` (image channels), memory rows (``weight_rows``, ``bias_rows``,
    ``threshold_rows``, ``spike_rows``, ``u_rows``, ``program_rows``), ``max_classes``.
    ``spike_row_words``: the spike buffer stores each ``max_channels``-bit row as this many words
    of :attr:`spike_word_bits` (1: whole rows); narrower words make a narrower spike datapath
    (encoder, chunk FIFO, OR-pool) at the cost of one read per word of a wide row (small FPGAs).
    ``single_port_buffers``: the spike buffer and U each get one address port, shared by reads and
    writes (a write takes the port for its cycle and the readers wait; a U read-modify-write takes
    two cycles), so that they map to single-port RAM such as the iCE40UP5K's SPRAM.
    ``profile_counters``: the busy and stall counters (``accumulator_busy`` ... ``reader_busy``);
    without them (small FPGAs) the cycles, events and SOPs counters remain and the others read 0.
    ``event_driven=False`` builds the dense baseline.

    Each integer field is 1 .. :data:`HARDWARE_LIMITS` (``lanes``: a power of two); a bad value is
    a :class:`ValueError` naming the field, checked before the fields derived from it.
    """

    lanes: int = 16
    weight_bits: int = 8
    acc_bits: int = 16
    u_bits: int = 16
    v_bits: int = 20
    gap_bits: int = 20
    logit_bits: int = 16
    pixel_bits: int = 5
    max_channels: int = 128
    max_embed: int = 32
    max_height: int = 8
    max_width: int = 8
    max_steps: int = 4
    max_in_channels: int = 1
    max_3x3_channels: int = 32
    weight_rows: int = 4096
    bias_rows: int = 64
    threshold_rows: int = 64
    spike_rows: int = 1024
    u_rows: int = 256
    program_rows: int = 32
    max_classes: int = 16
    spike_row_words: int = 1
    single_port_buffers: bool = False
    profile_counters: bool = True
    event_driven: bool = True

    @classmethod
    def bool_fields(cls) -> tuple[str, ...]:
        """The on/off fields (the rest are positive integers)."""
        return tuple(f.name for f in dataclasses.fields(cls) if isinstance(f.default, bool))

    def __post_init__(self):
        flags = self.bool_fields()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in flags:
                if not isinstance(v, bool):
                    raise ValueError(f"HardwareConfig.{f.name}: expected a bool, got {v!r}")
            elif not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"HardwareConfig.{f.name}: expected a positive integer, got {v!r}")
            elif f.name == "lanes":
                problem = lanes_problem(v)
                if problem:
                    raise ValueError(f"HardwareConfig.lanes: {problem}")
            elif v > HARDWARE_LIMITS[f.name]:
                raise ValueError(f"HardwareConfig.{f.name}: expected at most {HARDWARE_LIMITS[f.name]} "
                                 f"(firmware.program.HARDWARE_LIMITS), got {v}")
        if self.max_channels & (self.max_channels - 1) or self.max_channels % self.lanes:
            raise ValueError(f"HardwareConfig.max_channels: must be a power of two and a multiple of "
                             f"lanes {self.lanes}, got {self.max_channels}")
        if self.max_embed % self.lanes:
            raise ValueError(f"HardwareConfig.max_embed: must be a multiple of lanes {self.lanes}, got {self.max_embed}")
        words = self.spike_row_words
        if words & (words - 1) or self.max_channels % (words * self.lanes):
            raise ValueError(f"HardwareConfig.spike_row_words: must be a power of two that leaves words of a "
                             f"multiple of lanes {self.lanes} bits in a {self.max_channels}-bit row, got {words}")
        if self.max_in_channels << self.plane_bits > self.spike_word_bits:
            raise ValueError(f"HardwareConfig: max_in_channels {self.max_in_channels} x {1 << self.plane_bits} "
                             f"bit-planes exceed the {self.spike_word_bits}-bit chunk")

    # derived -----------------------------------------------------------------------------
    @property
    def plane_bits(self) -> int:
        """Bits of a bit-plane index: pixels are packed ``2**plane_bits`` bits per channel."""
        return max(1, ceil_log2(self.pixel_bits))

    @property
    def spike_word_bits(self) -> int:
        """Bits of one spike-buffer word (a chunk of the spike datapath)."""
        return self.max_channels // self.spike_row_words

    @property
    def groups(self) -> int:
        """Channel groups of a spike-buffer row."""
        return self.max_channels // self.lanes

    @property
    def in_columns(self) -> int:
        """Largest weight column index + 1 of any layer (the accumulator's ``in_capacity``)."""
        return 1 << ceil_log2(max(self.max_channels, 9 * self.max_3x3_channels, 9 * self.max_in_channels))

    @property
    def max_positions(self) -> int:
        return self.max_height * self.max_width

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the config: names the hardware a program targets."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: dict) -> "HardwareConfig":
        """The config a manifest or a HELLO reply records: ``d`` must hold every field (no defaults:
        a missing field would name other hardware) and no other; :class:`ValueError` names the
        fields otherwise (as the constructor does a bad value)."""
        if not isinstance(d, dict):
            raise ValueError(f"HardwareConfig: expected a dict of fields, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in set(d) - set(known))
        if unknown:
            raise ValueError(f"HardwareConfig: unknown field(s) {', '.join(unknown)}")
        missing = [k for k in known if k not in d]
        if missing:
            raise ValueError(f"HardwareConfig: missing field(s) {', '.join(missing)}")
        return cls(**d)


@dataclass
class Descriptor:
    """One program step: :data:`FIELDS` as attributes (unset fields are 0), plus a name for listings."""

    name: str = ""
    op: int = 0
    kind: int = 0
    post: int = 0
    height: int = 1
    width: int = 1
    steps: int = 1
    cin: int = 0
    groups: int = 1
    cout: int = 0
    weight_base: int = 0
    n_columns: int = 0
    bias_base: int = 0
    weight_shift: int = 0
    th_base: int = 0
    in_base: int = 0
    out_base: int = 0
    row_stride: int = 0
    u_pos_stride: int = 0
    u_row_stride: int = 0
    out_height: int = 1
    out_width: int = 1
    repeat: int = 1
    u_groups: int = 1

    def row_value(self) -> int:
        """The descriptor as one program-memory row: field ``k`` in bits ``32k .. 32k + 31``."""
        return sum(w << (32 * k) for k, w in enumerate(self.words()))

    def words(self) -> list[int]:
        out = []
        for f in FIELDS:
            v = getattr(self, f)
            if not isinstance(v, int) or not 0 <= v <= WORD_MAX:
                raise ValueError(f"descriptor {self.name or '?'}: field {f} = {v!r} is not a 32-bit unsigned integer")
            out.append(v)
        return out

    @classmethod
    def from_words(cls, words, name: str = "") -> "Descriptor":
        if len(words) != len(FIELDS):
            raise ValueError(f"a descriptor has {len(FIELDS)} words, got {len(words)}")
        return cls(name=name, **dict(zip(FIELDS, (int(w) for w in words))))


def pack_lanes(values, bits: int) -> int:
    """P signed lane values as one row integer: lane ``i`` (two's complement, ``bits`` wide) at bit ``i * bits``."""
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return out


def pack_program(descs: list[Descriptor]) -> bytes:
    """Little-endian 32-bit words, descriptor after descriptor."""
    return b"".join(w.to_bytes(4, "little") for d in descs for w in d.words())


def unpack_program(blob: bytes, names: list[str] | None = None) -> list[Descriptor]:
    n = len(FIELDS) * 4
    if len(blob) % n:
        raise ValueError(f"program image of {len(blob)} bytes is not a whole number of {n}-byte descriptors")
    descs = []
    for i in range(len(blob) // n):
        words = [int.from_bytes(blob[i * n + 4 * k:i * n + 4 * k + 4], "little") for k in range(len(FIELDS))]
        descs.append(Descriptor.from_words(words, names[i] if names and i < len(names) else f"step{i}"))
    return descs


def row_bits(hw: HardwareConfig) -> dict[str, int]:
    """Bits of one row of each memory space of the write port (:data:`SPACES`)."""
    p = hw.lanes
    return {"program": len(FIELDS) * 32, "weights": p * hw.weight_bits, "biases": p * hw.acc_bits,
            "thresholds": p * hw.v_bits, "pixels": hw.max_in_channels << hw.plane_bits}


def field_bits(hw: HardwareConfig) -> dict[str, int]:
    """Bits the accelerator keeps of each descriptor field (:data:`FIELDS`): enough for the largest
    value the field can take on ``hw`` (a map extent, a memory row, a channel count). The program
    is still written as 32-bit words; a word above its field's largest value (:func:`field_max`)
    marks the descriptor as invalid in hardware (the run stops with the error flag) instead of
    wrapping, and the compiler refuses such a program first (:func:`field_overflows`)."""
    def bits(largest: int) -> int:
        return max(1, int(largest).bit_length())

    h, w, t = bits(hw.max_height), bits(hw.max_width), bits(hw.max_steps)
    spike, u = bits(hw.spike_rows), bits(hw.u_rows)
    return {
        "op": bits(max(OPS.values())), "kind": bits(max(KINDS.values())), "post": bits(max(POSTS.values())),
        "height": h, "width": w, "steps": t, "cin": bits(hw.max_channels), "groups": bits(hw.groups),
        "cout": bits(max(hw.max_channels, hw.max_classes)), "weight_base": bits(hw.weight_rows),
        "n_columns": bits(hw.in_columns), "bias_base": bits(hw.bias_rows), "weight_shift": bits(MAX_WEIGHT_SHIFT),
        "th_base": bits(hw.threshold_rows), "in_base": spike, "out_base": spike,
        "row_stride": bits(hw.max_width * hw.max_steps), "u_pos_stride": u, "u_row_stride": u,
        "out_height": h, "out_width": w, "repeat": t, "u_groups": bits(hw.max_embed // hw.lanes),
    }


#: Fields whose largest value is below what their width holds (a word above it is invalid too).
FIELD_LIMITS = {"weight_shift": MAX_WEIGHT_SHIFT}


def field_max(hw: HardwareConfig) -> dict[str, int]:
    """The largest value the accelerator takes in each descriptor field on ``hw``: what its width
    holds, or its limit in :data:`FIELD_LIMITS`. The one bound both the compiler's check and the
    hardware's ``invalid`` mark use."""
    return {f: FIELD_LIMITS.get(f, (1 << k) - 1) for f, k in field_bits(hw).items()}


def field_overflows(desc: "Descriptor", hw: HardwareConfig) -> list[str]:
    """The fields of ``desc`` whose value does not fit the accelerator's field on ``hw`` (its width,
    or its limit in :data:`FIELD_LIMITS`), each as ``"field = value (needs N bits, the hardware
    keeps K)"`` or ``"field = value (the hardware takes at most M)"``; empty when the descriptor fits."""
    out = []
    bits = field_bits(hw)
    for f, largest in field_max(hw).items():
        v = getattr(desc, f)
        if v >> bits[f]:
            out.append(f"{f} = {v} (needs {v.bit_length()} bits, the hardware keeps {bits[f]})")
        elif v > largest:
            out.append(f"{f} = {v} (the hardware takes at most {largest})")
    return out


def words_per_row(hw: HardwareConfig) -> dict[str, int]:
    """32-bit words per row of each memory space (a row is written when its last word arrives)."""
    return {space: -(-bits // 32) for space, bits in row_bits(hw).items()}


def space_rows(hw: HardwareConfig) -> dict[str, int]:
    """Rows (memory depth) of each memory space of the write port."""
    return {"program": hw.program_rows, "weights": hw.weight_rows, "biases": hw.bias_rows,
            "thresholds": hw.threshold_rows, "pixels": hw.max_positions}


#: Most on-chip memory bits one generated accelerator may hold (:func:`memory_bits`): 32 Mbit, nine
#: times the ULX3S-85F's 3.7 Mbit of block RAM. Amaranth's Verilog generation grows with a memory's
#: size (65,536 x 128 bits took 76 s and 1.3 GB), so a larger design is refused before elaboration;
#: such models need external memory.
MAX_MEMORY_BITS = 32 << 20


def memory_bits(hw: HardwareConfig) -> dict[str, int]:
    """On-chip bits of each of the accelerator's memories on ``hw``: the write port's spaces, the
    spike buffer (``spike_rows`` x ``max_channels``) and U (``u_rows`` x P x ``u_bits``)."""
    depth, bits = space_rows(hw), row_bits(hw)
    out = {space: depth[space] * bits[space] for space in depth}
    out["spikes"] = hw.spike_rows * hw.max_channels
    out["u"] = hw.u_rows * hw.lanes * hw.u_bits
    return out


def memory_problem(hw: HardwareConfig) -> str | None:
    """Why ``hw``'s memories are too large to generate (above :data:`MAX_MEMORY_BITS`), or ``None``."""
    bits = memory_bits(hw)
    total = sum(bits.values())
    if total <= MAX_MEMORY_BITS:
        return None
    largest = ", ".join(f"{k} {v:,}" for k, v in sorted(bits.items(), key=lambda kv: -kv[1])[:3])
    return (f"its memories hold {total:,} bits ({largest}, ...), more than the {MAX_MEMORY_BITS:,} bits "
            f"(MAX_MEMORY_BITS) one generated accelerator may hold on chip; reduce the rows or the lanes")


def row_words(value: int, n: int) -> list[int]:
    """The ``n`` 32-bit words of a row integer, least significant first (the order the write port takes)."""
    return [(value >> (32 * k)) & 0xFFFFFFFF for k in range(n)]


def write_port_layout(hw: HardwareConfig) -> tuple[int, int]:
    """``(word_bits, addr_bits)`` of the accelerator's write port: a write's ``addr`` is
    ``row << word_bits | word`` (``word_bits`` fits the widest row's words, ``addr_bits`` the deepest space)."""
    word_bits = max(max(1, (w - 1).bit_length()) for w in words_per_row(hw).values())
    return word_bits, (max(space_rows(hw).values()) - 1).bit_length() + word_bits


def step_listing(d: Descriptor) -> dict:
    """The fields of ``d`` its op uses, readably: ``{"name", "op"}`` and, by op, ``kind``, ``post``,
    ``map`` (``HxW``, a POOL_OR's ``HxW -> H'xW'``), ``T`` (time steps; a CONV's ``repeat`` when it
    is above 1), ``cin``, ``cout``, ``groups``, ``weights`` (``base+groups x columns``), ``bias``,
    ``shift``, ``thresholds`` (the threshold base, ``""`` when the step has no LIF), ``input`` and
    ``output`` (``rows@BASE`` in the spike buffer, ``pixels``, ``U`` or ``logits``). Op, kind and
    post codes outside :data:`OPS`, :data:`KINDS`, :data:`POSTS` show as ``?CODE``. What
    ``spikeforge disasm`` prints."""
    def name(table: dict, code: int) -> str:
        return next((k for k, v in table.items() if v == code), f"?{code}")

    op = name(OPS, d.op)
    row = {"name": d.name, "op": op}
    if op == "CONV":
        lif = d.post == POSTS["LIF"]
        row.update(kind=name(KINDS, d.kind), post=name(POSTS, d.post), map=f"{d.height}x{d.width}",
                   T=d.steps if d.repeat == 1 else d.repeat, cin=d.cin, cout=d.cout, groups=d.groups,
                   weights=f"{d.weight_base}+{d.groups}x{d.n_columns}", bias=d.bias_base, shift=d.weight_shift,
                   thresholds=d.th_base if lif else "",
                   input=f"rows@{d.in_base}" if d.kind != KINDS["pixel3x3"] else "pixels",
                   output=f"rows@{d.out_base}" if lif else ("U" if d.post != POSTS["LOGITS"] else "logits"))
    elif op == "POOL_OR":
        row.update(map=f"{d.height}x{d.width} -> {d.out_height}x{d.out_width}", T=d.steps, cin=d.cin,
                   groups=d.groups, input=f"rows@{d.in_base}", output=f"rows@{d.out_base}")
    elif op in ("LIF_U", "GAP", "SDSA"):
        row.update(map=f"{d.height}x{d.width}", T=d.steps, cin=d.cin, groups=d.groups,
                   thresholds=d.th_base if op != "SDSA" else "",
                   input="U" if op != "SDSA" else f"rows@{d.in_base}", output=f"rows@{d.out_base}")
    return row
