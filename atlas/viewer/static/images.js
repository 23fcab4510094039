// The image map: the data set's images laid out by their whole-image embeddings, one
// thumbnail per cell (the image nearest the cell's centre), finer levels showing more.
// Hovering names the image; clicking opens its details and its attribution report.

import { blockReader, cellAt, creditLine, el, hoverTooltip, json, levelMap, pageLinks, safeUrl } from "./common.js";

const page = await (await fetch("image-map/map.json")).json();
const atlas = await json("atlas.json");
document.title = page.title;
document.querySelector("#title").textContent = page.title;
document.querySelector("#about").textContent =
  `${page.images.toLocaleString()} images by ${page.model}'s ${page.layer} (mean over positions)`;
pageLinks(atlas?.pages ?? {}, "images");

const map = await levelMap("map", page.levels);
const viewer = map.viewer;
const label = document.querySelector("#level");
const showLevel = (size) => {
  label.textContent = `level ${size}x${size}`;
  label.dataset.size = String(size);
};
showLevel(map.level());
map.onLevel(showLevel);

const cellInfo = blockReader("image-map/cells", page.block);
const className = (index) => (index >= 0 ? page.classes[index] ?? `class ${index}` : "unlabelled");

function facts(entry) {
  return [
    el("div", { class: "name" }, entry.path),
    el("div", {}, `label: ${className(entry.label)}; predicted: ${className(entry.predicted)}`),
    el("div", { class: "note" }, `one of ${entry.n} images in this cell`),
    creditLine(entry.credit),
  ];
}

hoverTooltip(map, cellInfo, facts);

const panel = document.querySelector("#panel");
document.querySelector("#close").addEventListener("click", () => (panel.hidden = true));
viewer.addHandler("canvas-click", async (event) => {
  if (!event.quick) return;
  const where = cellAt(viewer.viewport.pointFromPixel(event.position), map.level());
  const entry = await cellInfo(where);
  if (!entry) return;
  const thumb = safeUrl(entry.thumb);
  const report = safeUrl(entry.report);
  document.querySelector("#panel-body").replaceChildren(
    ...[
      el("h2", {}, `Cell ${where.col}, ${where.row} of ${where.size}x${where.size}`),
      thumb ? el("img", { src: thumb, alt: entry.path, width: 192, height: 192, class: "pixelated" }) : null,
      ...facts(entry),
      report ? el("p", {}, el("a", { href: report, class: "report" }, "attribution report")) : el("p", { class: "note" }, "no report on this image"),
    ].filter(Boolean),
  );
  panel.hidden = false;
  panel.dataset.cell = String(entry.cell);
});

window.imageMap = {
  viewer,
  level: () => map.level(),
  drawn: () => map.drawn(),
  cellCenter: map.cellCenter,
  zoomToCell: map.zoomToCell,
};
document.body.dataset.ready = "true";
