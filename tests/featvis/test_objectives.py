import numpy as np
import pytest
import torch

from atlas.featvis import objectives as obj


def test_direction_is_dot_times_cosine_power_at_the_centre():
    acts = torch.randn(3, 4, 5, 5)
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    whitening = np.diag([1.0, 2.0, 0.5, 1.0]).astype(np.float32)
    values = obj.direction("l", vectors, whitening=whitening, cossim_pow=2)(
        {"l": acts}, torch.empty(0)
    )
    for b in range(3):
        a = acts[b, :, 2, 2]
        v = torch.from_numpy(vectors[b] @ whitening)
        v = v / v.norm()
        dot = (a * v).sum()
        cosine = max(dot / (a.norm() + 1e-4), 0.1)
        assert values[b].item() == pytest.approx((dot * cosine**2).item(), rel=1e-5)


def test_channel_neuron_and_logit_pick_their_element_per_batch_row():
    acts = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    logits = torch.tensor([[1.0, 5.0], [7.0, 3.0]])
    assert obj.channel("l", [1, 2])({"l": acts}, logits).tolist() == [
        acts[0, 1].mean().item(),
        acts[1, 2].mean().item(),
    ]
    assert obj.channel("l", 0)({"l": acts}, logits).tolist() == [
        acts[0, 0].mean().item(),
        acts[1, 0].mean().item(),
    ]
    assert obj.neuron("l", [2, 0], y=0, x=1)({"l": acts}, logits).tolist() == [
        acts[0, 2, 0, 1].item(),
        acts[1, 0, 0, 1].item(),
    ]
    assert obj.class_logit([1, 0])({}, logits).tolist() == [5.0, 7.0]


def test_thousands_of_terms_combine_flat():
    acts = {"l": torch.ones(2, 3, 4, 4)}
    many = obj.Objective.sum([obj.channel("l", i % 3) for i in range(5000)])
    assert len(many.terms) == 5000 and many.layers == {"l"}
    assert many(acts, torch.empty(0)).tolist() == [5000.0, 5000.0]
    chained = obj.channel("l", 0)
    for _ in range(3000):  # Lucent's + chain would recurse 3000 deep when evaluated
        chained = chained + obj.channel("l", 1)
    assert chained(acts, torch.empty(0))[0].item() == 3001.0


def test_arithmetic_scales_and_subtracts():
    acts = {"a": torch.full((1, 1, 2, 2), 2.0), "b": torch.full((1, 1, 2, 2), 5.0)}
    combined = 3 * obj.channel("a", 0) - obj.channel("b", 0) * 0.5
    assert combined.layers == {"a", "b"}
    assert combined(acts, torch.empty(0)).item() == pytest.approx(3 * 2 - 2.5)
    assert (-obj.channel("a", 0))(acts, torch.empty(0)).item() == -2.0
