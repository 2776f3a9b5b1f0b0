import type { PlacementSettings } from './settings';
import type { NodeInfo, PodRequest, Taint, Toleration } from './types';

/** The filters, in the order they run; a node that fails counts once, for the first filter it fails. */
export const FILTER_NAMES = [
  'notReady',
  'cordoned',
  'draining',
  'diskPressure',
  'nodeSelector',
  'untoleratedTaint',
  'insufficientVcpus',
  'insufficientMemory',
  'tooManyPods',
] as const;

export type FilterName = (typeof FILTER_NAMES)[number];

export type FilterCounts = Record<FilterName, number>;

/** The phrase for each filter in the unschedulable reason (`3 did not match the node selector`). */
export const FILTER_REASONS: Readonly<Record<FilterName, string>> = Object.freeze({
  notReady: 'not ready',
  cordoned: 'cordoned',
  draining: 'draining',
  diskPressure: 'disk pressure',
  nodeSelector: 'did not match the node selector',
  untoleratedTaint: 'had an untolerated taint',
  insufficientVcpus: 'insufficient vcpus',
  insufficientMemory: 'insufficient memory',
  tooManyPods: 'too many pods',
});

export function emptyCounts(): FilterCounts {
  return {
    notReady: 0,
    cordoned: 0,
    draining: 0,
    diskPressure: 0,
    nodeSelector: 0,
    untoleratedTaint: 0,
    insufficientVcpus: 0,
    insufficientMemory: 0,
    tooManyPods: 0,
  };
}

/**
 * `0/12 nodes are available: 5 insufficient memory, 4 cordoned, 3 did not match the node selector` — counts
 * largest first, ties in filter order, zero counts left out.
 */
export function formatUnschedulable(total: number, counts: FilterCounts): string {
  const parts = FILTER_NAMES.map((name, order) => ({ name, order, n: counts[name] }))
    .filter((p) => p.n > 0)
    .sort((a, b) => b.n - a.n || a.order - b.order)
    .map((p) => `${p.n} ${FILTER_REASONS[p.name]}`);
  return parts.length > 0
    ? `0/${total} nodes are available: ${parts.join(', ')}`
    : `0/${total} nodes are available: no nodes`;
}

/** Whether one toleration tolerates one taint. */
export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.key !== taint.key) return false;
  if (toleration.effect !== undefined && toleration.effect !== taint.effect) return false;
  switch (toleration.operator) {
    case 'Exists':
      return true;
    case 'Equal':
      return (toleration.value ?? '') === (taint.value ?? '');
  }
}

export function isTolerated(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => tolerates(t, taint));
}

export function matchesNodeSelector(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const key of Object.keys(selector)) {
    if (!Object.prototype.hasOwnProperty.call(labels, key) || labels[key] !== selector[key]) return false;
  }
  return true;
}

/**
 * The filters on one plain node, readable rather than fast: the first filter the node fails, or `undefined` when
 * the pod may go there. `place()` runs the same checks over `PreparedNodes` in one pass.
 */
export function filterNode(
  pod: PodRequest,
  node: NodeInfo,
  settings: Pick<PlacementSettings, 'vmOverheadMiB'>,
): FilterName | undefined {
  if (!node.ready) return 'notReady';
  if (node.cordoned) return 'cordoned';
  if (node.draining) return 'draining';
  if (node.diskPressure) return 'diskPressure';
  if (!matchesNodeSelector(pod.nodeSelector, node.labels)) return 'nodeSelector';
  if (node.taints.some((t) => t.effect === 'NoSchedule' && !isTolerated(pod.tolerations, t))) {
    return 'untoleratedTaint';
  }
  if (node.allocated.vcpus + pod.vcpus > node.capacity.vcpus) return 'insufficientVcpus';
  if (node.allocated.memoryMiB + pod.memoryMiB + settings.vmOverheadMiB > node.capacity.memoryMiB) {
    return 'insufficientMemory';
  }
  if (node.allocated.pods + 1 > node.capacity.pods) return 'tooManyPods';
  return undefined;
}
