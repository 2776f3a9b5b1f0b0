import { randomBytes } from 'node:crypto';
import type { CreatedTenant, Data, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const COUNTERS = 'counters { direction rule packets bytes nodes }';
const GET = `query ($id: ID!) { networkPolicy(id: $id) { id name ${COUNTERS} } }`;
const LIST = `query { networkPolicies(first: 50) { totalCount edges { node { id name ${COUNTERS} } } } }`;
const CREATE = `mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id name } }`;

/** Ingress 2 rules, egress 1 rule, deny 1 rule (every list isolated). */
const input = (name: string) => ({
  name,
  podSelector: {},
  policyTypes: ['INGRESS', 'EGRESS'],
  ingress: [{ ports: [{ port: 80 }] }, { ports: [{ port: 443 }] }],
  egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }],
  deny: [{ direction: 'INGRESS', priority: 1, peers: [{ ipBlock: { cidr: '10.9.0.0/16' } }] }],
});

async function createPolicy(token: string, name: string): Promise<{ id: string; name: string }> {
  return dataOf(await api.gql(CREATE, { input: input(name) }, token)).createNetworkPolicy;
}

async function seedNode(): Promise<string> {
  const node = await api.prisma.node.create({
    data: {
      name: `node-${randomBytes(4).toString('hex')}`,
      status: 'READY',
      capacityVcpus: 8,
      capacityMemoryMiB: 8192,
      capacityPods: 10,
    },
  });
  return node.id;
}

/** What ingest writes: one node's totals for one tenant. */
async function store(nodeId: string, tenantId: string, counters: Record<string, [number, number]>): Promise<void> {
  for (const [name, [packets, bytes]] of Object.entries(counters)) {
    await api.prisma.policyCounter.create({
      data: { nodeId, tenantId, name, packets: BigInt(packets), bytes: BigInt(bytes), sentAt: new Date() },
    });
  }
}

const zeros = [
  { direction: 'INGRESS', rule: 0, packets: 0, bytes: 0, nodes: 0 },
  { direction: 'INGRESS', rule: 1, packets: 0, bytes: 0, nodes: 0 },
  { direction: 'EGRESS', rule: 0, packets: 0, bytes: 0, nodes: 0 },
  { direction: 'DENY', rule: 0, packets: 0, bytes: 0, nodes: 0 },
];

describe('NetworkPolicy.counters', () => {
  let owner: CreatedTenant;
  let other: CreatedTenant;
  let nodeA: string;
  let nodeB: string;

  beforeAll(async () => {
    owner = await api.createTenant();
    other = await api.createTenant();
    nodeA = await seedNode();
    nodeB = await seedNode();
  });

  it('reads 0 for every rule no node reported yet', async () => {
    const policy = await createPolicy(owner.ownerToken, 'fresh');
    const data = dataOf(await api.gql(GET, { id: policy.id }, owner.ownerToken));
    expect(data.networkPolicy.counters).toEqual(zeros);
  });

  it("sums the nodes' totals per rule for the owner, on networkPolicy and networkPolicies", async () => {
    const web = await createPolicy(owner.ownerToken, 'web');
    await createPolicy(owner.ownerToken, 'db');
    const big = 2 ** 40;
    await store(nodeA, owner.tenantId, {
      np_web_in_0: [10, 1000],
      np_web_in_1: [big, big * 100],
      deny_web_0: [3, 180],
      np_db_out_0: [7, 700],
      isolated_in_drop: [99, 9900], // not a rule of any policy
    });
    await store(nodeB, owner.tenantId, { np_web_in_0: [5, 500], np_web_out_0: [1, 60], deny_web_0: [2, 120] });
    // Another tenant's policy of the same name on the same nodes: never added to the owner's.
    await createPolicy(other.ownerToken, 'web');
    await store(nodeA, other.tenantId, { np_web_in_0: [1_000_000, 1_000_000] });

    const expectedWeb = [
      { direction: 'INGRESS', rule: 0, packets: 15, bytes: 1500, nodes: 2 },
      { direction: 'INGRESS', rule: 1, packets: big, bytes: big * 100, nodes: 1 },
      { direction: 'EGRESS', rule: 0, packets: 1, bytes: 60, nodes: 1 },
      { direction: 'DENY', rule: 0, packets: 5, bytes: 300, nodes: 2 },
    ];
    const expectedDb = [
      zeros[0],
      zeros[1],
      { direction: 'EGRESS', rule: 0, packets: 7, bytes: 700, nodes: 1 },
      zeros[3],
    ];
    expect(dataOf(await api.gql(GET, { id: web.id }, owner.ownerToken)).networkPolicy.counters).toEqual(expectedWeb);

    const list = dataOf(await api.gql(LIST, {}, owner.ownerToken)).networkPolicies;
    const byName = Object.fromEntries(list.edges.map((e: Data) => [e.node.name, e.node.counters]));
    expect(byName).toEqual({ fresh: zeros, web: expectedWeb, db: expectedDb });

    // The other tenant sees its own counters only (same policy name, same nodes).
    const theirs = dataOf(await api.gql(LIST, {}, other.ownerToken)).networkPolicies;
    expect(theirs.edges.map((e: Data) => e.node.counters)).toEqual([
      [{ direction: 'INGRESS', rule: 0, packets: 1_000_000, bytes: 1_000_000, nodes: 1 }, zeros[1], zeros[2], zeros[3]],
    ]);
  });

  it("another tenant cannot reach the owner's policy, so neither its counters", async () => {
    const policy = await createPolicy(owner.ownerToken, 'secret');
    await store(nodeA, owner.tenantId, { np_secret_in_0: [42, 4200] });
    const response = await api.gql(GET, { id: policy.id }, other.ownerToken);
    expectError(response, 'NOT_FOUND', 'NETWORK_POLICY_NOT_FOUND');
    expect(JSON.stringify(response)).not.toContain('4200');
    const theirs = dataOf(await api.gql(LIST, {}, other.ownerToken)).networkPolicies;
    expect(theirs.edges.map((e: Data) => e.node.name)).toEqual(['web']);
  });

  it('lists only the rules the policy has (here one egress rule); a VIEWER reads them', async () => {
    const created = dataOf(
      await api.gql(
        CREATE,
        { input: { ...input('egress-only'), policyTypes: ['EGRESS'], ingress: [], deny: [] } },
        owner.ownerToken,
      ),
    ).createNetworkPolicy;
    const viewer = await api.tokenWithRole(owner.ownerToken, 'VIEWER');
    const data = dataOf(await api.gql(GET, { id: created.id }, viewer));
    expect(data.networkPolicy.counters).toEqual([zeros[2]]);
  });
});
