// Small DOM helpers shared by the studio's modules: element builder, icons, toasts, formatting.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function h(tag, attrs = {}, ...children) {
  // h("button", {class: "btn", onclick: f, "aria-label": "x"}, "text", otherNode)
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function icon(name, cls = "icon") {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export function toast({ title, detail = "", code = "", kind = "ok", timeout = 5200 }) {
  // kind: ok | error | warn. Errors stay a little longer: they are read, not glanced at.
  const box = $("#toasts");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    icon(kind === "ok" ? "check" : "alert"),
    h("div", { class: "toast-body" },
      h("div", { class: "toast-title" }, title),
      detail ? h("div", { class: "toast-detail" }, detail) : null,
      code ? h("div", { class: "toast-code" }, code) : null),
    h("button", { class: "icon-btn", "aria-label": "Dismiss", onclick: () => el.remove() }, icon("x")));
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? timeout * 1.6 : timeout);
  while (box.children.length > 4) box.firstChild.remove();
  return el;
}

export function announce(text) {
  // Say something to screen readers without a visible toast (the control's own state shows it).
  const live = $("#announcer");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 50);
}

export function radios(group, onChange) {
  // A role=radiogroup of buttons: arrow keys move, click selects; returns {get, set}.
  const buttons = () => $$('[role="radio"]', group);
  const set = (value, fire = true) => {
    for (const b of buttons()) {
      const on = b.dataset.value === String(value);
      b.setAttribute("aria-checked", String(on));
      b.tabIndex = on ? 0 : -1;
    }
    if (fire && onChange) onChange(String(value));
  };
  group.addEventListener("click", (e) => {
    const b = e.target.closest('[role="radio"]');
    if (b && group.contains(b) && !b.disabled) set(b.dataset.value);
  });
  group.addEventListener("keydown", (e) => {
    const list = buttons().filter((b) => !b.disabled && !b.hidden); // arrows skip what is off
    const i = list.indexOf(document.activeElement);
    if (i < 0) return;
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
    if (!step) return;
    e.preventDefault();
    const next = list[(i + step + list.length) % list.length];
    next.focus();
    set(next.dataset.value);
  });
  const get = () => (buttons().find((b) => b.getAttribute("aria-checked") === "true") || {}).dataset?.value;
  const current = get();
  if (current !== undefined) set(current, false);
  return { get, set };
}

export function fillRange(input) {
  // Paint the track up to the thumb (WebKit has no ::-moz-range-progress).
  const pct = ((input.value - input.min) / (input.max - input.min || 1)) * 100;
  input.style.setProperty("--fill", `${pct}%`);
}

const rtf = typeof Intl !== "undefined" && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", { numeric: "auto" }) : null;

export function ago(iso) {
  if (!iso) return "";
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  const a = Math.abs(s);
  if (!rtf) return new Date(iso).toLocaleString();
  if (a < 45) return "just now";
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

export function fmtLength(s) {
  // 2 s, 1.5 s, 1 min 30 s, 10 min
  s = Number(s);
  if (s < 60) return `${Number(s.toFixed(1))} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - 60 * m);
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

export function fmtEta(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  if (s < 1) return "under 1 s left";
  if (s < 90) return `~${Math.round(s)} s left`;
  return `~${Math.round(s / 60)} min left`;
}

export const store = {
  get(key, fallback) {
    try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode: keep going */ }
  },
  del(key) { try { localStorage.removeItem(key); } catch { /* ignore */ } },
};
