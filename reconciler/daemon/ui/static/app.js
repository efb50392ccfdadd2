// reconciler dashboard: refreshes the page's fields and tables from its JSON endpoint.
// Served as a file (the Content-Security-Policy forbids inline script); writes text
// only (textContent, never innerHTML), so nothing from the repository becomes markup.
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

function barSvg(cell) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "bar");
  svg.setAttribute("width", "120");
  svg.setAttribute("height", "10");
  svg.setAttribute("viewBox", "0 0 120 10");
  for (const [cls, width] of [["track", 120], ["fill", cell.w || 0]]) {
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", cls);
    rect.setAttribute("width", String(width));
    rect.setAttribute("height", "10");
    svg.appendChild(rect);
  }
  return svg;
}

function makeCell(cell) {
  const td = document.createElement("td");
  if (typeof cell === "string") {
    td.textContent = cell;
    return td;
  }
  if (cell.cls) td.className = cell.cls;
  if (cell.bar) {
    td.appendChild(barSvg(cell));
    td.appendChild(document.createTextNode(" "));
  }
  const span = document.createElement("span");
  span.textContent = cell.text;
  td.appendChild(span);
  return td;
}

function fillTable(tbody, rows) {
  const fresh = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (row.cls) tr.className = row.cls;
    for (const [key, value] of Object.entries(row.data || {})) tr.dataset[key] = value;
    for (const cell of row.cells) tr.appendChild(makeCell(cell));
    fresh.appendChild(tr);
  }
  tbody.replaceChildren(fresh);
}

let planId = null;

function apply(data) {
  for (const [name, value] of Object.entries(data.fields || {})) {
    for (const el of document.querySelectorAll(`[data-field="${name}"]`)) {
      if (el.textContent !== value) el.textContent = value;
    }
  }
  for (const [name, rows] of Object.entries(data.tables || {})) {
    const tbody = document.querySelector(`tbody[data-table="${name}"]`);
    if (tbody) fillTable(tbody, rows);
  }
  if (data.fields && "planId" in data.fields) {
    if (planId !== null && data.fields.planId !== planId) window.location.reload();
    planId = data.fields.planId;
  }
  const stamp = document.querySelector('[data-field="refreshed"]');
  if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
}

async function refresh() {
  const api = document.body.dataset.api;
  if (!api) return;
  try {
    const response = await fetch(api + window.location.search,
                                 {credentials: "same-origin", cache: "no-store"});
    if (response.ok) apply(await response.json());
  } catch (err) {
    const stamp = document.querySelector('[data-field="refreshed"]');
    if (stamp) stamp.textContent = "daemon unreachable";
  }
}

function wireFilters() {
  const form = document.getElementById("filters");
  if (!form) return;
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => {
      const params = new URLSearchParams(new FormData(form));
      for (const [key, value] of [...params.entries()]) if (!value) params.delete(key);
      const query = params.toString();
      window.history.replaceState(null, "", "/reservations" + (query ? "?" + query : ""));
      refresh();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const idEl = document.getElementById("plan-id");
  if (idEl) planId = idEl.textContent;
  wireFilters();
  refresh();
  window.setInterval(refresh, REFRESH_MS);
});
