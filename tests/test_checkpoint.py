"""Checkpoint files: round trip, the embedded model, and clear errors for files that do not fit."""

import io
import os
import pickle

import pytest
import torch

from spikeforge.model import EMBEDDED_CHECKPOINT, build_model, load_checkpoint, load_embedded, save_checkpoint
from spikeforge.model.checkpoint import (CHECKPOINT_FORMAT, EMBEDDED_CHECKPOINTS, EMBEDDED_CONFIG, CheckpointError,
                                         MissingConfigError, NoEmbeddedCheckpointError, embedded_checkpoint,
                                         read_checkpoint)
from spikeforge.model.configs import get_config


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build_model("digits-tiny")


def test_round_trip(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "m.pt", get_config("digits-tiny"), {"note": "x"})
    loaded = load_checkpoint(path)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny.eval()(x), rtol=0, atol=0)
    assert not loaded.training
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_config_override_is_checked(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "m.pt", get_config("digits-tiny"))
    with pytest.raises(CheckpointError, match="key 'patch_embed.proj_conv.weight' has shape"):
        load_checkpoint(path, embed_dims=64)


def test_embedded_model_is_ours_and_loads():
    _, config, kind = read_checkpoint(EMBEDDED_CHECKPOINT)
    assert kind == "spikeforge" and config == get_config("digits-tiny")
    assert EMBEDDED_CHECKPOINT.stat().st_size < 512 * 1024
    load_embedded()


def test_embedded_digits_meta_keeps_its_arch_and_loads_strictly():
    from spikeforge.model import MetaSpikeFormer, SpikeDrivenTransformer

    assert set(EMBEDDED_CHECKPOINTS) == {"digits-tiny", "digits-meta"}
    assert EMBEDDED_CONFIG == "digits-tiny" and EMBEDDED_CHECKPOINT == embedded_checkpoint()
    path = embedded_checkpoint("digits-meta")
    state, config, kind = read_checkpoint(path)
    assert kind == "spikeforge" and config == get_config("digits-meta") and config["arch"] == "meta-spikeformer"
    assert path.stat().st_size < 512 * 1024
    with torch.device("meta"):
        expected = build_model("digits-meta").state_dict()
    assert list(state) == list(expected)   # every key, nothing more (the loader is strict too)
    assert isinstance(load_embedded("digits-meta"), MetaSpikeFormer)
    assert isinstance(load_embedded(), SpikeDrivenTransformer)   # the default stays digits-tiny


@pytest.mark.parametrize("name", ["digits-small", "nope"])
def test_no_embedded_checkpoint_names_the_config(name):
    with pytest.raises(NoEmbeddedCheckpointError, match=f"no embedded checkpoint for config '{name}'; embedded: "
                                                        f"digits-tiny, digits-meta"):
        load_embedded(name)


def test_v2_round_trip_keeps_the_arch(tmp_path):
    from spikeforge.model import MetaSpikeFormer

    torch.manual_seed(0)
    model = build_model("digits-meta").eval()
    path = save_checkpoint(model, tmp_path / "m.pt", get_config("digits-meta"))
    loaded = load_checkpoint(path)
    assert isinstance(loaded, MetaSpikeFormer) and loaded.block_counts == (1, 1, 0, 0, 1, 1)
    x = torch.rand(2, 1, 8, 8) * 2
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.txt: not a PyTorch checkpoint"):
        load_checkpoint(p, "digits-tiny")
    with pytest.raises(CheckpointError, match=r"missing\.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt", "digits-tiny")


def test_truncated_checkpoint(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "m.pt", get_config("digits-tiny"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_arbitrary_pickle_is_not_executed(tmp_path):
    target = tmp_path / "pwned"
    evil = _Evil()
    evil.target = str(target)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": evil}}, path)
    with pytest.raises(CheckpointError, match="allow-list"):
        load_checkpoint(path, "digits-tiny")
    assert not target.exists()


def test_non_tensor_entries_and_wrong_version(tmp_path, tiny):
    p = tmp_path / "odd.pt"
    torch.save({"patch_embed.proj_conv.weight": [1, 2, 3]}, p)
    with pytest.raises(CheckpointError, match="entry 'patch_embed.proj_conv.weight' is a list, expected a tensor"):
        load_checkpoint(p, "digits-tiny")
    p2 = tmp_path / "v9.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 9, "config": {}, "state_dict": {}}, p2)
    with pytest.raises(CheckpointError, match="version 9 is not supported"):
        load_checkpoint(p2)


def test_missing_and_unexpected_keys(tmp_path, tiny):
    state = tiny.state_dict()
    missing = {k: v for k, v in state.items() if k != "head.bias"}
    torch.save(missing, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="key 'head.bias' is missing"):
        load_checkpoint(tmp_path / "a.pt", "digits-tiny")
    torch.save({**state, "block.1.attn.q_conv.weight": torch.zeros(1)}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="key 'block.1.attn.q_conv.weight' is not part of the model"):
        load_checkpoint(tmp_path / "b.pt", "digits-tiny")


def test_plain_state_dict_needs_a_config(tmp_path, tiny):
    torch.save(tiny.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(MissingConfigError, match="carries no model config"):
        load_checkpoint(tmp_path / "plain.pt")


def test_torch_advice_to_load_unsafely_is_never_passed_on(tmp_path):
    """A file of zeros makes torch's weights-only loader fail with its advice to set weights_only=False."""
    zeros = tmp_path / "z.pt"
    zeros.write_bytes(bytes(20000))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(zeros, "digits-tiny")
    assert "weights_only" not in str(info.value) and "Re-running" not in str(info.value)
