// Phone simulator page: plain browser JavaScript, no build step. Talks to /simulator/api/* and listens to
// /simulator/api/events (Server-Sent Events) so threads update live. User text is only ever set as textContent.

const API = "/simulator/api";
const $ = (id) => document.getElementById(id);

const state = {
  channels: [],
  /** id → message */
  messages: new Map(),
  phone: localStorage.getItem("sim.phone") || "",
  channel: localStorage.getItem("sim.channel") || "",
  /** phones opened on this page that have no messages yet */
  opened: new Set(),
};

// ---- helpers ------------------------------------------------------------------------------------------

async function api(method, path, body) {
  const res = await fetch(API + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: text };
  }
  return { ok: res.ok, status: res.status, json };
}

/** Loose normalisation for what people type: keeps a leading +, drops spaces and punctuation. */
function normalisePhone(raw) {
  const v = raw.trim().replace(/^00/, "+");
  const digits = v.replace(/[^\d]/g, "");
  if (digits.length < 6 || digits.length > 15) return null;
  return `+${digits}`;
}

/** +16505550123 → +1 650 555 0123 (NANP), other numbers grouped loosely. */
function prettyPhone(p) {
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(p);
  if (m) return `+1 ${m[1]} ${m[2]} ${m[3]}`;
  return p.replace(/^(\+\d{2})(\d{3})(\d{3})(\d+)$/, "$1 $2 $3 $4");
}

function initials(p) {
  return p.slice(-2);
}

function timeOf(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function stampOf(iso) {
  const d = new Date(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? `Today ${timeOf(iso)}` : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function customerOf(m) {
  return m.direction === "mo" ? m.from : m.to;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

// ---- rendering ----------------------------------------------------------------------------------------

function threadOf(phone) {
  return [...state.messages.values()]
    .filter((m) => customerOf(m) === phone)
    .sort((a, b) => (a.at < b.at ? -1 : 1));
}

function statusLine(m) {
  switch (m.status) {
    case "sending":
      return { text: "Sending…", cls: "pending" };
    case "queued":
      return { text: "Queued", cls: "pending" };
    case "sent":
      return { text: "Sent", tick: "✓" };
    case "delivered":
      return { text: m.direction === "mo" ? "Delivered to the bridge" : "Delivered", tick: "✓✓" };
    case "undelivered":
      return { text: `Undelivered${m.error ? ` — ${m.error}` : ""}`, cls: "failed" };
    case "failed":
      return { text: `Not delivered${m.error ? ` — ${m.error}` : ""}`, cls: "failed" };
    default:
      return { text: m.status };
  }
}

function mediaNode(media) {
  if (media.content_type?.startsWith("image/")) {
    const a = el("a", { href: media.url, target: "_blank", rel: "noopener noreferrer" });
    const img = el("img", { src: media.url, alt: "attached image" });
    // Images grow the thread after it was scrolled; keep the newest message in view.
    img.addEventListener("load", () => {
      const list = $("thread");
      if (list.scrollHeight - list.scrollTop - list.clientHeight < img.clientHeight + 60)
        list.scrollTop = list.scrollHeight;
    });
    a.append(img);
    return a;
  }
  return el("a", { href: media.url, target: "_blank", rel: "noopener noreferrer", text: `📎 ${media.url}` });
}

function renderThread() {
  const list = $("thread");
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren();
  const msgs = state.phone ? threadOf(state.phone) : [];
  if (!state.phone) {
    list.append(
      el("li", { class: "empty", text: "Type a customer phone number on the left to open its messages." }),
    );
  } else if (msgs.length === 0) {
    list.append(
      el("li", {
        class: "empty",
        text: "No messages yet. Say hello — it reaches the bridge as an inbound SMS.",
      }),
    );
  }
  let lastAt = 0;
  msgs.forEach((m, i) => {
    const t = Date.parse(m.at);
    if (t - lastAt > 10 * 60 * 1000) list.append(el("li", { class: "stamp", text: stampOf(m.at) }));
    lastAt = t;
    const bubble = el("div", { class: "bubble" });
    for (const media of m.media || []) bubble.append(mediaNode(media));
    if (m.body) bubble.append(document.createTextNode(m.body));
    const next = msgs[i + 1];
    // Like a phone: status under the last bubble of a run, and under every failure.
    const showMeta = !next || next.direction !== m.direction || m.status !== "delivered";
    const item = el("li", { class: `msg ${m.direction} ${m.status}`, title: `${m.id} · ${m.at}` }, bubble);
    if (showMeta) {
      const s = statusLine(m);
      const meta = el("div", { class: `meta ${s.cls || ""}` });
      if (s.tick) meta.append(el("span", { class: "tick", "aria-hidden": "true", text: s.tick }));
      meta.append(document.createTextNode(`${s.text} · ${timeOf(m.at)}`));
      item.append(meta);
    }
    list.append(item);
  });
  if (stick) list.scrollTop = list.scrollHeight;
}

function renderPhones() {
  const byPhone = new Map();
  for (const m of state.messages.values()) {
    const p = customerOf(m);
    const cur = byPhone.get(p);
    if (!cur || cur.at < m.at) byPhone.set(p, m);
  }
  for (const p of state.opened) if (!byPhone.has(p)) byPhone.set(p, null);
  const rows = [...byPhone.entries()].sort((a, b) => ((a[1]?.at || "~") < (b[1]?.at || "~") ? 1 : -1));
  const ul = $("phones");
  ul.replaceChildren();
  for (const [phone, last] of rows) {
    const btn = el(
      "button",
      { type: "button", class: "phone-item", "aria-current": phone === state.phone ? "true" : "false" },
      el("span", { class: "avatar", "aria-hidden": "true", text: initials(phone) }),
      el("span", { class: "num", text: prettyPhone(phone) }),
      el("span", { class: "time", text: last ? timeOf(last.at) : "" }),
      el("span", {
        class: `preview ${last && (last.status === "failed" || last.status === "undelivered") ? "failed" : ""}`,
        text: last ? `${last.direction === "mo" ? "You: " : ""}${last.body || "📎 media"}` : "new phone",
      }),
    );
    btn.addEventListener("click", () => openPhone(phone));
    ul.append(el("li", {}, btn));
  }
  $("phones-empty").hidden = rows.length > 0;
}

function renderHeader() {
  $("me").textContent = state.phone ? prettyPhone(state.phone) : "—";
  const sel = $("channel");
  sel.replaceChildren();
  const numbers = state.channels.flatMap((c) => c.numbers.map((n) => ({ n, id: c.id })));
  if (numbers.length === 0) sel.append(el("option", { value: "", text: "no simulator channel" }));
  for (const { n, id } of numbers) {
    sel.append(el("option", { value: n, text: `${prettyPhone(n)} (${id})`, selected: n === state.channel }));
  }
  if (!numbers.some((x) => x.n === state.channel)) state.channel = numbers[0]?.n || "";
  sel.value = state.channel;
  $("send").disabled = !state.phone || !state.channel;
}

function render() {
  renderHeader();
  renderPhones();
  renderThread();
}

function openPhone(phone) {
  state.phone = phone;
  state.opened.add(phone);
  localStorage.setItem("sim.phone", phone);
  // Answer to the number this customer last talked to, as a phone would.
  const last = threadOf(phone).at(-1);
  if (last) state.channel = last.direction === "mo" ? last.to : last.from;
  $("send-error").hidden = true;
  render();
  $("thread").scrollTop = $("thread").scrollHeight;
  $("text").focus();
}

// ---- sending ------------------------------------------------------------------------------------------

async function send() {
  const text = $("text").value;
  const mediaUrl = $("media").hidden ? "" : $("media").value.trim();
  if (!state.phone || !state.channel || (!text.trim() && !mediaUrl)) return;
  $("text").value = "";
  autosize();
  $("send-error").hidden = true;
  const body = { from: state.phone, to: state.channel, body: text };
  if (mediaUrl) body.media = [mediaUrl];
  const r = await api("POST", "/messages", body);
  if (r.json?.message) upsert(r.json.message);
  if (!r.ok) {
    const bridge = r.json?.bridge
      ? ` (bridge said ${r.json.bridge.status}: ${r.json.bridge.body.slice(0, 120)})`
      : "";
    $("send-error").textContent = `${r.json?.error || `HTTP ${r.status}`}${bridge}`;
    $("send-error").hidden = false;
    if (!r.json?.message) $("text").value = text; // nothing was sent: keep what was typed
  } else if (mediaUrl) {
    $("media").value = "";
  }
  render();
}

function autosize() {
  const t = $("text");
  t.style.height = "auto";
  t.style.height = `${Math.min(t.scrollHeight + 2, 120)}px`;
}

// ---- faults -------------------------------------------------------------------------------------------

let nextQueue = [];

function showFaults(f) {
  const form = $("faults-form");
  for (const k of ["retryable", "permanent", "opted_out", "undelivered"])
    form.elements[k].value = Math.round(f[k] * 100);
  form.elements.slow.value = Math.round(f.slow.probability * 100);
  form.elements.delay_ms.value = f.slow.delay_ms;
  nextQueue = [...f.next];
  syncOutputs();
  renderQueue();
  const active =
    ["retryable", "permanent", "opted_out", "undelivered"].some((k) => f[k] > 0) || f.slow.probability > 0;
  const badge = $("faults-badge");
  badge.hidden = !active && f.next.length === 0;
  badge.textContent = f.next.length ? `${f.next.length} queued` : "on";
}

function syncOutputs() {
  for (const input of $("faults-form").querySelectorAll('input[type="range"]')) {
    input.nextElementSibling.textContent = `${input.value}%`;
  }
}

function renderQueue() {
  const box = $("next-queue");
  box.replaceChildren();
  if (nextQueue.length === 0) box.append(el("span", { class: "muted small", text: "none queued" }));
  for (const k of nextQueue)
    box.append(el("span", { class: `chip ${k === "ok" || k === "slow" ? "" : "bad"}`, text: k }));
}

function faultsFromForm() {
  const e = $("faults-form").elements;
  const p = (name) => Number(e[name].value) / 100;
  return {
    retryable: p("retryable"),
    permanent: p("permanent"),
    opted_out: p("opted_out"),
    undelivered: p("undelivered"),
    slow: { probability: p("slow"), delay_ms: Number(e.delay_ms.value) || 0 },
    next: nextQueue,
  };
}

async function applyFaults(f) {
  const r = await api("PUT", "/faults", f);
  if (r.ok) showFaults(r.json);
  else alert(r.json?.error || `could not set faults (HTTP ${r.status})`);
}

// ---- live updates -------------------------------------------------------------------------------------

function upsert(m) {
  state.messages.set(m.id, m);
}

async function loadAll() {
  const [channels, messages, faults] = await Promise.all([
    api("GET", "/channels"),
    api("GET", "/messages"),
    api("GET", "/faults"),
  ]);
  if (channels.ok) state.channels = channels.json.channels;
  if (messages.ok) {
    state.messages.clear();
    for (const m of messages.json.messages) upsert(m);
  }
  if (faults.ok) showFaults(faults.json);
  render();
}

function connect() {
  const live = $("live");
  const es = new EventSource(`${API}/events`);
  es.addEventListener("ready", () => {
    live.textContent = "live";
    live.className = "live on";
    loadAll(); // catch up on anything missed while disconnected
  });
  es.addEventListener("message", (e) => {
    upsert(JSON.parse(e.data));
    renderPhones();
    renderThread();
  });
  es.addEventListener("reset", () => {
    state.messages.clear();
    render();
  });
  es.onerror = () => {
    live.textContent = "offline — retrying";
    live.className = "live off";
  };
}

// ---- wiring -------------------------------------------------------------------------------------------

$("new-phone").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("new-phone-input");
  const p = normalisePhone(input.value);
  $("new-phone-error").hidden = !!p;
  if (!p) {
    $("new-phone-error").textContent = "Type a phone number with its country code, e.g. +1 650 555 0123.";
    return;
  }
  input.value = "";
  openPhone(p);
});

$("channel").addEventListener("change", (e) => {
  state.channel = e.target.value;
  localStorage.setItem("sim.channel", state.channel);
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});

$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
$("text").addEventListener("input", autosize);

$("attach").addEventListener("click", () => {
  const media = $("media");
  media.hidden = !media.hidden;
  $("attach").setAttribute("aria-expanded", String(!media.hidden));
  (media.hidden ? $("text") : media).focus();
});

$("faults-form").addEventListener("input", syncOutputs);
$("faults-form").addEventListener("submit", (e) => {
  e.preventDefault();
  applyFaults(faultsFromForm());
});
$("faults-clear").addEventListener("click", async () => {
  const r = await api("DELETE", "/faults");
  if (r.ok) showFaults(r.json);
});
for (const b of document.querySelectorAll("[data-next]")) {
  b.addEventListener("click", () => {
    nextQueue.push(b.dataset.next);
    renderQueue();
  });
}

$("clear-all").addEventListener("click", async () => {
  if (confirm("Delete every simulated message on every phone?")) await api("DELETE", "/messages");
});

if (!state.phone) state.phone = "+16505550100";
state.opened.add(state.phone);
loadAll().then(() => {
  if (state.phone) openPhone(state.phone);
});
connect();
