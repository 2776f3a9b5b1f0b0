import type { PrismaClient } from '@caas/db';
import { PodLogException, PodLogExceptionCode } from '../pod-log.exception';

/**
 * Refuses a pod the tenant does not own with the same NOT_FOUND as a pod that does not exist, so that
 * neither logs nor events nor the answer itself tell another tenant's pod ids apart from random ones.
 */
export async function assertTenantPod(prisma: PrismaClient, tenantId: string, podId: string): Promise<void> {
  const pod = await prisma.pod.findFirst({ where: { id: podId, tenantId }, select: { id: true } });
  if (pod === null) throw new PodLogException(PodLogExceptionCode.POD_NOT_FOUND, 'Pod not found.');
}
