// mnist-serve's page: draw a digit, see what the picked network sees and
// thinks, compare every served network's answer, and explore the activation
// functions. Plain JavaScript modules, no build step, no CDN; it talks only to
// this server (GET /models, POST /predict, POST /explain, GET /activations).

import { $, FONT, fetchOrFail, fitCanvas, viridis } from "./common.js";
import { setServedModels, startExplorer } from "./explorer.js";
import {
  beginComparison,
  finishComparison,
  idleCards,
  loadModels,
  pickedModel,
  servedModels,
  showModelAnswer,
  showModelFailure,
} from "./models.js";
import { drawSaliency } from "./saliency.js";

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
let round = 0; // the same for the comparison: one round per input
let target = null; // digit chosen for the saliency map; null: the predicted one
let lastLogits = null;
let lastExplanation = null;

const FORMATS = "PNG, JPEG, GIF, BMP or WebP";
const HINT = "Draw a digit in the white box, or upload an image of one.";

// What to tell a person for each problem type of the API (app/errors.py):
// what went wrong and what to do, in their words, not the API's.
function plainMessage(error, fromUpload) {
  switch (error.type) {
    // The routes exist, so a 404 from /predict or /explain is about the model.
    case "not-found":
      return "This model is no longer served. Pick another one in the list above.";
    case "empty-image":
      return fromUpload
        ? "No digit found in this image: use one where the digit is darker or larger."
        : "No digit found: draw darker or larger.";
    case "undecodable-image":
    case "unsupported-media-type":
      return `This file is not an image the server can read. Upload a ${FORMATS} picture of one digit.`;
    case "unsupported-image-type":
      return `This image format is not supported. Save the picture as PNG or JPEG and upload it again.`;
    case "limit-exceeded":
    case "body-too-large":
      return "This image is too large. Crop it around the digit or make it smaller, then upload it again.";
    case "body-timeout":
      return "Sending the image took too long. Check your connection and try again.";
    case "unavailable":
      return "The server is busy or still starting. Wait a moment and try again.";
    case "network":
      return "Cannot reach the server. Check that mnist-serve is running, then try again.";
    case "internal-error":
      return (
        "Something went wrong on the server. Try again; if it keeps happening, report it" +
        (error.requestId ? ` with request id ${error.requestId}.` : ".")
      );
    default:
      return fromUpload
        ? "The server could not use this image. Try another picture, or draw the digit."
        : "The server could not use this drawing. Clear it and draw the digit again.";
  }
}

function setStatus(text, isError = false, detail = "") {
  status.textContent = text;
  status.classList.toggle("error", isError);
  $("status-detail").textContent = detail;
  $("status-details").hidden = !detail;
  $("status-details").open = false;
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

// Removes every trace of the last answer: after a failure nothing on screen
// may look like an answer to the new input.
function clearAnswer() {
  $("answer-title").textContent = "It thinks it is";
  labelOut.textContent = "\u2013";
  bars.replaceChildren();
  for (const id of ["seen", "saliency", "hidden1", "hidden2"]) {
    const c = $(id);
    c.getContext("2d").clearRect(0, 0, c.width, c.height);
    delete c.dataset.target;
  }
  drawLogits(null);
  lastExplanation = null;
  $("saliency-title").textContent = "Saliency";
  showLegend(null);
  document.body.classList.remove("pending");
}

function fail(error, fromUpload, model = null) {
  clearAnswer();
  const text =
    error.type === "not-found" && model !== null
      ? `\u201c${model}\u201d is no longer served. Pick another model in the list above.`
      : plainMessage(error, fromUpload);
  setStatus(text, true, error.message);
}

function clearAll() {
  sequence += 1;
  round += 1;
  hasInk = false;
  upload = null;
  target = null;
  resetPad();
  clearAnswer();
  if (servedModels().length > 1) idleCards();
  setStatus(HINT);
}

$("clear").addEventListener("click", clearAll);
$("predict").addEventListener("click", () => predict());
$("model").addEventListener("change", () => {
  target = null;
  if (hasInk) predict();
  else idleCards();
});

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files && event.target.files[0];
  event.target.value = "";
  if (!file) return;
  resetPad(); // the previous drawing is not the input any more
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    padCtx.imageSmoothingEnabled = scale < 4; // keep a 28x28 upload's pixels crisp
    padCtx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    bitmap.close();
  } catch {
    // Not shown here (HEIC on most browsers, or not an image at all): the
    // server decides, and its answer says what to do.
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

// The request body for the current input. The server tells image formats
// apart by their bytes, so a file whose type says "image/..." is sent as it
// is (up to the body limit); any other file (no extension, or not an image at
// all) goes as a multipart part, which the server reads by its bytes too.
async function currentBody() {
  if (!upload) return { body: await padBlob(), type: "image/png" };
  if (upload.type.startsWith("image/")) return { body: upload, type: upload.type };
  const form = new FormData();
  form.append("file", upload, upload.name);
  return { body: form, type: null }; // the browser writes the boundary
}

function post(path, { body, type }) {
  const headers = { Accept: "application/json" };
  if (type) headers["Content-Type"] = type;
  return fetchOrFail(path, { method: "POST", headers, body });
}

// `/predict` or `/explain` for one model (null: the server's default).
function modelQuery(path, model, extra = {}) {
  const query = new URLSearchParams(extra);
  if (model !== null) query.set("model", model);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// What a model's card says when it could not answer: short, in plain words.
function cardMessage(error) {
  switch (error.type) {
    case "not-found":
      return "This model is no longer served.";
    case "network":
      return "Cannot reach the server.";
    case "unavailable":
      return "Busy or still loading: try again.";
    case "empty-image":
      return "No digit found.";
    default:
      return `No answer: ${error.message}`;
  }
}

// Reads GET /models again: the picker and the next comparison offer only
// what is served now, and the explorer knows which model uses what.
async function refreshModels() {
  if (await loadModels()) setServedModels(servedModels());
}

// One request per served model, all sent at once; the picked model's answer
// (with the 28x28 it saw) fills the main answer and leads to /explain.
async function predict() {
  if (!hasInk) {
    setStatus("Draw a digit first, or upload an image of one.");
    return;
  }
  const mine = ++sequence;
  const myRound = ++round;
  const fromUpload = upload !== null;
  const picked = pickedModel()?.name ?? null;
  const names = servedModels().length > 1 ? servedModels().map((m) => m.name) : [picked];
  document.body.classList.add("pending");
  setStatus("Asking the network\u2026");
  let payload;
  try {
    payload = await currentBody();
  } catch (error) {
    if (mine === sequence) fail(error, fromUpload);
    return;
  }
  if (mine !== sequence) return;
  beginComparison(names, picked);
  const requests = names.map((name) => {
    const url = modelQuery("/predict", name, name === picked ? { return_input: "true" } : {});
    return post(url, payload).then(
      (answer) => {
        if (myRound === round) showModelAnswer(name, answer);
        return answer;
      },
      (error) => {
        if (myRound === round) showModelFailure(name, cardMessage(error));
        throw error;
      },
    );
  });
  const main = requests[names.indexOf(picked)];
  Promise.allSettled(requests).then(() => {
    if (myRound === round) finishComparison(picked);
    // Models come and go (poll mode, unload, a 404 just now): the next
    // drawing asks the models served then.
    refreshModels();
  });
  try {
    const answer = await main;
    if (mine !== sequence) return;
    showPrediction(answer);
    await explain(payload, mine, picked);
  } catch (error) {
    // The comparison keeps each model's own answer or failure to this input.
    if (mine === sequence) fail(error, fromUpload, picked);
  }
}

async function explain(payload, mine, model) {
  const answer = await post(
    modelQuery("/explain", model, target === null ? {} : { target: String(target) }),
    payload,
  );
  if (mine !== sequence) return;
  showExplanation(answer);
  document.body.classList.remove("pending");
  const p = answer.probabilities[answer.label];
  const who = servedModels().length > 1 && model !== null ? model : "The network";
  setStatus(`${who} reads a ${answer.label} (${(100 * p).toFixed(1)}% sure).`);
}

function showPrediction(answer) {
  const picked = pickedModel();
  $("answer-title").textContent =
    picked && servedModels().length > 1 ? `${picked.name} thinks it is` : "It thinks it is";
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
  const fromUpload = upload !== null;
  const model = pickedModel()?.name ?? null;
  try {
    await explain(await currentBody(), mine, model);
  } catch (error) {
    if (mine === sequence) fail(error, fromUpload, model);
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

// --- Saliency ------------------------------------------------------------

function saliencyMode() {
  return document.querySelector("input[name='saliency-mode']:checked").value;
}

function showLegend(digit) {
  const what = digit === null ? "it" : `\u201c${digit}\u201d`;
  $("legend-negative").textContent = `against ${what}`;
  $("legend-positive").textContent = `for ${what}`;
  const caption = $("saliency-caption");
  if (digit === null) {
    caption.textContent =
      "Which pixels of the 28\u00d728 input push the network towards a digit " +
      "(orange) or away from it (blue). Choose a digit among the probabilities " +
      "to ask \u201cwhy not this one?\u201d.";
  } else if (saliencyMode() === "evidence") {
    caption.textContent =
      `Your strokes, coloured by what they did: orange ink made the network ` +
      `more sure of ${what}, blue ink less sure (gradient \u00d7 input, ` +
      `lightly smoothed). Gray ink hardly mattered.`;
  } else {
    caption.textContent =
      `Where ink would change its mind: more ink on orange areas would raise ` +
      `the probability of ${what}, on blue areas lower it (the gradient, ` +
      `lightly smoothed).`;
  }
}

for (const radio of document.querySelectorAll("input[name='saliency-mode']")) {
  radio.addEventListener("change", () => {
    if (!lastExplanation) return;
    drawSaliency($("saliency"), lastExplanation, saliencyMode());
    showLegend(lastExplanation.target);
  });
}

// The colour scale of the hidden layers: the activation's own range, or for
// ReLU (unbounded above) 0 to the largest unit of this drawing.
function activationRange(activation, layers) {
  if (activation === "tanh") return [-1, 1];
  if (activation === "relu") return [0, Math.max(1e-6, ...layers.flat())];
  return [0, 1];
}

function drawStrip(canvas, title, values, [low, high]) {
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(values.length, 1);
  values.forEach((v, i) => data.data.set([...viridis((v - low) / (high - low)), 255], 4 * i));
  canvas.width = values.length;
  ctx.putImageData(data, 0, 0);
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const middle = (low + high) / 2;
  canvas.setAttribute(
    "aria-label",
    `${title}: ${values.length} activations, mean ${mean.toFixed(2)}, ` +
      `${values.filter((v) => v > middle).length} above ${Number(middle.toFixed(2))}`,
  );
}

function showLayers(hidden, activation) {
  const range = activationRange(activation, hidden);
  const last = hidden[hidden.length - 1];
  drawStrip($("hidden1"), `Hidden layer 1, ${activation}`, hidden[0], range);
  drawStrip($("hidden2"), `Hidden layer 2, ${activation}`, last, range);
  $("hidden1-units").textContent = `(${hidden[0].length} ${activation} units)`;
  $("hidden2-units").textContent = `(${last.length} ${activation} units)`;
  $("scale-low").textContent = String(Number(range[0].toFixed(2)));
  $("scale-high").textContent = String(Number(range[1].toFixed(2)));
  $("layer-formula").textContent = `h = ${activation}(x\u00b7W + b)`;
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
  lastExplanation = answer;
  drawGray($("seen"), answer.input);
  drawSaliency($("saliency"), answer, saliencyMode());
  showLegend(answer.target);
  showLayers(answer.hidden, pickedModel()?.hidden_activation ?? "sigmoid");
  drawLogits(answer.logits);
  $("saliency-title").textContent = `Saliency of \u201c${answer.target}\u201d`;
  $("saliency").setAttribute(
    "aria-label",
    `Saliency map of digit ${answer.target} over your digit: orange for, blue against`,
  );
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => drawLogits(lastLogits), 100);
});

// The list of models may change while the page is open (a model unloaded or
// added): read it again whenever the page comes back into view.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshModels();
});

resetPad();
drawLogits(null);
startExplorer();
refreshModels();
