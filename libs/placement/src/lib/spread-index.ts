/**
 * How many pods of one tenant with one label set sit on each node. The caller keeps it in step with placements
 * (`add` after a reservation succeeds, `remove` when the pod leaves the node). Per-failure-domain counts are
 * derived from the per-node counts with the nodes' current domain (`domainCounts`, and `place()` does the same),
 * so a relabeled node or another `failureDomainLabel` never leaves stale domain counts behind.
 */
export class SpreadIndex {
  private readonly groups = new Map<string, Map<string, number>>();

  /** Tenant + canonical labels (keys sorted): pods with equal labels in any key order share a group. */
  static key(tenantId: string, labels: Readonly<Record<string, string>>): string {
    const keys = Object.keys(labels).sort();
    let out = tenantId;
    for (const k of keys) out += `\u0000${k}\u0001${labels[k]}`;
    return out;
  }

  add(tenantId: string, labels: Readonly<Record<string, string>>, nodeId: string): void {
    const key = SpreadIndex.key(tenantId, labels);
    let group = this.groups.get(key);
    if (!group) {
      group = new Map();
      this.groups.set(key, group);
    }
    group.set(nodeId, (group.get(nodeId) ?? 0) + 1);
  }

  /** Removes one pod; false when the index had none of that group on the node. */
  remove(tenantId: string, labels: Readonly<Record<string, string>>, nodeId: string): boolean {
    const key = SpreadIndex.key(tenantId, labels);
    const group = this.groups.get(key);
    const n = group?.get(nodeId);
    if (!group || n === undefined) return false;
    if (n > 1) group.set(nodeId, n - 1);
    else {
      group.delete(nodeId);
      if (group.size === 0) this.groups.delete(key);
    }
    return true;
  }

  /** Node id → count for the group (undefined when the group has no pod anywhere). */
  nodeCounts(tenantId: string, labels: Readonly<Record<string, string>>): ReadonlyMap<string, number> | undefined {
    return this.groups.get(SpreadIndex.key(tenantId, labels));
  }

  /** @internal Lookup by a precomputed key (used by `place()`). */
  byKey(key: string): ReadonlyMap<string, number> | undefined {
    return this.groups.get(key);
  }

  countOn(tenantId: string, labels: Readonly<Record<string, string>>, nodeId: string): number {
    return this.nodeCounts(tenantId, labels)?.get(nodeId) ?? 0;
  }

  /** Failure domain → count for the group; nodes whose domain is undefined are left out. */
  domainCounts(
    tenantId: string,
    labels: Readonly<Record<string, string>>,
    domainOf: (nodeId: string) => string | undefined,
  ): Map<string, number> {
    const out = new Map<string, number>();
    for (const [nodeId, n] of this.nodeCounts(tenantId, labels) ?? []) {
      const d = domainOf(nodeId);
      if (d !== undefined) out.set(d, (out.get(d) ?? 0) + n);
    }
    return out;
  }

  /** Number of (tenant, labels) groups with at least one pod. */
  get groupCount(): number {
    return this.groups.size;
  }
}
