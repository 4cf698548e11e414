import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The bridge's Prometheus metrics, all prefixed `smsbridge_`, one registry per bridge instance. */
export function createMetrics() {
  const registry = new Registry();
  const inbound = new Counter({
    name: "smsbridge_inbound_total",
    help: "Provider webhooks by channel and result (stored, duplicate, status, rejected, error).",
    labelNames: ["channel", "result"] as const,
    registers: [registry],
  });
  const forwardAttempts = new Counter({
    name: "smsbridge_forward_attempts_total",
    help: "Deliveries to the helpdesk by channel and outcome (delivered, retry, dead, lost_claim).",
    labelNames: ["channel", "outcome"] as const,
    registers: [registry],
  });
  const claimed = new Counter({
    name: "smsbridge_outbox_claimed_total",
    help: "Messages claimed for delivery to the helpdesk, by channel and how: at ingest (handed to this process's forwarder as they were stored) or by the forwarder's claim from the outbox (retries, backlog, other instances' rows).",
    labelNames: ["channel", "by"] as const,
    registers: [registry],
  });
  const outboxDepth = new Gauge({
    name: "smsbridge_outbox_pending",
    help: "Messages waiting to be delivered to the helpdesk, by channel.",
    labelNames: ["channel"] as const,
    registers: [registry],
  });
  const outboxOldest = new Gauge({
    name: "smsbridge_outbox_oldest_age_seconds",
    help: "Age of the oldest pending message, by channel.",
    labelNames: ["channel"] as const,
    registers: [registry],
  });
  const outboxDead = new Gauge({
    name: "smsbridge_outbox_dead",
    help: "Messages the helpdesk refused (kept, replayable), by channel.",
    labelNames: ["channel"] as const,
    registers: [registry],
  });
  const breakerOpen = new Gauge({
    name: "smsbridge_breaker_open",
    help: "1 while a channel's circuit breaker is open or half-open.",
    labelNames: ["channel"] as const,
    registers: [registry],
  });
  const replyLatency = new Histogram({
    name: "smsbridge_reply_duration_seconds",
    help: "Staff-reply webhook handling time, by channel and answer status.",
    labelNames: ["channel", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const replyPhase = new Histogram({
    name: "smsbridge_reply_phase_seconds",
    help: "Staff replies that were sent, by channel and phase: claim (the idempotency record, on disk before the SMS goes), provider (opt-out check and the provider's answer), record (the sent message and the stored answer).",
    labelNames: ["channel", "phase"] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const providerSends = new Counter({
    name: "smsbridge_provider_sends_total",
    help: "Provider send calls by channel, provider and outcome (sent, retryable, failed, opted_out, timeout).",
    labelNames: ["channel", "provider", "outcome"] as const,
    registers: [registry],
  });
  const deliveryReports = new Counter({
    name: "smsbridge_delivery_reports_total",
    help: "Provider delivery status callbacks by channel and state.",
    labelNames: ["channel", "state"] as const,
    registers: [registry],
  });
  const walSync = new Histogram({
    name: "smsbridge_sqlite_wal_sync_seconds",
    help: "SQLite only: each fdatasync of the WAL that acknowledgements wait for, from handing it to the thread pool until the event loop sees it done (the disk's sync latency, plus waiting for a core on a busy host).",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const retentionDeleted = new Counter({
    name: "smsbridge_retention_deleted_total",
    help: "Rows the retention sweep deleted, by kind: messages, provider_refs (their provider ids), dead_outbox (dead messages kept for replay), replies (staff-reply idempotency records past their 24 h).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const retentionSweeps = new Counter({
    name: "smsbridge_retention_sweeps_total",
    help: "Retention sweeps by result (ok, error).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const retentionLastSuccess = new Gauge({
    name: "smsbridge_retention_last_success_timestamp_seconds",
    help: "When the last retention sweep finished without an error (Unix time).",
    registers: [registry],
  });
  return {
    registry,
    walSync,
    retentionDeleted,
    retentionSweeps,
    retentionLastSuccess,
    inbound,
    forwardAttempts,
    claimed,
    outboxDepth,
    outboxOldest,
    outboxDead,
    breakerOpen,
    replyLatency,
    replyPhase,
    providerSends,
    deliveryReports,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
