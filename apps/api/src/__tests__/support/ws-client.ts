import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { GqlError } from './test-api';
import { expectNoLeak } from './test-api';

/**
 * A minimal graphql-transport-ws client (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md)
 * for the subscription tests, over `ws` — Mercurius' own WebSocket dependency, so nothing is added to the
 * workspace. Every frame received is scanned for leaks like HTTP responses are.
 */

interface WsSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'open', listener: () => void): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'unexpected-response', listener: (request: unknown, response: { statusCode?: number }) => void): void;
}

// `ws` ships no types and @types/ws is not installed: this is the part of its API used here.
const { WebSocket } = createRequire(__filename)('ws') as {
  WebSocket: new (url: string, protocols: string[], options?: { headers?: Record<string, string> }) => WsSocket;
};

const OPEN = 1;

export const GRAPHQL_TRANSPORT_WS = 'graphql-transport-ws';

/** The app's `ws://` GraphQL URL, listening on a free loopback port first if it does not listen yet. */
export async function graphqlWsUrl(app: NestFastifyApplication): Promise<string> {
  const server = app.getHttpServer();
  if (server.address() === null) await app.listen(0, '127.0.0.1');
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

export type ServerFrame =
  | { type: 'next'; id: string; payload: { data?: Record<string, unknown> | null; errors?: GqlError[] } }
  | { type: 'error'; id: string; payload: GqlError[] }
  | { type: 'complete'; id: string };

export type ConnectOutcome = { ok: true; client: WsClient } | { ok: false; refusal: string };

/** Frames of one subscription, in arrival order, read one at a time. */
export class WsSubscription {
  readonly frames: ServerFrame[] = [];
  private read = 0;
  private waiter: (() => void) | undefined;

  constructor(
    readonly id: string,
    private readonly client: WsClient,
  ) {}

  /** @internal */
  deliver(frame: ServerFrame): void {
    this.frames.push(frame);
    this.waiter?.();
  }

  /** The next frame not read yet; rejects after `timeoutMs`, or when the connection closes first. */
  async take(timeoutMs = 5000): Promise<ServerFrame> {
    const deadline = Date.now() + timeoutMs;
    while (this.read >= this.frames.length) {
      if (this.client.isClosed) throw new Error(`subscription ${this.id}: the connection closed`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`subscription ${this.id}: nothing within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.frames[this.read++] as ServerFrame;
  }

  /** The next frame, which must carry data without errors; returns the data. */
  async data(timeoutMs = 5000): Promise<Record<string, unknown>> {
    const frame = await this.take(timeoutMs);
    if (frame.type !== 'next' || frame.payload.errors !== undefined || !frame.payload.data) {
      throw new Error(`expected data, got ${JSON.stringify(frame)}`);
    }
    return frame.payload.data;
  }

  /** Nothing arrives for `ms` (the frames so far are left unread). */
  async expectQuiet(ms: number): Promise<void> {
    const before = this.frames.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.frames.length !== before)
      throw new Error(`unexpected frames: ${JSON.stringify(this.frames.slice(before))}`);
  }

  /** Tells the server to stop the subscription (`complete`). */
  stop(): void {
    this.client.send({ type: 'complete', id: this.id });
  }
}

export class WsClient {
  private nextId = 1;
  private readonly subscriptions = new Map<string, WsSubscription>();
  isClosed = false;
  /** How the server closed the connection, once it has. */
  closeInfo: { code: number; reason: string } | undefined;

  constructor(private readonly socket: WsSocket) {
    socket.on('message', (data) => {
      const text = data.toString('utf8');
      expectNoLeak(text);
      const frame = JSON.parse(text) as { type: string; id?: string };
      if (frame.type === 'ping') this.send({ type: 'pong' });
      else if (frame.id !== undefined) this.subscriptions.get(frame.id)?.deliver(frame as ServerFrame);
    });
    socket.on('close', (code, reason) => {
      this.isClosed = true;
      this.closeInfo = { code, reason: reason.toString('utf8') };
    });
  }

  /** Starts an operation (`subscribe`); its frames are read from the returned subscription. */
  subscribe(query: string, variables?: Record<string, unknown>): WsSubscription {
    const id = String(this.nextId++);
    const subscription = new WsSubscription(id, this);
    this.subscriptions.set(id, subscription);
    this.send({ type: 'subscribe', id, payload: { query, variables } });
    return subscription;
  }

  /** @internal */
  send(message: object): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Closes the connection (the server then ends every subscription of it) and waits until it is closed. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    const closed = new Promise<void>((resolve) => this.socket.on('close', () => resolve()));
    this.socket.close(1000, 'bye');
    const timer = setTimeout(() => this.socket.terminate(), 2000);
    await closed;
    clearTimeout(timer);
  }
}

/**
 * Opens a graphql-transport-ws connection and sends `connection_init` with `connectionParams` (omitted when
 * `undefined`). Resolves with the client once the server acknowledges, or with how it refused: a
 * `connection_error` frame, a close, or an HTTP status instead of the upgrade.
 */
export async function connectWs(
  url: string,
  connectionParams?: Record<string, unknown>,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ConnectOutcome> {
  const socket = new WebSocket(url, [GRAPHQL_TRANSPORT_WS], { headers: options.headers });
  return new Promise<ConnectOutcome>((resolve) => {
    let settled = false;
    const settle = (outcome: ConnectOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!outcome.ok) socket.terminate();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => settle({ ok: false, refusal: 'timeout: no connection_ack' }),
      options.timeoutMs ?? 5000,
    );
    socket.on('error', (error) => settle({ ok: false, refusal: `error: ${error.message}` }));
    socket.on('unexpected-response', (_request, response) =>
      settle({ ok: false, refusal: `http ${response.statusCode ?? '?'}` }),
    );
    socket.on('close', (code, reason) => settle({ ok: false, refusal: `closed ${code} ${reason.toString('utf8')}` }));
    socket.on('open', () => {
      const init = connectionParams === undefined ? {} : { payload: connectionParams };
      socket.send(JSON.stringify({ type: 'connection_init', ...init }));
    });
    const client = new WsClient(socket);
    socket.on('message', (data) => {
      if (settled) return;
      const frame = JSON.parse(data.toString('utf8')) as { type: string; payload?: { message?: string } };
      if (frame.type === 'connection_ack') settle({ ok: true, client });
      else if (frame.type === 'connection_error') {
        settle({ ok: false, refusal: `connection_error: ${frame.payload?.message ?? ''}` });
      }
    });
  });
}

/** Connects with `Authorization: Bearer <token>` in `connectionParams`; fails the test if refused. */
export async function connectWithToken(url: string, token: string): Promise<WsClient> {
  const outcome = await connectWs(url, { authorization: `Bearer ${token}` });
  if (!outcome.ok) throw new Error(`connection refused: ${outcome.refusal}`);
  return outcome.client;
}
