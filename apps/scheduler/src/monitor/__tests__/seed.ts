// Row seeding for the node monitor, drain, suspension and reconcile integration tests (plain SQL).
import { randomUUID } from 'node:crypto';
import type pg from 'pg';

export const OVERHEAD = 256;

let counter = 0;
const next = () => ++counter;

export async function seedTenant(
  pool: pg.Pool,
  values: { status?: 'ACTIVE' | 'SUSPENDED'; generation?: number } = {},
): Promise<string> {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO tenants (id, slug, "displayName", subnet, status, generation, "maxPods", "maxVcpus", "maxMemoryMiB",
                          "updatedAt")
     VALUES ($1, $2, 'T', '10.0.0.0/16', $3, $4, 1000, 1000, 1000000, now())`,
    [id, `t-${id.slice(0, 8)}`, values.status ?? 'ACTIVE', values.generation ?? 1],
  );
  return id;
}

export interface NodeSeed {
  status?: 'READY' | 'NOT_READY' | 'REGISTERED';
  /** Milliseconds from now (negative: expired); null: no lease. */
  leaseInMs?: number | null;
  epoch?: number;
  desiredVersion?: number;
  appliedVersion?: number;
  draining?: boolean;
}

export async function seedNode(pool: pg.Pool, seed: NodeSeed = {}): Promise<string> {
  const id = randomUUID();
  const lease = seed.leaseInMs === undefined ? -1_000 : seed.leaseInMs;
  await pool.query(
    `INSERT INTO nodes (id, name, status, epoch, "leaseExpiresAt", "desiredVersion", "appliedVersion", cordoned,
                        draining, "capacityVcpus", "capacityMemoryMiB", "capacityPods", "updatedAt")
     VALUES ($1, $2, $3, $4, CASE WHEN $5::int IS NULL THEN NULL ELSE now() + $5::int * interval '1 millisecond' END,
             $6, $7, $8, $8, 64, 65536, 100, now())`,
    [
      id,
      `node-${next()}`,
      seed.status ?? 'READY',
      seed.epoch ?? 1,
      lease,
      seed.desiredVersion ?? 1,
      seed.appliedVersion ?? 0,
      seed.draining ?? false,
    ],
  );
  return id;
}

export interface PodSeed {
  tenantId: string;
  nodeId?: string | null;
  phase?: string;
  desiredState?: 'RUNNING' | 'STOPPED' | 'DELETED';
  restartPolicy?: 'ALWAYS' | 'ON_FAILURE' | 'NEVER';
  vcpus?: number;
  memoryMiB?: number;
  generation?: number;
  placement?: number;
  lostCount?: number;
  ip?: string;
  /** Milliseconds ago. */
  updatedAgoMs?: number;
}

/**
 * Inserts a pod (with one container) and charges its tenant's quota and, if placed, its node's allocation, so
 * the invariants hold before the test acts.
 */
export async function seedPod(pool: pg.Pool, seed: PodSeed): Promise<string> {
  const id = randomUUID();
  const vcpus = seed.vcpus ?? 1;
  const memoryMiB = seed.memoryMiB ?? 512;
  const nodeId = seed.nodeId ?? null;
  const placed = nodeId !== null;
  await pool.query(
    `INSERT INTO pods (id, "tenantId", name, vcpus, "memoryMiB", "restartPolicy", generation, "desiredState", phase,
                       "nodeId", "nodeEpoch", placement, "lostCount", ip, "updatedAt")
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, (SELECT epoch FROM nodes WHERE id = $10), $11, $12, $13::inet,
             now() - $14::int * interval '1 millisecond')`,
    [
      id,
      seed.tenantId,
      `pod-${next()}`,
      vcpus,
      memoryMiB,
      seed.restartPolicy ?? 'ALWAYS',
      seed.generation ?? 1,
      seed.desiredState ?? 'RUNNING',
      seed.phase ?? (placed ? 'RUNNING' : 'PENDING'),
      nodeId,
      seed.placement ?? (placed ? 1 : 0),
      seed.lostCount ?? 0,
      seed.ip ?? null,
      seed.updatedAgoMs ?? 0,
    ],
  );
  await pool.query(
    `INSERT INTO containers ("podId", ordinal, name, image, command, args, phase)
     VALUES ($1, 0, 'main', 'docker.io/library/busybox:1.36', '{}', '{}', $2)`,
    [id, placed ? 'RUNNING' : 'WAITING'],
  );
  if (seed.ip !== undefined) {
    await pool.query(`INSERT INTO ip_allocations ("tenantId", address, "podId") VALUES ($1, $2, $3)`, [
      seed.tenantId,
      seed.ip,
      id,
    ]);
  }
  await pool.query(
    `UPDATE tenants SET "usedPods" = "usedPods" + 1, "usedVcpus" = "usedVcpus" + $2,
            "usedMemoryMiB" = "usedMemoryMiB" + $3 WHERE id = $1`,
    [seed.tenantId, vcpus, memoryMiB],
  );
  if (placed) {
    await pool.query(
      `UPDATE nodes SET "allocatedVcpus" = "allocatedVcpus" + $2, "allocatedMemoryMiB" = "allocatedMemoryMiB" + $3,
              "allocatedPods" = "allocatedPods" + 1 WHERE id = $1`,
      [nodeId, vcpus, memoryMiB + OVERHEAD],
    );
  }
  return id;
}
