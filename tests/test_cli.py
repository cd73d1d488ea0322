"""The `spikeforge` command line, run as a user would (a subprocess), and its errors."""

import json
import subprocess
import sys

import pytest

from spikeforge.model import load_checkpoint

from conftest import REFERENCE


def run(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "spikeforge.host.cli", *args], capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_eval_json_on_embedded_model():
    out = json.loads(run("eval", "--backend", "float", "--json").stdout)
    assert out["n"] == 360 and out["accuracy"] >= 0.97


def test_eval_json_on_embedded_digits_meta():
    out = json.loads(run("eval", "--config", "digits-meta", "--backend", "float", "--json").stdout)
    assert out["n"] == 360 and out["accuracy"] >= 0.97
    text = run("eval", "--config", "digits-meta").stdout
    assert "digits-meta.pt: accuracy" in text and "(backend float)" in text


def test_train_v2_config_writes_loadable_checkpoint(tmp_path):
    from spikeforge.model import MetaSpikeFormer

    out = tmp_path / "m.pt"
    summary = json.loads(run("train", "--config", "digits-meta", "--epochs", "1", "--out", str(out), "--json").stdout)
    model = load_checkpoint(out)
    assert isinstance(model, MetaSpikeFormer) and summary["config"] == "digits-meta"
    evaluated = json.loads(run("eval", str(out), "--json").stdout)
    assert evaluated["accuracy"] == pytest.approx(summary["accuracy"])


@pytest.mark.parametrize("name,params", [("imagenet-8-384", 16_816_536), ("imagenet-8-768", 66_339_144)])
def test_info_json(name, params):
    out = json.loads(run("info", name, "--json").stdout)
    assert out["params"] == params and out["tokens"] == 196 and out["T"] == 4


def test_demo_prints_table():
    proc = run("demo", "--rtl-images", "2", "--json")
    out = proc.stdout
    assert "accuracy (float model)" in out and "accuracy (integer golden, 8-bit)" in out and "digits-tiny" in out
    assert "logits equal to the golden model" in out and "2 of 2" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rtl"]["images"] == 2 and summary["rtl"]["mismatches"] == 0
    assert summary["rtl"]["cycles_per_inference"] >= summary["rtl"]["bound_cycles"] > 0


@pytest.fixture(scope="module")
def qmodel_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "m8.sfq"
    run("quantize", "--out", str(path), "--json")
    return path


def test_generate_accelerator_and_disasm(qmodel_file, tmp_path):
    out = json.loads(run("generate", str(qmodel_file), "--lanes", "16", "--out", str(tmp_path), "--json").stdout)
    for key in ("verilog", "program", "weights", "biases", "thresholds", "manifest"):
        assert (tmp_path / out[key].split("/")[-1]).is_file(), key
    assert "module accelerator" in (tmp_path / "accelerator.v").read_text()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["hardware_hash"] == out["hardware_hash"] and manifest["hardware"]["lanes"] == 16
    listing = json.loads(run("disasm", str(tmp_path / "program.bin"), "--json").stdout)
    steps = {s["name"]: s for s in listing["steps"]}
    assert steps["sps.conv3"]["op"] == "CONV" and steps["sps.conv3"]["post"] == "U_MAXPOOL"
    assert steps["block.0.attn.qkv"]["cout"] == 96 and steps["end"]["op"] == "END"
    table = run("disasm", str(tmp_path / "program.bin")).stdout
    assert "block.0.attn.sdsa" in table and "SDSA" in table


def test_sim_json_reports_layers(qmodel_file):
    out = json.loads(run("sim", str(qmodel_file), "--images", "2", "--json").stdout)
    assert out["images"] == 2 and out["mismatches"] == 0 and out["sop_mismatches"] == 0
    assert 0 < out["utilization"] <= 1 and out["cycles_per_inference"] >= out["bound_cycles"]
    names = [l["name"] for l in out["layers"]]
    assert names[0] == "sps.conv0" and names[-1] == "head"
    assert set(out["layers"][0]) >= {"name", "cycles", "bound_cycles", "events", "sops"}


@pytest.mark.parametrize("args,message", [
    (["generate", "{q}", "--out", "{tmp}", "--max-channels", "64"],
     "layer block.0.attn.qkv: output channels 96 exceeds the hardware's max_channels = 64"),
    (["generate", "{q}", "--block", "lif_array", "--out", "{tmp}"], "either QMODEL"),
    (["sim", "{q}", "--images", "0"], "argument --images: must be at least 1, got 0"),
    (["eval", "--backend", "rtl"], "--backend rtl needs a quantized model file"),
    (["disasm", "{tmp}/nothing.bin"], "no such program file"),
])
def test_accelerator_command_errors(qmodel_file, tmp_path, args, message):
    args = [a.format(q=qmodel_file, tmp=tmp_path) for a in args]
    proc = run(*args, ok=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "program.bin").exists()


def test_train_writes_loadable_checkpoint(tmp_path):
    out = tmp_path / "m.pt"
    proc = run("train", "--config", "digits-tiny", "--epochs", "1", "--seed", "1", "--out", str(out), "--json")
    assert "epoch 1/1" in proc.stderr  # progress is shown
    summary = json.loads(proc.stdout)
    model = load_checkpoint(out)
    assert summary["out"] == str(out) and model.embed_dims == 32
    evaluated = json.loads(run("eval", str(out), "--json").stdout)
    assert evaluated["accuracy"] == pytest.approx(summary["accuracy"])


@pytest.mark.parametrize("args,message", [
    (["info", "imagenet-1-1"], "unknown config 'imagenet-1-1'; known configs:"),
    (["eval", "--backend", "nope"], "unknown backend 'nope' (available: float, golden, rtl)"),
    (["eval", str(REFERENCE / "timm_checkpoint.pth.tar")], "name one with --config"),
    (["eval", str(REFERENCE / "timm_checkpoint.pth.tar"), "--config", "digits-tiny"],
     "key 'patch_embed.proj_conv.weight' has shape [2, 1, 3, 3], the config expects [4, 1, 3, 3]"),
    (["eval", "no/such/file.pt"], "no/such/file.pt: no such checkpoint file"),
    (["train", "--config", "nope", "--out", "x.pt"], "unknown config 'nope'"),
    (["eval", "--config", "digits-small"], "no embedded checkpoint for config 'digits-small'; embedded: digits-tiny, "
                                           "digits-meta (give a checkpoint file)"),
    (["eval", "--config", "nope"], "unknown config 'nope'"),
    (["eval", "--config", "digits-meta", "--backend", "golden"],
     "--backend golden needs a quantized model file (QMODEL from `spikeforge quantize`)"),
    (["eval", "x.sfq", "--config", "digits-meta", "--backend", "rtl"],
     "--backend rtl: the accelerator runs V1 (sdt) models only for now; 'digits-meta' is a meta-spikeformer config"),
])
def test_errors_are_clear(args, message):
    proc = run(*args, ok=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_v2_quantize_golden_and_trace(tmp_path):
    """digits-meta (V2) through the integer commands: quantize (int8 within a point of float), the golden
    backend gives the accuracy quantize reported, trace lists its linear-attention layers; the RTL
    backend refuses it by layer."""
    q = tmp_path / "meta.sfq"
    summary = json.loads(run("quantize", "--config", "digits-meta", "--out", str(q), "--json").stdout)
    assert summary["float_accuracy"] >= 0.97
    assert summary["integer_accuracy"] >= summary["float_accuracy"] - 0.01
    evaluated = json.loads(run("eval", str(q), "--backend", "golden", "--json").stdout)
    assert evaluated["accuracy"] == pytest.approx(summary["integer_accuracy"])
    traced = json.loads(run("trace", str(q), "--json").stdout)
    kinds = {layer["kind"] for layer in traced["layers"]}
    assert {"pixel_conv", "conv", "conv3x3", "conv1x1", "linear_attention", "linear"} <= kinds
    proc = run("eval", str(q), "--backend", "rtl", "--images", "1", ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "layer downsample1_1: pixel_conv 7x7 / stride 1 has no hardware yet" in proc.stderr


def test_train_failure_leaves_no_file(tmp_path):
    out = tmp_path / "never.pt"
    run("train", "--config", "digits-tiny", "--epochs", "0", "--out", str(out), ok=False)
    assert not out.exists()


def test_quantize_then_eval_golden(tmp_path):
    out = tmp_path / "m.sfq"
    summary = json.loads(run("quantize", "--w-bits", "8", "--out", str(out), "--json").stdout)
    assert summary["integer_accuracy"] >= summary["float_accuracy"] - 0.01
    evaluated = json.loads(run("eval", str(out), "--backend", "golden", "--json").stdout)
    assert evaluated == {"accuracy": pytest.approx(summary["integer_accuracy"]), "n": 360}


@pytest.mark.parametrize("args,message", [
    (["quantize", "--acc-bits", "8", "--out", "{tmp}/q.sfq"], "layer sps.conv0: acc_bits=8 could overflow"),
    (["eval", "--backend", "golden"], "--backend golden needs a quantized model file"),
    (["eval", "{ckpt}", "--backend", "golden"], "not a quantized model (.sfq)"),
    (["trace", "{tmp}/missing.sfq"], "missing.sfq: no such quantized model file"),
])
def test_quantize_errors(tmp_path, args, message):
    from spikeforge.model.checkpoint import EMBEDDED_CHECKPOINT

    args = [a.format(tmp=tmp_path, ckpt=EMBEDDED_CHECKPOINT) for a in args]
    proc = run(*args, ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "q.sfq").exists()


# ------------------------------------------------------------------ bad input: outputs, values, interrupts

def _quiet_failure(proc, message):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr, proc.stderr


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["quantize", "--out", "{tmp}/folder"], "is a folder; give the name of the file to write"),
    (["quantize", "--out", "{tmp}/file/m.sfq"], "is a file, not a folder"),
    (["quantize", "--out", "/proc/spikeforge/m.sfq"], "cannot write in /proc"),
    (["train", "--epochs", "1", "--out", "{tmp}/folder"], "is a folder"),
    (["train", "--epochs", "1", "--out", "/proc/m.pt"], "cannot write in /proc"),
    (["generate", "{q}", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["generate", "{q}", "--out", "/proc/spikeforge"], "cannot write in /proc"),
    (["generate", "--block", "lif_array", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["generate", "--block", "lif_array", "--out", "{tmp}/file/sub"], "is a file, not a folder"),
    (["build", "--board", "verilog", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["build", "--board", "icebreaker", "--synth-only", "--out", "/proc/spikeforge"], "cannot write in /proc"),
])
def test_output_is_checked_before_the_work(qmodel_file, paths, args, message):
    """A bad --out ends in `error: ...` (exit 2) before any training, quantizing or generating."""
    args = [a.format(q=qmodel_file, tmp=paths) for a in args]
    proc = run(*args, ok=False)
    _quiet_failure(proc, message)
    assert "epoch" not in proc.stderr and "generating" not in proc.stderr and "building" not in proc.stderr
    assert sorted(p.name for p in paths.iterdir()) == ["file", "folder"] and not any((paths / "folder").iterdir())


@pytest.mark.parametrize("make", ["fifo", "symlink"])
def test_output_that_is_not_a_plain_file_is_never_replaced(tmp_path, make):
    import os

    out = tmp_path / "out.sfq"
    if make == "fifo":
        os.mkfifo(out)
    else:
        (tmp_path / "target").write_text("kept")
        out.symlink_to(tmp_path / "target")
    proc = run("quantize", "--out", str(out), ok=False)
    _quiet_failure(proc, "is not a regular file" if make == "fifo" else "is a symbolic link")
    assert out.is_fifo() if make == "fifo" else (out.is_symlink() and (tmp_path / "target").read_text() == "kept")


def test_generated_folder_is_written_whole_or_not_at_all(qmodel_file, tmp_path):
    (tmp_path / "accelerator.v").write_text("// an older accelerator\n")
    (tmp_path / "manifest.json").mkdir()      # one file of the folder cannot be written
    proc = run("generate", str(qmodel_file), "--out", str(tmp_path), ok=False)
    _quiet_failure(proc, "manifest.json")
    assert (tmp_path / "accelerator.v").read_text() == "// an older accelerator\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accelerator.v", "manifest.json"]


@pytest.mark.parametrize("args,message", [
    (["generate", "{q}", "--lanes", "0", "--out", "{tmp}/g"], "argument --lanes: must be at least 1, got 0"),
    (["sim", "{q}", "--lanes", "-4"], "argument --lanes: must be at least 1, got -4"),
    (["build", "--board", "ulx3s-85f", "--baud", "0", "--plan-only", "--out", "{tmp}/b"],
     "argument --baud: must be at least 1, got 0"),
    (["build", "--board", "ulx3s-85f", "--clock", "0", "--plan-only", "--out", "{tmp}/b"],
     "argument --clock: must be a positive number, got 0"),
    (["run", "--port", "sim://", "--retries", "-1"], "argument --retries: must be at least 0, got -1"),
    (["run", "--port", "sim://", "--timeout", "nan"], "argument --timeout: must be a positive number"),
    (["demo", "--rtl-images", "-1"], "argument --rtl-images: must be at least 0, got -1"),
    (["train", "--batch-size", "0", "--out", "{tmp}/m.pt"], "argument --batch-size: must be at least 1, got 0"),
    (["train", "--lr", "-1", "--out", "{tmp}/m.pt"], "argument --lr: must be a positive number, got -1"),
    (["generate", "{q}", "--max-channels", "0", "--out", "{tmp}/g"], "argument --max-channels: must be at least 1"),
    (["trace", "{q}", "--image", "x"], "argument --image: expected an integer, got 'x'"),
    (["generate", "--block", "lif_array", "--set", "lanes=100000", "--out", "{tmp}/g"],
     "LIFArray: lanes must be at most 64, got 100000"),
    (["generate", "--block", "lif_array", "--set", "lanes=99999999999999999999", "--out", "{tmp}/g"],
     "LIFArray: lanes must be at most 64"),
    (["generate", "--block", "sparse_accumulator", "--set", "in_capacity=2097152", "--out", "{tmp}/g"],
     "SparseAccumulator: in_capacity must be at most 1048576, got 2097152"),
    (["generate", "--block", "sparse_accumulator", "--set", "group_capacity=8192", "--out", "{tmp}/g"],
     "SparseAccumulator: weight_depth must be at most 1048576, got 2097152"),
    (["generate", "--block", "lif_array", "--set", "lanes=64", "--set", "group_capacity=1048576", "--out", "{tmp}/g"],
     "LIFArray: its memories (thresholds 1,048,576 x 1024, membranes 1,048,576 x 1024) hold 2,147,483,648 bits, "
     "more than the 33,554,432 (MAX_MEMORY_BITS)"),
    (["generate", "{q}", "--weight-rows", "1048576", "--out", "{tmp}/g"],
     "Accelerator: its memories hold 134,342,144 bits (weights 134,217,728"),
    (["generate", "--block", "sparse_accumulator", "--set", "dense=5", "--out", "{tmp}/g"],
     "dense is on/off: expected 0, 1, true or false, got '5'"),
])
def test_zero_and_negative_values_are_errors_not_defaults(qmodel_file, tmp_path, args, message):
    args = [a.format(q=qmodel_file, tmp=tmp_path) for a in args]
    proc = run(*args, ok=False)
    _quiet_failure(proc, message)
    assert not any(tmp_path.iterdir())


def test_float_backend_on_a_quantized_model_says_what_the_file_is(qmodel_file):
    proc = run("eval", str(qmodel_file), ok=False)
    _quiet_failure(proc, "a quantized model (.sfq), not a float checkpoint; evaluate it with --backend golden")
    assert "weights_only" not in proc.stderr


def test_a_pickle_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path}/pwned",)

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}, protocol=2))
    proc = run("eval", str(evil), ok=False)
    _quiet_failure(proc, "refused to load")
    assert "weights_only" not in proc.stderr and "Warning" not in proc.stderr
    assert not (tmp_path / "pwned").exists()


def test_ctrl_c_exits_quietly_with_130(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.host.cli", "train", "--epochs", "50",
                             "--out", str(tmp_path / "m.pt")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    line = ""
    while "epoch" not in line and time.monotonic() < deadline:   # interrupt it mid-training
        line = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert not (tmp_path / "m.pt").exists() and not any(tmp_path.iterdir())
