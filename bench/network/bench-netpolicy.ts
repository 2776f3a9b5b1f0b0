/**
 * `npm run bench:netpolicy`: compile time of one tenant's ruleset for one host (1,000 pods on 10 hosts, 200
 * policies) and of the incremental path for one changed policy (recompilePolicy + diff). Pure CPU; no nft.
 */
import { compile, diff, recompilePolicy, renderChanges, renderText } from '@caas/netpolicy-compiler';
import { makePods, makePolicy } from './workload';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 30);
const WARMUP = Number(process.env['BENCH_WARMUP'] ?? 5);
const GOAL_COMPILE_MS = 200;
const GOAL_INCREMENTAL_MS = 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function measure(fn: () => void): { median: number; min: number; max: number } {
  for (let i = 0; i < WARMUP; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return { median: median(times), min: Math.min(...times), max: Math.max(...times) };
}

function main(): void {
  const pods = makePods();
  const policies = Array.from({ length: 200 }, (_, i) => makePolicy(i));
  const changed = policies.map((p, i) => (i === 42 ? makePolicy(42, 1) : p));
  const input = { policies, pods, host: 'node-3', egressDefault: 'ALLOW_NAT' as const };

  const ruleset = compile(input);
  const rules = ruleset.chains.reduce((n, c) => n + c.rules.length, 0);
  const setElements = ruleset.sets.reduce((n, s) => n + s.elements.length, 0);
  const text = renderText(ruleset);

  const full = measure(() => compile(input));
  const render = measure(() => renderText(ruleset));
  let changes = 0;
  let script = '';
  const changedName = changed[42]?.name ?? '';
  const incremental = measure(() => {
    const next = recompilePolicy(ruleset, policies[42] ?? null, { ...input, policies: changed }, changedName);
    const d = diff(ruleset, next);
    changes = d.length;
    script = renderChanges(next, d);
  });

  const row = (name: string, m: { median: number; min: number; max: number }): string =>
    `| ${name.padEnd(28)} | ${m.median.toFixed(2).padStart(9)} | ${m.min.toFixed(2).padStart(8)} | ${m.max.toFixed(2).padStart(8)} |`;
  console.log(`pods 1000 (10 hosts), policies 200, host node-3; ${RUNS} runs after ${WARMUP} warm-up`);
  console.log(
    `ruleset: ${ruleset.chains.length} chains, ${rules} rules, ${ruleset.sets.length} sets (${setElements} elements), ${ruleset.counters.length} counters, ${text.length} bytes of nft text`,
  );
  console.log(`incremental: ${changes} changes, ${script.split('\n').length - 1} script lines`);
  console.log('| step                         | median ms |   min ms |   max ms |');
  console.log('| ---------------------------- | --------- | -------- | -------- |');
  console.log(row('full compile', full));
  console.log(row('render text', render));
  console.log(row('incremental (recompile + diff)', incremental));
  console.log(
    JSON.stringify({
      bench: 'netpolicy',
      pods: 1000,
      policies: 200,
      chains: ruleset.chains.length,
      rules,
      set_elements: setElements,
      counters: ruleset.counters.length,
      compile_ms: Number(full.median.toFixed(3)),
      render_ms: Number(render.median.toFixed(3)),
      incremental_ms: Number(incremental.median.toFixed(3)),
      incremental_changes: changes,
      compile_goal_ms: GOAL_COMPILE_MS,
      incremental_goal_ms: GOAL_INCREMENTAL_MS,
      compile_ok: full.median <= GOAL_COMPILE_MS,
      incremental_ok: incremental.median <= GOAL_INCREMENTAL_MS,
    }),
  );
}

main();
