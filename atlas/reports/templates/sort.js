// Sorts the report index by a column when its title is clicked.
for (const th of document.querySelectorAll("th[data-key]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.key, body = document.querySelector("#images tbody");
    const rows = [...body.rows], numeric = key === "confidence" || key === "correct";
    const descending = th.dataset.order !== "desc";
    rows.sort((a, b) => {
      const x = a.dataset[key], y = b.dataset[key];
      const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return descending ? -order : order;
    });
    th.dataset.order = descending ? "desc" : "asc";
    body.append(...rows);
  });
}
