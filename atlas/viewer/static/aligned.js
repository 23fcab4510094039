// Two atlases of the same images side by side (two checkpoints of a model, or two layers),
// laid out so that each image lands in corresponding places: pan and zoom move both maps,
// and the cell under the pointer is outlined on both, with what each averages.

import { cellRect, el, hoverTooltip, json, levelMap, pageLinks } from "./common.js";

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
function outline(where) {
  for (const [side, element] of outlines.splice(0)) sides[side].viewer.removeOverlay(element);
  for (const side of ["left", "right"]) {
    const element = el("div", { class: "highlight", "data-cell": where.cell, "data-side": side });
    outlines.push([side, element]);
    sides[side].viewer.addOverlay({ element, location: cellRect(where.size, where.cell) });
  }
}
function describe(name, entry) {
  if (!entry) return el("div", {}, el("b", {}, `${page[name].name}: `), "no activations here");
  const [, n, top, share] = entry;
  const klass = page.classes[top] ?? `class ${top}`;
  return el("div", {}, el("b", {}, `${page[name].name}: `), `${n} activations, pushing ${klass} most (${(share * 100).toFixed(0)}%)`);
}
// The same cell on both maps: outlined on each, described for each.
async function bothCells(where) {
  if (!where) return null;
  const [left, right] = await Promise.all([cellsOf("left", where.size), cellsOf("right", where.size)]);
  return { cell: where.cell, where, left: left.get(where.cell), right: right.get(where.cell) };
}
for (const name of ["left", "right"]) {
  hoverTooltip(sides[name], bothCells, (entry) => {
    outline(entry.where);
    return [describe("left", entry.left), describe("right", entry.right)];
  });
}

window.alignedViewer = {
  sides,
  bounds: (name) => sides[name].viewer.viewport.getBounds(true),
  level: () => sides.left.level(),
  drawn: () => sides.left.drawn() && sides.right.drawn(),
};
document.body.dataset.ready = "true";
