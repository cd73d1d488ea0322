"""Fuzzing of the ``.sfq`` loader: any header, with a valid checksum, is loaded or refused with
:class:`QModelFileError`, and nothing else, in bounded memory.

Hypothesis mutates the JSON header of a real saved model (the embedded model quantized to 8 bits):
it sets fields of the top level, ``config``, ``thresholds``, ``widths``, ``weight_shifts``, ``scales``
and ``tensors`` to random JSON (integers of any size, huge floats, NaN and infinities, strings,
lists, objects, deep nesting, booleans, null), deletes fields and adds new ones, then rewrites the
file with a valid SHA-256 so that every check past the checksum is reached.

Each file is loaded by a worker process (one per test module, so it also works under pytest-xdist)
that runs under ``RLIMIT_AS``: its address space may grow by at most :data:`MEMORY_HEADROOM` over what
it had once its imports were done, so a load that allocates without bound fails as a crash instead of
exhausting the machine. A model that loads must also be within the work bound
(:func:`~spikeforge.model.qfile.implied_bytes_per_image`) and must run through the golden model.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import struct
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikeforge.model.qfile import MAGIC, MAX_BYTES_PER_IMAGE, save_qmodel

#: How much the worker's address space may grow past its size after its imports (the whole load and
#: one golden-model forward of a small model fit easily; an unbounded allocation does not).
MEMORY_HEADROOM = 1 << 30
#: Seconds one load (and forward) may take before the example fails.
REPLY_TIMEOUT = 60

WORKER = textwrap.dedent("""
    import json, resource, sys, traceback

    import torch

    torch.set_num_threads(1)
    from spikeforge.model import golden
    from spikeforge.model.qfile import QModelFileError, implied_bytes_per_image, load_qmodel

    def vm_size():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

    if sys.platform.startswith("linux"):  # where RLIMIT_AS is enforced
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm_size() + int(sys.argv[1]), hard))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            qm = load_qmodel(line.strip())
        except QModelFileError as exc:
            reply = {"result": "refused", "message": str(exc).split(": ", 1)[-1][:200]}
        except BaseException:
            reply = {"result": "crash", "where": "load", "error": traceback.format_exc()[-4000:]}
        else:
            reply = {"result": "loaded", "implied": implied_bytes_per_image(qm.config)}
            c = qm.config
            try:
                if reply["implied"] <= 64 << 20:  # run the small ones (the memory cap is for the load)
                    for value in (0, qm.pixel_max):
                        px = torch.full((1, c["in_channels"], c["img_size_h"], c["img_size_w"]), value,
                                        dtype=torch.int64)
                        golden.forward(qm, px)
            except BaseException:
                reply = {"result": "crash", "where": "golden.forward", "error": traceback.format_exc()[-4000:]}
        print(json.dumps(reply), flush=True)
""")


class Raw:
    """A JSON fragment written as is (what ``json.dumps`` cannot or will not write)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''} [{len(self.text)} chars])"


def dumps(header) -> bytes:
    """``header`` as JSON text, each :class:`Raw` replaced by its fragment."""
    raws: list[str] = []

    def placeholder(obj):
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"@@RAW{len(raws) - 1}@@"
        raise TypeError(type(obj).__name__)

    text = json.dumps(header, default=placeholder)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw, 1)
    return text.encode("utf-8", "surrogatepass")


raw_fragments = st.one_of(
    st.integers(1, 6000).map(lambda n: Raw("9" * n)),                       # integers of any size
    st.integers(1, 6000).map(lambda n: Raw("-1" + "0" * n)),
    st.sampled_from(["1e999", "-1e999", "1e-999", "1E400", "NaN", "Infinity", "-Infinity", "-0.0", "0e0",
                     "123456789012345678901234567890.5"]).map(Raw),
    st.integers(1, 100_000).map(lambda n: Raw("[" * n + "]" * n)),          # deep nesting
    st.integers(1, 20_000).map(lambda n: Raw('{"a":' * n + "0" + "}" * n)),
)
edge_ints = st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 14, 15, 16, 17, 20, 31, 32, 62, 63, 64, 65, 100, 1024,
                             1025, 4096, 65535, 65536, 100_000, 2 ** 31, 2 ** 62, 2 ** 63, 2 ** 64, 10 ** 19, 10 ** 20])
plain = st.one_of(st.none(), st.booleans(), st.integers(), edge_ints, st.floats(), st.text(max_size=10))
json_values = st.one_of(
    edge_ints,                                                              # near the limits, often valid
    plain,
    raw_fragments,
    st.recursive(plain | raw_fragments, lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8),
)

CONTAINERS = ("", "config", "thresholds", "widths", "weight_shifts", "scales", "tensors")


def mutate(data, header) -> None:
    """One random change of ``header``: set, nudge or delete a field of one of its containers, or add one."""
    where = data.draw(st.sampled_from(CONTAINERS), label="container")
    box = header if where == "" else header.get(where)
    if where == "tensors" and isinstance(box, list) and box:
        i = data.draw(st.integers(0, len(box) - 1), label="entry")
        if data.draw(st.booleans(), label="whole entry"):
            if data.draw(st.booleans(), label="delete entry"):
                del box[i]
            else:
                box[i] = data.draw(json_values, label="entry value")
            return
        box = box[i]
    if not isinstance(box, dict):
        header[where] = data.draw(json_values, label="container value")
        return
    key = data.draw(st.sampled_from(sorted(box)) | st.text(max_size=8) if box else st.text(max_size=8), label="key")
    op = data.draw(st.sampled_from(["set", "set", "nudge", "delete"]), label="op")
    old = box.get(key)
    if op == "delete":
        box.pop(key, None)
    elif op == "nudge" and isinstance(old, (int, float)) and not isinstance(old, bool):
        box[key] = data.draw(st.sampled_from([old - 1, old + 1, old * 2, old // 2, -old, old * 1.0, old + 0.5]),
                             label="nudged")
    elif op == "nudge" and isinstance(old, list) and old:
        j = data.draw(st.integers(0, len(old) - 1), label="list index")
        old[j] = data.draw(json_values, label="list value")
    else:
        box[key] = data.draw(json_values, label="value")


class Base:
    """A saved model's header (JSON text) and tensor data."""

    def __init__(self, blob: bytes):
        (hlen,) = struct.unpack_from("<I", blob, len(MAGIC))
        self.head, self.data = blob[len(MAGIC) + 4:len(MAGIC) + 4 + hlen], blob[len(MAGIC) + 4 + hlen:-32]

    def __repr__(self):  # hypothesis prints the arguments of a failing example
        return f"Base(<{len(self.head)}-byte header, {len(self.data)} bytes of tensors>)"


@pytest.fixture(scope="module")
def base(qmodel8, tmp_path_factory):
    return Base(save_qmodel(qmodel8, tmp_path_factory.mktemp("fuzz") / "base.sfq").read_bytes())


class Worker:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(MEMORY_HEADROOM)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._reply() == {"ready": True}

    def _reply(self) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], REPLY_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"the loader's worker died or hung (rc {self.proc.returncode}): {err.decode()[-4000:]}")
        return json.loads(line)

    def load(self, path) -> dict:
        self.proc.stdin.write(f"{path}\n".encode())
        self.proc.stdin.flush()
        return self._reply()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def _write(path, head: bytes, data: bytes):
    body = MAGIC + struct.pack("<I", len(head)) + head + data
    path.write_bytes(body + hashlib.sha256(body).digest())


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "mutated.sfq"


def test_unmutated_file_loads(base, worker, target):
    _write(target, base.head, base.data)
    assert worker.load(target)["result"] == "loaded"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_worker_is_memory_capped(worker):
    with open(f"/proc/{worker.proc.pid}/limits") as f:
        (line,) = [line for line in f if line.startswith("Max address space")]
    soft = line.split()[3]
    assert soft != "unlimited" and int(soft) < 8 << 30, line


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_header_is_loaded_or_refused(base, worker, target, data):
    header = json.loads(base.head)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        mutate(data, header)
    head = dumps(header)
    _write(target, head, base.data)
    reply = worker.load(target)
    if reply["result"] == "crash":
        pytest.fail(f"{reply['where']} raised something other than QModelFileError (the mutations are "
                    f"the draws below):\n{reply['error']}")
    assert reply["result"] in ("loaded", "refused"), reply
    # --hypothesis-show-statistics: which checks the mutations reached
    event(reply["result"] if reply["result"] == "loaded" else re.sub(r"[\d.]+", "N", reply["message"])[:48])
    if reply["result"] == "loaded":
        assert reply["implied"] <= MAX_BYTES_PER_IMAGE
