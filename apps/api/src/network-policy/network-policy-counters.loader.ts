import { Inject, Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import type { PrismaClient } from '@caas/db';
import { allowCounterName, denyName } from '@caas/netpolicy-compiler';
import { PRISMA } from '../common/infra/tokens';
import type { NetworkPolicy } from './dtos/network-policy.dto';
import type { NetworkPolicyRuleCounter } from './dtos/network-policy-counter.dto';

/** One counter name of one tenant. */
export interface CounterKey {
  tenantId: string;
  name: string;
}

export interface CounterTotal {
  packets: number;
  bytes: number;
  nodes: number;
}

const ZERO: CounterTotal = { packets: 0, bytes: 0, nodes: 0 };

/** The rules of a policy that have an nftables counter, in list order, with the compiler's counter names. */
export function ruleCounterNames(
  policy: Pick<NetworkPolicy, 'name' | 'policyTypes' | 'ingress' | 'egress' | 'deny'>,
): { direction: NetworkPolicyRuleCounter['direction']; rule: number; name: string }[] {
  // As the compiler: allow rules only for the isolated directions (policyTypes); deny rules always.
  const ingress = policy.policyTypes.includes('INGRESS') ? policy.ingress : [];
  const egress = policy.policyTypes.includes('EGRESS') ? policy.egress : [];
  return [
    ...ingress.map((_, rule) => ({
      direction: 'INGRESS' as const,
      rule,
      name: allowCounterName(policy.name, 'in', rule),
    })),
    ...egress.map((_, rule) => ({
      direction: 'EGRESS' as const,
      rule,
      name: allowCounterName(policy.name, 'out', rule),
    })),
    ...policy.deny.map((_, rule) => ({ direction: 'DENY' as const, rule, name: denyName(policy.name, rule) })),
  ];
}

/**
 * The per-rule counter totals of the policies one request resolves, summed over nodes (ADR-009 "Reports"), in
 * one query per tenant (so one per request). Request-scoped through a WeakMap on the GraphQL context, like
 * ContainerLoader. Keys carry the tenant id and the query filters on it: a name alone never reaches another
 * tenant's counters (names repeat across tenants: policy names are per tenant).
 */
@Injectable()
export class NetworkPolicyCountersLoader {
  private readonly loaders = new WeakMap<object, DataLoader<CounterKey, CounterTotal, string>>();

  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}

  forRequest(context: object): DataLoader<CounterKey, CounterTotal, string> {
    let loader = this.loaders.get(context);
    if (loader === undefined) {
      loader = new DataLoader((keys) => this.loadBatch(keys), {
        cacheKeyFn: ({ tenantId, name }) => `${tenantId}:${name}`,
        maxBatchSize: 5000,
      });
      this.loaders.set(context, loader);
    }
    return loader;
  }

  /** Public so that tests can count the queries. */
  async loadBatch(keys: readonly CounterKey[]): Promise<CounterTotal[]> {
    const byTenant = new Map<string, string[]>();
    for (const { tenantId, name } of keys) byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), name]);
    const found = new Map<string, CounterTotal>();
    await Promise.all(
      [...byTenant].map(async ([tenantId, names]) => {
        const rows = await this.prisma.$queryRaw<{ name: string; packets: string; bytes: string; nodes: number }[]>`
          SELECT name, sum(packets)::text AS packets, sum(bytes)::text AS bytes, count(*)::int AS nodes
            FROM policy_counters
           WHERE "tenantId" = ${tenantId}::uuid AND name = ANY(${names}::text[])
           GROUP BY name`;
        for (const row of rows) {
          found.set(`${tenantId}:${row.name}`, {
            packets: Number(row.packets),
            bytes: Number(row.bytes),
            nodes: row.nodes,
          });
        }
      }),
    );
    return keys.map(({ tenantId, name }) => found.get(`${tenantId}:${name}`) ?? ZERO);
  }
}
