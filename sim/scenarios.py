"""Constrained-random stimulus for each hardware block, with the expected outputs computed by the
golden op functions themselves (:mod:`spikeforge.model.golden`), never by a model of the RTL.

A :class:`Scenario` is simulator-neutral: configuration values, memory loads, input beats per
stream port and expected output beats per stream port. The cocotb bench
(:mod:`spikeforge.sim.benches.block_bench`) and the Amaranth-simulator runner
(:func:`spikeforge.sim.amaranth_bench.run_scenario`) both play it against a block.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial

import torch

from spikeforge.hdl import make_block, pool3x3s2_windows
from spikeforge.model import golden

__all__ = ["Scenario", "make_scenario", "sdsa_workload", "SCENARIOS", "BENCH_CONFIGS"]


@dataclass
class Scenario:
    """What to play against a block and what must come out of it."""

    block: str
    params: dict
    config: dict[str, int] = field(default_factory=dict)        # quasi-static input signals
    writes: dict[str, list] = field(default_factory=dict)       # always-ready load ports (memories)
    inputs: dict[str, list] = field(default_factory=dict)       # stream port -> payloads
    expected: dict[str, list] = field(default_factory=dict)     # stream port -> payloads (golden)
    transactions: int = 0                                       # units of work (vectors, beats...)

    @property
    def component(self):
        return make_block(self.block, **self.params)


def _rates(rng: random.Random):
    """Firing rates that cover silence, sparse, dense and saturated inputs."""
    return rng.choice([0.0, 0.05, 0.25, 1.0, rng.random()])


def _spike_tensor(g: torch.Generator, shape, rate: float) -> torch.Tensor:
    return (torch.rand(shape, generator=g) < rate).to(torch.int64)


def _rand_int(g: torch.Generator, bits: int, shape) -> torch.Tensor:
    lo, hi = golden.signed_range(bits)
    return torch.randint(lo, hi + 1, shape, generator=g)


def _groups(n: int, p: int) -> int:
    return -(-n // p)


def _pad_channels(t: torch.Tensor, p: int, dim: int = 0, value: int = 0) -> torch.Tensor:
    """Pad dimension ``dim`` to a multiple of P lanes (lanes beyond the layer's channels)."""
    pad = _groups(t.shape[dim], p) * p - t.shape[dim]
    if not pad:
        return t
    shape = list(t.shape)
    shape[dim] = pad
    return torch.cat([t, torch.full(shape, value, dtype=t.dtype)], dim)


def _lanes(t: torch.Tensor, g: int, p: int) -> list[int]:
    return [int(v) for v in t[g * p:(g + 1) * p]]


def _lane_groups(block: str, params, rng):
    """The block (not elaborated), its lanes P, a random channel count C within its capacity and
    ``ceil(C / P)`` groups: the common start of the lane-group scenarios."""
    dut = make_block(block, elaborated=False, **params)
    c = rng.randint(1, dut.lanes * dut.group_capacity)
    return dut, dut.lanes, c, _groups(c, dut.lanes)


def _bits(t: torch.Tensor) -> int:
    return sum(int(b) << i for i, b in enumerate(t.tolist()))


# ------------------------------------------------------------------------------------------ blocks


def _events(spikes: torch.Tensor) -> tuple[list[dict], list[dict]]:
    """The address-event beats of a 0/1 vector, and the expected ones (identical: set-bit order)."""
    idx = torch.nonzero(spikes).flatten().tolist()
    if not idx:
        return [{"addr": 0, "last": 1, "empty": 1}]
    return [{"addr": a, "last": int(i == len(idx) - 1), "empty": 0} for i, a in enumerate(idx)]


def spike_encoder(params, n, rng, g) -> Scenario:
    enc = make_block("spike_encoder", elaborated=False, **params)
    sc = Scenario("spike_encoder", params, transactions=n)
    chunks, events = [], []
    for _ in range(n):
        length = rng.randint(1, enc.capacity)
        s = _spike_tensor(g, (length,), _rates(rng))
        chunks += enc.chunk_beats(s.tolist())
        events += _events(s)  # expected: the addresses of the set bits, in order
    sc.inputs["chunks"], sc.expected["events"] = chunks, events
    return sc


def _accumulation(block: str, params, n, rng, g) -> Scenario:
    dut = make_block(block, elaborated=False, **params)
    acc = dut.accumulator if block == "synaptic_engine" else dut
    p = acc.lanes
    c_in = rng.randint(1, acc.in_capacity)
    c_out = rng.randint(1, p * acc.group_capacity)
    shift = rng.randint(0, min(acc.max_shift, 3))
    w = _rand_int(g, acc.weight_bits, (c_out, c_in))
    # Headroom: the largest possible sum must fit acc_bits (the compiler's width rule).
    worst = (1 << (acc.weight_bits - 1 + shift)) * c_in
    bias_bits = max(2, min(acc.acc_bits - 1, (((1 << (acc.acc_bits - 1)) - 1 - worst).bit_length())))
    if worst >= 1 << (acc.acc_bits - 1):
        raise ValueError(f"{block}: acc_bits {acc.acc_bits} too narrow for C_in {c_in}, w_bits {acc.weight_bits}")
    bias = _rand_int(g, bias_bits, (c_out,))
    n_groups = _groups(c_out, p)
    sc = Scenario(block, params, transactions=n, config={"n_groups": n_groups, "weight_shift": shift})
    weight_rows, bias_rows = dut.weight_rows(w.tolist()), dut.bias_rows(bias.tolist())
    if block == "sparse_accumulator":
        # Place the layer at the top of the memories, groups C_in rows apart (as the accelerator does).
        wbase, bbase = acc.weight_depth - n_groups * c_in, acc.bias_depth - n_groups
        sc.config.update(weight_base=wbase, n_columns=c_in, bias_base=bbase)
        weight_rows = [(wbase + (a // acc.in_capacity) * c_in + a % acc.in_capacity, d) for a, d in weight_rows]
        bias_rows = [(bbase + a, d) for a, d in bias_rows]
    sc.writes["weight_write"] = [{"addr": a, "data": d} for a, d in weight_rows]
    sc.writes["bias_write"] = [{"addr": a, "data": d} for a, d in bias_rows]
    spikes = torch.stack([_spike_tensor(g, (c_in,), _rates(rng)) for _ in range(n)])
    sums = golden.sparse_accumulate(spikes, _pad_channels(w, p), _pad_channels(bias, p),
                                    acc_bits=acc.acc_bits, weight_shift=shift)
    ins, outs = [], []
    for s, row in zip(spikes, sums):
        ins += dut.encoder.chunk_beats(s.tolist()) if block == "synaptic_engine" else _events(s)
        outs += [{"acc": _lanes(row, k, p), "group": k, "last": int(k == n_groups - 1)} for k in range(n_groups)]
    sc.inputs["chunks" if block == "synaptic_engine" else "events"] = ins
    sc.expected["result"] = outs
    return sc


def lif_array(params, n, rng, g) -> Scenario:
    dut, p, c, n_groups = _lane_groups("lif_array", params, rng)
    steps = 4
    tokens = max(1, _groups(n, steps * n_groups))
    lo, hi = golden.signed_range(dut.v_bits)
    th = torch.randint(1, max(2, hi // 4), (c,), generator=g)
    th[0] = hi  # a neuron at the largest threshold: saturation, no spike
    # Currents across the whole input range (saturate the membrane) and near the thresholds.
    x = torch.where(torch.rand((steps, tokens, c), generator=g) < 0.2,
                    _rand_int(g, dut.in_bits, (steps, tokens, c)),
                    torch.randint(-int(th.max()), 3 * int(th.max()), (steps, tokens, c), generator=g))
    x = x.clamp(*golden.signed_range(dut.in_bits))
    spikes, v = golden.lif(x, th, shift=dut.shift, v_bits=dut.v_bits, return_membrane=True)
    th_p = _pad_channels(th, p, value=hi)
    xp, sp, vp = (_pad_channels(t, p, dim=2) for t in (x, spikes, v))
    sc = Scenario("lif_array", params, transactions=steps * tokens * n_groups)
    sc.writes["threshold_write"] = [{"addr": a, "data": d} for a, d in dut.threshold_rows(th_p.tolist())]
    ins, outs = [], []
    for t in range(steps):
        for k in range(tokens):
            for gr in range(n_groups):
                v_in = vp[t - 1, k] if t else torch.zeros_like(vp[0, k])
                ins.append({"x": _lanes(xp[t, k], gr, p), "v": _lanes(v_in, gr, p), "group": gr})
                outs.append({"spikes": _bits(sp[t, k, gr * p:(gr + 1) * p]), "v": _lanes(vp[t, k], gr, p),
                             "group": gr})
    sc.inputs["i"], sc.expected["o"] = ins, outs
    return sc


def _sdsa_steps(sc: Scenario, dut, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Append the ``kv`` / ``q`` beats of ``[T, C, N]`` spike tensors (one inference: ``t0`` on its
    first beat) and the expected ``o`` beats (:func:`golden.sdsa`) to ``sc``."""
    p, n_groups = dut.lanes, sc.config["n_groups"]
    out, _, _ = golden.sdsa(q, k, v, shift=dut.shift)
    q, k, v, out = (_pad_channels(t, p, dim=1) for t in (q, k, v, out))
    kv, qs, outs = (sc.inputs.setdefault("kv", []), sc.inputs.setdefault("q", []), sc.expected.setdefault("o", []))
    for t in range(q.shape[0]):
        beats = [(n_, gr) for n_ in range(q.shape[2]) for gr in range(n_groups)]
        for i, (n_, gr) in enumerate(beats):
            last = int(i == len(beats) - 1)
            sl = slice(gr * p, (gr + 1) * p)
            kv.append({"k": _bits(k[t, sl, n_]), "v": _bits(v[t, sl, n_]), "group": gr,
                       "t0": int(t == 0 and i == 0), "last": last})
            qs.append({"q": _bits(q[t, sl, n_]), "group": gr, "last": last})
            outs.append({"spikes": _bits(out[t, sl, n_]), "group": gr, "last": last})
    sc.transactions = len(outs)


def sdsa_unit(params, n, rng, g) -> Scenario:
    dut, _, c, n_groups = _lane_groups("sdsa_unit", params, rng)
    sc = Scenario("sdsa_unit", params, config={"n_groups": n_groups})
    while sc.transactions < n:
        steps, tokens = rng.randint(1, 4), rng.randint(1, dut.token_capacity)
        rate_k, rate_v, rate_q = _rates(rng), _rates(rng), _rates(rng)  # (drawn in this order)
        q, k, v = (_spike_tensor(g, (steps, c, tokens), r) for r in (rate_q, rate_k, rate_v))
        _sdsa_steps(sc, dut, q, k, v)
    return sc


def sdsa_workload(lanes: int, channels: int, tokens: int, steps: int = 1, rate: float = 0.25,
                  seed: int = 0) -> Scenario:
    """One attention of ``tokens`` N x ``channels`` C over ``steps`` time steps on an SDSAUnit sized
    for it (random Q, K, V at firing ``rate``): the workload of the linear-attention benchmark."""
    params = dict(lanes=lanes, group_capacity=_groups(channels, lanes), token_capacity=tokens)
    dut = make_block("sdsa_unit", elaborated=False, **params)
    sc = Scenario("sdsa_unit", params, config={"n_groups": params["group_capacity"]})
    g = torch.Generator().manual_seed(seed)
    q, k, v = (_spike_tensor(g, (steps, channels, tokens), rate) for _ in range(3))
    _sdsa_steps(sc, dut, q, k, v)
    return sc


def _pool(block: str, params, n, rng, g) -> Scenario:
    dut, p, c, n_groups = _lane_groups(block, params, rng)
    sc = Scenario(block, params)
    ins, outs = [], []
    while len(outs) < n:
        h, w = rng.randint(1, 9), rng.randint(1, 9)
        if block == "or_pool":
            x = _spike_tensor(g, (c, h, w), _rates(rng))
            y = golden.or_pool(x)
        else:
            x = _rand_int(g, dut.value_bits, (c, h, w))
            y = golden.max_pool(x)
        x, y = _pad_channels(x, p), _pad_channels(y, p)
        wo = y.shape[2]
        for o, window in enumerate(pool3x3s2_windows(h, w)):
            for i, (yy, xx) in enumerate(window):
                for gr in range(n_groups):
                    ins.append({"x": _lanes(x[:, yy, xx], gr, p), "group": gr,
                                "first": int(i == 0), "last": int(i == len(window) - 1)})
            outs += [{"y": _lanes(y[:, o // wo, o % wo], gr, p), "group": gr} for gr in range(n_groups)]
    sc.inputs["i"], sc.expected["o"], sc.transactions = ins, outs, len(outs)
    return sc


def token_sum(params, n, rng, g) -> Scenario:
    dut, p, c, n_groups = _lane_groups("token_sum", params, rng)
    sc = Scenario("token_sum", params)
    max_tokens = 1 << (dut.sum_bits - dut.u_bits)  # N values of u_bits always fit sum_bits
    ins, outs = [], []
    while len(outs) < n:
        h, w = rng.randint(1, 8), rng.randint(1, 8)
        h = max(1, min(h, max_tokens // w))
        u = _rand_int(g, dut.u_bits, (c, h, w))
        s = _pad_channels(golden.token_sum(u), p)
        u = _pad_channels(u, p).flatten(1)
        for tok in range(h * w):
            for gr in range(n_groups):
                ins.append({"x": _lanes(u[:, tok], gr, p), "group": gr,
                            "first": int(tok == 0), "last": int(tok == h * w - 1)})
        outs += [{"y": _lanes(s, gr, p), "group": gr} for gr in range(n_groups)]
    sc.inputs["i"], sc.expected["o"], sc.transactions = ins, outs, len(outs)
    return sc


def shortcut_adder(params, n, rng, g) -> Scenario:
    dut = make_block("shortcut_adder", elaborated=False, **params)
    p = dut.lanes
    sc = Scenario("shortcut_adder", params, transactions=n)
    lo, hi = golden.signed_range(dut.u_bits)
    u = _rand_int(g, dut.u_bits, (n, p))
    x = _rand_int(g, dut.x_bits, (n, p))
    x = torch.minimum(torch.maximum(x, lo - u), hi - u)  # keep the stream in range (no overflow here)
    total = golden.shortcut_add(u, x, u_bits=dut.u_bits)
    sc.inputs["i"] = [{"u": a.tolist(), "x": b.tolist()} for a, b in zip(u, x)]
    sc.expected["o"] = [{"u": s.tolist()} for s in total]
    return sc


SCENARIOS = {
    "spike_encoder": spike_encoder,
    "sparse_accumulator": partial(_accumulation, "sparse_accumulator"),
    "synaptic_engine": partial(_accumulation, "synaptic_engine"),
    "lif_array": lif_array,
    "sdsa_unit": sdsa_unit,
    "max_pool": partial(_pool, "max_pool"),
    "or_pool": partial(_pool, "or_pool"),
    "token_sum": token_sum,
    "shortcut_adder": shortcut_adder,
}


def make_scenario(block: str, params: dict, transactions: int = 1000, seed: int = 0) -> Scenario:
    """A random scenario of at least ``transactions`` units of work for ``block`` built with ``params``."""
    if block not in SCENARIOS:
        raise ValueError(f"no scenario for block {block!r}; blocks: {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    return SCENARIOS[block](params, transactions, rng, g)


#: Two parameterisations per block (lanes 4 and 16, two widths each) that the cocotb benches run on
#: both simulators; the Amaranth-simulator tests add edge cases (1 and 64 lanes).
BENCH_CONFIGS: dict[str, list[dict]] = {
    "spike_encoder": [dict(width=8, capacity=32), dict(width=32, capacity=128)],
    "sparse_accumulator": [
        dict(lanes=4, weight_bits=6, acc_bits=16, in_capacity=32, group_capacity=3),
        dict(lanes=16, weight_bits=8, acc_bits=20, in_capacity=64, group_capacity=2)],
    "synaptic_engine": [
        dict(lanes=4, weight_bits=6, acc_bits=16, in_capacity=32, group_capacity=3, chunk_width=8),
        dict(lanes=16, weight_bits=8, acc_bits=20, in_capacity=64, group_capacity=2, chunk_width=16)],
    "lif_array": [dict(lanes=4, in_bits=14, v_bits=10, group_capacity=3),
                  dict(lanes=16, in_bits=16, v_bits=16, group_capacity=2)],
    "sdsa_unit": [dict(lanes=4, group_capacity=3, token_capacity=9),
                  dict(lanes=16, group_capacity=2, token_capacity=64)],
    "max_pool": [dict(lanes=4, value_bits=8, group_capacity=2), dict(lanes=16, value_bits=16, group_capacity=2)],
    "or_pool": [dict(lanes=4, group_capacity=2), dict(lanes=16, group_capacity=2)],
    "token_sum": [dict(lanes=4, u_bits=8, sum_bits=12, group_capacity=2),
                  dict(lanes=16, u_bits=16, sum_bits=24, group_capacity=2)],
    "shortcut_adder": [dict(lanes=4, u_bits=8, x_bits=10), dict(lanes=16, u_bits=16, x_bits=16)],
}
