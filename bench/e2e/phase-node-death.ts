// Phase 2 of bench:e2e: a host dies (its agent SIGKILLed and every VM of it killed at once, t0) with pods running on
// it; how long until each of them is RUNNING on the other host, as a tenant sees it. The figure is the lease grace
// + the node monitor's detection + re-placement + the re-boot on the survivor (its image cache warm).
import type { Cluster } from '@caas/cluster-harness';
import { AgentHost } from '@caas/cluster-harness';
import { bootLines, median } from './hops';
import { cordon, createPod, deletePods, log, nodeId, podOf, sleep, trackHost, waitRunning } from './support';

export interface NodeDeathResult {
  pods: number;
  leaseGraceMs: number;
  /** t0 → every pod RUNNING on the survivor (seen through the `pod` query). */
  toRunningS: number;
  /** t0 → the NodeLost event (the node declared NOT_READY). */
  toDetectedS: number | null;
  /** The dead agent's last heartbeat before t0 (the lease runs from it). */
  lastHeartbeatBeforeMs: number | null;
  /** t0 → the last pod placed on the survivor. */
  toScheduledS: number | null;
  /** The survivor's boots of the re-placed pods (QEMU exec → guest ready; concurrent). */
  rebootMedianMs: number | null;
}

export async function runNodeDeath(
  cluster: Cluster,
  victim: AgentHost,
  token: string,
  image: string,
  options: { pods: number; leaseGraceMs: number; survivorName: string; survivorUidBase: number },
): Promise<NodeDeathResult> {
  const victimName = victim.options.name;
  log(`node death: joining ${options.survivorName}`);
  const survivor = trackHost(
    await AgentHost.join(cluster, { name: options.survivorName, vmUidBase: options.survivorUidBase }),
  );

  // The survivor's image cache is warmed as the victim's was: a pod placed there while the victim is cordoned.
  await cordon(cluster, victimName, true);
  const warm = await createPod(cluster, token, 'survivor-warmup', image);
  await waitRunning(cluster, token, warm, survivor.options.name);
  await deletePods(cluster, token, [warm], survivor);
  await cordon(cluster, victimName, false);

  // The pods go to the victim (the survivor cordoned meanwhile), then the survivor takes pods again.
  await cordon(cluster, survivor.options.name, true);
  const ids: string[] = [];
  for (let i = 1; i <= options.pods; i++) ids.push(await createPod(cluster, token, `doomed-${i}`, image));
  for (const id of ids) await waitRunning(cluster, token, id, victimName);
  await cordon(cluster, survivor.options.name, false);
  const victimId = await nodeId(cluster, victimName);
  await sleep(1_000); // a heartbeat or two of both nodes with the survivor uncordoned

  log(`node death: killing ${victimName} (agent and ${victim.vmPids().length} VMs) with ${ids.length} pods`);
  const t0 = Date.now();
  await victim.kill('SIGKILL');
  victim.killVms();
  const runningAt = new Map<string, number>();
  const deadline = t0 + 300_000;
  while (runningAt.size < ids.length) {
    if (Date.now() > deadline) {
      throw new Error(
        `only ${runningAt.size}/${ids.length} pods RUNNING on ${survivor.options.name} 300 s after the death\n` +
          `--- survivor\n${survivor.output().slice(-3000)}`,
      );
    }
    for (const id of ids) {
      if (runningAt.has(id)) continue;
      const pod = await podOf(cluster, token, id);
      if (pod?.phase === 'RUNNING' && pod.nodeName === survivor.options.name) runningAt.set(id, Date.now());
    }
    await sleep(100);
  }
  const toRunningS = (Math.max(...runningAt.values()) - t0) / 1000;

  const [lost] = await cluster.query<{ createdAt: Date }>(
    `SELECT "createdAt" FROM events WHERE "nodeId" = $1 AND reason = 'NodeLost' ORDER BY id LIMIT 1`,
    [victimId],
  );
  const [node] = await cluster.query<{ lastHeartbeatAt: Date | null }>(
    'SELECT "lastHeartbeatAt" FROM nodes WHERE id = $1',
    [victimId],
  );
  const placed = await cluster.query<{ scheduledAt: Date | null }>(
    'SELECT "scheduledAt" FROM pods WHERE id = ANY($1::uuid[])',
    [ids],
  );
  const scheduled = placed.map((p) => p.scheduledAt?.getTime() ?? Number.NaN);
  const boots = bootLines(survivor.output())
    .filter((l) => ids.includes(l.podId) && l.bootMs !== null)
    .map((l) => l.bootMs ?? 0);
  const heartbeat = node?.lastHeartbeatAt?.getTime();

  await deletePods(cluster, token, ids, survivor);
  return {
    pods: ids.length,
    leaseGraceMs: options.leaseGraceMs,
    toRunningS,
    toDetectedS: lost ? (lost.createdAt.getTime() - t0) / 1000 : null,
    lastHeartbeatBeforeMs: heartbeat === undefined ? null : t0 - heartbeat,
    toScheduledS: scheduled.every(Number.isFinite) ? (Math.max(...scheduled) - t0) / 1000 : null,
    rebootMedianMs: boots.length > 0 ? median(boots) : null,
  };
}
