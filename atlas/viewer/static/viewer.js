// The atlas viewer: a deep-zoom map of every grid level's icons, one level shown at a
// time (the finest whose cells are still big enough on screen), with lazily fetched cell
// metadata for hovering and clicking, and a class filter. OpenSeadragon draws the tiles.
//
// Everything that comes from data (class names, image paths, titles) reaches the page as
// text: elements are built with el() and filled with text nodes, never with innerHTML,
// and links and images only ever point inside the site (safeUrl).

const MIN_CELL_PX = 48; // switch to a finer level once its cells are this big on screen
const MAX_HIGHLIGHTS = 400;

const OSD = window.OpenSeadragon;

// An element with attributes and children (strings become text nodes).
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

// A URL of the site's own files (as given), or null: nothing with a scheme of its own
// (javascript:, data:) or another origin.
function safeUrl(url) {
  if (typeof url !== "string" || url === "") return null;
  const resolved = new URL(url, document.baseURI);
  return resolved.origin === window.location.origin ? url : null;
}

const atlas = await (await fetch("atlas.json")).json();
const levels = atlas.levels; // coarse to fine
const blocks = new Map(); // "size/bx_by" -> Promise of that block's cells keyed by cell id
let shown = levels[0].size;
let filterClass = null;

document.title = atlas.title;
document.querySelector("#title").textContent = atlas.title;
document.querySelector("#about").textContent =
  `${atlas.model}, layer ${atlas.layer}: ${atlas.samples.toLocaleString()} activations`;
const names = document.querySelector("#class-names");
for (const name of atlas.classes) names.append(new Option(name));
const pageNames = { classes: "class atlases", reports: "attribution reports", model: "model report" };
for (const [key, href] of Object.entries(atlas.pages)) {
  const url = safeUrl(href);
  if (url) document.querySelector("#pages").append(el("a", { href: url }, pageNames[key] ?? key));
}

// OpenSeadragon injects a <style> element (outline rules for touch screens) unless one
// marked as its own is already there; the site's Content-Security-Policy forbids inline
// styles, so an empty marker stands in and style.css carries the rule.
document.head.append(el("style", { "data-openseadragon-mobile-css": "true" }));
const viewer = OSD({
  id: "map",
  prefixUrl: "vendor/openseadragon/images/",
  showNavigator: true,
  navigatorPosition: "BOTTOM_RIGHT",
  visibilityRatio: 0.5,
  minZoomImageRatio: 0.5,
  maxZoomPixelRatio: 4,
  gestureSettingsMouse: { clickToZoom: false },
  immediateRender: true, // draw the needed resolution at once, not coarse-to-fine
  drawer: "canvas", // 2-D tiles need no WebGL (which software rendering makes slow)
  imageSmoothingEnabled: false, // icons zoomed past 1:1 stay crisp pixels
});
let firstTileAt = null; // ms after navigation: the viewer benchmark reads it
viewer.addOnceHandler("tile-drawn", () => (firstTileAt = performance.now()));
const opened = levels.map(
  (level, index) =>
    new Promise((resolve, reject) =>
      viewer.addTiledImage({
        tileSource: level.tiles ?? level.dzi,
        x: 0,
        y: 0,
        width: 1,
        index,
        opacity: index === 0 ? 1 : 0,
        success: (event) => resolve(event.item),
        error: (event) => reject(new Error(event.message)),
      }),
    ),
);
const images = await Promise.all(opened);

function cellPixels(size) {
  return viewer.viewport.deltaPixelsFromPointsNoRotate(new OSD.Point(1 / size, 0), true).x;
}

function chooseLevel() {
  let choice = levels[0].size;
  for (const level of levels) if (cellPixels(level.size) >= MIN_CELL_PX) choice = level.size;
  if (choice === shown) return;
  shown = choice;
  levels.forEach((level, i) => images[i].setOpacity(level.size === shown ? 1 : 0));
  const label = document.querySelector("#level");
  label.textContent = `level ${shown}x${shown}`;
  label.dataset.size = String(shown);
  highlight();
  refreshLayers();
}
document.querySelector("#level").textContent = `level ${shown}x${shown}`;
document.querySelector("#level").dataset.size = String(shown);
viewer.addHandler("animation", chooseLevel);
viewer.addHandler("animation-finish", chooseLevel);

function cellAt(point, size) {
  if (point.x < 0 || point.y < 0 || point.x >= 1 || point.y >= 1) return null;
  const col = Math.floor(point.x * size);
  const row = size - 1 - Math.floor(point.y * size); // row 0 is the layout's bottom
  return { size, col, row, cell: row * size + col };
}

// Every JSON file the page reads, fetched once: url -> Promise of parsed JSON (null if absent).
const cache = new Map();
function json(url) {
  if (!cache.has(url)) cache.set(url, fetch(url).then((r) => (r.ok ? r.json() : null)));
  return cache.get(url);
}

function block(size, col, row) {
  const key = `${size}/${Math.floor(col / atlas.block)}_${Math.floor(row / atlas.block)}`;
  if (!blocks.has(key)) {
    blocks.set(key, json(`cells/${key}.json`).then((entries) => new Map((entries ?? []).map((entry) => [entry.cell, entry]))));
  }
  return blocks.get(key);
}

async function cellInfo(where) {
  if (!where) return null;
  return (await block(where.size, where.col, where.row)).get(where.cell) ?? null;
}

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

const tooltip = document.querySelector("#tooltip");
let hoverToken = 0;
new OSD.MouseTracker({
  element: viewer.canvas,
  moveHandler: async (event) => {
    const token = ++hoverToken;
    const where = cellAt(viewer.viewport.pointFromPixel(event.position), shown);
    const entry = await cellInfo(where);
    if (token !== hoverToken) return;
    if (!entry) {
      tooltip.hidden = true;
      return;
    }
    tooltip.replaceChildren(
      ...[
        icon(entry),
        el("b", { class: "count" }, `average of ${entry.n} activations`),
        el("div", { class: "classes" }, ...classList(entry)),
      ].filter(Boolean),
    );
    tooltip.dataset.cell = String(entry.cell);
    tooltip.style.left = `${event.originalEvent.clientX + 16}px`;
    tooltip.style.top = `${event.originalEvent.clientY + 16}px`;
    tooltip.hidden = false;
  },
  leaveHandler: () => {
    hoverToken++;
    tooltip.hidden = true;
  },
});

const panel = document.querySelector("#panel");
document.querySelector("#close").addEventListener("click", () => (panel.hidden = true));
viewer.addHandler("canvas-click", async (event) => {
  if (!event.quick) return;
  const where = cellAt(viewer.viewport.pointFromPixel(event.position), shown);
  const entry = await cellInfo(where);
  if (!entry) return;
  const labels = entry.labels.map(([c, n]) => `${className(c)} (${n})`).join(", ");
  const exemplars = entry.exemplars.map((e) => {
    const crop = safeUrl(e.crop);
    const picture = crop ? el("img", { src: crop, alt: e.path, title: e.path }) : e.path;
    const report = safeUrl(e.report);
    return report ? el("a", { href: report }, picture) : el("span", {}, picture);
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
  const size = shown;
  const cells = (await classCells(size, filterClass)).slice(0, MAX_HIGHLIGHTS);
  if (size !== shown) return;
  for (const [cell] of cells) {
    const row = Math.floor(cell / size), col = cell % size;
    const element = el("div", { class: "highlight", "data-cell": cell });
    outlines.push(element);
    viewer.addOverlay({ element, location: new OSD.Rect(col / size, (size - 1 - row) / size, 1 / size, 1 / size) });
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
  const size = shown;
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
  level: () => shown,
  firstTileAt: () => firstTileAt,
  labels: () => (labelLayer ? labelLayer.items.filter((i) => !i.element.classList.contains("hidden")).map((i) => i.element.textContent) : []),
  drawn: () => images[levels.findIndex((level) => level.size === shown)].getFullyLoaded(),
  cellCenter(size, cell) {
    const row = Math.floor(cell / size), col = cell % size;
    const point = new OSD.Point((col + 0.5) / size, (size - 1 - row + 0.5) / size);
    const pixel = viewer.viewport.pixelFromPoint(point, true);
    const box = viewer.element.getBoundingClientRect();
    return { x: box.left + pixel.x, y: box.top + pixel.y };
  },
  zoomToCell(size, cell, cells = 3) {
    const row = Math.floor(cell / size), col = cell % size;
    const side = cells / size;
    const x = (col + 0.5) / size - side / 2, y = (size - 1 - row + 0.5) / size - side / 2;
    viewer.viewport.fitBounds(new OSD.Rect(x, y, side, side), true);
  },
};
document.body.dataset.ready = "true";
