export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule';

/** A node taint (`Node.taints`). A taint without value matches an `Equal` toleration whose value is empty. */
export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect;
}

/**
 * A pod toleration (`Pod.spec.tolerations`). `Equal`: key and value match; `Exists`: key matches, any value.
 * Without `effect` it tolerates both effects. Tolerations are tenant input: which taints a tenant may tolerate
 * (tenant-dedicated pools) is the API's admission decision, not this library's.
 */
/**
 * The taint of a tenant-dedicated pool: `caas.dev/tenant=<tenant id>:NoSchedule` on the pool's nodes (set through
 * the join token). Every pod tolerates the taint naming its own tenant and no other, so a dedicated pool takes only
 * its tenant's pods; tenants never write tolerations themselves.
 */
export const TENANT_POOL_TAINT_KEY = 'caas.dev/tenant';

/** The toleration every pod of `tenantId` carries. */
export const tenantPoolToleration = (tenantId: string): Toleration => ({
  key: TENANT_POOL_TAINT_KEY,
  operator: 'Equal',
  value: tenantId,
});

export interface Toleration {
  key: string;
  operator: 'Equal' | 'Exists';
  value?: string;
  effect?: TaintEffect;
}

export interface Resources {
  vcpus: number;
  memoryMiB: number;
  pods: number;
}

/** A node as the scheduler reads it (`Node` row: status READY → `ready`, labels, taints, capacity*, allocated*). */
export interface NodeInfo {
  id: string;
  name: string;
  ready: boolean;
  cordoned: boolean;
  draining: boolean;
  diskPressure: boolean;
  labels: Readonly<Record<string, string>>;
  taints: readonly Taint[];
  capacity: Resources;
  allocated: Resources;
}

/** A pod to place (`Pod` row: vcpus, memoryMiB, labels; `spec.nodeSelector`, `spec.tolerations`). */
export interface PodRequest {
  id: string;
  tenantId: string;
  vcpus: number;
  memoryMiB: number;
  labels: Readonly<Record<string, string>>;
  nodeSelector: Readonly<Record<string, string>>;
  tolerations: readonly Toleration[];
}
