/**
 * `npm run bench:api`: requests per second of two authenticated GraphQL queries against the production build
 * of apps/api — a trivial one (`viewer { tenant }`) and a list (`pods(first: 20)`) — each compared in the same
 * run with a bare Fastify server doing the same work (bench/api/baseline-server.ts). See bench/README.md.
 *
 * Progress goes to stderr; stdout gets a table and, last, exactly one JSON line.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { Cleanup } from '@caas/cluster-harness';
import { issueToken } from '@caas/security';
import { BENCH_PODS, PODS_QUERY, TRIVIAL_QUERY } from './queries';

const GOAL_RATIO = 0.7;

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
  return value;
}

const settings = {
  connections: intEnv('BENCH_CONNECTIONS', 50),
  durationS: intEnv('BENCH_DURATION', 10),
  warmupS: intEnv('BENCH_WARMUP', 5),
  rounds: Math.max(1, intEnv('BENCH_ROUNDS', 2)),
  adminUrl:
    process.env['BENCH_DATABASE_ADMIN_URL'] ||
    process.env['TEST_DATABASE_ADMIN_URL'] ||
    'postgresql://postgres@127.0.0.1:5432/postgres',
  // Its own logical database: the API's key prefix is fixed (`caas:rl:`), and the benchmark's counters (the
  // operator's included) must not share windows with the tests' or a developer's API in database 0.
  redisUrl: process.env['BENCH_REDIS_URL'] || 'redis://127.0.0.1:6379/15',
  /** Extra node arguments for each server process (e.g. `--prof --logfile=…`), to profile it under load. */
  apiNodeArgs: (process.env['BENCH_API_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
  baselineNodeArgs: (process.env['BENCH_BASELINE_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
  /** When set, the run fails (exit 1) if the ratio is below it. */
  minRatio: process.env['BENCH_MIN_RATIO'] ? Number(process.env['BENCH_MIN_RATIO']) : undefined,
};
if (settings.minRatio !== undefined && !(settings.minRatio > 0))
  throw new Error('BENCH_MIN_RATIO must be a number > 0');

const log = (message: string): void => void process.stderr.write(`[bench:api] ${message}\n`);

function findRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'nx.json')) && existsSync(join(dir, 'prisma'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no nx.json above ${__dirname}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Clean-up: everything started is registered here and undone in reverse order, exactly once.
// ---------------------------------------------------------------------------------------------------------

const cleanup = new Cleanup(log);
const children = new Set<ChildProcess>();
let currentLoad: autocannon.Instance | undefined;

/** No new load starts once the clean-up has begun, and the servers' shutdown chatter is not echoed. */
function cleanUp(): Promise<void> {
  const done = cleanup.run();
  currentLoad?.stop();
  return done;
}

// Last resort (an exit that skipped the clean-up): never leave a server running.
cleanup.onSignals({
  beforeSteps: () => currentLoad?.stop(),
  lastResort: () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  },
});

// ---------------------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------------------

function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withAdmin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: settings.adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }) {
  return new Promise<{ code: number; output: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? 1, output });
    });
  });
}

/** A fresh database with every migration applied (`prisma migrate deploy`); dropped by the clean-up. */
async function createDatabase(root: string): Promise<string> {
  const name = `caas_bench_${randomBytes(6).toString('hex')}`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  cleanup.add(`drop database ${name}`, () =>
    withAdmin(async (client) => {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }),
  );
  const url = databaseUrl(settings.adminUrl, name);
  const started = Date.now();
  // The CLI's own entry point rather than npx: one process, which the clean-up can kill.
  const prismaCli = join(root, 'node_modules', 'prisma', 'build', 'index.js');
  const result = await run(process.execPath, [prismaCli, 'migrate', 'deploy'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, CHECKPOINT_DISABLE: '1', NO_COLOR: '1' },
    timeoutMs: 180_000,
  });
  if (result.code !== 0) throw new Error(`prisma migrate deploy failed (exit ${result.code}):\n${result.output}`);
  log(`database ${name} migrated in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return url;
}

/** Removes the run's rate-limit counters (one per token of the bench database) from Redis. */
async function forgetRateLimitKeys(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  let ids: string[];
  try {
    ids = (await client.query<{ id: string }>('SELECT id FROM api_tokens')).rows.map((r) => r.id);
  } finally {
    await client.end().catch(() => undefined);
  }
  if (ids.length === 0) return;
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: 2 });
  try {
    await redis.del(...ids.map((id) => `caas:rl:${id}`));
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

// ---------------------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('port'))));
    });
  });
}

interface Server {
  name: string;
  base: string;
  child: ChildProcess;
  tail: string[];
}

async function startServer(name: string, args: string[], env: NodeJS.ProcessEnv, port: number): Promise<Server> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanup.add(`stop ${name}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    children.delete(child);
  });
  const tail: string[] = [];
  const collect = (chunk: string): void => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (!cleanup.started) process.stderr.write(`[${name}] ${line}\n`);
    }
  };
  child.stdout?.setEncoding('utf8').on('data', collect);
  child.stderr?.setEncoding('utf8').on('data', collect);

  const server = { name, base: `http://127.0.0.1:${port}`, child, tail };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail.join('\n')}`,
      );
    }
    try {
      const response = await fetch(`${server.base}/healthz`);
      if (response.ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} not ready after 60 s:\n${tail.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function graphql<T>(base: string, token: string, query: string, variables?: unknown): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown };
  if (!response.ok || body.errors !== undefined || body.data === undefined) {
    throw new Error(`GraphQL request failed (${response.status}): ${JSON.stringify(body)}`);
  }
  return body.data;
}

// ---------------------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------------------

interface Target {
  name: 'graphql' | 'baseline';
  server: Server;
}

interface Measurement {
  target: Target['name'];
  round: number;
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  /** CPU time (user + system) the server process spent per request during the run; null without /proc. */
  cpuUsPerRequest: number | null;
}

/** User + system CPU time of a process in microseconds, from /proc (Linux); null elsewhere. */
function cpuTimeUs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of proc(5) (utime, stime), counted here from field 3 on, in clock ticks (USER_HZ = 100).
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100;
  } catch {
    return null;
  }
}

async function load(target: Target, request: Request, seconds: number, round: number): Promise<Measurement> {
  if (cleanup.started) throw new Error('interrupted');
  const cpuBefore = cpuTimeUs(target.server.child.pid);
  currentLoad = autocannon({
    url: `${target.server.base}/graphql`,
    method: 'POST',
    headers: request.headers,
    body: request.body,
    expectBody: request.expected,
    connections: settings.connections,
    duration: seconds,
    timeout: 10,
    title: target.name,
  });
  const result = await currentLoad;
  const cpuAfter = cpuTimeUs(target.server.child.pid);
  currentLoad = undefined;
  if (cleanup.started) throw new Error('interrupted');
  if (target.server.child.exitCode !== null || target.server.child.signalCode !== null) {
    throw new Error(`${target.server.name} died during the run:\n${target.server.tail.join('\n')}`);
  }
  return {
    target: target.name,
    round,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    cpuUsPerRequest:
      cpuBefore === null || cpuAfter === null || result.requests.total === 0
        ? null
        : Math.round((cpuAfter - cpuBefore) / result.requests.total),
  };
}

function problemsOf(m: Measurement): string | null {
  const bad = m.non2xx + m.errors + m.timeouts + m.mismatches;
  if (bad === 0 && m.requests > 0) return null;
  return (
    `${m.target} round ${m.round}: ${m.requests} requests, ${m.non2xx} non-2xx, ${m.errors} errors, ` +
    `${m.timeouts} timeouts, ${m.mismatches} wrong bodies`
  );
}

interface Request {
  headers: Record<string, string>;
  body: string;
  expected: string;
}

/** One request by hand to each server: status 200 and exactly the expected body, or the run stops. */
async function checkOnce(target: Target, request: Request): Promise<void> {
  const response = await fetch(`${target.server.base}/graphql`, {
    method: 'POST',
    headers: request.headers,
    body: request.body,
  });
  const text = await response.text();
  if (response.status !== 200 || text !== request.expected) {
    throw new Error(`${target.name}: expected 200 ${request.expected}, got ${response.status} ${text}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

const round1 = (n: number): number => Math.round(n * 10) / 10;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '))
    .join('\n');
}

function best(ms: Measurement[], target: Target['name']): Measurement {
  return ms.filter((m) => m.target === target).reduce((a, b) => (b.rps > a.rps ? b : a));
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const root = findRoot();
  const apiEntry = join(root, 'dist', 'api', 'apps', 'api', 'src', 'main.js');
  const baselineEntry = join(__dirname, 'baseline-server.js');
  if (!existsSync(apiEntry)) throw new Error(`${apiEntry} is missing: run node tools/build.mjs api first`);
  if (!existsSync(baselineEntry)) throw new Error(`${baselineEntry} is missing: run node tools/build.mjs bench first`);

  log('creating the database');
  const dbUrl = await createDatabase(root);
  cleanup.add('forget rate-limit keys', () => forgetRateLimitKeys(dbUrl));

  const operatorToken = issueToken().token;
  const [apiPort, baselinePort] = [await freePort(), await freePort()];
  const common = {
    PATH: process.env['PATH'] ?? '',
    NODE_ENV: 'production',
    DATABASE_URL: dbUrl,
    REDIS_URL: settings.redisUrl,
    HOST: '127.0.0.1',
    OPERATOR_TOKEN: operatorToken,
    LOG_LEVEL: 'warn',
    // The limiter runs on every request (one Redis round trip) but never refuses during the run; the window is
    // the API's default, so no counter outlives the run by more than a minute.
    RATE_LIMIT_REQUESTS: '10000000',
    RATE_LIMIT_WINDOW_MS: '60000',
    DB_POOL_SIZE: '10',
  };

  log('starting the API (dist) and the baseline');
  const api = await startServer(
    'api',
    [...settings.apiNodeArgs, apiEntry],
    { ...common, PORT: String(apiPort), SECRETS_KEY: randomBytes(32).toString('base64') },
    apiPort,
  );
  const baseline = await startServer(
    'baseline',
    [...settings.baselineNodeArgs, baselineEntry],
    { ...common, PORT: String(baselinePort) },
    baselinePort,
  );

  const slug = `bench-${randomBytes(4).toString('hex')}`;
  const created = await graphql<{ createTenant: { ownerToken: string; tenant: { id: string; slug: string } } }>(
    api.base,
    operatorToken,
    'mutation ($input: CreateTenantInput!) { createTenant(input: $input) { ownerToken tenant { id slug } } }',
    {
      input: {
        slug,
        displayName: 'Benchmark tenant',
        ownerEmail: 'bench@example.com',
        quota: { maxPods: BENCH_PODS, maxVcpus: BENCH_PODS, maxMemoryMiB: BENCH_PODS * 128 },
      },
    },
  );
  const token = created.createTenant.ownerToken;
  for (let i = 0; i < BENCH_PODS; i++) {
    await graphql(api.base, token, 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }', {
      input: {
        name: `bench-${String(i).padStart(2, '0')}`,
        vcpus: 1,
        memoryMiB: 128,
        containers: [{ name: 'main', image: 'registry.example/bench/app:1', command: ['/bin/app'] }],
      },
    });
  }
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const pods = await graphql<{ pods: unknown }>(api.base, token, PODS_QUERY);
  const scenarios: Scenario[] = [
    {
      key: 'trivial',
      query: TRIVIAL_QUERY,
      request: {
        headers,
        body: JSON.stringify({ query: TRIVIAL_QUERY }),
        expected: JSON.stringify({ data: { viewer: { tenant: { name: slug } } } }),
      },
    },
    {
      key: 'pods',
      query: PODS_QUERY,
      request: { headers, body: JSON.stringify({ query: PODS_QUERY }), expected: JSON.stringify({ data: pods }) },
    },
  ];
  const targets: Target[] = [
    { name: 'graphql', server: api },
    { name: 'baseline', server: baseline },
  ];
  for (const scenario of scenarios) for (const target of targets) await checkOnce(target, scenario.request);
  log(`tenant ${slug} with ${BENCH_PODS} pods created; both servers answer both queries identically`);

  const results = [];
  for (const scenario of scenarios) results.push(await measure(scenario, targets));

  const summary: Record<string, unknown> = { benchmark: 'api' };
  for (const { scenario, measurements, g, b, ratio } of results) {
    process.stdout.write(`\nQuery ${scenario.query} with a tenant token, ${settings.connections} connections, `);
    process.stdout.write(`${settings.durationS} s per run, ${settings.rounds} round(s); best run of each target:\n\n`);
    process.stdout.write(`${table(tableRows(measurements))}\n\n`);
    process.stdout.write(
      `${scenario.key}: graphql ${round1(g.rps)} req/s / baseline ${round1(b.rps)} req/s = ratio ${ratio} ` +
        `(goal >= ${GOAL_RATIO}: ${ratio >= GOAL_RATIO ? 'met' : 'NOT met'})\n`,
    );
    const k = scenario.key;
    Object.assign(summary, {
      [`${k}_rps`]: round1(g.rps),
      [`${k}_baseline_rps`]: round1(b.rps),
      [`${k}_ratio`]: ratio,
      [`${k}_p50_ms`]: g.p50,
      [`${k}_p99_ms`]: g.p99,
      [`${k}_baseline_p50_ms`]: b.p50,
      [`${k}_baseline_p99_ms`]: b.p99,
      [`${k}_cpu_us_per_req`]: g.cpuUsPerRequest,
      [`${k}_baseline_cpu_us_per_req`]: b.cpuUsPerRequest,
    });
  }
  const ratios = results.map((r) => r.ratio);
  Object.assign(summary, {
    selection: 'best',
    goal_ratio: GOAL_RATIO,
    goal_met: ratios.every((r) => r >= GOAL_RATIO),
    connections: settings.connections,
    duration_s: settings.durationS,
    warmup_s: settings.warmupS,
    rounds: settings.rounds,
    node: process.version,
  });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (settings.minRatio !== undefined && ratios.some((r) => r < (settings.minRatio ?? 0))) {
    process.exitCode = 1;
    log(`a ratio is below BENCH_MIN_RATIO=${settings.minRatio}: ${ratios.join(', ')}`);
  }
}

interface Scenario {
  key: 'trivial' | 'pods';
  query: string;
  request: Request;
}

/** Warm-up, then rounds in ABBA order (graphql, baseline, baseline, graphql, …) so drift affects both alike. */
async function measure(scenario: Scenario, targets: Target[]) {
  const problems: string[] = [];
  if (settings.warmupS > 0) {
    for (const target of targets) {
      log(`${scenario.key}: warm-up ${target.name}: ${settings.warmupS} s`);
      const problem = problemsOf(await load(target, scenario.request, settings.warmupS, 0));
      if (problem !== null) problems.push(`warm-up ${problem}`);
    }
  }
  const measurements: Measurement[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const target of order) {
      log(`${scenario.key}: round ${round}/${settings.rounds} ${target.name}: ${settings.connections} connections`);
      const m = await load(target, scenario.request, settings.durationS, round);
      log(`  ${round1(m.rps)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, ${m.cpuUsPerRequest ?? '?'} us CPU/request`);
      measurements.push(m);
      const problem = problemsOf(m);
      if (problem !== null) problems.push(problem);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${scenario.key}: responses were not all 200 with the expected body:\n${problems.join('\n')}`);
  }
  const g = best(measurements, 'graphql');
  const b = best(measurements, 'baseline');
  return { scenario, measurements, g, b, ratio: Math.round((g.rps / b.rps) * 1000) / 1000 };
}

function tableRows(measurements: Measurement[]): string[][] {
  return [
    ['target', 'round', 'req/s', 'p50 ms', 'p99 ms', 'cpu us/req', 'requests', 'non-2xx', 'errors', 'wrong body'],
    ...measurements.map((m) => [
      m.target,
      String(m.round),
      round1(m.rps).toFixed(1),
      String(m.p50),
      String(m.p99),
      String(m.cpuUsPerRequest ?? '-'),
      String(m.requests),
      String(m.non2xx),
      String(m.errors + m.timeouts),
      String(m.mismatches),
    ]),
  ];
}

main()
  .catch((error: unknown) => {
    process.exitCode = 1;
    log(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
  })
  .finally(async () => {
    await cleanUp();
    log('servers stopped, database dropped');
    process.exit(); // with process.exitCode; nothing is left to wait for
  });
