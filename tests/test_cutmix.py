import pytest
import torch
from test_train import tiny_cnn, world_split

from atlas.config import TrainConfig
from atlas.errors import ConfigError
from atlas.train import batch_mixer, mix_batch, train_classifier


def constant_batch(n=6, size=16):
    """Image i is filled with the value i / 10, labelled class i."""
    values = torch.arange(n, dtype=torch.float32) / 10
    return values[:, None, None, None].expand(n, 3, size, size).clone(), torch.arange(n)


def test_cutmix_pastes_a_box_of_the_next_image_and_mixes_the_targets_by_its_area():
    pixels, labels = constant_batch()
    mixer = batch_mixer(TrainConfig(mix="cutmix"), num_classes=6)
    changed = False
    for seed in range(5):
        mixed, targets = mix_batch(mixer, pixels, labels, torch.Generator().manual_seed(seed))
        assert targets.shape == (6, 6) and torch.allclose(targets.sum(1), torch.ones(6))
        for i in range(6):
            source = (i - 1) % 6  # torchvision pairs each image with the one before it
            pasted = (mixed[i] == pixels[source]).float().mean()
            assert ((mixed[i] == pixels[i]) | (mixed[i] == pixels[source])).all()
            assert targets[i, source] == pytest.approx(pasted.item(), abs=1e-6)
            assert targets[i, i] == pytest.approx(1 - pasted.item(), abs=1e-6)
            changed |= bool(pasted > 0)
    assert changed


def test_mixup_blends_whole_images_in_the_targets_proportion():
    pixels, labels = constant_batch()
    mixer = batch_mixer(TrainConfig(mix="mixup", mix_alpha=0.4), num_classes=6)
    mixed, targets = mix_batch(mixer, pixels, labels, torch.Generator().manual_seed(0))
    lam = targets[0, 0]
    expected = lam * pixels + (1 - lam) * pixels.roll(1, 0)
    assert torch.allclose(mixed, expected, atol=1e-6)


def test_no_mixing_by_default_and_unknown_kinds_are_refused():
    assert batch_mixer(TrainConfig(), 3) is None
    with pytest.raises(ConfigError, match="mix"):
        TrainConfig().updated(mix="cutmx")


def test_mixing_follows_the_run_seed_not_the_global_random_state():
    pixels, labels = constant_batch()
    mixer = batch_mixer(TrainConfig(mix="cutmix"), num_classes=6)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(mix_batch(mixer, pixels, labels, torch.Generator().manual_seed(7)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_cutmix_training_is_deterministic_and_differs_from_plain(tiny_world):
    def trained(mix):
        loaded = tiny_cnn()
        data = world_split(tiny_world, "test", loaded)
        options = TrainConfig(epochs=1, batch_size=8, device="cpu", mix=mix)
        history = train_classifier(loaded, data, options).history
        return loaded.module.state_dict(), history

    first, history = trained("cutmix")
    second, again = trained("cutmix")
    assert all(torch.equal(first[k], second[k]) for k in first) and history == again
    plain, _ = trained("none")
    assert any(not torch.equal(first[k], plain[k]) for k in first)
