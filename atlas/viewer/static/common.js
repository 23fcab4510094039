// What every map page of the site shares: building elements from data safely, fetching
// JSON once, and a deep-zoom map of grid levels that shows one level at a time (the
// finest whose cells are still big enough on screen). OpenSeadragon draws the tiles.
//
// Everything that comes from data (class names, image paths, titles) reaches the page as
// text: elements are built with el() and filled with text nodes, never with innerHTML,
// and links and images only ever point inside the site (safeUrl).

const MIN_CELL_PX = 48; // switch to a finer level once its cells are this big on screen

export const OSD = window.OpenSeadragon;

// An element with attributes and children (strings become text nodes).
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

// A URL of the site's own files (as given), or null: nothing with a scheme of its own
// (javascript:, data:) or another origin.
export function safeUrl(url) {
  if (typeof url !== "string" || url === "") return null;
  const resolved = new URL(url, document.baseURI);
  return resolved.origin === window.location.origin ? url : null;
}

// Every JSON file the page reads, fetched once: url -> Promise of parsed JSON (null if absent).
const cache = new Map();
export function json(url) {
  if (!cache.has(url)) cache.set(url, fetch(url).then((r) => (r.ok ? r.json() : null)));
  return cache.get(url);
}

// The cells of one block of a level, fetched once: `${prefix}/${size}/${bx}_${by}.json`
// holds a list of entries with a `cell` id; resolves to a Map cell -> entry.
export function blockReader(prefix, blockSide) {
  const blocks = new Map();
  return (where) => {
    if (!where) return Promise.resolve(null);
    const key = `${where.size}/${Math.floor(where.col / blockSide)}_${Math.floor(where.row / blockSide)}`;
    if (!blocks.has(key)) {
      blocks.set(key, json(`${prefix}/${key}.json`).then((entries) => new Map((entries ?? []).map((entry) => [entry.cell, entry]))));
    }
    return blocks.get(key).then((cells) => cells.get(where.cell) ?? null);
  };
}

// The cell under a point of the map (x to the right, y down, the level spanning [0, 1]).
export function cellAt(point, size) {
  if (point.x < 0 || point.y < 0 || point.x >= 1 || point.y >= 1) return null;
  const col = Math.floor(point.x * size);
  const row = size - 1 - Math.floor(point.y * size); // row 0 is the layout's bottom
  return { size, col, row, cell: row * size + col };
}

// The rectangle of a cell on the map.
export function cellRect(size, cell) {
  const row = Math.floor(cell / size), col = cell % size;
  return new OSD.Rect(col / size, (size - 1 - row) / size, 1 / size, 1 / size);
}

// OpenSeadragon injects a <style> element (outline rules for touch screens) unless one
// marked as its own is already there; the site's Content-Security-Policy forbids inline
// styles, so an empty marker stands in and style.css carries the rule.
document.head.append(el("style", { "data-openseadragon-mobile-css": "true" }));

// A map in the element `id` of the levels [{size, tiles|dzi}] (coarse to fine). Resolves
// once every level's tiles are open to { viewer, images, level(), onLevel(callback) }.
export async function levelMap(id, levels, { navigator = true } = {}) {
  const viewer = OSD({
    id,
    prefixUrl: "vendor/openseadragon/images/",
    showNavigator: navigator,
    navigatorPosition: "BOTTOM_RIGHT",
    visibilityRatio: 0.5,
    minZoomImageRatio: 0.5,
    maxZoomPixelRatio: 4,
    gestureSettingsMouse: { clickToZoom: false },
    immediateRender: true, // draw the needed resolution at once, not coarse-to-fine
    drawer: "canvas", // 2-D tiles need no WebGL (which software rendering makes slow)
    imageSmoothingEnabled: false, // icons zoomed past 1:1 stay crisp pixels
  });
  const map = { viewer, shown: levels[0].size, listeners: [], firstTileAt: null };
  viewer.addOnceHandler("tile-drawn", () => (map.firstTileAt = performance.now()));
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
  map.images = await Promise.all(opened);
  const cellPixels = (size) => viewer.viewport.deltaPixelsFromPointsNoRotate(new OSD.Point(1 / size, 0), true).x;
  const choose = () => {
    let choice = levels[0].size;
    for (const level of levels) if (cellPixels(level.size) >= MIN_CELL_PX) choice = level.size;
    if (choice === map.shown) return;
    map.shown = choice;
    levels.forEach((level, i) => map.images[i].setOpacity(level.size === choice ? 1 : 0));
    for (const listener of map.listeners) listener(choice);
  };
  viewer.addHandler("animation", choose);
  viewer.addHandler("animation-finish", choose);
  map.level = () => map.shown;
  map.onLevel = (callback) => map.listeners.push(callback);
  map.drawn = () => map.images[levels.findIndex((level) => level.size === map.shown)].getFullyLoaded();
  map.cellCenter = (size, cell) => {
    const row = Math.floor(cell / size), col = cell % size;
    const pixel = viewer.viewport.pixelFromPoint(new OSD.Point((col + 0.5) / size, (size - 1 - row + 0.5) / size), true);
    const box = viewer.element.getBoundingClientRect();
    return { x: box.left + pixel.x, y: box.top + pixel.y };
  };
  map.zoomToCell = (size, cell, cells = 3) => {
    const row = Math.floor(cell / size), col = cell % size;
    const side = cells / size;
    const x = (col + 0.5) / size - side / 2, y = (size - 1 - row + 0.5) / size - side / 2;
    viewer.viewport.fitBounds(new OSD.Rect(x, y, side, side), true);
  };
  return map;
}

// A tooltip (#tooltip) that follows the pointer over a map: `lookup(where)` resolves to
// the entry of the cell under it (or null), `render(entry)` gives the tooltip's children.
export function hoverTooltip(map, lookup, render) {
  const tooltip = document.querySelector("#tooltip");
  let token = 0; // only the latest move's answer is shown
  new OSD.MouseTracker({
    element: map.viewer.canvas,
    moveHandler: async (event) => {
      const mine = ++token;
      const entry = await lookup(cellAt(map.viewer.viewport.pointFromPixel(event.position), map.level()));
      if (mine !== token) return;
      if (!entry) {
        tooltip.hidden = true;
        return;
      }
      tooltip.replaceChildren(...render(entry));
      tooltip.dataset.cell = String(entry.cell);
      tooltip.style.left = `${event.originalEvent.clientX + 16}px`;
      tooltip.style.top = `${event.originalEvent.clientY + 16}px`;
      tooltip.hidden = false;
    },
    leaveHandler: () => {
      token++;
      tooltip.hidden = true;
    },
  });
}

// A credit's source as a link target: a web address (http or https) only.
export function webUrl(url) {
  if (typeof url !== "string") return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// The credit an image is shown with (credits.csv beside the images): author, licence and
// source as text, the source a link where it is a web address; null without a credit.
export function creditLine(credit) {
  if (!credit) return null;
  const source = webUrl(credit.source);
  return el(
    "div",
    { class: "credit" },
    [credit.author, credit.license].filter(Boolean).join(", "),
    source ? ", " : "",
    source ? el("a", { href: source, rel: "noopener noreferrer" }, "source") : null,
  );
}

// Links to the site's other pages, in the header's #pages.
const PAGE_NAMES = {
  atlas: "atlas",
  classes: "class atlases",
  aligned: "aligned atlases",
  images: "image map",
  channels: "channels",
  reports: "attribution reports",
  model: "model report",
  credits: "credits",
};
export function pageLinks(pages, current) {
  const nav = document.querySelector("#pages");
  if (current !== "atlas") nav.append(el("a", { href: "index.html" }, PAGE_NAMES.atlas));
  for (const [key, href] of Object.entries(pages)) {
    const url = safeUrl(href);
    if (url && key !== current) nav.append(el("a", { href: url }, PAGE_NAMES[key] ?? key));
  }
}
