// The composer's control sections: keyframes, camera, storyboard, and the "extending" chip.
//
// Each control has the same small surface, which the composer relies on:
//   active()        -> whether it would add something to the request
//   async body(api) -> its request field (uploads done), or throws {title, detail, section}
//   fill(value)     -> put a generation's request field back ("reuse parameters")
//   reset()
// The motion brush (brush.js, BrushPanel) has the same surface.

import { $, fillRange, fmtLength, h, icon, radios } from "./ui.js";

export const CAMERA_PRESETS = [
  ["static", "Static"], ["pan_left", "Pan left"], ["pan_right", "Pan right"], ["tilt_up", "Tilt up"],
  ["tilt_down", "Tilt down"], ["zoom_in", "Zoom in"], ["zoom_out", "Zoom out"], ["orbit", "Orbit"],
];
export const AXES = [
  ["horizontal", "Horizontal", "Truck the camera left (−) or right (+)"],
  ["vertical", "Vertical", "Pedestal down (−) or up (+)"],
  ["pan", "Pan", "Turn left (−) or right (+)"],
  ["tilt", "Tilt", "Tilt down (−) or up (+)"],
  ["roll", "Roll", "Roll anticlockwise (−) or clockwise (+)"],
  ["zoom", "Zoom", "Zoom out (−) or in (+)"],
];
const MAX_SHOTS = 32;

// Object URLs of the images uploaded in this session, by upload id: thumbnails for "reuse".
// The API has no way to read an upload back, so older ones show as a labelled placeholder.
export const uploadPreviews = new Map();

export class Keyframes {
  constructor(section, { api, onChange, onFirst }) {
    this.section = section;
    this.api = api;
    this.onChange = onChange;
    this.onFirst = onFirst; // the first frame's image (or null): the motion brush paints on it
    this.slots = { first: null, last: null }; // {id, url}
    this.extending = false;
    this.loop = $("#kf-loop", section);
    this.zones = {};
    for (const zone of section.querySelectorAll(".dropzone")) this._dropzone(zone);
    this.loop.addEventListener("change", () => this._sync());
    this._sync();
  }

  _dropzone(zone) {
    const slot = zone.dataset.slot;
    const input = $("input", zone);
    this.zones[slot] = zone;
    const upload = async (file) => {
      if (!file || input.disabled) return;
      zone.classList.add("busy");
      zone.setAttribute("aria-busy", "true");
      this._alert(null);
      try {
        const up = await this.api.upload(file, file.name);
        const url = URL.createObjectURL(file);
        uploadPreviews.set(up.id, url);
        this.set(slot, { id: up.id, url });
      } catch (p) {
        this._alert(p);
      } finally {
        zone.classList.remove("busy");
        zone.removeAttribute("aria-busy");
        input.value = "";
      }
    };
    input.addEventListener("change", () => upload(input.files[0]));
    $(".dz-clear", zone).addEventListener("click", (e) => { e.preventDefault(); this.set(slot, null); });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("drag"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("drag"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("drag"); upload(e.dataTransfer.files[0]); });
  }

  set(slot, entry) {
    this.slots[slot] = entry;
    const zone = this.zones[slot];
    const img = $("img", zone);
    img.hidden = !(entry && entry.url);
    if (entry && entry.url) img.src = entry.url;
    $(".dz-clear", zone).hidden = !entry;
    $(".dz-empty", zone).hidden = !!entry;
    $(".dz-id", zone).hidden = !(entry && !entry.url);
    $(".dz-id", zone).textContent = entry && !entry.url ? `Earlier upload ${entry.id.slice(0, 10)}…` : "";
    if (slot === "first") this.onFirst(entry && entry.url && !this.extending ? entry.url : null);
    this._sync();
  }

  setExtending(on) {
    // An extension starts where its source ends: there is no first frame to give (the API would
    // answer generation.extend.conflict), so the slot is set aside, not cleared.
    this.extending = on;
    const first = this.slots.first;
    this.onFirst(first && first.url && !on ? first.url : null);
    this._sync();
  }

  _sync() {
    // `loop` and `last` exclude each other; `first` is off while extending.
    const last = this.zones.last;
    const first = this.zones.first;
    this.loop.disabled = !!this.slots.last;
    $("input", last).disabled = this.loop.checked;
    last.classList.toggle("disabled", this.loop.checked);
    last.title = this.loop.checked ? "A loop ends on its first frame: turn the loop off to pick a last frame" : "";
    $("input", first).disabled = this.extending;
    first.classList.toggle("disabled", this.extending);
    first.title = this.extending ? "An extension starts where its source video ends" : "";
    $("#kf-note", this.section).hidden = !this.extending;
    this.onChange();
  }

  active() {
    return !!((this.slots.first && !this.extending) || this.slots.last || this.loop.checked);
  }

  async body() {
    const out = {};
    if (this.slots.first && !this.extending) out.first = this.slots.first.id;
    if (this.slots.last) out.last = this.slots.last.id;
    if (this.loop.checked) out.loop = true;
    return out;
  }

  fill(kf) {
    kf = kf || {};
    this.loop.checked = false;
    for (const slot of ["first", "last"]) this.set(slot, kf[slot] ? { id: kf[slot], url: uploadPreviews.get(kf[slot]) || null } : null);
    this.loop.checked = !!kf.loop;
    this._sync();
  }

  reset() { this.fill(null); this._alert(null); }

  _alert(problem) { showAlert($(".inline-alert", this.section), problem); }
}

export class Camera {
  constructor(section, { onChange }) {
    this.section = section;
    this.onChange = onChange;
    this.path = null; // a camera path from a reused request: kept as is (there is no path editor)
    this.mode = radios($("#camera-mode", section), (mode) => this._show(mode));
    this.preset = $("#camera-preset", section);
    this.preset.append(...CAMERA_PRESETS.map(([value, label]) => h("option", { value }, label)));
    this.preset.value = "pan_right";
    this.preset.addEventListener("change", () => this.onChange());
    this.inputs = {};
    $("#camera-axes", section).append(...AXES.map(([name, label, help]) => {
      const input = h("input", { type: "range", min: -10, max: 10, step: 0.5, value: 0, id: `axis-${name}`,
        "data-axis": name, "aria-describedby": `axis-${name}-help` });
      const out = h("output", { class: "value", for: `axis-${name}` }, "0");
      input.addEventListener("input", () => { out.textContent = Number(input.value).toFixed(1).replace(/\.0$/, ""); fillRange(input); this.onChange(); });
      input.addEventListener("dblclick", () => { input.value = 0; input.dispatchEvent(new Event("input")); });
      fillRange(input);
      this.inputs[name] = input;
      return h("div", { class: "field axis" },
        h("label", { for: `axis-${name}` }, label, out), input,
        h("span", { class: "sr-only", id: `axis-${name}-help` }, `${help}; from −10 to 10`));
    }));
    $("#camera-axes-reset", section).addEventListener("click", () => this.setAxes({}));
    this._show(this.mode.get());
  }

  _show(mode) {
    $("#camera-preset-field", this.section).hidden = mode !== "preset";
    $("#camera-axes-wrap", this.section).hidden = mode !== "axes";
    $("#camera-path-note", this.section).hidden = mode !== "path";
    this.onChange();
  }

  setAxes(axes) {
    for (const [name] of AXES) {
      this.inputs[name].value = axes[name] || 0;
      this.inputs[name].dispatchEvent(new Event("input"));
    }
  }

  active() { return this.mode.get() !== "off"; }

  async body() {
    const mode = this.mode.get();
    if (mode === "preset") return { preset: this.preset.value };
    if (mode === "axes") return { axes: Object.fromEntries(AXES.map(([name]) => [name, Number(this.inputs[name].value)])) };
    if (mode === "path" && this.path) return { path: this.path };
    return undefined;
  }

  fill(camera) {
    this.path = camera && camera.path ? camera.path : null;
    $('#camera-mode [data-value="path"]', this.section).hidden = !this.path;
    if (!camera) { this.mode.set("off"); return; }
    if (camera.preset) { this.preset.value = camera.preset; this.mode.set("preset"); }
    else if (camera.axes) { this.setAxes(camera.axes); this.mode.set("axes"); }
    else if (camera.path) {
      $("#camera-path-note", this.section).textContent = `A camera path of ${camera.path.length} point${camera.path.length === 1 ? "" : "s"}, from the reused request.`;
      this.mode.set("path");
    }
  }

  reset() { this.setAxes({}); this.preset.value = "pan_right"; this.fill(null); }
}

export class Storyboard {
  // Shots made one after the other as one video; the video lasts their total.
  constructor(section, { onChange, getMaxSeconds }) {
    this.section = section;
    this.onChange = onChange;
    this.getMaxSeconds = getMaxSeconds;
    this.list = $("#shots", section);
    this.addButton = $("#shot-add", section);
    this.addButton.addEventListener("click", () => { this.add(); $("textarea", this.list.lastElementChild).focus(); });
    this._sync();
  }

  add(shot = { prompt: "", seconds: 2 }) {
    if (this.list.children.length >= MAX_SHOTS) return;
    const prompt = h("textarea", { rows: 2, maxlength: 2000, class: "shot-prompt", placeholder: "What happens in this shot" });
    prompt.value = shot.prompt;
    const seconds = h("input", { type: "number", min: 0.5, max: 600, step: 0.5, value: shot.seconds, class: "shot-seconds", inputmode: "decimal" });
    const remove = h("button", { type: "button", class: "icon-btn shot-remove" }, icon("x"));
    const row = h("li", { class: "shot" }, h("span", { class: "shot-n", "aria-hidden": "true" }),
      prompt, h("div", { class: "input-group unit-group" }, seconds, h("span", { class: "unit", "aria-hidden": "true" }, "s")), remove);
    remove.addEventListener("click", () => { row.remove(); this._sync(); });
    prompt.addEventListener("input", () => this._sync());
    seconds.addEventListener("input", () => this._sync());
    this.list.append(row);
    this._sync();
  }

  shots() {
    return Array.from(this.list.children, (row) => ({
      prompt: $(".shot-prompt", row).value.trim(),
      seconds: Number($(".shot-seconds", row).value),
    }));
  }

  total() { return this.shots().reduce((sum, s) => sum + (s.seconds > 0 ? s.seconds : 0), 0); }

  _sync() {
    // Number the shots and label their inputs (screen readers hear "Shot 2 prompt").
    Array.from(this.list.children).forEach((row, i) => {
      $(".shot-n", row).textContent = String(i + 1);
      $(".shot-prompt", row).setAttribute("aria-label", `Shot ${i + 1} prompt`);
      $(".shot-seconds", row).setAttribute("aria-label", `Shot ${i + 1} seconds`);
      $(".shot-remove", row).setAttribute("aria-label", `Remove shot ${i + 1}`);
    });
    const n = this.list.children.length;
    this.addButton.disabled = n >= MAX_SHOTS;
    $("#shots-total", this.section).textContent = n ? `${n} shot${n === 1 ? "" : "s"} · ${fmtLength(this.total())} in all` : "No shots: the prompt is the whole video.";
    this.onChange();
  }

  active() { return this.list.children.length > 0; }

  async body() {
    const shots = this.shots();
    const problems = [];
    shots.forEach((s, i) => {
      if (!s.prompt) problems.push(`Shot ${i + 1} needs a prompt.`);
      if (!(s.seconds > 0)) problems.push(`Shot ${i + 1} needs a length.`);
    });
    const max = this.getMaxSeconds();
    if (this.total() > max) problems.push(`The shots last ${fmtLength(this.total())}; this model makes at most ${fmtLength(max)}.`);
    if (problems.length) throw { title: "The storyboard is not finished", detail: problems.join(" "), section: this.section };
    return shots;
  }

  fill(storyboard) {
    this.list.replaceChildren();
    for (const shot of storyboard || []) this.add(shot);
    this._sync();
  }

  reset() { this.fill(null); }
}

export class Extending {
  // The chip above the prompt while a request extends one of the user's videos.
  constructor(chip, { onChange }) {
    this.chip = chip;
    this.onChange = onChange;
    this.source = null; // {id, prompt, poster}
    $("#extend-clear", chip).addEventListener("click", () => this.set(null));
  }

  set(source) {
    this.source = source;
    this.chip.hidden = !source;
    if (source) {
      const img = $("img", this.chip);
      img.hidden = !source.poster;
      if (source.poster) img.src = source.poster;
      $(".extend-prompt", this.chip).textContent = source.prompt || source.id;
      $(".extend-prompt", this.chip).title = source.id;
    }
    showAlert($(".inline-alert", this.chip), null);
    this.onChange();
  }

  active() { return !!this.source; }
  async body() { return { generation_id: this.source.id }; }
  reset() { this.set(null); }
  alert(problem) { showAlert($(".inline-alert", this.chip), problem); }
}

export function showAlert(box, problem, { warn = false } = {}) {
  // An inline problem box: title, the API's `detail`, and its dotted code.
  if (!problem) { box.hidden = true; box.replaceChildren(); return; }
  box.classList.toggle("warn", warn);
  box.replaceChildren(icon("alert"), h("div", {},
    h("strong", {}, problem.title || "Something went wrong"),
    problem.detail || problem.message || "",
    problem.code ? h("code", { class: "error-code" }, problem.code) : null));
  box.hidden = false;
}
