// mnist-serve's page: draw a digit, see what the network sees and thinks, and
// explore the activation functions. Plain JavaScript, no build step, no CDN;
// it talks only to this server (POST /predict, POST /explain, GET /activations).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // --- Helpers -------------------------------------------------------------

  // Viridis, sampled at five stops: perceptually even, readable in gray.
  const VIRIDIS = [
    [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
  ];

  function viridis(t) {
    const v = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(v));
    const f = v - i;
    return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
  }

  async function problemDetail(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || `HTTP ${response.status}`;
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  // A canvas whose backing store matches its CSS size on this screen.
  function fitCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { ctx, width: canvas.clientWidth, height: canvas.clientHeight };
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = 10 ** Math.floor(Math.log10(raw));
    const unit = raw / power;
    return power * (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10);
  }

  function formatTick(value, step) {
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const text = value.toFixed(Math.min(6, digits));
    return text === "-0" ? "0" : text;
  }

  const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

  // --- Drawing pad ---------------------------------------------------------

  const pad = $("canvas");
  const padCtx = pad.getContext("2d");
  const status = $("status");
  const labelOut = $("label");
  const bars = $("probabilities");
  let hasInk = false;
  let upload = null; // the uploaded file, used as it is until the next stroke
  let drawing = null; // {id, x, y} while a pointer is down
  let sequence = 0; // answers to older requests are dropped
  let target = null; // digit chosen for the saliency map; null: the predicted one
  let lastLogits = null;

  function setStatus(text, isError = false) {
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  function resetPad() {
    padCtx.fillStyle = "#fff";
    padCtx.fillRect(0, 0, pad.width, pad.height);
    padCtx.lineCap = "round";
    padCtx.lineJoin = "round";
    padCtx.strokeStyle = "#111";
    padCtx.fillStyle = "#111";
    // About 1/14 of the box: a digit drawn to fill most of it gets strokes as
    // thick, relative to its height, as MNIST's.
    padCtx.lineWidth = pad.width / 14;
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * pad.width,
      y: ((event.clientY - rect.top) / rect.height) * pad.height,
    };
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    upload = null; // drawing over an upload: the canvas is the input now
    target = null; // a new drawing: explain its predicted digit again
    const p = padPoint(event);
    drawing = { id: event.pointerId, ...p };
    padCtx.beginPath();
    padCtx.arc(p.x, p.y, padCtx.lineWidth / 2, 0, 2 * Math.PI);
    padCtx.fill();
    hasInk = true;
  });

  pad.addEventListener("pointermove", (event) => {
    if (!drawing || event.pointerId !== drawing.id) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    padCtx.beginPath();
    padCtx.moveTo(drawing.x, drawing.y);
    for (const e of events.length ? events : [event]) {
      const p = padPoint(e);
      padCtx.lineTo(p.x, p.y);
      drawing.x = p.x;
      drawing.y = p.y;
    }
    padCtx.stroke();
  });

  function endStroke(event) {
    if (!drawing || event.pointerId !== drawing.id) return;
    drawing = null;
    predict();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  function clearAll() {
    sequence += 1;
    hasInk = false;
    upload = null;
    target = null;
    resetPad();
    labelOut.textContent = "\u2013";
    bars.replaceChildren();
    for (const id of ["seen", "saliency", "hidden1", "hidden2"]) {
      const c = $(id);
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
    }
    drawLogits(null);
    $("saliency-title").textContent = "Saliency";
    setStatus("Draw a digit in the white box, or upload a PNG.");
  }

  $("clear").addEventListener("click", clearAll);
  $("predict").addEventListener("click", () => predict());

  $("upload").addEventListener("change", async (event) => {
    const file = event.target.files && event.target.files[0];
    event.target.value = "";
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      resetPad();
      const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
      const w = bitmap.width * scale;
      const h = bitmap.height * scale;
      padCtx.imageSmoothingEnabled = scale < 4; // keep a 28x28 upload's pixels crisp
      padCtx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      bitmap.close();
    } catch {
      setStatus(`${file.name}: the browser cannot show this file; the server will try it.`);
    }
    upload = file;
    hasInk = true;
    target = null;
    predict();
  });

  function padBlob() {
    return new Promise((resolve, reject) => {
      pad.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("no PNG"))), "image/png");
    });
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": body.type || "image/png", Accept: "application/json" },
      body,
    });
    if (!response.ok) throw new Error(await problemDetail(response));
    return response.json();
  }

  async function predict() {
    if (!hasInk) {
      setStatus("Draw a digit first (or upload a PNG).");
      return;
    }
    const mine = ++sequence;
    setStatus("Asking the network\u2026");
    try {
      const body = upload || (await padBlob());
      const answer = await post("/predict?return_input=true", body);
      if (mine !== sequence) return;
      showPrediction(answer);
      await explain(body, mine);
    } catch (error) {
      if (mine === sequence) setStatus(error.message, true);
    }
  }

  async function explain(body, mine) {
    const query = target === null ? "" : `?target=${target}`;
    const answer = await post(`/explain${query}`, body);
    if (mine !== sequence) return;
    showExplanation(answer);
    const p = answer.probabilities[answer.label];
    setStatus(`The network reads a ${answer.label} (${(100 * p).toFixed(1)}% sure).`);
  }

  function showPrediction(answer) {
    labelOut.textContent = String(answer.label);
    const rows = answer.probabilities.map((p, digit) => {
      const row = document.createElement("button");
      row.type = "button";
      row.className = "prob" + (digit === answer.label ? " top" : "");
      row.dataset.digit = String(digit);
      row.setAttribute("aria-pressed", String(digit === (target ?? answer.label)));
      row.setAttribute("aria-label", `${digit}: ${(100 * p).toFixed(1)} percent; show its saliency map`);
      const name = document.createElement("span");
      name.className = "digit";
      name.textContent = String(digit);
      const track = document.createElement("span");
      track.className = "track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.max(0, Math.min(100, 100 * p)).toFixed(2)}%`;
      track.append(bar);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${(100 * p).toFixed(1)}%`;
      row.append(name, track, pct);
      return row;
    });
    bars.replaceChildren(...rows);
    drawGray($("seen"), answer.input);
  }

  bars.addEventListener("click", async (event) => {
    const row = event.target.closest(".prob");
    if (!row || !hasInk) return;
    target = Number(row.dataset.digit);
    for (const r of bars.children) r.setAttribute("aria-pressed", String(r === row));
    const mine = ++sequence;
    try {
      await explain(upload || (await padBlob()), mine);
    } catch (error) {
      if (mine === sequence) setStatus(error.message, true);
    }
  });

  // --- What the network saw, and inside it ----------------------------------

  function drawGray(canvas, image) {
    const ctx = canvas.getContext("2d");
    const data = ctx.createImageData(28, 28);
    image.flat().forEach((v, i) => {
      const g = Math.round(255 * Math.min(1, Math.max(0, v)));
      data.data.set([g, g, g, 255], 4 * i);
    });
    ctx.putImageData(data, 0, 0);
  }

  function drawSaliency(canvas, image, saliency) {
    const ctx = canvas.getContext("2d");
    const cell = canvas.width / 28;
    const flat = saliency.flat();
    const peak = Math.max(1e-12, ...flat.map(Math.abs));
    const ink = image.flat();
    const pos = [232, 89, 12];
    const neg = [28, 126, 214];
    flat.forEach((g, i) => {
      const base = 22 + 90 * ink[i]; // the digit, dimmed, under the colours
      const a = Math.min(1, (1.25 * Math.abs(g)) / peak);
      const c = g >= 0 ? pos : neg;
      const rgb = c.map((v) => Math.round(base + a * (v - base)));
      ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
      ctx.fillRect((i % 28) * cell, Math.floor(i / 28) * cell, cell, cell);
    });
  }

  function drawStrip(canvas, values) {
    const ctx = canvas.getContext("2d");
    const data = ctx.createImageData(values.length, 1);
    values.forEach((v, i) => data.data.set([...viridis(v), 255], 4 * i));
    canvas.width = values.length;
    ctx.putImageData(data, 0, 0);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    canvas.setAttribute(
      "aria-label",
      `${values.length} activations, mean ${mean.toFixed(2)}, ` +
        `${values.filter((v) => v > 0.5).length} above 0.5`,
    );
  }

  function drawLogits(logits) {
    lastLogits = logits;
    const canvas = $("logits");
    const { ctx, width, height } = fitCanvas(canvas);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;
    const left = 34;
    const bottom = height - 20;
    const top = 8;
    const limit = logits ? Math.max(1, ...logits.map(Math.abs)) : 10;
    const zero = top + (bottom - top) / 2;
    const scale = (bottom - top) / 2 / limit;
    ctx.fillStyle = "#4a505c";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(`+${limit.toFixed(0)}`, left - 6, top + 4);
    ctx.fillText("0", left - 6, zero);
    ctx.fillText(`\u2212${limit.toFixed(0)}`, left - 6, bottom - 4);
    ctx.strokeStyle = "#9aa1ad";
    ctx.beginPath();
    ctx.moveTo(left, zero + 0.5);
    ctx.lineTo(width, zero + 0.5);
    ctx.stroke();
    const slot = (width - left) / 10;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let d = 0; d < 10; d++) {
      const x = left + d * slot;
      ctx.fillStyle = "#1a1c20";
      ctx.fillText(String(d), x + slot / 2, bottom + 5);
      if (!logits) continue;
      const h = logits[d] * scale;
      ctx.fillStyle = logits[d] >= 0 ? "#0b57d0" : "#8a94a6";
      ctx.fillRect(x + slot * 0.2, h >= 0 ? zero - h : zero, slot * 0.6, Math.abs(h));
    }
    canvas.setAttribute(
      "aria-label",
      logits ? `Logits: ${logits.map((v, d) => `${d}: ${v.toFixed(1)}`).join(", ")}` : "Logits",
    );
  }

  function showExplanation(answer) {
    drawGray($("seen"), answer.input);
    drawSaliency($("saliency"), answer.input, answer.saliency);
    drawStrip($("hidden1"), answer.hidden[0]);
    drawStrip($("hidden2"), answer.hidden[answer.hidden.length - 1]);
    drawLogits(answer.logits);
    $("saliency-title").textContent = `Saliency of \u201c${answer.target}\u201d`;
    $("saliency").setAttribute(
      "aria-label",
      `Saliency map of digit ${answer.target} over the 28 by 28 input`,
    );
  }

  // --- Activation explorer -------------------------------------------------

  const form = $("explorer");
  const select = $("act-name");
  const paramBox = $("act-params");
  const plot = $("plot");
  const actStatus = $("act-status");
  let functions = [];
  let lastPlot = null;
  let plotSequence = 0;

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
  }

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
      if (input.name === "k") num = Math.floor(num / Number(input.value)) * Number(input.value);
    }
    query.set("num", String(num));
    const mine = ++plotSequence;
    try {
      const response = await fetch(`/activations/${encodeURIComponent(fn.name)}?${query}`);
      if (!response.ok) throw new Error(await problemDetail(response));
      const data = await response.json();
      if (mine !== plotSequence) return;
      lastPlot = data;
      drawPlot(data);
      setActStatus("");
    } catch (error) {
      if (mine === plotSequence) setActStatus(error.message, true);
    }
  }

  function drawPlot(data) {
    const { ctx, width, height } = fitCanvas(plot);
    const m = { left: 52, right: 16, top: 30, bottom: 40 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;

    const xs = data.x;
    // maxout gives one y per group of k points: plot it at the group's centre.
    const k = xs.length / data.y.length;
    const yx = data.y.map((_, i) => xs.slice(i * k, (i + 1) * k).reduce((s, v) => s + v, 0) / k);
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
    const yColor = "#0b57d0";
    const dyColor = "#d9480f";
    curve(xs, data.dy, dyColor, [7, 5]);
    curve(yx, data.y, yColor, []);

    // Legend.
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.lineWidth = 2.5;
    const legend = [
      [`y = ${data.name}(x)`, yColor, []],
      ["dy/dx", dyColor, [7, 5]],
    ];
    let lx = m.left;
    for (const [text, color, dash] of legend) {
      ctx.strokeStyle = color;
      ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.moveTo(lx, 14);
      ctx.lineTo(lx + 26, 14);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#1a1c20";
      ctx.fillText(text, lx + 32, 14);
      lx += 32 + ctx.measureText(text).width + 24;
    }

    plot.dataset.name = data.name;
    plot.dataset.points = String(xs.length);
    plot.setAttribute(
      "aria-label",
      `Plot of ${data.name} and its derivative for x from ${x0} to ${x1}`,
    );
  }

  async function loadFunctions() {
    try {
      const response = await fetch("/activations");
      if (!response.ok) throw new Error(await problemDetail(response));
      functions = await response.json();
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
      drawLogits(lastLogits);
    }, 100);
  });

  resetPad();
  drawLogits(null);
  loadFunctions();
})();
