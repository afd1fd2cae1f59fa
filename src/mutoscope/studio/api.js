// The mutoscope HTTP API, as the studio uses it: JSON in, JSON or RFC 9457 problems out.
//
// Every call sends the API key as `Authorization: Bearer`. Browsers' EventSource and <video>
// cannot send headers, so live events and files use the signed links that each generation
// carries (`events_url`, `outputs.video.url`).

export class Problem extends Error {
  // An error answer: `status`, dotted `code`, `title`, `detail`, plus extension members.
  constructor(status, body) {
    const detail = (body && (body.detail || body.title)) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = (body && body.code) || `http.${status}`;
    this.title = (body && body.title) || "Request failed";
    this.detail = detail;
    this.body = body || {};
  }
}

export function newKey() {
  // An Idempotency-Key. crypto.randomUUID exists only in secure contexts (https, localhost).
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class Api {
  constructor(key, base = "") {
    this.key = key;
    this.base = base;
  }

  async request(method, path, { json, form, headers = {}, auth = true } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (auth && this.key) h.Authorization = `Bearer ${this.key}`;
    let body;
    if (json !== undefined) {
      h["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // multipart: the browser sets the boundary
    }
    let res;
    try {
      res = await fetch(this.base + path, { method, headers: h, body });
    } catch (e) {
      throw new Problem(0, { code: "network.unreachable", title: "Server unreachable", detail: "Check your connection and that the server is running." });
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text.slice(0, 200) };
    }
    if (!res.ok) throw new Problem(res.status, data);
    return data;
  }

  // account
  me() { return this.request("GET", "/v1/me"); }
  credits() { return this.request("GET", "/v1/credits"); }
  ledger(limit = 20) { return this.request("GET", `/v1/credits/ledger?limit=${limit}`); }
  models() { return this.request("GET", "/v1/models", { auth: false }); }
  redeem(invite_code, email, name) {
    const json = { invite_code, name: name || "" };
    if (email) json.email = email;
    return this.request("POST", "/v1/accounts", { json, auth: false });
  }
  joinWaitlist(email, name, note) {
    return this.request("POST", "/v1/waitlist", { json: { email, name: name || "", note: note || "" }, auth: false });
  }

  // generations
  list({ cursor = null, status = null, limit = 24 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    if (status) q.set("status", status);
    return this.request("GET", `/v1/generations?${q}`);
  }
  get(id) { return this.request("GET", `/v1/generations/${id}`); }
  create(body, key = newKey()) {
    return this.request("POST", "/v1/generations", { json: body, headers: { "Idempotency-Key": key } });
  }
  cancel(id) { return this.request("POST", `/v1/generations/${id}/cancel`); }
  remove(id) { return this.request("DELETE", `/v1/generations/${id}`); }
  feedback(id, body) { return this.request("POST", `/v1/generations/${id}/feedback`, { json: body }); }
  prefer(chosen, rejected) { return this.request("POST", "/v1/preferences", { json: { chosen, rejected } }); }
  upload(blob, filename = "image.png") {
    const form = new FormData();
    form.append("file", blob, filename);
    return this.request("POST", "/v1/uploads", { form });
  }
}

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

export function watch(gen, { onStatus, onProgress, onOutput, onEnd }) {
  // Live events of one generation over SSE; returns a function that stops watching.
  // EventSource resumes by itself with Last-Event-ID after a dropped connection; the server ends
  // the stream after the final status, so we close it then (or it would reconnect forever).
  const es = new EventSource(gen.events_url);
  let ended = false;
  const end = (status) => {
    if (ended) return;
    ended = true;
    es.close();
    onEnd && onEnd(status);
  };
  const parse = (e) => {
    try { return JSON.parse(e.data); } catch { return {}; }
  };
  es.addEventListener("status", (e) => {
    const d = parse(e);
    onStatus && onStatus(d);
    if (TERMINAL.has(d.status)) end(d.status);
  });
  es.addEventListener("progress", (e) => onProgress && onProgress(parse(e)));
  es.addEventListener("output", (e) => onOutput && onOutput(parse(e)));
  return () => end(null);
}
