// nmt serve's page: plain JavaScript, no build step, no external assets. It asks POST /translate for the
// translations with their token probabilities, top alternatives and attention, and draws them.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["model", "model2", "search", "beam", "nbest", "seed", "topk", "layer", "head"];
const ALTERNATIVES = 5;
let models = [];
let columns = [];          // [{model, lines: [...], results: response}]
let selected = { column: 0, line: 0 };

function info(name) { return models.find((m) => m.name === name) || {}; }

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function loadModels() {
  const answer = await fetch("models").then((r) => r.json());
  models = answer.models;
  for (const select of [$("model"), $("model2")]) {
    select.innerHTML = "";
    for (const m of models) {
      const option = document.createElement("option");
      option.value = m.name;
      const langs = m.languages ? ` ${m.languages.join("→")}` : "";
      option.textContent = `${m.name} (${m.network}${langs})`;
      select.append(option);
    }
  }
  if (models.length > 1) $("model2").value = models[1].name;
  $("compare").disabled = models.length < 2;
}

function readURL() {
  const params = new URLSearchParams(location.search);
  if (params.has("text")) $("source").value = params.get("text");
  for (const name of FIELDS) if (params.has(name)) $(name).value = params.get(name);
  // The layer and head lists are filled once attention arrives: keep the wanted ones until then.
  for (const name of ["layer", "head"]) if (params.has(name)) $(name).dataset.wanted = params.get(name);
  $("compare").checked = params.get("compare") === "1" && models.length > 1;
  selected.line = Number(params.get("line") || 0);
  updateControls();
  return params.has("text");
}

function writeURL() {
  const params = new URLSearchParams();
  params.set("text", $("source").value);
  for (const name of FIELDS) params.set(name, $(name).value);
  params.set("compare", $("compare").checked ? "1" : "0");
  params.set("line", String(selected.line));
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function updateControls() {
  const search = $("search").value;
  $("beam").disabled = search !== "beam";
  $("seed").disabled = $("topk").disabled = search !== "sample";
  $("model2").disabled = !$("compare").checked;
}

function body(model, lines) {
  const search = $("search").value;
  const request = { text: lines, model, scores: true, nbest: Number($("nbest").value) || 1 };
  if (search === "beam") request.beam = Number($("beam").value) || 1;
  if (search === "greedy") request.nbest = 1;
  if (search === "sample") {
    request.sample = true;
    request.seed = Number($("seed").value) || 0;
    request.topk = Number($("topk").value) || 0;
  }
  const features = info(model).features || {};
  request.probabilities = true;
  if (features.alternatives) request.alternatives = ALTERNATIVES;
  if (features.attention) request.attention = true;
  return request;
}

async function translate() {
  const lines = $("source").value.split("\n");
  const names = [$("model").value];
  if ($("compare").checked && $("model2").value !== names[0]) names.push($("model2").value);
  setStatus("Translating…");
  $("translate").disabled = true;
  try {
    const answers = await Promise.all(names.map(async (model) => {
      const response = await fetch("translate", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body(model, lines)) });
      const answer = await response.json();
      if (!response.ok) throw new Error(`${model}: ${answer.error}`);
      return { model, lines, results: answer };
    }));
    columns = answers;
    selected.column = 0;
    if (selected.line >= lines.length) selected.line = 0;
    render();
    setStatus("");
    writeURL();
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("translate").disabled = false;
  }
}

function text(piece) { return piece.replace(/▁/g, " "); }

function shade(p) {  // confident tokens stay plain, unsure ones turn orange
  const alpha = Math.min(0.75, (1 - p) * 0.8);
  return `rgba(255, 140, 0, ${alpha.toFixed(3)})`;
}

function tokenSpans(container, tokens, detail, kind) {
  tokens.forEach((piece, t) => {
    const span = document.createElement("span");
    span.className = kind;
    span.dataset.index = String(t);
    let shown = text(piece);
    if (t === 0) shown = shown.replace(/^ /, "");
    span.textContent = shown;
    if (kind === "token" && detail && detail.probabilities) {
      const p = detail.probabilities[t];
      span.style.background = shade(p);
      span.dataset.p = String(p);
      span.tabIndex = 0;
    }
    container.append(span);
  });
}

function render() {
  const results = $("results");
  results.innerHTML = "";
  columns.forEach((column, c) => {
    const section = document.createElement("div");
    section.className = "column";
    section.dataset.model = column.model;
    const heading = document.createElement("h3");
    heading.textContent = column.model;
    section.append(heading);
    const answer = column.results;
    column.lines.forEach((line, i) => {
      const details = (answer.details || [])[i] || [];
      const best = details[0];
      const row = document.createElement("div");
      row.className = "line";
      row.dataset.line = String(i);
      row.dataset.column = String(c);
      if (c === selected.column && i === selected.line) row.classList.add("selected");
      const src = document.createElement("div");
      src.className = "src";
      if (best && best.source_tokens) tokenSpans(src, best.source_tokens.filter((p) => p !== "</s>"), null, "srctoken");
      else src.textContent = line;
      const translation = document.createElement("div");
      translation.className = "translation";
      const texts = answer.translations[i];
      const shown = Array.isArray(texts) ? texts[0] : texts;
      if (best && best.tokens && best.tokens.length) tokenSpans(translation, best.tokens, best, "token");
      else translation.textContent = shown;
      translation.dataset.text = shown;
      row.append(src, translation);
      if (Array.isArray(texts) && texts.length > 1) {
        const list = document.createElement("ol");
        list.className = "nbest";
        texts.forEach((t, k) => {
          const item = document.createElement("li");
          item.dataset.text = t;
          const score = document.createElement("span");
          score.className = "score";
          score.textContent = answer.scores[i][k].toFixed(3);
          item.append(score, document.createTextNode(t));
          list.append(item);
        });
        row.append(list);
      }
      row.addEventListener("click", () => { selected = { column: c, line: i }; render(); writeURL(); });
      section.append(row);
    });
    results.append(section);
  });
  renderAttention();
}

function currentDetail() {
  const column = columns[selected.column];
  if (!column) return null;
  const details = (column.results.details || [])[selected.line];
  return details && details[0] ? { model: column.model, detail: details[0] } : null;
}

function fillSelect(select, count, label) {
  const keep = select.dataset.wanted || select.value;
  delete select.dataset.wanted;
  select.innerHTML = "";
  const average = document.createElement("option");
  average.value = "avg";
  average.textContent = "average";
  select.append(average);
  for (let k = 0; k < count; k++) {
    const option = document.createElement("option");
    option.value = String(k);
    option.textContent = `${label} ${k + 1}`;
    select.append(option);
  }
  select.value = [...select.options].some((o) => o.value === keep) ? keep : (label === "layer" ? String(count - 1) : "avg");
}

function matrix(attention) {  // attention: [layer][head][target][source] -> the chosen layer/head (or averages)
  const layers = $("layer").value === "avg" ? attention : [attention[Number($("layer").value)]];
  const pick = (heads) => ($("head").value === "avg" ? heads : [heads[Number($("head").value)]]);
  const chosen = layers.flatMap(pick);
  return chosen[0].map((row, t) => row.map((_, s) => chosen.reduce((sum, m) => sum + m[t][s], 0) / chosen.length));
}

function renderAttention() {
  const view = $("attention");
  view.innerHTML = "";
  const current = currentDetail();
  const note = $("attention-note");
  if (!current || !current.detail.attention) {
    const model = current ? info(current.model) : {};
    note.textContent = model.features && !model.features.attention
      ? `${current.model} (${model.network}) returns no attention.`
      : "Translate, then pick a line to see its attention.";
    $("layer").disabled = $("head").disabled = true;
    return;
  }
  const attention = current.detail.attention;
  fillSelect($("layer"), attention.length, "layer");
  fillSelect($("head"), attention[0].length, "head");
  $("layer").disabled = attention.length < 2;
  $("head").disabled = attention[0].length < 2;
  note.textContent = `line ${selected.line + 1}, ${current.model}: each row is an output piece, each column a source piece`;
  const weights = matrix(attention);
  const source = current.detail.source_tokens;
  const target = [...current.detail.tokens, "</s>"];
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.append(document.createElement("th"));
  source.forEach((piece, s) => {
    const th = document.createElement("th");
    th.textContent = text(piece);
    th.dataset.source = String(s);
    head.append(th);
  });
  const rows = table.createTBody();
  weights.forEach((row, t) => {
    const tr = rows.insertRow();
    const th = document.createElement("th");
    th.textContent = text(target[t]);
    th.dataset.target = String(t);
    tr.append(th);
    row.forEach((w, s) => {
      const td = tr.insertCell();
      td.style.background = `rgba(47, 95, 179, ${w.toFixed(3)})`;
      td.title = `${text(target[t])} → ${text(source[s])}: ${w.toFixed(3)}`;
      td.dataset.source = String(s);
      td.dataset.target = String(t);
    });
  });
  view.append(table);
}

// ---------------------------------------------------------------- hover and focus: tooltip and links
function attended(weights, t) {  // the source pieces target piece t attends to: its largest weights
  const row = weights[t] || [];
  const top = Math.max(...row);
  return row.map((w, s) => [w, s]).filter(([w]) => w >= 0.5 * top).map(([, s]) => s);
}

function clearHighlights() {
  document.querySelectorAll(".highlight").forEach((e) => e.classList.remove("highlight"));
}

function highlightTarget(column, line, t) {
  clearHighlights();
  const current = currentDetail();
  if (!current || !current.detail.attention || column !== selected.column || line !== selected.line) return;
  const weights = matrix(current.detail.attention);
  const row = document.querySelector(`.line[data-column="${column}"][data-line="${line}"]`);
  for (const s of attended(weights, t)) {
    document.querySelectorAll(`#attention th[data-source="${s}"]`).forEach((e) => e.classList.add("highlight"));
    if (row) row.querySelectorAll(`.srctoken[data-index="${s}"]`).forEach((e) => e.classList.add("highlight"));
  }
  document.querySelectorAll(`#attention th[data-target="${t}"]`).forEach((e) => e.classList.add("highlight"));
  if (row) row.querySelectorAll(`.token[data-index="${t}"]`).forEach((e) => e.classList.add("highlight"));
}

function highlightSource(s) {
  clearHighlights();
  const current = currentDetail();
  if (!current || !current.detail.attention) return;
  const weights = matrix(current.detail.attention);
  const row = document.querySelector(`.line[data-column="${selected.column}"][data-line="${selected.line}"]`);
  weights.forEach((_, t) => {
    if (!attended(weights, t).includes(s)) return;
    document.querySelectorAll(`#attention th[data-target="${t}"]`).forEach((e) => e.classList.add("highlight"));
    if (row) row.querySelectorAll(`.token[data-index="${t}"]`).forEach((e) => e.classList.add("highlight"));
  });
  document.querySelectorAll(`#attention th[data-source="${s}"]`).forEach((e) => e.classList.add("highlight"));
  if (row) row.querySelectorAll(`.srctoken[data-index="${s}"]`).forEach((e) => e.classList.add("highlight"));
}

function showTooltip(element) {
  const line = element.closest(".line");
  if (!line) return;
  const column = columns[Number(line.dataset.column)];
  const detail = ((column.results.details || [])[Number(line.dataset.line)] || [])[0];
  const t = Number(element.dataset.index);
  if (!detail || !detail.probabilities) return;
  const tip = $("tooltip");
  tip.innerHTML = "";
  const title = document.createElement("div");
  title.textContent = `"${text(detail.tokens[t]).trim()}": ${(100 * detail.probabilities[t]).toFixed(1)}%`;
  tip.append(title);
  if (detail.alternatives) {
    const table = document.createElement("table");
    for (const [piece, p] of detail.alternatives[t]) {
      const tr = table.insertRow();
      tr.insertCell().textContent = text(piece).trim() || "␣";
      tr.insertCell().textContent = `${(100 * p).toFixed(1)}%`;
    }
    tip.append(table);
  }
  const box = element.getBoundingClientRect();
  tip.hidden = false;
  tip.style.left = `${Math.min(box.left, window.innerWidth - 270)}px`;
  tip.style.top = `${box.bottom + 6}px`;
}

function onEnter(event) {
  const element = event.target;
  if (!(element instanceof HTMLElement)) return;
  if (element.classList.contains("token")) {
    const line = element.closest(".line");
    if (line) {
      const column = Number(line.dataset.column);
      const index = Number(line.dataset.line);
      if (column !== selected.column || index !== selected.line) { selected = { column, line: index }; renderAttention(); markSelected(); }
      highlightTarget(column, index, Number(element.dataset.index));
    }
    showTooltip(element);
  } else if (element.classList.contains("srctoken")) {
    highlightSource(Number(element.dataset.index));
  } else if (element.matches("#attention th[data-target], #attention td")) {
    highlightTarget(selected.column, selected.line, Number(element.dataset.target));
  } else if (element.matches("#attention th[data-source]")) {
    highlightSource(Number(element.dataset.source));
  }
}

function onLeave(event) {
  const element = event.target;
  if (element instanceof HTMLElement && element.matches(".token, .srctoken, #attention th, #attention td")) {
    clearHighlights();
    $("tooltip").hidden = true;
  }
}

function markSelected() {
  document.querySelectorAll(".line").forEach((row) => row.classList.toggle("selected",
    Number(row.dataset.column) === selected.column && Number(row.dataset.line) === selected.line));
}

document.addEventListener("mouseover", onEnter);
document.addEventListener("focusin", onEnter);
document.addEventListener("mouseout", onLeave);
document.addEventListener("focusout", onLeave);
$("translate").addEventListener("click", translate);
$("source").addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translate(); });
for (const id of ["search", "compare"]) $(id).addEventListener("change", updateControls);
for (const id of ["layer", "head"]) $(id).addEventListener("change", () => { renderAttention(); writeURL(); });

(async () => {
  try {
    await loadModels();
    if (readURL()) await translate();
    document.body.dataset.ready = "1";
  } catch (error) {
    setStatus(`The server did not answer: ${error.message}`, true);
  }
})();
