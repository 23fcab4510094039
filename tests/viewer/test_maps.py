"""The site's other maps in a real browser (Debian's Chromium, headless, under the site's
Content-Security-Policy): the aligned atlases side by side, and the image map."""

import json

import numpy as np
import pytest
import zarr
from browser import ARTIFACTS, needs_chromium, open_page, serving, wait_until

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser(tiny_site):
    """Opens a page of the site at a size, once ``ready`` (an expression) is true."""
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(tiny_site["site"]) as (chromium, url):

        def open_map(path, ready, size=(760, 520)):
            page, problems = open_page(chromium, url + path, size)
            wait_until(page, ready, 15)
            return page, problems

        yield open_map


def test_aligned_atlases_pan_and_zoom_together(browser, tiny_site):
    page, problems = browser("aligned.html", "alignedViewer.drawn()")
    page.screenshot(path=str(ARTIFACTS / "aligned.png"))
    assert "within one cell" in page.inner_text("#alignment")
    # Move the left map: the right one shows the same part of the layout.
    page.evaluate(
        "alignedViewer.sides.left.viewer.viewport.fitBounds("
        "new OpenSeadragon.Rect(0.5, 0.5, 0.25, 0.25), true)"
    )
    page.wait_for_timeout(200)
    left, right = (
        page.evaluate(
            f"(() => {{ const b = alignedViewer.bounds('{n}'); return [b.x, b.y, b.width]; }})()"
        )
        for n in ("left", "right")
    )
    assert left == pytest.approx(right, abs=1e-6)
    assert left[0] == pytest.approx(0.5, abs=0.05)
    assert not problems, problems


def test_hovering_a_cell_outlines_it_on_both_maps_with_both_counts(browser, tiny_site):
    page, problems = browser("aligned.html", "alignedViewer.drawn()")
    level = page.evaluate("alignedViewer.level()")
    count = zarr.open_group(str(tiny_site["aligned"] / "grid.zarr"), mode="r")[str(level)]["count"][
        :
    ]
    cell = int(np.argmax(count))
    at = page.evaluate(f"alignedViewer.sides.right.cellCenter({level}, {cell})")
    page.mouse.move(at["x"], at["y"])
    page.wait_for_selector("#tooltip:not([hidden])")
    assert page.get_attribute("#tooltip", "data-cell") == str(cell)
    assert f"{int(count[cell])} activations" in page.inner_text("#tooltip")
    assert page.locator(f".highlight[data-cell='{cell}']").count() == 2
    assert not problems, problems


def test_the_alignment_figure_is_the_stores(tiny_site):
    """The page states the align stage's figures, and they describe a real alignment."""
    page = json.loads((tiny_site["site"] / "aligned.json").read_text())
    stored = zarr.open_group(str(tiny_site["aligned"] / "layout.zarr"), mode="r").attrs["atlas"]
    assert page["within_one_cell"] == stored["alignment"]["within_one_cell"]
    assert [level["size"] for level in page["levels"]] == [4, 8]


def image_map_level(tiny_site, size):
    return zarr.open_group(str(tiny_site["image_map"] / "map.zarr"), mode="r")[str(size)]


def test_image_map_names_each_thumbnail_and_links_its_report(browser, tiny_site):
    page, problems = browser("images.html", "imageMap.drawn()", size=(520, 520))
    page.screenshot(path=str(ARTIFACTS / "image-map.png"))
    level = page.evaluate("imageMap.level()")
    shown = image_map_level(tiny_site, level)["image"][:]
    cell = int(np.flatnonzero(shown >= 0)[0])
    names = zarr.open_group(tiny_site["store"], mode="r")["image_path"]
    name = str(names[int(shown[cell])])
    at = page.evaluate(f"imageMap.cellCenter({level}, {cell})")
    page.mouse.move(at["x"], at["y"])
    page.wait_for_selector("#tooltip:not([hidden])")
    assert name in page.inner_text("#tooltip")
    page.mouse.click(at["x"], at["y"])
    page.wait_for_selector("#panel:not([hidden])")
    link = page.get_attribute("#panel a.report", "href")
    assert link and link.endswith(".html")
    with page.expect_navigation():
        page.click("#panel a.report")
    assert name in page.content()
    assert not problems, problems


def test_every_image_shown_has_a_report_and_a_thumbnail(tiny_site):
    site = tiny_site["site"]
    for size in (2, 4, 8):
        for block in (site / "image-map" / "cells" / str(size)).glob("*.json"):
            for entry in json.loads(block.read_text()):
                assert entry["report"] and (site / entry["report"]).is_file(), entry
                assert (site / entry["thumb"]).is_file(), entry
