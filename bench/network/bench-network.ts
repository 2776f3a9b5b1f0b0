/**
 * `npm run bench:network`: what the node network costs on this machine.
 * - apply_full_ms: the whole `inet caas_tenant` of one host (1,000 pods on 10 hosts, 200 policies) applied with
 *   applyRuleset into a fresh namespace (median of BENCH_RUNS; goal ≤ 1000 ms);
 * - apply_one_change_ms: one policy changed, applied with applyChanges (median; goal ≤ 100 ms);
 * - vxlan_to_direct_ratio: iperf3 TCP throughput between two pod namespaces across a VXLAN path, over the same
 *   pair on a direct veth (goal ≥ 0.5).
 * Ends with ONE JSON line. Every namespace (`nbn<pid>…`) is deleted at the end, on failure and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { Cleanup } from '@caas/cluster-harness';
import type { Ruleset } from '@caas/netpolicy-compiler';
import { compile, recompilePolicy } from '@caas/netpolicy-compiler';
import { applyChanges, applyRuleset } from '@caas/node-network';
import { buildPaths, iperf, TENANT_MTU, vxlanTxBytes } from './throughput';
import { HOST, makePods, makePolicies, makePolicy } from './workload';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 10);
const CHANGE_RUNS = Number(process.env['BENCH_CHANGE_RUNS'] ?? 20);
const IPERF_SECONDS = Number(process.env['BENCH_IPERF_SECONDS'] ?? 3);
const IPERF_REPEATS = Number(process.env['BENCH_IPERF_REPEATS'] ?? 2);
const GOAL_FULL_MS = 1000;
const GOAL_CHANGE_MS = 100;
const GOAL_RATIO = 0.5;
const CHANGED = 42;

const log = (message: string): void => console.log(message);
const PREFIX = `nbn${process.pid}`;
const created: string[] = [];
const cleanup = new Cleanup((m) => console.error(m));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
const ms = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;
const fmt = (values: number[]): string =>
  `median ${median(values).toFixed(1)} ms (min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)}, n=${values.length})`;

/** A namespace for the nft figures, deleted by the clean-up (or now, through the returned function). */
function namespace(name: string): { ns: string; remove: () => Promise<void> } {
  const ns = `${PREFIX}${name}`;
  execFileSync('ip', ['netns', 'add', ns]);
  created.push(ns);
  const remove = cleanup.add(`netns ${ns}`, async () => {
    execFileSync('ip', ['netns', 'delete', ns]);
    created.splice(created.indexOf(ns), 1);
    await Promise.resolve();
  });
  return { ns, remove };
}

async function applyFigures(): Promise<{ full: number[]; change: number[]; ruleset: Ruleset; modes: Set<string> }> {
  const pods = makePods();
  const policies = makePolicies();
  const input = { policies, pods, host: HOST, egressDefault: 'ALLOW_NAT' as const };
  const ruleset = compile(input);
  const rules = ruleset.chains.reduce((n, c) => n + c.rules.length, 0);
  const elements = ruleset.sets.reduce((n, s) => n + s.elements.length, 0);
  log(
    `ruleset of ${HOST}: ${pods.filter((p) => p.node === HOST).length} local of ${pods.length} pods, ${policies.length} policies → ${ruleset.chains.length} chains, ${rules} rules, ${ruleset.sets.length} sets (${elements} elements), ${ruleset.counters.length} counters`,
  );

  const full: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const { ns, remove } = namespace(`f${i}`);
    const start = process.hrtime.bigint();
    await applyRuleset(ns, ruleset);
    if (i > 0) full.push(ms(start)); // the first run warms up nft and the page cache
    await remove();
  }
  log(`apply_full: ${fmt(full)}`);

  // One policy flips between two versions (a port changes), each step applied incrementally to the live table.
  const { ns } = namespace('c');
  await applyRuleset(ns, ruleset);
  const versions = [policies, policies.map((p, i) => (i === CHANGED ? makePolicy(CHANGED, 1) : p))];
  const change: number[] = [];
  const modes = new Set<string>();
  let live = ruleset;
  for (let i = 0; i < CHANGE_RUNS + 1; i++) {
    const before = versions[i % 2]?.[CHANGED] ?? null;
    const nextPolicies = versions[(i + 1) % 2] ?? policies;
    const next = recompilePolicy(live, before, { ...input, policies: nextPolicies }, `pol-0${CHANGED}`);
    const start = process.hrtime.bigint();
    const result = await applyChanges(ns, live, next);
    if (i > 0) change.push(ms(start));
    modes.add(result.mode);
    live = next;
  }
  log(`apply_one_change: ${fmt(change)} (modes: ${[...modes].join(', ')})`);
  return { full, change, ruleset, modes };
}

async function throughputFigures(): Promise<{ vxlan: number; direct: number }> {
  const path = await buildPaths(PREFIX, cleanup, created);
  const vxlan: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < IPERF_REPEATS; i++) {
    direct.push(await iperf(cleanup, path.podB, path.podA, path.directTarget, IPERF_SECONDS));
    const txBefore = vxlanTxBytes(path.tenantA);
    const bps = await iperf(cleanup, path.podB, path.podA, path.vxlanTarget, IPERF_SECONDS);
    // At least half of what iperf3 reports must have left through the VXLAN device, or the path is not the one meant.
    const crossed = vxlanTxBytes(path.tenantA) - txBefore;
    if (crossed < (bps / 8) * IPERF_SECONDS * 0.5) throw new Error(`only ${crossed} bytes crossed the VXLAN device`);
    vxlan.push(bps);
  }
  const gbit = (v: number[]): string => v.map((x) => (x / 1e9).toFixed(2)).join(', ');
  log(`iperf3 TCP ${IPERF_SECONDS} s × ${IPERF_REPEATS}, MTU ${TENANT_MTU}: direct veth ${gbit(direct)} Gbit/s`);
  log(`iperf3 TCP ${IPERF_SECONDS} s × ${IPERF_REPEATS}, MTU ${TENANT_MTU}: VXLAN path  ${gbit(vxlan)} Gbit/s`);
  return { vxlan: median(vxlan), direct: median(direct) };
}

async function main(): Promise<void> {
  cleanup.onSignals({
    lastResort: () => {
      for (const ns of created.splice(0)) {
        try {
          execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
        } catch {
          // gone already
        }
      }
    },
  });
  let summary: Record<string, unknown>;
  try {
    const { full, change, ruleset, modes } = await applyFigures();
    const { vxlan, direct } = await throughputFigures();
    const fullMs = median(full);
    const changeMs = median(change);
    const ratio = vxlan / direct;
    summary = {
      bench: 'network',
      pods: 1000,
      policies: 200,
      counters: ruleset.counters.length,
      apply_full_ms: Number(fullMs.toFixed(1)),
      apply_one_change_ms: Number(changeMs.toFixed(1)),
      apply_one_change_mode: [...modes].join(','),
      vxlan_gbps: Number((vxlan / 1e9).toFixed(2)),
      direct_gbps: Number((direct / 1e9).toFixed(2)),
      vxlan_to_direct_ratio: Number(ratio.toFixed(3)),
      apply_full_goal_ms: GOAL_FULL_MS,
      apply_one_change_goal_ms: GOAL_CHANGE_MS,
      vxlan_to_direct_ratio_goal: GOAL_RATIO,
      apply_full_ok: fullMs <= GOAL_FULL_MS,
      apply_one_change_ok: changeMs <= GOAL_CHANGE_MS,
      vxlan_to_direct_ratio_ok: ratio >= GOAL_RATIO,
    };
  } finally {
    await cleanup.run();
  }
  const leftover = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.startsWith(PREFIX));
  if (leftover.length > 0) throw new Error(`namespaces left behind: ${leftover.join(', ')}`);
  console.log(JSON.stringify(summary));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
