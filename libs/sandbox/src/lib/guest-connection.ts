/**
 * The host end of the host ↔ guest protocol (libs/guest-protocol/PROTOCOL.md): one connection to each of the
 * VM's two virtio-serial sockets, `hello` on every (re)connect from the positions already accepted, requests
 * with ids and timeouts, events deduplicated by seq, output discarded until the replay start of the current
 * connection. Every byte from the guest is hostile: a protocol violation drops the connection, and the
 * connection says hello again, so nothing the guest still holds is lost.
 */
import { connect, type Socket } from 'node:net';
import {
  FrameDecoder,
  FrameKind,
  PROTOCOL_VERSION,
  encodeRequestFrame,
  isProtocolError,
  parseGuestMessage,
  parseResult,
  type DecodedFrame,
  type GuestEvent,
  type Hello,
  type Op,
  type OutputChunkFrame,
  type Request,
  type RequestParamsByOp,
  type ResponseErrorCode,
  type ResultByOp,
} from '@caas/guest-protocol';

export interface StreamPositions {
  /** The last output seq accepted (0: none). */
  outputSeq: number;
  /** The last event seq accepted (0: none). */
  eventSeq: number;
}

export interface GuestConnectionHandlers {
  event(seq: number, event: GuestEvent): void;
  output(chunk: OutputChunkFrame): void;
  /** Chunks fromSeq..toSeq are lost (evicted from the guest's ring before the host accepted them). */
  gap(fromSeq: number, toSeq: number): void;
  /** The connection was lost (and will be retried) or came back. */
  connection(connected: boolean, reason?: string): void;
}

/** The guest answered a request with an error. */
export class GuestRequestError extends Error {
  override readonly name = 'GuestRequestError';
  constructor(
    readonly op: Op,
    readonly code: ResponseErrorCode,
    message: string,
  ) {
    super(`${op}: ${code}: ${message}`);
  }
}

/** The request could not complete: no connection, the connection dropped, or no answer in time. */
export class GuestUnavailableError extends Error {
  override readonly name = 'GuestUnavailableError';
}

interface Pending {
  op: Op;
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

const RETRY_MS = 5;
const RECONNECT_MS = 200;

/** One attempt: both sockets up, hello answered. */
interface Session {
  ctl: Socket;
  out: Socket;
  helloId: number;
  helloDone: boolean;
  /** The output position the hello asked to resume after: its replay start says `helloOutputFrom + 1`. */
  helloOutputFrom: number;
  replayStarted: boolean;
}

export class GuestConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private session: Session | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly paths: { ctl: string; out: string },
    private readonly positions: StreamPositions,
    private readonly handlers: GuestConnectionHandlers,
  ) {}

  /** The positions accepted so far (persist them to resume after a host restart). */
  get accepted(): StreamPositions {
    return { ...this.positions };
  }

  /**
   * Connects and says hello, retrying until `deadline` (epoch ms) while the sockets are not there yet or the
   * guest has not answered. Later losses reconnect on their own until `close()`.
   */
  async open(deadline: number): Promise<Hello> {
    let lastError: Error = new GuestUnavailableError('no attempt made');
    while (!this.closed && Date.now() < deadline) {
      try {
        return await this.attempt(deadline);
      } catch (error) {
        lastError = error as Error;
        if (this.closed) break;
        await sleep(Math.min(RETRY_MS * 4, Math.max(0, deadline - Date.now())));
      }
    }
    throw new GuestUnavailableError(
      this.closed ? 'connection closed' : `guest not ready before the deadline: ${lastError.message}`,
    );
  }

  request<O extends Op>(op: O, params: RequestParamsByOp[O], timeoutMs = 10_000): Promise<ResultByOp[O]> {
    const session = this.session;
    if (!session?.helloDone) return Promise.reject(new GuestUnavailableError(`${op}: guest not connected`));
    return this.send(session, op, params, timeoutMs);
  }

  /** Closes both sockets for good; pending requests fail. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.drop('closed', false);
  }

  private send<O extends Op>(session: Session, op: O, params: RequestParamsByOp[O], timeoutMs: number) {
    const id = this.nextId++;
    const frame = encodeRequestFrame({ id, op, ...params } as Request);
    return new Promise<ResultByOp[O]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GuestUnavailableError(`${op}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { op, resolve: resolve as (r: unknown) => void, reject, timer });
      session.ctl.write(frame);
    });
  }

  private async attempt(deadline: number): Promise<Hello> {
    // Output first, so the guest's replay start has a reader when it answers the hello.
    const out = await connectUnix(this.paths.out);
    let ctl: Socket;
    try {
      ctl = await connectUnix(this.paths.ctl);
    } catch (error) {
      out.destroy();
      throw error;
    }
    if (this.closed) {
      out.destroy();
      ctl.destroy();
      throw new GuestUnavailableError('connection closed');
    }
    const session: Session = {
      ctl,
      out,
      helloId: 0,
      helloDone: false,
      helloOutputFrom: this.positions.outputSeq,
      replayStarted: false,
    };
    this.session = session;
    this.wire(session);
    const hello = this.send(
      session,
      'hello',
      { protocol: PROTOCOL_VERSION, outputFrom: this.positions.outputSeq, eventsFrom: this.positions.eventSeq },
      Math.max(1, deadline - Date.now()),
    );
    session.helloId = this.nextId - 1;
    try {
      return await hello;
    } catch (error) {
      if (this.session === session) this.drop(`hello failed: ${(error as Error).message}`, false);
      throw error;
    }
  }

  private wire(session: Session): void {
    const ctlDecoder = new FrameDecoder('ctl');
    const outDecoder = new FrameDecoder('out');
    const onFrames = (decoder: FrameDecoder, chunk: Buffer, handle: (frame: DecodedFrame) => void) => {
      if (this.session !== session) return;
      try {
        for (const frame of decoder.push(chunk)) {
          handle(frame);
          if (this.session !== session) return;
        }
      } catch (error) {
        if (!isProtocolError(error)) throw error;
        this.lost(session, `protocol error: ${error.code}: ${error.message}`);
      }
    };
    session.ctl.on('data', (chunk: Buffer) => onFrames(ctlDecoder, chunk, (frame) => this.onControl(session, frame)));
    session.out.on('data', (chunk: Buffer) => onFrames(outDecoder, chunk, (frame) => this.onOutput(session, frame)));
    for (const socket of [session.ctl, session.out]) {
      socket.on('error', () => undefined);
      socket.on('close', () => this.lost(session, 'socket closed'));
    }
  }

  private onControl(session: Session, frame: DecodedFrame): void {
    if (frame.kind !== FrameKind.Json) return;
    const message = parseGuestMessage(frame.message);
    if (message.type === 'event') {
      if (!session.helloDone || message.seq <= this.positions.eventSeq) return; // stale, or replayed twice
      this.positions.eventSeq = message.seq;
      this.handlers.event(message.seq, message.event);
      return;
    }
    if (!session.helloDone && message.id !== session.helloId) return;
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (!message.ok) {
      pending.reject(new GuestRequestError(pending.op, message.error.code, message.error.message));
      return;
    }
    let result: unknown;
    try {
      result = parseResult(pending.op, message.result);
    } catch (error) {
      // A result that breaks the contract is a protocol violation: the request fails, the connection drops.
      pending.reject(error as Error);
      throw error;
    }
    if (message.id === session.helloId) {
      session.helloDone = true;
      this.handlers.connection(true);
    }
    pending.resolve(result);
  }

  private onOutput(session: Session, frame: DecodedFrame): void {
    switch (frame.kind) {
      case FrameKind.ReplayStart:
        // A replay start left over from an earlier hello names another position: keep discarding.
        if (frame.fromSeq === session.helloOutputFrom + 1) session.replayStarted = true;
        return;
      case FrameKind.OutputGap:
        if (!session.replayStarted || frame.toSeq <= this.positions.outputSeq) return;
        this.reportGap(Math.max(frame.fromSeq, this.positions.outputSeq + 1), frame.toSeq);
        return;
      case FrameKind.OutputChunk:
        if (!session.replayStarted || frame.seq <= this.positions.outputSeq) return;
        if (frame.seq > this.positions.outputSeq + 1) this.reportGap(this.positions.outputSeq + 1, frame.seq - 1);
        this.positions.outputSeq = frame.seq;
        this.handlers.output(frame);
        return;
      case FrameKind.Json:
        return;
    }
  }

  private reportGap(fromSeq: number, toSeq: number): void {
    this.positions.outputSeq = toSeq;
    this.handlers.gap(fromSeq, toSeq);
  }

  private lost(session: Session, reason: string): void {
    if (this.session !== session) return;
    const wasUp = session.helloDone;
    this.drop(reason, wasUp);
    if (!this.closed && wasUp) this.scheduleReconnect();
  }

  private drop(reason: string, notify: boolean): void {
    const session = this.session;
    this.session = undefined;
    if (session) {
      session.ctl.destroy();
      session.out.destroy();
    }
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new GuestUnavailableError(`${pending.op}: ${reason}`));
      this.pending.delete(id);
    }
    if (notify) this.handlers.connection(false, reason);
  }

  private scheduleReconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.closed || this.session) return;
      this.attempt(Date.now() + 5_000).catch(() => {
        if (!this.closed && !this.session) this.scheduleReconnect();
      });
    }, RECONNECT_MS);
  }
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
