// mutoscope studio: sign in (API key or invite code), then compose, watch, play, rate and compare.
//
// Plain ES modules, no build step: api.js (HTTP + SSE), ui.js (DOM helpers), composer.js (the form
// and its format), controls.js (keyframes, camera, storyboard, extend), brush.js (the motion brush),
// gallery.js (queue, gallery, A/B).

import { Api, Problem } from "./api.js";
import { Composer } from "./composer.js";
import { Gallery } from "./gallery.js";
import { $, $$, h, store, toast } from "./ui.js";

const KEY = "mutoscope.apiKey";
let api = null;
let state = { me: null, credits: null, models: [], costs: null };

// ---------- signing in ----------

function showSignin(message) {
  $("#studio").hidden = true;
  $("#signin").hidden = false;
  const err = $("#signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#signin-key").focus();
}

function signinTabs() {
  const tabs = $$(".tab");
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(`#${t.getAttribute("aria-controls")}`).hidden = !on;
    }
    $("#new-key").hidden = true;
    $("#signin-error").hidden = true;
  };
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
}

async function busy(form, fn) {
  const button = $('button[type="submit"]', form);
  const label = $("span", button);
  const text = label.textContent;
  button.disabled = true;
  label.textContent = "Working…";
  $("#signin-error").hidden = true;
  try {
    await fn();
  } catch (p) {
    const err = $("#signin-error");
    err.textContent = p instanceof Problem ? `${p.detail}` : String(p);
    err.hidden = false;
  } finally {
    button.disabled = false;
    label.textContent = text;
  }
}

function signinForms() {
  $("#panel-key").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      const key = $("#signin-key").value.trim();
      const probe = new Api(key);
      await probe.me(); // 401 if the key is wrong: stay here and say so
      store.set(KEY, key);
      await start(key);
    });
  });
  $("#panel-invite").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      const res = await new Api(null).redeem($("#invite-code").value.trim(), $("#invite-email").value.trim(), $("#invite-name").value.trim());
      $("#panel-invite").hidden = true;
      $("#new-key-value").textContent = res.api_key;
      $("#new-key").hidden = false;
      $("#continue-key").onclick = () => { store.set(KEY, res.api_key); start(res.api_key); };
      $("#continue-key").focus();
    });
  });
  $("#copy-key").addEventListener("click", async () => {
    const text = $("#new-key-value").textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents($("#new-key-value"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
    $("#copy-key span").textContent = "Copied";
  });
  $("#panel-waitlist").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      await new Api(null).joinWaitlist($("#wait-email").value.trim(), $("#wait-name").value.trim(), $("#wait-note").value.trim());
      e.target.replaceChildren(h("div", { class: "callout callout-success" },
        h("div", {}, h("h2", {}, "You're on the list"), h("p", {}, "We'll email an invite code when a seat opens. Redeem it under “Invite code”."))));
    });
  });
}

// ---------- the studio ----------

async function refreshCredits() {
  try {
    const c = await api.credits();
    state.credits = c.balance;
    state.costs = c.costs;
    $("#credits-balance").textContent = c.balance.toLocaleString();
    const held = $("#credits-reserved");
    held.hidden = !c.reserved;
    held.textContent = c.reserved ? `· ${c.reserved} held` : "";
    const rate = (c.costs && c.costs.rate_per_second && c.costs.rate_per_second.base) || 1;
    $("#credits-rate").textContent = `${rate} credit${rate === 1 ? "" : "s"} per started second`;
    composer && composer.refreshCost();
  } catch (p) {
    if (p.status === 401) signOut("Your API key is no longer accepted. Sign in again.");
  }
}

async function refreshModels() {
  // The newest online model drives the form; poll until a worker has registered one.
  try {
    const res = await api.models();
    state.models = res.data;
    const model = res.data.find((m) => m.online) || res.data[0] || null;
    const pill = $("#model-pill");
    pill.classList.toggle("online", !!(model && model.online));
    pill.classList.toggle("offline", !(model && model.online));
    $("#model-name").textContent = model ? model.id : "No model online";
    const banner = $("#banner");
    banner.hidden = !!(model && model.online);
    banner.textContent = model ? `The model “${model.id}” is offline: new videos wait in the queue until a worker is back.`
      : "Waiting for a worker to load a model. You can queue videos now; they start as soon as it is up.";
    composer.setModel(model, res.costs || state.costs);
    if (!(model && model.online)) setTimeout(refreshModels, 3000);
  } catch {
    setTimeout(refreshModels, 5000);
  }
}

async function openLedger() {
  const list = $("#ledger");
  list.replaceChildren(h("li", { class: "muted" }, "Loading…"));
  try {
    const res = await api.ledger(20);
    const label = { grant: "Credits added", reserve: "Held for a video", charge: "Charged", release: "Released", refund: "Refunded" };
    list.replaceChildren(...(res.data.length ? res.data.map((r) => h("li", {},
      h("span", {}, label[r.kind] || r.kind, r.note ? h("span", { class: "muted" }, ` · ${r.note}`) : null),
      h("span", { class: `delta ${r.delta >= 0 ? "plus" : "minus"}` }, `${r.delta > 0 ? "+" : ""}${r.delta}`))) : [h("li", { class: "muted" }, "No activity yet.")]));
  } catch (p) {
    list.replaceChildren(h("li", { class: "muted" }, p.detail));
  }
}

function popovers() {
  const pairs = [["#credits-btn", "#credits-pop", openLedger], ["#account-btn", "#account-menu", null]];
  for (const [btnSel, popSel, onOpen] of pairs) {
    const btn = $(btnSel);
    const pop = $(popSel);
    btn.addEventListener("click", (e) => {
      e.stopPropagation();
      const open = pop.hidden;
      $$(".popover").forEach((p) => { p.hidden = true; });
      $$("[aria-expanded]").forEach((b) => b.setAttribute("aria-expanded", "false"));
      pop.hidden = !open;
      btn.setAttribute("aria-expanded", String(open));
      if (open && onOpen) onOpen();
    });
    pop.addEventListener("click", (e) => e.stopPropagation());
  }
  const close = () => {
    $$(".popover").forEach((p) => { p.hidden = true; });
    $$("[aria-expanded]").forEach((b) => b.setAttribute("aria-expanded", "false"));
  };
  document.addEventListener("click", close);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  $("#signout").addEventListener("click", () => signOut());
}

function signOut(message) {
  store.del(KEY);
  location.hash = "";
  if (message) sessionStorage.setItem("mutoscope.signinMessage", message);
  location.reload();
}

let composer = null;
let gallery = null;

async function start(key) {
  api = new Api(key);
  let me;
  try {
    me = await api.me();
  } catch (p) {
    store.del(KEY);
    showSignin(p.status === 401 ? "That key was not accepted. Check it and try again." : p.detail);
    return;
  }
  state.me = me;
  $("#signin").hidden = true;
  $("#studio").hidden = false;
  $("#account-name").textContent = me.name || "Your account";
  $("#account-email").textContent = me.email || me.id;
  $("#avatar-initial").textContent = (me.name || me.email || "?").trim()[0].toUpperCase();
  $("#credits-balance").textContent = me.credits.balance.toLocaleString();
  state.credits = me.credits.balance;

  if (!composer) {
    composer = new Composer({ api, getCredits: () => state.credits, getGeneration: (id) => gallery.gens.get(id),
      onQueued: (gens) => { gens.forEach((g) => gallery.track(g)); refreshCredits(); } });
    gallery = new Gallery({ api, userId: me.id, onCredits: refreshCredits,
      onReuse: (p) => { composer.fill(p); toast({ title: "Parameters loaded", detail: "Edit them, then generate again.", timeout: 2500 }); },
      onExtend: (g) => { composer.extendFrom(g); toast({ title: "Extending this video", detail: "Describe what happens next, pick a length, then generate.", timeout: 3000 }); } });
    popovers();
  }
  await refreshCredits();
  await refreshModels();
  await gallery.load();
  $("#prompt").focus();
}

function main() {
  signinTabs();
  signinForms();
  const message = sessionStorage.getItem("mutoscope.signinMessage");
  sessionStorage.removeItem("mutoscope.signinMessage");
  const key = store.get(KEY, null);
  if (key) start(key);
  else showSignin(message);
}

main();
