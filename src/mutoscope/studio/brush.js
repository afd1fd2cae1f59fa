// The motion brush: paint up to five regions on the first frame and draw the path each one follows.
//
// Each region keeps its own mask (an offscreen canvas, painted white) and a trajectory: points
// (x, y) in [0, 1] over the clip. `export()` turns them into what the API takes: a mask PNG per
// region (uploaded by the caller) and its trajectory, at most 64 points.

export const REGION_COLORS = ["#8b5cf6", "#22d3ee", "#f59e0b", "#f472b6", "#34d399"];
const MAX_POINTS = 64;

export class MotionBrush {
  constructor(canvas, { size = 256, onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.tool = "paint"; // paint | erase | path
    this.radius = 14;
    this.active = 0;
    this.background = null;
    this.resize(size, size);
    this.regions = REGION_COLORS.map((color) => ({ color, mask: this._maskCanvas(), painted: false, path: [] }));
    this._bind();
    this.draw();
  }

  resize(w, h) {
    this.w = w;
    this.h = h;
    this.canvas.width = w;
    this.canvas.height = h;
    if (this.regions) {
      for (const r of this.regions) { r.mask = this._maskCanvas(); r.painted = false; r.path = []; }
    }
    this.draw && this.draw();
  }

  _maskCanvas() {
    const c = document.createElement("canvas");
    c.width = this.w;
    c.height = this.h;
    return c;
  }

  setBackground(url) {
    if (!url) { this.background = null; this.draw(); return; }
    const img = new Image();
    img.onload = () => { this.background = img; this.draw(); };
    img.src = url;
  }

  select(i) { this.active = i; this.draw(); this.onChange(); }
  setTool(tool) { this.tool = tool; this.canvas.dataset.tool = tool; }
  setRadius(r) { this.radius = r; }

  clear(i = this.active) {
    const r = this.regions[i];
    r.mask.getContext("2d").clearRect(0, 0, this.w, this.h);
    r.painted = false;
    r.path = [];
    this.draw();
    this.onChange();
  }

  clearAll() { this.regions.forEach((_, i) => this.clear(i)); }

  used() {
    // Regions with paint or a path: what the user has drawn so far.
    return this.regions.map((r, i) => ({ index: i, ...r })).filter((r) => r.painted || r.path.length);
  }

  isEmpty() { return this.used().length === 0; }

  problems() {
    // Why the brush cannot be sent yet (a region needs both paint and a path of 2+ points).
    const out = [];
    for (const r of this.used()) {
      if (!r.painted) out.push(`Region ${r.index + 1} has a path but no painted area.`);
      else if (r.path.length < 2) out.push(`Region ${r.index + 1} needs a path: pick "Path" and drag.`);
    }
    return out;
  }

  async export() {
    // [{index, blob (mask PNG), trajectory [[x, y], ...]}] for every complete region.
    const out = [];
    for (const r of this.used()) {
      if (!r.painted || r.path.length < 2) continue;
      const c = this._maskCanvas();
      const g = c.getContext("2d");
      g.fillStyle = "#000";
      g.fillRect(0, 0, this.w, this.h);
      g.drawImage(r.mask, 0, 0);
      const blob = await new Promise((res) => c.toBlob(res, "image/png"));
      out.push({ index: r.index, blob, trajectory: downsample(r.path, MAX_POINTS) });
    }
    return out;
  }

  _bind() {
    let drawing = false;
    const point = (e) => {
      const b = this.canvas.getBoundingClientRect();
      const x = Math.min(1, Math.max(0, (e.clientX - b.left) / b.width));
      const y = Math.min(1, Math.max(0, (e.clientY - b.top) / b.height));
      return [x, y];
    };
    this.canvas.addEventListener("pointerdown", (e) => {
      drawing = true;
      this.canvas.setPointerCapture(e.pointerId);
      const p = point(e);
      if (this.tool === "path") this.regions[this.active].path = [p];
      else this._stroke(p, p);
      this._last = p;
      this.draw();
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      const p = point(e);
      if (this.tool === "path") {
        const path = this.regions[this.active].path;
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
      this.onChange();
    };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
  }

  _stroke(a, b) {
    const r = this.regions[this.active];
    const g = r.mask.getContext("2d");
    g.globalCompositeOperation = this.tool === "erase" ? "destination-out" : "source-over";
    g.strokeStyle = g.fillStyle = "#fff";
    g.lineCap = "round";
    g.lineWidth = this.radius * 2 * (this.w / 256);
    g.beginPath();
    g.moveTo(a[0] * this.w, a[1] * this.h);
    g.lineTo(b[0] * this.w, b[1] * this.h);
    g.stroke();
    if (this.tool !== "erase") r.painted = true;
  }

  draw() {
    if (!this.regions) return;
    const { ctx, w, h } = this;
    ctx.clearRect(0, 0, w, h);
    if (this.background) {
      ctx.drawImage(this.background, 0, 0, w, h);
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
    this.regions.forEach((r, i) => {
      if (r.painted) {
        // tint the white mask with the region's colour
        const tint = this._maskCanvas();
        const g = tint.getContext("2d");
        g.drawImage(r.mask, 0, 0);
        g.globalCompositeOperation = "source-in";
        g.fillStyle = r.color;
        g.fillRect(0, 0, w, h);
        ctx.globalAlpha = i === this.active ? 0.6 : 0.4;
        ctx.drawImage(tint, 0, 0);
        ctx.globalAlpha = 1;
      }
      if (r.path.length > 1) drawArrow(ctx, r.path.map(([x, y]) => [x * w, y * h]), r.color, w / 256);
    });
  }
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
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(pts[0][0], pts[0][1], 4 * scale, 0, Math.PI * 2);
  ctx.fill();
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
