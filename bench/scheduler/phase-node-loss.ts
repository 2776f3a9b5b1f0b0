// Phase (d): a simulated node running ~20 pods dies (SimulatedNode.kill(): no more heartbeats, connection closed).
// Measures the time from the kill until every one of its pods is SCHEDULED (or later) on another node.
import type { Capacity } from './control-plane';
import { ControlPlane } from './control-plane';
import { graphql, log, pool, round, waitFor } from './support';

export interface NodeLossSettings {
  pods: number;
  heartbeatMs: number;
  graceMs: number;
  schedulerEnv: Record<string, string>;
}

export interface NodeLossResult {
  node_loss_to_replaced_s: number;
  node_loss_to_running_s: number | null;
  node_loss_detected_s: number | null;
  node_loss_pods: number;
  node_loss_grace_ms: number;
  node_loss_heartbeat_ms: number;
  node_loss_last_heartbeat_before_kill_ms: number | null;
}

const CREATE_POD = 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }';

export async function runNodeLoss(settings: NodeLossSettings): Promise<NodeLossResult> {
  const cp = new ControlPlane({
    label: 'bench-sched-loss',
    api: true,
    schedulers: 1,
    schedulerEnv: { ...settings.schedulerEnv, NODE_LEASE_GRACE_MS: String(settings.graceMs), LOG_LEVEL: 'warn' },
    apiEnv: { NODE_HEARTBEAT_INTERVAL_MS: String(settings.heartbeatMs), NODE_LEASE_GRACE_MS: String(settings.graceMs) },
  });
  try {
    return await nodeLoss(cp, settings);
  } finally {
    await cp.close();
  }
}

async function nodeLoss(cp: ControlPlane, settings: NodeLossSettings): Promise<NodeLossResult> {
  await cp.start();
  await cp.schedulersRunning();
  const alive = cp.processes;
  const capacity: Capacity = {
    vcpus: settings.pods + 4,
    memoryMiB: (settings.pods + 4) * 512,
    pods: settings.pods + 4,
  };
  const ready = async (n: number): Promise<void> =>
    waitFor(
      `${n} nodes READY`,
      async () => (await cp.count(`SELECT count(*)::int AS n FROM nodes WHERE status = 'READY'`)) === n,
      30_000,
      100,
      alive,
    );

  // The victim alone first, so every pod lands on it; then two spares with room for all of them.
  const victimIdentity = await cp.join('victim', capacity);
  const victimId = victimIdentity.nodeId;
  const victim = await cp.simulate(victimIdentity, capacity, { resyncIntervalMs: 1_000 });
  await ready(1);
  const tenant = await cp.tenant('loss', settings.pods + 10);
  const ids: string[] = [];
  await pool(settings.pods, 8, async (i) => {
    const data = await graphql<{ createPod: { id: string } }>(cp.apiUrl, tenant.token, CREATE_POD, {
      input: {
        name: `l-${i}`,
        vcpus: 1,
        memoryMiB: 256,
        containers: [{ name: 'main', image: 'registry.example.com/bench/app:1.0' }],
      },
    });
    ids.push(data.createPod.id);
  });
  const onVictim = `SELECT count(*)::int AS n FROM pods WHERE id = ANY($1) AND phase = 'RUNNING' AND "nodeId" = $2`;
  await waitFor(
    `${settings.pods} pods RUNNING on the victim`,
    async () => (await cp.count(onVictim, [ids, victimId])) === settings.pods,
    60_000,
    100,
    alive,
  );
  for (const name of ['spare-1', 'spare-2']) {
    await cp.simulate(await cp.join(name, capacity), capacity, { resyncIntervalMs: 1_000 });
  }
  await ready(3);
  // The lease runs from the victim's last heartbeat before the kill (0 to one interval earlier; read back below).
  await new Promise((resolve) => setTimeout(resolve, 1500));

  log(`node loss: killing the victim with ${settings.pods} RUNNING pods (grace ${settings.graceMs} ms)`);
  const killedAt = Date.now();
  await victim.kill();
  const moved = `SELECT count(*)::int AS n FROM pods WHERE id = ANY($1) AND phase <> 'PENDING' AND "nodeId" IS NOT NULL
                   AND "nodeId" <> $2`;
  await waitFor(
    'every pod of the victim SCHEDULED elsewhere',
    async () => (await cp.count(moved, [ids, victimId])) === settings.pods,
    60_000,
    25,
    alive,
  );
  const replacedS = (Date.now() - killedAt) / 1000;
  let runningS: number | null = null;
  try {
    await waitFor(
      'every pod of the victim RUNNING elsewhere',
      async () =>
        (await cp.count(
          `SELECT count(*)::int AS n FROM pods WHERE id = ANY($1) AND phase = 'RUNNING' AND "nodeId" <> $2`,
          [ids, victimId],
        )) === settings.pods,
      30_000,
      25,
      alive,
    );
    runningS = (Date.now() - killedAt) / 1000;
  } catch (error) {
    log(`node loss: ${String(error)}`);
  }
  const row = (
    await cp.pg.query<{ lastHeartbeatAt: Date | null; lost: Date | null }>(
      `SELECT n."lastHeartbeatAt",
              (SELECT min(e."createdAt") FROM events e WHERE e."podId" = ANY($2) AND e.reason = 'NodeLost') AS lost
         FROM nodes n WHERE n.id = $1`,
      [victimId, ids],
    )
  ).rows[0];
  const lastBeat = row?.lastHeartbeatAt ? killedAt - row.lastHeartbeatAt.getTime() : null;
  const detected = row?.lost ? (row.lost.getTime() - killedAt) / 1000 : null;
  log(
    `node loss: last heartbeat ${lastBeat ?? '?'} ms before the kill; NodeLost after ${detected ?? '?'} s; ` +
      `all SCHEDULED elsewhere after ${replacedS.toFixed(2)} s, RUNNING after ${runningS?.toFixed(2) ?? '—'} s`,
  );
  return {
    node_loss_to_replaced_s: round(replacedS, 2),
    node_loss_to_running_s: runningS === null ? null : round(runningS, 2),
    node_loss_detected_s: detected === null ? null : round(detected, 2),
    node_loss_pods: settings.pods,
    node_loss_grace_ms: settings.graceMs,
    node_loss_heartbeat_ms: settings.heartbeatMs,
    node_loss_last_heartbeat_before_kill_ms: lastBeat,
  };
}
