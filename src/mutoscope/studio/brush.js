// The motion brush (Runway-style): paint up to five regions on the first frame and draw the path
// each one follows; optionally paint what must stay still.
//
// Each region keeps its own mask (an offscreen canvas, painted white) and a trajectory: points
// (x, y) in [0, 1] of the frame. The model moves a region by path(t) - path(0), so a path may start
// anywhere; starting it on the region reads best. The canvas has the model's aspect: the API
// center-crops keyframes and masks to it, so the background image is center-cropped the same way.
// `export()` gives what the API takes: a mask PNG per region (white = region, black elsewhere,
// uploaded by the caller) and its trajectory, at most 64 points.

import { $, $$, fillRange, h, radios } from "./ui.js";

export const REGION_COLORS = ["#8b5cf6", "#22d3ee", "#f59e0b", "#f472b6", "#34d399"];
export const STATIC = REGION_COLORS.length; // the index of the static-mask layer, after the regions
const STATIC_COLOR = "#94a3b8";
const MAX_POINTS = 64;
const LONG_SIDE = 256; // mask resolution along the frame's long side: finer than any latent grid
const HISTORY = 40; // undo steps kept

export class MotionBrush {
  constructor(canvas, { onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.tool = "paint"; // paint | erase | path
    this.radius = 14;
    this.active = 0;
    this.background = null;
    this.history = [];
    this.layers = null;
    this.setFrame(1, 1);
    this._bind();
  }

  setFrame(width, height) {
    // The model's frame aspect; a new aspect starts a new drawing (the old masks would not fit).
    const w = width >= height ? LONG_SIDE : Math.round((LONG_SIDE * width) / height);
    const hh = width >= height ? Math.round((LONG_SIDE * height) / width) : LONG_SIDE;
    if (this.layers && w === this.w && hh === this.h) return;
    this.w = w;
    this.h = hh;
    this.canvas.width = w;
    this.canvas.height = hh;
    this.canvas.style.aspectRatio = `${w} / ${hh}`;
    const layer = (color, isStatic = false) => ({ color, static: isStatic, mask: this._maskCanvas(), painted: false, path: [] });
    this.layers = [...REGION_COLORS.map((c) => layer(c)), layer(STATIC_COLOR, true)];
    this.history = [];
    this.draw();
  }

  _maskCanvas() {
    const c = document.createElement("canvas");
    c.width = this.w;
    c.height = this.h;
    c.getContext("2d", { willReadFrequently: true }); // undo snapshots read masks back
    return c;
  }

  setBackground(url) {
    if (!url) { this.background = null; this.draw(); return; }
    const img = new Image();
    img.onload = () => { this.background = img; this.draw(); };
    img.src = url;
  }

  setCrop(aspect) {
    // The output's aspect when it differs from the model's (the upscaler center-crops to it):
    // what lies outside is dimmed, since it will not be in the video.
    this.crop = aspect;
    this.draw();
  }

  select(i) {
    this.active = i;
    if (i === STATIC && this.tool === "path") this.tool = "paint"; // what stays still has no path
    this.draw();
    this.onChange();
  }

  setTool(tool) { this.tool = tool; this.canvas.dataset.tool = tool; }
  setRadius(r) { this.radius = r; }

  // ---------- history ----------

  _snapshot(indices) {
    // Remember these layers as they are now, so that one undo brings them back.
    this.history.push(indices.map((i) => {
      const l = this.layers[i];
      return { i, data: l.mask.getContext("2d").getImageData(0, 0, this.w, this.h), painted: l.painted, path: l.path.slice() };
    }));
    if (this.history.length > HISTORY) this.history.shift();
  }

  undo() {
    const step = this.history.pop();
    if (!step) return false;
    for (const s of step) {
      const l = this.layers[s.i];
      l.mask.getContext("2d").putImageData(s.data, 0, 0);
      l.painted = s.painted;
      l.path = s.path;
    }
    this.draw();
    this.onChange();
    return true;
  }

  canUndo() { return this.history.length > 0; }

  clear(i = this.active) {
    this._snapshot([i]);
    this._wipe(i);
    this.draw();
    this.onChange();
  }

  clearAll() {
    const used = this.layers.map((l, i) => i).filter((i) => this.layers[i].painted || this.layers[i].path.length);
    if (used.length) this._snapshot(used);
    used.forEach((i) => this._wipe(i));
    this.draw();
    this.onChange();
  }

  reset() { this.layers.forEach((_, i) => this._wipe(i)); this.history = []; this.draw(); this.onChange(); }

  _wipe(i) {
    const l = this.layers[i];
    l.mask.getContext("2d").clearRect(0, 0, this.w, this.h);
    l.painted = false;
    l.path = [];
  }

  // ---------- what was drawn ----------

  used() {
    // Motion regions with paint or a path: what the user has drawn so far.
    return this.layers.slice(0, STATIC).map((l, index) => ({ index, ...l })).filter((r) => r.painted || r.path.length);
  }

  hasStatic() { return this.layers[STATIC].painted; }

  isEmpty() { return this.used().length === 0 && !this.hasStatic(); }

  problems() {
    // Why the brush cannot be sent yet (a region needs both paint and a path of 2+ points).
    const out = [];
    for (const r of this.used()) {
      if (!r.painted) out.push(`Region ${r.index + 1} has a path but no painted area.`);
      else if (r.path.length < 2) out.push(`Region ${r.index + 1} needs a path: pick "Path" and drag from it.`);
    }
    if (this.hasStatic() && !this.used().length) out.push("Paint at least one moving region: a static area alone is not a motion brush.");
    return out;
  }

  async _png(layer) {
    const c = this._maskCanvas();
    const g = c.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, this.w, this.h);
    g.drawImage(layer.mask, 0, 0);
    return new Promise((res) => c.toBlob(res, "image/png"));
  }

  async export() {
    // {regions: [{index, blob (mask PNG), trajectory [[x, y], ...]}], staticBlob (or null)}.
    const regions = [];
    for (const r of this.used()) {
      if (!r.painted || r.path.length < 2) continue;
      regions.push({ index: r.index, blob: await this._png(r), trajectory: downsample(r.path, MAX_POINTS) });
    }
    const staticBlob = this.hasStatic() ? await this._png(this.layers[STATIC]) : null;
    return { regions, staticBlob };
  }

  // ---------- drawing ----------

  _bind() {
    let drawing = false;
    const point = (e) => {
      const b = this.canvas.getBoundingClientRect();
      const x = Math.min(1, Math.max(0, (e.clientX - b.left) / b.width));
      const y = Math.min(1, Math.max(0, (e.clientY - b.top) / b.height));
      return [x, y];
    };
    this.canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drawing = true;
      this.canvas.setPointerCapture(e.pointerId);
      this._snapshot([this.active]);
      const p = point(e);
      if (this.tool === "path") this.layers[this.active].path = [p];
      else this._stroke(p, p);
      this._last = p;
      this.draw();
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      const p = point(e);
      if (this.tool === "path") {
        const path = this.layers[this.active].path;
        const q = path[path.length - 1];
        if (Math.hypot(p[0] - q[0], p[1] - q[1]) > 0.01) path.push(p);
      } else {
        this._stroke(this._last, p);
      }
      this._last = p;
      this.draw();
    });
    const stop = () => {
      if (!drawing) return;
      drawing = false;
      const l = this.layers[this.active];
      if (this.tool === "erase") l.painted = hasPixels(l.mask); // erased to nothing: no area left
      this.onChange();
    };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
  }

  _stroke(a, b) {
    const l = this.layers[this.active];
    const g = l.mask.getContext("2d");
    g.globalCompositeOperation = this.tool === "erase" ? "destination-out" : "source-over";
    g.strokeStyle = g.fillStyle = "#fff";
    g.lineCap = "round";
    g.lineWidth = this.radius * 2 * (Math.max(this.w, this.h) / 256);
    g.beginPath();
    g.moveTo(a[0] * this.w, a[1] * this.h);
    g.lineTo(b[0] * this.w, b[1] * this.h);
    g.stroke();
    if (this.tool !== "erase") l.painted = true;
  }

  draw() {
    if (!this.layers) return;
    const { ctx, w, h } = this;
    ctx.clearRect(0, 0, w, h);
    if (this.background) {
      drawCover(ctx, this.background, w, h);
    } else {
      ctx.fillStyle = "#151922";
      ctx.fillRect(0, 0, w, h);
      ctx.strokeStyle = "rgba(255,255,255,0.05)";
      ctx.lineWidth = 1;
      for (let i = 1; i < 8; i++) {
        ctx.beginPath(); ctx.moveTo((i * w) / 8, 0); ctx.lineTo((i * w) / 8, h); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, (i * h) / 8); ctx.lineTo(w, (i * h) / 8); ctx.stroke();
      }
    }
    const scale = Math.max(w, h) / 256;
    if (this.crop) {
      const [a, b] = this.crop.split(":").map(Number);
      const cw = Math.min(w, (h * a) / b);
      const ch = Math.min(h, (w * b) / a);
      ctx.fillStyle = "rgba(5, 6, 10, 0.6)";
      ctx.fillRect(0, 0, w, (h - ch) / 2);
      ctx.fillRect(0, (h + ch) / 2, w, (h - ch) / 2);
      ctx.fillRect(0, 0, (w - cw) / 2, h);
      ctx.fillRect((w + cw) / 2, 0, (w - cw) / 2, h);
    }
    this.layers.forEach((l, i) => {
      if (l.painted) {
        // tint the white mask with the layer's colour (the static one hatched: it is a "pin")
        const tint = this._maskCanvas();
        const g = tint.getContext("2d");
        g.drawImage(l.mask, 0, 0);
        g.globalCompositeOperation = "source-in";
        g.fillStyle = l.static ? hatch(g) : l.color;
        g.fillRect(0, 0, w, h);
        ctx.globalAlpha = i === this.active ? 0.62 : 0.42;
        ctx.drawImage(tint, 0, 0);
        ctx.globalAlpha = 1;
      }
      if (l.path.length > 1) drawArrow(ctx, l.path.map(([x, y]) => [x * w, y * h]), l.color, scale);
      else if (l.path.length === 1) drawArrow(ctx, [[l.path[0][0] * w, l.path[0][1] * h]], l.color, scale);
    });
  }
}

export class BrushPanel {
  // The motion-brush section: region swatches, tools, the canvas, size, undo and clear.
  constructor(section, { onChange }) {
    this.section = section;
    this.onChange = onChange;
    this.brush = new MotionBrush($("#brush-canvas", section), { onChange: () => this._status() });
    const names = [...REGION_COLORS.map((_, i) => `Region ${i + 1}`), "Static area"];
    $("#brush-regions", section).append(...names.map((name, i) => h("button", {
      type: "button", role: "radio", class: `swatch${i === STATIC ? " swatch-static" : ""}`,
      style: { background: i === STATIC ? null : REGION_COLORS[i] }, "aria-checked": String(i === 0),
      "aria-label": i === STATIC ? "Static area: what must not move" : name, title: name, dataset: { value: i },
    }, i === STATIC ? "S" : String(i + 1))));
    this.region = radios($("#brush-regions", section), (v) => {
      this.brush.select(Number(v));
      const still = Number(v) === STATIC;
      $('#brush-tool [data-value="path"]', section).disabled = still;
      if (still && this.tool.get() === "path") this.tool.set("paint");
    });
    this.tool = radios($("#brush-tool", section), (v) => this.brush.setTool(v));
    const size = $("#brush-size", section);
    size.addEventListener("input", () => { this.brush.setRadius(Number(size.value)); fillRange(size); });
    fillRange(size);
    $("#brush-undo", section).addEventListener("click", () => this.brush.undo());
    $("#brush-clear", section).addEventListener("click", () => this.brush.clear());
    $("#brush-clear-all", section).addEventListener("click", () => this.brush.clearAll());
    this.brush.canvas.addEventListener("keydown", (e) => {
      if (e.key === "z" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.brush.undo(); }
    });
    this._status();
  }

  setFrame(width, height) { this.brush.setFrame(width, height); this._status(); }
  setCrop(aspect) { this.brush.setCrop(aspect); }
  setBackground(url) { this.brush.setBackground(url); }
  active() { return !this.brush.isEmpty(); }
  reset() { this.brush.reset(); this.region.set("0"); this.tool.set("paint"); }

  _status() {
    const used = this.brush.used();
    $$(".swatch", this.section).forEach((s, i) => s.classList.toggle("used",
      i === STATIC ? this.brush.hasStatic() : used.some((r) => r.index === i)));
    const parts = used.map((r) => `Region ${r.index + 1}: ${r.painted ? "painted" : "no area"}, ${r.path.length > 1 ? `path of ${r.path.length} points` : "no path"}`);
    if (this.brush.hasStatic()) parts.push("static area painted");
    $("#brush-status", this.section).textContent = parts.length ? `${parts.join(" · ")}.` : "Nothing painted yet.";
    $("#brush-undo", this.section).disabled = !this.brush.canUndo();
    this.onChange();
  }

  async body(api) {
    // {regions: [{mask, trajectory}], static_mask?}: the masks are uploaded first (POST /v1/uploads).
    const problems = this.brush.problems();
    if (problems.length) throw { title: "The motion brush is not finished", detail: problems.join(" "), section: this.section };
    const { regions, staticBlob } = await this.brush.export();
    const out = { regions: [] };
    for (const r of regions) {
      const up = await api.upload(r.blob, `region-${r.index + 1}.png`);
      out.regions.push({ mask: up.id, trajectory: r.trajectory });
    }
    if (staticBlob) out.static_mask = (await api.upload(staticBlob, "static.png")).id;
    return out;
  }
}

function hasPixels(canvas) {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
  return false;
}

function hatch(g) {
  // Diagonal stripes: a static area reads as "pinned", not as one more colour.
  const tile = document.createElement("canvas");
  tile.width = tile.height = 8;
  const t = tile.getContext("2d");
  t.fillStyle = "#475569";
  t.fillRect(0, 0, 8, 8);
  t.strokeStyle = STATIC_COLOR;
  t.lineWidth = 3;
  t.beginPath(); t.moveTo(-2, 10); t.lineTo(10, -2); t.stroke();
  return g.createPattern(tile, "repeat");
}

function drawCover(ctx, img, w, h) {
  // The image center-cropped to the canvas's aspect, as the API crops a keyframe to the model's.
  const s = Math.max(w / img.naturalWidth, h / img.naturalHeight);
  const sw = w / s;
  const sh = h / s;
  ctx.imageSmoothingEnabled = img.naturalWidth >= w; // small frames stay crisp pixels
  ctx.drawImage(img, (img.naturalWidth - sw) / 2, (img.naturalHeight - sh) / 2, sw, sh, 0, 0, w, h);
  ctx.imageSmoothingEnabled = true;
}

function drawArrow(ctx, pts, color, scale) {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = 3 * scale;
  ctx.lineJoin = ctx.lineCap = "round";
  ctx.shadowColor = "rgba(0,0,0,0.6)";
  ctx.shadowBlur = 4;
  ctx.beginPath();
  ctx.arc(pts[0][0], pts[0][1], 4 * scale, 0, Math.PI * 2);
  ctx.fill();
  if (pts.length < 2) { ctx.restore(); return; }
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
  const [x1, y1] = pts[pts.length - 1];
  const [x0, y0] = pts[Math.max(0, pts.length - 4)];
  const a = Math.atan2(y1 - y0, x1 - x0);
  const s = 10 * scale;
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - s * Math.cos(a - 0.45), y1 - s * Math.sin(a - 0.45));
  ctx.lineTo(x1 - s * Math.cos(a + 0.45), y1 - s * Math.sin(a + 0.45));
  ctx.closePath();
  ctx.fill();
  ctx.restore();
}

export function downsample(points, n) {
  // At most n points, evenly spaced along the list, keeping the first and the last.
  const round = ([x, y]) => [Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000];
  if (points.length <= n) return points.map(round);
  const out = [];
  for (let i = 0; i < n; i++) out.push(round(points[Math.round((i * (points.length - 1)) / (n - 1))]));
  return out;
}
