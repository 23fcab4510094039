"""The channels stage: each channel's top images, cut to the receptive field of their
peak, beside its feature visualization, on pages that show image names as text."""

import copy
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import SPEC
from PIL import Image

from atlas.channels import GREY, channel_sheet, field_crop
from atlas.cli import main
from atlas.config import ChannelsConfig, ExtractConfig, RenderConfig
from atlas.data import open_pixels
from atlas.errors import AtlasError
from atlas.models import wrap_model
from atlas.stages.channels import channel_pages
from atlas.stages.extract import extract_store
from atlas.store import open_run
from atlas.store.channels import icon_cache, read_channel_index

HOSTILE = "<img src=x onerror=alert(1)>.png"
QUICK = RenderConfig(icon_size=24, steps=4, batch_size=64)  # icons in a second


def parsed(page: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every start tag of an HTML page with its attributes, as a browser reads them."""
    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Tags().feed(page)
    return found


@pytest.fixture(scope="module")
def images(tiny_world, tmp_path_factory):
    """Seven images, one of them named as markup: with 9 top images per channel, every
    image is among every channel's tops."""
    root = tmp_path_factory.mktemp("hostile") / "images"
    (root / "star").mkdir(parents=True)
    sources = sorted((tiny_world / "test" / "star").iterdir())[:5]
    sources += sorted((tiny_world / "test" / "ring").iterdir())[:2]
    for i, path in enumerate(sources):
        shutil.copy(path, root / "star" / (HOSTILE if i == 3 else f"{i}.png"))
    return root


@pytest.fixture(scope="module")
def run(images):
    url = str(images.parent / "acts.zarr")
    extract_store(
        str(images),
        url,
        SPEC,
        ExtractConfig(layer=["block3", "fc"], attribution="off"),
        scheduler="inline",
    )
    return open_run(url)


@pytest.fixture(scope="module")
def pages(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("channels")
    summary = channel_pages(run.url, out, ChannelsConfig(), QUICK, scheduler="inline")
    return out, summary


def test_field_crop_keeps_the_peak_in_place_and_greys_what_lies_outside():
    pixels = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    inside = field_crop(pixels, (1, 2, 4, 5))  # x0, y0, x1, y1
    assert (inside == pixels[2:5, 1:4]).all()
    corner = field_crop(pixels, (-2, -1, 2, 3))  # reaches past the top-left corner
    assert corner.shape == (4, 4, 3)
    assert (corner[1:, 2:] == pixels[:3, :2]).all()
    assert (corner[0] == GREY).all() and (corner[:, :2] == GREY).all()


def test_the_crops_are_the_receptive_fields_of_the_peaks(run, cnn, tmp_path):
    geometry = run.geometry("block3")
    sheet = channel_sheet(
        run, "block3", icon_cache(tmp_path, "block3"), ChannelsConfig(), QUICK, scheduler="inline"
    )
    assert sheet.crops.shape == (64, 9, 18, 18, 3)  # the 18 px field of block3 at 32 px
    checked_edge = False
    for c in range(0, 64, 9):
        for rank in np.flatnonzero(sheet.tops.image[c] >= 0):
            y, x = sheet.tops.pos[c, rank]
            name = sheet.names[c, rank]
            pixels = cnn.preprocessing.crop(open_pixels(run.locate(name))).permute(1, 2, 0)
            x0, y0, x1, y1 = geometry.crop_box(y, x)
            fx0, fy0, *_ = geometry.field_box(y, x)
            crop = sheet.crops[c, rank]
            inside = crop[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0]
            assert (inside == pixels.numpy()[y0:y1, x0:x1]).all()
            outside = np.ones(crop.shape[:2], bool)
            outside[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0] = False
            assert (crop[outside] == GREY).all()
            checked_edge |= bool(outside.any())
    assert checked_edge  # some peaks lie near the border, where the field is cut
    assert not sheet.readable[sheet.tops.image < 0].any()  # 7 images, 9 ranks: 2 pads
    assert sheet.readable[sheet.tops.image >= 0].all()


def test_pages_show_crops_values_and_hostile_names_as_text(pages, run):
    out, summary = pages
    page = (out / "block3.html").read_text()
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    tags = parsed(page)
    assert not [
        (tag, name)
        for tag, attrs in tags
        for name, _ in attrs
        if name.startswith("on") or name == "style" or tag in ("script", "style")
    ]  # a strict CSP: no inline script or style
    assert ("alt", f"star/{HOSTILE}") in [a for tag, attrs in tags if tag == "img" for a in attrs]
    tops = run.channel_tops("block3")
    for c in (0, 63):
        row = page.split(f'id="channel-{c}"')[1].split("</tr>")[0]
        assert row.count("<figure") == 7  # pads are not shown
        assert f'src="block3/{c}-0.png"' in row and f'src="block3/icon-{c}.png"' in row
        assert f"<figcaption>{tops.value[c, 0]:.3g}</figcaption>" in row
        saved = np.asarray(Image.open(out / f"block3/{c}-0.png"))
        assert saved.shape == (18, 18, 3)
    index = read_channel_index(out)
    assert [layer["name"] for layer in index["layers"]] == ["block3"]  # fc is a vector layer
    assert index["images"] == 7 and index["layers"][0]["page"] == "block3.html"
    assert summary.layers == index["layers"]
    assert 'href="block3.html"' in (out / "index.html").read_text()


def test_icons_are_the_render_recipe_and_stay_the_same(pages, run, tmp_path):
    out, _ = pages
    icon = np.asarray(Image.open(out / "block3/icon-5.png"))
    assert icon.shape == (24, 24, 3)
    again = channel_sheet(
        run, "block3", icon_cache(tmp_path, "block3"), ChannelsConfig(), QUICK, scheduler="inline"
    )
    assert (again.icons[5] == icon).all()  # seeded by the channel: the same icon every time


def test_a_model_in_memory_renders_the_same_icons(images, pages, cnn, tmp_path):
    module = copy.deepcopy(cnn.module)  # the run's network, as a module of the user's own
    model = wrap_model(module, input_size=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    url = str(tmp_path / "memory.zarr")
    extract_store(
        str(images),
        url,
        model,
        ExtractConfig(layer="block3", attribution="off"),
        scheduler="inline",
    )
    out = tmp_path / "pages"
    channel_pages(url, out, ChannelsConfig(), QUICK, model=model)
    for name in ("icon-5.png", "2-0.png"):
        mine = np.asarray(Image.open(out / "block3" / name))
        theirs = np.asarray(Image.open(pages[0] / "block3" / name))
        assert np.abs(mine.astype(int) - theirs).max() <= 1


def test_layers_without_channel_tops_are_refused_naming_the_ones_with_them(run, tmp_path):
    with pytest.raises(AtlasError, match=r"no channel tops for layer 'fc'.*block3"):
        channel_pages(run.url, tmp_path, ChannelsConfig(layers=["fc"]), QUICK)
    assert not list(tmp_path.iterdir())


def test_cli_writes_the_pages_and_the_model_report_links_them(run, tmp_path, capsys):
    quick = ["-s", "render.icon_size=24", "-s", "render.steps=2", "-s", "render.batch_size=64"]
    out = tmp_path / "channels"
    args = ["channels", "--store", run.url, "--layer", "block3", "--out", str(out)]
    assert main([*args, *quick, "--scheduler", "inline"]) == 0
    assert "block3: 64 channels" in capsys.readouterr().out
    assert (out / "index.html").is_file() and (out / "atlas-config.yaml").is_file()

    assert main(["channels", "--store", run.url, "--layer", "fc", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "block3" in err

    report = tmp_path / "report"
    model = ["--arch", SPEC.arch, "--num-classes", "10", "--input-size", "32"]
    small = ["-s", "report.steps=2", "-s", "report.icon_size=32", "-s", "report.classes=[class_0]"]
    assert main(["report-model", *model, *small, "--channels", str(out), "--out", str(report)]) == 0
    page = (report / "model.html").read_text()
    assert 'href="../channels/index.html"' in page and 'href="../channels/block3.html"' in page
