// The atlas viewer: a deep-zoom map of every grid level's icons, one level shown at a
// time, with lazily fetched cell metadata for hovering and clicking, a class filter and
// switchable layers (labels, density, class heat). The shared map and the safe-DOM
// helpers are in common.js.

import { OSD, blockReader, cellAt, cellRect, creditLine, el, hoverTooltip, json, levelMap, pageLinks, safeUrl } from "./common.js";

const MAX_HIGHLIGHTS = 400;

const atlas = await (await fetch("atlas.json")).json();
const levels = atlas.levels; // coarse to fine
let filterClass = null;

document.title = atlas.title;
document.querySelector("#title").textContent = atlas.title;
document.querySelector("#about").textContent =
  `${atlas.model}, layer ${atlas.layer}: ${atlas.samples.toLocaleString()} activations`;
const names = document.querySelector("#class-names");
for (const name of atlas.classes) names.append(new Option(name));
pageLinks(atlas.pages, "atlas");

const map = await levelMap("map", levels);
const viewer = map.viewer;
const levelLabel = document.querySelector("#level");
function showLevel(size) {
  levelLabel.textContent = `level ${size}x${size}`;
  levelLabel.dataset.size = String(size);
}
showLevel(map.level());
map.onLevel((size) => {
  showLevel(size);
  highlight();
  refreshLayers();
});

const cellInfo = blockReader("cells", atlas.block);

function className(index) {
  return atlas.classes[index] ?? `class ${index}`;
}

function classList(entry) {
  return entry.classes.map(([c, share]) => {
    const bar = el("span", { class: "share" });
    bar.style.width = `${Math.round(share * 80)}px`;
    return el("div", {}, bar, `${className(c)} ${(share * 100).toFixed(0)}%`);
  });
}

function icon(entry, attributes = {}) {
  const src = safeUrl(entry.icon);
  return src ? el("img", { src, alt: "icon", ...attributes }) : null;
}

hoverTooltip(map, cellInfo, (entry) =>
  [
    icon(entry),
    el("b", { class: "count" }, `average of ${entry.n} activations`),
    el("div", { class: "classes" }, ...classList(entry)),
  ].filter(Boolean),
);

const panel = document.querySelector("#panel");
document.querySelector("#close").addEventListener("click", () => (panel.hidden = true));
viewer.addHandler("canvas-click", async (event) => {
  if (!event.quick) return;
  const where = cellAt(viewer.viewport.pointFromPixel(event.position), map.level());
  const entry = await cellInfo(where);
  if (!entry) return;
  const labels = entry.labels.map(([c, n]) => `${className(c)} (${n})`).join(", ");
  const exemplars = entry.exemplars.map((e) => {
    const crop = safeUrl(e.crop);
    const picture = crop ? el("img", { src: crop, alt: e.path, title: e.path }) : e.path;
    const report = safeUrl(e.report);
    const shown = report ? el("a", { href: report }, picture) : el("span", {}, picture);
    return e.credit ? el("figure", { class: "credited" }, shown, creditLine(e.credit)) : shown;
  });
  document.querySelector("#panel-body").replaceChildren(
    ...[
      el("h2", {}, `Cell ${where.col}, ${where.row} of ${where.size}x${where.size}`),
      icon(entry, { width: 192, height: 192, class: "pixelated" }),
      el("p", {}, `Average of ${entry.n} activations.`),
      entry.quality === null
        ? null
        : el("p", { class: "note" }, `The icon drives its direction ${entry.quality}x as much as the best exemplar does.`),
      el("h3", {}, "Classes it pushes"),
      ...classList(entry),
      ...(labels ? [el("h3", {}, "Labels of its images"), el("p", {}, labels)] : []),
      el("h3", {}, "Dataset exemplars"),
      el("div", { class: "exemplars" }, ...exemplars),
    ].filter(Boolean),
  );
  panel.hidden = false;
  panel.dataset.cell = String(entry.cell);
});

const outlines = []; // the class filter's cell outlines (overlays)

async function highlight() {
  for (const element of outlines.splice(0)) viewer.removeOverlay(element);
  if (filterClass === null) return;
  const size = map.level();
  const cells = (await classCells(size, filterClass)).slice(0, MAX_HIGHLIGHTS);
  if (size !== map.level()) return;
  for (const [cell] of cells) {
    const element = el("div", { class: "highlight", "data-cell": cell });
    outlines.push(element);
    viewer.addOverlay({ element, location: cellRect(size, cell) });
  }
}
document.querySelector("#class-filter").addEventListener("change", (event) => {
  const index = atlas.classes.indexOf(event.target.value);
  filterClass = index >= 0 ? index : null;
  highlight();
  refreshLayers();
});

// ---- The map's layers: labels, density, class heat; each switchable, with a legend. ----

const classCells = (size, c) => json(`classes/${size}/${c}.json`).then((cells) => cells ?? []);

const switches = {
  labels: document.querySelector("#show-labels"),
  density: document.querySelector("#show-density"),
  heat: document.querySelector("#show-heat"),
};
for (const box of Object.values(switches)) box.addEventListener("change", () => refreshLayers());

// Colour ramps: density from pale to dark blue, heat from transparent to red.
const ramps = {
  density: (t) => [Math.round(235 - 200 * t), Math.round(240 - 150 * t), Math.round(255 - 95 * t), 200],
  heat: (t) => [230, Math.round(60 - 40 * t), Math.round(50 - 30 * t), Math.round(40 + 190 * t)],
};

// A level-sized canvas laid over the map, one pixel per cell, scaled with the view.
const planes = {};
function plane(name, size, value) {
  const old = planes[name];
  if (old) viewer.removeOverlay(old);
  const canvas = el("canvas", { width: size, height: size, class: `plane ${name}`, "data-size": size });
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(size, size);
  for (let cell = 0; cell < size * size; cell++) {
    const t = value(cell);
    if (t === null) continue;
    const row = Math.floor(cell / size), col = cell % size;
    const offset = 4 * ((size - 1 - row) * size + col); // row 0 is the layout's bottom
    pixels.data.set(ramps[name](Math.min(1, Math.max(0, t))), offset);
  }
  context.putImageData(pixels, 0, 0);
  planes[name] = canvas;
  viewer.addOverlay({ element: canvas, location: new OSD.Rect(0, 0, 1, 1) });
  return canvas;
}
function dropPlane(name) {
  if (planes[name]) viewer.removeOverlay(planes[name]);
  delete planes[name];
}

let labelLayer = null; // { size, items: [{element, x, y, weight}] }
function showLabels(size, labels) {
  if (labelLayer) for (const item of labelLayer.items) viewer.removeOverlay(item.element);
  labelLayer = { size, items: [] };
  for (const [c, x, y, weight] of labels) {
    const element = el("div", { class: "map-label", "data-class": c, "data-weight": weight }, className(c));
    labelLayer.items.push({ element, x, y });
    viewer.addOverlay({ element, location: new OSD.Point(x, y), placement: OSD.Placement.CENTER, checkResize: false });
  }
  declutter();
}
function dropLabels() {
  if (labelLayer) for (const item of labelLayer.items) viewer.removeOverlay(item.element);
  labelLayer = null;
}
// Heaviest first, each label shown only where it overlaps none already shown (on screen,
// at the current zoom); recomputed whenever the view settles.
function declutter() {
  if (!labelLayer) return;
  const placed = [];
  const box = viewer.container.getBoundingClientRect();
  for (const item of labelLayer.items) {
    const at = viewer.viewport.pixelFromPoint(new OSD.Point(item.x, item.y), true);
    item.width ??= item.element.offsetWidth || 8 * item.element.textContent.length;
    item.height ??= item.element.offsetHeight || 16;
    const rect = { x0: at.x - item.width / 2 - 4, x1: at.x + item.width / 2 + 4, y0: at.y - item.height / 2, y1: at.y + item.height / 2 };
    const visible = rect.x1 > 0 && rect.x0 < box.width && rect.y1 > 0 && rect.y0 < box.height;
    const free = visible && !placed.some((p) => rect.x0 < p.x1 && p.x0 < rect.x1 && rect.y0 < p.y1 && p.y0 < rect.y1);
    item.element.classList.toggle("hidden", !free);
    if (free) placed.push(rect);
  }
}
viewer.addHandler("animation-finish", declutter);
viewer.addHandler("resize", declutter);

const legend = document.querySelector("#legend");
function ramp(name, low, high, caption) {
  const canvas = el("canvas", { width: 120, height: 10, class: "ramp" });
  const context = canvas.getContext("2d");
  for (let x = 0; x < 120; x++) {
    const [r, g, b, a] = ramps[name](x / 119);
    context.fillStyle = `rgba(${r}, ${g}, ${b}, ${a / 255})`;
    context.fillRect(x, 0, 1, 10);
  }
  return el("div", { class: `entry ${name}` }, el("div", {}, caption), canvas, el("div", { class: "ends" }, el("span", {}, low), el("span", {}, high)));
}

let layerToken = 0;
async function refreshLayers() {
  const token = ++layerToken;
  const size = map.level();
  const entries = [];
  if (switches.labels.checked) {
    const labels = (await json(`labels/${size}.json`)) ?? [];
    if (token !== layerToken) return;
    if (labelLayer?.size !== size) showLabels(size, labels);
    entries.push(el("div", { class: "entry labels" }, el("span", { class: "map-label sample" }, "Class"), " top class of each region"));
  } else dropLabels();
  if (switches.density.checked) {
    const counts = (await json(`density/${size}.json`)) ?? [];
    if (token !== layerToken) return;
    const most = Math.max(1, ...counts);
    const scale = Math.log1p(most);
    if (planes.density?.dataset.size !== String(size)) plane("density", size, (cell) => (counts[cell] > 0 ? Math.log1p(counts[cell]) / scale : null));
    entries.push(ramp("density", "1", most.toLocaleString(), "activations per cell (log scale)"));
  } else dropPlane("density");
  if (switches.heat.checked && filterClass !== null) {
    const klass = filterClass;
    const shares = new Map(await classCells(size, klass));
    if (token !== layerToken) return;
    const most = Math.max(1e-6, ...shares.values());
    plane("heat", size, (cell) => (shares.has(cell) ? shares.get(cell) / most : null)).dataset.class = String(klass);
    entries.push(ramp("heat", "0", `${Math.round(most * 100)}%`, `share of the attribution to ${className(klass)}`));
  } else dropPlane("heat");
  legend.replaceChildren(...entries);
  legend.hidden = entries.length === 0;
}
refreshLayers();

// For tests and scripts: where a cell is on the page, and which level is shown.
window.atlasViewer = {
  viewer,
  level: () => map.level(),
  firstTileAt: () => map.firstTileAt,
  labels: () => (labelLayer ? labelLayer.items.filter((i) => !i.element.classList.contains("hidden")).map((i) => i.element.textContent) : []),
  drawn: () => map.drawn(),
  cellCenter: map.cellCenter,
  zoomToCell: map.zoomToCell,
};
document.body.dataset.ready = "true";
