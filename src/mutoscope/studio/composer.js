// The composer: prompt, length, output format and the controls -> POST /v1/generations.
//
// GET /v1/models says what the model can do (`capabilities`); the form offers only that: a control
// section the model lacks is hidden, the length stops at its `max_seconds`, and resolution, aspect
// and frame rate list its tiers. An aspect other than the model's needs an upscaled tier (the API
// refuses it at `base`: generation.aspect.unsupported), so those buttons are disabled at `base`.
// Problems the API answers (RFC 9457 `detail` and `code`) are shown next to what they are about.

import { newKey } from "./api.js";
import { BrushPanel } from "./brush.js";
import { Camera, Extending, Keyframes, showAlert, Storyboard } from "./controls.js";
import { $, $$, fillRange, fmtLength, h, radios, toast } from "./ui.js";

const EXAMPLES = [
  ["Bouncing ball", "A red ball bounces on a gray checkerboard"],
  ["Night glide", "Two blue squares glide to the left under a starry night sky"],
  ["Wave + pan", "A stick figure waves while the camera pans right"],
];
const ASPECTS = ["1:1", "16:9", "9:16"];
const TIERS = { "720p": 720, "1080p": 1080 }; // the short side (mutoscope.serve.capabilities.TIERS)
// The length slider's stops: fine steps for clips, coarser ones for minutes. The number box beside
// it takes any value up to the model's max_seconds.
const SECONDS_STOPS = [0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120,
  150, 180, 240, 300, 360, 420, 480, 540, 600];
const CONTROL_NAMES = { keyframes: "keyframes", camera: "camera control", motion_brush: "the motion brush",
  extend: "extension", storyboard: "storyboards" };

function gcd(a, b) { return b ? gcd(b, a % b) : a; }

export function outputSize(caps, resolution, aspect) {
  // (width, height) of the output, as mutoscope.serve.capabilities.output_size computes it.
  if (resolution === "base" || !TIERS[resolution]) return [caps.width, caps.height];
  const [a, b] = (aspect || nativeAspect(caps)).split(":").map(Number);
  const short = TIERS[resolution];
  const long = 2 * Math.round((short * Math.max(a, b)) / Math.min(a, b) / 2);
  return a >= b ? [long, short] : [short, long];
}

function nativeAspect(caps) {
  const g = gcd(caps.width, caps.height);
  return `${caps.width / g}:${caps.height / g}`;
}

export class Composer {
  constructor({ api, onQueued, getCredits, getGeneration }) {
    this.api = api;
    this.onQueued = onQueued;
    this.getCredits = getCredits;
    this.getGeneration = getGeneration;
    this.caps = null;
    this.costs = null;
    this.form = $("#compose");
    this._build();
  }

  _build() {
    const f = this.form;
    this.prompt = $("#prompt");
    this.prompt.addEventListener("input", () => {
      $("#prompt-count").textContent = `${this.prompt.value.length} / 2000`;
      showAlert($("#prompt-alert"), null);
    });
    this.prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });
    $("#examples").append(h("span", { class: "examples-label" }, "Try"), ...EXAMPLES.map(([label, text]) => h("button", {
      type: "button", class: "chip", title: text, "aria-label": `Example: ${text}`,
      onclick: () => { this.prompt.value = text; this.prompt.dispatchEvent(new Event("input")); this.prompt.focus(); },
    }, label)));

    // length: the number box is the value; the slider moves it along SECONDS_STOPS
    this.seconds = $("#seconds");
    this.secondsRange = $("#seconds-range");
    this.seconds.addEventListener("input", () => this._lengthChanged(false));
    this.seconds.addEventListener("change", () => this._clampSeconds());
    this.secondsRange.addEventListener("input", () => {
      this.seconds.value = this.stops[Number(this.secondsRange.value)];
      this._lengthChanged(true);
    });

    for (const id of ["guidance", "continue-guidance", "image-guidance"]) {
      const range = $(`#${id}`);
      range.addEventListener("input", () => { $(`#${id}-out`).textContent = Number(range.value).toFixed(1); fillRange(range); });
    }
    // The first frame's guidance follows the prompt's (as the server does when it is not given) until
    // the user moves it, or the model has a default of its own.
    this._imageGuidanceOwn = false;
    this._imageGuidanceSynced = Number($("#image-guidance").value);
    $("#image-guidance").addEventListener("input", () => {
      if (Number($("#image-guidance").value) !== this._imageGuidanceSynced) this._imageGuidanceOwn = true;
    });
    $("#guidance").addEventListener("input", () => {
      if (this._imageGuidanceOwn || (this.caps && this.caps.default_image_guidance != null)) return;
      $("#image-guidance").value = $("#guidance").value;
      this._imageGuidanceSynced = Number($("#image-guidance").value);
      $("#image-guidance").dispatchEvent(new Event("input"));
    });
    $("#seed-dice").addEventListener("click", () => { $("#seed").value = Math.floor(Math.random() * 2 ** 31); });
    this.takes = radios($("#takes"), () => this._cost());
    $("#resolution").addEventListener("change", () => this._format());
    $("#fps").addEventListener("change", () => this._format());
    this.aspect = radios($("#aspect"), () => this._format());

    // the controls, each behind the same small surface (see controls.js)
    const onChange = () => this._indicators();
    this.brush = new BrushPanel($("#sec-brush"), { onChange });
    this.controls = {
      keyframes: new Keyframes($("#sec-keyframes"), { api: this.api, onChange, onFirst: (url) => this.brush.setBackground(url) }),
      camera: new Camera($("#sec-camera"), { onChange }),
      motion_brush: this.brush,
      storyboard: new Storyboard($("#sec-storyboard"), { onChange: () => { this._lengthChanged(false); onChange(); }, getMaxSeconds: () => this._maxSeconds() }),
      extend: new Extending($("#extend-chip"), { onChange: () => { this.controls.keyframes.setExtending(this.controls.extend.active()); onChange(); } }),
    };

    $("#reset-form").addEventListener("click", () => this.reset());
    f.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
  }

  // ---------- the model's capabilities ----------

  setModel(model, costs) {
    // Fit the form to what the model can do (GET /v1/models).
    this.model = model;
    this.caps = model ? model.capabilities : null;
    this.costs = costs;
    const caps = this.caps || { width: 1, height: 1, fps: 8, max_seconds: 2, resolutions: ["base"], aspects: ["1:1"], fps_options: [], controls: {} };
    $(".composer").style.setProperty("--frame-aspect", `${caps.width} / ${caps.height}`);

    this.stops = SECONDS_STOPS.filter((s) => s < caps.max_seconds);
    this.stops.push(caps.max_seconds);
    this.secondsRange.max = this.stops.length - 1;
    this.seconds.max = caps.max_seconds;
    $("#seconds-max").textContent = `up to ${fmtLength(caps.max_seconds)}`;
    this._clampSeconds();

    const steps = $("#steps");
    steps.max = caps.max_steps || 500;
    const sampler = $("#sampler");
    sampler.replaceChildren(h("option", { value: "" }, "Model default"), ...(caps.samplers || []).map((s) => h("option", { value: s }, s)));
    if (!this._touchedDefaults && model) {
      steps.value = caps.default_steps || 20;
      $("#guidance").value = caps.default_guidance ?? 5;
      $("#continue-guidance").value = caps.default_continue_guidance ?? caps.default_guidance ?? 5;
      $("#image-first").checked = Boolean(caps.default_image_first);
      $("#image-guidance").value = caps.default_image_guidance ?? caps.default_guidance ?? 5;
      this._imageGuidanceSynced = Number($("#image-guidance").value);
      this._imageGuidanceOwn = false;
      this._touchedDefaults = true;
    }
    $("#guidance").dispatchEvent(new Event("input"));
    $("#continue-guidance").dispatchEvent(new Event("input"));
    $("#image-guidance").dispatchEvent(new Event("input"));

    // output format: the model's tiers, aspects and frame rates
    const res = $("#resolution");
    const keepRes = res.value;
    res.replaceChildren(...caps.resolutions.map((r) => h("option", { value: r },
      r === "base" ? `Base · ${caps.width}×${caps.height}` : r)));
    res.value = caps.resolutions.includes(keepRes) ? keepRes : "base";
    res.disabled = caps.resolutions.length < 2;
    const fps = $("#fps");
    const keepFps = fps.value;
    fps.replaceChildren(...[caps.fps, ...caps.fps_options].map((v) => h("option", { value: v },
      `${v} fps`)));
    fps.value = [caps.fps, ...caps.fps_options].map(String).includes(keepFps) ? keepFps : String(caps.fps);
    fps.disabled = caps.fps_options.length === 0;
    if (!caps.aspects.includes(this.aspect.get())) this.aspect.set(nativeAspect(caps), false);

    // controls: only those the model has
    for (const section of $$("[data-control]")) {
      const ok = !!(caps.controls && caps.controls[section.dataset.control]);
      section.hidden = !ok;
    }
    if (!(caps.controls && caps.controls.extend)) this.controls.extend.set(null);
    $("#studio").classList.toggle("can-extend", !!(caps.controls && caps.controls.extend));
    this.brush.setFrame(caps.width, caps.height);
    this._format();
  }

  _supported(name) { return !!(this.caps && this.caps.controls && this.caps.controls[name]); }
  _maxSeconds() { return (this.caps && this.caps.max_seconds) || 2; }

  _format() {
    // Aspects: those the model lists; other than its own only above `base`.
    const caps = this.caps || { width: 1, height: 1, fps: 8, aspects: ["1:1"] };
    const resolution = $("#resolution").value || "base";
    const native = nativeAspect(caps);
    for (const b of $$("#aspect [role=radio]")) {
      const a = b.dataset.value;
      const offered = caps.aspects.includes(a);
      const needsTier = a !== native && resolution === "base";
      b.disabled = !offered || needsTier;
      b.title = !offered ? `${a} is not offered by this model` : needsTier ? `${a} needs 720p or 1080p` : a;
    }
    if ($(`#aspect [data-value="${this.aspect.get()}"]`)?.disabled) this.aspect.set(native, false);
    const [w, hh] = outputSize(caps, resolution, this.aspect.get());
    const fps = Number($("#fps").value || caps.fps);
    const others = caps.aspects.filter((a) => a !== native);
    const post = [resolution !== "base" ? "upscaled" : null, fps !== caps.fps ? "interpolated" : null].filter(Boolean);
    $("#format-out").textContent = `Output ${w}×${hh} at ${fps} fps` + (post.length ? ` (${post.join(", ")})` : "") +
      (resolution === "base" && others.length ? ` · ${others.join(" and ")} need 720p or 1080p` : "");
    this.brush.setCrop(this.aspect.get() !== native ? this.aspect.get() : null);
    showAlert($("#format-alert"), null);
    this._cost();
  }

  // ---------- length ----------

  _clampSeconds() {
    const max = this._maxSeconds();
    let v = Number(this.seconds.value);
    if (!(v > 0)) v = 2;
    this.seconds.value = Math.min(max, Math.max(0.5, v));
    this._lengthChanged(false);
  }

  _lengthChanged(fromSlider) {
    const story = this.controls && this.controls.storyboard.active() && this._supported("storyboard");
    if (story) this.seconds.value = this.controls.storyboard.total();
    this.seconds.disabled = this.secondsRange.disabled = !!story;
    const v = Number(this.seconds.value) || 0;
    if (!fromSlider && this.stops) {
      // the nearest stop, so that the slider follows a typed value
      let best = 0;
      this.stops.forEach((s, i) => { if (Math.abs(s - v) < Math.abs(this.stops[best] - v)) best = i; });
      this.secondsRange.value = best;
    }
    fillRange(this.secondsRange);
    $("#seconds-out").textContent = fmtLength(v);
    const caps = this.caps;
    const clip = caps ? caps.frames / caps.fps : 2;
    const note = $("#seconds-note");
    note.hidden = !(caps && v > clip + 1e-9);
    note.textContent = story ? "The length is the storyboard's total." : `Longer than one clip (${fmtLength(clip)}): made by extension, segment by segment.`;
    if (story) note.hidden = false;
    this._cost();
  }

  // ---------- cost ----------

  _cost() {
    const out = $("#cost-estimate");
    if (!this.costs || !this.caps) { out.textContent = ""; return; }
    const rate = (this.costs.rate_per_second || {})[$("#resolution").value || "base"] ?? 1;
    const factor = Number($("#fps").value) >= 24 ? this.costs.fps_30_factor || 2 : 1;
    const takes = Number(this.takes.get() || 1);
    const cost = Math.max(1, Math.ceil(Number(this.seconds.value) - 1e-9)) * rate * factor * takes;
    out.replaceChildren("Cost ", h("strong", {}, `${cost} credit${cost === 1 ? "" : "s"}`), takes > 1 ? ` (${takes} takes)` : "");
    const bal = this.getCredits();
    $("#cost-balance").textContent = bal === null ? "" : `${bal} available`;
  }

  refreshCost() { this._cost(); }

  _indicators() {
    if (!this.controls) return; // the controls are being built
    for (const section of $$("details[data-control]")) {
      const on = this.controls[section.dataset.control].active();
      $(".on-dot", section).hidden = !on;
      if (!on) {
        section.classList.remove("error", "warn");
        showAlert($(".inline-alert", section), null);
      }
    }
  }

  // ---------- filling the form ----------

  reset() {
    this.form.reset();
    for (const c of Object.values(this.controls)) c.reset();
    this.takes.set("1", false);
    this._touchedDefaults = false;
    this.setModel(this.model, this.costs);
    if (this.caps) this.aspect.set(nativeAspect(this.caps));
    this.prompt.dispatchEvent(new Event("input"));
    for (const id of ["#form-alert", "#format-alert", "#prompt-alert"]) showAlert($(id), null);
  }

  extendFrom(gen) {
    // "Extend" on a finished card: a new request that continues it (`extend: {generation_id}`).
    const poster = gen.outputs && gen.outputs.poster ? gen.outputs.poster.url : null;
    this.controls.extend.set({ id: gen.id, prompt: gen.prompt, poster });
    this.prompt.value = gen.prompt;
    this.prompt.dispatchEvent(new Event("input"));
    $(".composer").scrollTo({ top: 0, behavior: "smooth" });
    this.prompt.focus();
  }

  fill(params) {
    // "Reuse parameters": put a generation's request back into the form.
    this.prompt.value = params.prompt || "";
    $("#negative").value = params.negative_prompt || "";
    $("#seed").value = params.seed ?? "";
    if (params.guidance !== undefined) $("#guidance").value = params.guidance;
    if (params.continue_guidance != null) $("#continue-guidance").value = params.continue_guidance;
    if (params.image_first != null) $("#image-first").checked = params.image_first;
    if (params.image_guidance != null) {
      $("#image-guidance").value = params.image_guidance;
      this._imageGuidanceOwn = true;
    }
    if (params.steps) $("#steps").value = params.steps;
    $("#sampler").value = params.sampler || "";
    const caps = this.caps || { resolutions: ["base"] };
    $("#resolution").value = caps.resolutions.includes(params.resolution) ? params.resolution : "base";
    if (params.fps && $(`#fps option[value="${params.fps}"]`)) $("#fps").value = String(params.fps);
    this._format();
    if (params.aspect) this.aspect.set(params.aspect);
    this._format();
    this.controls.keyframes.fill(params.keyframes);
    this.controls.camera.fill(params.camera);
    this.controls.storyboard.fill(params.storyboard);
    const ext = params.extend && params.extend.generation_id;
    const source = ext ? this.getGeneration(ext) : null;
    this.controls.extend.set(ext ? { id: ext, prompt: source ? source.prompt : ext,
      poster: source && source.outputs && source.outputs.poster ? source.outputs.poster.url : null } : null);
    this.brush.reset(); // the masks live on the server only: paint them again
    if (params.motion_brush) {
      toast({ kind: "warn", title: "Paint the motion brush again", detail: "Reuse restores everything else; the brush strokes stay with the original video.", timeout: 4000 });
    }
    if (params.seconds) this.seconds.value = params.seconds;
    $("#guidance").dispatchEvent(new Event("input"));
    $("#continue-guidance").dispatchEvent(new Event("input"));
    $("#image-guidance").dispatchEvent(new Event("input"));
    this._clampSeconds();
    this.prompt.dispatchEvent(new Event("input"));
    $(".composer").scrollTo({ top: 0, behavior: "smooth" });
    this.prompt.focus();
  }

  // ---------- submitting ----------

  async _body(prompt) {
    // The request body; control uploads (brush masks) happen here, before the POST.
    const caps = this.caps || {};
    const body = {
      prompt,
      seconds: Number(this.seconds.value),
      guidance: Number($("#guidance").value),
      continue_guidance: Number($("#continue-guidance").value),
      image_first: $("#image-first").checked,
      image_guidance: Number($("#image-guidance").value),
      steps: Math.round(Number($("#steps").value)) || undefined,
    };
    const negative = $("#negative").value.trim();
    if (negative) body.negative_prompt = negative;
    if ($("#sampler").value) body.sampler = $("#sampler").value;
    const resolution = $("#resolution").value || "base";
    if (resolution !== "base") {
      body.resolution = resolution;
      body.aspect = this.aspect.get(); // at base the aspect is the model's: never sent
    }
    const fps = Number($("#fps").value);
    if (fps && fps !== caps.fps) body.fps = fps;
    for (const [name, control] of Object.entries(this.controls)) {
      if (!this._supported(name) || !control.active()) continue;
      const value = await control.body(this.api);
      if (value !== undefined) body[name] = value;
    }
    return body;
  }

  async submit() {
    const prompt = this.prompt.value.trim();
    if (!prompt) {
      showAlert($("#prompt-alert"), { title: "Describe your video first", detail: "The prompt is what the model follows." }, { warn: true });
      this.prompt.focus();
      return;
    }
    const button = $("#generate");
    button.disabled = true;
    const label = $("span", button);
    label.textContent = "Submitting…";
    button.prepend(h("span", { class: "spinner", "aria-hidden": "true" }));
    $$("details[data-control]").forEach((s) => { s.classList.remove("error", "warn"); showAlert($(".inline-alert", s), null); });
    for (const id of ["#form-alert", "#format-alert", "#prompt-alert"]) showAlert($(id), null);
    this.controls.extend.alert(null);
    try {
      const body = await this._body(prompt);
      const seedText = $("#seed").value.trim();
      const takes = Number(this.takes.get() || 1);
      const made = [];
      for (let i = 0; i < takes; i++) {
        const one = { ...body };
        if (seedText !== "") one.seed = Number(seedText) + i; // else the server draws (and records) one
        made.push(await this.api.create(one, newKey()));
      }
      if (this.controls.extend.active()) this.controls.extend.set(null); // extended: done with it
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
    // Put an API problem where the user will look for it: the section, field or prompt it is
    // about, or else just above the Generate button.
    const code = p.code || "";
    const field = String((p.body && p.body.field) || "");
    const reveal = (box) => box.scrollIntoView({ block: "center", behavior: "smooth" });
    if (p.section) {
      p.section.classList.add("error");
      p.section.open = true;
      const box = $(".inline-alert", p.section);
      showAlert(box, p);
      reveal(box);
      return;
    }
    if (code === "moderation.input.text") {
      const category = p.body && p.body.category ? String(p.body.category).replace(/_/g, " ") : "a policy category";
      const which = this.controls.storyboard.active() ? "It, or one of the storyboard's shots," : "It";
      showAlert($("#prompt-alert"), { title: "This prompt can't be generated",
        detail: `${which} matches "${category}" in this server's content policy. Nothing was charged; try rewording it.`, code });
      this.prompt.focus();
      reveal($("#prompt-alert"));
      return;
    }
    const unsupported = /^generation\.(\w+)\.unsupported$/.exec(code);
    if (unsupported && ["resolution", "aspect", "fps"].includes(unsupported[1])) {
      showAlert($("#format-alert"), { title: "Not available on this model", detail: p.detail, code }, { warn: true });
      reveal($("#format-alert"));
      return;
    }
    const control = unsupported ? unsupported[1] : code.startsWith("generation.extend.") ? "extend" : field.split(".")[0];
    if (control === "extend" && this.controls.extend.active()) {
      this.controls.extend.alert({ title: unsupported ? "Not available on this model" : p.title, detail: p.detail, code });
      reveal($("#extend-chip"));
      return;
    }
    const section = CONTROL_NAMES[control] ? $(`details[data-control="${control}"]`) : null;
    if (section && !section.hidden) {
      section.open = true;
      section.classList.add(unsupported ? "warn" : "error");
      const box = $(".inline-alert", section);
      showAlert(box, unsupported ? { title: "Not available on this model",
        detail: `${p.detail} Turn ${CONTROL_NAMES[control]} off to generate now; nothing was charged.`, code } : p, { warn: !!unsupported });
      reveal(box);
      return;
    }
    showAlert($("#form-alert"), { title: p.title || "Could not queue the video", detail: p.detail || String(p.message || p), code },
      { warn: p.status === 429 });
    reveal($("#form-alert"));
  }
}
