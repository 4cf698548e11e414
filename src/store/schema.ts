import type { Generated } from "kysely";

/**
 * Tables. Times are milliseconds since the epoch (integers in both dialects), so the same arithmetic and
 * indexes work on SQLite and PostgreSQL.
 */
export interface Database {
  messages: MessagesTable;
  outbox: OutboxTable;
  provider_refs: ProviderRefsTable;
  threads: ThreadsTable;
  opt_outs: OptOutsTable;
  replies: RepliesTable;
}

export type MessageDirection = "inbound" | "reply" | "outbound";

export interface MessagesTable {
  id: Generated<number>;
  channel_id: string;
  direction: MessageDirection;
  provider: string;
  /** Inbound: the provider's message id (deduplication key). Sent messages: the first part's id. */
  provider_message_id: string | null;
  customer: string;
  channel_number: string;
  body: string;
  thread_id: string | null;
  created_at: number;
  delivery_state: string | null;
  delivery_status: string | null;
  delivery_error: string | null;
  delivery_updated_at: number | null;
  meta: string | null;
}

/** A delivered row is deleted (migration 0006 says why), so what stays is still to do or dead. */
export type OutboxState = "pending" | "dead";

export interface OutboxTable {
  id: Generated<number>;
  message_id: number;
  channel_id: string;
  /** The helpdesk-bound JSON exactly as it will be signed and sent. */
  payload: Buffer;
  state: OutboxState;
  attempts: number;
  /** When the row may be claimed: due time, or the end of the current lease while claimed. */
  next_attempt_at: number;
  claim_token: string | null;
  queued_at: number;
  last_status: number | null;
  last_error: string | null;
  last_answer: string | null;
  finished_at: number | null;
}

export interface ProviderRefsTable {
  channel_id: string;
  provider: string;
  provider_message_id: string;
  message_id: number;
}

export interface ThreadsTable {
  channel_id: string;
  customer: string;
  thread_id: string;
  last_activity: number;
}

export interface OptOutsTable {
  channel_id: string;
  customer: string;
  opted_out: number;
  keyword: string;
  updated_at: number;
}

export type ReplyState = "sending" | "done";

export interface RepliesTable {
  channel_id: string;
  body_hash: string;
  state: ReplyState;
  created_at: number;
  lease_until: number;
  answer_status: number | null;
  answer_body: string | null;
  message_id: number | null;
}
