import type { Prisma } from '@caas/db';
import type { Data, GqlResponse, TestApi } from '../../__tests__/support/test-api';
import { dataOf, uniqueSlug } from '../../__tests__/support/test-api';

/** Shared by the pod integration specs and the role matrix. */

export const CONTAINER_FIELDS = `name image command args env { name value secret } workingDir user cpuLimit memoryLimitMiB
  phase exitCode signal restartCount reason startedAt finishedAt`;

export const POD_FIELDS = `id name labels { key value } phase desiredState reason message vcpus memoryMiB restartPolicy ip
  nodeName accelerator imageDigests { image digest } generation observedGeneration createdAt scheduledAt startedAt
  finishedAt containers { ${CONTAINER_FIELDS} }`;

export const CREATE_POD = `mutation ($input: CreatePodInput!) { createPod(input: $input) { ${POD_FIELDS} } }`;
export const GET_POD = `query ($id: ID!) { pod(id: $id) { ${POD_FIELDS} } }`;
export const LIST_PODS = `query ($first: Int, $after: String, $labelSelector: LabelSelectorInput) {
  pods(first: $first, after: $after, labelSelector: $labelSelector) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${POD_FIELDS} } }
  }
}`;
export const LIST_EVENTS = `query ($podId: ID, $first: Int, $after: String) {
  events(podId: $podId, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id type reason message podId createdAt } }
  }
}`;
export const podMutation = (name: 'stopPod' | 'startPod' | 'restartPod' | 'deletePod') =>
  `mutation ($id: ID!) { ${name}(id: $id) { ${POD_FIELDS} } }`;

/** A small valid pod; `overrides` replace top-level fields. */
export function podInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: uniqueSlug('pod'),
    vcpus: 1,
    memoryMiB: 128,
    containers: [{ name: 'main', image: 'registry.example.com/team/app:1.0' }],
    ...overrides,
  };
}

export async function createPod(api: TestApi, token: string, overrides: Record<string, unknown> = {}): Promise<Data> {
  return dataOf(await api.gql(CREATE_POD, { input: podInput(overrides) }, token)).createPod;
}

/** Simulates the scheduler: writes the pod row directly. */
export async function setPod(api: TestApi, podId: string, data: Prisma.PodUpdateInput): Promise<void> {
  await api.prisma.pod.update({ where: { id: podId }, data });
}

/** A node to place pods on, for the phases that have one. */
export async function createNode(api: TestApi): Promise<{ id: string; name: string }> {
  return api.prisma.node.create({
    data: {
      name: uniqueSlug('node'),
      capacityVcpus: 64,
      capacityMemoryMiB: 262_144,
      capacityPods: 100,
      underlayAddress: '192.0.2.10',
      labels: { rack: 'r1' },
    },
    select: { id: true, name: true },
  });
}

export interface RowCounts {
  pods: number;
  containers: number;
  ipAllocations: number;
  outbox: number;
  events: number;
  usedPods: number;
  usedVcpus: number;
  usedMemoryMiB: number;
}

/** Everything a pod operation may write for a tenant (whole tables for containers, outbox and events). */
export async function rowCounts(api: TestApi, tenantId: string): Promise<RowCounts> {
  const [pods, containers, ipAllocations, outbox, events, tenant] = await Promise.all([
    api.prisma.pod.count({ where: { tenantId } }),
    api.prisma.container.count(),
    api.prisma.ipAllocation.count({ where: { tenantId } }),
    api.prisma.outboxMessage.count(),
    api.prisma.event.count(),
    api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } }),
  ]);
  return {
    pods,
    containers,
    ipAllocations,
    outbox,
    events,
    usedPods: tenant.usedPods,
    usedVcpus: tenant.usedVcpus,
    usedMemoryMiB: tenant.usedMemoryMiB,
  };
}

export function errorMessage(response: GqlResponse): string {
  return response.body.errors?.[0]?.message ?? '';
}
