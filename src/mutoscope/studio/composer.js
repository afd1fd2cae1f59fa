// The composer: prompt, parameters and controls (keyframes, camera, motion brush) -> POST /v1/generations.
//
// Controls are always offered. Where GET /v1/models says the model lacks one, its section carries
// a "preview" badge, and the API's 422 (`generation.<control>.unsupported`) is shown in that section.

import { newKey } from "./api.js";
import { MotionBrush, REGION_COLORS } from "./brush.js";
import { $, $$, fillRange, fmtSeconds, h, icon, radios, toast } from "./ui.js";

const EXAMPLES = [
  ["Bouncing ball", "A red ball bounces on a gray checkerboard"],
  ["Night glide", "Two blue squares glide to the left under a starry night sky"],
  ["Wave + pan", "A stick figure waves while the camera pans right"],
];
const CAMERA_PRESETS = [
  ["static", "Static"], ["pan_left", "Pan ←"], ["pan_right", "Pan →"], ["orbit", "Orbit"],
  ["tilt_up", "Tilt ↑"], ["tilt_down", "Tilt ↓"], ["zoom_in", "Zoom in"], ["zoom_out", "Zoom out"],
];
const AXES = ["horizontal", "vertical", "pan", "tilt", "roll", "zoom"];
const ASPECTS = ["1:1", "16:9", "9:16"];
const CONTROL_NAMES = { keyframes: "keyframes", camera: "camera control", motion_brush: "the motion brush" };

export class Composer {
  constructor({ api, onQueued, getCredits }) {
    this.api = api;
    this.onQueued = onQueued;
    this.getCredits = getCredits;
    this.caps = null;
    this.costs = null;
    this.keyframes = { first: null, last: null }; // {id, url}
    this.form = $("#compose");
    this._build();
  }

  _build() {
    const f = this.form;
    this.prompt = $("#prompt");
    this.prompt.addEventListener("input", () => {
      $("#prompt-count").textContent = `${this.prompt.value.length} / 2000`;
      this._alert($("#prompt-alert"), null);
    });
    this.prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });
    $("#examples").append(h("span", { class: "examples-label" }, "Try"), ...EXAMPLES.map(([label, text]) => h("button", {
      type: "button", class: "chip", title: text, "aria-label": `Example: ${text}`,
      onclick: () => { this.prompt.value = text; this.prompt.dispatchEvent(new Event("input")); this.prompt.focus(); },
    }, label)));

    for (const [id, fmt] of [["seconds", fmtSeconds], ["guidance", (v) => Number(v).toFixed(1)]]) {
      const input = $(`#${id}`);
      const out = $(`#${id}-out`);
      const update = () => { out.textContent = fmt(input.value); fillRange(input); this._cost(); };
      input.addEventListener("input", update);
      update();
    }
    $("#seed-dice").addEventListener("click", () => { $("#seed").value = Math.floor(Math.random() * 2 ** 31); });
    this.takes = radios($("#takes"), () => this._cost());
    this.aspect = null;

    // keyframes
    for (const zone of $$(".dropzone")) this._dropzone(zone);
    $("#kf-loop").addEventListener("change", () => this._indicators());

    // camera
    this.cameraMode = radios($("#camera-mode"), (mode) => {
      $("#camera-presets").hidden = mode !== "preset";
      $("#camera-axes").hidden = mode !== "axes";
      this._indicators();
    });
    $("#camera-presets").append(...CAMERA_PRESETS.map(([value, label]) =>
      h("button", { type: "button", role: "radio", class: "chip", "aria-checked": String(value === "static"), dataset: { value } }, label)));
    this.cameraPreset = radios($("#camera-presets"), () => this._indicators());
    $("#camera-axes").append(...AXES.map((name) => {
      const input = h("input", { type: "range", min: -10, max: 10, step: 0.5, value: 0, id: `axis-${name}`, "data-axis": name });
      const out = h("output", { class: "value", for: `axis-${name}` }, "0");
      input.addEventListener("input", () => { out.textContent = input.value; fillRange(input); this._indicators(); });
      fillRange(input);
      return h("div", { class: "field" }, h("label", { for: `axis-${name}` }, name[0].toUpperCase() + name.slice(1), out), input);
    }));

    // motion brush
    this.brush = new MotionBrush($("#brush-canvas"), { onChange: () => this._brushStatus() });
    $("#brush-regions").append(...REGION_COLORS.map((color, i) =>
      h("button", { type: "button", role: "radio", class: "swatch", style: { background: color },
        "aria-checked": String(i === 0), "aria-label": `Region ${i + 1}`, dataset: { value: i } }, String(i + 1))));
    this.brushRegion = radios($("#brush-regions"), (v) => this.brush.select(Number(v)));
    this.brushTool = radios($("#brush-tool"), (v) => this.brush.setTool(v));
    $("#brush-size").addEventListener("input", (e) => { this.brush.setRadius(Number(e.target.value)); fillRange(e.target); });
    fillRange($("#brush-size"));
    $("#brush-clear").addEventListener("click", () => this.brush.clear());
    $("#brush-clear-all").addEventListener("click", () => this.brush.clearAll());
    this._brushStatus();

    $("#reset-form").addEventListener("click", () => this.reset());
    f.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
  }

  setModel(model, costs) {
    // Fit ranges and defaults to what the model can do (GET /v1/models).
    this.model = model;
    this.caps = model ? model.capabilities : null;
    this.costs = costs;
    const caps = this.caps || {};
    const seconds = $("#seconds");
    seconds.min = 0.5;
    seconds.step = 0.5;
    seconds.max = Math.max(0.5, Math.min(caps.max_seconds || 10, 20));
    if (Number(seconds.value) > Number(seconds.max)) seconds.value = seconds.max;
    const steps = $("#steps");
    steps.max = caps.max_steps || 500;
    if (!this._touchedDefaults) {
      steps.value = caps.default_steps || 20;
      $("#guidance").value = caps.default_guidance ?? 5;
      this._touchedDefaults = true;
    }
    for (const id of ["seconds", "guidance"]) $(`#${id}`).dispatchEvent(new Event("input"));

    const supported = caps.aspects && caps.aspects.length ? caps.aspects : ["1:1"];
    const group = $("#aspect");
    group.replaceChildren(...[...new Set([...supported, ...ASPECTS])].slice(0, 3).map((a) =>
      h("button", { type: "button", role: "radio", dataset: { value: a }, "aria-checked": String(a === supported[0]),
        class: supported.includes(a) ? "" : "unsupported",
        title: supported.includes(a) ? `${a}` : `${a}: not offered by this model yet` }, a)));
    this.aspect = radios(group);

    for (const section of $$("details[data-control]")) {
      const ok = !!(caps.controls && caps.controls[section.dataset.control]);
      const badge = $(".badge", section);
      badge.hidden = ok;
      badge.title = ok ? "" : `The current model does not support ${CONTROL_NAMES[section.dataset.control]} yet`;
    }
    this._cost();
  }

  _cost() {
    const out = $("#cost-estimate");
    if (!this.costs) { out.textContent = ""; return; }
    const rate = (this.costs.rate_per_second || {}).base ?? 1;
    const takes = Number(this.takes.get() || 1);
    const cost = Math.ceil(Number($("#seconds").value)) * rate * takes;
    out.replaceChildren("Cost ", h("strong", {}, `${cost} credit${cost === 1 ? "" : "s"}`), takes > 1 ? ` (${takes} takes)` : "");
    const bal = this.getCredits();
    $("#cost-balance").textContent = bal === null ? "" : `${bal} available`;
  }

  refreshCost() { this._cost(); }

  _dropzone(zone) {
    const slot = zone.dataset.slot;
    const input = $("input", zone);
    const img = $("img", zone);
    const clear = $(".dz-clear", zone);
    const set = (entry) => {
      this.keyframes[slot] = entry;
      img.hidden = !entry;
      clear.hidden = !entry;
      $(".dz-empty", zone).hidden = !!entry;
      if (entry) img.src = entry.url;
      if (slot === "first") this.brush.setBackground(entry ? entry.url : null);
      this._indicators();
    };
    const upload = async (file) => {
      if (!file) return;
      zone.classList.add("busy");
      this._alert($(".inline-alert", $("#sec-keyframes")), null);
      try {
        const up = await this.api.upload(file, file.name);
        set({ id: up.id, url: URL.createObjectURL(file) });
      } catch (p) {
        this._alert($(".inline-alert", $("#sec-keyframes")), p);
      } finally {
        zone.classList.remove("busy");
        input.value = "";
      }
    };
    input.addEventListener("change", () => upload(input.files[0]));
    clear.addEventListener("click", (e) => { e.preventDefault(); set(null); });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("drag"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("drag"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("drag"); upload(e.dataTransfer.files[0]); });
  }

  _brushStatus() {
    const used = this.brush.used();
    $$(".swatch").forEach((s, i) => s.classList.toggle("used", used.some((r) => r.index === i)));
    const parts = used.map((r) => `Region ${r.index + 1}: ${r.painted ? "painted" : "no area"}, ${r.path.length > 1 ? `path of ${r.path.length} points` : "no path"}`);
    $("#brush-status").textContent = parts.length ? parts.join(" · ") : "Nothing painted yet.";
    this._indicators();
  }

  _indicators() {
    const on = {
      keyframes: !!(this.keyframes.first || this.keyframes.last),
      camera: this.cameraMode && this.cameraMode.get() !== "off",
      motion_brush: this.brush && !this.brush.isEmpty(),
    };
    for (const section of $$("details[data-control]")) {
      $(".on-dot", section).hidden = !on[section.dataset.control];
      if (!on[section.dataset.control]) {
        section.classList.remove("error", "warn");
        this._alert($(".inline-alert", section), null);
      }
    }
  }

  _alert(box, problem, { warn = false } = {}) {
    if (!problem) { box.hidden = true; box.replaceChildren(); return; }
    box.classList.toggle("warn", warn);
    box.replaceChildren(icon("alert"), h("div", {},
      h("strong", {}, problem.title || "Something went wrong"),
      problem.detail || problem.message || "",
      problem.code ? h("code", { class: "error-code" }, problem.code) : null));
    box.hidden = false;
  }

  reset() {
    this.form.reset();
    this.keyframes = { first: null, last: null };
    for (const zone of $$(".dropzone")) $(".dz-clear", zone).click();
    this.brush.clearAll();
    this.cameraMode.set("off");
    this._touchedDefaults = false;
    this.setModel(this.model, this.costs);
    this.prompt.dispatchEvent(new Event("input"));
  }

  fill(params) {
    // "Reuse parameters": put a generation's request back into the form.
    this.prompt.value = params.prompt || "";
    $("#negative").value = params.negative_prompt || "";
    $("#seed").value = params.seed ?? "";
    if (params.seconds) $("#seconds").value = params.seconds;
    if (params.guidance !== undefined) $("#guidance").value = params.guidance;
    if (params.steps) $("#steps").value = params.steps;
    if (params.aspect && this.aspect) this.aspect.set(params.aspect);
    const cam = params.camera;
    if (cam && cam.preset) { this.cameraMode.set("preset"); this.cameraPreset.set(cam.preset); }
    else if (cam && cam.axes) {
      this.cameraMode.set("axes");
      for (const a of AXES) { const input = $(`#axis-${a}`); input.value = cam.axes[a] || 0; input.dispatchEvent(new Event("input")); }
    } else this.cameraMode.set("off");
    for (const id of ["seconds", "guidance"]) $(`#${id}`).dispatchEvent(new Event("input"));
    this.prompt.dispatchEvent(new Event("input"));
    $(".composer").scrollTo({ top: 0, behavior: "smooth" });
    this.prompt.focus();
  }

  async _controls() {
    // The optional control fields; uploads the brush masks first.
    const body = {};
    if (this.keyframes.first || this.keyframes.last) {
      body.keyframes = { loop: $("#kf-loop").checked };
      if (this.keyframes.first) body.keyframes.first = this.keyframes.first.id;
      if (this.keyframes.last) body.keyframes.last = this.keyframes.last.id;
    }
    const mode = this.cameraMode.get();
    if (mode === "preset") body.camera = { preset: this.cameraPreset.get() || "static" };
    if (mode === "axes") body.camera = { axes: Object.fromEntries(AXES.map((a) => [a, Number($(`#axis-${a}`).value)])) };
    if (!this.brush.isEmpty()) {
      const problems = this.brush.problems();
      if (problems.length) {
        $("#sec-brush").open = true;
        throw { title: "The motion brush is not finished", detail: problems.join(" "), section: $("#sec-brush") };
      }
      const regions = [];
      for (const r of await this.brush.export()) {
        const up = await this.api.upload(r.blob, `region-${r.index + 1}.png`);
        regions.push({ mask: up.id, trajectory: r.trajectory });
      }
      body.motion_brush = { regions };
    }
    return body;
  }

  async submit() {
    const prompt = this.prompt.value.trim();
    if (!prompt) {
      this._alert($("#prompt-alert"), { title: "Describe your video first", detail: "The prompt is what the model follows." }, { warn: true });
      this.prompt.focus();
      return;
    }
    const button = $("#generate");
    button.disabled = true;
    const label = $("span", button);
    label.textContent = "Submitting…";
    button.prepend(h("span", { class: "spinner", "aria-hidden": "true" }));
    $$("details[data-control]").forEach((s) => { s.classList.remove("error", "warn"); this._alert($(".inline-alert", s), null); });
    this._alert($("#prompt-alert"), null);
    try {
      const body = {
        prompt,
        seconds: Number($("#seconds").value),
        guidance: Number($("#guidance").value),
        steps: Math.round(Number($("#steps").value)) || undefined,
        ...(await this._controls()),
      };
      const negative = $("#negative").value.trim();
      if (negative) body.negative_prompt = negative;
      if (this.aspect && this.aspect.get()) body.aspect = this.aspect.get();
      const seedText = $("#seed").value.trim();
      const takes = Number(this.takes.get() || 1);
      const made = [];
      for (let i = 0; i < takes; i++) {
        const one = { ...body };
        if (seedText !== "") one.seed = Number(seedText) + i; // else the server draws (and records) one
        made.push(await this.api.create(one, newKey()));
      }
      this.onQueued(made); // the queue panel shows them: no toast needed
    } catch (p) {
      this.showProblem(p);
    } finally {
      button.disabled = false;
      label.textContent = "Generate";
      $(".spinner", button)?.remove();
    }
  }

  showProblem(p) {
    // Put an API problem where the user will look for it.
    const code = p.code || "";
    if (p.section) {
      p.section.classList.add("error");
      const box = $(".inline-alert", p.section);
      this._alert(box, p);
      box.scrollIntoView({ block: "center", behavior: "smooth" });
      return;
    }
    if (code === "moderation.input.text") {
      const category = p.body && p.body.category ? String(p.body.category).replace(/_/g, " ") : "a policy category";
      this._alert($("#prompt-alert"), { title: "This prompt can't be generated",
        detail: `It matches "${category}" in this server's content policy. Nothing was charged; try rewording it.`, code });
      this.prompt.focus();
      $("#prompt-alert").scrollIntoView({ block: "center", behavior: "smooth" });
      return;
    }
    const m = /^generation\.(keyframes|camera|motion_brush|extend)\.unsupported$/.exec(code);
    if (m) {
      const section = $(`details[data-control="${m[1]}"]`);
      if (section) {
        section.open = true;
        section.classList.add("warn");
        const box = $(".inline-alert", section);
        const detail = /[.!?]$/.test(p.detail) ? p.detail : `${p.detail}.`;
        this._alert(box, { title: "Not available on this model yet",
          detail: `${detail} Turn it off to generate now; nothing was charged.`, code }, { warn: true });
        box.scrollIntoView({ block: "center", behavior: "smooth" });
        return;
      }
    }
    if (code === "credits.insufficient") {
      toast({ kind: "error", title: "Not enough credits", detail: p.detail, code });
      return;
    }
    if (p.status === 429) {
      toast({ kind: "warn", title: "Slow down a little", detail: p.detail, code });
      return;
    }
    toast({ kind: "error", title: p.title || "Could not queue the video", detail: p.detail || String(p.message || p), code });
  }
}
