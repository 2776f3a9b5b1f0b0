import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { QmpCommandError, VmmError } from './errors';
import { encodeQmpCommand, LineSplitter, parseQmpMessage } from './qmp-codec';
import type { QmpEvent, QmpMessage } from './qmp-codec';
import { sleep } from './sleep';

export interface QmpConnectOptions {
  /** Total time for the socket to appear, accept, greet and accept `qmp_capabilities`. Default 5000 ms. */
  timeoutMs?: number;
  /** Default per-command timeout. Default 10000 ms. */
  commandTimeoutMs?: number;
  /** Longest line accepted from QEMU; a longer one drops the connection. Default 1 MiB. */
  maxLineBytes?: number;
  /** Pause between connection attempts while the socket is missing or refusing. Default 10 ms. */
  retryMs?: number;
}

export interface QmpStatus {
  /** `prelaunch`, `running`, `paused`, `shutdown`, `guest-panicked`, … */
  status: string;
  running: boolean;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const onError = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * A QMP client on QEMU's unix socket. Replies are matched by id, every command has a timeout, events go to
 * `onEvent` listeners. QEMU's output is treated as semi-trusted: bounded lines, shape-checked messages, and any
 * protocol violation closes the connection (pending commands fail with QMP_PROTOCOL).
 */
export class QmpClient {
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private readonly closeListeners = new Set<(error: VmmError | undefined) => void>();
  private nextId = 1;
  private closedWith: { error: VmmError | undefined } | undefined;
  private readonly commandTimeoutMs: number;

  private constructor(
    private readonly socket: Socket,
    private readonly splitter: LineSplitter,
    /** QEMU's version as its greeting states it. */
    readonly version: unknown,
    options: QmpConnectOptions,
    /** Messages that arrived with the greeting or during negotiation, handled once the client exists. */
    backlog: QmpMessage[],
  ) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? 10_000;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.shutdown(new VmmError('QMP_CLOSED', `QMP socket error: ${error.message}`)));
    socket.on('close', () => this.shutdown(new VmmError('QMP_CLOSED', 'QMP connection closed')));
    try {
      for (const message of backlog) this.dispatch(message);
    } catch (error) {
      this.shutdown(error instanceof VmmError ? error : new VmmError('QMP_PROTOCOL', String(error)));
    }
    socket.resume();
  }

  /**
   * Connects to `socketPath`, retrying while the socket does not exist yet or refuses (QEMU creates it a few
   * milliseconds after exec), reads the greeting and negotiates capabilities, all before the deadline.
   * QEMU serves one QMP client at a time: a second client is accepted by the kernel but never greeted.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    let socket: Socket | undefined;
    let lastError: unknown;
    while (socket === undefined) {
      try {
        socket = await connectOnce(socketPath);
      } catch (error) {
        lastError = error;
        if (!RETRYABLE.has((error as NodeJS.ErrnoException).code ?? '')) {
          throw new VmmError('QMP_CLOSED', `cannot connect to QMP at ${socketPath}: ${String(error)}`, {
            cause: error,
          });
        }
        if (Date.now() + (options.retryMs ?? 10) > deadline) {
          throw new VmmError('QMP_CONNECT_TIMEOUT', `no QMP socket at ${socketPath} after ${timeoutMs} ms`, {
            cause: lastError,
          });
        }
        await sleep(options.retryMs ?? 10);
      }
    }
    const splitter = new LineSplitter(options.maxLineBytes ?? 1024 * 1024);
    const connected = socket;
    let greeting: Extract<QmpMessage, { kind: 'greeting' }>;
    const backlog: QmpMessage[] = [];
    try {
      greeting = await new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new VmmError('QMP_CONNECT_TIMEOUT', `no QMP greeting on ${socketPath} within ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        );
        let greetingSeen: Extract<QmpMessage, { kind: 'greeting' }> | undefined;
        const done = (error: Error | undefined): void => {
          clearTimeout(timer);
          connected.pause(); // until the client listens: no 'data' may be emitted into the void
          connected.off('data', onData);
          connected.off('close', onClose);
          if (error) reject(error);
          else if (greetingSeen) resolve(greetingSeen);
        };
        const onData = (chunk: Buffer): void => {
          try {
            for (const line of splitter.push(chunk)) {
              if (line.trim() === '') continue;
              const message = parseQmpMessage(line);
              if (greetingSeen) backlog.push(message);
              else if (message.kind === 'greeting') greetingSeen = message;
              else throw new VmmError('QMP_PROTOCOL', `expected a QMP greeting, got a ${message.kind}`);
            }
          } catch (error) {
            done(error as Error);
            return;
          }
          if (greetingSeen) done(undefined);
        };
        const onClose = (): void => done(new VmmError('QMP_CLOSED', `QMP at ${socketPath} closed before greeting`));
        connected.on('data', onData);
        connected.on('close', onClose);
        connected.on('error', () => undefined); // 'close' follows
      });
    } catch (error) {
      connected.destroy();
      throw error;
    }
    const client = new QmpClient(connected, splitter, greeting.version, options, backlog);
    try {
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Runs a command; resolves with its `return` value, rejects with QmpCommandError, QMP_TIMEOUT or QMP_CLOSED. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closedWith) {
      return Promise.reject(this.closedWith.error ?? new VmmError('QMP_CLOSED', 'QMP connection closed'));
    }
    const id = `caas-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VmmError('QMP_TIMEOUT', `QMP ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.socket.write(encodeQmpCommand(command, id, args));
    });
  }

  async queryStatus(): Promise<QmpStatus> {
    const result = await this.execute<{ status?: unknown; running?: unknown }>('query-status');
    if (typeof result?.status !== 'string' || typeof result.running !== 'boolean') {
      throw new VmmError('QMP_PROTOCOL', 'query-status returned an unexpected shape');
    }
    return { status: result.status, running: result.running };
  }

  /** `quit`: QEMU exits at once. Resolves on the reply or when QEMU closes the connection first. */
  async quit(): Promise<void> {
    try {
      await this.execute('quit');
    } catch (error) {
      if (!(error instanceof VmmError && error.code === 'QMP_CLOSED')) throw error;
    }
  }

  /** Calls `listener` for every event; returns a function that removes it. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Calls `listener` once when the connection ends (with the error that ended it, if any). */
  onClose(listener: (error: VmmError | undefined) => void): () => void {
    if (this.closedWith) {
      const { error } = this.closedWith;
      queueMicrotask(() => listener(error));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** The next event named `name` (and matching `filter`), or QMP_TIMEOUT / QMP_CLOSED. */
  waitForEvent(name: string, timeoutMs: number, filter: (event: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const finish = (error: Error | undefined, event?: QmpEvent): void => {
        clearTimeout(timer);
        offEvent();
        offClose();
        if (error) reject(error);
        else if (event) resolve(event);
      };
      const timer = setTimeout(
        () => finish(new VmmError('QMP_TIMEOUT', `no ${name} event within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const offEvent = this.onEvent((event) => {
        if (event.event === name && filter(event)) finish(undefined, event);
      });
      const offClose = this.onClose((error) =>
        finish(error ?? new VmmError('QMP_CLOSED', `QMP closed while waiting for ${name}`)),
      );
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Closes the connection; pending commands fail with QMP_CLOSED. QEMU keeps running. */
  close(): void {
    this.shutdown(undefined);
  }

  private onData(chunk: Buffer): void {
    if (this.closedWith) return;
    try {
      for (const line of this.splitter.push(chunk)) {
        if (line.trim() !== '') this.dispatch(parseQmpMessage(line));
      }
    } catch (error) {
      this.shutdown(error instanceof VmmError ? error : new VmmError('QMP_PROTOCOL', String(error), { cause: error }));
    }
  }

  private dispatch(message: QmpMessage): void {
    switch (message.kind) {
      case 'event':
        for (const listener of [...this.eventListeners]) listener(message.event);
        return;
      case 'return':
      case 'error': {
        const pending = message.id === undefined ? undefined : this.pending.get(message.id);
        if (!pending || message.id === undefined) return; // late reply after a timeout, or not ours
        this.pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.kind === 'return') pending.resolve(message.value);
        else pending.reject(new QmpCommandError(pending.command, message.errorClass, message.desc));
        return;
      }
      case 'greeting':
        throw new VmmError('QMP_PROTOCOL', 'a second QMP greeting');
    }
  }

  private shutdown(error: VmmError | undefined): void {
    if (this.closedWith) return;
    this.closedWith = { error };
    this.socket.destroy();
    const reason = error ?? new VmmError('QMP_CLOSED', 'QMP connection closed');
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(
        error?.code === 'QMP_PROTOCOL'
          ? error
          : new VmmError('QMP_CLOSED', `QMP connection closed before ${pending.command} was answered`, {
              cause: reason,
            }),
      );
    }
    for (const listener of [...this.closeListeners]) listener(error);
    this.closeListeners.clear();
  }
}
