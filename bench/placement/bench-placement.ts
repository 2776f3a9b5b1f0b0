/**
 * `npm run bench:placement`: decisions per second of `place()` from `@caas/placement` over 5,000 nodes (varied
 * capacities, 3 failure domains, a few tainted pools), after 1,000 pods already placed the same way; each measured
 * decision is followed by its reservation (`PreparedNodes.update`) and `SpreadIndex.add`, as the scheduler does.
 * Pure CPU; no database.
 */
import type { NodeInfo, PodRequest, Taint } from '@caas/placement';
import {
  SpreadIndex,
  addResources,
  place,
  prepareNodes,
  reservationFor,
  resolveSettings,
  seededRandom,
} from '@caas/placement';

const NODES = Number(process.env['BENCH_NODES'] ?? 5000);
const PRIOR = Number(process.env['BENCH_PRIOR'] ?? 1000);
const MEASURED = Number(process.env['BENCH_MEASURED'] ?? 1000);
const SEED = Number(process.env['BENCH_SEED'] ?? 1);
const TOP_K = Number(process.env['BENCH_TOPK'] ?? 3);
const GOAL_PER_S = 2000;
const ZONE = 'topology.caas.dev/zone';

const random = seededRandom(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
const chance = (p: number): boolean => random() < p;

const SHAPES = [
  { vcpus: 8, memoryMiB: 32768, pods: 60 },
  { vcpus: 16, memoryMiB: 65536, pods: 110 },
  { vcpus: 32, memoryMiB: 131072, pods: 110 },
  { vcpus: 64, memoryMiB: 262144, pods: 250 },
];
const DEDICATED: Taint = { key: 'caas.dev/dedicated', value: 'tenant-07', effect: 'NoSchedule' };
const GPU: Taint = { key: 'caas.dev/gpu', value: 'a100', effect: 'NoSchedule' };
const SPOT: Taint = { key: 'caas.dev/spot', value: 'true', effect: 'PreferNoSchedule' };

function makeNodes(): NodeInfo[] {
  return Array.from({ length: NODES }, (_, i) => {
    // Pools by index range: 4 % dedicated to one tenant, 3 % GPU, 6 % spot, the rest general or high-memory.
    const f = i / NODES;
    const pool = f < 0.04 ? 'dedicated' : f < 0.07 ? 'gpu' : f < 0.13 ? 'spot' : f < 0.3 ? 'highmem' : 'general';
    const taints: Taint[] = pool === 'dedicated' ? [DEDICATED] : pool === 'gpu' ? [GPU] : pool === 'spot' ? [SPOT] : [];
    return {
      id: `node-${String(i).padStart(5, '0')}`,
      name: `node-${i}`,
      ready: !chance(0.005),
      cordoned: chance(0.01),
      draining: chance(0.003),
      diskPressure: chance(0.005),
      labels: { [ZONE]: `z${(i % 3) + 1}`, pool, 'caas.dev/rack': `r${i % 100}` },
      taints,
      capacity: pool === 'highmem' ? (SHAPES[3] as NodeInfo['capacity']) : pick(SHAPES.slice(0, 3)),
      allocated: { vcpus: 0, memoryMiB: 0, pods: 0 },
    };
  });
}

const APPS = ['web', 'api', 'worker', 'db', 'cache', 'cron', 'search', 'auth', 'queue', 'ml'];

function makePod(i: number): PodRequest {
  const tenant = `tenant-${String(Math.floor(random() * 50)).padStart(2, '0')}`;
  const pod: PodRequest = {
    id: `pod-${i}`,
    tenantId: tenant,
    vcpus: pick([1, 1, 1, 2, 2, 4, 8]),
    memoryMiB: pick([256, 512, 1024, 2048, 4096, 8192]),
    labels: { app: pick(APPS), tier: pick(['front', 'back']) },
    nodeSelector: {},
    tolerations: [],
  };
  if (tenant === 'tenant-07') {
    pod.nodeSelector = { pool: 'dedicated' };
    pod.tolerations = [{ key: DEDICATED.key, operator: 'Equal', value: 'tenant-07', effect: 'NoSchedule' }];
  } else {
    // 5 % GPU, 10 % high-memory, 10 % tolerate spot, the rest anywhere untainted.
    const roll = random();
    if (roll < 0.05) {
      pod.nodeSelector = { pool: 'gpu' };
      pod.tolerations = [{ key: GPU.key, operator: 'Exists' }];
    } else if (roll < 0.15) pod.nodeSelector = { pool: 'highmem' };
    else if (roll < 0.25) pod.tolerations = [{ key: SPOT.key, operator: 'Exists' }];
  }
  return pod;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function main(): void {
  const settings = resolveSettings({ topK: TOP_K });
  const nodes = makeNodes();
  const t0 = process.hrtime.bigint();
  const prepared = prepareNodes(nodes);
  const prepareMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const spread = new SpreadIndex();

  let unschedulable = 0;
  let lastReason = '';
  const decide = (pod: PodRequest): void => {
    const r = place(pod, prepared, { spread, settings, random });
    if (r.kind === 'unschedulable') {
      unschedulable++;
      lastReason = r.reason;
      return;
    }
    const allocated = prepared.allocated(r.nodeId);
    if (!allocated) throw new Error(`unknown node ${r.nodeId}`);
    prepared.update(r.nodeId, addResources(allocated, reservationFor(pod, settings)));
    spread.add(pod.tenantId, pod.labels, r.nodeId);
  };

  for (let i = 0; i < PRIOR; i++) decide(makePod(i));
  const priorUnschedulable = unschedulable;
  unschedulable = 0;

  const pods = Array.from({ length: MEASURED }, (_, i) => makePod(PRIOR + i));
  const latencies: number[] = [];
  const start = process.hrtime.bigint();
  for (const pod of pods) {
    const s = process.hrtime.bigint();
    decide(pod);
    latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;

  // Sanity: nothing overcommitted.
  let overcommitted = 0;
  for (const n of nodes) {
    const a = prepared.allocated(n.id);
    if (!a || a.vcpus > n.capacity.vcpus || a.memoryMiB > n.capacity.memoryMiB || a.pods > n.capacity.pods) {
      overcommitted++;
    }
  }

  latencies.sort((a, b) => a - b);
  const perS = (MEASURED / totalMs) * 1000;
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  const max = latencies[latencies.length - 1] ?? 0;
  const ok = perS >= GOAL_PER_S && overcommitted === 0;

  console.log(
    `nodes ${NODES} (3 zones; pools: 4 % dedicated NoSchedule, 3 % gpu NoSchedule, 6 % spot PreferNoSchedule), ` +
      `prior pods ${PRIOR} (${priorUnschedulable} unschedulable), measured ${MEASURED}, topK ${TOP_K}, seed ${SEED}`,
  );
  console.log(`prepareNodes: ${prepareMs.toFixed(1)} ms; spread groups: ${spread.groupCount}`);
  if (unschedulable > 0) console.log(`measured unschedulable: ${unschedulable} (last: ${lastReason})`);
  console.log('| metric                        |      value |');
  console.log('| ----------------------------- | ---------: |');
  const row = (name: string, value: string): void => console.log(`| ${name.padEnd(29)} | ${value.padStart(10)} |`);
  row('decisions per second', perS.toFixed(0));
  row('p50 latency (ms)', p50.toFixed(3));
  row('p99 latency (ms)', p99.toFixed(3));
  row('max latency (ms)', max.toFixed(3));
  row('overcommitted nodes', String(overcommitted));
  console.log(
    `${ok ? 'PASS' : 'FAIL'}: ${perS.toFixed(0)} decisions/s (goal ≥ ${GOAL_PER_S}), overcommitted ${overcommitted}`,
  );
  console.log(
    JSON.stringify({
      bench: 'placement',
      nodes: NODES,
      prior_pods: PRIOR,
      measured: MEASURED,
      top_k: TOP_K,
      seed: SEED,
      prepare_ms: Number(prepareMs.toFixed(3)),
      placement_per_s: Math.round(perS),
      placement_p50_ms: Number(p50.toFixed(4)),
      placement_p99_ms: Number(p99.toFixed(4)),
      placement_max_ms: Number(max.toFixed(4)),
      unschedulable,
      overcommitted,
      goal_per_s: GOAL_PER_S,
      ok,
    }),
  );
}

main();
