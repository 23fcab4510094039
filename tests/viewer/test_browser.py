"""The viewer in a real browser: Debian's Chromium, driven headless by Playwright."""

import numpy as np
import pytest
import zarr
from browser import ARTIFACTS, needs_chromium, open_page, serving, wait_until

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser_page(tiny_site):
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(tiny_site["site"]) as (browser, url):
        page, problems = open_page(browser, url, (420, 520))
        page.wait_for_timeout(500)
        yield page, problems, url


def level_store(tiny_site, size):
    return zarr.open_group(tiny_site["grid"], mode="r")[str(size)]


def busiest_cell(tiny_site, size):
    count = level_store(tiny_site, size)["count"][:]
    return int(np.argmax(count)), count


def test_loads_without_errors_and_draws_tiles(browser_page):
    page, problems, _ = browser_page
    page.screenshot(path=str(ARTIFACTS / "viewer-start.png"))
    assert page.title() == "Tiny atlas"
    assert page.evaluate("atlasViewer.level()") == 4  # the finest level whose cells are big enough
    wait_until(page, "atlasViewer.drawn()", 10)
    assert problems == []


def test_zooming_in_switches_to_finer_levels(browser_page, tiny_site):
    page, problems, _ = browser_page
    cell, _ = busiest_cell(tiny_site, 8)
    page.evaluate(f"atlasViewer.zoomToCell(8, {cell}, 4)")
    wait_until(page, "atlasViewer.level() === 8", 10)
    assert page.locator("#level").get_attribute("data-size") == "8"
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "viewer-zoomed.png"))
    page.evaluate("atlasViewer.viewer.viewport.goHome(true)")
    wait_until(page, "atlasViewer.level() === 4", 10)
    page.evaluate(
        "atlasViewer.viewer.viewport.zoomTo(atlasViewer.viewer.viewport.getMinZoom(), null, true)"
    )
    wait_until(page, "atlasViewer.level() === 2", 10)
    page.evaluate("atlasViewer.viewer.viewport.goHome(true)")
    wait_until(page, "atlasViewer.level() === 4", 10)
    assert problems == []


def test_hover_shows_the_stores_count_and_classes(browser_page, tiny_site):
    page, problems, _ = browser_page
    cell, count = busiest_cell(tiny_site, 4)
    point = page.evaluate(f"atlasViewer.cellCenter(4, {cell})")
    page.mouse.move(point["x"] - 3, point["y"] - 3)
    page.mouse.move(point["x"], point["y"])
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible", timeout=10000)
    assert tooltip.get_attribute("data-cell") == str(cell)
    assert f"average of {count[cell]} activations" in tooltip.inner_text()
    classes = zarr.open_group(tiny_site["store"], mode="r").attrs["atlas"]["class_names"]
    top = level_store(tiny_site, 4)["top_class"][cell]
    text = tooltip.inner_text()
    for klass in top[top >= 0][:2]:
        assert classes[klass] in text
    page.screenshot(path=str(ARTIFACTS / "viewer-hover.png"))
    assert problems == []


def test_click_opens_exemplars_whose_links_resolve(browser_page, tiny_site):
    page, problems, url = browser_page
    cell, _ = busiest_cell(tiny_site, 4)
    point = page.evaluate(f"atlasViewer.cellCenter(4, {cell})")
    page.mouse.click(point["x"], point["y"])
    panel = page.locator("#panel")
    panel.wait_for(state="visible", timeout=10000)
    assert panel.get_attribute("data-cell") == str(cell)
    images = page.locator("#panel .exemplars img")
    assert images.count() >= 1
    links = [
        page.locator("#panel .exemplars a").nth(i).get_attribute("href")
        for i in range(page.locator("#panel .exemplars a").count())
    ]
    assert links, "exemplars link to their reports"
    for link in links + [images.nth(i).get_attribute("src") for i in range(images.count())]:
        response = page.request.get(url + link)
        assert response.status == 200, link
    page.screenshot(path=str(ARTIFACTS / "viewer-panel.png"))
    page.goto(url + links[0])
    assert "Attribution maps" in page.content()
    page.go_back()
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    assert problems == []


def test_class_filter_highlights_the_cells_that_push_the_class(browser_page, tiny_site):
    page, problems, _ = browser_page
    classes = zarr.open_group(tiny_site["store"], mode="r").attrs["atlas"]["class_names"]
    top = level_store(tiny_site, 4)["top_class"][:]
    count = level_store(tiny_site, 4)["count"][:]
    klass = int(top[np.argmax(count), 0])
    expected = {c for c in range(len(top)) if count[c] > 0 and klass in top[c]}
    page.fill("#class-filter", classes[klass])
    page.dispatch_event("#class-filter", "change")
    page.wait_for_selector(".highlight", timeout=10000)
    shown = {int(e.get_attribute("data-cell")) for e in page.locator(".highlight").all()}
    assert shown == expected
    page.screenshot(path=str(ARTIFACTS / "viewer-class-filter.png"))
    assert problems == []


def test_class_atlas_and_model_pages(browser_page):
    page, problems, url = browser_page
    page.goto(url + "classes.html")
    assert page.locator(".atlas").count() == 2 and "star or ring?" in page.content()
    # Measures another stage wrote about the atlases are shown beside them, as text.
    star = page.locator('.atlas[data-class="star"]')
    assert "made-up share 0.25" in star.inner_text()
    assert "made-up share" not in page.locator('.atlas[data-class="ring"]').inner_text()
    assert page.locator("table.measures td").all_inner_texts() == ["x", "y"]
    assert "Made-up share: a number for the test." in page.content()
    for image in page.locator("img").all():
        assert page.evaluate(
            "(img) => img.complete && img.naturalWidth > 0", image.element_handle()
        )
    page.screenshot(path=str(ARTIFACTS / "viewer-classes.png"), full_page=True)
    page.goto(url + "model/model.html")
    assert "Model report" in page.content()
    assert problems == []


def fresh_atlas(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    page.evaluate("atlasViewer.viewer.viewport.goHome(true)")
    wait_until(page, "atlasViewer.level() === 4", 10)


def shown_label_boxes(page):
    return page.evaluate(
        """[...document.querySelectorAll('.map-label:not(.hidden):not(.sample)')].map(e => {
            const r = e.getBoundingClientRect();
            return {x0: r.left, x1: r.right, y0: r.top, y1: r.bottom, text: e.textContent,
                    klass: +e.dataset.class};
        })"""
    )


def test_labels_name_each_region_by_its_top_class_without_overlapping(browser_page, tiny_site):
    page, problems, url = browser_page
    fresh_atlas(page, url)
    wait_until(page, "atlasViewer.labels().length > 0", 10)
    classes = zarr.open_group(tiny_site["store"], mode="r").attrs["atlas"]["class_names"]
    boxes = shown_label_boxes(page)
    assert boxes and all(b["text"] == classes[b["klass"]] for b in boxes)
    # Each label sits on a cell of its region: the cell under its centre has that top class.
    top, count = level_store(tiny_site, 4)["top_class"][:, 0], level_store(tiny_site, 4)["count"][:]
    for b in boxes:
        cell = page.evaluate(
            f"""(() => {{ const v = atlasViewer.viewer, box = v.element.getBoundingClientRect();
                const p = v.viewport.pointFromPixel(new OpenSeadragon.Point(
                    {(b["x0"] + b["x1"]) / 2} - box.left, {(b["y0"] + b["y1"]) / 2} - box.top));
                return (3 - Math.floor(p.y * 4)) * 4 + Math.floor(p.x * 4); }})()"""
        )
        assert count[cell] > 0 and top[cell] == b["klass"]
    for i, a in enumerate(boxes):  # decluttered: no two shown labels overlap
        for b in boxes[i + 1 :]:
            assert (
                a["x1"] <= b["x0"] or b["x1"] <= a["x0"] or a["y1"] <= b["y0"] or b["y1"] <= a["y0"]
            )
    assert "top class of each region" in page.locator("#legend").inner_text()
    page.screenshot(path=str(ARTIFACTS / "viewer-labels.png"))
    # A finer level brings its own regions; the switch hides them all.
    cell, _ = busiest_cell(tiny_site, 8)
    page.evaluate(f"atlasViewer.zoomToCell(8, {cell}, 4)")
    wait_until(page, "atlasViewer.level() === 8", 10)
    wait_until(page, "document.querySelector('.map-label:not(.sample)')?.dataset && true", 10)
    page.click("#show-labels")
    wait_until(page, "atlasViewer.labels().length === 0", 10)
    assert page.locator(".map-label:not(.sample)").count() == 0
    page.click("#show-labels")
    page.evaluate("atlasViewer.viewer.viewport.goHome(true)")
    wait_until(page, "atlasViewer.level() === 4 && atlasViewer.labels().length > 0", 10)
    assert problems == []


def plane_pixel(page, name, size, cell):
    row, col = divmod(cell, size)
    return page.evaluate(
        f"""(() => {{ const c = document.querySelector('canvas.plane.{name}').getContext('2d');
            return [...c.getImageData({col}, {size - 1 - row}, 1, 1).data]; }})()"""
    )


def test_density_layer_shows_how_many_activations_each_cell_averages(browser_page, tiny_site):
    page, problems, url = browser_page
    fresh_atlas(page, url)
    page.click("#show-density")
    page.wait_for_selector("canvas.plane.density[data-size='4']", timeout=10000)
    busiest, count = busiest_cell(tiny_site, 4)
    empty = np.flatnonzero(count == 0)
    quiet = int(np.flatnonzero(count == count[count > 0].min())[0])
    dark, pale = plane_pixel(page, "density", 4, busiest), plane_pixel(page, "density", 4, quiet)
    assert dark[3] > 0 and pale[3] > 0 and sum(dark[:3]) < sum(pale[:3])  # more is darker
    if len(empty):
        assert plane_pixel(page, "density", 4, int(empty[0]))[3] == 0
    assert f"{count.max()}" in page.locator("#legend .density").inner_text()
    # Hovering still reports the cell under the layer.
    point = page.evaluate(f"atlasViewer.cellCenter(4, {busiest})")
    page.mouse.move(point["x"] - 3, point["y"] - 3)
    page.mouse.move(point["x"], point["y"])
    page.locator("#tooltip").wait_for(state="visible", timeout=10000)
    assert page.locator("#tooltip").get_attribute("data-cell") == str(busiest)
    page.screenshot(path=str(ARTIFACTS / "viewer-density.png"))
    page.click("#show-density")
    wait_until(page, "!document.querySelector('canvas.plane.density')", 10)
    assert problems == []


def test_class_heat_layer_colours_the_cells_by_their_share_of_the_class(browser_page, tiny_site):
    page, problems, url = browser_page
    fresh_atlas(page, url)
    classes = zarr.open_group(tiny_site["store"], mode="r").attrs["atlas"]["class_names"]
    level = level_store(tiny_site, 4)
    top, share, count = level["top_class"][:], level["top_class_share"][:], level["count"][:]
    klass = int(top[np.argmax(count), 0])
    page.fill("#class-filter", classes[klass])
    page.dispatch_event("#class-filter", "change")
    page.wait_for_selector(f"canvas.plane.heat[data-class='{klass}']", timeout=10000)
    shares = {
        c: float(share[c][list(top[c]).index(klass)])
        for c in range(16)
        if count[c] > 0 and klass in top[c]
    }
    strongest = max(shares, key=shares.get)
    assert plane_pixel(page, "heat", 4, strongest)[3] > 200
    for cell in range(16):
        alpha = plane_pixel(page, "heat", 4, cell)[3]
        assert (alpha > 0) == (cell in shares)
    assert classes[klass] in page.locator("#legend .heat").inner_text()
    page.screenshot(path=str(ARTIFACTS / "viewer-heat.png"))
    page.click("#show-heat")
    wait_until(page, "!document.querySelector('canvas.plane.heat')", 10)
    page.fill("#class-filter", "")
    page.dispatch_event("#class-filter", "change")
    page.click("#show-heat")
    assert problems == []
