import { parseDesiredSet } from '../desired-set';
import { nodeJoinRequestSchema } from '../node-contract';

const tenantId = '8e4b7f44-3f0a-4a53-9b7e-2f0c5a9d1c11';
const podId = '1b1f5f0e-6c1d-4c7a-8a3e-9d2f4b6a7c01';

const network = {
  tenantId,
  networkId: 4711,
  subnet: '10.0.0.0/24',
  gateway: '10.0.0.1',
  egressDefault: 'DENY',
  policies: [
    { name: 'deny-all', podSelector: { matchLabels: {} }, policyTypes: ['INGRESS'], ingress: [], egress: [], deny: [] },
  ],
  pods: [{ podId, address: '10.0.0.2', labels: { app: 'web' }, node: 'host-b' }],
  peers: [{ podId, address: '10.0.0.2', vtep: '192.0.2.12' }],
};

const set = (extra: Record<string, unknown>) =>
  JSON.stringify({
    nodeId: '2c9d7a31-5e8b-4f6a-9c1d-0e2f3a4b5c6d',
    version: '3',
    epoch: 1,
    cordoned: false,
    draining: false,
    pods: [],
    registryCredentials: [],
    generatedAt: new Date(0).toISOString(),
    ...extra,
  });

describe('desired set networks', () => {
  it('parses a set with networks and vteps, and a set written before them', () => {
    const parsed = parseDesiredSet(set({ networks: [network], vteps: ['192.0.2.12'] }));
    expect(parsed).toMatchObject({ ok: true, set: { networks: [network], vteps: ['192.0.2.12'] } });
    expect(parseDesiredSet(set({}))).toMatchObject({ ok: true, set: { pods: [] } });
  });

  it.each([
    ['a VNI out of range', { ...network, networkId: 16_777_216 }],
    ['a subnet that is no CIDR', { ...network, subnet: '10.0.0.0' }],
    ['a peer without a VTEP address', { ...network, peers: [{ podId, address: '10.0.0.2', vtep: 'host-b' }] }],
    ['a pod without a node', { ...network, pods: [{ podId, address: '10.0.0.2', labels: {} }] }],
    ['an unknown egress default', { ...network, egressDefault: 'ALLOW' }],
  ])('refuses %s', (_, bad) => {
    expect(parseDesiredSet(set({ networks: [bad] })).ok).toBe(false);
  });
});

describe('join underlayAddress', () => {
  const body = (underlayAddress?: unknown) => ({
    token: 'caasjoin_0123456789abcdef',
    name: 'host-a',
    capacity: { vcpus: 4, memoryMiB: 4096, pods: 10, diskBytes: 0 },
    ...(underlayAddress === undefined ? {} : { underlayAddress }),
  });

  it('is optional and a unicast IPv4 address', () => {
    expect(nodeJoinRequestSchema.parse(body()).underlayAddress).toBeNull();
    expect(nodeJoinRequestSchema.parse(body('192.0.2.11')).underlayAddress).toBe('192.0.2.11');
    for (const bad of ['0.0.0.0', '224.0.0.5', '255.255.255.255', '::1', 'host', 7]) {
      expect(nodeJoinRequestSchema.safeParse(body(bad)).success).toBe(false);
    }
  });
});
