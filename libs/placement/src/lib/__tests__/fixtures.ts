import type { NodeInfo, PodRequest } from '../types';

export const ZONE = 'topology.caas.dev/zone';

export function node(id: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id,
    name: `node-${id}`,
    ready: true,
    cordoned: false,
    draining: false,
    diskPressure: false,
    labels: {},
    taints: [],
    capacity: { vcpus: 16, memoryMiB: 32768, pods: 100 },
    allocated: { vcpus: 0, memoryMiB: 0, pods: 0 },
    ...overrides,
  };
}

export function pod(overrides: Partial<PodRequest> = {}): PodRequest {
  return {
    id: 'pod-1',
    tenantId: 'tenant-a',
    vcpus: 1,
    memoryMiB: 512,
    labels: { app: 'web' },
    nodeSelector: {},
    tolerations: [],
    ...overrides,
  };
}
