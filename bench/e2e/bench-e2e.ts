/**
 * `npm run bench:e2e` (issue 7): a pod from `createPod` to RUNNING through the whole platform — the built API, one
 * scheduler and real agents booting real VMs (QEMU; TCG here) — timestamped at every hop, and what is not the VM's
 * boot (`overhead_ms`, goal ≤ 250 ms). Then a node's death: how long until its pods are RUNNING on the other host.
 * See bench/README.md. Progress goes to stderr; stdout gets the figures and, last, exactly one JSON line.
 */
import { cpus, loadavg } from 'node:os';
import { AgentHost, Cluster, demoRegistry, freePort } from '@caas/cluster-harness';
import { HOPS, createToRunningMs, hopMs, median, overheadMs, p90, rawBootMs, round } from './hops';
import type { NodeDeathResult } from './phase-node-death';
import { runNodeDeath } from './phase-node-death';
import type { StartsResult } from './phase-starts';
import { runStarts } from './phase-starts';
import { cleanUp, intSetting, leftoverVms, log, onCleanup, trackHost } from './support';

const settings = {
  pods: intSetting('pods', 'BENCH_E2E_PODS', 20),
  deathPods: intSetting('death-pods', 'BENCH_E2E_DEATH_PODS', 3),
  leaseGraceMs: intSetting('grace-ms', 'BENCH_E2E_GRACE_MS', 3000),
};
const GOAL_OVERHEAD_MS = 250;
const HOST_A = { name: 'bench-a', vmUidBase: 420_000 };
const HOST_B = { name: 'bench-b', vmUidBase: 425_000 };

const ms = (value: number): string => (Number.isFinite(value) ? `${Math.round(value)}`.padStart(7) : '      —');

function report(starts: StartsResult, death: NodeDeathResult | null, loadStart: number): boolean {
  const runs = starts.runs;
  const total = runs.map(createToRunningMs);
  const boot = runs.map(rawBootMs);
  const overhead = runs.map(overheadMs);
  const totalMedian = median(total);
  const overheadMedian = median(overhead);
  const ok = overheadMedian <= GOAL_OVERHEAD_MS;

  const out: string[] = [];
  out.push(`e2e: ${runs.length} pods one at a time on one host (${starts.accel ?? '?'}), image cached`);
  out.push(`warm-up (image pulled from the registry): createPod → RUNNING ${starts.warmupMs} ms`);
  out.push('');
  out.push(`${'hop'.padEnd(50)} ${'p50 ms'.padStart(7)} ${'p90 ms'.padStart(7)} ${'% of p50'.padStart(8)}`);
  for (const hop of HOPS) {
    const values = runs.map((run) => hopMs(run, hop));
    const share = `${((median(values) / totalMedian) * 100).toFixed(1)} %`;
    out.push(`${hop.label.padEnd(50)} ${ms(median(values))} ${ms(p90(values))} ${share.padStart(8)}`);
  }
  out.push(`${'createPod → RUNNING seen (create_to_running)'.padEnd(50)} ${ms(totalMedian)} ${ms(p90(total))}`);
  out.push(`${'  of which the VM boot (raw_boot)'.padEnd(50)} ${ms(median(boot))} ${ms(p90(boot))}`);
  out.push(`${'  everything else (overhead, per pod)'.padEnd(50)} ${ms(overheadMedian)} ${ms(p90(overhead))}`);
  out.push('');
  out.push(
    `overhead ${Math.round(overheadMedian)} ms (goal ≤ ${GOAL_OVERHEAD_MS} ms): ${ok ? 'PASS' : 'FAIL'}; ` +
      `create_to_running / raw_boot = ${(totalMedian / median(boot)).toFixed(2)}`,
  );
  if (death) {
    out.push(
      `node death (${death.pods} pods, lease grace ${death.leaseGraceMs} ms): all RUNNING elsewhere after ` +
        `${death.toRunningS.toFixed(1)} s — NodeLost at ${death.toDetectedS?.toFixed(1) ?? '?'} s ` +
        `(last heartbeat ${death.lastHeartbeatBeforeMs ?? '?'} ms before the kill), all placed at ` +
        `${death.toScheduledS?.toFixed(1) ?? '?'} s, re-boots ${death.rebootMedianMs ?? '?'} ms (median, concurrent)`,
    );
  }
  for (const line of out) process.stdout.write(`${line}\n`);

  const hops = Object.fromEntries(
    HOPS.flatMap((hop) => {
      const values = runs.map((run) => hopMs(run, hop));
      return [
        [`hop_${hop.key}_ms`, round(median(values))],
        [`hop_${hop.key}_p90_ms`, round(p90(values))],
      ];
    }),
  );
  const json = {
    benchmark: 'e2e',
    create_to_running_ms: round(totalMedian),
    create_to_running_p90_ms: round(p90(total)),
    raw_boot_ms: round(median(boot)),
    raw_boot_p90_ms: round(p90(boot)),
    overhead_ms: round(overheadMedian),
    overhead_p90_ms: round(p90(overhead)),
    overhead_goal_ms: GOAL_OVERHEAD_MS,
    overhead_ok: ok,
    ...hops,
    node_death_to_running_s: death ? round(death.toRunningS, 2) : null,
    node_death_detected_s: death?.toDetectedS == null ? null : round(death.toDetectedS, 2),
    node_death_scheduled_s: death?.toScheduledS == null ? null : round(death.toScheduledS, 2),
    node_death_reboot_ms: death?.rebootMedianMs == null ? null : round(death.rebootMedianMs),
    node_death_last_heartbeat_ms: death?.lastHeartbeatBeforeMs ?? null,
    node_death_pods: death?.pods ?? null,
    lease_grace_ms: settings.leaseGraceMs,
    warmup_create_to_running_ms: starts.warmupMs,
    warmup_pull_ms: starts.warmupPullMs,
    pods: runs.length,
    accel: starts.accel,
    cores: cpus().length,
    loadavg_start: round(loadStart, 2),
    loadavg_end: round(loadavg()[0] ?? 0, 2),
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(json)}\n`);
  return ok;
}

async function main(): Promise<void> {
  if (settings.pods < 1) throw new Error('--pods must be at least 1');
  const loadStart = loadavg()[0] ?? 0;
  const registryPort = await freePort();
  const image = demoRegistry('push', { port: registryPort });
  onCleanup('remove the registry', async () => void demoRegistry('purge', { port: registryPort }));
  log(`image ${image}`);

  const cluster = new Cluster({ schedulers: 1, label: 'bench-e2e', leaseGraceMs: settings.leaseGraceMs });
  onCleanup('stop the cluster', () => cluster.stop());
  await cluster.start();
  const tenant = await cluster.tenant('bench');
  log(`cluster up (API ${cluster.apiUrl}); joining ${HOST_A.name}`);
  const hostA = trackHost(await AgentHost.join(cluster, HOST_A));

  const starts = await runStarts(cluster, hostA, tenant.token, image, settings.pods);
  let death: NodeDeathResult | null = null;
  if (settings.deathPods > 0) {
    death = await runNodeDeath(cluster, hostA, tenant.token, image, {
      pods: settings.deathPods,
      leaseGraceMs: settings.leaseGraceMs,
      survivorName: HOST_B.name,
      survivorUidBase: HOST_B.vmUidBase,
    });
  }
  report(starts, death, loadStart);
}

void main()
  .then(
    () => 0,
    (error: unknown) => {
      log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return 1;
    },
  )
  .then(async (code) => {
    await cleanUp();
    const left = leftoverVms();
    if (left.length > 0) log(`VMs left over: pids ${left.join(', ')}`);
    process.exit(left.length > 0 ? 1 : code);
  });
