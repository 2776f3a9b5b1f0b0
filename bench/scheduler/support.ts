// Process, clean-up and I/O helpers of `bench:scheduler`: everything started is registered here and undone in
// reverse order, exactly once — on success, on failure and on Ctrl-C.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { Cleanup } from '@caas/cluster-harness';
import { repoRoot } from '@caas/testing';

export const log = (message: string): void => void process.stderr.write(`[bench:scheduler] ${message}\n`);

export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
  return value;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------
// Clean-up
// ---------------------------------------------------------------------------------------------------------

const cleanup = new Cleanup(log);
const children = new Set<ChildProcessWithoutNullStreams>();
/** Set once the clean-up has begun: loops stop, and the processes' shutdown chatter is not echoed. */
export const isStopping = (): boolean => cleanup.started;

/** Registers an undo step; returns a function that runs it now (and removes it from the list). */
export const onCleanup = (name: string, run: () => Promise<void>): (() => Promise<void>) => cleanup.add(name, run);
export const cleanUp = (): Promise<void> => cleanup.run();

// Last resort (an exit that skipped the clean-up): never leave a process running.
cleanup.onSignals({
  lastResort: () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  },
});

// ---------------------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------------------

export interface AppProcess {
  name: string;
  child: ChildProcessWithoutNullStreams;
  /** Every line the process printed on stdout and stderr (kept whole: the benchmark parses them). */
  lines: string[];
  exited: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. Safe to call twice. */
  stop: (graceMs?: number) => Promise<void>;
}

/**
 * Starts `node <script>` with `env` (plus PATH). `echo`: lines at level ≥ 40 (warn) of a pino process, and any
 * non-JSON line, go to stderr with the process's name. Registered for clean-up.
 */
export function startNode(name: string, args: string[], env: Record<string, string>, echo = true): AppProcess {
  const child = spawn(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '', ...env } });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopRequested = false;
  child.once('exit', (code, signal) => {
    if (!stopRequested && !cleanup.started)
      log(`${name} exited on its own: code ${code ?? '—'}, signal ${signal ?? '—'}`);
  });
  const lines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream): void => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        if (line === '') continue;
        lines.push(line);
        if (echo && !cleanup.started && shouldEcho(line)) process.stderr.write(`[${name}] ${line.slice(0, 600)}\n`);
      }
    });
    stream.on('end', () => rest && lines.push(rest));
  };
  collect(child.stdout);
  collect(child.stderr);
  let stopped: Promise<void> | undefined;
  const stop = (graceMs = 15_000): Promise<void> =>
    (stopped ??= (async () => {
      stopRequested = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
    })());
  onCleanup(`stop ${name}`, () => stop());
  return { name, child, lines, exited, stop };
}

function shouldEcho(line: string): boolean {
  if (!line.startsWith('{')) return true;
  try {
    return Number((JSON.parse(line) as { level?: unknown }).level) >= 40;
  } catch {
    return true;
  }
}

/** `dist/<app>/apps/<app>/src/main.js`, built by `tools/build.mjs <app>`. */
export const builtApp = (app: 'api' | 'scheduler'): string =>
  join(repoRoot(), 'dist', app, 'apps', app, 'src', 'main.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('port'))));
    });
  });
}

/** Polls `check` every `everyMs` until it is true; throws after `timeoutMs`, or when `alive` says a process died. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
  alive: AppProcess[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cleanup.started) throw new Error('interrupted');
    for (const app of alive) {
      if (app.child.exitCode !== null || app.child.signalCode !== null) {
        throw new Error(`${app.name} exited while waiting for ${what}:\n${app.lines.slice(-30).join('\n')}`);
      }
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Runs `node <args>` to completion and returns its stdout (stderr is passed through). */
export function runNode(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL, Redis, GraphQL
// ---------------------------------------------------------------------------------------------------------

/** Sum of `calls=` over `INFO commandstats`: every command the server ran since its start (or CONFIG RESETSTAT). */
export async function redisTotalCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let total = 0;
  for (const match of info.matchAll(/calls=(\d+)/g)) total += Number(match[1]);
  return total;
}

/** Calls per command from `INFO commandstats`. */
export async function redisCallsByCommand(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) calls.set(match[1] as string, Number(match[2]));
  return calls;
}

/** The `top` commands by calls between two snapshots, as `name=count` text. */
export function topCommands(before: Map<string, number>, after: Map<string, number>, top = 8): string {
  return [...after]
    .map(([name, n]) => [name, n - (before.get(name) ?? 0)] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => `${name}=${n}`)
    .join(' ');
}

export class GraphqlError extends Error {}

export async function graphql<T>(base: string, token: string, query: string, variables?: unknown): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown };
  if (!response.ok || body.errors !== undefined || body.data === undefined) {
    throw new GraphqlError(`GraphQL request failed (${response.status}): ${JSON.stringify(body).slice(0, 500)}`);
  }
  return body.data;
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once; the first failure rejects. */
export async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      if (cleanup.started) throw new Error('interrupted');
      await task(next++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Parses the pino lines `{"msg":"placement stats", placed, conflicts, unschedulable, skipped}` of a scheduler. */
export interface PlacementStats {
  placed: number;
  conflicts: number;
  unschedulable: number;
  skipped: number;
}

export function placementStats(lines: string[]): PlacementStats | null {
  for (const line of lines) {
    if (!line.includes('"placement stats"')) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] !== 'placement stats') continue;
      return {
        placed: Number(entry['placed'] ?? 0),
        conflicts: Number(entry['conflicts'] ?? 0),
        unschedulable: Number(entry['unschedulable'] ?? 0),
        skipped: Number(entry['skipped'] ?? 0),
      };
    } catch {
      // not JSON
    }
  }
  return null;
}

export const round = (value: number, digits = 1): number => Number(value.toFixed(digits));
