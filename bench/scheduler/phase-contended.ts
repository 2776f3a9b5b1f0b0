// Phase (b): several scheduler processes place the same burst of pods onto tight nodes. Pods and their outbox rows
// go straight into PostgreSQL (the rows `PodService.create` writes), nodes are READY rows with a lease far in the
// future (the node monitor leaves them alone; no agent). Measures placements per second and reservation conflicts.
import { ControlPlane } from './control-plane';
import type { PlacementStats } from './support';
import { log, placementStats, round, waitFor } from './support';

export interface ContendedSettings {
  pods: number;
  nodes: number;
  schedulers: number;
  tenants: number;
  schedulerEnv: Record<string, string>;
}

export interface ContendedResult {
  contended_pods_per_s: number;
  contended_pods: number;
  contended_placed: number;
  contended_nodes: number;
  contended_schedulers: number;
  contended_settle_s: number;
  conflicts: number | null;
  reservation_attempts: number | null;
  conflict_rate: number | null;
  contended_unschedulable: number | null;
  contended_overcommitted_nodes: number;
  contended_stats_logged: boolean;
}

/** 1 vCPU and 256 MiB per pod: with the 256 MiB VM overhead, a reservation of 1 vCPU, 512 MiB and 1 pod slot. */
const POD_VCPUS = 1;
const POD_MEMORY_MIB = 256;
const VM_OVERHEAD_MIB = 256;

export async function runContended(settings: ContendedSettings): Promise<ContendedResult> {
  const cp = new ControlPlane({
    label: 'bench-sched-contended',
    api: false,
    schedulers: settings.schedulers,
    schedulerEnv: { ...settings.schedulerEnv, LOG_LEVEL: 'info' },
  });
  try {
    return await contended(cp, settings);
  } finally {
    await cp.close();
  }
}

async function contended(cp: ControlPlane, settings: ContendedSettings): Promise<ContendedResult> {
  await cp.start();
  const { pg } = cp;

  // Tight: the nodes' slots add up to exactly the pods (the last pods find one free slot left, somewhere).
  const perNode = Math.ceil(settings.pods / settings.nodes);
  await pg.query(
    `INSERT INTO tenants (slug, "displayName", subnet, "maxPods", "maxVcpus", "maxMemoryMiB", "updatedAt")
     SELECT 'bench-' || g, 'Bench', '10.' || (g / 256) || '.' || (g % 256) || '.0/24', 100000, 100000, 100000000, now()
       FROM generate_series(0, $1::int - 1) g`,
    [settings.tenants],
  );
  await pg.query(
    `INSERT INTO nodes (name, status, "leaseExpiresAt", "lastHeartbeatAt", labels, "capacityVcpus",
                        "capacityMemoryMiB", "capacityPods", "updatedAt")
     SELECT 'tight-' || g, 'READY', now() + interval '1 day', now(),
            jsonb_build_object('topology.caas.dev/zone', 'z' || (g % 3)), $2::int, $3::int, $2::int, now()
       FROM generate_series(0, $1::int - 1) g`,
    [settings.nodes, perNode, perNode * (POD_MEMORY_MIB + VM_OVERHEAD_MIB)],
  );
  await cp.schedulersRunning();
  log(
    `contended: ${settings.schedulers} schedulers, ${settings.nodes} READY nodes × ${perNode} slots, ` +
      `${settings.pods} pods of ${settings.tenants} tenants inserted in one transaction`,
  );

  // The rows createPod writes (ip left out: pod.created's ip is nullable), all in one transaction.
  await pg.query('BEGIN');
  await pg.query(
    `WITH t AS (SELECT id, (row_number() OVER (ORDER BY slug) - 1)::int AS k FROM tenants),
     p AS (
       INSERT INTO pods ("tenantId", name, labels, spec, vcpus, "memoryMiB", phase, "desiredState", generation,
                         "updatedAt")
       SELECT t.id, 'p-' || g, jsonb_build_object('app', 'app-' || (g % 10)), '{"nodeSelector":{}}', $3, $4,
              'PENDING', 'RUNNING', 1, now()
         FROM generate_series(0, $1::int - 1) g JOIN t ON t.k = g % $2::int
       RETURNING id, "tenantId", generation, name
     ),
     c AS (
       INSERT INTO containers ("podId", ordinal, name, image, command, args, env)
       SELECT id, 0, 'main', 'registry.example.com/bench/app:1.0', '{}', '{}', '[]' FROM p
     ),
     e AS (
       INSERT INTO events ("tenantId", "podId", type, reason, message)
       SELECT "tenantId", id, 'NORMAL', 'Created', 'Pod ' || name || ' created.' FROM p
     )
     INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
     SELECT 'pod', id, "tenantId", generation, 'pod.created',
            jsonb_build_object('phase', 'PENDING', 'desiredState', 'RUNNING', 'vcpus', $3::int, 'memoryMiB', $4::int,
                               'ip', NULL)
       FROM p ORDER BY name`,
    [settings.pods, settings.tenants, POD_VCPUS, POD_MEMORY_MIB],
  );
  await pg.query(`UPDATE tenants SET "usedPods" = (SELECT count(*) FROM pods WHERE "tenantId" = tenants.id)`);
  await pg.query('COMMIT');
  const committedAt = Date.now();
  const committed = (await pg.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]?.t ?? new Date();

  // Settled: every pod placed, or (if the nodes cannot hold them all) the rest PENDING with a reason.
  const timeoutMs = Math.max(120_000, settings.pods * 100);
  let lastLog = Date.now();
  await waitFor(
    'every pod placed or refused',
    async () => {
      const placed = await cp.count(`SELECT count(*)::int AS n FROM pods WHERE "nodeId" IS NOT NULL`);
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        log(`contended: ${placed}/${settings.pods} placed after ${((Date.now() - committedAt) / 1000).toFixed(1)} s`);
      }
      if (placed === settings.pods) return true;
      const waiting = await cp.count(
        `SELECT count(*)::int AS n FROM pods WHERE "nodeId" IS NULL AND (reason IS NULL OR reason <> 'Unschedulable')`,
      );
      return waiting === 0 && Date.now() - committedAt > 2000;
    },
    timeoutMs,
    100,
    cp.schedulers,
  );
  const last = (
    await pg.query<{ last: Date | null; placed: number }>(
      `SELECT max("scheduledAt") AS last, count("nodeId")::int AS placed FROM pods`,
    )
  ).rows[0];
  const placed = last?.placed ?? 0;
  const settleS = last?.last ? Math.max(0.001, (last.last.getTime() - committed.getTime()) / 1000) : NaN;
  const overcommitted = await cp.count(
    `SELECT count(*)::int AS n FROM nodes WHERE "allocatedPods" > "capacityPods" OR "allocatedVcpus" > "capacityVcpus"
        OR "allocatedMemoryMiB" > "capacityMemoryMiB"`,
  );

  await cp.stopProcesses();
  const stats = cp.schedulers.map((s) => placementStats(s.lines));
  const logged = stats.every((s): s is PlacementStats => s !== null);
  if (!logged) log('contended: a scheduler did not log "placement stats" on SIGTERM; conflicts unknown');
  const sum = (key: keyof PlacementStats): number | null =>
    logged ? stats.reduce((total, s) => total + (s?.[key] ?? 0), 0) : null;
  const conflicts = sum('conflicts');
  const attempts = conflicts === null ? null : (sum('placed') ?? 0) + conflicts;
  stats.forEach((s, i) => log(`contended: scheduler-${i + 1} stats ${JSON.stringify(s)}`));
  return {
    contended_pods_per_s: round(placed / settleS, 1),
    contended_pods: settings.pods,
    contended_placed: placed,
    contended_nodes: settings.nodes,
    contended_schedulers: settings.schedulers,
    contended_settle_s: round(settleS, 3),
    conflicts,
    reservation_attempts: attempts,
    conflict_rate: conflicts === null || !attempts ? null : round(conflicts / attempts, 4),
    contended_unschedulable: sum('unschedulable'),
    contended_overcommitted_nodes: overcommitted,
    contended_stats_logged: logged,
  };
}
