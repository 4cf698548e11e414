import type BetterSqlite3 from "better-sqlite3";
import { Database } from "../store/dialect/better-sqlite3.js";

/**
 * The sandbox's storage: better-sqlite3, `:memory:` by default or a WAL file that survives restarts.
 * Synchronous on purpose: one process, small rows, and every request's writes fit in one short transaction.
 */

export interface ConversationRow {
  id: number;
  slug: string;
  channel_phone: string;
  customer_phone: string;
  customer_name: string | null;
  assignee: string | null;
  created_at: number;
  last_message_at: number;
  message_count: number;
  last_body: string | null;
  last_direction: string | null;
  last_status: string | null;
}

export interface MessageRow {
  id: number;
  conversation_id: number;
  slug: string;
  channel_phone: string;
  external_id: string | null;
  direction: "inbound" | "outbound";
  source: "incoming" | "reply";
  author_name: string | null;
  author_phone: string | null;
  author_email: string | null;
  body: string;
  attachments: string;
  thread_id: string | null;
  created_at: string;
  created_ms: number;
  received_at: number;
  status: "received" | "sending" | "sent" | "failed";
  payload: string | null;
  webhook: string | null;
  attempts: number;
}

export type NewMessage = Omit<MessageRow, "id" | "slug" | "webhook" | "attempts">;

export interface ConversationFilter {
  channel?: string;
  customer?: string;
  assignee?: string;
  q?: string;
  limit?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
  id INTEGER PRIMARY KEY,
  slug TEXT NOT NULL UNIQUE,
  channel_phone TEXT NOT NULL,
  customer_phone TEXT NOT NULL,
  customer_name TEXT,
  assignee TEXT,
  created_at INTEGER NOT NULL,
  last_message_at INTEGER NOT NULL,
  message_count INTEGER NOT NULL DEFAULT 0,
  last_body TEXT,
  last_direction TEXT,
  last_status TEXT
);
CREATE INDEX IF NOT EXISTS conversations_customer ON conversations (channel_phone, customer_phone, last_message_at);
CREATE INDEX IF NOT EXISTS conversations_recent ON conversations (last_message_at);
CREATE TABLE IF NOT EXISTS threads (
  channel_phone TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  conversation_id INTEGER NOT NULL,
  PRIMARY KEY (channel_phone, thread_id)
);
CREATE INDEX IF NOT EXISTS threads_conversation ON threads (conversation_id);
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY,
  conversation_id INTEGER NOT NULL,
  channel_phone TEXT NOT NULL,
  external_id TEXT,
  direction TEXT NOT NULL,
  source TEXT NOT NULL,
  author_name TEXT,
  author_phone TEXT,
  author_email TEXT,
  body TEXT NOT NULL,
  attachments TEXT NOT NULL,
  thread_id TEXT,
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  status TEXT NOT NULL,
  payload TEXT,
  webhook TEXT,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_external ON messages (channel_phone, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_conversation ON messages (conversation_id, created_ms, id);
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, entry TEXT NOT NULL);
`;

const MESSAGE_COLUMNS = `m.*, c.slug AS slug`;

export class SandboxStore {
  readonly db: BetterSqlite3.Database;
  private readonly stmts;

  constructor(file = ":memory:") {
    this.db = new Database(file);
    if (file !== ":memory:") {
      this.db.pragma("journal_mode = WAL");
      // NORMAL under WAL loses at most the last transactions on power loss, never corrupts: right for a sandbox.
      this.db.pragma("synchronous = NORMAL");
    }
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    this.txWrapper = this.db.transaction((fn: () => unknown) => fn());
    const db = this.db;
    this.stmts = {
      metaGet: db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?"),
      metaSet: db.prepare(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      ),
      byExternal: db.prepare<[string, string], MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.channel_phone = ? AND m.external_id = ?`,
      ),
      messageById: db.prepare<[number], MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?`,
      ),
      messagesOf: db.prepare<[number], MessageRow>(
        `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.conversation_id = ? ORDER BY m.created_ms, m.id`,
      ),
      threadLookup: db.prepare<[string, string], { conversation_id: number }>(
        "SELECT conversation_id FROM threads WHERE channel_phone = ? AND thread_id = ?",
      ),
      threadInsert: db.prepare(
        "INSERT OR IGNORE INTO threads (channel_phone, thread_id, conversation_id) VALUES (?, ?, ?)",
      ),
      threadsOf: db.prepare<[number], { thread_id: string }>(
        "SELECT thread_id FROM threads WHERE conversation_id = ? ORDER BY rowid",
      ),
      latestThread: db.prepare<[number], { thread_id: string }>(
        "SELECT thread_id FROM messages WHERE conversation_id = ? AND thread_id IS NOT NULL ORDER BY created_ms DESC, id DESC LIMIT 1",
      ),
      recentOfCustomer: db.prepare<[string, string], ConversationRow>(
        "SELECT * FROM conversations WHERE channel_phone = ? AND customer_phone = ? ORDER BY last_message_at DESC, id DESC LIMIT 1",
      ),
      conversationById: db.prepare<[number], ConversationRow>("SELECT * FROM conversations WHERE id = ?"),
      conversationBySlug: db.prepare<[string], ConversationRow>("SELECT * FROM conversations WHERE slug = ?"),
      conversationInsert: db.prepare<[string, string, string, string | null, number, number]>(
        "INSERT INTO conversations (slug, channel_phone, customer_phone, customer_name, created_at, last_message_at) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      messageInsert: db.prepare(
        `INSERT INTO messages (conversation_id, channel_phone, external_id, direction, source, author_name, author_phone,
          author_email, body, attachments, thread_id, created_at, created_ms, received_at, status, payload)
         VALUES (@conversation_id, @channel_phone, @external_id, @direction, @source, @author_name, @author_phone,
          @author_email, @body, @attachments, @thread_id, @created_at, @created_ms, @received_at, @status, @payload)`,
      ),
      // The summary columns follow the latest message by its own time, so a late message with an old created_at
      // does not become the conversation's "last message".
      conversationTouch: db.prepare(
        `UPDATE conversations SET
           message_count = message_count + 1,
           customer_name = COALESCE(@customer_name, customer_name),
           last_body = CASE WHEN @created_ms >= last_message_at THEN @body ELSE last_body END,
           last_direction = CASE WHEN @created_ms >= last_message_at THEN @direction ELSE last_direction END,
           last_status = CASE WHEN @created_ms >= last_message_at THEN @status ELSE last_status END,
           last_message_at = MAX(last_message_at, @created_ms)
         WHERE id = @id`,
      ),
      messageStatus: db.prepare<[string, string | null, number, number]>(
        "UPDATE messages SET status = ?, webhook = ?, attempts = attempts + ? WHERE id = ?",
      ),
      lastStatus: db.prepare<[number]>(
        `UPDATE conversations SET last_status = (SELECT status FROM messages WHERE conversation_id = conversations.id
           ORDER BY created_ms DESC, id DESC LIMIT 1) WHERE id = ?`,
      ),
      assign: db.prepare<[string | null, number]>("UPDATE conversations SET assignee = ? WHERE id = ?"),
      requestInsert: db.prepare<[number, string]>(
        "INSERT OR REPLACE INTO requests (id, entry) VALUES (?, ?)",
      ),
      requestPrune: db.prepare<[number]>("DELETE FROM requests WHERE id <= ?"),
      requestMax: db.prepare<[], { id: number | null }>("SELECT MAX(id) AS id FROM requests"),
      requestList: db.prepare<[number], { id: number; entry: string }>(
        "SELECT id, entry FROM requests ORDER BY id DESC LIMIT ?",
      ),
    };
  }

  meta(key: string): string | undefined {
    return this.stmts.metaGet.get(key)?.value;
  }

  setMeta(key: string, value: string): void {
    this.stmts.metaSet.run(key, value);
  }

  // One wrapper for all transactions: better-sqlite3 builds a new one per db.transaction() call.
  private readonly txWrapper: (fn: () => unknown) => unknown;

  transaction<T>(fn: () => T): T {
    return this.txWrapper(fn) as T;
  }

  messageByExternalId(channelPhone: string, externalId: string): MessageRow | undefined {
    return this.stmts.byExternal.get(channelPhone, externalId);
  }

  message(id: number): MessageRow | undefined {
    return this.stmts.messageById.get(id);
  }

  messages(conversationId: number): MessageRow[] {
    return this.stmts.messagesOf.all(conversationId);
  }

  conversationByThread(channelPhone: string, threadId: string): ConversationRow | undefined {
    const t = this.stmts.threadLookup.get(channelPhone, threadId);
    return t ? this.stmts.conversationById.get(t.conversation_id) : undefined;
  }

  latestConversationOf(channelPhone: string, customerPhone: string): ConversationRow | undefined {
    return this.stmts.recentOfCustomer.get(channelPhone, customerPhone);
  }

  conversation(id: number): ConversationRow | undefined {
    return this.stmts.conversationById.get(id);
  }

  conversationBySlug(slug: string): ConversationRow | undefined {
    return this.stmts.conversationBySlug.get(slug);
  }

  threadIds(conversationId: number): string[] {
    return this.stmts.threadsOf.all(conversationId).map((r) => r.thread_id);
  }

  /** The thread id a staff reply should carry: the one the conversation last used. */
  currentThreadId(conversationId: number): string | undefined {
    return this.stmts.latestThread.get(conversationId)?.thread_id ?? this.threadIds(conversationId)[0];
  }

  createConversation(c: {
    slug: string;
    channelPhone: string;
    customerPhone: string;
    customerName: string | null;
    now: number;
  }): ConversationRow {
    const r = this.stmts.conversationInsert.run(
      c.slug,
      c.channelPhone,
      c.customerPhone,
      c.customerName,
      c.now,
      0,
    );
    return this.stmts.conversationById.get(Number(r.lastInsertRowid)) as ConversationRow;
  }

  addThread(channelPhone: string, threadId: string, conversationId: number): void {
    this.stmts.threadInsert.run(channelPhone, threadId, conversationId);
  }

  insertMessage(m: NewMessage, customerName: string | null): number {
    const r = this.stmts.messageInsert.run(m);
    this.stmts.conversationTouch.run({
      id: m.conversation_id,
      customer_name: customerName,
      created_ms: m.created_ms,
      body: m.body,
      direction: m.direction,
      status: m.status,
    });
    return Number(r.lastInsertRowid);
  }

  setMessageStatus(id: number, status: MessageRow["status"], webhook: unknown, attempted: boolean): void {
    this.stmts.messageStatus.run(
      status,
      webhook === undefined ? null : JSON.stringify(webhook),
      attempted ? 1 : 0,
      id,
    );
    const m = this.stmts.messageById.get(id);
    if (m) this.stmts.lastStatus.run(m.conversation_id);
  }

  assign(conversationId: number, email: string | null): void {
    this.stmts.assign.run(email, conversationId);
  }

  listConversations(f: ConversationFilter, channelPhones?: string[]): ConversationRow[] {
    const where: string[] = [];
    const params: Record<string, string | number> = {};
    if (channelPhones) {
      if (channelPhones.length === 0) return [];
      where.push(`channel_phone IN (${channelPhones.map((_, i) => `@ch${i}`).join(", ")})`);
      channelPhones.forEach((p, i) => {
        params[`ch${i}`] = p;
      });
    }
    if (f.customer) {
      where.push("customer_phone LIKE @customer");
      params.customer = `%${f.customer.replace(/[^\d+]/g, "")}%`;
    }
    if (f.assignee) {
      if (f.assignee === "none") where.push("assignee IS NULL");
      else {
        where.push("lower(assignee) = lower(@assignee)");
        params.assignee = f.assignee;
      }
    }
    if (f.q) {
      where.push(`(customer_name LIKE @q ESCAPE '\\' OR customer_phone LIKE @q ESCAPE '\\' OR slug = @qexact
        OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id AND m.body LIKE @q ESCAPE '\\')
        OR EXISTS (SELECT 1 FROM threads t WHERE t.conversation_id = conversations.id AND t.thread_id = @qexact))`);
      params.q = `%${f.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      params.qexact = f.q;
    }
    params.limit = Math.max(1, Math.min(f.limit ?? 200, 1000));
    const sql = `SELECT * FROM conversations ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY last_message_at DESC, id DESC LIMIT @limit`;
    return this.db.prepare<Record<string, string | number>, ConversationRow>(sql).all(params);
  }

  /** Writes request-log entries in one transaction and drops all but the newest `keep`. */
  saveRequests(entries: ReadonlyArray<{ id: number }>, keep: number): void {
    if (entries.length === 0) return;
    this.transaction(() => {
      for (const e of entries) this.stmts.requestInsert.run(e.id, JSON.stringify(e));
      const last = entries[entries.length - 1]?.id ?? 0;
      if (last > keep) this.stmts.requestPrune.run(last - keep);
    });
  }

  /** The newest `limit` request-log entries, newest first. */
  requests(limit: number): Array<{ id: number; entry: string }> {
    return this.stmts.requestList.all(limit);
  }

  lastRequestId(): number {
    return this.stmts.requestMax.get()?.id ?? 0;
  }

  clear(): void {
    this.db.exec(
      "DELETE FROM messages; DELETE FROM threads; DELETE FROM conversations; DELETE FROM requests;",
    );
  }

  close(): void {
    this.db.close();
  }
}
