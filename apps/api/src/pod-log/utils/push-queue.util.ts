/**
 * An async iterator fed by pushes (pub/sub messages), holding at most `capacity` values: when its consumer
 * falls behind, the oldest buffered values are dropped (and counted) rather than memory growing without
 * bound. `return()` — the consumer unsubscribing or disconnecting — ends it at once, even while a `next()`
 * is waiting, and runs the cleanup exactly once.
 */
export class PushQueue<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private closed = false;
  private cleanup: (() => Promise<void> | void) | undefined;
  /** Values dropped because the consumer was too slow. */
  dropped = 0;

  constructor(
    private readonly capacity: number,
    private readonly onDrop: (dropped: number) => void = () => undefined,
  ) {}

  /** What to run when the iterator ends (unsubscribe). Runs at once if it has already ended. */
  onClose(cleanup: () => Promise<void> | void): void {
    if (this.closed) void Promise.resolve(cleanup()).catch(() => undefined);
    else this.cleanup = cleanup;
  }

  push(value: T): void {
    if (this.closed) return;
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      waiting({ value, done: false });
      return;
    }
    this.buffer.push(value);
    if (this.buffer.length > this.capacity) {
      this.buffer.shift();
      this.dropped++;
      this.onDrop(this.dropped);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) return Promise.resolve({ value: this.buffer.shift() as T, done: false });
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.closed) {
      this.closed = true;
      this.buffer.length = 0;
      this.waiting?.({ value: undefined, done: true });
      this.waiting = undefined;
      const cleanup = this.cleanup;
      this.cleanup = undefined;
      await cleanup?.();
    }
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
