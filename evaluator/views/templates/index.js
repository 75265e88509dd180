(() => {
  "use strict";
  // The per-transcript index of a large report: rows from the JSON beside this script, PAGE at a time,
  // narrowed by a search over id and metadata, sorted by a column header. Each .tindex is independent.
  const data = JSON.parse(document.getElementById("transcript-rows").textContent);
  const TONES = { g: "good", m: "mid", b: "bad", n: "neutral" };
  const STATUS_CLASSES = ["ok", "not_applicable", "unscored", "error"];
  const rows = data.rows.map((r) => ({
    id: r[0], href: r[1], meta: r[2], groups: r[3], counts: r[4], cells: r[5],
    text: [r[0], r[2], ...r[3]].join(" ").toLowerCase(),
  }));
  const element = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  function value(column, row) {
    if (column === "id") return row.id;
    if (column === "meta") return row.meta;
    if (column === "counts") return row.counts[0];
    const i = Number(column.slice(1));
    return column[0] === "g" ? row.groups[i] : row.cells[i][0];
  }

  function comparer(column, descending) {
    const sign = descending ? -1 : 1;
    return (a, b) => {
      const x = value(column, a), y = value(column, b);
      if (x === y) return 0;
      if (x === null || x === "") return 1;  // no value: last, whichever the direction
      if (y === null || y === "") return -1;
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sign * order;
    };
  }

  function cell(column, row) {
    if (column === "id") {
      const th = element("th");
      th.scope = "row";
      const link = element("a", "", row.id);
      link.href = row.href;
      th.append(link);
      return th;
    }
    if (column === "meta") return element("td", "meta", row.meta);
    if (column === "counts") {
      const td = element("td", "counts");
      row.counts.forEach((n, i) => {
        const pill = element("span", "count-pill small st-" + STATUS_CLASSES[i] + (n ? "" : " zero"));
        pill.append(element("b", "", String(n)), " " + data.statuses[i]);
        td.append(pill, " ");
      });
      return td;
    }
    const i = Number(column.slice(1));
    if (column[0] === "g") return element("td", "group-col", row.groups[i]);
    const [mean, tone, note] = row.cells[i];
    const td = element("td");
    td.append(element("span", "tmean tone-" + TONES[tone], mean === null ? "–" : mean.toFixed(2)), element("span", "tn", note));
    return td;
  }

  for (const root of document.querySelectorAll(".tindex")) {
    const headers = Array.from(root.querySelectorAll("thead th"));
    const columns = headers.map((th) => th.dataset.col);
    const body = root.querySelector("tbody"), search = root.querySelector(".tindex-search");
    const info = root.querySelector(".tindex-info");
    const previous = root.querySelector(".tindex-prev"), next = root.querySelector(".tindex-next");
    let shown = rows, page = 0, sorted = null, descending = false;

    function draw() {
      const pages = Math.max(1, Math.ceil(shown.length / data.page));
      page = Math.min(page, pages - 1);
      const first = page * data.page, slice = shown.slice(first, first + data.page);
      body.replaceChildren(...slice.map((row) => {
        const tr = element("tr");
        tr.dataset.transcript = row.id;
        tr.append(...columns.map((column) => cell(column, row)));
        return tr;
      }));
      const range = shown.length ? (first + 1) + "–" + (first + slice.length) : "0";
      const of = shown.length === rows.length ? rows.length : shown.length + " (of " + rows.length + ")";
      info.value = "transcripts " + range + " of " + of + " · page " + (page + 1) + " of " + pages;
      previous.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }

    function refresh() {
      const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      shown = terms.length ? rows.filter((r) => terms.every((t) => r.text.includes(t))) : rows;
      if (sorted !== null) shown = shown.slice().sort(comparer(sorted, descending));
      draw();
    }

    headers.forEach((th) => th.querySelector("button").addEventListener("click", () => {
      descending = sorted === th.dataset.col ? !descending : false;
      sorted = th.dataset.col;
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      refresh();
    }));
    search.addEventListener("input", () => { page = 0; refresh(); });
    previous.addEventListener("click", () => { page -= 1; draw(); });
    next.addEventListener("click", () => { page += 1; draw(); });
    refresh();
  }
})();
