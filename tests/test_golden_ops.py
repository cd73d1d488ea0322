"""Each golden op against an independent, loop-by-loop count on small random cases, and the
integer-only property of the whole golden forward."""

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spikeforge.model import golden as g


def _rand_spikes(gen, shape, p=0.3):
    return (torch.rand(shape, generator=gen) < p).to(torch.int64)


@pytest.mark.parametrize("c_in,c_out,shift", [(5, 3, 0), (16, 4, 2), (1, 7, 1)])
def test_sparse_accumulate_adds_columns_of_events(c_in, c_out, shift):
    gen = torch.Generator().manual_seed(c_in * 31 + c_out)
    w = torch.randint(-128, 128, (c_out, c_in), generator=gen)
    b = torch.randint(-1000, 1000, (c_out,), generator=gen)
    s = _rand_spikes(gen, (6, c_in))
    got = g.sparse_accumulate(s, w, b, weight_shift=shift)
    for row in range(6):
        acc = b.tolist()
        for c in range(c_in):
            if s[row, c]:
                for o in range(c_out):
                    acc[o] += int(w[o, c]) * (2 ** shift)
        assert got[row].tolist() == acc


def _scatter_conv3x3(s, w, b):
    """Event-driven reference: every spike scatters its weights to the in-map 3x3 neighbourhood."""
    n, c_in, h, wd = s.shape
    out = [[[[int(b[o])] * wd for _ in range(h)] for o in range(w.shape[0])] for _ in range(n)]
    for i, c, y, x in itertools.product(range(n), range(c_in), range(h), range(wd)):
        if s[i, c, y, x]:
            for o, dy, dx in itertools.product(range(w.shape[0]), (-1, 0, 1), (-1, 0, 1)):
                yo, xo = y - dy, x - dx
                if 0 <= yo < h and 0 <= xo < wd:
                    out[i][o][yo][xo] += int(w[o, c, dy + 1, dx + 1])
    return torch.tensor(out)


@pytest.mark.parametrize("c_in,c_out,h,w", [(2, 3, 4, 4), (3, 2, 5, 3), (1, 1, 1, 1)])
def test_conv3x3_accumulate_equals_event_scatter(c_in, c_out, h, w):
    gen = torch.Generator().manual_seed(h * 7 + w)
    wt = torch.randint(-8, 8, (c_out, c_in, 3, 3), generator=gen)
    b = torch.randint(-20, 20, (c_out,), generator=gen)
    s = _rand_spikes(gen, (2, c_in, h, w), 0.4)
    assert torch.equal(g.conv3x3_accumulate(s, wt, b), _scatter_conv3x3(s, wt, b))


def test_pixel_accumulate_equals_multiplication():
    gen = torch.Generator().manual_seed(5)
    wt = torch.randint(-128, 128, (4, 1, 3, 3), generator=gen)
    b = torch.randint(-500, 500, (4,), generator=gen)
    px = torch.randint(0, 17, (2, 1, 5, 5), generator=gen)
    got = g.pixel_accumulate(px, wt, b, pixel_bits=5)
    # Independent: multiply-accumulate with Python integers.
    for i, o, y, x in itertools.product(range(2), range(4), range(5), range(5)):
        acc = int(b[o])
        for dy, dx in itertools.product(range(3), range(3)):
            yy, xx = y + dy - 1, x + dx - 1
            if 0 <= yy < 5 and 0 <= xx < 5:
                acc += int(px[i, 0, yy, xx]) * int(wt[o, 0, dy, dx])
        assert int(got[i, o, y, x]) == acc
    with pytest.raises(ValueError, match=r"pixels must be in \[0, 31\]"):
        g.pixel_accumulate(px + 20, wt, b, pixel_bits=5)


@pytest.mark.parametrize("v_bits", [None, 6])
def test_lif_integer_formula(v_bits):
    gen = torch.Generator().manual_seed(11)
    x = torch.randint(-60, 80, (7, 3, 4), generator=gen)
    th = torch.tensor([5, 17, 30]).reshape(3, 1)
    s, v = g.lif(x, th, shift=1, v_bits=v_bits, return_membrane=True)
    for c, j in itertools.product(range(3), range(4)):
        mem = 0
        for t in range(7):
            h = mem + (int(x[t, c, j]) - mem) // 2   # floor division = arithmetic shift
            if v_bits is not None:
                h = max(-(1 << (v_bits - 1)), min((1 << (v_bits - 1)) - 1, h))
            fire = h >= int(th[c, 0])
            mem = 0 if fire else h
            assert int(s[t, c, j]) == int(fire) and int(v[t, c, j]) == mem


def test_lif_saturates_at_v_bits():
    x = torch.tensor([[100], [100], [-300]])
    s, v = g.lif(x, 1000, v_bits=8, return_membrane=True)
    assert v.flatten().tolist() == [50, 75, -113]       # unsaturated
    s, v = g.lif(torch.tensor([[-300], [-300]]), 1000, v_bits=8, return_membrane=True)
    assert v.flatten().tolist() == [-128, -128]         # -150 and -214 clamp to -128


def _pool_ref(x, pad):
    h, w = x.shape[-2:]
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = torch.full((*x.shape[:-2], ho, wo), pad)
    for yo, xo in itertools.product(range(ho), range(wo)):
        for dy, dx in itertools.product((-1, 0, 1), (-1, 0, 1)):
            y, xx = 2 * yo + dy, 2 * xo + dx
            if 0 <= y < h and 0 <= xx < w:
                out[..., yo, xo] = torch.maximum(out[..., yo, xo], x[..., y, xx])
    return out


@pytest.mark.parametrize("h,w", [(4, 4), (5, 3), (8, 8)])
def test_pools(h, w):
    gen = torch.Generator().manual_seed(h * w)
    s = _rand_spikes(gen, (2, 3, h, w), 0.2)
    assert torch.equal(g.or_pool(s), _pool_ref(s, 0))
    x = torch.randint(-1000, -10, (2, 3, h, w), generator=gen)  # all negative: padding must never win
    assert torch.equal(g.max_pool(x), _pool_ref(x, -(2 ** 62)))


def test_sdsa_hand_made():
    # T=2, C=3 channels, N=4 tokens.
    q = torch.tensor([[[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 1, 1]],
                      [[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]]])
    k = torch.tensor([[[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]],
                      [[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]])
    v = torch.tensor([[[1, 0, 1, 1], [1, 0, 1, 0], [0, 0, 1, 1]],
                      [[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 1]]])
    out, count, attn = g.sdsa(q, k, v)
    assert count.tolist() == [[2, 0, 0], [0, 2, 1]]
    assert attn.tolist() == [[1, 0, 0], [0, 1, 1]]       # fires iff the count is >= 1
    assert out.tolist() == [[[1, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
                            [[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]]]


def test_token_sum_and_shortcut_add():
    u = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    assert g.token_sum(u).tolist() == [[6, 22, 38], [54, 70, 86]]
    assert g.shortcut_add(torch.tensor([100]), torch.tensor([27]), u_bits=8).tolist() == [127]
    with pytest.raises(g.WidthOverflow, match=r"shortcut_add: value range \[128, 128\] does not fit 8 bits"):
        g.shortcut_add(torch.tensor([100]), torch.tensor([28]), u_bits=8)


def test_accumulator_overflow_is_refused_not_wrapped():
    w = torch.full((1, 4), 100)
    with pytest.raises(g.WidthOverflow, match="does not fit 9 bits"):
        g.sparse_accumulate(torch.ones(1, 4, dtype=torch.int64), w, torch.zeros(1, dtype=torch.int64), acc_bits=9)


@pytest.mark.parametrize("op,args", [
    (g.sparse_accumulate, (torch.ones(2, 3), torch.ones(4, 3, dtype=torch.int64))),
    (g.lif, (torch.ones(2, 3), 1)),
    (g.max_pool, (torch.ones(1, 1, 4, 4),)),
    (g.token_sum, (torch.ones(1, 2, 2, 2),)),
])
def test_float_inputs_are_refused(op, args):
    with pytest.raises(TypeError, match="expected an integer tensor, got torch.float32"):
        op(*args)


def test_spikes_must_be_binary():
    with pytest.raises(ValueError, match=r"spikes must be 0 or 1, got values in \[0, 2\]"):
        g.or_pool(torch.tensor([[[[0, 2], [1, 0]]]]))


class _DtypeRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.float_ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
                self.float_ops.append(str(func))
        return out


def test_golden_forward_uses_no_floating_point(qmodel8, digits):
    with _DtypeRecorder() as rec:
        logits = g.forward(qmodel8, digits.test_pixels[:4])
    assert logits.dtype == torch.int64
    assert rec.float_ops == []


def test_the_recorder_does_see_floats():
    """The no-float check above is only worth something if the recorder catches a float op."""
    with _DtypeRecorder() as rec:
        torch.ones(2, dtype=torch.int64) / 2
    assert rec.float_ops


def test_forward_batched_equals_forward(qmodel8, digits):
    """Split into one-image batches (a budget below one image), the logits are the same."""
    from spikeforge.model import golden

    pixels = digits.test_pixels[:7]
    assert torch.equal(golden.forward_batched(qmodel8, pixels, budget_bytes=1), golden.forward(qmodel8, pixels))


# ------------------------------------------------------------------ Meta-SpikeFormer (V2) ops


def _scatter_conv(s, w, b, stride, pad, depthwise=False):
    """Event-driven reference for a k x k / stride / zero-pad conv: every input spike scatters its
    weight taps to the outputs whose window holds it (depthwise: only its own channel's)."""
    n, c_in, h, wd = s.shape
    k = w.shape[-1]
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    c_out = w.shape[0]
    out = [[[[int(b[o]) if b is not None else 0] * wo for _ in range(ho)] for o in range(c_out)] for _ in range(n)]
    for i, c, y, x in itertools.product(range(n), range(c_in), range(h), range(wd)):
        if not s[i, c, y, x]:
            continue
        for yo, xo in itertools.product(range(ho), range(wo)):
            dy, dx = y + pad - stride * yo, x + pad - stride * xo
            if 0 <= dy < k and 0 <= dx < k:
                for o in ([c] if depthwise else range(c_out)):
                    out[i][o][yo][xo] += int(w[o, 0 if depthwise else c, dy, dx])
    return torch.tensor(out)


@pytest.mark.parametrize("k,stride,pad,h,w", [(3, 2, 1, 5, 6), (7, 2, 3, 8, 8), (3, 1, 1, 4, 4), (7, 1, 3, 3, 5),
                                              (3, 2, 0, 7, 7), (1, 1, 0, 3, 2)])
def test_conv_accumulate_equals_event_scatter(k, stride, pad, h, w):
    gen = torch.Generator().manual_seed(k * 100 + stride * 10 + h)
    wt = torch.randint(-8, 8, (3, 2, k, k), generator=gen)
    b = torch.randint(-20, 20, (3,), generator=gen)
    s = _rand_spikes(gen, (2, 2, h, w), 0.4)
    got = g.conv_accumulate(s, wt, b, stride=stride, padding=pad)
    assert torch.equal(got, _scatter_conv(s, wt, b, stride, pad))


def test_conv_accumulate_3x3_is_conv3x3_accumulate():
    gen = torch.Generator().manual_seed(3)
    wt = torch.randint(-8, 8, (4, 3, 3, 3), generator=gen)
    s = _rand_spikes(gen, (2, 3, 5, 4))
    assert torch.equal(g.conv_accumulate(s, wt, weight_shift=2), g.conv3x3_accumulate(s, wt, weight_shift=2))


@pytest.mark.parametrize("k,stride,pad", [(7, 1, 3), (3, 1, 1), (3, 2, 1)])
def test_depthwise_accumulate_touches_only_its_channel(k, stride, pad):
    gen = torch.Generator().manual_seed(k + stride)
    wt = torch.randint(-16, 16, (4, 1, k, k), generator=gen)
    b = torch.randint(-5, 5, (4,), generator=gen)
    s = _rand_spikes(gen, (2, 4, 6, 5), 0.3)
    got = g.depthwise_accumulate(s, wt, b, stride=stride, padding=pad)
    assert torch.equal(got, _scatter_conv(s, wt, b, stride, pad, depthwise=True))
    # a spike in channel 0 alone changes nothing in the other channels
    one = torch.zeros_like(s)
    one[0, 0, 2, 2] = 1
    assert not g.depthwise_accumulate(one, wt, stride=stride, padding=pad)[:, 1:].any()


@pytest.mark.parametrize("x_bits", [2, 5, 8])
def test_bitplane_accumulate_equals_signed_products(x_bits):
    gen = torch.Generator().manual_seed(x_bits)
    lo, hi = -(1 << (x_bits - 1)), (1 << (x_bits - 1)) - 1
    x = torch.randint(lo, hi + 1, (2, 5, 3, 4), generator=gen)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = lo, hi                      # both ends of the range
    wt = torch.randint(-128, 128, (6, 5), generator=gen)
    b = torch.randint(-100, 100, (6,), generator=gen)
    got = g.bitplane_accumulate(x, wt, b, x_bits=x_bits, weight_shift=1)
    want = [[[[int(b[o]) + sum(2 * int(wt[o, c]) * int(x[i, c, y, xx]) for c in range(5))
               for xx in range(4)] for y in range(3)] for o in range(6)] for i in range(2)]
    assert got.tolist() == want


def test_bitplane_accumulate_refuses_values_outside_x_bits():
    with pytest.raises(g.WidthOverflow, match=r"\[-5, 3\] does not fit 3 bits"):
        g.bitplane_accumulate(torch.tensor([[[[-5]], [[3]]]]), torch.ones(1, 2, dtype=torch.int64), x_bits=3)


def _linear_attention_loops(q, k, v, heads):
    """Reference: per head, KV[i][j] = count of tokens where K_i and V_j both spike; Y[j][n] = sum of
    KV[i][j] over the channels i where Q spikes at token n."""
    t_steps, c, n = q.shape
    ch = c // heads
    y = [[[0] * n for _ in range(c)] for _ in range(t_steps)]
    kvs = []
    for t, h in itertools.product(range(t_steps), range(heads)):
        base = h * ch
        kv = [[sum(int(k[t, base + i, m]) & int(v[t, base + j, m]) for m in range(n)) for j in range(ch)]
              for i in range(ch)]
        kvs.append(kv)
        for j, m in itertools.product(range(ch), range(n)):
            y[t][base + j][m] = sum(kv[i][j] for i in range(ch) if q[t, base + i, m])
    return torch.tensor(y), torch.tensor(kvs).reshape(t_steps, heads, ch, ch)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_linear_attention_equals_loops_and_float_lif(heads):
    gen = torch.Generator().manual_seed(heads)
    q, k, v = (_rand_spikes(gen, (4, 8, 6), 0.5) for _ in range(3))
    attn, kv, y = g.linear_attention(q, k, v, heads)
    y_ref, kv_ref = _linear_attention_loops(q, k, v, heads)
    assert torch.equal(y, y_ref) and torch.equal(kv, kv_ref)
    # the attention LIF: the float neuron's first step exactly (H = 0.125 * Y / 2 >= 0.5 <=> Y >= 8), and
    # the integer LIF at scale 16 for all steps
    assert torch.equal(attn[0], (y_ref[0] >= 8).to(torch.int64))
    assert torch.equal(attn, g.lif(y_ref * 2, 8, 1))


def test_linear_attention_refuses_heads_that_do_not_divide():
    s = torch.zeros(1, 6, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match="6 channels do not split into 4 heads"):
        g.linear_attention(s, s, s, 4)


def test_strided_pixel_accumulate_equals_multiplication():
    gen = torch.Generator().manual_seed(9)
    wt = torch.randint(-128, 128, (3, 2, 7, 7), generator=gen)
    b = torch.randint(-500, 500, (3,), generator=gen)
    px = torch.randint(0, 17, (2, 2, 8, 8), generator=gen)
    got = g.pixel_accumulate(px, wt, b, pixel_bits=5, stride=2, padding=3)
    pad = torch.nn.functional.pad(px, (3, 3, 3, 3))
    want = [[[[int(b[o]) + int((pad[i, :, 2 * y:2 * y + 7, 2 * x:2 * x + 7] * wt[o]).sum())
               for x in range(4)] for y in range(4)] for o in range(3)] for i in range(2)]
    assert got.tolist() == want


@pytest.mark.parametrize("args,match", [
    (dict(stride=0), "stride must be >= 1"), (dict(padding=3), r"padding in 0..2"),
    (dict(weight=torch.zeros(2, 3, 3, 3, dtype=torch.int64)), r"do not match weight \[2, 3, 3, 3\]"),
])
def test_conv_accumulate_refuses_bad_geometry(args, match):
    kw = dict(weight=torch.zeros(2, 1, 3, 3, dtype=torch.int64)) | args
    with pytest.raises(ValueError, match=match):
        g.conv_accumulate(torch.zeros(1, 1, 4, 4, dtype=torch.int64), **kw)
