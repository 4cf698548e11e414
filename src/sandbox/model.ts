import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { postSigned } from "../protocol/client.js";
import type { SignatureDiagnosis } from "../protocol/diagnose.js";
import { type IncomingSms, parseIsoTimestamp } from "../protocol/payloads.js";
import { SIGNATURE_HEADER } from "../protocol/signature.js";
import type { SandboxChannel, SandboxConfig, SandboxStaff } from "./config.js";
import type { ConversationFilter, ConversationRow, MessageRow, SandboxStore } from "./store.js";

/**
 * The helpdesk's rules, over the store: threading (thread_id, else the one-hour rule), idempotent ids,
 * assignment, staff replies that fire the signed webhook synchronously, the request log, chaos and the test clock.
 */

export const ONE_HOUR_MS = 60 * 60 * 1000;

export interface ChaosRule {
  /** Answer this status instead of processing; absent → only delay. */
  status?: number;
  /** 0..1, default 1. */
  probability: number;
  delay_ms: number;
  /** Sent as `Retry-After` (seconds) with the chaos answer. */
  retry_after?: number;
}

export interface ChaosState {
  incoming?: ChaosRule;
}

export type SandboxEvent =
  | { type: "message.created" | "message.updated"; message: ApiMessage; conversation: ApiConversation }
  | { type: "conversation.updated"; conversation: ApiConversation }
  | { type: "request.logged"; request: RequestSummary }
  | { type: "chaos.changed"; chaos: ChaosState }
  | { type: "clock.changed"; clock: { now: string; fixed: boolean } }
  | { type: "data.cleared" };

export interface ApiConversation {
  slug: string;
  channel: { id: string | null; name: string | null; phone: string };
  customer: { name: string | null; phone: string };
  thread_ids: string[];
  assignee: { name: string; email: string } | null;
  message_count: number;
  created_at: string;
  last_message_at: string;
  last_message: { body: string; direction: string; status: string } | null;
}

export interface WebhookOutcome {
  url: string | null;
  status: number | null;
  body: string;
  error?: string;
  duration_ms: number;
  signature?: string;
  at: string;
  request_id?: number;
}

export interface ApiMessage {
  id: number;
  conversation: string;
  external_id: string | null;
  direction: "inbound" | "outbound";
  source: "incoming" | "reply";
  author: { kind: "customer" | "channel" | "staff"; name: string | null; phone?: string; email?: string };
  body: string;
  attachments: string[];
  thread_id: string | null;
  created_at: string;
  received_at: string;
  status: MessageRow["status"];
  attempts: number;
  webhook: WebhookOutcome | null;
}

export interface RequestEntry {
  id: number;
  kind: "incoming" | "webhook";
  at: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  body_truncated?: boolean;
  status: number | null;
  answer: string;
  error?: string;
  duration_ms: number;
  channel: { id: string; name: string; phone: string } | null;
  signature: SignatureVerdict | null;
  notes: string[];
  message_id?: number;
  conversation?: string;
  chaos?: boolean;
}

export type RequestSummary = Omit<RequestEntry, "headers" | "body" | "answer"> & { answer_preview: string };

/** The debugger's view of a signature, snake_case like the rest of the API. */
export interface SignatureVerdict {
  ok: boolean;
  matched_secret_index: number | null;
  received: string | null;
  expected: string | null;
  mistake: string | null;
  variant: string | null;
  explanation: string;
}

export function toVerdict(d: SignatureDiagnosis): SignatureVerdict {
  return {
    ok: d.ok,
    matched_secret_index: d.secretIndex ?? null,
    received: d.received ?? null,
    expected: d.expected ?? null,
    mistake: d.mistake ?? null,
    variant: d.variant ?? null,
    explanation: d.explanation,
  };
}

/** Thrown by model operations with the HTTP status the API answers. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const BODY_KEEP = 64 * 1024;

export interface SandboxModelOptions {
  config: SandboxConfig;
  store: SandboxStore;
  webhookTimeoutMs: number;
  requestLogSize: number;
  /** Write the request log to the store too (a --db file); in memory it is kept in the model only. */
  persistRequestLog: boolean;
}

export interface IngestResult {
  duplicate: boolean;
  message: ApiMessage;
  conversation: ApiConversation;
  notes: string[];
}

export class SandboxModel {
  readonly config: SandboxConfig;
  readonly events = new EventEmitter();
  chaos: ChaosState = {};
  private fixedNow: number | undefined;
  private readonly store: SandboxStore;
  private readonly webhookTimeoutMs: number;
  private readonly requestLogSize: number;
  private readonly byPhone = new Map<string, SandboxChannel>();
  private readonly persistLog: boolean;
  /** The request log, oldest first. Kept in memory; with a database also written there, in batches. */
  private log: RequestEntry[] = [];
  private unsaved: RequestEntry[] = [];
  private nextRequestId: number;

  constructor(opts: SandboxModelOptions) {
    this.config = opts.config;
    this.store = opts.store;
    this.webhookTimeoutMs = opts.webhookTimeoutMs;
    this.requestLogSize = opts.requestLogSize;
    this.persistLog = opts.persistRequestLog;
    this.log = this.store
      .requests(this.requestLogSize)
      .reverse()
      .map((r) => ({ ...(JSON.parse(r.entry) as RequestEntry), id: r.id }));
    this.nextRequestId = this.store.lastRequestId() + 1;
    for (const c of this.config.channels) this.byPhone.set(c.phone, c);
    // SSE clients each add a listener; the default warning at 10 would fire on an ordinary busy day.
    this.events.setMaxListeners(0);
  }

  // ---- clock ----

  now(): number {
    return this.fixedNow ?? Date.now();
  }

  clock(): { now: string; fixed: boolean } {
    return { now: new Date(this.now()).toISOString(), fixed: this.fixedNow !== undefined };
  }

  setClock(now: number | undefined): void {
    this.fixedNow = now;
    this.emit({ type: "clock.changed", clock: this.clock() });
  }

  // ---- chaos ----

  setChaos(chaos: ChaosState): void {
    this.chaos = chaos;
    this.emit({ type: "chaos.changed", chaos });
  }

  // ---- lookups ----

  channelByPhone(phone: string): SandboxChannel | undefined {
    return this.byPhone.get(phone);
  }

  channelByKey(key: string): SandboxChannel | undefined {
    return this.config.channels.find(
      (c) => c.id === key || c.phone === key || c.name.toLowerCase() === key.toLowerCase(),
    );
  }

  staffByEmail(email: string): SandboxStaff | undefined {
    const e = email.trim().toLowerCase();
    return this.config.staff.find((s) => s.email.toLowerCase() === e);
  }

  // ---- incoming ----

  /** Stores a helpdesk-bound SMS on a channel whose signature already verified. */
  ingest(channel: SandboxChannel, sms: IncomingSms): IngestResult {
    const outbound = sms.direction === "outbound";
    const customer = outbound ? sms.to : sms.from;
    const now = this.now();
    const createdMs = sms.created_at ? (parseIsoTimestamp(sms.created_at)?.getTime() ?? now) : now;
    const notes: string[] = [];
    const result = this.store.transaction(() => {
      const existing = this.store.messageByExternalId(channel.phone, sms.id);
      if (existing) {
        notes.push(
          `id ${sms.id} was already received on this channel (message ${existing.id}); nothing stored`,
        );
        return { duplicate: true, messageId: existing.id, conversationId: existing.conversation_id };
      }
      let conv: ConversationRow | undefined;
      if (sms.thread_id) {
        conv = this.store.conversationByThread(channel.phone, sms.thread_id);
        if (!conv) notes.push(`thread_id ${sms.thread_id} is new: started a conversation`);
      } else {
        const recent = this.store.latestConversationOf(channel.phone, customer.phone);
        if (recent && now - recent.last_message_at < ONE_HOUR_MS) {
          conv = recent;
          notes.push(
            `no thread_id: joined ${recent.slug}, the customer's conversation active within the hour`,
          );
        } else {
          notes.push(
            recent
              ? `no thread_id: the customer's last conversation (${recent.slug}) is over an hour old, started a new one`
              : "no thread_id: first conversation with this customer",
          );
        }
      }
      conv ??= this.store.createConversation({
        slug: this.newSlug(),
        channelPhone: channel.phone,
        customerPhone: customer.phone,
        customerName: customer.name ?? null,
        now,
      });
      if (sms.thread_id) this.store.addThread(channel.phone, sms.thread_id, conv.id);
      const messageId = this.store.insertMessage(
        {
          conversation_id: conv.id,
          channel_phone: channel.phone,
          external_id: sms.id,
          direction: outbound ? "outbound" : "inbound",
          source: "incoming",
          author_name: sms.from.name ?? (outbound ? channel.name : null),
          author_phone: sms.from.phone,
          author_email: null,
          body: sms.body,
          attachments: JSON.stringify(sms.attachments ?? []),
          thread_id: sms.thread_id ?? null,
          created_at: sms.created_at ?? new Date(now).toISOString(),
          created_ms: createdMs,
          received_at: now,
          status: "received",
          payload: null,
        },
        customer.name ?? null,
      );
      if (sms.assignee?.email !== undefined) {
        const staff = this.staffByEmail(sms.assignee.email);
        if (staff) {
          this.store.assign(conv.id, staff.email);
          notes.push(`assigned to ${staff.email}`);
        } else {
          notes.push(
            `assignee.email ${sms.assignee.email} is not a staff user: ignored (staff: ${this.staffList()})`,
          );
        }
      }
      return { duplicate: false, messageId, conversationId: conv.id };
    });
    const message = this.apiMessage(this.store.message(result.messageId) as MessageRow);
    const conversation = this.apiConversation(
      this.store.conversation(result.conversationId) as ConversationRow,
    );
    if (!result.duplicate) this.emit({ type: "message.created", message, conversation });
    return { duplicate: result.duplicate, message, conversation, notes };
  }

  // ---- staff replies ----

  async reply(
    slug: string,
    input: { body: string; attachments: string[]; staff_email?: string },
  ): Promise<{ message: ApiMessage; conversation: ApiConversation }> {
    const conv = this.store.conversationBySlug(slug);
    if (!conv) throw new ApiError(404, `no conversation ${slug}`);
    const channel = this.channelByPhone(conv.channel_phone);
    if (!channel) {
      throw new ApiError(
        409,
        `the conversation's channel ${conv.channel_phone} is no longer configured; add it back to reply`,
      );
    }
    let staff: SandboxStaff | undefined;
    if (input.staff_email !== undefined) {
      staff = this.staffByEmail(input.staff_email);
      if (!staff)
        throw new ApiError(
          422,
          `staff_email: ${input.staff_email} is not a staff user (staff: ${this.staffList()})`,
        );
    } else {
      staff = this.config.staff[0];
    }
    const now = this.now();
    const createdAt = new Date(now).toISOString();
    const threadId = this.store.currentThreadId(conv.id) ?? null;
    // Key order as in the protocol's example; serialised once so a retry sends the very same bytes.
    const payload = {
      to: { ...(conv.customer_name ? { name: conv.customer_name } : {}), phone: conv.customer_phone },
      from: { name: channel.name, phone: channel.phone },
      body: input.body,
      conversation: { slug: conv.slug },
      attachments: input.attachments,
      created_at: createdAt,
      thread_id: threadId,
    };
    const id = this.store.transaction(() =>
      this.store.insertMessage(
        {
          conversation_id: conv.id,
          channel_phone: channel.phone,
          external_id: null,
          direction: "outbound",
          source: "reply",
          author_name: staff?.name ?? "Staff",
          author_phone: null,
          author_email: staff?.email ?? null,
          body: input.body,
          attachments: JSON.stringify(input.attachments),
          thread_id: threadId,
          created_at: createdAt,
          created_ms: now,
          received_at: now,
          status: "sending",
          payload: JSON.stringify(payload),
        },
        null,
      ),
    );
    this.emitMessage("message.created", id);
    return this.deliver(id, channel);
  }

  async retry(id: number): Promise<{ message: ApiMessage; conversation: ApiConversation }> {
    const m = this.store.message(id);
    if (!m) throw new ApiError(404, `no message ${id}`);
    if (m.source !== "reply")
      throw new ApiError(409, `message ${id} came in through /incoming/sms; only staff replies are sent`);
    if (m.status === "sent")
      throw new ApiError(409, `message ${id} was already sent; retrying would text the customer twice`);
    if (m.status === "sending") throw new ApiError(409, `message ${id} is being sent right now`);
    const channel = this.channelByPhone(m.channel_phone);
    if (!channel) throw new ApiError(409, `the message's channel ${m.channel_phone} is no longer configured`);
    this.store.setMessageStatus(id, "sending", m.webhook ? JSON.parse(m.webhook) : undefined, false);
    this.emitMessage("message.updated", id);
    return this.deliver(id, channel);
  }

  private async deliver(
    id: number,
    channel: SandboxChannel,
  ): Promise<{ message: ApiMessage; conversation: ApiConversation }> {
    const m = this.store.message(id) as MessageRow;
    const bytes = Buffer.from(m.payload ?? "{}", "utf8");
    const at = new Date().toISOString();
    let outcome: WebhookOutcome;
    let sent = false;
    if (!channel.webhookUrl) {
      outcome = {
        url: null,
        status: null,
        body: "",
        error: `channel ${channel.name} has no webhookUrl; set one in the sandbox config`,
        duration_ms: 0,
        at,
      };
    } else {
      const res = await postSigned({
        url: channel.webhookUrl,
        secret: channel.secrets[0] as string,
        payload: bytes,
        timeoutMs: this.webhookTimeoutMs,
      });
      const status = "status" in res && res.status ? res.status : null;
      sent = status === 200 || status === 201;
      let error: string | undefined;
      if (status === null) error = "reason" in res ? res.reason : "no answer";
      else if (!sent && status >= 200 && status < 300) {
        error = `answered ${status}; the protocol counts only 200 or 201 as "SMS sent"`;
      } else if (!sent) error = `answered ${status}`;
      outcome = {
        url: channel.webhookUrl,
        status,
        body: res.kind === "retry" ? (res.body ?? "") : res.body,
        ...(error ? { error } : {}),
        duration_ms: Math.round(res.durationMs),
        signature: res.signature,
        at,
      };
      const requestId = this.logRequest({
        kind: "webhook",
        at,
        method: "POST",
        url: channel.webhookUrl,
        headers: {
          "content-type": "application/json",
          "user-agent": "smsbridge",
          [SIGNATURE_HEADER.toLowerCase()]: res.signature,
        },
        ...truncate(bytes),
        status,
        answer: outcome.body,
        ...(error ? { error } : {}),
        duration_ms: outcome.duration_ms,
        channel: { id: channel.id, name: channel.name, phone: channel.phone },
        signature: {
          ok: true,
          matched_secret_index: 0,
          received: res.signature,
          expected: res.signature,
          mistake: null,
          variant: null,
          explanation: "Signed by the sandbox with the channel's first secret over the exact bytes sent.",
        },
        notes: sent ? ["SMS sent (webhook answered 200/201)"] : [`reply failed: ${error}`],
        message_id: id,
        conversation: m.slug,
      });
      outcome.request_id = requestId;
    }
    this.store.setMessageStatus(id, sent ? "sent" : "failed", outcome, true);
    return this.emitMessage("message.updated", id);
  }

  // ---- assignment ----

  assign(slug: string, email: string | null): ApiConversation {
    const conv = this.store.conversationBySlug(slug);
    if (!conv) throw new ApiError(404, `no conversation ${slug}`);
    let value: string | null = null;
    if (email !== null) {
      const staff = this.staffByEmail(email);
      if (!staff) throw new ApiError(422, `email: ${email} is not a staff user (staff: ${this.staffList()})`);
      value = staff.email;
    }
    this.store.assign(conv.id, value);
    const conversation = this.apiConversation(this.store.conversation(conv.id) as ConversationRow);
    this.emit({ type: "conversation.updated", conversation });
    return conversation;
  }

  // ---- reads ----

  conversations(f: ConversationFilter): ApiConversation[] {
    let phones: string[] | undefined;
    if (f.channel) {
      const c = this.channelByKey(f.channel);
      phones = c ? [c.phone] : /^\+\d+$/.test(f.channel) ? [f.channel] : [];
    }
    return this.store.listConversations(f, phones).map((c) => this.apiConversation(c));
  }

  conversation(slug: string): (ApiConversation & { messages: ApiMessage[] }) | undefined {
    const conv = this.store.conversationBySlug(slug);
    if (!conv) return undefined;
    return {
      ...this.apiConversation(conv),
      messages: this.store.messages(conv.id).map((m) => this.apiMessage(m)),
    };
  }

  message(id: number): ApiMessage | undefined {
    const m = this.store.message(id);
    return m ? this.apiMessage(m) : undefined;
  }

  // ---- request log ----

  logRequest(entry: Omit<RequestEntry, "id">): number {
    const e: RequestEntry = { ...entry, id: this.nextRequestId++ };
    this.log.push(e);
    // Trim in chunks so a busy log does not shift the array on every request.
    if (this.log.length > this.requestLogSize + 64) this.log.splice(0, this.log.length - this.requestLogSize);
    if (this.persistLog) {
      // One transaction per burst rather than one commit per request: the log is the hot path under load.
      if (this.unsaved.length === 0) setImmediate(() => this.flush());
      this.unsaved.push(e);
    }
    this.emit({ type: "request.logged", request: summarise(e) });
    return e.id;
  }

  /** Writes pending request-log entries; called on its own after each burst and before closing. */
  flush(): void {
    const batch = this.unsaved;
    this.unsaved = [];
    if (batch.length && this.store.db.open) this.store.saveRequests(batch, this.requestLogSize);
  }

  requests(limit: number, kind?: string): RequestEntry[] {
    const out: RequestEntry[] = [];
    const max = Math.min(limit, this.requestLogSize);
    for (let i = this.log.length - 1; i >= 0 && out.length < max; i--) {
      const e = this.log[i] as RequestEntry;
      if (!kind || e.kind === kind) out.push(e);
    }
    return out;
  }

  request(id: number): RequestEntry | undefined {
    const e = this.log.find((x) => x.id === id);
    return e && this.log.length - this.log.indexOf(e) <= this.requestLogSize ? e : undefined;
  }

  clear(): void {
    this.log = [];
    this.unsaved = [];
    this.store.clear();
    this.emit({ type: "data.cleared" });
  }

  // ---- helpers ----

  private staffList(): string {
    return this.config.staff.map((s) => s.email).join(", ") || "none configured";
  }

  private newSlug(): string {
    // Re:amaze slugs are opaque strings; short and readable helps people match the UI to payloads.
    return `sms-${randomBytes(5).toString("hex")}`;
  }

  private emit(e: SandboxEvent): void {
    this.events.emit("event", e);
  }

  private emitMessage(
    type: "message.created" | "message.updated",
    id: number,
  ): { message: ApiMessage; conversation: ApiConversation } {
    const row = this.store.message(id) as MessageRow;
    const message = this.apiMessage(row);
    const conversation = this.apiConversation(
      this.store.conversation(row.conversation_id) as ConversationRow,
    );
    this.emit({ type, message, conversation });
    return { message, conversation };
  }

  apiConversation(c: ConversationRow): ApiConversation {
    const channel = this.channelByPhone(c.channel_phone);
    const staff = c.assignee ? this.staffByEmail(c.assignee) : undefined;
    return {
      slug: c.slug,
      channel: { id: channel?.id ?? null, name: channel?.name ?? null, phone: c.channel_phone },
      customer: { name: c.customer_name, phone: c.customer_phone },
      thread_ids: this.store.threadIds(c.id),
      assignee: c.assignee ? { name: staff?.name ?? c.assignee, email: c.assignee } : null,
      message_count: c.message_count,
      created_at: new Date(c.created_at).toISOString(),
      last_message_at: new Date(c.last_message_at).toISOString(),
      last_message:
        c.last_body !== null
          ? {
              body: c.last_body,
              direction: c.last_direction ?? "inbound",
              status: c.last_status ?? "received",
            }
          : null,
    };
  }

  apiMessage(m: MessageRow): ApiMessage {
    const kind = m.source === "reply" ? "staff" : m.direction === "outbound" ? "channel" : "customer";
    return {
      id: m.id,
      conversation: m.slug,
      external_id: m.external_id,
      direction: m.direction,
      source: m.source,
      author: {
        kind,
        name: m.author_name,
        ...(m.author_phone ? { phone: m.author_phone } : {}),
        ...(m.author_email ? { email: m.author_email } : {}),
      },
      body: m.body,
      attachments: JSON.parse(m.attachments) as string[],
      thread_id: m.thread_id,
      created_at: m.created_at,
      received_at: new Date(m.received_at).toISOString(),
      status: m.status,
      attempts: m.attempts,
      webhook: m.webhook ? (JSON.parse(m.webhook) as WebhookOutcome) : null,
    };
  }
}

export function truncate(bytes: Buffer | undefined): { body: string; body_truncated?: boolean } {
  if (!bytes) return { body: "" };
  if (bytes.length <= BODY_KEEP) return { body: bytes.toString("utf8") };
  return { body: bytes.subarray(0, BODY_KEEP).toString("utf8"), body_truncated: true };
}

export function summarise(e: RequestEntry): RequestSummary {
  const { headers: _h, body: _b, answer, ...rest } = e;
  return { ...rest, answer_preview: answer.slice(0, 200) };
}
