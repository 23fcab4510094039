"""A data set whose class folders and file names are made to run script, in every stage,
the site and Chromium: nothing may run, every name must show literally, and no built page
may name a path of the machine that built it."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from browser import needs_chromium, open_page, serving, wait_until
from PIL import Image
from sites import SiteRecipe, build_test_site

pytestmark = needs_chromium

# Each sets window.__pwned (or opens a dialog) if it ever runs as markup or as a URL.
CLASSES = [
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    '"><svg onload=window.__pwned=2>',
    "javascript:window.__pwned=3",
    "Ünïcødé 🐱 & friends",
    'it\'s "quoted" & <b>bold<b>',
]
FILES = [
    '"><svg onload=window.__pwned=4>.png',
    "a b & c.png",
    "javascript:window.__pwned=5.png",
    "😀 <i>emoji<i>.png",
    "plain.png",
    "plain two.png",
]
TITLE = "<script>window.__pwned=6</script> atlas & co"
# Credits (credits.csv beside the images) made to run too; every image has one, its
# source a web address for the first file, a script URL for the others.
AUTHOR = '<img src=x onerror="window.__pwned=8"> & Ann'
LICENCE = "CC-BY-SA 4.0 <b>"
SOURCES = ["https://example.org/a?b=1&c=<2>", "javascript:window.__pwned=9"]


def credit_source(name: str) -> str:
    return SOURCES[0] if name == FILES[0] else SOURCES[1]


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    from atlas.config import (
        AttributeConfig,
        ChannelsConfig,
        ClassesConfig,
        ExtractConfig,
        ModelSpec,
        ReduceConfig,
        ReportConfig,
    )
    from atlas.models import load_model
    from atlas.stages.extract import extract_store

    root = tmp_path_factory.mktemp("hostile & <root>")
    images = root / "images <here>"
    rng = np.random.default_rng(0)
    for k, klass in enumerate(sorted(CLASSES)):
        (images / klass).mkdir(parents=True)
        for name in FILES:
            pixels = rng.integers(0, 60, (32, 32, 3)) + np.array([40 * k, 200 - 30 * k, 90])
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(images / klass / name)
    from atlas.credits import Credit, write_credits

    write_credits(
        images / "credits.csv",
        [
            (f"{klass}/{name}", Credit(AUTHOR, LICENCE, credit_source(name)))
            for klass in CLASSES
            for name in FILES
        ],
    )
    spec = ModelSpec(
        arch="atlas.demo.net:DemoCNN",
        num_classes=len(CLASSES),
        input_size=32,
        class_names=sorted(CLASSES),
    )
    store = str(root / "acts.zarr")
    extract_store(str(images), store, spec, ExtractConfig(layer="block3"), scheduler="inline")
    # The reports load the model from a checkpoint given by its absolute path.
    weights = load_model(spec).save(root / "weights & <w>.pt")
    recipe = SiteRecipe(
        spec=ModelSpec(weights=str(weights.resolve())),
        levels=[2, 4],
        reduce=ReduceConfig(n_neighbors=5),
        compare_run=store,
        images=str(images),
        channels=ChannelsConfig(),
        classes=ClassesConfig(
            pairs=[sorted(CLASSES)[:2]], size=2, min_count=1, mode="topn", top_n=5
        ),
        attribute=AttributeConfig(
            methods=["saliency", "gradcam"],
            deletion_steps=2,
            layers=["block2"],
            exemplars_per_cell=1,
        ),
        report=ReportConfig(steps=1, icon_size=16),
        measures={
            "title": TITLE,
            "note": '<img src=x onerror="window.__pwned=7">',
            "atlases": {f"class/{CLASSES[0]}": {CLASSES[1]: 0.5}},
            "tables": [{"title": CLASSES[2], "header": [CLASSES[3]], "rows": [[CLASSES[4]]]}],
        },
        title=TITLE,
        aligned_folder="aligned <a>",
        image_map_folder="image map <m>",
    )
    return build_test_site(root, store, recipe)["site"], root


def test_no_built_page_names_a_path_of_the_build_machine(hostile_site):
    site, root = hostile_site
    machine = {str(root), str(root.resolve()), os.getcwd(), str(Path.home())}
    checked = 0
    for path in site.rglob("*"):
        if path.suffix in (".html", ".json", ".js", ".css", ".dzi", ".xml", ".yaml"):
            text = path.read_text()
            for prefix in machine:
                assert prefix not in text, (path.relative_to(site), prefix)
            checked += 1
    assert checked > 20


def test_cell_data_names_images_by_their_path_under_the_source(hostile_site):
    site, _ = hostile_site
    names = [
        exemplar["path"]
        for block in (site / "cells").rglob("*.json")
        for cell in json.loads(block.read_text())
        for exemplar in cell["exemplars"]
    ]
    expected = {f"{klass}/{name}" for klass in CLASSES for name in FILES}
    assert names and set(names) <= expected


def every_cell(page, viewer: str, cells: Path, sizes: list[int]):
    """Hover and then open every cell of ``sizes`` on the map whose script object is
    ``viewer``; yields each cell's data (from the blocks under ``cells``) and its tooltip's
    text while its panel is open, and closes the panel after."""
    width = page.evaluate("document.querySelector('#map').clientWidth")
    for size in sizes:
        for block in (cells / str(size)).glob("*.json"):
            for cell in json.loads(block.read_text()):
                page.evaluate(f"{viewer}.zoomToCell({size}, {cell['cell']}, 6)")
                wait_until(page, f"{viewer}.level() === {size}")
                at = page.evaluate(f"{viewer}.cellCenter({size}, {cell['cell']})")
                page.mouse.move(at["x"], at["y"])
                page.wait_for_selector(
                    f"#tooltip[data-cell='{cell['cell']}']:not([hidden])", timeout=5000
                )
                tooltip = page.inner_text("#tooltip")
                page.mouse.click(at["x"], at["y"])
                page.wait_for_selector(f"#panel[data-cell='{cell['cell']}']", timeout=5000)
                yield cell, tooltip
                page.click("#close")  # the panel narrows the map: wait until it is back
                wait_until(page, f"{viewer}.viewer.viewport.getContainerSize().x === {width}")


def test_nothing_runs_and_every_name_shows_literally(hostile_site):
    site, _ = hostile_site
    with serving(site) as (browser, url):
        # Narrow enough that the coarsest level shows when zoomed out.
        page, problems = open_page(browser, url, (360, 640))

        def pwned():
            return page.evaluate("typeof window.__pwned !== 'undefined'")

        assert page.title() == TITLE and page.inner_text("#title") == TITLE
        options = page.eval_on_selector_all(
            "#class-names option", "(els) => els.map((e) => e.value)"
        )
        assert sorted(options) == sorted(CLASSES)
        sizes = [level["size"] for level in json.loads((site / "atlas.json").read_text())["levels"]]
        shown_classes = set()
        for cell, tooltip in every_cell(page, "atlasViewer", site / "cells", sizes):
            for c, _ in cell["classes"]:
                assert CLASSES_SORTED[c] in tooltip
                shown_classes.add(CLASSES_SORTED[c])
            titles = page.locator("#panel .exemplars img").evaluate_all(
                "(els) => els.map((e) => e.title)"
            )
            credits = page.locator("#panel .exemplars .credit")
            assert credits.count() == len(cell["exemplars"])
            for i, exemplar in enumerate(cell["exemplars"]):
                assert exemplar["path"] in titles
                assert credits.nth(i).inner_text().startswith(f"{AUTHOR}, {LICENCE}")
                links = credits.nth(i).locator("a")
                web = credit_source(exemplar["path"].split("/", 1)[1]) == SOURCES[0]
                assert links.count() == int(web)  # a script URL is never a link
                if web:
                    # The address as the browser writes it (< and > percent-encoded).
                    assert links.first.get_attribute("href") == SOURCES[0].replace(
                        "<", "%3C"
                    ).replace(">", "%3E")
            assert not pwned()
        assert shown_classes and not pwned(), "the hover showed class names"
        for name in CLASSES:
            page.fill("#class-filter", name)
            page.dispatch_event("#class-filter", "change")
        # The image map: every thumbnail hovered and opened; the aligned atlases.
        page.goto(url + "images.html")
        page.wait_for_selector("body[data-ready=true]", timeout=30000)
        shown_names = set()
        for cell, tooltip in every_cell(page, "imageMap", site / "image-map" / "cells", [2, 4]):
            assert cell["path"] in tooltip and cell["path"] in page.inner_text("#panel")
            assert f"{AUTHOR}, {LICENCE}" in page.inner_text("#panel .credit")
            shown_names.add(cell["path"])
            assert not pwned()
        assert shown_names and not pwned()
        page.goto(url + "aligned.html")
        page.wait_for_selector("body[data-ready=true]", timeout=30000)
        assert not pwned()
        pages = ["classes.html", "model/model.html", "attribute/index.html", "credits.html"]
        pages += [f"channels/{p.name}" for p in (site / "channels").glob("*.html")]
        pages += [f"attribute/{p.name}" for p in (site / "attribute").glob("*.html")]
        pages += [f"reports/{p.name}" for p in (site / "reports").glob("*.html")]
        for path in pages:
            page.goto(url + path)
            assert not pwned(), path
        page.goto(url + "classes.html")
        text = page.inner_text("body")
        for name in CLASSES:
            assert name in text, name
        assert '<img src=x onerror="window.__pwned=7">' in text  # the note, as text
        page.goto(url + "attribute/index.html")
        text = page.inner_text("body")
        for name in FILES:
            assert name in text, name
        page.goto(url + "model/model.html")
        text = page.inner_text("body")
        for name in CLASSES:
            assert name in text, name
        page.goto(url + "credits.html")
        rows = page.locator("#credits tbody tr")
        assert rows.count() == len(CLASSES) * len(FILES)
        assert page.locator("#credits a").count() == len(CLASSES)  # web sources only
        text = page.inner_text("#credits")
        assert AUTHOR in text and LICENCE in text and SOURCES[1] in text
        page.goto(url + f"channels/{next((site / 'channels').glob('block*.html')).name}")
        assert AUTHOR in page.inner_text("body")
        assert not pwned()
    assert problems == []  # no dialog opened, no error


CLASSES_SORTED = sorted(CLASSES)
