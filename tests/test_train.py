"""Training: determinism for a seed, and the embedded model's accuracy on the fixed test split."""

import pytest
import torch

from spikeforge.model import load_embedded
from spikeforge.model.data import DigitsSplit
from spikeforge.model.train import TrainConfig, evaluate, train

TARGET_ACCURACY = 0.97


@pytest.fixture(scope="module")
def small_split(digits):
    return DigitsSplit(digits.train_pixels[:256], digits.train_labels[:256],
                       digits.test_pixels[:64], digits.test_labels[:64])


def _train(split, seed):
    return train("digits-tiny", TrainConfig(epochs=2, seed=seed, batch_size=64), data=split)


def test_training_is_deterministic_for_a_seed(small_split):
    a, b, c = _train(small_split, 3), _train(small_split, 3), _train(small_split, 4)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.history == [{**h, "seconds": a.history[i]["seconds"]} for i, h in enumerate(b.history)]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_training_learns(small_split):
    history = train("digits-tiny", TrainConfig(epochs=4, seed=0, batch_size=32), data=small_split).history
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["train_accuracy"] > 0.3  # chance is 0.1


def test_embedded_model_reaches_target(digits):
    acc = evaluate(load_embedded(), digits.test_pixels, digits.test_labels)
    assert acc >= TARGET_ACCURACY


def test_embedded_digits_meta_reaches_target(digits):
    acc = evaluate(load_embedded("digits-meta"), digits.test_pixels, digits.test_labels)
    assert acc >= TARGET_ACCURACY


def test_training_a_v2_config(small_split):
    from spikeforge.model import MetaSpikeFormer

    tiny_split = DigitsSplit(small_split.train_pixels[:64], small_split.train_labels[:64],
                             small_split.test_pixels[:16], small_split.test_labels[:16])
    result = train("digits-meta", TrainConfig(epochs=1, seed=0, batch_size=32), data=tiny_split)
    assert isinstance(result.model, MetaSpikeFormer) and result.config["arch"] == "meta-spikeformer"
    assert len(result.history) == 1 and 0 <= result.test_accuracy <= 1


def test_default_recipe_reaches_target_from_scratch(digits):
    """The documented recipe (`spikeforge train --config digits-tiny`) trains to the target (~90 s)."""
    result = train("digits-tiny", TrainConfig(), data=digits)
    assert result.test_accuracy >= TARGET_ACCURACY
