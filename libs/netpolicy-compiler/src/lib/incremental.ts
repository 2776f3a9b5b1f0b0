import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import { selectsLabels } from '@caas/network-policy-model';
import type { CompileInput } from './compile';
import { NAMES, byName, compilePodChains, compilePolicy, orderedPods, orderedPolicies } from './compile';
import type { Chain, Ruleset } from './ir';

const isPodChain = (chain: Chain): boolean => chain.name.startsWith('pod_in_') || chain.name.startsWith('pod_out_');
const isBaseChain = (chain: Chain): boolean => chain.name === NAMES.egressChain || chain.name === NAMES.ingressChain;

/**
 * The ruleset after ONE policy changed (added, updated or removed; the pods did not change), derived from the
 * previous ruleset instead of compiling the whole tenant again: the policy's own chains, sets and counters are
 * replaced, and only the chains of local pods that the old or the new version selects are rebuilt. The result
 * equals `compile(next)` (tested); `diff(previous, result)` then gives the transaction to apply.
 *
 * `before` is the policy as the previous ruleset was compiled with it (`null` when it is new); `next` is the
 * whole new input (the changed policy included, or left out when deleted).
 */
export function recompilePolicy(
  previous: Ruleset,
  before: NormalizedNetworkPolicy | null,
  next: CompileInput,
  policyName: string,
): Ruleset {
  const pods = orderedPods(next.pods);
  const policies = orderedPolicies(next.policies);
  const after = policies.find((p) => p.name === policyName) ?? null;
  const empty = { chains: [] as Chain[], sets: [], counters: [] as string[] };
  const old = before === null ? empty : compilePolicy(before, pods);
  const now = after === null ? empty : compilePolicy(after, pods);

  const oldChains = new Set(old.chains.map((c) => c.name));
  const oldSets = new Set(old.sets.map((s) => s.name));
  const oldCounters = new Set(old.counters);

  const selectedByEither = (labels: Readonly<Record<string, string>>): boolean =>
    (before !== null && selectsLabels(before.podSelector, labels)) ||
    (after !== null && selectsLabels(after.podSelector, labels));
  const rebuilt = new Map<string, Chain>();
  for (const pod of pods) {
    if (pod.node !== next.host || !selectedByEither(pod.labels)) continue;
    for (const chain of compilePodChains(pod, policies, next.egressDefault)) rebuilt.set(chain.name, chain);
  }

  const policyChains = [
    ...previous.chains.filter((c) => !isPodChain(c) && !isBaseChain(c) && !oldChains.has(c.name)),
    ...now.chains,
  ].sort(byName);
  const podChains = previous.chains.filter(isPodChain).map((c) => rebuilt.get(c.name) ?? c);
  return {
    ...previous,
    counters: [...previous.counters.filter((c) => !oldCounters.has(c)), ...now.counters].sort((a, b) =>
      a < b ? -1 : a > b ? 1 : 0,
    ),
    sets: [...previous.sets.filter((s) => !oldSets.has(s.name)), ...now.sets].sort(byName),
    chains: [...policyChains, ...podChains, ...previous.chains.filter(isBaseChain)],
  };
}
