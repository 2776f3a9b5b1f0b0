import { Field, ID, Int, ObjectType } from '@nestjs/graphql';
import type { Tenant as TenantRow } from '@caas/db';
import { EgressDefault, TenantStatus } from '../../common/graphql/enums';

@ObjectType({ description: "A tenant's limits and what its pods use now." })
export class Quota {
  @Field(() => Int) maxPods!: number;
  @Field(() => Int) maxVcpus!: number;
  @Field(() => Int) maxMemoryMiB!: number;
  @Field(() => Int) usedPods!: number;
  @Field(() => Int) usedVcpus!: number;
  @Field(() => Int) usedMemoryMiB!: number;
}

@ObjectType()
export class Tenant {
  @Field(() => ID) id!: string;
  @Field(() => String) slug!: string;
  @Field(() => String) displayName!: string;
  @Field(() => TenantStatus) status!: TenantStatus;
  @Field(() => Date, { nullable: true }) suspendedAt!: Date | null;
  @Field(() => String, { description: "The tenant's private IPv4 subnet (CIDR)." }) subnet!: string;
  @Field(() => Int, { description: "The tenant network's VXLAN network identifier." }) networkId!: number;
  @Field(() => EgressDefault) egressDefault!: EgressDefault;
  @Field(() => Quota) quota!: Quota;
  @Field(() => Date) createdAt!: Date;
}

export function toQuota(row: TenantRow): Quota {
  const { maxPods, maxVcpus, maxMemoryMiB, usedPods, usedVcpus, usedMemoryMiB } = row;
  return { maxPods, maxVcpus, maxMemoryMiB, usedPods, usedVcpus, usedMemoryMiB };
}

export function toTenant(row: TenantRow): Tenant {
  const { id, slug, displayName, status, suspendedAt, subnet, networkId, egressDefault, createdAt } = row;
  return {
    id,
    slug,
    displayName,
    status,
    suspendedAt,
    subnet,
    networkId,
    egressDefault,
    createdAt,
    quota: toQuota(row),
  };
}
