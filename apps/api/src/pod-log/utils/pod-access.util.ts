import type { PrismaClient } from '@caas/db';
import { PodLogException, PodLogExceptionCode } from '../pod-log.exception';
import { POD_LOG_LIMITS } from './pod-log-limits';

/**
 * Refuses a pod the tenant does not own with the same NOT_FOUND as a pod that does not exist, so that
 * neither logs nor events nor the answer itself tell another tenant's pod ids apart from random ones.
 */
export async function assertTenantPod(prisma: PrismaClient, tenantId: string, podId: string): Promise<void> {
  await tenantPodNode(prisma, tenantId, podId);
}

/** As `assertTenantPod`; answers the node the pod is placed on now (null when it is not placed). */
export async function tenantPodNode(prisma: PrismaClient, tenantId: string, podId: string): Promise<string | null> {
  const pod = await prisma.pod.findFirst({ where: { id: podId, tenantId }, select: { nodeId: true } });
  if (pod === null) throw new PodLogException(PodLogExceptionCode.POD_NOT_FOUND, 'Pod not found.');
  return pod.nodeId;
}

/**
 * The nodes whose log streams may hold the pod's output: the node it is placed on now, and every node a
 * `Scheduled` event of the pod names (the placement history, written by the scheduler), most recent first,
 * at most `maxLogNodes`. A node the pod was never placed on is never read: a node can write any of its own
 * keys, so its streams are trusted only for the pods the control plane gave it.
 */
export async function podLogNodes(prisma: PrismaClient, tenantId: string, podId: string): Promise<string[]> {
  const current = await tenantPodNode(prisma, tenantId, podId);
  const scheduled = await prisma.event.findMany({
    where: { podId, tenantId, reason: 'Scheduled', nodeId: { not: null } },
    select: { nodeId: true },
    orderBy: { createdAt: 'desc' },
    distinct: ['nodeId'],
    take: POD_LOG_LIMITS.maxLogNodes,
  });
  const nodes = new Set<string>();
  if (current !== null) nodes.add(current);
  for (const { nodeId } of scheduled) if (nodeId !== null) nodes.add(nodeId);
  return [...nodes].slice(0, POD_LOG_LIMITS.maxLogNodes);
}
