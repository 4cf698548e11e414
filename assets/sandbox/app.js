// smsbridge sandbox inbox: vanilla JS, no build step. State comes from the REST API; /api/events says when to refresh.

const $ = (sel) => document.querySelector(sel);

/** Creates an element; strings become text nodes, so message bodies can never inject markup. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(2)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : {};
  if (!res.ok) throw new Error(json.error || `HTTP ${res.status}`);
  return json;
}

const state = {
  channels: [],
  staff: [],
  conversations: [],
  selected: null,
  current: null,
  requests: [],
  selectedRequest: null,
  tab: "details",
  chaos: {},
  clock: { now: new Date().toISOString(), fixed: false },
  seen: new Set(),
  /** True while a refresh caused by a live event renders: only then is a changed conversation flagged "new". */
  live: false,
};

// ---- formatting ----

const COLORS = ["#6366f1", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899"];
function colorFor(s) {
  let n = 0;
  for (const c of s) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return COLORS[n % COLORS.length];
}
function initials(name, phone) {
  if (name) {
    const parts = name.trim().split(/\s+/);
    return ((parts[0]?.[0] ?? "") + (parts.length > 1 ? (parts.at(-1)?.[0] ?? "") : "")).toUpperCase() || "#";
  }
  return phone.slice(-2);
}
function parseTime(iso) {
  // The protocol's own example writes "+0000"; Date wants "+00:00".
  const d = new Date(String(iso).replace(/([+-]\d{2})(\d{2})$/, "$1:$2"));
  return Number.isNaN(d.getTime()) ? null : d;
}
function timeOf(iso) {
  const d = parseTime(iso);
  return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : String(iso);
}
function dayOf(iso) {
  const d = parseTime(iso);
  return d
    ? d.toLocaleDateString([], { weekday: "short", year: "numeric", month: "short", day: "numeric" })
    : "";
}
function ago(iso) {
  const d = parseTime(iso);
  if (!d) return "";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return "now";
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${Math.round(s / 3600)}h`;
  return d.toLocaleDateString([], { month: "short", day: "numeric" });
}
const IMAGE = /\.(png|jpe?g|gif|webp|avif|svg)(\?.*)?$/i;

// ---- conversation list ----

function filters() {
  const p = new URLSearchParams();
  const q = $("#search").value.trim();
  if (q) p.set("q", q);
  if ($("#filter-channel").value) p.set("channel", $("#filter-channel").value);
  if ($("#filter-assignee").value) p.set("assignee", $("#filter-assignee").value);
  return p.toString();
}

async function loadConversations() {
  const { conversations } = await call("GET", `/api/conversations?${filters()}`);
  state.conversations = conversations;
  renderList();
  if (!state.current) {
    $("#welcome").hidden = false;
    $("#welcome h1").textContent = conversations.length ? "Pick a conversation" : "Waiting for the first SMS";
    // Someone leaving the inbox open wants the newest conversation in front of them, not an empty pane.
    if (!state.selected && conversations[0]) await select(conversations[0].slug);
  }
}

function renderList() {
  const ul = $("#conversations");
  ul.replaceChildren(
    ...state.conversations.map((c) => {
      const name = c.customer.name || c.customer.phone;
      const last = c.last_message;
      const isNew = !state.seen.has(`${c.slug}:${c.message_count}`);
      state.seen.add(`${c.slug}:${c.message_count}`);
      return h(
        "div",
        {
          class: "conversation",
          role: "option",
          "data-slug": c.slug,
          "aria-selected": c.slug === state.selected ? "true" : "false",
          onclick: () => select(c.slug),
        },
        h(
          "div",
          { class: "avatar", style: `background:${colorFor(c.customer.phone)}` },
          initials(c.customer.name, c.customer.phone),
        ),
        h("div", { class: "conv-name" }, name),
        h("div", { class: "conv-time", title: c.last_message_at }, ago(c.last_message_at)),
        h(
          "div",
          { class: "conv-preview" },
          last && last.direction === "outbound" ? h("span", { class: "you" }, "You: ") : null,
          last ? last.body || "Attachment" : "",
        ),
        h(
          "div",
          { class: "conv-tags" },
          h("span", { class: "tag" }, c.channel.name || c.channel.phone),
          c.assignee ? h("span", { class: "tag" }, `@ ${c.assignee.name}`) : null,
          last?.status === "failed" ? h("span", { class: "tag tag-failed" }, "reply failed") : null,
          isNew && state.live && c.last_message?.direction === "inbound"
            ? h("span", { class: "tag tag-new" }, "new")
            : null,
        ),
      );
    }),
  );
  $("#list-empty").hidden = state.conversations.length > 0 || !filters();
}

async function select(slug, { focusList = false } = {}) {
  state.selected = slug;
  for (const li of document.querySelectorAll(".conversation")) {
    li.setAttribute("aria-selected", li.dataset.slug === slug ? "true" : "false");
    if (li.dataset.slug === slug) li.scrollIntoView({ block: "nearest" });
  }
  if (focusList) $("#conversations").focus();
  await loadConversation();
}

function move(delta) {
  if (state.conversations.length === 0) return;
  const i = state.conversations.findIndex((c) => c.slug === state.selected);
  const next = Math.max(0, Math.min(state.conversations.length - 1, i === -1 ? 0 : i + delta));
  select(state.conversations[next].slug, { focusList: true });
}

// ---- thread ----

async function loadConversation() {
  if (!state.selected) return;
  try {
    const { conversation } = await call("GET", `/api/conversations/${encodeURIComponent(state.selected)}`);
    const sameConversation = state.current?.slug === conversation.slug;
    const grew = sameConversation && conversation.messages.length > state.current.messages.length;
    state.current = conversation;
    renderThread(!sameConversation || grew);
    renderDetails();
  } catch {
    state.current = null;
    state.selected = null;
    $("#thread").hidden = true;
    $("#welcome").hidden = false;
  }
}

function renderThread(scroll) {
  const c = state.current;
  $("#welcome").hidden = true;
  $("#thread").hidden = false;
  $("#thread-title").textContent = c.customer.name ? `${c.customer.name}` : c.customer.phone;
  $("#thread-sub").textContent = [
    c.customer.name ? c.customer.phone : null,
    `via ${c.channel.name || "?"} ${c.channel.phone}`,
    c.thread_ids.length ? `thread ${c.thread_ids.join(", ")}` : "no thread id",
  ]
    .filter(Boolean)
    .join(" · ");
  const sel = $("#assignee-select");
  sel.replaceChildren(
    h("option", { value: "" }, "Unassigned"),
    ...state.staff.map((s) =>
      h("option", { value: s.email, selected: c.assignee?.email === s.email }, s.name),
    ),
  );

  const ol = $("#messages");
  const items = [];
  let lastDay = "";
  for (const m of c.messages) {
    const day = dayOf(m.created_at);
    if (day && day !== lastDay) {
      items.push(h("li", { class: "day" }, day));
      lastDay = day;
    }
    items.push(renderMessage(m));
  }
  ol.replaceChildren(...items);
  if (scroll) ol.scrollTop = ol.scrollHeight;
}

function fileLabel(url) {
  const name = decodeURIComponent(url.split("?")[0].split("/").pop() || url);
  return h(
    "span",
    { class: "file-label" },
    h("span", { class: "file-icon" }, (name.split(".").pop() || "file").slice(0, 4)),
    name,
  );
}

function renderMessage(m) {
  const who = m.author.kind;
  const status = m.source === "reply" ? m.status : null;
  const attachments = m.attachments.length
    ? h(
        "div",
        { class: "attachments" },
        m.attachments.map((url) =>
          IMAGE.test(url)
            ? h(
                "a",
                { href: url, target: "_blank", rel: "noreferrer noopener", title: url },
                h("img", {
                  src: url,
                  alt: "",
                  loading: "lazy",
                  onerror: (e) => e.currentTarget.replaceWith(fileLabel(url)),
                }),
              )
            : h(
                "a",
                { class: "file", href: url, target: "_blank", rel: "noreferrer noopener", title: url },
                fileLabel(url),
              ),
        ),
      )
    : null;
  const failure =
    status === "failed"
      ? h(
          "div",
          { class: "failure" },
          h("strong", {}, m.webhook?.status ? `Webhook answered ${m.webhook.status}` : "Webhook not reached"),
          // "answered 500" would repeat the heading; other reasons (timeout, 202 is not "sent") are worth reading.
          m.webhook?.error && !/^answered \d+$/.test(m.webhook.error) ? h("div", {}, m.webhook.error) : null,
          m.webhook?.body ? h("pre", {}, m.webhook.body) : null,
          h(
            "button",
            { type: "button", class: "danger retry", onclick: (e) => retry(m.id, e.currentTarget) },
            "Retry",
          ),
        )
      : null;
  return h(
    "li",
    { class: `msg ${who} ${status ?? ""}`, "data-id": m.id, "data-status": m.status },
    m.body ? h("div", { class: "bubble" }, m.body) : null,
    attachments,
    failure,
    h(
      "div",
      { class: "meta" },
      h("span", {}, m.author.name || m.author.phone || who),
      h("span", { title: m.created_at }, timeOf(m.created_at)),
      m.thread_id ? h("span", { class: "chip chip-thread", title: "thread_id" }, m.thread_id) : null,
      who === "channel" ? h("span", { class: "chip chip-thread" }, "sent outside the helpdesk") : null,
      status
        ? h(
            "span",
            { class: `chip chip-${status}`, title: m.webhook?.url || "" },
            status === "sent" && m.webhook?.status ? `sent · ${m.webhook.status}` : status,
          )
        : null,
    ),
  );
}

async function retry(id, button) {
  button.disabled = true;
  button.textContent = "Retrying…";
  try {
    await call("POST", `/api/messages/${id}/retry`);
  } catch (e) {
    button.textContent = e.message;
  }
  await loadConversation();
}

async function send(e) {
  e?.preventDefault();
  if (!state.current) return;
  const body = $("#reply").value;
  const attachment = $("#reply-attachment").value.trim();
  if (!body.trim() && !attachment) return;
  const btn = $("#send");
  const err = $("#composer-error");
  btn.disabled = true;
  err.hidden = true;
  try {
    await call("POST", `/api/conversations/${encodeURIComponent(state.current.slug)}/messages`, {
      body,
      ...(attachment ? { attachments: [attachment] } : {}),
      ...($("#reply-staff").value ? { staff_email: $("#reply-staff").value } : {}),
    });
    $("#reply").value = "";
    $("#reply-attachment").value = "";
  } catch (ex) {
    err.textContent = ex.message;
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
  await loadConversation();
}

// ---- details tab ----

function renderDetails() {
  const c = state.current;
  const panel = $("#panel-details");
  if (!c) {
    panel.replaceChildren(h("p", { class: "muted" }, "Select a conversation."));
    return;
  }
  const kv = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  panel.replaceChildren(
    h(
      "dl",
      { class: "kv" },
      kv("Customer", c.customer.name || "—"),
      kv("Phone", h("code", {}, c.customer.phone)),
      kv("Channel", `${c.channel.name || "?"} (${c.channel.phone})`),
      kv("Slug", h("code", {}, c.slug)),
      kv(
        "Thread ids",
        c.thread_ids.length ? c.thread_ids.map((t) => h("div", {}, h("code", {}, t))) : "— (one-hour rule)",
      ),
      kv("Assignee", c.assignee ? `${c.assignee.name} <${c.assignee.email}>` : "Unassigned"),
      kv("Messages", String(c.message_count)),
      kv("Started", new Date(c.created_at).toLocaleString()),
      kv("Last message", new Date(c.last_message_at).toLocaleString()),
    ),
  );
}

// ---- requests tab ----

async function loadRequests() {
  const { requests } = await call("GET", "/api/requests?limit=200");
  state.requests = requests;
  renderRequests();
}

function requestLine(r) {
  const cls = r.status === null ? "x" : String(r.status)[0];
  const why = r.signature && !r.signature.ok ? r.signature.explanation : r.error || r.notes?.[0] || "";
  return h(
    "li",
    {
      class: "request",
      tabindex: "0",
      "data-id": r.id,
      "aria-current": state.selectedRequest === r.id ? "true" : "false",
      onclick: () => showRequest(r.id),
      onkeydown: (e) => e.key === "Enter" && showRequest(r.id),
    },
    h("span", { class: `pill pill-${cls}` }, r.status ?? "—"),
    h("span", { class: "what" }, r.kind === "incoming" ? `← ${r.method} ${r.url}` : `→ webhook ${r.url}`),
    h("span", { class: "when", title: r.at }, ago(r.at)),
    why ? h("span", { class: "why", title: why }, why) : null,
  );
}

function renderRequests() {
  $("#requests").replaceChildren(
    ...(state.requests.length
      ? state.requests.map(requestLine)
      : [h("li", { class: "muted" }, "No requests yet.")]),
  );
}

async function showRequest(id) {
  state.selectedRequest = id;
  renderRequests();
  const { request: r } = await call("GET", `/api/requests/${id}`);
  const detail = $("#request-detail");
  const s = r.signature;
  const verdict = s
    ? h(
        "div",
        { class: `verdict ${s.ok ? "ok" : "bad"}` },
        h(
          "strong",
          {},
          r.kind === "webhook"
            ? "Signed by the sandbox (secret #1)"
            : s.ok
              ? `Signature verified${s.matched_secret_index !== null ? ` (secret #${s.matched_secret_index + 1})` : ""}`
              : `Signature rejected${s.mistake ? `: ${s.mistake.replaceAll("-", " ")}` : ""}`,
        ),
        h("div", {}, s.explanation),
        s.variant ? h("div", {}, "Signed: ", h("em", {}, s.variant)) : null,
        h(
          "div",
          { class: "sig" },
          h("span", { class: "muted" }, "received"),
          h("code", {}, s.received ?? "(none)"),
          h("span", { class: "muted" }, "expected"),
          h("code", {}, s.expected ?? "—"),
        ),
      )
    : h(
        "div",
        { class: "verdict bad" },
        h("strong", {}, "No signature verdict"),
        h("div", {}, "The channel was not identified, so no secret could be tried."),
      );
  const pretty = (text) => {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  };
  const parts = [
    h(
      "h3",
      {},
      `${r.kind === "incoming" ? "Incoming" : "Webhook"} #${r.id} · ${r.status ?? "no answer"} · ${r.duration_ms} ms`,
    ),
    verdict,
    r.notes?.length
      ? h(
          "ul",
          { class: "notes" },
          r.notes.map((n) => h("li", {}, n)),
        )
      : null,
    r.error ? h("div", { class: "error" }, r.error) : null,
    h("h3", {}, "Headers"),
    h(
      "pre",
      {},
      Object.entries(r.headers)
        .map(([k, v]) => `${k}: ${v}`)
        .join("\n"),
    ),
    h("h3", {}, r.body_truncated ? "Body (first 64 KiB, exact bytes)" : "Body (exact bytes)"),
    h("pre", {}, r.body || "(empty)"),
    h("h3", {}, "Answer"),
    h("pre", {}, pretty(r.answer) || "(empty)"),
  ];
  detail.replaceChildren(...parts.filter(Boolean));
  detail.hidden = false;
}

// ---- chaos & clock ----

function renderChaos() {
  const rule = state.chaos.incoming;
  const badge = $("#chaos-badge");
  badge.hidden = !rule;
  if (rule) {
    badge.textContent = `Chaos: ${rule.status ?? "delay"}${rule.probability < 1 ? ` · ${Math.round(rule.probability * 100)}%` : ""}`;
  }
  $("#chaos-on").checked = Boolean(rule);
  if (rule) {
    if (rule.status !== undefined) $("#chaos-status").value = rule.status;
    $("#chaos-probability").value = rule.probability;
    $("#chaos-delay").value = rule.delay_ms;
    $("#chaos-retry-after").value = rule.retry_after ?? "";
  }
  $("#chaos-probability-out").textContent = `${Math.round($("#chaos-probability").value * 100)}%`;
}

async function applyChaos(e) {
  e?.preventDefault();
  const err = $("#chaos-error");
  err.hidden = true;
  try {
    await saveChaos();
  } catch (ex) {
    err.textContent = ex.message;
    err.hidden = false;
  }
}

async function saveChaos() {
  if (!$("#chaos-on").checked) {
    await call("DELETE", "/api/chaos");
    return;
  }
  const status = $("#chaos-status").value;
  const retryAfter = $("#chaos-retry-after").value;
  await call("PUT", "/api/chaos", {
    incoming: {
      ...(status ? { status: Number(status) } : {}),
      probability: Number($("#chaos-probability").value),
      delay_ms: Number($("#chaos-delay").value || 0),
      ...(retryAfter ? { retry_after: Number(retryAfter) } : {}),
    },
  });
}

function renderClock() {
  const b = $("#clock-badge");
  b.hidden = !state.clock.fixed;
  b.textContent = `Clock: ${new Date(state.clock.now).toLocaleString()}`;
  $("#clock-now").textContent = state.clock.fixed ? `Fixed at ${state.clock.now}` : "Real time";
}

// ---- channels tab ----

function renderChannels() {
  $("#panel-channels").replaceChildren(
    ...state.channels.map((c) =>
      h(
        "div",
        { class: "channel-card" },
        h("strong", {}, c.name),
        h("div", {}, h("span", { class: "muted" }, "Number "), h("code", {}, c.phone)),
        h(
          "div",
          {},
          h("span", { class: "muted" }, "Webhook "),
          c.webhook_url
            ? h("code", {}, c.webhook_url)
            : h("span", { class: "error" }, "none: staff replies will fail"),
        ),
        h(
          "div",
          { class: "muted" },
          `${c.secrets} shared secret${c.secrets === 1 ? "" : "s"}${c.secrets > 1 ? " (rotation: the first signs)" : ""}`,
        ),
      ),
    ),
    h("h3", {}, "Staff"),
    h(
      "ul",
      { class: "notes" },
      state.staff.map((s) => h("li", {}, `${s.name} <${s.email}>`)),
    ),
    h("h3", { style: "margin-top:14px" }, "Incoming URL"),
    h("pre", { class: "code" }, `${location.origin}/incoming/sms`),
  );
}

function curlExample() {
  const c = state.channels[0];
  if (!c) return;
  const body = JSON.stringify({
    id: "sms-1",
    to: { phone: c.phone },
    from: { name: "Ada", phone: "+15105559999" },
    body: "Hello from the sandbox",
  });
  $("#curl-example").textContent =
    `SECRET='…the channel secret printed at start…'\nBODY='${body}'\n` +
    `curl -X POST ${location.origin}/incoming/sms \\\n  -H 'Content-Type: application/json' \\\n` +
    `  -H "X-Reamaze-Hmac-SHA256: $(printf %s "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64)" \\\n  -d "$BODY"`;
}

// ---- tabs ----

function setTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll(".tabs button"))
    b.setAttribute("aria-selected", b.dataset.tab === tab ? "true" : "false");
  for (const p of document.querySelectorAll(".tab-body")) p.hidden = p.dataset.panel !== tab;
  if (tab === "requests") loadRequests();
}

// ---- live updates ----

let pending = null;
function refreshSoon(what) {
  pending ??= { list: false, live: false, conversation: false, requests: false };
  for (const [k, v] of Object.entries(what)) pending[k] ||= v;
  // Bursts (a load test, a retry loop) collapse into one refresh per frame-ish interval.
  setTimeout(async () => {
    const p = pending;
    pending = null;
    if (!p) return;
    state.live = p.list && p.live;
    if (p.list) await loadConversations();
    state.live = false;
    if (p.conversation) await loadConversation();
    if (p.requests && state.tab === "requests") await loadRequests();
  }, 60);
}

function connect() {
  const live = $("#live");
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => {
    live.dataset.state = "live";
    live.textContent = "live";
  });
  es.addEventListener("error", () => {
    live.dataset.state = es.readyState === EventSource.CLOSED ? "down" : "connecting";
    live.textContent = es.readyState === EventSource.CLOSED ? "offline" : "reconnecting";
  });
  es.addEventListener("hello", (e) => {
    const d = JSON.parse(e.data);
    state.chaos = d.chaos;
    state.clock = d.clock;
    renderChaos();
    renderClock();
    refreshSoon({ list: true, conversation: true, requests: true });
  });
  const onMessage = (e) => {
    const d = JSON.parse(e.data);
    refreshSoon({
      list: true,
      live: e.type === "message.created",
      conversation: d.conversation?.slug === state.selected,
    });
  };
  es.addEventListener("message.created", onMessage);
  es.addEventListener("message.updated", onMessage);
  es.addEventListener("conversation.updated", onMessage);
  es.addEventListener("request.logged", () => refreshSoon({ requests: true }));
  es.addEventListener("chaos.changed", (e) => {
    state.chaos = JSON.parse(e.data).chaos;
    renderChaos();
  });
  es.addEventListener("clock.changed", (e) => {
    state.clock = JSON.parse(e.data).clock;
    renderClock();
  });
  es.addEventListener("data.cleared", () => {
    state.current = null;
    state.selected = null;
    state.selectedRequest = null;
    $("#thread").hidden = true;
    $("#request-detail").hidden = true;
    refreshSoon({ list: true, requests: true });
    renderDetails();
  });
}

// ---- keyboard ----

function typing(el) {
  return (
    el &&
    (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable)
  );
}

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && document.activeElement === $("#reply")) {
    send(e);
    return;
  }
  if (e.key === "Escape") {
    if (typing(document.activeElement)) document.activeElement.blur();
    return;
  }
  if (typing(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
  const keys = {
    j: () => move(1),
    ArrowDown: () => move(1),
    k: () => move(-1),
    ArrowUp: () => move(-1),
    r: () => state.current && $("#reply").focus(),
    "/": () => $("#search").focus(),
    "?": () => $("#help").showModal(),
    1: () => setTab("details"),
    2: () => setTab("requests"),
    3: () => setTab("chaos"),
    4: () => setTab("channels"),
  };
  const fn = keys[e.key];
  if (fn) {
    e.preventDefault();
    fn();
  }
});

// ---- wiring ----

$("#composer").addEventListener("submit", send);
$("#help-button").addEventListener("click", () => $("#help").showModal());
$("#chaos-badge").addEventListener("click", () => setTab("chaos"));
$("#clock-badge").addEventListener("click", () => setTab("chaos"));
$("#chaos-form").addEventListener("submit", applyChaos);
$("#chaos-on").addEventListener("change", applyChaos);
$("#chaos-probability").addEventListener("input", () => {
  $("#chaos-probability-out").textContent = `${Math.round($("#chaos-probability").value * 100)}%`;
});
for (const b of document.querySelectorAll("[data-advance]")) {
  b.addEventListener("click", () => call("PUT", "/api/clock", { advance_ms: Number(b.dataset.advance) }));
}
$("#clock-reset").addEventListener("click", () => call("DELETE", "/api/clock"));
for (const b of document.querySelectorAll(".tabs button"))
  b.addEventListener("click", () => setTab(b.dataset.tab));
let searchTimer;
$("#search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadConversations, 150);
});
$("#filter-channel").addEventListener("change", loadConversations);
$("#filter-assignee").addEventListener("change", loadConversations);
$("#assignee-select").addEventListener("change", async (e) => {
  if (!state.current) return;
  await call("PUT", `/api/conversations/${encodeURIComponent(state.current.slug)}/assignee`, {
    email: e.target.value || null,
  });
});
// Relative times ("5m") drift; redraw the list now and then without refetching.
setInterval(renderList, 30_000);

async function boot() {
  const { channels, staff } = await call("GET", "/api/channels");
  state.channels = channels;
  state.staff = staff;
  $("#filter-channel").append(...channels.map((c) => h("option", { value: c.id }, `${c.name} ${c.phone}`)));
  $("#filter-assignee").append(...staff.map((s) => h("option", { value: s.email }, s.name)));
  $("#reply-staff").replaceChildren(...staff.map((s) => h("option", { value: s.email }, `as ${s.name}`)));
  $("#reply-staff").hidden = staff.length < 2;
  renderChannels();
  renderDetails();
  curlExample();
  await loadConversations();
  connect();
}

boot().catch((e) => {
  document.body.prepend(h("div", { class: "failure" }, `The sandbox API did not answer: ${e.message}`));
});
