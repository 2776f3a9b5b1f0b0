import { Inject, Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import type { Container as ContainerRow, PrismaClient } from '@caas/db';
import { PRISMA } from '../common/infra/tokens';

export interface ContainerKey {
  tenantId: string;
  podId: string;
}

/**
 * The containers of the pods one request resolves, in one query per tenant (so one per request: a
 * request acts for one tenant). Loaders live as long as the request's GraphQL context object (a WeakMap
 * keyed by it), which gives a request-scoped DataLoader without making the resolvers request-scoped.
 * Keys carry the tenant id and the query filters on it, so a pod id alone never reaches another tenant's rows.
 */
@Injectable()
export class ContainerLoader {
  private readonly loaders = new WeakMap<object, DataLoader<ContainerKey, ContainerRow[], string>>();

  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}

  forRequest(context: object): DataLoader<ContainerKey, ContainerRow[], string> {
    let loader = this.loaders.get(context);
    if (loader === undefined) {
      loader = new DataLoader((keys) => this.loadBatch(keys), {
        cacheKeyFn: ({ tenantId, podId }) => `${tenantId}:${podId}`,
        maxBatchSize: 1000,
      });
      this.loaders.set(context, loader);
    }
    return loader;
  }

  /** Public so that tests can count the queries. */
  async loadBatch(keys: readonly ContainerKey[]): Promise<ContainerRow[][]> {
    const byTenant = new Map<string, string[]>();
    for (const { tenantId, podId } of keys) byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), podId]);
    const found = new Map<string, ContainerRow[]>();
    await Promise.all(
      [...byTenant].map(async ([tenantId, podIds]) => {
        const rows = await this.prisma.container.findMany({
          where: { podId: { in: podIds }, pod: { tenantId } },
          orderBy: [{ podId: 'asc' }, { ordinal: 'asc' }],
        });
        for (const row of rows) {
          const key = `${tenantId}:${row.podId}`;
          found.set(key, [...(found.get(key) ?? []), row]);
        }
      }),
    );
    return keys.map(({ tenantId, podId }) => found.get(`${tenantId}:${podId}`) ?? []);
  }
}
