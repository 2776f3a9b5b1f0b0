/**
 * The QMP client against a scripted fake QEMU on a unix socket (no QEMU needed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpCommandError, VmmError } from '../errors';
import { QmpClient } from '../qmp-client';
import type { QmpEvent } from '../qmp-codec';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}\r\n';

type Handler = (command: { execute: string; id?: string; arguments?: unknown }, socket: Socket) => void;

/** A fake QMP server: greets (unless told not to), answers qmp_capabilities, then hands commands to `handler`. */
function fakeQmp(path: string, handler: Handler, options: { greeting?: string | null } = {}): Promise<Server> {
  const server = createServer((socket) => {
    if (options.greeting !== null) socket.write(options.greeting ?? GREETING);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const command = JSON.parse(line) as { execute: string; id?: string };
        if (command.execute === 'qmp_capabilities') socket.write(`{"return": {}, "id": "${command.id}"}\r\n`);
        else handler(command, socket);
      }
    });
    socket.on('error', () => undefined);
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

function codeOf(error: unknown): string | undefined {
  return error instanceof VmmError ? error.code : undefined;
}

describe('QmpClient', () => {
  let dir: string;
  let path: string;
  let server: Server | undefined;
  const clients: QmpClient[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qmp-'));
    path = join(dir, 'qmp.sock');
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(options: Parameters<typeof QmpClient.connect>[1] = {}): Promise<QmpClient> {
    const client = await QmpClient.connect(path, { timeoutMs: 2000, ...options });
    clients.push(client);
    return client;
  }

  it('retries until the socket appears, negotiates, matches replies by id out of order', async () => {
    const pending: { id: string; execute: string; socket: Socket }[] = [];
    setTimeout(() => {
      void fakeQmp(path, (command, socket) => {
        pending.push({ id: command.id ?? '', execute: command.execute, socket });
        if (pending.length === 2) {
          // Answer the second first, with an event in between, split across writes.
          const [a, b] = pending as [(typeof pending)[0], (typeof pending)[0]];
          b.socket.write(`{"return": {"status": "paused", "running": false}, "id": "${b.id}"}\r\n{"event": "ST`);
          setTimeout(() => a.socket.write(`OP", "data": {}}\r\n{"return": {"name": "x"}, "id": "${a.id}"}\r\n`), 20);
        }
      }).then((s) => (server = s));
    }, 100);
    const started = Date.now();
    const client = await connect();
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(client.version).toEqual({ qemu: { micro: 22, minor: 2, major: 7 } });
    const events: QmpEvent[] = [];
    client.onEvent((e) => events.push(e));
    const [name, status] = await Promise.all([client.execute('query-name'), client.queryStatus()]);
    expect(name).toEqual({ name: 'x' });
    expect(status).toEqual({ status: 'paused', running: false });
    expect(events).toEqual([{ event: 'STOP', data: {} }]);
    expect(pending.map((p) => p.execute)).toEqual(['query-name', 'query-status']);
    expect(pending[0]?.id).not.toBe(pending[1]?.id);
  });

  it('rejects a QMP error with a QmpCommandError', async () => {
    server = await fakeQmp(path, (command, socket) =>
      socket.write(
        `{"id": "${command.id}", "error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}\n`,
      ),
    );
    const client = await connect();
    const error = await client.execute('x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ code: 'QMP_COMMAND', command: 'x', errorClass: 'CommandNotFound' });
    // The connection stays usable.
    expect(client.closed).toBe(false);
  });

  it('times out one command and ignores its late reply', async () => {
    const seen: string[] = [];
    server = await fakeQmp(path, (command, socket) => {
      seen.push(command.execute);
      if (command.execute === 'slow') setTimeout(() => socket.write(`{"return": 1, "id": "${command.id}"}\n`), 150);
      else socket.write(`{"return": 2, "id": "${command.id}"}\n`);
    });
    const client = await connect();
    const error = await client.execute('slow', undefined, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('QMP_TIMEOUT');
    await new Promise((r) => setTimeout(r, 200));
    await expect(client.execute('fast')).resolves.toBe(2);
  });

  it('times out when the socket never appears', async () => {
    const error = await QmpClient.connect(path, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('QMP_CONNECT_TIMEOUT');
  });

  it('times out when nobody greets (a second client QEMU does not serve yet)', async () => {
    server = await fakeQmp(path, () => undefined, { greeting: null });
    const error = await QmpClient.connect(path, { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('QMP_CONNECT_TIMEOUT');
  });

  it.each([
    ['garbage instead of a greeting', 'Hello, I am not QEMU\n'],
    ['a reply instead of a greeting', '{"return": {}}\n'],
    ['an endless line', 'A'.repeat(300_000)],
  ])('refuses %s', async (_name, greeting) => {
    server = await fakeQmp(path, () => undefined, { greeting });
    const error = await QmpClient.connect(path, { timeoutMs: 1000, maxLineBytes: 65536 }).catch((e: unknown) => e);
    expect(codeOf(error)).toBe('QMP_PROTOCOL');
  });

  it('drops the connection on garbage after the greeting, failing pending commands and notifying', async () => {
    server = await fakeQmp(path, (_command, socket) => socket.write('{"return": oops}\n'));
    const client = await connect();
    const closed = new Promise<VmmError | undefined>((resolve) => client.onClose(resolve));
    const error = await client.execute('query-status').catch((e: unknown) => e);
    expect(codeOf(error)).toBe('QMP_PROTOCOL');
    expect((await closed)?.code).toBe('QMP_PROTOCOL');
    expect(client.closed).toBe(true);
    expect(codeOf(await client.execute('query-status').catch((e: unknown) => e))).toBe('QMP_PROTOCOL');
  });

  it('drops the connection on an over-long line', async () => {
    server = await fakeQmp(path, (_command, socket) => socket.write(`{"return": "${'x'.repeat(5000)}"}\n`));
    const client = await connect({ maxLineBytes: 4096 });
    expect(codeOf(await client.execute('query-status').catch((e: unknown) => e))).toBe('QMP_PROTOCOL');
  });

  it('fails pending commands with QMP_CLOSED when QEMU goes away; quit treats that as done', async () => {
    server = await fakeQmp(path, (command, socket) => {
      if (command.execute === 'quit') socket.destroy();
    });
    const client = await connect();
    const waiting = client.waitForEvent('SHUTDOWN', 5000).catch((e: unknown) => e);
    await expect(client.quit()).resolves.toBeUndefined();
    expect(codeOf(await waiting)).toBe('QMP_CLOSED');
    expect(codeOf(await client.execute('query-status').catch((e: unknown) => e))).toBe('QMP_CLOSED');
  });

  it('waits for a matching event', async () => {
    server = await fakeQmp(path, (command, socket) => {
      socket.write(`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}\n`);
      socket.write(`{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}\n`);
      socket.write(`{"return": {}, "id": "${command.id}"}\n`);
    });
    const client = await connect();
    const event = client.waitForEvent('SHUTDOWN', 1000, (e) => e.data['reason'] === 'host-qmp-quit');
    await client.execute('anything');
    await expect(event).resolves.toEqual({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
    expect(codeOf(await client.waitForEvent('NEVER', 30).catch((e: unknown) => e))).toBe('QMP_TIMEOUT');
  });

  it('close() fails pending commands and leaves the server alone', async () => {
    server = await fakeQmp(path, () => undefined);
    const client = await connect();
    const pending = client.execute('query-status').catch((e: unknown) => e);
    client.close();
    expect(codeOf(await pending)).toBe('QMP_CLOSED');
    const again = await connect();
    expect(again.closed).toBe(false);
  });
});
