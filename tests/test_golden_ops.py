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
