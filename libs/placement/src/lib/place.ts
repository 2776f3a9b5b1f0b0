import type { FilterCounts } from './filter';
import { FILTER_NAMES, formatUnschedulable } from './filter';
import type { PreparedNodes } from './prepared-nodes';
import { Code } from './prepared-nodes';
import type { PlacementSettings } from './settings';
import { resolveSettings } from './settings';
import { SpreadIndex } from './spread-index';
import type { PodRequest } from './types';

export type PlacementResult =
  | {
      kind: 'placed';
      nodeId: string;
      score: number;
      /** How many nodes passed every filter. */
      feasible: number;
    }
  | { kind: 'unschedulable'; reason: string; counts: FilterCounts };

export interface PlaceOptions {
  /** Pods already placed, for the spread penalty (none when omitted). */
  spread?: SpreadIndex;
  /** Partial settings are completed with DEFAULT_PLACEMENT_SETTINGS; pass `resolveSettings()` output to skip that. */
  settings?: Partial<PlacementSettings>;
  /** Uniform in [0, 1); `Math.random` when omitted. Called once per decision when more than one candidate is kept. */
  random?: () => number;
}

const NO_TAINT_VERDICT = 0;
const NO_SCHEDULE = 1;
const PREFER_NO_SCHEDULE = 2;

function checkPod(pod: PodRequest): void {
  if (!Number.isFinite(pod.vcpus) || pod.vcpus < 0 || !Number.isFinite(pod.memoryMiB) || pod.memoryMiB < 0) {
    throw new RangeError(`pod ${pod.id}: vcpus and memoryMiB must be finite numbers ≥ 0`);
  }
}

/**
 * Places one pod: filters every node (first failed filter counted per node), scores the feasible ones (bin-pack,
 * minus spread and PreferNoSchedule penalties) keeping the best `topK`, and picks one of those within `topKTolerance` of the best at random. One pass
 * over the nodes' columns; nothing is allocated per node. Pure apart from `random`; the caller reserves the
 * capacity (conditional UPDATE, see `reservationFor`), then calls `nodes.update()` and `spread.add()`.
 */
export function place(pod: PodRequest, nodes: PreparedNodes, options: PlaceOptions = {}): PlacementResult {
  checkPod(pod);
  const settings = resolveSettings(options.settings);
  const n = nodes.size;
  const counts = nodes.counts;
  counts.fill(0);

  // Node selector → (column, value id) pairs; a key or value no node has makes every node fail it.
  const selectorKeys = Object.keys(pod.nodeSelector);
  const selectorColumns: Int32Array[] = [];
  const selectorValues: number[] = [];
  let selectorImpossible = false;
  for (const key of selectorKeys) {
    const column = nodes.labelColumns.get(key);
    const value = nodes.valueIds.get(pod.nodeSelector[key] as string);
    if (!column || value === undefined) selectorImpossible = true;
    else {
      selectorColumns.push(column);
      selectorValues.push(value);
    }
  }
  const selectorCount = selectorColumns.length;

  // Verdict per distinct taint, once per decision.
  const verdict = nodes.taintVerdict;
  nodes.taintTable.forEach((taint, t) => {
    let tolerated = false;
    for (const tol of pod.tolerations) {
      if (tol.key !== taint.key || (tol.effect !== undefined && tol.effect !== taint.effect)) continue;
      if (tol.operator === 'Exists' || (tol.value ?? '') === taint.value) {
        tolerated = true;
        break;
      }
    }
    verdict[t] = tolerated ? NO_TAINT_VERDICT : taint.effect === 'NoSchedule' ? NO_SCHEDULE : PREFER_NO_SCHEDULE;
  });

  // Spread: the group's pods per node (by index) and per failure domain (by label value id).
  const group = options.spread?.byKey(SpreadIndex.key(pod.tenantId, pod.labels));
  const spreadNode = nodes.spreadNode;
  const spreadDomain = nodes.spreadDomain;
  const domainColumn = nodes.labelColumns.get(settings.failureDomainLabel);
  const touched: number[] = [];
  if (group) {
    for (const [nodeId, c] of group) {
      const i = nodes.indexOf(nodeId);
      if (i < 0) continue;
      spreadNode[i] = c;
      touched.push(i);
      const d = domainColumn ? (domainColumn[i] as number) : -1;
      if (d >= 0) spreadDomain[d] = (spreadDomain[d] as number) + c;
    }
  }
  const hasSpread = touched.length > 0;

  const podVcpus = pod.vcpus;
  const podMemory = pod.memoryMiB + settings.vmOverheadMiB;
  const binpackHalf = settings.binpackWeight / 2;
  const spreadWeight = settings.spreadWeight;
  const preferPenalty = settings.preferNoSchedulePenalty;
  const k = settings.topK;
  nodes.ensureTopK(k);
  const topIndex = nodes.topIndex;
  const topScore = nodes.topScore;
  let kept = 0;
  let feasible = 0;

  const { status, capVcpus, capMemoryMiB, capPods, allocVcpus, allocMemoryMiB, allocPods, taintIds, taintStart } =
    nodes;

  node: for (let i = 0; i < n; i++) {
    const s = status[i] as number;
    if (s !== Code.Ok) {
      counts[s]++;
      continue;
    }
    if (selectorImpossible) {
      counts[Code.NodeSelector]++;
      continue;
    }
    for (let j = 0; j < selectorCount; j++) {
      if ((selectorColumns[j] as Int32Array)[i] !== selectorValues[j]) {
        counts[Code.NodeSelector]++;
        continue node;
      }
    }
    let prefer = 0;
    for (let j = taintStart[i] as number, end = taintStart[i + 1] as number; j < end; j++) {
      const v = verdict[taintIds[j] as number];
      if (v === NO_SCHEDULE) {
        counts[Code.UntoleratedTaint]++;
        continue node;
      }
      if (v === PREFER_NO_SCHEDULE) prefer++;
    }
    const cpuAfter = (allocVcpus[i] as number) + podVcpus;
    const cpuCap = capVcpus[i] as number;
    if (cpuAfter > cpuCap) {
      counts[Code.InsufficientVcpus]++;
      continue;
    }
    const memAfter = (allocMemoryMiB[i] as number) + podMemory;
    const memCap = capMemoryMiB[i] as number;
    if (memAfter > memCap) {
      counts[Code.InsufficientMemory]++;
      continue;
    }
    if ((allocPods[i] as number) + 1 > (capPods[i] as number)) {
      counts[Code.TooManyPods]++;
      continue;
    }
    feasible++;

    let score = binpackHalf * ((cpuCap > 0 ? cpuAfter / cpuCap : 1) + (memCap > 0 ? memAfter / memCap : 1));
    if (hasSpread) {
      const onNode = spreadNode[i] as number;
      const d = domainColumn ? (domainColumn[i] as number) : -1;
      score -= spreadWeight * (onNode + 0.5 * (d >= 0 ? (spreadDomain[d] as number) : onNode));
    }
    if (prefer > 0) score -= preferPenalty * prefer;

    // Keep the best k, best first; strict comparison so the earlier node wins a tie.
    if (kept < k || score > (topScore[kept - 1] as number)) {
      let pos = kept < k ? kept++ : kept - 1;
      while (pos > 0 && score > (topScore[pos - 1] as number)) {
        topScore[pos] = topScore[pos - 1] as number;
        topIndex[pos] = topIndex[pos - 1] as number;
        pos--;
      }
      topScore[pos] = score;
      topIndex[pos] = i;
    }
  }

  if (hasSpread) {
    for (const i of touched) {
      spreadNode[i] = 0;
      const d = domainColumn ? (domainColumn[i] as number) : -1;
      if (d >= 0) spreadDomain[d] = 0;
    }
  }

  if (kept === 0) {
    const out = {} as FilterCounts;
    FILTER_NAMES.forEach((name, idx) => {
      out[name] = counts[idx + 1] as number;
    });
    return { kind: 'unschedulable', reason: formatUnschedulable(n, out), counts: out };
  }
  // Candidates: the kept nodes within the tolerance of the best (they are sorted best first).
  let candidates = 1;
  const floor = (topScore[0] as number) - settings.topKTolerance;
  while (candidates < kept && (topScore[candidates] as number) >= floor) candidates++;
  let pick = 0;
  if (candidates > 1) pick = Math.min(candidates - 1, Math.floor((options.random ?? Math.random)() * candidates));
  return {
    kind: 'placed',
    nodeId: nodes.ids[topIndex[pick] as number] as string,
    score: topScore[pick] as number,
    feasible,
  };
}
