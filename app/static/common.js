// Helpers shared by the page's modules: DOM lookup, requests to this server,
// canvas sizing, axis ticks and a colour map.

export const $ = (id) => document.getElementById(id);

// Viridis, sampled at five stops: perceptually even, readable in gray.
const VIRIDIS = [
  [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
];

export function viridis(t) {
  const v = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(v));
  const f = v - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

// A failed request: `type` is the problem's slug (/problems/<slug>), or
// "network" when the server could not be reached at all.
export class RequestError extends Error {
  constructor(type, detail, requestId = null) {
    super(detail);
    this.type = type;
    this.requestId = requestId;
  }
}

async function requestError(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not a problem document (a proxy's page, say): the status still tells.
  }
  const slug = typeof body.type === "string" ? body.type.split("/").pop() : "";
  const detail = body.detail || body.title || `HTTP ${response.status}`;
  return new RequestError(slug || `http-${response.status}`, detail, body.request_id);
}

export async function fetchOrFail(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new RequestError("network", String(error.message || error));
  }
  if (!response.ok) throw await requestError(response);
  return response.json();
}

// A canvas whose backing store matches its CSS size on this screen.
export function fitCanvas(canvas) {
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

export function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return power * (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10);
}

export function formatTick(value, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const text = value.toFixed(Math.min(6, digits));
  return text === "-0" ? "0" : text;
}

export const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
