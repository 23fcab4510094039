import csv
import hashlib
import json
from collections import Counter

import numpy as np
from helpers import TINY_WORLD

from atlas.demo.world import (
    CLASS_NAMES,
    CLASSES,
    HABITATS,
    LOOKALIKES,
    habitat_for,
    make_world,
    read_manifest,
    render_sample,
)


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_world_has_enough_classes_and_habitats():
    assert len(CLASS_NAMES) >= 8 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert {"snow", "desert", "grass", "water"} <= set(HABITATS)


def test_generation_is_deterministic_and_seed_dependent(tiny_world, tmp_path):
    again = tmp_path / "again"
    make_world(again, **TINY_WORLD, workers=1)
    assert digest(again) == digest(tiny_world)
    other = tmp_path / "other"
    make_world(other, **{**TINY_WORLD, "seed": 4})
    assert digest(other) != digest(tiny_world)


def test_imagefolder_layout_and_manifest(tiny_world):
    samples = read_manifest(tiny_world)
    assert len(samples) == 10 * 12 + 10 * 5 + 2 * 4
    for split in ("train", "test"):
        assert sorted(p.name for p in (tiny_world / split).iterdir()) == sorted(CLASS_NAMES)
    assert sorted(p.name for p in (tiny_world / "test-swapped").iterdir()) == sorted(LOOKALIKES)
    for sample in samples:
        path = tiny_world / sample.path
        assert path.parent.name == sample.label and path.parts[-3] == sample.split
        x0, y0, x1, y1 = sample.box
        assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
    assert (tiny_world / "classes.txt").read_text().split() == list(CLASS_NAMES)


def test_the_confounder_is_planted(tiny_world):
    """Look-alikes live on one habitat each (swapped in test-swapped); others on all."""
    samples = read_manifest(tiny_world)
    habitats = {
        (split, label): Counter(s.habitat for s in samples if s.split == split and s.label == label)
        for split in ("train", "test", "test-swapped")
        for label in CLASS_NAMES
    }
    for split in ("train", "test"):
        assert habitats[(split, "snow_leopard")] == Counter(
            {"snow": habitats[(split, "snow_leopard")].total()}
        )
        assert set(habitats[(split, "desert_leopard")]) == {"desert"}
        for label in set(CLASS_NAMES) - set(LOOKALIKES):
            counts = habitats[(split, label)]
            assert set(counts) == set(HABITATS)
            assert max(counts.values()) - min(counts.values()) <= 1  # balanced
    assert set(habitats[("test-swapped", "snow_leopard")]) == {"desert"}
    assert set(habitats[("test-swapped", "desert_leopard")]) == {"snow"}
    assert habitat_for(CLASSES[0], "test-swapped", 0) == "desert"


def test_lookalikes_differ_only_by_habitat():
    """Same seed: the two look-alike classes draw the very same image on the same habitat,
    and the same animal on different habitats."""
    snow, desert = (CLASSES[CLASS_NAMES.index(n)] for n in LOOKALIKES)
    for seed in range(5):
        a, mask_a = render_sample(snow, "snow", 48, np.random.default_rng(seed))
        b, _ = render_sample(desert, "snow", 48, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(a), np.asarray(b))
        c, mask_c = render_sample(desert, "desert", 48, np.random.default_rng(seed))
        assert np.array_equal(mask_a, mask_c)
        on_object = mask_a > 0.99
        assert np.allclose(np.asarray(a)[on_object], np.asarray(c)[on_object], atol=1)
        assert np.abs(np.asarray(a, float) - np.asarray(c, float))[~(mask_a > 0)].mean() > 20


def test_habitats_are_distinguishable_by_colour():
    means = {
        h: np.mean(
            [
                np.asarray(render_sample(CLASSES[5], h, 32, np.random.default_rng(i))[0])[:3].mean(
                    (0, 1)
                )
                for i in range(4)
            ],
            0,
        )
        for h in HABITATS
    }
    for a in HABITATS:
        for b in HABITATS:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 25, (a, b)


def test_the_unconfounded_world_puts_lookalikes_everywhere(tmp_path):
    samples = make_world(
        tmp_path,
        seed=0,
        image_size=16,
        train_per_class=5,
        test_per_class=5,
        swapped_per_class=1,
        confounded=False,
    )
    for cat in LOOKALIKES:
        assert {s.habitat for s in samples if s.label == cat and s.split == "train"} == set(
            HABITATS
        )


def test_the_cue_conflict_set_crosses_every_shape_with_other_textures(tiny_world):
    with open(tiny_world / "cue-conflict.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    categories = {"leopard", *(set(CLASS_NAMES) - set(LOOKALIKES))}
    textured = {"leopard", *(s.name for s in CLASSES if s.pattern != "solid")} - set(LOOKALIKES)
    pairs = Counter((r["shape"], r["texture"]) for r in rows)
    assert len(pairs) == 9 * 5 - 5 and set(pairs.values()) == {5}  # the default: 5 a pair
    assert {s for s, _ in pairs} == categories and {t for _, t in pairs} == textured
    assert all(shape != texture for shape, texture in pairs)
    habitats = Counter(r["habitat"] for r in rows)
    assert set(habitats) == {"grass", "water", "rock"}
    assert max(habitats.values()) - min(habitats.values()) <= 1
    for row in rows:
        assert (tiny_world / row["path"]).is_file()
    # Loose images, no class folders: the train stage does not take it for a split.
    assert not any(p.is_dir() for p in (tiny_world / "cue-conflict").iterdir())
    world = json.loads((tiny_world / "world.json").read_text())
    assert world["cue_conflict"]["categories"] == {"leopard": list(LOOKALIKES)}


def test_a_cue_conflict_image_is_its_shape_filled_with_another_texture():
    """The shape (mask) and background are the shape class's own; only the fill changes."""
    star, box = (CLASSES[CLASS_NAMES.index(n)] for n in ("star", "checkered_box"))
    for seed in range(3):
        own, own_mask = render_sample(star, "grass", 48, np.random.default_rng(seed))
        mixed, mask = render_sample(star, "grass", 48, np.random.default_rng(seed), texture=box)
        assert np.array_equal(mask, own_mask)
        inside, outside = mask > 0.99, mask == 0
        own, mixed = np.asarray(own, float), np.asarray(mixed, float)
        assert np.array_equal(own[outside], mixed[outside])
        # A solid star has one colour; the checker fills it with two far apart.
        assert own[inside].std(0).max() < 1 and mixed[inside].std(0).max() > 40


def test_the_demo_config_groups_the_lookalikes_as_the_world_does():
    from pathlib import Path

    from atlas.config import load_config
    from atlas.demo.world import CUE_CATEGORIES

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    assert config.shape_bias.categories == {k: list(v) for k, v in CUE_CATEGORIES.items()}
