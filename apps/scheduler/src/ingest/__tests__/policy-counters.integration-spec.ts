import { useBackends } from '../../__tests__/support/backends';
import { IngestHarness } from './support/ingest-harness';
import { randomBytes, randomUUID } from 'node:crypto';
import type { PolicyCountersReport } from '@caas/queue-contracts';
import { STATUS_FIELD, nodeKeys } from '@caas/queue-contracts';
import type { StatusIngest } from '../status-ingest';

jest.setTimeout(60_000);

const backends = useBackends('policy-counters', 8);
const harness = new IngestHarness(backends, 'policy-counters');
let prefix: string;

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE policy_counters, events, outbox, pods, nodes, tenants CASCADE');
  harness.reset();
  prefix = harness.prefix;
});

afterEach(() => harness.stop());

const newIngest = (): StatusIngest => harness.newIngest();

async function drain(ingest: StatusIngest): Promise<void> {
  while ((await ingest.readOnce()) > 0);
}

async function seedTenant(): Promise<string> {
  const id = randomUUID();
  await backends.db.pool.query(
    `INSERT INTO tenants (id, slug, "displayName", subnet, "updatedAt") VALUES ($1, $2, 'T', '10.0.0.0/16', now())`,
    [id, `t-${id.slice(0, 8)}`],
  );
  return id;
}

async function seedNode(epoch = 1): Promise<string> {
  const node = await backends.db.prisma.node.create({
    data: {
      name: `node-${randomBytes(3).toString('hex')}`,
      status: 'READY',
      epoch,
      capacityVcpus: 16,
      capacityMemoryMiB: 32_768,
      capacityPods: 20,
    },
  });
  return node.id;
}

type Counters = Record<string, { packets: number; bytes: number }>;

let clock = Date.parse('2026-12-01T10:00:00.000Z');

/** A report sent one second after the previous one (unless `sentAt` is given). */
function report(epoch: number, tenants: Record<string, Counters>, sentAt?: string): PolicyCountersReport {
  clock += 1000;
  return {
    kind: 'policyCounters',
    epoch,
    sentAt: sentAt ?? new Date(clock).toISOString(),
    tenants: Object.entries(tenants).map(([tenantId, counters]) => ({ tenantId, counters })),
  };
}

/** What the agent does: append to its own status stream. */
async function send(nodeId: string, body: unknown): Promise<void> {
  await backends.redis.xadd(nodeKeys(nodeId, prefix).status, '*', STATUS_FIELD, JSON.stringify(body));
}

async function stored(): Promise<string[]> {
  const { rows } = await backends.db.pool.query<{
    nodeId: string;
    tenantId: string;
    name: string;
    packets: string;
    bytes: string;
  }>(`SELECT "nodeId", "tenantId", name, packets::text, bytes::text FROM policy_counters`);
  return rows.map((r) => `${r.nodeId} ${r.tenantId} ${r.name} ${r.packets} ${r.bytes}`).sort();
}

const row = (nodeId: string, tenantId: string, name: string, packets: number, bytes: number) =>
  `${nodeId} ${tenantId} ${name} ${packets} ${bytes}`;

describe('status ingest: policy counters', () => {
  it("stores a node's totals; the next report replaces them; a tenant no longer reported goes, for that node only", async () => {
    const [t1, t2] = [await seedTenant(), await seedTenant()];
    const [a, b] = [await seedNode(), await seedNode()];
    const ingest = newIngest();
    await ingest.refreshNodes();

    await send(
      a,
      report(1, {
        [t1]: { np_web_in_0: { packets: 10, bytes: 1000 }, deny_web_0: { packets: 1, bytes: 60 } },
        [t2]: { np_db_out_0: { packets: 5, bytes: 500 } },
      }),
    );
    await send(b, report(1, { [t2]: { np_db_out_0: { packets: 7, bytes: 700 } } }));
    await drain(ingest);
    expect(await stored()).toEqual(
      [
        row(a, t1, 'np_web_in_0', 10, 1000),
        row(a, t1, 'deny_web_0', 1, 60),
        row(a, t2, 'np_db_out_0', 5, 500),
        row(b, t2, 'np_db_out_0', 7, 700),
      ].sort(),
    );

    // A's next report: new totals for t1 (one counter gone with its rule, one new), t2 no longer on A.
    await send(
      a,
      report(1, {
        [t1]: { np_web_in_0: { packets: 25, bytes: 2500 }, np_web_in_1: { packets: 2, bytes: 120 } },
      }),
    );
    await drain(ingest);
    expect(await stored()).toEqual(
      [
        row(a, t1, 'np_web_in_0', 25, 2500),
        row(a, t1, 'np_web_in_1', 2, 120),
        row(b, t2, 'np_db_out_0', 7, 700), // B's rows for t2 stay
      ].sort(),
    );
    expect(ingest.stats.policyCounters).toBe(3);

    // An empty report: the node runs no tenant any more.
    await send(a, report(1, {}));
    await drain(ingest);
    expect(await stored()).toEqual([row(b, t2, 'np_db_out_0', 7, 700)]);
  });

  it("a report in node A's stream is stored under A, whatever it says; nothing reaches node B's rows", async () => {
    const tenant = await seedTenant();
    const [a, b] = [await seedNode(), await seedNode()];
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(b, report(1, { [tenant]: { np_web_in_0: { packets: 3, bytes: 300 } } }));
    await drain(ingest);

    // A forges a report "from B" (extra fields are not part of the report; the key is the identity).
    await send(a, { ...report(1, { [tenant]: { np_web_in_0: { packets: 999, bytes: 999 } } }), nodeId: b });
    await drain(ingest);
    expect(await stored()).toEqual(
      [row(a, tenant, 'np_web_in_0', 999, 999), row(b, tenant, 'np_web_in_0', 3, 300)].sort(),
    );
  });

  it('drops a report of another epoch, of unknown tenants, and an older report replayed after a newer one', async () => {
    const tenant = await seedTenant();
    const a = await seedNode(3);
    const ingest = newIngest();
    await ingest.refreshNodes();

    await send(a, report(2, { [tenant]: { np_web_in_0: { packets: 1, bytes: 1 } } })); // an older epoch
    await send(a, report(4, { [tenant]: { np_web_in_0: { packets: 1, bytes: 1 } } })); // not (yet) the node's
    await drain(ingest);
    expect(await stored()).toEqual([]);
    expect(ingest.stats.droppedPolicyCounters).toBe(1); // the newest of the batch decides: one per node and batch

    const older = report(3, { [tenant]: { np_web_in_0: { packets: 5, bytes: 50 } } });
    await send(
      a,
      report(3, {
        [tenant]: { np_web_in_0: { packets: 8, bytes: 80 } },
        [randomUUID()]: { np_x_in_0: { packets: 1, bytes: 1 } }, // no such tenant: ignored
      }),
    );
    await drain(ingest);
    expect(await stored()).toEqual([row(a, tenant, 'np_web_in_0', 8, 80)]);

    // A replayed (claimed) older entry never moves the totals back.
    await send(a, older);
    await drain(ingest);
    expect(await stored()).toEqual([row(a, tenant, 'np_web_in_0', 8, 80)]);
  });

  it('keeps the rows of a node that became NOT_READY; deleting the node or the tenant removes them', async () => {
    const [t1, t2] = [await seedTenant(), await seedTenant()];
    const [a, b] = [await seedNode(), await seedNode()];
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(a, report(1, { [t1]: { np_web_in_0: { packets: 1, bytes: 10 } } }));
    await send(b, report(1, { [t2]: { np_web_in_0: { packets: 2, bytes: 20 } } }));
    await drain(ingest);

    await backends.db.pool.query(`UPDATE nodes SET status = 'NOT_READY', epoch = epoch + 1 WHERE id = $1`, [a]);
    await send(a, report(1, {})); // the returning node's old epoch: drops nothing
    await drain(ingest);
    expect(await stored()).toEqual([row(a, t1, 'np_web_in_0', 1, 10), row(b, t2, 'np_web_in_0', 2, 20)].sort());

    await backends.db.pool.query('DELETE FROM nodes WHERE id = $1', [a]);
    await backends.db.pool.query('DELETE FROM tenants WHERE id = $1', [t2]);
    expect(await stored()).toEqual([]);
  });
});
