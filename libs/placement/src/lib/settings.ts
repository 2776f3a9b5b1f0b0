export interface PlacementSettings {
  /** Memory each VM costs the host beyond its RAM (QEMU, page tables, virtio buffers), in MiB. */
  vmOverheadMiB: number;
  /** The node label whose value is the node's failure domain (nodes without it are their own domain). */
  failureDomainLabel: string;
  /**
   * Points for a node that would be 100 % allocated after the placement (average of the vCPU and memory ratios).
   * Positive: bin-pack (fullest node first); negative: least-allocated first.
   */
  binpackWeight: number;
  /**
   * Points removed per pod of the same tenant with the same labels already on the node; half as many per such pod
   * in the node's failure domain (the node's own included). The default equals `binpackWeight`: replicas spread
   * over nodes and domains before bin-packing decides.
   */
  spreadWeight: number;
  /** Points removed per `PreferNoSchedule` taint of the node that the pod does not tolerate. */
  preferNoSchedulePenalty: number;
  /** Pick at random among the best K feasible nodes (K = 1: always the single best, no random draw). */
  topK: number;
  /**
   * Only nodes scoring within this many points of the best take part in the random pick: near-equal nodes share
   * the load of concurrent schedulers, but a clearly worse node (one that breaks spread, or carries a
   * PreferNoSchedule taint) is never picked over a better one.
   */
  topKTolerance: number;
}

export const DEFAULT_PLACEMENT_SETTINGS: Readonly<PlacementSettings> = Object.freeze({
  vmOverheadMiB: 256,
  failureDomainLabel: 'topology.caas.dev/zone',
  binpackWeight: 100,
  spreadWeight: 100,
  preferNoSchedulePenalty: 100,
  topK: 3,
  topKTolerance: 10,
});

const resolved = new WeakSet<object>();

/**
 * Completes partial settings with the defaults and validates them. The result is frozen; passing it back (or to
 * `place()`) returns it as is, so a caller that resolves once pays nothing per decision.
 */
export function resolveSettings(settings: Partial<PlacementSettings> = {}): Readonly<PlacementSettings> {
  if (resolved.has(settings)) return settings as PlacementSettings;
  const s = { ...DEFAULT_PLACEMENT_SETTINGS, ...settings };
  if (!Number.isInteger(s.vmOverheadMiB) || s.vmOverheadMiB < 0) {
    throw new RangeError(`vmOverheadMiB must be a non-negative integer (got ${s.vmOverheadMiB})`);
  }
  if (!Number.isInteger(s.topK) || s.topK < 1) throw new RangeError(`topK must be an integer ≥ 1 (got ${s.topK})`);
  if (!Number.isFinite(s.topKTolerance) || s.topKTolerance < 0) {
    throw new RangeError(`topKTolerance must be a non-negative number (got ${s.topKTolerance})`);
  }
  for (const k of ['binpackWeight', 'spreadWeight', 'preferNoSchedulePenalty'] as const) {
    if (!Number.isFinite(s[k])) throw new RangeError(`${k} must be a finite number (got ${s[k]})`);
  }
  const out = Object.freeze(s);
  resolved.add(out);
  return out;
}
