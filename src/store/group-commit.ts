/**
 * Group commit: requests that arrive while a transaction is being committed wait and then share the next
 * one. Each caller's promise settles only after the transaction holding its item committed (or failed), so
 * durability per acknowledgement is unchanged while one fsync serves many messages.
 */
export class GroupCommit<I, R> {
  private queue: Array<{ item: I; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  private running = 0;
  private idle: Array<() => void> = [];

  constructor(
    private readonly commit: (items: I[]) => Promise<R[]>,
    private readonly opts: { concurrency: number; maxBatch: number },
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.running < this.opts.concurrency) {
        this.running++;
        // Let requests already parsed in this turn of the event loop join the batch.
        setImmediate(() => void this.loop());
      }
    });
  }

  private async loop(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.opts.maxBatch);
        try {
          const results = await this.commit(batch.map((b) => b.item));
          for (const [i, b] of batch.entries()) b.resolve(results[i] as R);
        } catch (e) {
          for (const b of batch) b.reject(e);
        }
      }
    } finally {
      this.running--;
      if (this.running === 0) for (const f of this.idle.splice(0)) f();
    }
  }

  /** Resolves when nothing is queued or committing. */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }
}
