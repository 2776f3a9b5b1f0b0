/**
 * `npm run bench:scheduler` (issue 6): the scheduler's throughput and recovery, in four phases —
 *   (a) placement decisions per second (bench:placement's build, run as a child process);
 *   (b) three scheduler processes placing a burst of pods onto tight nodes: pods/s and reservation conflicts;
 *   (c) end to end: the built API + scheduler(s), 100 tenants, 1,000 simulated nodes joined through the API,
 *       10,000 createPod mutations until every pod is SCHEDULED or later; a Prisma baseline; Redis commands per pod;
 *   (d) node loss: a node with 20 pods killed; time until its pods are SCHEDULED elsewhere.
 * See bench/README.md. Progress goes to stderr; stdout gets the figures and, last, exactly one JSON line.
 */
import { join } from 'node:path';
import { repoRoot } from '@caas/testing';
import type { ContendedResult } from './phase-contended';
import { runContended } from './phase-contended';
import type { E2eResult } from './phase-e2e';
import { runE2e } from './phase-e2e';
import type { NodeLossResult } from './phase-node-loss';
import { runNodeLoss } from './phase-node-loss';
import { cleanUp, intEnv, log, runNode } from './support';

const PHASES = ['placement', 'contended', 'e2e', 'node-loss'] as const;
type Phase = (typeof PHASES)[number];

const GOALS = { placement_per_s: 2000, e2e_pods_per_s: 300 };

/** The cluster e2e test's short timings: node loss, retries and reconcile within seconds. */
const FAST_SCHEDULER_ENV: Record<string, string> = {
  NODE_MONITOR_INTERVAL_MS: '200',
  OUTBOX_POLL_INTERVAL_MS: '50',
  PLACEMENT_RETRY_DELAY_MS: '500',
  RECONCILE_INTERVAL_MS: '1000',
  REPLACE_BACKOFF_BASE_MS: '200',
  REPLACE_BACKOFF_MAX_MS: '2000',
  INGEST_BLOCK_MS: '200',
  INGEST_NODE_REFRESH_MS: '300',
  REDIS_EVICTION_POLICY_CHECK: 'warn',
};

const settings = {
  phases: (process.env['BENCH_PHASES'] || PHASES.join(','))
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean) as Phase[],
  contended: {
    pods: intEnv('BENCH_CONTENDED_PODS', 3000),
    nodes: intEnv('BENCH_CONTENDED_NODES', 50),
    schedulers: intEnv('BENCH_CONTENDED_SCHEDULERS', 3),
    tenants: intEnv('BENCH_CONTENDED_TENANTS', 30),
    schedulerEnv: FAST_SCHEDULER_ENV,
  },
  e2e: {
    pods: intEnv('BENCH_E2E_PODS', 10_000),
    nodes: intEnv('BENCH_E2E_NODES', 1000),
    tenants: intEnv('BENCH_E2E_TENANTS', 100),
    concurrency: intEnv('BENCH_E2E_CONCURRENCY', 32),
    schedulers: intEnv('BENCH_E2E_SCHEDULERS', 1),
    heartbeatMs: intEnv('BENCH_E2E_HEARTBEAT_MS', 2000),
    graceMs: intEnv('BENCH_E2E_GRACE_MS', 10_000),
    baselinePods: intEnv('BENCH_BASELINE_PODS', intEnv('BENCH_E2E_PODS', 10_000)),
    // Production-like loops for 1,000 nodes (the fast ones would re-read nodes and reconcile every second).
    schedulerEnv: {
      OUTBOX_POLL_INTERVAL_MS: '50',
      PLACEMENT_RETRY_DELAY_MS: '500',
      REDIS_EVICTION_POLICY_CHECK: 'warn',
    },
  },
  loss: {
    pods: intEnv('BENCH_LOSS_PODS', 20),
    heartbeatMs: intEnv('BENCH_LOSS_HEARTBEAT_MS', 500),
    graceMs: intEnv('BENCH_LOSS_GRACE_MS', 3000),
    schedulerEnv: FAST_SCHEDULER_ENV,
  },
};
for (const phase of settings.phases) {
  if (!PHASES.includes(phase)) throw new Error(`BENCH_PHASES: unknown phase ${phase} (known: ${PHASES.join(', ')})`);
}

interface PlacementResult {
  placement_per_s: number | null;
  placement_p99_ms: number | null;
  placement_ok: boolean | null;
}

/** (a) bench:placement as built by `tools/build.mjs bench`, as a child process: its last stdout line is JSON. */
async function runPlacement(): Promise<PlacementResult> {
  const script = join(repoRoot(), 'dist', 'bench', 'bench', 'placement', 'bench-placement.js');
  const { code, out } = await runNode(['--enable-source-maps', script]);
  const lines = out.trim().split('\n');
  for (const line of lines.slice(0, -1)) process.stdout.write(`  placement | ${line}\n`);
  const parsed = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
  if (code !== 0) log(`placement bench exited ${code}`);
  return {
    placement_per_s: typeof parsed['placement_per_s'] === 'number' ? parsed['placement_per_s'] : null,
    placement_p99_ms: typeof parsed['placement_p99_ms'] === 'number' ? parsed['placement_p99_ms'] : null,
    placement_ok: typeof parsed['ok'] === 'boolean' ? parsed['ok'] : null,
  };
}

type Figures = Partial<PlacementResult & ContendedResult & E2eResult & NodeLossResult>;

const row = (name: string, value: unknown, note = ''): void =>
  void process.stdout.write(`| ${name.padEnd(38)} | ${String(value ?? '—').padStart(10)} | ${note}\n`);

async function main(): Promise<number> {
  const figures: Figures = {};
  const failed: string[] = [];
  const phase = async (name: Phase, run: () => Promise<Figures>): Promise<void> => {
    if (!settings.phases.includes(name)) return;
    const started = Date.now();
    log(`phase ${name}: starting`);
    try {
      Object.assign(figures, await run());
      log(`phase ${name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      failed.push(name);
      log(`phase ${name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  };
  await phase('placement', runPlacement);
  await phase('contended', () => runContended(settings.contended));
  await phase('e2e', () => runE2e(settings.e2e));
  await phase('node-loss', () => runNodeLoss(settings.loss));
  await cleanUp();

  const f = figures;
  const lossGoalS = settings.loss.graceMs / 1000 + 2;
  const goals = {
    placement: f.placement_per_s == null ? null : f.placement_per_s >= GOALS.placement_per_s,
    e2e: f.e2e_pods_per_s == null ? null : f.e2e_pods_per_s >= GOALS.e2e_pods_per_s,
    node_loss: f.node_loss_to_replaced_s == null ? null : f.node_loss_to_replaced_s <= lossGoalS,
  };
  const verdict = (ok: boolean | null): string => (ok === null ? '' : ok ? 'PASS' : 'FAIL');
  process.stdout.write('\n| metric                                 |      value | goal / note\n');
  process.stdout.write('| -------------------------------------- | ---------: | -----------\n');
  row('(a) placement decisions/s', f.placement_per_s, `≥ ${GOALS.placement_per_s} ${verdict(goals.placement)}`);
  row('(a) placement p99 (ms)', f.placement_p99_ms);
  row(
    '(b) contended pods placed/s',
    f.contended_pods_per_s,
    `${f.contended_placed ?? '?'}/${f.contended_pods ?? '?'} pods, ${f.contended_schedulers ?? '?'} schedulers, ` +
      `${f.contended_nodes ?? '?'} tight nodes`,
  );
  row(
    '(b) conflicts / reservation attempts',
    f.conflict_rate,
    `${f.conflicts ?? '?'} / ${f.reservation_attempts ?? '?'}`,
  );
  row('(b) overcommitted nodes', f.contended_overcommitted_nodes);
  row(
    '(c) e2e pods SCHEDULED/s',
    f.e2e_pods_per_s,
    `≥ ${GOALS.e2e_pods_per_s} ${verdict(goals.e2e)}; ${f.e2e_pods ?? '?'} pods, ${f.e2e_nodes ?? '?'} nodes, ` +
      `${f.e2e_schedulers ?? '?'} scheduler(s)`,
  );
  row('(c) createPod/s (API alone)', f.e2e_api_create_per_s, `${f.e2e_create_errors ?? '?'} errors`);
  row('(c) Prisma baseline pods/s', f.pg_baseline_pods_per_s, 'create tx + update to SCHEDULED');
  row('(c) Redis commands per pod', f.redis_cmds_per_pod, `idle ${f.redis_idle_cmds_per_s ?? '?'}/s`);
  row('(c) Redis commands per pod minus idle', f.redis_cmds_per_pod_minus_idle);
  row(
    '(d) node loss → pods SCHEDULED (s)',
    f.node_loss_to_replaced_s,
    `≤ ${lossGoalS} ${verdict(goals.node_loss)} (grace ${settings.loss.graceMs} ms)`,
  );
  row('(d) node loss → pods RUNNING (s)', f.node_loss_to_running_s);
  if (failed.length > 0) process.stdout.write(`FAILED phases: ${failed.join(', ')}\n`);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'scheduler',
      placement_per_s: null,
      placement_p99_ms: null,
      contended_pods_per_s: null,
      conflict_rate: null,
      e2e_pods_per_s: null,
      pg_baseline_pods_per_s: null,
      redis_cmds_per_pod: null,
      node_loss_to_replaced_s: null,
      ...figures,
      goal_placement_per_s: GOALS.placement_per_s,
      goal_e2e_pods_per_s: GOALS.e2e_pods_per_s,
      goal_node_loss_s: lossGoalS,
      goals_met: goals,
      phases: settings.phases,
      failed_phases: failed,
      node: process.version,
    })}\n`,
  );
  return failed.length > 0 ? 1 : 0;
}

main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await cleanUp();
    process.exit(1);
  });
