// The saliency map of /explain, drawn so it reads at a glance: smoothed,
// over the digit, orange for and blue against the chosen digit.

const POSITIVE = [232, 89, 12]; // orange: pushes towards the digit
const NEGATIVE = [28, 126, 214]; // blue: pushes away from it (safe for red-green blindness)

// A 3x3 binomial blur of a 28x28 map: pixel gradients are noisy from one
// pixel to the next, and a person reads regions, not single pixels.
function smooth(values) {
  const kernel = [1, 2, 1];
  const out = new Float64Array(784);
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) {
      let sum = 0;
      let weight = 0;
      for (let dr = -1; dr <= 1; dr++) {
        for (let dc = -1; dc <= 1; dc++) {
          const rr = r + dr;
          const cc = c + dc;
          if (rr < 0 || rr > 27 || cc < 0 || cc > 27) continue;
          const w = kernel[dr + 1] * kernel[dc + 1];
          sum += w * values[rr * 28 + cc];
          weight += w;
        }
      }
      out[r * 28 + c] = sum / weight;
    }
  }
  return out;
}

// The map to draw, in [-1, 1]. "evidence" is gradient x input: what each
// inked pixel contributed (zero where there is no ink); "gradient" is the
// raw gradient: where more ink would raise or lower the probability.
function saliencyMap(answer, mode) {
  const gradient = answer.saliency.flat();
  const ink = answer.input.flat();
  const raw = mode === "evidence" ? gradient.map((g, i) => g * ink[i]) : gradient;
  const map = smooth(raw);
  // Scale by a high percentile rather than the maximum, so that one extreme
  // pixel does not wash the rest out.
  const sizes = Array.from(map, Math.abs)
    .filter((v) => v > 0)
    .sort((a, b) => a - b);
  const scale = sizes.length ? sizes[Math.floor(0.98 * (sizes.length - 1))] : 1;
  return map.map((v) => Math.max(-1, Math.min(1, v / Math.max(scale, 1e-12))));
}

function imageCanvas(fill) {
  const c = document.createElement("canvas");
  c.width = 28;
  c.height = 28;
  const ctx = c.getContext("2d");
  const data = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) data.data.set(fill(i), 4 * i);
  ctx.putImageData(data, 0, 0);
  return c;
}

export function drawSaliency(canvas, answer, mode) {
  const ctx = canvas.getContext("2d");
  const ink = answer.input.flat();
  const map = saliencyMap(answer, mode);
  // The digit in gray on white, as drawn, then the colours over it; both
  // scaled up smoothly so the map reads as regions.
  const digit = imageCanvas((i) => {
    const g = Math.round(255 - 150 * Math.min(1, Math.max(0, ink[i])));
    return [g, g, g, 255];
  });
  const colours = imageCanvas((i) => {
    const v = map[i];
    const [r, g, b] = v >= 0 ? POSITIVE : NEGATIVE;
    return [r, g, b, Math.round(235 * Math.abs(v) ** 0.75)];
  });
  ctx.save();
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(digit, 0, 0, canvas.width, canvas.height);
  ctx.drawImage(colours, 0, 0, canvas.width, canvas.height);
  ctx.restore();
  canvas.dataset.mode = mode;
  canvas.dataset.target = String(answer.target);
}
