/**
 * Test topology for policy tests with real packets: one "tenant" namespace routing between "pod" namespaces,
 * each pod a veth with a /32 (gateway 10.0.0.1 on the tenant's lo, /32 route per pod), as ADR-006 routes taps.
 * Everything lives in namespaces named `npt<pid>…`; nothing touches the root namespace.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export const GATEWAY = '10.0.0.1';

const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

export class Topology {
  readonly tenant: string;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcessWithoutNullStreams[] = [];
  private readonly lastResort = (): void => this.destroySync();

  constructor(readonly prefix: string) {
    this.tenant = `${prefix}t`;
    process.on('exit', this.lastResort);
  }

  createTenant(): void {
    this.addNamespace(this.tenant);
    ip('-n', this.tenant, 'addr', 'add', `${GATEWAY}/32`, 'dev', 'lo');
    execFileSync('ip', ['netns', 'exec', this.tenant, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }

  /** A pod namespace `<prefix><short>` with `eth0` = address/32, default via the gateway; `tp<short>` in the tenant. */
  addPod(short: string, address: string): string {
    const ns = `${this.prefix}${short}`;
    this.addNamespace(ns);
    const tap = `tp${short}`;
    ip('-n', this.tenant, 'link', 'add', tap, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.tenant, 'link', 'set', tap, 'up');
    ip('-n', this.tenant, 'route', 'add', `${address}/32`, 'dev', tap);
    ip('-n', ns, 'addr', 'add', `${address}/32`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'route', 'add', GATEWAY, 'dev', 'eth0');
    ip('-n', ns, 'route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0');
    return ns;
  }

  /** A long-lived node process in `ns` (killed by `destroy`). */
  spawnIn(ns: string, source: string): ChildProcessWithoutNullStreams {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', source], { stdio: 'pipe' });
    this.children.push(child);
    return child;
  }

  destroySync(): void {
    for (const child of this.children.splice(0)) child.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        ip('netns', 'delete', ns);
      } catch {
        // already gone
      }
    }
    process.off('exit', this.lastResort);
  }

  private addNamespace(ns: string): void {
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
}

/** Echo server on the given TCP ports; prints one line when listening. */
const echoServer = (ports: number[]): string => `
const net = require('node:net');
const ports = ${JSON.stringify(ports)};
let left = ports.length;
for (const port of ports) {
  net.createServer((s) => { s.on('error', () => {}); s.on('data', (d) => s.write(d)); })
    .listen(port, '0.0.0.0', () => { if (--left === 0) process.stdout.write('ready\\n'); });
}`;

/**
 * Client driven by JSON lines on stdin: \`connect\` (connect + one echo, then close), \`hold\` (the same, kept open
 * under a key), \`ping\` (one echo on a held connection). Each answer: {id, ok}.
 */
const PROBER = `
const net = require('node:net');
const held = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const echo = (s, ms) => new Promise((res) => {
  const on = () => { clearTimeout(t); s.off('data', on); res(true); };
  const t = setTimeout(() => { s.off('data', on); res(false); }, ms);
  s.on('data', on);
  s.write('ping');
});
require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const c = JSON.parse(line);
  if (c.op === 'ping') { const s = held.get(c.key); out({ id: c.id, ok: s ? await echo(s, c.ms) : false }); return; }
  const s = net.connect({ host: c.host, port: c.port });
  s.on('error', () => {});
  const connected = await new Promise((res) => {
    const t = setTimeout(() => res(false), c.ms);
    s.once('connect', () => { clearTimeout(t); res(true); });
    s.once('error', () => { clearTimeout(t); res(false); });
  });
  const ok = connected && (await echo(s, c.ms));
  if (c.op === 'hold' && ok) held.set(c.key, s); else s.destroy();
  out({ id: c.id, ok });
});
out({ id: 0, ok: true });`;

export class Prober {
  private next = 1;
  private readonly waiting = new Map<number, (ok: boolean) => void>();
  private readonly ready: Promise<boolean>;

  constructor(
    topology: Topology,
    ns: string,
    private readonly timeoutMs = 800,
  ) {
    const child = topology.spawnIn(ns, PROBER);
    this.ready = new Promise((resolve) => this.waiting.set(0, resolve));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const { id, ok } = JSON.parse(line) as { id: number; ok: boolean };
      this.waiting.get(id)?.(ok);
      this.waiting.delete(id);
    });
    this.send = (command) => child.stdin.write(`${JSON.stringify(command)}\n`);
  }

  private readonly send: (command: Record<string, unknown>) => void;

  private request(command: Record<string, unknown>): Promise<boolean> {
    const id = this.next++;
    return this.ready.then(
      () =>
        new Promise<boolean>((resolve) => {
          this.waiting.set(id, resolve);
          this.send({ ...command, id, ms: this.timeoutMs });
        }),
    );
  }

  /** A new TCP connection plus one echo round trip: true when both worked within the timeout. */
  connect(host: string, port: number): Promise<boolean> {
    return this.request({ op: 'connect', host, port });
  }

  hold(key: string, host: string, port: number): Promise<boolean> {
    return this.request({ op: 'hold', key, host, port });
  }

  ping(key: string): Promise<boolean> {
    return this.request({ op: 'ping', key });
  }
}

export async function startEchoServer(topology: Topology, ns: string, ports: number[]): Promise<void> {
  const child = topology.spawnIn(ns, echoServer(ports));
  child.stdin.end();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echo server in ${ns} did not start`)), 10_000);
    createInterface({ input: child.stdout }).once('line', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`echo server in ${ns} exited with ${String(code)}`)));
  });
}
