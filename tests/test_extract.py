import json
import shutil

import numpy as np
import pytest
import torch
import xarray as xr

from atlas.config import ExtractConfig, ModelSpec
from atlas.data import list_images, open_pixels
from atlas.demo.world import CLASS_NAMES
from atlas.errors import AtlasError
from atlas.extract import probe_layers, sample_positions
from atlas.layers import capture
from atlas.models import load_model
from atlas.stages.extract import extract_store
from atlas.store import StoreMismatchError, open_run

SPEC = ModelSpec(
    arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=32, class_names=sorted(CLASS_NAMES)
)


def options(**changes):
    return ExtractConfig(
        **{"layer": ["block3", "fc"], "chunk_size": 16, "batch_size": 8, **changes}
    )


@pytest.fixture(scope="module")
def model():
    return load_model(SPEC, seed=0)


def reference(model, path, layer):
    """The layer's output and the logits for one image, computed directly."""
    x = model.preprocessing.crop(open_pixels(path))[None].float() / 255
    x = model.preprocessing.normalize(x)
    with capture(model.module, [layer], detach=False) as outputs:
        logits = model.module(x.requires_grad_())
    return outputs[layer], logits


@pytest.fixture(scope="module")
def store(tiny_world, tmp_path_factory):
    url = str(tmp_path_factory.mktemp("run") / "acts.zarr")
    extract_store(str(tiny_world / "test"), url, SPEC, options(), scheduler="inline")
    return open_run(url)


def test_store_equals_a_direct_forward_pass(store, model, tiny_world):
    group = store.layer("block3")
    acts, pos, paths = group["acts"][:], group["pos"][:], group["path"][:]
    assert acts.shape == (50, 64) and group["valid"][:].all()
    for i in range(0, 50, 7):
        layer_out, logits = reference(model, store.locate(paths[i]), "block3")
        y, x = pos[i]
        assert 1 <= y < 7 and 1 <= x < 7  # 8x8 map, one position from the border
        np.testing.assert_allclose(
            acts[i], layer_out[0, :, y, x].detach().numpy(), rtol=1e-4, atol=1e-5
        )
        order = torch.argsort(logits[0], descending=True)[:5].numpy()
        assert list(group["topk_class"][i]) == list(order)
        probs = torch.softmax(logits[0], 0).detach().numpy()
        np.testing.assert_allclose(group["topk_prob"][i], probs[order], rtol=1e-4)
        assert sorted(CLASS_NAMES)[group["label"][i]] == paths[i].split("/")[-2]
    fc = store.layer("fc")
    _, logits = reference(model, store.locate(fc["path"][3]), "fc")
    np.testing.assert_allclose(fc["acts"][3], logits[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    assert (fc["pos"][:] == -1).all()


def test_attribution_equals_an_autograd_reference(store, model):
    group = store.layer("block3")
    attribution, classes = group["attribution"][:], group["attribution_class"][:]
    assert attribution.shape == (50, 10) and (classes == np.arange(10)).all()  # all 10 classes
    for i in (0, 17, 33):
        layer_out, logits = reference(model, store.locate(group["path"][i]), "block3")
        y, x = group["pos"][i]
        for c in range(10):
            (grad,) = torch.autograd.grad(logits[0, c], layer_out, retain_graph=True)
            expected = (layer_out[0, :, y, x] * grad[0, :, y, x]).sum().item()
            assert attribution[i, c] == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_topk_attribution_covers_the_predicted_classes(tiny_world, tmp_path, model):
    url = str(tmp_path / "topk.zarr")
    extract_store(
        str(tiny_world / "test"),
        url,
        SPEC,
        options(layer="block4", attribution="topk", attribution_k=3),
        scheduler="inline",
    )
    group = open_run(url).layer()
    assert group["attribution"].shape == (50, 3)
    assert (group["attribution_class"][:] == group["topk_class"][:, :3]).all()


def test_mean_sampling_uses_the_spatial_mean_and_its_gradient(tiny_world, tmp_path, model):
    url = str(tmp_path / "mean.zarr")
    extract_store(
        str(tiny_world / "test"),
        url,
        SPEC,
        options(layer="block4", sampling="mean", limit=5),
        scheduler="inline",
    )
    run = open_run(url)
    group = run.layer()
    layer_out, logits = reference(model, run.locate(group["path"][2]), "block4")
    mean = layer_out[0].mean(dim=(1, 2))
    np.testing.assert_allclose(group["acts"][2], mean.detach().numpy(), rtol=1e-4, atol=1e-6)
    (grad,) = torch.autograd.grad(logits[0, 4], layer_out)
    expected = (mean * grad[0].sum(dim=(1, 2))).sum().item()
    assert group["attribution"][2, 4] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    # GAP then a linear head: the mean's attribution is exactly its share of the logit.
    w, b = model.module.fc.weight[4], model.module.fc.bias[4]
    assert expected == pytest.approx((logits[0, 4] - b).item(), rel=1e-4)
    assert w.shape[0] == mean.shape[0]


def test_sampling_policies_and_their_determinism(model):
    block3 = probe_layers(model, options(layer="block3"))[0]
    assert (block3.channels, block3.height, block3.width) == (64, 8, 8)
    centre = sample_positions(block3, [0, 1], options(layer="block3", sampling="center"))
    assert (centre == 4).all()
    every = probe_layers(model, options(layer="block3", sampling="all", max_positions=20))[0]
    assert every.samples_per_image == 20
    picked = sample_positions(
        every, [5], options(layer="block3", sampling="all", max_positions=20)
    )[0]
    assert len({tuple(p) for p in picked}) == 20
    full = probe_layers(model, options(layer="block4", sampling="all"))[0]
    assert full.samples_per_image == 16
    random = options(layer="block3", seed=3)
    a = sample_positions(block3, [10, 11, 12], random)
    assert (a[1:] == sample_positions(block3, [11, 12], random)).all()  # per image, not per chunk
    assert not (a == sample_positions(block3, [10, 11, 12], options(layer="block3", seed=4))).all()


def test_all_sampling_writes_every_position(tiny_world, tmp_path, model):
    url = str(tmp_path / "all.zarr")
    extract_store(
        str(tiny_world / "test"),
        url,
        SPEC,
        options(layer="block4", sampling="all", limit=3),
        scheduler="inline",
    )
    run = open_run(url)
    group = run.layer()
    assert group["acts"].shape == (48, 128)
    layer_out, _ = reference(model, run.locate(group["path"][16]), "block4")
    expected = layer_out[0].detach().permute(1, 2, 0).reshape(16, 128).numpy()
    np.testing.assert_allclose(group["acts"][16:32], expected, rtol=1e-4, atol=1e-5)
    assert (group["image"][16:32] == 1).all()


def test_the_store_opens_with_xarray(store):
    ds = xr.open_zarr(store.url, group="block3", consolidated=False)
    assert ds["acts"].dims == ("sample", "channel")
    assert ds["pos"].dims == ("sample", "yx") and ds["attribution"].dims == ("sample", "slot")
    assert ds["path"].values[0].endswith(".png")
    root = xr.open_zarr(store.url, consolidated=False)
    assert root["image_path"].dims == ("image",)
    assert store.meta["identity"]["model"]["arch"] == SPEC.arch
    assert store.meta["version"] and store.meta["identity_hash"]


def test_a_changed_config_is_refused_unless_overwritten(store, tiny_world):
    with pytest.raises(StoreMismatchError, match=r"extract\.seed: 0 -> 1.*--overwrite"):
        extract_store(
            str(tiny_world / "test"), store.url, SPEC, options(seed=1), scheduler="inline"
        )
    # Operational keys do not change the result: the complete store is reused as is.
    summary = extract_store(
        str(tiny_world / "test"), store.url, SPEC, options(batch_size=3), scheduler="inline"
    )
    assert summary.tasks_run == 0


def test_overwrite_replaces_the_store(tiny_world, tmp_path):
    url = str(tmp_path / "o.zarr")
    extract_store(str(tiny_world / "test"), url, SPEC, options(limit=4), scheduler="inline")
    extract_store(
        str(tiny_world / "test"), url, SPEC, options(limit=6), scheduler="inline", overwrite=True
    )
    assert open_run(url).layout.n_images == 6


def test_unknown_layer_is_refused_before_any_work(tiny_world, tmp_path):
    with pytest.raises(AtlasError, match=r"unknown layer 'block5'.*block4"):
        extract_store(
            str(tiny_world / "test"), str(tmp_path / "s.zarr"), SPEC, options(layer="block5")
        )
    assert not (tmp_path / "s.zarr").exists()


def test_listing_is_sorted_and_labelled(tiny_world):
    listed = list_images(tiny_world / "test", sorted(CLASS_NAMES))
    assert listed.kind == "folder" and len(listed.records) == 50
    assert [r.path for r in listed.records] == sorted(r.path for r in listed.records)


def test_images_are_named_relative_to_the_source_wherever_it_lies(
    tiny_world, tmp_path, monkeypatch
):
    """Two copies of a project in two places, each extracting its own ``data/test``: the
    stores name the same images the same way, record no path of either place, and are
    made from the same identity (a clone elsewhere resumes the same store)."""
    stores = []
    for place in ("one", "two"):
        project = tmp_path / place
        shutil.copytree(tiny_world / "test", project / "data" / "test")
        monkeypatch.chdir(project)
        extract_store(
            "data/test", "acts.zarr", SPEC, options(layer="block3", limit=6), scheduler="inline"
        )
        stores.append(open_run(str(project / "acts.zarr")))
    one, two = stores
    assert one.image_root == two.image_root == "data/test"
    assert one.identity_hash == two.identity_hash
    names = list(one.group["image_path"][:])
    assert names == list(two.group["image_path"][:])
    assert all(not n.startswith("/") and n.count("/") == 1 for n in names)
    assert (one.layer()["acts"][:] == two.layer()["acts"][:]).all()
    assert str(tmp_path) not in json.dumps(dict(one.group.attrs))
