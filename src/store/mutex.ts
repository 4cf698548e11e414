/** A FIFO async mutex: `run` waits for every earlier holder, then runs `fn` alone. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    // The chain must survive a failed holder; errors reach the caller through `result`.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
