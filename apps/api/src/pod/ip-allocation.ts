import type { Prisma } from '@caas/db';
import { formatAddress, hostRange, parseCidr } from '@caas/ipv4';
import { PodException, PodExceptionCode } from './pod.exception';

/**
 * Pod addresses come from the tenant subnet. The network and broadcast addresses are never used, and the
 * first host address (10.x.y.1 in 10.x.y.0/24) is reserved for the tenant gateway: the address each
 * node's tenant namespace answers on as the pods' default route. Pods get the rest, lowest free first.
 */
export function podAddressRange(subnet: string): { first: string; last: string } {
  const cidr = parseCidr(subnet);
  if (cidr === null) throw new Error(`tenant subnet ${subnet} is not a canonical CIDR`);
  const hosts = hostRange(cidr);
  return { first: formatAddress(hosts.first + 1), last: formatAddress(hosts.last) };
}

/** Attempts against concurrent allocators (another replica, the scheduler) taking the same address. */
const ALLOCATION_ATTEMPTS = 8;

/**
 * Gives the pod the lowest free address of the subnet in one statement: find the first gap (the range
 * start, or one past an allocated address, that is itself free), insert it into `ip_allocations` — whose
 * primary key (tenantId, address) makes the address unique across every node and replica — and record
 * it on the pod (data-modifying CTEs run to completion whether or not the outer query reads them). A
 * concurrent insert of the same address makes the insert do nothing, and we try again.
 */
export async function allocatePodAddress(
  tx: Prisma.TransactionClient,
  tenantId: string,
  podId: string,
  subnet: string,
): Promise<string> {
  const { first, last } = podAddressRange(subnet);
  for (let attempt = 1; attempt <= ALLOCATION_ATTEMPTS; attempt++) {
    const [result] = await tx.$queryRaw<{ candidate: string | null; allocated: string | null }[]>`
      WITH candidate AS (
        SELECT c.address
          FROM (
            SELECT ${first}::inet AS address
            UNION ALL
            SELECT a.address + 1
              FROM ip_allocations a
             WHERE a."tenantId" = ${tenantId}::uuid AND a.address >= ${first}::inet AND a.address < ${last}::inet
          ) c
         WHERE c.address <= ${last}::inet
           AND NOT EXISTS (
             SELECT 1 FROM ip_allocations b WHERE b."tenantId" = ${tenantId}::uuid AND b.address = c.address
           )
         ORDER BY c.address
         LIMIT 1
      ), inserted AS (
        INSERT INTO ip_allocations ("tenantId", address, "podId")
        SELECT ${tenantId}::uuid, address, ${podId}::uuid FROM candidate
        ON CONFLICT DO NOTHING
        RETURNING address
      ), recorded AS (
        UPDATE pods SET ip = inserted.address, "updatedAt" = now()
          FROM inserted
         WHERE pods.id = ${podId}::uuid
        RETURNING pods.id
      )
      SELECT (SELECT host(address) FROM candidate) AS candidate,
             (SELECT host(address) FROM inserted) AS allocated`;
    if (result?.allocated) return result.allocated;
    if (!result?.candidate) {
      throw new PodException(
        PodExceptionCode.SUBNET_EXHAUSTED,
        `The tenant subnet ${subnet} has no free address left (${first} to ${last} are all in use).`,
      );
    }
  }
  throw new Error(`no address allocated for pod ${podId} after ${ALLOCATION_ATTEMPTS} attempts`);
}
