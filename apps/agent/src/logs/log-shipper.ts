/**
 * Ships the output of a node's pod VMs to Redis (ADR-005): sandbox `output` chunks become lines (per container and
 * stream), secret env values are redacted, lines are rate limited per pod and per tenant, batched, and appended to
 * the node's log stream of the pod (`NodeConnection.appendLogs`). Every buffer is bounded: a chatty tenant, a slow
 * Redis or a VM that never prints a newline costs dropped lines (counted, and announced by a marker line), never
 * unbounded memory, and never blocks the VM.
 */
import type { EventEmitter } from 'node:events';
import type { LogStreamName, PodLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_LINE_MAX_BYTES, isContainerName, truncateUtf8 } from '@caas/log-stream-contract';
import type { DesiredPod } from '@caas/queue-contracts';
import type { SandboxEvents, SandboxOutput } from '@caas/sandbox';

/** Where lines go (`NodeConnection`). */
export interface LogAppender {
  appendLogs(podId: string, entries: PodLogEntry[]): Promise<void>;
}

export interface LogShipperLogger {
  warn(obj: object, msg: string): void;
}

export interface LogLimits {
  /** Per pod token bucket: lines per second and burst. */
  podLinesPerSecond: number;
  podBurst: number;
  /** Per tenant token bucket, across the tenant's pods on this node. */
  tenantLinesPerSecond: number;
  tenantBurst: number;
  /** A batch is appended this long after its first line, or as soon as it has `batchLines` lines. */
  flushIntervalMs: number;
  batchLines: number;
  /** Lines (and bytes) waiting to be appended per pod; beyond, new lines are dropped. */
  maxQueuedLines: number;
  maxQueuedBytes: number;
  /** Attempts per batch (the first included) and the delay before the first retry (doubling). */
  maxAttempts: number;
  retryDelayMs: number;
  /** Output held per pod while its secrets are not known yet (an adopted VM before the first desired set). */
  maxPendingBytes: number;
}

export const DEFAULT_LOG_LIMITS: LogLimits = {
  podLinesPerSecond: 1_000,
  podBurst: 5_000,
  tenantLinesPerSecond: 5_000,
  tenantBurst: 10_000,
  flushIntervalMs: 100,
  batchLines: 500,
  maxQueuedLines: 5_000,
  maxQueuedBytes: 8 * 1024 * 1024,
  maxAttempts: 3,
  retryDelayMs: 200,
  maxPendingBytes: 1024 * 1024,
};

export const REDACTED = '********';

type OutputGap = SandboxEvents['gap'][0];

/** Why lines were dropped (the counters of `stats()`). */
export interface LogDropCounts {
  /** Over the pod's or the tenant's rate budget. */
  rateLimited: number;
  /** The queue was full (Redis slow or away). */
  backlog: number;
  /** Appending failed `maxAttempts` times. */
  failed: number;
  /** Output of an adopted VM that ended before its secrets were known, or beyond `maxPendingBytes` meanwhile. */
  unredactable: number;
}

/** The parts of a desired pod the shipper needs. */
export type LogPodSpec = Pick<DesiredPod, 'tenantId' | 'containers'>;

/** The secret env values of a pod, longest first (so a secret containing another is replaced whole). */
export function secretValuesOf(pod: LogPodSpec): string[] {
  const values = new Set<string>();
  for (const container of pod.containers) {
    for (const entry of container.env) if (entry.secret && entry.value.length > 0) values.add(entry.value);
  }
  return [...values].sort((a, b) => b.length - a.length);
}

class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }
  available(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    return this.tokens;
  }
  take(): void {
    this.tokens -= 1;
  }
}

interface TenantBudget {
  bucket: TokenBucket;
  pods: number;
}

export interface LogShippingOptions {
  appender: LogAppender;
  limits?: Partial<LogLimits>;
  log?: LogShipperLogger;
  now?: () => number;
}

/** The node's log shipping: one per agent, one `PodLogShipper` per pod VM, tenant budgets shared between them. */
export class LogShipping {
  readonly limits: LogLimits;
  private readonly tenants = new Map<string, TenantBudget>();
  private readonly shippers = new Set<PodLogShipper>();

  constructor(private readonly options: LogShippingOptions) {
    this.limits = { ...DEFAULT_LOG_LIMITS, ...options.limits };
  }

  get appender(): LogAppender {
    return this.options.appender;
  }

  get log(): LogShipperLogger | undefined {
    return this.options.log;
  }

  now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Starts shipping the output of a pod's VM (held until `configure` tells the pod's tenant and secrets). */
  open(podId: string, sandbox: Pick<EventEmitter<SandboxEvents>, 'on' | 'off'>, containers: string[]): PodLogShipper {
    const shipper = new PodLogShipper(this, podId, containers);
    this.shippers.add(shipper);
    shipper.attach(sandbox);
    return shipper;
  }

  /** Flushes and closes every shipper (the agent stops). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.shippers].map((shipper) => shipper.close()));
  }

  /** @internal */
  tenantBucket(tenantId: string): TokenBucket {
    let budget = this.tenants.get(tenantId);
    if (budget === undefined) {
      budget = {
        bucket: new TokenBucket(this.limits.tenantLinesPerSecond, this.limits.tenantBurst, this.now()),
        pods: 0,
      };
      this.tenants.set(tenantId, budget);
    }
    budget.pods++;
    return budget.bucket;
  }

  /** @internal */
  release(shipper: PodLogShipper, tenantId: string | undefined): void {
    this.shippers.delete(shipper);
    if (tenantId === undefined) return;
    const budget = this.tenants.get(tenantId);
    if (budget !== undefined && --budget.pods <= 0) this.tenants.delete(tenantId);
  }
}

interface PartialLine {
  bytes: Buffer;
  timeMs: number;
}

interface Configured {
  tenantId: string;
  tenant: TokenBucket;
  secrets: string[];
  secretBytes: Buffer[];
  /** Longest secret, in bytes: how far a forced cut looks back for a secret it would split. */
  slack: number;
}

/** One pod VM's output shipping. */
export class PodLogShipper {
  private readonly limits: LogLimits;
  private readonly containers: Set<string>;
  private readonly pod: TokenBucket;
  private config: Configured | undefined;
  /** Chunks that came before `configure`: they cannot be redacted yet. */
  private pending: Array<SandboxOutput | { gap: OutputGap }> = [];
  private pendingBytes = 0;
  private readonly partials = new Map<string, PartialLine>();
  private queue: PodLogEntry[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  private detach: (() => void) | undefined;
  /** Dropped since the last marker line, by cause, and the container/stream they were on. */
  private unannounced = { rateLimited: 0, backlog: 0, container: '', stream: 'stderr' as LogStreamName };
  private readonly dropped: LogDropCounts = { rateLimited: 0, backlog: 0, failed: 0, unredactable: 0 };
  private shipped = 0;
  private lastFailureLogAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly shipping: LogShipping,
    readonly podId: string,
    containers: string[],
  ) {
    this.limits = shipping.limits;
    this.containers = new Set(containers.filter(isContainerName));
    this.pod = new TokenBucket(this.limits.podLinesPerSecond, this.limits.podBurst, shipping.now());
  }

  /** Counters: lines appended, and lines dropped by cause. */
  stats(): { shipped: number; dropped: LogDropCounts; queued: number } {
    return { shipped: this.shipped, dropped: { ...this.dropped }, queued: this.queue.length };
  }

  /** @internal */
  attach(sandbox: Pick<EventEmitter<SandboxEvents>, 'on' | 'off'>): void {
    const onOutput = (output: SandboxOutput) => this.write(output);
    const onGap = (gap: OutputGap) => this.gap(gap);
    sandbox.on('output', onOutput);
    sandbox.on('gap', onGap);
    this.detach = () => {
      sandbox.off('output', onOutput);
      sandbox.off('gap', onGap);
    };
  }

  /** The pod's tenant and secrets are known: output is shipped from now on (held output first). */
  configure(spec: LogPodSpec): void {
    if (this.closed || this.config !== undefined) return;
    const secrets = secretValuesOf(spec);
    const secretBytes = secrets.map((s) => Buffer.from(s, 'utf8'));
    this.config = {
      tenantId: spec.tenantId,
      tenant: this.shipping.tenantBucket(spec.tenantId),
      secrets,
      secretBytes,
      slack: secretBytes.reduce((max, b) => Math.max(max, b.length), 0),
    };
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const item of pending) {
      if ('gap' in item) this.gap(item.gap);
      else this.write(item);
    }
  }

  /** One output chunk of the VM. */
  write(output: SandboxOutput): void {
    if (this.closed || !this.containers.has(output.source)) return; // exec output is not the pod's log
    if (this.config === undefined) {
      if (this.pendingBytes + output.data.length > this.limits.maxPendingBytes) {
        this.dropped.unredactable++;
        return;
      }
      this.pending.push(output);
      this.pendingBytes += output.data.length;
      return;
    }
    this.consume(output.source, output.stream, output.data, this.shipping.now());
  }

  /** Output chunks were lost in the guest: the partial lines end there, and a marker says so. */
  gap(gap: OutputGap): void {
    if (this.closed) return;
    if (this.config === undefined) {
      this.pending.push({ gap });
      return;
    }
    const now = this.shipping.now();
    this.endPartials();
    const lost = Math.max(1, gap.toSeq - gap.fromSeq + 1);
    for (const container of this.containers) {
      this.enqueue({
        container,
        stream: 'stderr',
        line: `[caas: output lost: ${lost} chunks overflowed the VM's buffer]`,
        timeMs: now,
      });
    }
  }

  /** Ships the partial lines and what is queued, then stops (the VM is gone). Bounded by the retry policy. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.config !== undefined) {
      this.endPartials();
      this.announceDrops(true);
    } else {
      this.dropped.unredactable += this.pending.length;
      this.pending = [];
    }
    this.closed = true;
    this.detach?.();
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.inFlight !== undefined || this.queue.length > 0) {
      if (this.inFlight !== undefined) await this.inFlight;
      else this.flush();
    }
    this.shipping.release(this, this.config?.tenantId);
  }

  // -------------------------------------------------------------------------------------------------------------

  private consume(container: string, stream: LogStreamName, data: Buffer, timeMs: number): void {
    const config = this.config;
    if (config === undefined) return;
    const key = `${container}\u0000${stream}`;
    const partial = this.partials.get(key);
    const buffer = partial === undefined ? data : Buffer.concat([partial.bytes, data]);
    const lineTime = partial?.timeMs ?? timeMs;
    const bound = POD_LOG_LINE_MAX_BYTES + config.slack;
    let start = 0;
    let first = true;
    for (;;) {
      const newline = buffer.indexOf(0x0a, start);
      const time = first ? lineTime : timeMs;
      if (newline !== -1 && newline - start <= bound) {
        let end = newline;
        if (end > start && buffer[end - 1] === 0x0d) end--;
        this.line(container, stream, buffer.subarray(start, end), time);
        start = newline + 1;
      } else if (buffer.length - start > bound) {
        const cut = this.safeCut(buffer, start, start + POD_LOG_LINE_MAX_BYTES);
        this.line(container, stream, buffer.subarray(start, cut), time);
        start = cut;
      } else {
        break;
      }
      first = false;
    }
    if (start >= buffer.length) this.partials.delete(key);
    else this.partials.set(key, { bytes: Buffer.from(buffer.subarray(start)), timeMs: first ? lineTime : timeMs });
  }

  /** A cut at `cut` that splits neither a UTF-8 character nor an occurrence of a secret. */
  private safeCut(buffer: Buffer, start: number, cut: number): number {
    const secrets = this.config?.secretBytes ?? [];
    for (let moved = true; moved;) {
      moved = false;
      while (cut > start + 1 && ((buffer[cut] ?? 0) & 0xc0) === 0x80) cut--;
      for (const secret of secrets) {
        let at = buffer.indexOf(secret, Math.max(start, cut - secret.length + 1));
        while (at !== -1 && at < cut) {
          if (at + secret.length > cut) {
            // Never split a secret: cut before it, or after it when it starts the piece.
            cut = at > start ? at : at + secret.length;
            moved = at > start;
            break;
          }
          at = buffer.indexOf(secret, at + 1);
        }
        if (moved) break;
      }
    }
    return cut;
  }

  private endPartials(): void {
    for (const [key, partial] of this.partials) {
      const [container = '', stream] = key.split('\u0000');
      this.line(container, stream === 'stdout' ? 'stdout' : 'stderr', partial.bytes, partial.timeMs, true);
    }
    this.partials.clear();
  }

  /** One line of raw output: redacted, split at POD_LOG_LINE_MAX_BYTES, budgeted, queued. */
  private line(container: string, stream: LogStreamName, raw: Buffer, timeMs: number, unterminated = false): void {
    let text = this.redact(raw.toString('utf8'), unterminated);
    do {
      const piece = truncateUtf8(text);
      text = text.slice(piece.length);
      if (this.admit(container, stream)) this.enqueue({ container, stream, line: piece, timeMs });
    } while (text.length > 0);
  }

  private redact(text: string, unterminated: boolean): string {
    const secrets = this.config?.secrets ?? [];
    for (const secret of secrets) if (text.includes(secret)) text = text.split(secret).join(REDACTED);
    if (!unterminated) return text;
    // Output that ends mid-line (a gap, the VM's end) may end with the beginning of a secret.
    for (const secret of secrets) {
      for (let k = Math.min(secret.length - 1, text.length); k > 0; k--) {
        if (text.endsWith(secret.slice(0, k))) return text.slice(0, text.length - k) + REDACTED;
      }
    }
    return text;
  }

  /** Takes a token from the pod's and the tenant's budgets, or counts the line as dropped. */
  private admit(container: string, stream: LogStreamName): boolean {
    const config = this.config;
    if (config === undefined) return false;
    const now = this.shipping.now();
    if (this.pod.available(now) < 1 || config.tenant.available(now) < 1) {
      this.dropped.rateLimited++;
      this.unannounced.rateLimited++;
      this.unannounced.container = container;
      this.unannounced.stream = stream;
      return false;
    }
    this.pod.take();
    config.tenant.take();
    this.announceDrops(false);
    return true;
  }

  /** The marker line of the lines dropped since the last one, once lines flow again. */
  private announceDrops(closing: boolean): void {
    const { rateLimited, backlog, container } = this.unannounced;
    if (rateLimited === 0 && backlog === 0) return;
    if (!closing && backlog > 0 && this.queue.length >= this.limits.maxQueuedLines) return;
    const reasons = [
      rateLimited > 0 ? `${rateLimited} lines dropped: log rate limit` : undefined,
      backlog > 0 ? `${backlog} lines dropped: log shipping backlog` : undefined,
    ].filter((r) => r !== undefined);
    this.unannounced.rateLimited = 0;
    this.unannounced.backlog = 0;
    const line = `[caas: ${reasons.join('; ')}]`;
    this.push({ container, stream: 'stderr', line, timeMs: this.shipping.now() });
  }

  private enqueue(entry: PodLogEntry): void {
    const bytes = Buffer.byteLength(entry.line);
    if (this.queue.length >= this.limits.maxQueuedLines || this.queuedBytes + bytes > this.limits.maxQueuedBytes) {
      this.dropped.backlog++;
      this.unannounced.backlog++;
      this.unannounced.container = entry.container;
      return;
    }
    if (this.unannounced.backlog > 0) this.announceDrops(false);
    this.push(entry);
  }

  /** Queues an entry (markers may go one past the bound) and schedules the flush. */
  private push(entry: PodLogEntry): void {
    this.queue.push(entry);
    this.queuedBytes += Buffer.byteLength(entry.line);
    if (this.closed) return;
    if (this.queue.length >= this.limits.batchLines) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.limits.flushIntervalMs).unref();
  }

  /** Starts appending a batch unless one is in flight (one at a time, in order). */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight !== undefined || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.limits.batchLines);
    for (const entry of batch) this.queuedBytes -= Buffer.byteLength(entry.line);
    this.inFlight = this.append(batch).finally(() => {
      this.inFlight = undefined;
      if (this.closed) return;
      if (this.queue.length >= this.limits.batchLines) this.flush();
      else if (this.queue.length > 0)
        this.timer ??= setTimeout(() => this.flush(), this.limits.flushIntervalMs).unref();
    });
  }

  private async append(batch: PodLogEntry[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.shipping.appender.appendLogs(this.podId, batch);
        this.shipped += batch.length;
        return;
      } catch (error) {
        if (attempt >= this.limits.maxAttempts) {
          this.dropped.failed += batch.length;
          const now = this.shipping.now();
          if (now - this.lastFailureLogAt >= 10_000) {
            this.lastFailureLogAt = now;
            const message = error instanceof Error ? error.message : String(error);
            this.shipping.log?.warn(
              { podId: this.podId, lines: batch.length, dropped: this.dropped.failed, error: message },
              'pod log lines dropped: appending failed',
            );
          }
          return;
        }
        const delay = this.limits.retryDelayMs * 2 ** (attempt - 1);
        await new Promise<void>((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }
}
