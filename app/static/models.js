// The served models (GET /models): the picker, and every model's answer to
// the same drawing side by side, with the ones that disagree marked.

import { $ } from "./common.js";

const picker = $("model");
const compare = $("compare");
const cards = $("compare-cards");
const summary = $("compare-summary");
let models = []; // GET /models as last read; [] when it could not be read
let listed = ""; // its JSON, to rebuild the picker only when it changed

export function servedModels() {
  return models;
}

// The picked model's entry, or null when the server's list is unknown.
export function pickedModel() {
  return models.find((m) => m.name === picker.value) || null;
}

export function percent(accuracy) {
  return `${(100 * accuracy).toFixed(2)}%`;
}

// A link that opens the activation explorer on `name` (explorer.js listens).
export function activationLink(name) {
  const link = document.createElement("a");
  link.className = "act-link";
  link.href = `#activation=${encodeURIComponent(name)}`;
  link.dataset.activation = name;
  link.textContent = name;
  link.title = `Plot ${name} and its derivative in the activation explorer`;
  return link;
}

// Short enough for a phone's width; the line beside the picker says more.
function optionText(m) {
  const accuracy = m.test_accuracy === null ? "not measured" : percent(m.test_accuracy);
  return `${m.name} \u2014 ${m.hidden_activation}, ${accuracy}${m.default ? " (default)" : ""}`;
}

function showPickedInfo() {
  const m = pickedModel();
  const info = $("model-info");
  if (!m) {
    info.replaceChildren();
    return;
  }
  const parts = ["Hidden layers: ", activationLink(m.hidden_activation), ". "];
  parts.push(
    m.test_accuracy === null
      ? "Test accuracy not measured. "
      : `${percent(m.test_accuracy)} of the 10,000 MNIST test images right. `,
  );
  if (m.description) parts.push(m.description);
  info.replaceChildren(...parts);
}

// Reads GET /models and updates the picker. Keeps the picked model while it
// is served, else falls back to the default. Returns whether the list changed.
export async function loadModels() {
  let fresh;
  try {
    const response = await fetch("/models", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    fresh = await response.json();
    if (!Array.isArray(fresh)) throw new Error("not a list");
  } catch {
    // An older server, or none: the page still works on the default model.
    fresh = [];
  }
  const text = JSON.stringify(fresh);
  if (text === listed) return false;
  listed = text;
  const previous = picker.value;
  models = fresh.filter((m) => m && typeof m.name === "string" && m.ready !== false);
  picker.replaceChildren(
    ...models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = optionText(m);
      return option;
    }),
  );
  const keep = models.find((m) => m.name === previous);
  const fallback = models.find((m) => m.default) || models[0];
  if (keep || fallback) picker.value = (keep || fallback).name;
  $("model-bar").hidden = models.length === 0;
  picker.disabled = models.length < 2;
  // One model (or an unknown list): nothing to compare, so no panel at all.
  compare.hidden = models.length < 2;
  showPickedInfo();
  if (!compare.hidden && !cards.querySelector(".answered, .failed")) idleCards();
  return true;
}

picker.addEventListener("change", showPickedInfo);

// --- Comparison ---------------------------------------------------------

function card(m) {
  const box = document.createElement("article");
  box.className = "model-card";
  box.dataset.model = m.name;
  const head = document.createElement("header");
  const name = document.createElement("h4");
  name.textContent = m.name;
  const badges = document.createElement("span");
  badges.className = "badges";
  head.append(name, badges);
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.append(
    activationLink(m.hidden_activation),
    m.test_accuracy === null ? " \u00b7 not measured" : ` \u00b7 ${percent(m.test_accuracy)}`,
  );
  const body = document.createElement("div");
  body.className = "card-body";
  const label = document.createElement("output");
  label.className = "card-label";
  label.textContent = "\u2013";
  const bars = document.createElement("div");
  bars.className = "mini-bars";
  bars.setAttribute("role", "img");
  body.append(label, bars);
  const verdict = document.createElement("p");
  verdict.className = "verdict";
  box.append(head, meta, body, verdict);
  return box;
}

function cardOf(name) {
  return [...cards.children].find((c) => c.dataset.model === name) || null;
}

function setBadges(box, picked) {
  const m = models.find((x) => x.name === box.dataset.model);
  const badges = [];
  if (box.dataset.model === picked) badges.push("picked");
  if (m && m.default) badges.push("default");
  box.querySelector(".badges").replaceChildren(
    ...badges.map((text) => {
      const badge = document.createElement("span");
      badge.className = `badge ${text}`;
      badge.textContent = text;
      return badge;
    }),
  );
  box.classList.toggle("picked", box.dataset.model === picked);
}

// One card per served model, no answer yet.
export function idleCards(text = "Draw a digit: each model\u2019s answer appears here.") {
  cards.replaceChildren(...models.map(card));
  for (const box of cards.children) setBadges(box, picker.value);
  summary.textContent = text;
  summary.classList.remove("disagreement");
  delete compare.dataset.disagreements;
}

// A new question: every model's card waits for its answer.
export function beginComparison(names, picked) {
  if (compare.hidden) return;
  cards.replaceChildren(...names.map((n) => card(models.find((m) => m.name === n))));
  for (const box of cards.children) {
    setBadges(box, picked);
    box.classList.add("waiting");
    box.querySelector(".verdict").textContent = "Asking\u2026";
  }
  summary.textContent = `Asking ${names.length} models\u2026`;
  summary.classList.remove("disagreement");
  delete compare.dataset.disagreements;
}

export function showModelAnswer(name, answer) {
  const box = cardOf(name);
  if (!box) return;
  box.classList.remove("waiting");
  box.classList.add("answered");
  box.dataset.label = String(answer.label);
  box.querySelector(".card-label").textContent = String(answer.label);
  const bars = box.querySelector(".mini-bars");
  bars.replaceChildren(
    ...answer.probabilities.map((p, digit) => {
      const column = document.createElement("span");
      column.className = "column" + (digit === answer.label ? " top" : "");
      const track = document.createElement("span");
      track.className = "track";
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.height = `${Math.max(0, Math.min(100, 100 * p)).toFixed(2)}%`;
      track.append(bar);
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.textContent = String(digit);
      column.append(track, tick);
      return column;
    }),
  );
  const p = answer.probabilities[answer.label];
  bars.setAttribute(
    "aria-label",
    `${name}: ${answer.probabilities.map((v, d) => `${d}: ${(100 * v).toFixed(1)}%`).join(", ")}`,
  );
  box.querySelector(".verdict").textContent = `${(100 * p).toFixed(1)}% sure`;
}

export function showModelFailure(name, message) {
  const box = cardOf(name);
  if (!box) return;
  box.classList.remove("waiting");
  box.classList.add("failed");
  delete box.dataset.label;
  box.querySelector(".card-label").textContent = "\u2013";
  box.querySelector(".mini-bars").replaceChildren();
  const verdict = box.querySelector(".verdict");
  verdict.textContent = message;
  verdict.classList.add("error");
}

// The label the others are measured against: the one most models read, when
// exactly one label leads and at least two models share it; otherwise the
// picked model's. `labels` maps model name -> label for those that answered.
export function reference(labels, picked) {
  const counts = new Map();
  for (const label of labels.values()) counts.set(label, (counts.get(label) || 0) + 1);
  const top = Math.max(0, ...counts.values());
  const leaders = [...counts].filter(([, n]) => n === top).map(([label]) => label);
  if (leaders.length === 1 && top >= 2) return { label: leaders[0], by: "majority", count: top };
  if (labels.has(picked)) return { label: labels.get(picked), by: "picked", count: 1 };
  return null;
}

// Every answer is in: mark the models that disagree, and say it in words.
export function finishComparison(picked) {
  if (compare.hidden) return;
  const labels = new Map();
  const failed = [];
  for (const box of cards.children) {
    if (box.dataset.label !== undefined) labels.set(box.dataset.model, Number(box.dataset.label));
    else failed.push(box.dataset.model);
  }
  const ref = reference(labels, picked);
  const dissenters = [];
  for (const [name, label] of labels) {
    const box = cardOf(name);
    const differs = ref !== null && label !== ref.label;
    box.classList.toggle("disagrees", differs);
    box.classList.toggle("agrees", ref !== null && !differs);
    const verdict = box.querySelector(".verdict");
    if (!differs && ref !== null) verdict.textContent += ", agrees";
    if (differs) {
      dissenters.push(`${name} reads ${label}`);
      verdict.textContent =
        ref.by === "majority"
          ? `Disagrees: reads ${label}; ${ref.count} of ${labels.size} read ${ref.label}`
          : `Disagrees with ${picked}: reads ${label}, not ${ref.label}`;
    }
  }
  const n = cards.children.length;
  let text;
  if (labels.size === 0) {
    text = "No model could answer.";
  } else if (ref === null) {
    text = "The models that answered do not agree, and the picked one did not answer.";
  } else if (dissenters.length === 0) {
    text =
      labels.size === n
        ? `All ${n} models read ${ref.label}.`
        : `The ${labels.size} models that answered read ${ref.label}.`;
  } else if (ref.by === "majority") {
    text = `${ref.count} of ${labels.size} models read ${ref.label}; ${dissenters.join(", ")}.`;
  } else {
    text =
      `No majority; compared with the picked model, ${picked}, which reads ` +
      `${ref.label}: ${dissenters.join(", ")}.`;
  }
  if (failed.length && labels.size) text += ` ${failed.join(", ")} did not answer.`;
  summary.textContent = text;
  summary.classList.toggle("disagreement", dissenters.length > 0);
  compare.dataset.disagreements = String(dissenters.length);
}
