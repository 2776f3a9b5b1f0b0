// Phase (c): the whole path. The built API and scheduler process(es), tenants created through GraphQL, simulated
// nodes joined through `POST /v1/nodes/join` and heartbeating over their own Redis users; then `createPod` mutations
// until every pod is SCHEDULED or later. Baseline in the same run: the same rows written straight through Prisma.
import { Redis } from 'ioredis';
import { createDb } from '@caas/db';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import type { Capacity } from './control-plane';
import { ControlPlane } from './control-plane';
import type { PlacementStats } from './support';
import {
  graphql,
  log,
  placementStats,
  pool,
  redisCallsByCommand,
  redisTotalCalls,
  round,
  sleep,
  topCommands,
  waitFor,
} from './support';

export interface E2eSettings {
  pods: number;
  nodes: number;
  tenants: number;
  concurrency: number;
  schedulers: number;
  heartbeatMs: number;
  graceMs: number;
  baselinePods: number;
  schedulerEnv: Record<string, string>;
}

export interface E2eResult {
  e2e_pods_per_s: number;
  e2e_pods: number;
  e2e_create_errors: number;
  e2e_api_create_per_s: number;
  e2e_scheduled_s: number;
  e2e_running_s: number | null;
  e2e_nodes: number;
  e2e_tenants: number;
  e2e_concurrency: number;
  e2e_schedulers: number;
  e2e_heartbeat_ms: number;
  e2e_join_s: number;
  e2e_conflicts: number | null;
  pg_baseline_pods_per_s: number;
  pg_baseline_pods: number;
  redis_cmds_per_pod: number;
  redis_idle_cmds_per_s: number;
  redis_cmds_per_pod_minus_idle: number;
}

const NODE_CAPACITY: Capacity = { vcpus: 16, memoryMiB: 16 * 512, pods: 16 };
const IMAGE = 'registry.example.com/bench/app:1.0';
/** The API's pool size (`DB_POOL_SIZE`) and `POD_TRANSACTION_OPTIONS`. */
const BASELINE_POOL = 10;
const TX_OPTIONS = { maxWait: 10_000, timeout: 20_000 } as const;
const CREATE_POD = 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }';

export async function runE2e(settings: E2eSettings): Promise<E2eResult> {
  const cp = new ControlPlane({
    label: 'bench-sched-e2e',
    api: true,
    schedulers: settings.schedulers,
    schedulerEnv: {
      ...settings.schedulerEnv,
      NODE_LEASE_GRACE_MS: String(settings.graceMs),
      LOG_LEVEL: 'info',
    },
    apiEnv: { NODE_HEARTBEAT_INTERVAL_MS: String(settings.heartbeatMs), NODE_LEASE_GRACE_MS: String(settings.graceMs) },
  });
  try {
    return await e2e(cp, settings);
  } finally {
    await cp.close();
  }
}

async function e2e(cp: ControlPlane, settings: E2eSettings): Promise<E2eResult> {
  await cp.start();
  await cp.schedulersRunning();
  const alive = cp.processes;

  const perTenant = Math.ceil(Math.max(settings.pods, settings.baselinePods) / settings.tenants);
  const tenants: { tenantId: string; token: string }[] = new Array(settings.tenants);
  await pool(settings.tenants, 8, async (i) => {
    tenants[i] = await cp.tenant(`bench-${i}`, perTenant + 10);
  });
  log(`e2e: ${settings.tenants} tenants created`);

  const joinStarted = Date.now();
  const identities: NodeJoinResponse[] = new Array(settings.nodes);
  await pool(settings.nodes, 16, async (i) => {
    identities[i] = await cp.join(`sim-${i}`, NODE_CAPACITY, { 'topology.caas.dev/zone': `z${i % 3}` });
    if ((i + 1) % 200 === 0) log(`e2e: ${i + 1}/${settings.nodes} nodes joined`);
  });
  await pool(settings.nodes, 50, async (i) => {
    await cp.simulate(identities[i] as NodeJoinResponse, NODE_CAPACITY, { resyncIntervalMs: 5_000 });
  });
  await waitFor(
    `${settings.nodes} nodes READY`,
    async () => (await cp.count(`SELECT count(*)::int AS n FROM nodes WHERE status = 'READY'`)) === settings.nodes,
    180_000,
    500,
    alive,
  );
  const joinS = (Date.now() - joinStarted) / 1000;
  log(`e2e: ${settings.nodes} simulated nodes joined and READY in ${joinS.toFixed(1)} s`);

  // What the idle cluster (heartbeats, resyncs, BullMQ workers' blocking reads, ingest) costs Redis per second.
  const redis = new Redis(cp.redisUrl, { maxRetriesPerRequest: 2 });
  try {
    await sleep(2000);
    const idleStart = await redisTotalCalls(redis);
    const idleBy = await redisCallsByCommand(redis);
    const idleT = Date.now();
    await sleep(5000);
    const idlePerS = ((await redisTotalCalls(redis)) - idleStart) / ((Date.now() - idleT) / 1000);
    log(
      `e2e: idle Redis traffic ${idlePerS.toFixed(0)} commands/s over 5 s (top: ` +
        `${topCommands(idleBy, await redisCallsByCommand(redis))}); node connection errors so far: ` +
        `${cp.nodeErrors}${cp.firstNodeError ? ` (first: ${cp.firstNodeError})` : ''}`,
    );

    // The measured phase: createPod mutations, `concurrency` at a time, tenants in turn.
    const before = await redisTotalCalls(redis);
    const beforeBy = await redisCallsByCommand(redis);
    const started = Date.now();
    let errors = 0;
    let lastLog = Date.now();
    await pool(settings.pods, settings.concurrency, async (i) => {
      const tenant = tenants[i % settings.tenants] as { token: string };
      try {
        await graphql(cp.apiUrl, tenant.token, CREATE_POD, {
          input: { name: `p-${i}`, vcpus: 1, memoryMiB: 256, containers: [{ name: 'main', image: IMAGE }] },
        });
      } catch (error) {
        if (++errors <= 5) log(`e2e: createPod ${i} failed: ${String(error)}`);
      }
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        log(`e2e: ${i + 1}/${settings.pods} createPod sent after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    });
    const createdS = (Date.now() - started) / 1000;
    const created = settings.pods - errors;
    if (created === 0) throw new Error('every createPod failed');
    log(`e2e: ${created} pods created in ${createdS.toFixed(1)} s (${errors} errors); waiting for placement`);
    await waitFor(
      'every pod SCHEDULED or later',
      async () => (await cp.count(`SELECT count(*)::int AS n FROM pods WHERE phase <> 'PENDING'`)) === created,
      Math.max(120_000, settings.pods * 50),
      200,
      alive,
    );
    const after = await redisTotalCalls(redis);
    const measuredS = (Date.now() - started) / 1000;
    log(
      `e2e: Redis commands during the measured phase (top): ${topCommands(beforeBy, await redisCallsByCommand(redis))}`,
    );
    const lastScheduled = (await cp.pg.query<{ t: Date }>(`SELECT max("scheduledAt") AS t FROM pods`)).rows[0]?.t;
    const scheduledS = Math.max(0.001, ((lastScheduled?.getTime() ?? Date.now()) - started) / 1000);
    let runningS: number | null = null;
    try {
      await waitFor(
        'every pod RUNNING',
        async () => (await cp.count(`SELECT count(*)::int AS n FROM pods WHERE phase = 'RUNNING'`)) === created,
        60_000,
        200,
        alive,
      );
      runningS = (Date.now() - started) / 1000;
    } catch (error) {
      log(`e2e: not every pod RUNNING: ${String(error)}`);
    }
    log(`e2e: all SCHEDULED ${scheduledS.toFixed(1)} s, all RUNNING ${runningS?.toFixed(1) ?? '—'} s after the first`);

    await cp.stopProcesses();
    const stats = cp.schedulers.map((s) => placementStats(s.lines));
    stats.forEach((s, i) => log(`e2e: scheduler-${i + 1} stats ${JSON.stringify(s)}`));
    const conflicts = stats.every((s): s is PlacementStats => s !== null)
      ? stats.reduce((total, s) => total + s.conflicts, 0)
      : null;

    const baseline = await prismaBaseline(cp, settings, tenants, identities);
    const cmdsPerPod = (after - before) / created;
    return {
      e2e_pods_per_s: round(created / scheduledS, 1),
      e2e_pods: created,
      e2e_create_errors: errors,
      e2e_api_create_per_s: round(created / createdS, 1),
      e2e_scheduled_s: round(scheduledS, 2),
      e2e_running_s: runningS === null ? null : round(runningS, 2),
      e2e_nodes: settings.nodes,
      e2e_tenants: settings.tenants,
      e2e_concurrency: settings.concurrency,
      e2e_schedulers: settings.schedulers,
      e2e_heartbeat_ms: settings.heartbeatMs,
      e2e_join_s: round(joinS, 1),
      e2e_conflicts: conflicts,
      pg_baseline_pods_per_s: round(baseline, 1),
      pg_baseline_pods: settings.baselinePods,
      redis_cmds_per_pod: round(cmdsPerPod, 1),
      redis_idle_cmds_per_s: round(idlePerS, 0),
      redis_cmds_per_pod_minus_idle: round((after - before - idlePerS * measuredS) / created, 1),
    };
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/**
 * The same rows straight through Prisma (`createDb`, pool 10 like the API's): pod + container + outbox row in one
 * interactive transaction, then the pod updated to SCHEDULED on a node. No quota, address, event or placement.
 * Runs after the API and schedulers are stopped, so nothing else touches the database.
 */
async function prismaBaseline(
  cp: ControlPlane,
  settings: E2eSettings,
  tenants: { tenantId: string }[],
  nodes: NodeJoinResponse[],
): Promise<number> {
  const db = createDb({ url: cp.db.url, poolSize: BASELINE_POOL });
  try {
    const started = Date.now();
    // At most one request per connection: with more interactive transactions than connections, Prisma 6.19's
    // pg adapter hung here (transactions left idle in BEGIN, no error).
    await pool(settings.baselinePods, Math.min(settings.concurrency, BASELINE_POOL), async (i) => {
      const tenantId = (tenants[i % tenants.length] as { tenantId: string }).tenantId;
      const pod = await db.prisma.$transaction(async (tx) => {
        const row = await tx.pod.create({
          data: {
            tenantId,
            name: `b-${i}`,
            labels: {},
            vcpus: 1,
            memoryMiB: 256,
            restartPolicy: 'ALWAYS',
            spec: { nodeSelector: {} },
            phase: 'PENDING',
            desiredState: 'RUNNING',
            generation: 1,
          },
        });
        await tx.container.createMany({
          data: [{ podId: row.id, ordinal: 0, name: 'main', image: IMAGE, command: [], args: [], env: [] }],
        });
        await tx.outboxMessage.create({
          data: {
            aggregateType: 'pod',
            aggregateId: row.id,
            tenantId,
            generation: row.generation,
            kind: 'pod.created',
            payload: { phase: row.phase, desiredState: row.desiredState, vcpus: 1, memoryMiB: 256, ip: null },
          },
        });
        return row;
      }, TX_OPTIONS);
      await db.prisma.pod.update({
        where: { id: pod.id },
        data: {
          phase: 'SCHEDULED',
          nodeId: (nodes[i % nodes.length] as NodeJoinResponse).nodeId,
          nodeEpoch: 1,
          scheduledAt: new Date(),
        },
      });
    });
    const perS = settings.baselinePods / ((Date.now() - started) / 1000);
    log(`e2e: Prisma baseline ${settings.baselinePods} pods at ${perS.toFixed(0)}/s`);
    return perS;
  } finally {
    await db.close();
  }
}
