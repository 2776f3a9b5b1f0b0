// Phase 1 of bench:e2e: pods created one at a time on one real agent host, each timestamped at every hop from
// `createPod` to RUNNING seen through the `pod` query, then deleted before the next (no contention: under TCG two
// booting VMs share 2 cores). One warm-up pod first pulls the image into the host's cache.
import type { AgentHost, Cluster } from '@caas/cluster-harness';
import type { BootLine, PodRun } from './hops';
import { bootLines } from './hops';
import { createPod, deletePods, log, podOf, sleep, waitRunning } from './support';

export interface StartsResult {
  runs: PodRun[];
  /** The warm-up: createPod → RUNNING with the image pulled from the registry. */
  warmupMs: number;
  warmupPullMs: number | null;
  accel: string | null;
}

/** The agent's `pod VM booted` line of `podId` printed after `from` characters of its output, once there. */
async function waitBootLine(cluster: Cluster, token: string, host: AgentHost, podId: string, from: number) {
  const deadline = Date.now() + 240_000;
  let checkedAt = Date.now();
  while (Date.now() < deadline) {
    const line = bootLines(host.output().slice(from)).find((l) => l.podId === podId);
    if (line) return line;
    if (Date.now() - checkedAt >= 1_000) {
      // No polling of the API during the boot (it would take CPU from the VM); only a slow check for failure.
      checkedAt = Date.now();
      const pod = await podOf(cluster, token, podId);
      if (pod?.phase === 'FAILED') throw new Error(`pod ${podId} FAILED: ${pod.reason ?? ''} ${pod.message ?? ''}`);
    }
    await sleep(5);
  }
  throw new Error(`no "pod VM booted" line for ${podId}\n--- agent\n${host.output().slice(-3000)}`);
}

/** Queries back to back until one answers RUNNING; returns when that answer arrived. */
async function waitVisible(cluster: Cluster, token: string, podId: string): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const pod = await podOf(cluster, token, podId);
    const at = Date.now();
    if (pod?.phase === 'RUNNING') return at;
    if (pod === null || pod.phase === 'FAILED') throw new Error(`pod ${podId}: ${JSON.stringify(pod)}`);
  }
  throw new Error(`pod ${podId} not RUNNING through GraphQL 60 s after the agent reported it`);
}

function required(line: BootLine, key: 'launchedAt' | 'readyAt' | 'containersStartedAt'): number {
  const value = line[key];
  if (typeof value !== 'number') throw new Error(`the agent's boot line has no ${key}: ${JSON.stringify(line)}`);
  return value;
}

export async function runStarts(
  cluster: Cluster,
  host: AgentHost,
  token: string,
  image: string,
  pods: number,
): Promise<StartsResult> {
  log('warm-up pod (pulls the image into the cache)');
  const warmStart = Date.now();
  const from = host.output().length;
  const warm = await createPod(cluster, token, 'warmup', image);
  await waitRunning(cluster, token, warm);
  const warmupMs = Date.now() - warmStart;
  const warmLine = bootLines(host.output().slice(from)).find((l) => l.podId === warm);
  await deletePods(cluster, token, [warm], host);

  const runs: PodRun[] = [];
  let accel: string | null = warmLine?.accel ?? null;
  for (let i = 1; i <= pods; i++) {
    const offset = host.output().length;
    const requestedAt = Date.now();
    const podId = await createPod(cluster, token, `run-${i}`, image);
    const createdAt = Date.now();
    const line = await waitBootLine(cluster, token, host, podId, offset);
    const visibleAt = await waitVisible(cluster, token, podId);
    const [row] = await cluster.query<{ scheduledAt: Date | null; startedAt: Date | null }>(
      'SELECT "scheduledAt", "startedAt" FROM pods WHERE id = $1',
      [podId],
    );
    if (!row?.scheduledAt || !row.startedAt) throw new Error(`pod ${podId}: no scheduledAt/startedAt`);
    const run: PodRun = {
      podId,
      requestedAt,
      createdAt,
      scheduledAt: row.scheduledAt.getTime(),
      workStartedAt: line.workStartedAt,
      pulledAt: line.pulledAt,
      launchedAt: required(line, 'launchedAt'),
      readyAt: required(line, 'readyAt'),
      containersStartedAt: required(line, 'containersStartedAt'),
      reportedAt: line.reportedAt,
      runningAt: row.startedAt.getTime(),
      visibleAt,
    };
    runs.push(run);
    accel = line.accel;
    log(
      `pod ${i}/${pods}: create → RUNNING ${visibleAt - requestedAt} ms, boot ${run.readyAt - run.launchedAt} ms, ` +
        `overhead ${visibleAt - requestedAt - (run.readyAt - run.launchedAt)} ms`,
    );
    await deletePods(cluster, token, [podId], host);
  }
  return { runs, warmupMs, warmupPullMs: warmLine?.pullMs ?? null, accel };
}
