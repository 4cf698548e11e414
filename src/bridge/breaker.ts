/**
 * Per-channel circuit breaker for helpdesk deliveries. After `threshold` consecutive retryable failures it
 * opens: the forwarder stops claiming that channel's messages (they stay queued, nothing is dropped) until
 * `cooldownMs` has passed; then one probe is let through (half-open) and its outcome closes or reopens it.
 */
export type BreakerState = "closed" | "open" | "half-open";

export class Breaker {
  private failures = 0;
  private openedAt = 0;
  private state: BreakerState = "closed";
  private probing = false;

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
  ) {}

  current(now: number): BreakerState {
    if (this.state === "open" && now - this.openedAt >= this.cooldownMs) this.state = "half-open";
    return this.state;
  }

  /** How many deliveries may start now (0 when open; 1 probe when half-open). */
  allowance(now: number, max: number): number {
    const s = this.current(now);
    if (s === "closed") return max;
    if (s === "half-open" && !this.probing) return 1;
    return 0;
  }

  onStart(now: number): void {
    if (this.current(now) === "half-open") this.probing = true;
  }

  success(): void {
    this.failures = 0;
    this.state = "closed";
    this.probing = false;
  }

  failure(now: number): void {
    this.failures++;
    this.probing = false;
    if (this.state === "half-open" || this.failures >= this.threshold) {
      this.state = "open";
      this.openedAt = now;
    }
  }

  /** Milliseconds until an open breaker lets a probe through. */
  reopensIn(now: number): number {
    return this.state === "open" ? Math.max(0, this.cooldownMs - (now - this.openedAt)) : 0;
  }
}
