import json
import shutil

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import SPEC

from atlas.config import ExtractConfig
from atlas.data import list_images, open_pixels
from atlas.demo.world import CLASS_NAMES
from atlas.errors import AtlasError
from atlas.extract import probe_layers, sample_positions
from atlas.layers import capture
from atlas.stages.extract import extract_store
from atlas.store import StoreMismatchError, open_run


def options(**changes):
    return ExtractConfig(
        **{"layer": ["block3", "fc"], "chunk_size": 16, "batch_size": 8, **changes}
    )


def extracted(tiny_world, url, **changes):
    """The tiny world's test split extracted into ``url`` with ``options(**changes)``."""
    extract_store(str(tiny_world / "test"), url, SPEC, options(**changes), scheduler="inline")
    return open_run(url)


def reference(model, path, layer):
    """The layer's output and the logits for one image, computed directly."""
    x = model.preprocessing.crop(open_pixels(path))[None].float() / 255
    x = model.preprocessing.normalize(x)
    with capture(model.module, [layer], detach=False) as outputs:
        logits = model.module(x.requires_grad_())
    return outputs[layer], logits


@pytest.fixture(scope="module")
def store(tiny_world, tmp_path_factory):
    return extracted(tiny_world, str(tmp_path_factory.mktemp("run") / "acts.zarr"))


def test_store_equals_a_direct_forward_pass(store, cnn, tiny_world):
    group = store.read_layer("block3")
    acts, pos, paths = group.acts[:], group.pos[:], group.path[:]
    assert acts.shape == (50, 64) and group.valid[:].all()
    for i in range(0, 50, 7):
        layer_out, logits = reference(cnn, store.locate(paths[i]), "block3")
        y, x = pos[i]
        assert 1 <= y < 7 and 1 <= x < 7  # 8x8 map, one position from the border
        np.testing.assert_allclose(
            acts[i], layer_out[0, :, y, x].detach().numpy(), rtol=1e-4, atol=1e-5
        )
        order = torch.argsort(logits[0], descending=True)[:5].numpy()
        assert list(group.topk_class[i]) == list(order)
        probs = torch.softmax(logits[0], 0).detach().numpy()
        np.testing.assert_allclose(group.topk_prob[i], probs[order], rtol=1e-4)
        assert sorted(CLASS_NAMES)[group.label[i]] == paths[i].split("/")[-2]
    fc = store.read_layer("fc")
    _, logits = reference(cnn, store.locate(fc.path[3]), "fc")
    np.testing.assert_allclose(fc.acts[3], logits[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    assert (fc.pos[:] == -1).all()


def test_attribution_equals_an_autograd_reference(store, cnn):
    group = store.read_layer("block3")
    attribution, classes = group.attribution[:], group.attribution_class[:]
    assert attribution.shape == (50, 10) and (classes == np.arange(10)).all()  # all 10 classes
    for i in (0, 17, 33):
        layer_out, logits = reference(cnn, store.locate(group.path[i]), "block3")
        y, x = group.pos[i]
        for c in range(10):
            (grad,) = torch.autograd.grad(logits[0, c], layer_out, retain_graph=True)
            expected = (layer_out[0, :, y, x] * grad[0, :, y, x]).sum().item()
            assert attribution[i, c] == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_topk_attribution_covers_the_predicted_classes(tiny_world, tmp_path):
    topk = {"layer": "block4", "attribution": "topk", "attribution_k": 3}
    group = extracted(tiny_world, str(tmp_path / "topk.zarr"), **topk).read_layer()
    assert group.attribution.shape == (50, 3)
    assert (group.attribution_class[:] == group.topk_class[:, :3]).all()


def test_attribution_to_given_classes_equals_their_slots_among_every_class(cnn, tiny_world):
    """``targets``: one backward pass per given class, the same values as attributing to
    every class and picking those (what the demo's habitat measure asks for)."""
    from atlas.extract import batch_samples

    (geometry,) = probe_layers(cnn, options(layer="block3"))
    paths = [str(p) for p in sorted((tiny_world / "test").rglob("*.png"))[:6]]
    pixels = torch.stack([cnn.preprocessing.crop(open_pixels(p)) for p in paths])
    inputs = cnn.preprocessing.normalize(pixels.float() / 255)
    positions = {"block3": np.tile(np.array([[[3, 4]]]), (len(paths), 1, 1))}
    every, _, _ = batch_samples(cnn, inputs, [geometry], positions, slots=10, topk=1)
    wanted = torch.tensor([[7], [0], [3], [3], [9], [1]])
    given, _, _ = batch_samples(cnn, inputs, [geometry], positions, slots=1, topk=1, targets=wanted)
    rows = np.arange(len(paths))
    expected = every["block3"].attribution[rows, wanted[:, 0].numpy()]
    np.testing.assert_allclose(given["block3"].attribution[:, 0], expected, rtol=1e-5, atol=1e-7)
    assert (given["block3"].attribution_class[:, 0] == wanted[:, 0].numpy()).all()


def test_mean_sampling_uses_the_spatial_mean_and_its_gradient(tiny_world, tmp_path, cnn):
    run = extracted(
        tiny_world, str(tmp_path / "mean.zarr"), layer="block4", sampling="mean", limit=5
    )
    group = run.read_layer()
    layer_out, logits = reference(cnn, run.locate(group.path[2]), "block4")
    mean = layer_out[0].mean(dim=(1, 2))
    np.testing.assert_allclose(group.acts[2], mean.detach().numpy(), rtol=1e-4, atol=1e-6)
    (grad,) = torch.autograd.grad(logits[0, 4], layer_out)
    expected = (mean * grad[0].sum(dim=(1, 2))).sum().item()
    assert group.attribution[2, 4] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    # GAP then a linear head: the mean's attribution is exactly its share of the logit,
    # the head's weights times the mean (the logit less its bias).
    w, b = cnn.module.fc.weight[4], cnn.module.fc.bias[4]
    assert expected == pytest.approx((logits[0, 4] - b).item(), rel=1e-4)
    share = (w * mean).sum().item()
    assert group.attribution[2, 4] == pytest.approx(share, rel=1e-3, abs=1e-5)


def test_sampling_policies_and_their_determinism(cnn):
    block3 = probe_layers(cnn, options(layer="block3"))[0]
    assert (block3.channels, block3.height, block3.width) == (64, 8, 8)
    centre = sample_positions(block3, [0, 1], options(layer="block3", sampling="center"))
    assert (centre == 4).all()
    every = probe_layers(cnn, options(layer="block3", sampling="all", max_positions=20))[0]
    assert every.samples_per_image == 20
    picked = sample_positions(
        every, [5], options(layer="block3", sampling="all", max_positions=20)
    )[0]
    assert len({tuple(p) for p in picked}) == 20
    full = probe_layers(cnn, options(layer="block4", sampling="all"))[0]
    assert full.samples_per_image == 16
    random = options(layer="block3", seed=3)
    a = sample_positions(block3, [10, 11, 12], random)
    assert (a[1:] == sample_positions(block3, [11, 12], random)).all()  # per image, not per chunk
    assert not (a == sample_positions(block3, [10, 11, 12], options(layer="block3", seed=4))).all()


def test_all_sampling_writes_every_position(tiny_world, tmp_path, cnn):
    run = extracted(tiny_world, str(tmp_path / "all.zarr"), layer="block4", sampling="all", limit=3)
    group = run.read_layer()
    assert group.acts.shape == (48, 128)
    layer_out, _ = reference(cnn, run.locate(group.path[16]), "block4")
    expected = layer_out[0].detach().permute(1, 2, 0).reshape(16, 128).numpy()
    np.testing.assert_allclose(group.acts[16:32], expected, rtol=1e-4, atol=1e-5)
    assert (group.image[16:32] == 1).all()


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
        extracted(tiny_world, store.url, seed=1)
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
    names = list(one.images.image_path[:])
    assert names == list(two.images.image_path[:])
    assert all(not n.startswith("/") and n.count("/") == 1 for n in names)
    assert (one.read_layer().acts[:] == two.read_layer().acts[:]).all()
    assert str(tmp_path) not in json.dumps(dict(one.group.attrs))


def brute_force_tops(model, run, layer, k):
    """Per channel, the k images whose map holds the channel's largest values (each image
    once, at its first maximal position; ties to the lower image index), computed from
    every position of every image directly."""
    peaks, where = [], []
    for name in run.images.image_path[:]:
        output, _ = reference(model, run.locate(name), layer)
        flat = output[0].detach().flatten(1).numpy()
        peaks.append(flat.max(axis=1))
        where.append(flat.argmax(axis=1))
    peaks, where = np.array(peaks), np.array(where)  # (images, channels)
    order = np.lexsort((np.arange(len(peaks))[:, None].repeat(peaks.shape[1], 1), -peaks), axis=0)
    top = order[:k].T  # (channels, k) image indices
    width = output.shape[3]
    at = np.take_along_axis(where.T, top, axis=1)
    return top, np.take_along_axis(peaks.T, top, axis=1), np.stack([at // width, at % width], -1)


def test_channel_tops_equal_a_brute_force_search_over_every_position(store, cnn):
    assert store.channel_top_layers == ["block3"]  # fc is a vector layer
    tops = store.channel_tops("block3")
    images, values, positions = brute_force_tops(cnn, store, "block3", 9)
    assert tops.image.shape == (64, 9) and store.layout.n_tasks == 4
    np.testing.assert_array_equal(tops.image, images)
    np.testing.assert_array_equal(tops.pos, positions)
    np.testing.assert_allclose(tops.value, values, rtol=1e-4, atol=1e-6)
    with pytest.raises(AtlasError, match=r"no channel tops for layer 'fc'.*block3"):
        store.channel_tops("fc")


def test_pooled_is_the_spatial_mean_per_image(store, cnn):
    pooled, fc = store.pooled("block3"), store.pooled("fc")
    assert pooled.shape == (50, 64) and fc.shape == (50, 10) and store.image_valid().all()
    for i in (0, 21, 49):
        output, logits = reference(cnn, store.locate(store.images.image_path[i]), "block3")
        mean = output[0].detach().mean(dim=(1, 2)).numpy()
        np.testing.assert_allclose(pooled[i], mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fc[i], logits[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    ds = xr.open_zarr(store.url, group="block3", consolidated=False)
    assert ds["pooled"].dims == ("image", "channel")
    assert ds["channel_top_image"].dims == ("task", "channel", "rank")


def test_channel_tops_do_not_depend_on_the_tasks(tiny_world, tmp_path, store):
    """Two tasks of 32 and 18 images, run in one batch each, rank the channels as the
    fixture's four tasks of 16 (batches of 8) merged do."""
    one = extracted(
        tiny_world,
        str(tmp_path / "one.zarr"),
        layer="block3",
        chunk_size=64,
        batch_size=50,
        attribution="off",
    )
    assert one.layout.n_tasks == 2
    single, merged = one.channel_tops(), store.channel_tops("block3")
    np.testing.assert_array_equal(single.image, merged.image)
    np.testing.assert_array_equal(single.pos, merged.pos)
    np.testing.assert_allclose(single.value, merged.value, rtol=1e-5, atol=1e-6)


class ColourSpots(torch.nn.Module):
    """A hand-built network: layer ``spots`` is the input's red, green and blue (a 1x1
    convolution with identity weights), then a mean and a linear head."""

    def __init__(self):
        super().__init__()
        self.spots = torch.nn.Conv2d(3, 3, 1, bias=False)
        self.spots.weight.data = torch.eye(3)[:, :, None, None]
        self.head = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2)
        )

    def forward(self, x):
        return self.head(self.spots(x))


def test_channel_tops_count_an_image_once_and_break_ties_by_image_index(tmp_path):
    from PIL import Image

    from atlas.models import wrap_model

    folder = tmp_path / "images" / "spot"
    folder.mkdir(parents=True)
    spots = {  # image -> (channel, y, x, value) spots on black
        "0.png": [(0, 3, 5, 200), (0, 10, 2, 200)],  # two equal maxima: the first counts
        "1.png": [(0, 7, 7, 200), (1, 0, 15, 100)],  # as bright as 0.png
        "2.png": [(0, 12, 12, 250), (0, 1, 1, 200)],
    }
    for name, marks in spots.items():
        pixels = np.zeros((16, 16, 3), np.uint8)
        for channel, y, x, value in marks:
            pixels[y, x, channel] = value
        Image.fromarray(pixels).save(folder / name)
    (folder / "3.png").write_bytes(b"not an image")  # skipped: never a top image
    model = wrap_model(
        ColourSpots(), input_size=16, mean=(0, 0, 0), std=(1, 1, 1), class_names=["spot", "x"]
    )
    url = str(tmp_path / "spots.zarr")
    extract_store(
        str(tmp_path / "images"),
        url,
        model,
        ExtractConfig(layer="spots", chunk_size=2, channel_top=3, attribution="off"),
        scheduler="inline",
    )
    run = open_run(url)
    assert run.layout.n_tasks == 2 and list(run.image_valid()) == [True, True, True, False]
    tops = run.channel_tops()
    assert tops.image.tolist() == [[2, 0, 1], [1, 0, 2], [0, 1, 2]]
    assert tops.pos.tolist()[0] == [[12, 12], [3, 5], [7, 7]]
    assert tops.pos.tolist()[2] == [[0, 0]] * 3  # all black: the first position of each
    np.testing.assert_allclose(tops.value[0], np.array([250, 200, 200]) / 255, rtol=1e-6)
    np.testing.assert_allclose(tops.value[1], [100 / 255, 0, 0], atol=1e-7)
    np.testing.assert_allclose(run.pooled()[1], [200 / 255 / 256, 100 / 255 / 256, 0], rtol=1e-5)
    assert (run.pooled()[3] == 0).all()


def test_merging_rankings_equals_ranking_everything_at_once():
    from atlas.store import ChannelTops

    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, (3, 40)).astype(np.float32)  # many ties
    images = np.broadcast_to(np.arange(40), (3, 40)).copy()
    images[:, 35:] = -1  # pads
    positions = rng.integers(0, 8, (3, 40, 2)).astype(np.int32)
    whole = ChannelTops.select(values, images, positions, 5)
    merged = ChannelTops.empty(3, 5)
    for part in np.array_split(rng.permutation(40), 6):  # tasks of any images, in any order
        task = ChannelTops.select(values[:, part], images[:, part], positions[:, part], 5)
        merged = merged.merged(task.value[None], task.image[None], task.pos[None])
    for field in ("value", "image", "pos"):
        np.testing.assert_array_equal(getattr(merged, field), getattr(whole, field))
    best = np.lexsort((np.where(images < 0, 99, images), -values), axis=1)[:, :5]
    assert (whole.image == np.take_along_axis(images, best, axis=1)).all()
