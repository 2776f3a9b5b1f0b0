import type { Prisma } from '@caas/db';
import { AuthException, AuthExceptionCode } from '../common/errors/common.exception';
import { PodException, PodExceptionCode } from './pod.exception';

/**
 * Quota on the tenant row (ADR-001): usage changes only through conditional updates in the transaction
 * that creates or deletes a pod. The UPDATE row-locks that one tenant until commit, which serialises its
 * pod creations (and so its address allocations) and nobody else's.
 */

export interface PodSize {
  vcpus: number;
  memoryMiB: number;
}

interface QuotaRow {
  status: string;
  maxPods: number;
  maxVcpus: number;
  maxMemoryMiB: number;
  usedPods: number;
  usedVcpus: number;
  usedMemoryMiB: number;
}

/** How often a refused charge is tried again when a re-read shows that it fits now (a pod was deleted meanwhile). */
const CHARGE_ATTEMPTS = 3;

/** Charges one pod of this size to the tenant, or throws POD_QUOTA_EXCEEDED naming every limit it exceeds. Returns the tenant subnet. */
export async function chargeQuota(tx: Prisma.TransactionClient, tenantId: string, size: PodSize): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const charged = await tx.$queryRaw<{ subnet: string }[]>`
      UPDATE tenants
         SET "usedPods" = "usedPods" + 1,
             "usedVcpus" = "usedVcpus" + ${size.vcpus},
             "usedMemoryMiB" = "usedMemoryMiB" + ${size.memoryMiB},
             "updatedAt" = now()
       WHERE id = ${tenantId}::uuid
         AND status = 'ACTIVE'
         AND "usedPods" + 1 <= "maxPods"
         AND "usedVcpus" + ${size.vcpus} <= "maxVcpus"
         AND "usedMemoryMiB" + ${size.memoryMiB} <= "maxMemoryMiB"
      RETURNING subnet`;
    if (charged.length === 1) return charged[0].subnet;

    const [row] = await tx.$queryRaw<QuotaRow[]>`
      SELECT status, "maxPods", "maxVcpus", "maxMemoryMiB", "usedPods", "usedVcpus", "usedMemoryMiB"
        FROM tenants WHERE id = ${tenantId}::uuid`;
    if (row === undefined) throw new Error(`tenant ${tenantId} vanished while creating a pod`);
    if (row.status !== 'ACTIVE') {
      throw new AuthException(AuthExceptionCode.TENANT_SUSPENDED, 'The tenant is suspended.');
    }
    const exceeded = [
      row.usedPods + 1 > row.maxPods && `pods (${row.usedPods} of ${row.maxPods} used, the pod needs 1)`,
      row.usedVcpus + size.vcpus > row.maxVcpus &&
        `vcpus (${row.usedVcpus} of ${row.maxVcpus} used, the pod needs ${size.vcpus})`,
      row.usedMemoryMiB + size.memoryMiB > row.maxMemoryMiB &&
        `memoryMiB (${row.usedMemoryMiB} of ${row.maxMemoryMiB} used, the pod needs ${size.memoryMiB})`,
    ].filter((item): item is string => typeof item === 'string');
    if (exceeded.length > 0 || attempt >= CHARGE_ATTEMPTS) {
      throw new PodException(
        PodExceptionCode.POD_QUOTA_EXCEEDED,
        exceeded.length > 0
          ? `Quota exceeded: ${exceeded.join('; ')}.`
          : 'Quota exceeded: the tenant usage changed concurrently; retry.',
      );
    }
  }
}

/**
 * Gives back what a removed pod held. Conditional so that usage never goes below zero; if it would (the
 * invariant usage = Σ pods was already broken), it is clamped and reported, and reconcile repairs the rest.
 */
export async function releaseQuota(
  tx: Prisma.TransactionClient,
  tenantId: string,
  size: PodSize,
  onInconsistency: (message: string) => void,
): Promise<void> {
  const released = await tx.$executeRaw`
    UPDATE tenants
       SET "usedPods" = "usedPods" - 1,
           "usedVcpus" = "usedVcpus" - ${size.vcpus},
           "usedMemoryMiB" = "usedMemoryMiB" - ${size.memoryMiB},
           "updatedAt" = now()
     WHERE id = ${tenantId}::uuid
       AND "usedPods" >= 1
       AND "usedVcpus" >= ${size.vcpus}
       AND "usedMemoryMiB" >= ${size.memoryMiB}`;
  if (released === 1) return;
  onInconsistency(`tenant ${tenantId}: usage below the removed pod's size; clamped at zero`);
  await tx.$executeRaw`
    UPDATE tenants
       SET "usedPods" = GREATEST("usedPods" - 1, 0),
           "usedVcpus" = GREATEST("usedVcpus" - ${size.vcpus}, 0),
           "usedMemoryMiB" = GREATEST("usedMemoryMiB" - ${size.memoryMiB}, 0),
           "updatedAt" = now()
     WHERE id = ${tenantId}::uuid`;
}
