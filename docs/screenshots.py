"""Make the README's pictures from a built demo site (`make demo` first).

    .venv/bin/python docs/screenshots.py outputs/demo/site outputs/demo/grid.zarr \
        outputs/demo/attribute

Writes docs/level20.png (the atlas at level 20 with its labels), docs/viewer.png (a cell
hovered and its exemplars open), docs/report.png (the attribution report of a swapped
desert leopard), docs/aligned.png (the aligned atlases side by side) and
docs/image-map.png (the image map), scaled down and reduced to a small palette so they
stay light in the repository. With `--blocks outputs/photos/attribute/polar_bear.html`
(a report of the real network's run), also docs/real-blocks.png: its Building Blocks
section.
"""

import sys
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from atlas.store.reports import read_report_index
from atlas.viewer.server import serve_in_background

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' browser helper
from browser import launch, wait_until  # noqa: E402


def shrink(path: Path, scale: float = 0.75, colours: int = 128) -> None:
    image = Image.open(path).convert("RGB")
    size = (round(image.width * scale), round(image.height * scale))
    image = image.resize(size, Image.Resampling.LANCZOS)
    image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def busiest_cell(grid: Path, size: int) -> int:
    counts = zarr.open_group(grid, mode="r")[str(size)]["count"][:]
    return int(np.argmax(counts))


def swapped_report(reports: Path) -> str:
    """The first report page of a desert leopard shown on snow (test-swapped)."""
    pages = [
        f"{entry['stem']}.html"
        for entry in read_report_index(reports)
        if entry["image"].startswith("test-swapped/desert_leopard/")
    ]
    if not pages:
        raise SystemExit(f"no swapped desert leopard among the reports in {reports}")
    return "attribute/" + pages[0]


def main(site: str, grid: str, reports: str) -> None:
    from playwright.sync_api import sync_playwright

    site_dir = Path(site)
    server, url = serve_in_background(site_dir)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]", timeout=60000)
        wait_until(page, "atlasViewer.drawn()", 60)
        # Zoom in until level 20 shows, with its labels.
        while page.evaluate("atlasViewer.level()") < 20:
            page.evaluate("atlasViewer.viewer.viewport.zoomBy(1.25)")
            page.wait_for_timeout(300)
        wait_until(page, "atlasViewer.drawn() && atlasViewer.labels().length > 0", 60)
        page.wait_for_timeout(500)
        page.screenshot(path=str(HERE / "level20.png"))
        level = page.evaluate("atlasViewer.level()")
        cell = busiest_cell(Path(grid), level)
        page.evaluate(
            f"""(() => {{ const row = Math.floor({cell} / {level}), col = {cell} % {level};
                atlasViewer.viewer.viewport.panTo(new OpenSeadragon.Point(
                    (col + 0.5) / {level}, ({level} - row - 0.5) / {level}), true); }})()"""
        )
        wait_until(page, "atlasViewer.drawn()", 60)
        point = page.evaluate(f"atlasViewer.cellCenter({level}, {cell})")
        page.mouse.click(point["x"], point["y"])
        page.locator("#panel").wait_for(state="visible", timeout=10000)
        page.wait_for_timeout(1000)  # the map narrows beside the panel: find the cell again
        point = page.evaluate(f"atlasViewer.cellCenter({level}, {cell})")
        page.mouse.move(point["x"] - 3, point["y"] - 3)
        page.mouse.move(point["x"], point["y"])
        page.locator("#tooltip").wait_for(state="visible", timeout=10000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(HERE / "viewer.png"))

        page.goto(url + swapped_report(Path(reports)))
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(HERE / "report.png"))

        # The aligned atlases, zoomed in on the same place, and the image map.
        page.goto(url + "aligned.html")
        page.wait_for_selector("body[data-ready=true]", timeout=60000)
        page.evaluate(
            "alignedViewer.sides.left.viewer.viewport.fitBounds("
            "new OpenSeadragon.Rect(0.2, 0.2, 0.6, 0.6), true)"
        )
        wait_until(page, "alignedViewer.drawn()", 60)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(HERE / "aligned.png"))
        page.goto(url + "images.html")
        page.wait_for_selector("body[data-ready=true]", timeout=60000)
        wait_until(page, "imageMap.drawn()", 60)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(HERE / "image-map.png"))
        browser.close()
    server.shutdown()
    for name in ("viewer.png", "level20.png", "report.png", "aligned.png", "image-map.png"):
        shrink(HERE / name)
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size // 1024} KiB)")


def blocks_picture(report_page: str) -> None:
    """docs/real-blocks.png: the Building Blocks section of one report page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        page.goto(Path(report_page).resolve().as_uri())
        page.wait_for_load_state("networkidle")
        page.locator("#blocks").scroll_into_view_if_needed()
        top = page.evaluate("document.getElementById('blocks').getBoundingClientRect().top")
        scroll = page.evaluate("window.scrollY")
        page.screenshot(
            path=str(HERE / "real-blocks.png"),
            full_page=True,
            clip={"x": 0, "y": top + scroll, "width": 1000, "height": 1150},
        )
        browser.close()
    shrink(HERE / "real-blocks.png", scale=0.8)
    print(f"wrote {HERE / 'real-blocks.png'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--blocks"]:
        blocks_picture(sys.argv[2])
    else:
        main(
            *(
                sys.argv[1:]
                or ["outputs/demo/site", "outputs/demo/grid.zarr", "outputs/demo/attribute"]
            )
        )
