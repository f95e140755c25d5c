// The activation explorer: pick a function of GET /activations, set its
// parameters and range, and see y and dy/dx plotted. Links to
// #activation=NAME (next to each served model) open it on that function.

import { $, FONT, fetchOrFail, fitCanvas, formatTick, niceStep } from "./common.js";

const form = $("explorer");
const select = $("act-name");
const paramBox = $("act-params");
const plot = $("plot");
const actStatus = $("act-status");
let functions = [];
let lastPlot = null;
let plotSequence = 0;
let wanted = null; // a function asked for before /activations arrived
let served = []; // GET /models, to say which models use the function shown
const MAX_GROUPS = 40;

function setActStatus(text, isError = false) {
  actStatus.textContent = text;
  actStatus.classList.toggle("error", isError);
}

function showParams(fn) {
  const fields = Object.entries(fn.params).map(([name, value]) => {
    const field = document.createElement("div");
    field.className = "field";
    const label = document.createElement("label");
    label.htmlFor = `param-${name}`;
    label.textContent = name;
    const input = document.createElement("input");
    input.id = `param-${name}`;
    input.type = "number";
    input.name = name;
    input.value = String(value);
    input.required = true;
    if (name === "k") {
      input.step = "1";
      input.min = "1";
      input.max = "50";
    } else {
      input.step = "any";
    }
    field.append(label, input);
    return field;
  });
  paramBox.replaceChildren(...fields);
  $("act-formula").textContent = fn.formula;
  const aliases = fn.aliases.length ? ` (also: ${fn.aliases.join(", ")})` : "";
  $("act-notes").textContent = `${fn.notes}${aliases}`;
  showUsers();
}

// Which served models have this function in their hidden layers.
function showUsers() {
  const users = served.filter((m) => m.hidden_activation === select.value).map((m) => m.name);
  $("act-models").textContent = users.length
    ? `The hidden layers of ${users.join(", ")} use ${select.value}.`
    : "";
}

export function setServedModels(models) {
  served = models;
  if (functions.length) showUsers();
}

function choose(name) {
  const fn = functions.find((f) => f.name === name || f.aliases.includes(name));
  if (!fn) {
    setActStatus(`This server has no activation function called ${name}.`, true);
    return;
  }
  select.value = fn.name;
  showParams(fn);
  plotSelected();
}

// Opens the explorer on `name`: selected, plotted, scrolled into view, and
// the function list focused so the keyboard carries on from there.
export function showActivation(name) {
  const section = $("explorer-section");
  section.scrollIntoView({ behavior: "smooth", block: "start" });
  select.focus({ preventScroll: true });
  if (functions.length) choose(name);
  else wanted = name;
}

function hashActivation() {
  const found = /^#activation=([\w-]+)$/.exec(window.location.hash);
  return found ? decodeURIComponent(found[1]) : null;
}

// One listener for every link, wherever models.js put it.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.act-link");
  if (!link) return;
  event.preventDefault();
  // The address names the function too, so the link can be shared or reloaded.
  history.replaceState(null, "", link.getAttribute("href"));
  showActivation(link.dataset.activation);
});
window.addEventListener("hashchange", () => {
  const name = hashActivation();
  if (name) showActivation(name);
});

async function plotSelected() {
  const fn = functions.find((f) => f.name === select.value);
  if (!fn) return;
  const start = Number($("act-start").value);
  const stop = Number($("act-stop").value);
  if (!form.checkValidity() || !(start < stop)) {
    setActStatus("Give finite numbers, with x from less than to, and valid parameters.", true);
    return;
  }
  const query = new URLSearchParams({ start: String(start), stop: String(stop) });
  let num = 201;
  for (const input of paramBox.querySelectorAll("input")) {
    query.set(input.name, input.value);
    // Grouped functions (maxout): whole groups, and few enough of them that
    // each group's winner gets its own marker, at least 12 px from the next.
    if (input.name === "k") {
      const k = Number(input.value);
      const fit = Math.max(4, Math.floor((plot.clientWidth - 68) / 12));
      num = k * Math.max(1, Math.min(MAX_GROUPS, fit, Math.floor(201 / k)));
    }
  }
  query.set("num", String(num));
  const mine = ++plotSequence;
  try {
    const data = await fetchOrFail(`/activations/${encodeURIComponent(fn.name)}?${query}`);
    if (mine !== plotSequence) return;
    lastPlot = data;
    drawPlot(data);
    setActStatus("");
  } catch (error) {
    if (mine === plotSequence) setActStatus(`Cannot plot this: ${error.message}`, true);
  }
}

function drawPlot(data) {
  const { ctx, width, height } = fitCanvas(plot);
  ctx.clearRect(0, 0, width, height);
  ctx.font = FONT;

  const xs = data.x;
  // maxout gives one y per group of k consecutive points.
  const k = Math.round(xs.length / data.y.length);
  const grouped = k > 1;
  const yColor = "#0b57d0";
  const dyColor = "#d9480f";
  const legend = grouped
    ? [
        [`y = ${data.name}(x), one per group of ${k}`, yColor, "line"],
        ["dy/dx: 1 at each group's arg-max, else 0", dyColor, "dot"],
      ]
    : [
        [`y = ${data.name}(x)`, yColor, "line"],
        ["dy/dx", dyColor, "dash"],
      ];
  // The legend wraps on narrow screens; the plot starts below it.
  const legendLeft = width < 560 ? 8 : 52;
  const rows = [[]];
  let used = legendLeft;
  for (const item of legend) {
    const size = 32 + ctx.measureText(item[0]).width + 24;
    if (rows[rows.length - 1].length && used + size > width) {
      rows.push([]);
      used = legendLeft;
    }
    rows[rows.length - 1].push(item);
    used += size;
  }
  const m = { left: 52, right: 16, top: 12 + 18 * rows.length, bottom: 40 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const finite = [...data.y, ...data.dy, 0].filter(Number.isFinite);
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi - lo < 1e-9) {
    lo -= 1;
    hi += 1;
  }
  const padY = 0.08 * (hi - lo);
  lo -= padY;
  hi += padY;
  const x0 = xs[0];
  const x1 = xs[xs.length - 1];
  const px = (x) => m.left + ((x - x0) / (x1 - x0)) * w;
  const py = (y) => m.top + (1 - (y - lo) / (hi - lo)) * h;

  // Grid, ticks and labels.
  ctx.strokeStyle = "#e4e7ec";
  ctx.fillStyle = "#4a505c";
  ctx.lineWidth = 1;
  const xStep = niceStep(x1 - x0, Math.max(3, Math.floor(w / 70)));
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let v = Math.ceil(x0 / xStep) * xStep; v <= x1 + 1e-9; v += xStep) {
    const x = Math.round(px(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, m.top);
    ctx.lineTo(x, m.top + h);
    ctx.stroke();
    ctx.fillText(formatTick(v, xStep), x, m.top + h + 6);
  }
  const yStep = niceStep(hi - lo, Math.max(3, Math.floor(h / 45)));
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let v = Math.ceil(lo / yStep) * yStep; v <= hi + 1e-9; v += yStep) {
    const y = Math.round(py(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(m.left, y);
    ctx.lineTo(m.left + w, y);
    ctx.stroke();
    ctx.fillText(formatTick(v, yStep), m.left - 6, y);
  }
  // Axes through zero where zero is in view, else along the edges.
  ctx.strokeStyle = "#5b6270";
  ctx.beginPath();
  const ay = Math.round(py(lo <= 0 && 0 <= hi ? 0 : lo)) + 0.5;
  const ax = Math.round(px(x0 <= 0 && 0 <= x1 ? 0 : x0)) + 0.5;
  ctx.moveTo(m.left, ay);
  ctx.lineTo(m.left + w, ay);
  ctx.moveTo(ax, m.top);
  ctx.lineTo(ax, m.top + h);
  ctx.stroke();
  ctx.fillStyle = "#1a1c20";
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText("x", m.left + w / 2, height - 2);

  function curve(px_, ys, color, dash) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(m.left, m.top, w, h);
    ctx.clip();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2.5;
    ctx.setLineDash(dash);
    ctx.beginPath();
    let pen = false;
    ys.forEach((y, i) => {
      if (!Number.isFinite(y)) {
        pen = false;
        return;
      }
      const X = px(px_[i]);
      const Y = py(y);
      if (pen) ctx.lineTo(X, Y);
      else ctx.moveTo(X, Y);
      pen = true;
    });
    ctx.stroke();
    ctx.restore();
  }
  if (grouped) {
    drawGroups(ctx, data, k, px, py, { m, w, h }, yColor, dyColor);
  } else {
    curve(xs, data.dy, dyColor, [7, 5]);
    curve(xs, data.y, yColor, []);
  }

  // Legend.
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.lineWidth = 2.5;
  rows.forEach((row, r) => {
    const ly = 14 + 18 * r;
    let lx = legendLeft;
    for (const [text, color, mark] of row) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.setLineDash(mark === "dash" ? [7, 5] : []);
      ctx.beginPath();
      if (mark === "dot") {
        ctx.moveTo(lx + 13, ly + 6);
        ctx.lineTo(lx + 13, ly - 2);
        ctx.stroke();
        ctx.beginPath();
        ctx.arc(lx + 13, ly - 2, 3.5, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.moveTo(lx, ly);
        ctx.lineTo(lx + 26, ly);
        ctx.stroke();
      }
      ctx.setLineDash([]);
      ctx.fillStyle = "#1a1c20";
      ctx.fillText(text, lx + 32, ly);
      lx += 32 + ctx.measureText(text).width + 24;
    }
  });

  if (!grouped) {
    delete plot.dataset.k;
    delete plot.dataset.groups;
    delete plot.dataset.winners;
  }
  plot.dataset.name = data.name;
  plot.dataset.points = String(xs.length);
  plot.setAttribute(
    "aria-label",
    `Plot of ${data.name} and its derivative for x from ${x0} to ${x1}`,
  );
}

// A grouped function (maxout): the groups as alternating bands, y as a step
// (one value across each group), and dy as a stem plot: 0 along the group,
// and a stem to 1 with a dot at the input that wins it. Drawn as a line
// through every point, dy would zig-zag between 0 and 1 and read as noise.
function drawGroups(ctx, data, k, px, py, box, yColor, dyColor) {
  const xs = data.x;
  const groups = data.y.length;
  const edge = (j) => (j < groups ? px(xs[j * k]) : px(xs[xs.length - 1]));
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.m.left, box.m.top, box.w, box.h);
  ctx.clip();
  ctx.fillStyle = "rgba(91, 98, 112, 0.08)";
  for (let j = 0; j < groups; j += 2) {
    ctx.fillRect(edge(j), box.m.top, edge(j + 1) - edge(j), box.h);
  }
  let winners = 0;
  ctx.strokeStyle = dyColor;
  ctx.fillStyle = dyColor;
  ctx.lineWidth = 2;
  for (let j = 0; j < groups; j++) {
    ctx.beginPath();
    ctx.moveTo(edge(j) + 1.5, py(0));
    ctx.lineTo(edge(j + 1) - 1.5, py(0));
    ctx.stroke();
    for (let i = j * k; i < (j + 1) * k; i++) {
      if (!(data.dy[i] > 0)) continue;
      winners += 1;
      ctx.beginPath();
      ctx.moveTo(px(xs[i]), py(0));
      ctx.lineTo(px(xs[i]), py(data.dy[i]));
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(px(xs[i]), py(data.dy[i]), 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  ctx.strokeStyle = yColor;
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  data.y.forEach((y, j) => {
    if (!Number.isFinite(y)) return;
    ctx.moveTo(edge(j), py(y));
    ctx.lineTo(edge(j + 1), py(y));
    if (j + 1 < groups && Number.isFinite(data.y[j + 1])) ctx.lineTo(edge(j + 1), py(data.y[j + 1]));
  });
  ctx.stroke();
  ctx.restore();
  plot.dataset.k = String(k);
  plot.dataset.groups = String(groups);
  plot.dataset.winners = String(winners);
}

async function loadFunctions() {
  try {
    functions = await fetchOrFail("/activations");
  } catch (error) {
    setActStatus(`Cannot load the activation functions: ${error.message}`, true);
    return;
  }
  select.replaceChildren(
    ...functions.map((fn) => {
      const option = document.createElement("option");
      option.value = fn.name;
      option.textContent = fn.name;
      return option;
    }),
  );
  select.value = functions.some((f) => f.name === "sigmoid") ? "sigmoid" : functions[0].name;
  const name = wanted || hashActivation();
  wanted = null;
  if (name) {
    choose(name);
    $("explorer-section").scrollIntoView({ block: "start" });
    return;
  }
  showParams(functions.find((f) => f.name === select.value));
  plotSelected();
}

select.addEventListener("change", () => {
  showParams(functions.find((f) => f.name === select.value));
  plotSelected();
});
form.addEventListener("input", (event) => {
  if (event.target !== select) plotSelected();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  plotSelected();
});
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (lastPlot) drawPlot(lastPlot);
  }, 100);
});

export function startExplorer() {
  loadFunctions();
}
