// peftlab results explorer: filters, sorts and draws the data embedded in this page.
// Every number comes from the report's summary (peftlab/reporting/explorer.py), and so does the Pareto
// rule: the page looks up which methods dominate each point (D.dominated_by, peftlab/reporting/pareto.py).
"use strict";

const D = JSON.parse(document.getElementById("explorer-data").textContent);
const DASHES = ["dash", "dot", "dashdot", "longdash"];
const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down"];
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const state = {
  experiments: new Set(D.experiments),
  methods: new Set(D.methods),
  x: D.default_x,
  y: D.default_y,
  logx: null, // null: automatic (counts and sizes spanning orders of magnitude go on a log scale)
  logy: null,
  sort: { summary: null, runs: null },
};

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function shown(item) {
  return state.experiments.has(item.experiment) && state.methods.has(item.method);
}

function color(method) {
  return D.colors[method] || "#444";
}

function symbol(experiment) {
  return SYMBOLS[D.experiments.indexOf(experiment) % SYMBOLS.length];
}

function name(item) {
  return D.experiments.length > 1 ? item.experiment + ": " + item.method : item.method;
}

// ---------------------------------------------------------------- filters

function checkbox(group, value, checked, swatch, onChange) {
  const box = el("input", { type: "checkbox", value: value, "data-filter": group });
  box.checked = checked;
  box.addEventListener("change", () => onChange(box.checked));
  const label = el("label", { title: value }, [box]);
  if (swatch) label.append(el("span", { class: "swatch", style: "background:" + swatch }));
  label.append(document.createTextNode(value));
  return label;
}

function buildFilters() {
  const exps = document.querySelector("#experiment-filter .checks");
  for (const e of D.experiments) {
    exps.append(checkbox("experiment", e, true, null, (on) => {
      on ? state.experiments.add(e) : state.experiments.delete(e);
      render();
    }));
  }
  const methods = document.querySelector("#method-filter .checks");
  for (const m of D.methods) {
    methods.append(checkbox("method", m, true, color(m), (on) => {
      on ? state.methods.add(m) : state.methods.delete(m);
      render();
    }));
  }
  const setAll = (on) => {
    for (const box of methods.querySelectorAll("input")) box.checked = on;
    state.methods = new Set(on ? D.methods : []);
    render();
  };
  document.getElementById("methods-all").addEventListener("click", () => setAll(true));
  document.getElementById("methods-none").addEventListener("click", () => setAll(false));
}

// ---------------------------------------------------------------- sortable tables

function sortKey(text) {
  // the report's formatted cell: "**0.861** [0.84, 0.88]†", "1,120", "+0.012 [...]", "<0.001", "3/3"
  const number = parseFloat(String(text).replace(/\*\*/g, "").replace(/,/g, "").replace(/^[<>~\s]+/, ""));
  return Number.isFinite(number) ? number : null;
}

function formatted(text) {
  // **bold** is the report's "significantly best" mark; † (tied for best) stays as written
  const span = el("span");
  String(text).split(/\*\*(.*?)\*\*/).forEach((part, i) => span.append(i % 2 ? el("b", { text: part }) : part));
  return span;
}

function sortable(table, which, headers, rows, textColumns) {
  const sort = state.sort[which];
  if (sort) {
    rows = rows.slice().sort((a, b) => {
      const ka = sortKey(a.cells[sort.col]);
      const kb = sortKey(b.cells[sort.col]);
      if (ka !== null && kb !== null) return (ka - kb) * sort.dir;
      if (ka !== null || kb !== null) return ka === null ? 1 : -1; // blanks last either way
      return String(a.cells[sort.col]).localeCompare(String(b.cells[sort.col])) * sort.dir;
    });
  }
  const head = el("tr");
  headers.forEach((h, i) => {
    const cls = (textColumns.has(i) ? "text " : "") + (sort && sort.col === i ? (sort.dir > 0 ? "sorted-asc" : "sorted-desc") : "");
    const th = el("th", { class: cls.trim(), "data-col": i, text: h });
    th.addEventListener("click", () => {
      const same = state.sort[which] && state.sort[which].col === i;
      state.sort[which] = { col: i, dir: same ? -state.sort[which].dir : textColumns.has(i) ? 1 : -1 };
      render();
    });
    head.append(th);
  });
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", { "data-method": row.method, "data-experiment": row.experiment });
    row.cells.forEach((c, i) => tr.append(el("td", { class: textColumns.has(i) ? "text" : "" }, [row.render ? row.render(i, c) : formatted(c)])));
    body.append(tr);
  }
  table.replaceChildren(el("thead", {}, [head]), body);
}

function renderSummary() {
  const cols = D.table.columns;
  const text = new Set(cols.map((c, i) => (/^(experiment|method|not ok)$/.test(c) ? i : -1)).filter((i) => i >= 0));
  sortable(document.getElementById("summary-table"), "summary", cols, D.table.rows.filter(shown), text);
  const notes = document.getElementById("summary-notes");
  notes.replaceChildren(...D.table.notes.map((n) => el("li", {}, [formatted(n.replace(/`/g, ""))])));
}

function renderRuns() {
  const headers = ["experiment", "method", "seed", "status", "test " + (D.metric ? D.metric.short : "score"), "record"];
  const rows = D.runs.filter(shown).map((r) => ({
    method: r.method,
    experiment: r.experiment,
    cells: [r.experiment, r.method, r.seed === null ? "" : String(r.seed), r.status || "",
            r.score === null ? "—" : r.score.toFixed(3), r.run_id || ""],
    render: (i, c) => (i === 5 && r.record ? el("a", { href: r.record, text: c }) : formatted(c)),
  }));
  sortable(document.getElementById("runs-table"), "runs", headers, rows, new Set([0, 1, 3, 5]));
}

// ---------------------------------------------------------------- Pareto scatter

function axis(key) {
  return D.axes.find((a) => a.key === key);
}

function onFront(points, xKey, yKey, experiment) {
  // on the front of the points shown: none of the methods that dominate it (computed by the report,
  // peftlab/reporting/pareto.py) is among them
  const beaten = ((D.dominated_by[xKey + "|" + yKey] || {})[experiment]) || {};
  const shownNames = new Set(points.map((p) => p.name));
  return points.map((p) => !(beaten[p.name] || []).some((m) => shownNames.has(m)));
}

function autoLog(values) {
  const v = values.filter((x) => x !== null);
  return v.length > 1 && Math.min(...v) > 0 && Math.max(...v) / Math.min(...v) > 20;
}

function errorBars(values) {
  const plus = values.map((v) => (v.high === null || v.mean === null ? null : v.high - v.mean));
  const minus = values.map((v) => (v.low === null || v.mean === null ? null : v.mean - v.low));
  return { type: "data", symmetric: false, array: plus, arrayminus: minus, visible: plus.some((v) => v !== null), thickness: 1 };
}

function renderScatter() {
  const div = document.getElementById("scatter");
  const ax = axis(state.x);
  const ay = axis(state.y);
  if (!ax || !ay) {
    div.replaceChildren(el("p", { class: "empty", text: "No metric to plot: no finished run has a number." }));
    return;
  }
  if (!div.data) div.replaceChildren();
  const rows = D.table.rows.filter(shown).filter((r) => r.points[ax.key].mean !== null && r.points[ay.key].mean !== null);
  const traces = [];
  for (const method of D.methods) {
    const mine = rows.filter((r) => r.method === method);
    if (!mine.length) continue;
    const xs = mine.map((r) => r.points[ax.key]);
    const ys = mine.map((r) => r.points[ay.key]);
    traces.push({
      type: "scatter", mode: "markers", name: method, legendgroup: method, meta: "method",
      x: xs.map((v) => v.mean), y: ys.map((v) => v.mean),
      error_x: errorBars(xs), error_y: errorBars(ys),
      marker: { color: color(method), size: 10, symbol: mine.map((r) => symbol(r.experiment)), line: { width: 1, color: "#fff" } },
      text: mine.map(name),
      hovertemplate: "%{text}<br>" + ax.label + ": %{x}<br>" + ay.label + ": %{y}<extra></extra>",
    });
  }
  if (D.experiments.length > 1) {
    // the marker's shape names the experiment: one grey legend entry per shape
    for (const experiment of D.experiments) {
      traces.push({
        type: "scatter", mode: "markers", name: "experiment " + experiment, meta: "experiment", x: [null], y: [null],
        hoverinfo: "skip",
        marker: { color: "#888", size: 10, symbol: symbol(experiment) },
      });
    }
  }
  const fronts = [];
  const lines = [];
  for (const experiment of D.experiments) {
    const mine = rows.filter((r) => r.experiment === experiment);
    const points = mine.map((r) => ({ x: r.points[ax.key].mean, y: r.points[ay.key].mean, name: r.method }));
    const best = onFront(points, ax.key, ay.key, experiment);
    const front = points.filter((p, i) => best[i]).sort((a, b) => a.x - b.x || a.y - b.y);
    if (!front.length) continue;
    fronts.push({ experiment: experiment, methods: front.map((p) => p.name) });
    const dash = DASHES[D.experiments.indexOf(experiment) % DASHES.length];
    lines.push({
      type: "scatter", mode: "lines", name: "Pareto front" + (D.experiments.length > 1 ? " (" + experiment + ")" : ""),
      x: front.map((p) => p.x), y: front.map((p) => p.y), hoverinfo: "skip",
      line: { color: "#666", dash: dash, width: 1.2, shape: ax.better === "max" ? "vh" : "hv" },
    });
  }
  traces.unshift(...lines); // first: the fronts are drawn under the markers
  const logx = state.logx === null ? autoLog(rows.map((r) => r.points[ax.key].mean)) : state.logx;
  const logy = state.logy === null ? autoLog(rows.map((r) => r.points[ay.key].mean)) : state.logy;
  document.getElementById("x-log").checked = logx;
  document.getElementById("y-log").checked = logy;
  const better = (a) => a.label + (a.better === "max" ? " (higher is better)" : " (lower is better)");
  div.dataset.x = ax.key;
  div.dataset.y = ay.key;
  div.dataset.front = JSON.stringify(fronts);
  const scale = (log, values) => {
    // a log axis over several decades: one labelled tick per decade (10k, 100k, 1M), not 2 and 5 between
    const v = values.filter((x) => x !== null && x > 0);
    const decades = v.length ? Math.log10(Math.max(...v) / Math.min(...v)) : 0;
    return log ? (decades >= 2 ? { type: "log", dtick: 1 } : { type: "log" }) : { type: "linear" };
  };
  Plotly.react(div, traces, {
    height: 560, margin: { t: 20, r: 10 }, hovermode: "closest",
    legend: { orientation: "h", y: -0.18, yanchor: "top" },
    xaxis: { title: { text: better(ax) }, zeroline: false, ...scale(logx, rows.map((r) => r.points[ax.key].mean)) },
    yaxis: { title: { text: better(ay) }, zeroline: false, ...scale(logy, rows.map((r) => r.points[ay.key].mean)) },
  }, PLOT_CONFIG);
  document.getElementById("front-note").textContent = fronts.length
    ? "On the front: " + fronts.map((f) => (D.experiments.length > 1 ? f.experiment + ": " : "") + f.methods.join(", ")).join("; ") +
      ". Error bars: the summary's 95% intervals (none for measured costs)."
    : "No method shown has both values.";
}

function buildAxisControls() {
  for (const [id, key] of [["x-axis", "x"], ["y-axis", "y"]]) {
    const select = document.getElementById(id);
    for (const a of D.axes) select.append(el("option", { value: a.key, text: a.label }));
    select.value = state[key];
    select.addEventListener("change", () => {
      state[key] = select.value;
      state["log" + key] = null;
      renderScatter();
    });
  }
  for (const key of ["x", "y"]) {
    const box = document.getElementById(key + "-log");
    box.addEventListener("change", () => {
      state["log" + key] = box.checked;
      renderScatter();
    });
  }
}

// ---------------------------------------------------------------- forest plot of paired differences

function renderForest() {
  const div = document.getElementById("forest");
  const rows = D.table.rows.filter(shown).filter((r) => r.forest.diff !== null && r.forest.low !== null && r.forest.high !== null);
  if (!rows.length) {
    Plotly.purge(div);
    div.replaceChildren(el("p", { class: "empty", text: "No paired comparison with the reference among the methods shown." }));
    return;
  }
  if (!div.data) div.replaceChildren();
  const labels = rows.map(name);
  const traces = rows.map((r, i) => ({
    type: "scatter", mode: "markers", name: r.method, legendgroup: r.method, showlegend: false,
    x: [r.forest.diff], y: [labels[i]],
    error_x: { type: "data", symmetric: false, array: [r.forest.high - r.forest.diff], arrayminus: [r.forest.diff - r.forest.low] },
    marker: { color: color(r.method), size: 9, symbol: symbol(r.experiment) },
    hovertemplate: labels[i] + ": Δ %{x:+.3f} [" + r.forest.low.toFixed(3) + ", " + r.forest.high.toFixed(3) + "]<extra></extra>",
  }));
  const annotations = rows.map((r, i) => {
    const p = r.forest.p_holm;
    let text = p === null ? "" : p < 0.001 ? "p<0.001" : "p=" + p.toFixed(3);
    if (r.forest.question) text += ", " + r.forest.question;
    if (r.forest.mdd !== null && r.forest.mdd !== undefined) text += ", MDD " + r.forest.mdd.toFixed(3);
    return { x: 1.01, xref: "paper", y: labels[i], yref: "y", text: text, showarrow: false, xanchor: "left", font: { size: 11, color: "#555" } };
  });
  const shapes = [{ type: "line", x0: 0, x1: 0, yref: "paper", y0: 0, y1: 1, line: { color: "#888", dash: "dash", width: 1 } }];
  // each row's own minimum detectable difference (its question, its seeds): a grey band on its line
  rows.forEach((r, i) => {
    const mdd = r.forest.mdd;
    if (mdd === null || mdd === undefined) return;
    shapes.push({ type: "rect", x0: -mdd, x1: mdd, yref: "y", y0: i - 0.35, y1: i + 0.35, fillcolor: "#ddd", opacity: 0.5, line: { width: 0 }, layer: "below" });
  });
  const refs = [...new Set(rows.map((r) => r.forest.reference).filter((v) => v))];
  const tests = [...new Set(rows.map((r) => r.forest.test).filter((v) => v))];
  Plotly.react(div, traces, {
    height: Math.max(220, 40 * rows.length + 120), margin: { t: 10, r: 170, l: 10 },
    xaxis: { title: { text: "Δ test " + (D.metric ? D.metric.words : "score") + " vs " + refs.join(", ") + " (95% interval; " + tests.join("; ") + "; p Holm-adjusted)" }, zeroline: false },
    yaxis: { autorange: "reversed", automargin: true, type: "category" },
    annotations: annotations, shapes: shapes,
  }, PLOT_CONFIG);
}

// ---------------------------------------------------------------- curves

// a training key `rollout:reward` is a sampling task's per-step rollout series (run.rollout), any other a curve's
function series(r, key) {
  const rollout = key.startsWith("rollout:");
  const source = rollout ? r.rollout || {} : r.curve;
  const y = source[rollout ? key.slice(8) : key];
  return y && y.some((v) => v !== null) ? { x: source.step, y: y } : null;
}

function curveKeys(prefix) {
  const keys = new Set();
  for (const r of D.runs) for (const k of Object.keys(r.curve)) if (k !== "step" && k.startsWith("val_") === (prefix === "val_")) keys.add(k);
  if (prefix !== "val_") for (const r of D.runs) for (const k of Object.keys(r.rollout || {})) if (k !== "step") keys.add("rollout:" + k);
  return [...keys];
}

function keyText(key) {
  return key.replace("rollout:", "rollout ").replace(/_/g, " ");
}

function buildCurveControls() {
  for (const [id, prefix, preferred] of [["train-key", "train", "train_loss"], ["val-key", "val_", D.metric ? "val_" + D.metric.key : ""]]) {
    const select = document.getElementById(id);
    const keys = curveKeys(prefix);
    for (const k of keys) select.append(el("option", { value: k, text: keyText(k) }));
    // a sampling task's training signal is its rollout reward (its loss hovers near zero by construction)
    const first = prefix !== "val_" && keys.includes("rollout:reward") ? "rollout:reward" : preferred;
    if (keys.includes(first)) select.value = first;
    select.addEventListener("change", renderCurves);
  }
}

function renderCurve(divId, key) {
  const div = document.getElementById(divId);
  const runs = D.runs.filter(shown).filter((r) => key && series(r, key))
    .sort((a, b) => D.methods.indexOf(a.method) - D.methods.indexOf(b.method)); // the legend in the table's order
  if (!runs.length) {
    Plotly.purge(div);
    div.replaceChildren(el("p", { class: "empty", text: "No " + (key ? keyText(key) : "curve") + " in the records shown." }));
    return;
  }
  if (!div.data) div.replaceChildren();
  const seen = new Set();
  const traces = runs.map((r) => {
    const first = !seen.has(r.method);
    seen.add(r.method);
    const s = series(r, key);
    return {
      type: "scatter", mode: "lines+markers", name: r.method, legendgroup: r.method, showlegend: first,
      x: s.x, y: s.y, line: { color: color(r.method), width: 1.3 }, marker: { size: 4, symbol: symbol(r.experiment) },
      hovertemplate: (D.experiments.length > 1 ? r.experiment + ": " : "") + r.method + " seed " + r.seed + "<br>step %{x}: %{y:.4f}<extra></extra>",
    };
  });
  Plotly.react(div, traces, {
    margin: { t: 20, r: 10 }, xaxis: { title: { text: "optimiser step" } }, yaxis: { title: { text: keyText(key) } },
    legend: { orientation: "h", y: -0.2 },
  }, PLOT_CONFIG);
}

function renderCurves() {
  renderCurve("train-curves", document.getElementById("train-key").value);
  renderCurve("val-curves", document.getElementById("val-key").value);
}

// ---------------------------------------------------------------- main

function render() {
  renderSummary();
  renderScatter();
  renderForest();
  renderCurves();
  renderRuns();
  document.body.dataset.shownMethods = JSON.stringify(D.methods.filter((m) => state.methods.has(m)));
}

document.getElementById("title").textContent = "peftlab explorer: " + D.title;
if (D.experiments.length < 2) document.getElementById("experiment-filter").hidden = true;
buildFilters();
buildAxisControls();
buildCurveControls();
render();
document.body.dataset.ready = "1";
