// The queue (live over SSE, with cancel), the gallery (play, rate, reuse, download, delete) and the
// A/B choice between two takes of one prompt (POST /v1/preferences).

import { TERMINAL, watch } from "./api.js";
import { $, ago, announce, fmtEta, fmtLength, h, icon, radios, store, toast } from "./ui.js";

const PAGE = 24;

export class Gallery {
  constructor({ api, userId, onReuse, onExtend, onCredits }) {
    this.api = api;
    this.onReuse = onReuse;
    this.onExtend = onExtend;
    this.onCredits = onCredits;
    this.gens = new Map(); // id -> generation (as the API gave it)
    this.watchers = new Map(); // id -> stop()
    this.cursor = null;
    this.filter = "";
    this.fbKey = `mutoscope.feedback.${userId}`;
    this.judgedKey = `mutoscope.judged.${userId}`;
    this.feedback = store.get(this.fbKey, {});
    this.judged = new Set(store.get(this.judgedKey, []));
    radios($("#gallery-filter"), (v) => { this.filter = v; this.load(); });
    $("#more").addEventListener("click", () => this.load({ more: true }));
    $("#compare-skip").addEventListener("click", () => this._judge(this.pair, null));
  }

  async load({ more = false } = {}) {
    const grid = $("#gallery");
    if (!more) {
      this.cursor = null;
      grid.setAttribute("aria-busy", "true");
      grid.replaceChildren(...Array.from({ length: 4 }, () => h("div", { class: "skeleton", "aria-hidden": "true" },
        h("div", { class: "sk-media" }), h("div", { class: "sk-line" }), h("div", { class: "sk-line short" }))));
      $("#gallery-empty").hidden = true;
    }
    try {
      const page = await this.api.list({ cursor: this.cursor, status: this.filter || null, limit: PAGE });
      if (!more) grid.replaceChildren();
      for (const g of page.data) {
        this.gens.set(g.id, g);
        if (TERMINAL.has(g.status)) grid.append(this.card(g));
        else this.track(g);
      }
      this.cursor = page.next_cursor;
      $("#more").hidden = !this.cursor;
      if (!more && !this.filter) this._activeFromServer();
    } catch (p) {
      grid.replaceChildren();
      toast({ kind: "error", title: "Could not load your videos", detail: p.detail, code: p.code });
    } finally {
      grid.setAttribute("aria-busy", "false");
      this._empty();
      this._compare();
    }
  }

  async _activeFromServer() {
    // Queued and running ones may be older than the first page: ask for them by status.
    for (const status of ["queued", "running"]) {
      try {
        const page = await this.api.list({ status, limit: 50 });
        page.data.forEach((g) => this.track(g));
      } catch { /* the gallery already said what went wrong */ }
    }
  }

  _empty() {
    const grid = $("#gallery");
    $("#gallery-empty").hidden = grid.children.length > 0;
  }

  // ---------- the queue ----------

  track(gen) {
    // Show an unfinished generation in the queue and follow its events until it ends.
    this.gens.set(gen.id, gen);
    let row = document.getElementById(`job-${gen.id}`);
    if (!row) {
      row = h("li", { class: "job", id: `job-${gen.id}` },
        h("div", { class: "job-thumb", "aria-hidden": "true" }, icon("film")),
        h("div", { class: "job-main" },
          h("div", { class: "job-prompt", title: gen.prompt }, gen.prompt),
          h("div", { class: "job-status" }),
          h("div", { class: "progress", role: "progressbar", "aria-label": `Progress of "${gen.prompt}"`, "aria-valuemin": 0, "aria-valuemax": 100 }, h("span"))),
        h("button", { class: "btn btn-ghost btn-sm", type: "button", onclick: () => this.cancel(gen.id) }, icon("x"), h("span", {}, "Cancel")));
      $("#queue").prepend(row);
    }
    this._row(gen);
    this._queueVisibility();
    if (!this.watchers.has(gen.id)) {
      const stop = watch(gen, {
        onStatus: (d) => this._update(gen.id, d),
        onProgress: (d) => this._update(gen.id, d),
        onEnd: () => this.finish(gen.id),
      });
      this.watchers.set(gen.id, stop);
    }
  }

  _update(id, data) {
    const gen = this.gens.get(id);
    if (!gen) return;
    Object.assign(gen, data);
    if (data.status === "running") gen.queue_position = null;
    this._row(gen);
  }

  _row(gen) {
    const row = document.getElementById(`job-${gen.id}`);
    if (!row) return;
    const status = $(".job-status", row);
    const bar = $(".progress", row);
    const pct = Math.round((gen.progress || 0) * 100);
    let parts;
    if (gen.cancel_requested) parts = [h("span", { class: "stage" }, "Canceling…")];
    else if (gen.status === "queued") {
      parts = [h("span", { class: "stage" }, "Queued"), gen.queue_position ? h("span", {}, `#${gen.queue_position} in line`) : null];
    } else {
      parts = [h("span", { class: "stage" }, gen.stage === "decode" ? "Decoding" : gen.stage === "denoise" ? "Denoising" : gen.stage || "Starting"),
        h("span", {}, `${pct}%`), gen.eta_s ? h("span", {}, fmtEta(gen.eta_s)) : null];
    }
    status.replaceChildren(...parts.filter(Boolean));
    bar.classList.toggle("indeterminate", gen.status === "queued");
    bar.setAttribute("aria-valuenow", String(pct));
    $("span", bar).style.width = `${pct}%`;
  }

  _queueVisibility() {
    const n = $("#queue").children.length;
    $("#queue-section").hidden = n === 0;
    $("#queue-count").textContent = String(n);
  }

  async cancel(id) {
    try {
      const gen = await this.api.cancel(id);
      this._update(id, gen);
      if (TERMINAL.has(gen.status)) this.finish(id);
    } catch (p) {
      toast({ kind: "error", title: "Could not cancel", detail: p.detail, code: p.code });
    }
  }

  async finish(id) {
    // The stream ended: fetch the final state and move the generation to the gallery.
    const stop = this.watchers.get(id);
    this.watchers.delete(id);
    if (stop) stop();
    let gen;
    try { gen = await this.api.get(id); } catch { gen = this.gens.get(id); }
    if (!gen) return;
    if (!TERMINAL.has(gen.status)) {  // the stream dropped for good: keep following by polling
      setTimeout(() => this.finish(id), 2000);
      return;
    }
    this.gens.set(id, gen);
    document.getElementById(`job-${id}`)?.remove();
    this._queueVisibility();
    if (!this.filter || this.filter === gen.status) {
      const existing = document.getElementById(`card-${id}`);
      const card = this.card(gen, { fresh: true });
      if (existing) existing.replaceWith(card); else $("#gallery").prepend(card);
    }
    this._empty();
    this.onCredits();
    if (gen.status === "failed") {  // a finished video announces itself in the gallery; a failure says why
      toast({ kind: "error", title: "Generation failed", detail: gen.error ? gen.error.message : "", code: gen.error ? gen.error.code : "" });
    }
    this._compare();
  }

  // ---------- gallery cards ----------

  card(gen, { fresh = false } = {}) {
    const p = gen.params || {};
    const video = gen.outputs && gen.outputs.video;
    const poster = gen.outputs && gen.outputs.poster;
    const rec = (gen.outputs && gen.outputs.record) || {}; // the generation record: size, fps, controls
    let media;
    if (gen.status === "succeeded" && video) {
      const v = h("video", { src: video.url, poster: poster ? poster.url : null, controls: true, loop: true, muted: true,
        playsinline: true, preload: "metadata", "aria-label": `Video: ${gen.prompt}` });
      v.muted = true;
      v.addEventListener("play", () => v.parentElement.classList.add("playing"));
      v.addEventListener("pause", () => v.parentElement.classList.remove("playing"));
      // Extend: a new request that continues this video (shown while the model can extend)
      const extend = h("button", { class: "media-action extend-btn", type: "button", title: "Continue this video from its last frame",
        onclick: () => this.onExtend(gen) }, icon("extend"), h("span", {}, "Extend"));
      media = h("div", { class: "media", onmouseenter: () => v.play().catch(() => {}), onmouseleave: () => v.pause() }, v,
        h("span", { class: "play-hint", "aria-hidden": "true" }, icon("play")),
        h("span", { class: "tag" }, [fmtLength(p.seconds || 0), rec.width ? `${rec.width}×${rec.height}` : null,
          rec.base && rec.fps !== rec.base.fps ? `${rec.fps} fps` : null].filter(Boolean).join(" · ")),
        extend);
    } else {
      const canceled = gen.status === "canceled";
      media = h("div", { class: "media" }, h("div", { class: `state ${gen.status}` }, h("div", {},
        icon(canceled ? "x" : "alert"),
        canceled ? "Canceled. Credits released." : (gen.error && gen.error.message) || "This generation failed.",
        gen.error ? h("span", { class: "error-code" }, gen.error.code) : null)));
    }
    const fb = this.feedback[gen.id] || {};
    const meta = [p.seed !== undefined ? `seed ${p.seed}` : null, p.guidance !== undefined ? `cfg ${p.guidance}` : null,
      ago(gen.created_at)].filter(Boolean);
    const used = [["extend", "extended"], ["storyboard", "storyboard"], ["keyframes", "keyframes"], ["camera", "camera"],
      ["motion_brush", "brush"]].filter(([k]) => p[k]).map(([, label]) => label);
    const actions = h("div", { class: "card-actions" });
    if (gen.status === "succeeded") {
      const up = h("button", { class: "icon-btn thumb-up", type: "button", "aria-label": "Thumbs up", "aria-pressed": String(fb.thumb === "up"), title: "Good" }, icon("thumb-up"));
      const down = h("button", { class: "icon-btn thumb-down", type: "button", "aria-label": "Thumbs down", "aria-pressed": String(fb.thumb === "down"), title: "Not good" }, icon("thumb-down"));
      up.addEventListener("click", () => this.rate(gen.id, { thumb: "up" }, actions));
      down.addEventListener("click", () => this.rate(gen.id, { thumb: "down" }, actions));
      const stars = h("div", { class: "stars", role: "group", "aria-label": "Rating" }, ...[1, 2, 3, 4, 5].map((n) =>
        h("button", { class: `star${fb.rating >= n ? " on" : ""}`, type: "button", "aria-label": `Rate ${n} of 5`, "aria-pressed": String(fb.rating === n),
          onclick: () => this.rate(gen.id, { rating: n }, actions) }, icon("star"))));
      actions.append(up, down, stars);
    }
    actions.append(h("span", { class: "spacer" }),
      h("button", { class: "icon-btn", type: "button", title: "Reuse parameters", "aria-label": "Reuse parameters", onclick: () => this.onReuse(p) }, icon("reuse")));
    if (video) {
      actions.append(h("a", { class: "icon-btn", href: video.url, download: `${gen.id}.mp4`, title: "Download MP4", "aria-label": "Download MP4" }, icon("download")));
    }
    const del = h("button", { class: "icon-btn", type: "button", title: "Delete", "aria-label": "Delete" }, icon("trash"));
    del.addEventListener("click", () => this._delete(gen.id, del));
    actions.append(del);
    return h("article", { class: `card${fresh ? " fresh" : ""}`, id: `card-${gen.id}`, dataset: { status: gen.status }, "aria-label": gen.prompt },
      media,
      h("div", { class: "card-body" },
        h("p", { class: "card-prompt", title: gen.prompt }, gen.prompt),
        h("div", { class: "card-meta" }, ...meta.map((m) => h("span", {}, m))),
        used.length ? h("div", { class: "card-controls", "aria-label": "Controls used" }, ...used.map((u) => h("span", { class: "mini-chip" }, u))) : null),
      actions);
  }

  async rate(id, body, actions) {
    try {
      await this.api.feedback(id, body);
      const fb = { ...(this.feedback[id] || {}), ...body };
      this.feedback[id] = fb;
      store.set(this.fbKey, this.feedback);
      $(".thumb-up", actions)?.setAttribute("aria-pressed", String(fb.thumb === "up"));
      $(".thumb-down", actions)?.setAttribute("aria-pressed", String(fb.thumb === "down"));
      actions.querySelectorAll(".star").forEach((s, i) => {
        s.classList.toggle("on", fb.rating >= i + 1);
        s.setAttribute("aria-pressed", String(fb.rating === i + 1));
      });
      announce(body.rating ? `Rated ${body.rating} of 5. Thanks.` : body.thumb === "up" ? "Marked as good. Thanks." : "Marked as not good. Thanks.");
    } catch (p) {
      toast({ kind: "error", title: "Could not save feedback", detail: p.detail, code: p.code });
    }
  }

  async _delete(id, button) {
    // Two clicks: the first arms the button for three seconds.
    if (!button.classList.contains("danger-armed")) {
      button.classList.add("danger-armed");
      button.setAttribute("aria-label", "Click again to delete");
      button.title = "Click again to delete";
      setTimeout(() => { button.classList.remove("danger-armed"); button.setAttribute("aria-label", "Delete"); button.title = "Delete"; }, 3000);
      return;
    }
    try {
      await this.api.remove(id);
      this.gens.delete(id);
      document.getElementById(`card-${id}`)?.remove();
      this._empty();
      this._compare();
      toast({ title: "Deleted", timeout: 2000 });
    } catch (p) {
      toast({ kind: "error", title: "Could not delete", detail: p.detail, code: p.code });
    }
  }

  // ---------- A/B ----------

  _compare() {
    // The newest pair of finished takes of one prompt that has not been judged yet.
    const norm = (s) => s.toLowerCase().split(/\s+/).filter(Boolean).join(" ");
    const byPrompt = new Map();
    const done = [...this.gens.values()].filter((g) => g.status === "succeeded" && g.outputs)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    let pair = null;
    for (const g of done) {
      const key = norm(g.prompt);
      for (const other of byPrompt.get(key) || []) {
        const k = [g.id, other.id].sort().join("|");
        if (!this.judged.has(k)) { pair = [other, g]; break; }
      }
      if (pair) break;
      byPrompt.set(key, [...(byPrompt.get(key) || []), g]);
    }
    this.pair = pair;
    const section = $("#compare-section");
    section.hidden = !pair;
    if (!pair) return;
    $("#compare-prompt").textContent = `“${pair[0].prompt}”`;
    const takes = pair.map((g, i) => {
      const v = h("video", { src: g.outputs.video.url, poster: g.outputs.poster.url, controls: true, loop: true, muted: true, playsinline: true, preload: "metadata", "aria-label": `Take ${"AB"[i]}` });
      v.muted = true;
      return h("div", { class: "take" },
        h("div", { class: "media" }, h("span", { class: "take-label" }, "AB"[i]), v),
        h("div", { class: "meta" }, h("span", {}, `seed ${(g.params || {}).seed ?? "?"}`), h("span", {}, ago(g.created_at))),
        h("button", { class: "btn btn-block", type: "button", onclick: () => this._judge(pair, i) }, icon("check"), h("span", {}, `${"AB"[i]} is better`)));
    });
    $("#compare-grid").replaceChildren(...takes);
    // play both in step, so that the comparison is fair
    const vids = takes.map((t) => t.querySelector("video"));
    vids.forEach((v) => v.addEventListener("play", () => vids.forEach((o) => { if (o !== v && o.paused) { o.currentTime = v.currentTime; o.play().catch(() => {}); } })));
  }

  async _judge(pair, winner) {
    if (!pair) return;
    const key = [pair[0].id, pair[1].id].sort().join("|");
    if (winner !== null) {
      try {
        await this.api.prefer(pair[winner].id, pair[1 - winner].id);
        toast({ title: `Take ${"AB"[winner]} preferred`, detail: "Pairs like this one teach the next model what you like.", timeout: 3000 });
      } catch (p) {
        toast({ kind: "error", title: "Could not save your choice", detail: p.detail, code: p.code });
        return;
      }
    }
    this.judged.add(key);
    store.set(this.judgedKey, [...this.judged].slice(-500));
    this._compare();
  }
}
