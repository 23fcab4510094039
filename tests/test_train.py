import torch

from atlas.config import ModelSpec, TrainConfig
from atlas.data import image_folder, load_images
from atlas.demo.world import CLASS_NAMES
from atlas.models import load_model
from atlas.train import LabelledImages, augment, evaluate, train_classifier


def tiny_cnn(classes=10):
    names = sorted(CLASS_NAMES)
    spec = ModelSpec(
        class_names=names,
        arch="atlas.demo.net:DemoCNN",
        num_classes=classes,
        input_size=32,
        kwargs={"widths": [8, 16, 16, 32]},
    )
    return load_model(spec, seed=0)


def world_split(root, split, loaded):
    records, _ = image_folder(root / split, loaded.class_names)
    images = load_images(records, loaded.preprocessing.crop)
    return LabelledImages(images, torch.tensor([r.label for r in records]))


def test_a_short_training_run_learns(tiny_world):
    loaded = tiny_cnn()
    names = loaded.class_names
    data = world_split(tiny_world, "train", loaded)
    before = evaluate(loaded, data)
    result = train_classifier(
        loaded, data, TrainConfig(epochs=6, batch_size=16, lr=0.01, augment=False, device="cpu")
    )
    after = evaluate(loaded, data)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert after["loss"] < before["loss"] and after["accuracy"] > before["accuracy"]
    assert set(after["per_class"]) == set(names) and after["count"] == len(data)
    assert not loaded.module.training


def test_training_is_deterministic_for_a_seed(tiny_world):
    runs = []
    for _ in range(2):
        loaded = tiny_cnn()
        data = world_split(tiny_world, "test", loaded)
        train_classifier(loaded, data, TrainConfig(epochs=1, batch_size=8, device="cpu"))
        runs.append(loaded.module.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_bf16_training_computes_in_bfloat16_keeps_fp32_weights_and_learns(tiny_world):
    """``precision: bf16``: the layers compute in bfloat16 during training (their outputs
    say so), the weights stay fp32, the run learns as the fp32 one does, and is
    deterministic; evaluation afterwards is fp32."""
    seen = {}

    def trained(precision):
        loaded = tiny_cnn()

        def record(module, args, out):
            if module.training:
                seen[precision] = out.dtype

        hook = loaded.module.block2.conv.register_forward_hook(record)
        data = world_split(tiny_world, "train", loaded)
        before = evaluate(loaded, data)["loss"]
        options = TrainConfig(
            epochs=6, batch_size=16, lr=0.01, augment=False, device="cpu", precision=precision
        )
        train_classifier(loaded, data, options)
        hook.remove()
        return loaded, before, evaluate(loaded, data)

    loaded, before, after = trained("bf16")
    assert seen == {"bf16": torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in loaded.module.parameters())
    _, _, fp32 = trained("fp32")
    assert seen["fp32"] == torch.float32
    assert after["loss"] < 0.8 * before and abs(after["accuracy"] - fp32["accuracy"]) < 0.1
    again, _, _ = trained("bf16")
    weights = again.module.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in loaded.module.state_dict().items())


def test_frozen_backbone_trains_only_the_head(tiny_world):
    loaded = tiny_cnn()
    data = world_split(tiny_world, "test", loaded)
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    train_classifier(
        loaded, data, TrainConfig(epochs=1, batch_size=8, freeze="backbone", device="cpu")
    )
    after = loaded.module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # batch-norm statistics untouched too


def test_augment_flips_and_shifts_within_bounds():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).reshape(2, 3, 6, 6)
    out = augment(images, g, max_shift=0)
    for original, augmented in zip(images, out, strict=True):
        assert torch.equal(augmented, original) or torch.equal(augmented, original.flip(2))
    shifted = augment(images, torch.Generator().manual_seed(1), max_shift=2)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
