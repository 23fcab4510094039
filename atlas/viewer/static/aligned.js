// Two atlases of the same images side by side (two checkpoints of a model, or two layers),
// laid out so that each image lands in corresponding places: pan and zoom move both maps,
// and the cell under the pointer is outlined on both, with what each averages.

import { OSD, cellAt, cellRect, el, json, levelMap, pageLinks } from "./common.js";

const page = await (await fetch("aligned.json")).json();
const atlas = await json("atlas.json");
document.title = page.title;
document.querySelector("#title").textContent = page.title;
document.querySelector("#about").textContent =
  `${page.samples.toLocaleString()} images on both maps; layer ${page.left.layer} and ${page.right.layer}`;
const shares = Object.entries(page.within_one_cell)
  .map(([size, share]) => `${size}x${size}: ${(share * 100).toFixed(0)}%`)
  .join(", ");
document.querySelector("#alignment").textContent =
  `Images whose cell on the right lies within one cell of their cell on the left: ${shares}. ` +
  `Of each image's ${page.neighbours_k} nearest neighbours in the right model's activations, ` +
  `the right map keeps ${(page.neighbours_aligned * 100).toFixed(0)}% ` +
  `(the left map, judged by the same neighbours: ${(page.neighbours_run_layout * 100).toFixed(0)}%).`;
pageLinks(atlas?.pages ?? {}, "aligned");

const sides = {};
for (const name of ["left", "right"]) {
  document.querySelector(`#${name}-name`).textContent = page[name].name;
  sides[name] = await levelMap(name, page.levels.map((level) => ({ size: level.size, tiles: level[name] })), { navigator: false });
}
const label = document.querySelector("#level");
const showLevel = (size) => {
  label.textContent = `level ${size}x${size}`;
  label.dataset.size = String(size);
};
showLevel(sides.left.level());
sides.left.onLevel(showLevel);

// Linked pan and zoom: whichever map moves, the other follows to the same bounds.
let following = false;
for (const [name, other] of [["left", "right"], ["right", "left"]]) {
  sides[name].viewer.addHandler("viewport-change", () => {
    if (following) return;
    following = true;
    sides[other].viewer.viewport.fitBounds(sides[name].viewer.viewport.getBounds(true), true);
    following = false;
  });
}

const cellsOf = (name, size) => json(`aligned/${name}/${size}.json`).then((cells) => new Map((cells ?? []).map((c) => [c[0], c])));
const outlines = [];
const tooltip = document.querySelector("#tooltip");
let token = 0;
function describe(name, entry) {
  if (!entry) return el("div", {}, el("b", {}, `${page[name].name}: `), "no activations here");
  const [, n, top, share] = entry;
  const klass = page.classes[top] ?? `class ${top}`;
  return el("div", {}, el("b", {}, `${page[name].name}: `), `${n} activations, pushing ${klass} most (${(share * 100).toFixed(0)}%)`);
}
for (const name of ["left", "right"]) {
  const map = sides[name];
  new OSD.MouseTracker({
    element: map.viewer.canvas,
    moveHandler: async (event) => {
      const mine = ++token;
      const where = cellAt(map.viewer.viewport.pointFromPixel(event.position), map.level());
      for (const [side, element] of outlines.splice(0)) sides[side].viewer.removeOverlay(element);
      if (!where) {
        tooltip.hidden = true;
        return;
      }
      const [left, right] = await Promise.all([cellsOf("left", where.size), cellsOf("right", where.size)]);
      if (mine !== token) return;
      for (const side of ["left", "right"]) {
        const element = el("div", { class: "highlight", "data-cell": where.cell, "data-side": side });
        outlines.push([side, element]);
        sides[side].viewer.addOverlay({ element, location: cellRect(where.size, where.cell) });
      }
      tooltip.replaceChildren(describe("left", left.get(where.cell)), describe("right", right.get(where.cell)));
      tooltip.dataset.cell = String(where.cell);
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

window.alignedViewer = {
  sides,
  bounds: (name) => sides[name].viewer.viewport.getBounds(true),
  level: () => sides.left.level(),
  drawn: () => sides.left.drawn() && sides.right.drawn(),
};
document.body.dataset.ready = "true";
