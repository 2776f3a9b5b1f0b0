import type { CreatedTenant, Data, GqlResponse, TestApi } from './support/test-api';
import { dataOf, startTestApi } from './support/test-api';

/**
 * The validation corpus of network policies, through the API: every refusal is BAD_USER_INPUT with a message
 * that starts with the field it is about, and writes nothing (no policy row, no outbox row). The many finer
 * cases of the rules themselves are unit-tested in libs/network-policy-model.
 */
let api: TestApi;
let tenant: CreatedTenant;
let existing: Data;

const CREATE = 'mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id generation } }';
const UPDATE =
  'mutation ($id: ID!, $input: UpdateNetworkPolicyInput!) { updateNetworkPolicy(id: $id, input: $input) { id generation } }';

beforeAll(async () => {
  api = await startTestApi();
  tenant = await api.createTenant();
  existing = dataOf(
    await api.gql(
      CREATE,
      { input: { name: 'existing', podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] } },
      tenant.ownerToken,
    ),
  ).createNetworkPolicy;
});

afterAll(async () => {
  await api?.close();
});

/** Everything a refused request could have written. */
async function footprint() {
  const [policies, outbox] = await Promise.all([
    api.prisma.networkPolicy.findMany({ orderBy: { id: 'asc' } }),
    api.prisma.outboxMessage.findMany({ orderBy: { id: 'asc' } }),
  ]);
  return { policies, outbox };
}

const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));
const base = (overrides: Data = {}): Data => ({ name: 'candidate', podSelector: {}, ...overrides });
const ipPeer = (cidr: string, except?: string[]) => ({ ipBlock: { cidr, except } });
const labels = (n: number) => times(n, (i) => ({ key: `k${i}`, value: 'v' }));
/** A second peer, so paths show that the index is the peer's own. */
const fromSecond = (peer: Data) => base({ ingress: [{ from: [{ podSelector: {} }, peer] }] });
const port = (p: Data) => base({ ingress: [{ ports: [p] }] });

/** [what, input, field the message must start with, a fragment the message must contain] */
const CORPUS: [string, Data, string, string][] = [
  // names
  ['an empty name', base({ name: '' }), 'name', 'must not be empty'],
  ['an upper-case name', base({ name: 'Web' }), 'name', 'DNS label'],
  ['a name with an underscore', base({ name: 'web_1' }), 'name', 'DNS label'],
  ['a name with a dot', base({ name: 'web.internal' }), 'name', 'DNS label'],
  ['a name starting with a dash', base({ name: '-web' }), 'name', 'DNS label'],
  ['a name ending with a dash', base({ name: 'web-' }), 'name', 'DNS label'],
  ['a name with spaces around it', base({ name: ' web ' }), 'name', 'DNS label'],
  ['a 64-character name', base({ name: 'a'.repeat(64) }), 'name', 'at most 63'],
  // labels
  [
    'an empty label key',
    base({ podSelector: { matchLabels: [{ key: '', value: 'v' }] } }),
    'podSelector.matchLabels[0].key',
    'must not be empty',
  ],
  [
    'a label key with a space',
    base({ podSelector: { matchLabels: [{ key: 'my app', value: 'v' }] } }),
    'podSelector.matchLabels[0].key',
    'label name',
  ],
  [
    'a label key name over 63',
    base({ podSelector: { matchLabels: [{ key: 'k'.repeat(64), value: 'v' }] } }),
    'podSelector.matchLabels[0].key',
    'label name',
  ],
  [
    'a bad label key prefix',
    base({ podSelector: { matchLabels: [{ key: 'Ex_ample/app', value: 'v' }] } }),
    'podSelector.matchLabels[0].key',
    'prefix',
  ],
  [
    'a label value with a slash',
    base({ podSelector: { matchLabels: [{ key: 'app', value: 'a/b' }] } }),
    'podSelector.matchLabels[0].value',
    'must be empty or',
  ],
  [
    'a label value over 63',
    base({ podSelector: { matchLabels: [{ key: 'app', value: 'v'.repeat(64) }] } }),
    'podSelector.matchLabels[0].value',
    'must be empty or',
  ],
  [
    'a label key given twice',
    base({
      podSelector: {
        matchLabels: [
          { key: 'app', value: 'a' },
          { key: 'app', value: 'b' },
        ],
      },
    }),
    'podSelector.matchLabels[1].key',
    'already given',
  ],
  [
    '33 labels in the policy selector',
    base({ podSelector: { matchLabels: labels(33) } }),
    'podSelector.matchLabels',
    'at most 32 labels; got 33',
  ],
  [
    '33 labels in a peer selector',
    fromSecond({ podSelector: { matchLabels: labels(33) } }),
    'ingress[0].from[1].podSelector.matchLabels',
    'at most 32',
  ],
  [
    'a bad label in an egress peer',
    base({ egress: [{ to: [{ podSelector: { matchLabels: [{ key: 'a b', value: '' }] } }] }] }),
    'egress[0].to[0].podSelector.matchLabels[0].key',
    'label name',
  ],
  // CIDRs
  [
    'a CIDR with host bits set',
    fromSecond(ipPeer('10.0.0.1/24')),
    'ingress[0].from[1].ipBlock.cidr',
    'host bits set; the network is 10.0.0.0/24',
  ],
  ['a zero-padded prefix', fromSecond(ipPeer('10.0.0.0/08')), 'ingress[0].from[1].ipBlock.cidr', 'write 10.0.0.0/8'],
  [
    'an address without a prefix',
    fromSecond(ipPeer('10.0.0.1')),
    'ingress[0].from[1].ipBlock.cidr',
    'write 10.0.0.1/32',
  ],
  ['a prefix above 32', fromSecond(ipPeer('10.0.0.0/33')), 'ingress[0].from[1].ipBlock.cidr', 'IPv4 CIDR'],
  ['a leading-zero octet', fromSecond(ipPeer('010.0.0.0/8')), 'ingress[0].from[1].ipBlock.cidr', 'IPv4 CIDR'],
  ['an octet above 255', fromSecond(ipPeer('10.0.0.256/32')), 'ingress[0].from[1].ipBlock.cidr', 'IPv4 CIDR'],
  ['a CIDR that is not one', fromSecond(ipPeer('everything')), 'ingress[0].from[1].ipBlock.cidr', 'IPv4 CIDR'],
  ['an IPv6 CIDR', fromSecond(ipPeer('2001:db8::/32')), 'ingress[0].from[1].ipBlock.cidr', 'IPv6 is not supported yet'],
  [
    'an IPv6 CIDR in egress',
    base({ egress: [{ to: [ipPeer('::/0')] }] }),
    'egress[0].to[0].ipBlock.cidr',
    'IPv6 is not supported yet',
  ],
  [
    'an except outside its cidr',
    fromSecond(ipPeer('10.0.0.0/16', ['10.1.0.0/24'])),
    'ingress[0].from[1].ipBlock.except[0]',
    '10.1.0.0/24 is not inside the cidr 10.0.0.0/16',
  ],
  [
    'an except larger than its cidr',
    fromSecond(ipPeer('10.0.0.0/16', ['10.0.0.0/8'])),
    'ingress[0].from[1].ipBlock.except[0]',
    'is not inside',
  ],
  [
    'an except equal to its cidr',
    fromSecond(ipPeer('10.0.0.0/16', ['10.0.1.0/24', '10.0.0.0/16'])),
    'ingress[0].from[1].ipBlock.except[1]',
    'strictly smaller',
  ],
  [
    'a non-canonical except',
    fromSecond(ipPeer('10.0.0.0/16', ['10.0.0.1/24'])),
    'ingress[0].from[1].ipBlock.except[0]',
    'host bits set',
  ],
  ['an IPv6 except', fromSecond(ipPeer('10.0.0.0/16', ['fe80::/10'])), 'ingress[0].from[1].ipBlock.except[0]', 'IPv6'],
  [
    '65 excepts',
    fromSecond(
      ipPeer(
        '10.0.0.0/16',
        times(65, (i) => `10.0.${i}.0/24`),
      ),
    ),
    'ingress[0].from[1].ipBlock.except',
    'at most 64',
  ],
  [
    'an except outside its cidr in a deny rule',
    base({ deny: [{ direction: 'EGRESS', priority: 1, peers: [ipPeer('192.168.0.0/16', ['10.0.0.0/24'])] }] }),
    'deny[0].peers[0].ipBlock.except[0]',
    'is not inside',
  ],
  // peers
  [
    'a peer with both podSelector and ipBlock',
    fromSecond({ podSelector: {}, ipBlock: { cidr: '10.0.0.0/8' } }),
    'ingress[0].from[1]',
    'exactly one of podSelector or ipBlock, not both',
  ],
  ['a peer with neither', fromSecond({}), 'ingress[0].from[1]', 'neither is set'],
  [
    'an egress peer with neither',
    base({ egress: [{ to: [{ podSelector: null, ipBlock: null }] }] }),
    'egress[0].to[0]',
    'neither is set',
  ],
  [
    'a deny peer with both',
    base({
      deny: [{ direction: 'INGRESS', priority: 1, peers: [{ podSelector: {}, ipBlock: { cidr: '10.0.0.0/8' } }] }],
    }),
    'deny[0].peers[0]',
    'not both',
  ],
  // ports
  ['port 0', port({ port: 0 }), 'ingress[0].ports[0].port', 'between 1 and 65535; got 0'],
  ['port 65536', port({ port: 65536 }), 'ingress[0].ports[0].port', 'between 1 and 65535; got 65536'],
  ['a negative port', port({ port: -1 }), 'ingress[0].ports[0].port', 'between 1 and 65535'],
  ['endPort below port', port({ port: 8080, endPort: 8000 }), 'ingress[0].ports[0].endPort', 'at least port (8080)'],
  ['endPort without port', port({ endPort: 8000 }), 'ingress[0].ports[0].endPort', 'needs port'],
  ['endPort 65536', port({ port: 1, endPort: 65536 }), 'ingress[0].ports[0].endPort', 'between 1 and 65535'],
  [
    'an egress port 0',
    base({ egress: [{ ports: [{ port: 53 }, { protocol: 'UDP', port: 0 }] }] }),
    'egress[0].ports[1].port',
    'got 0',
  ],
  [
    'a deny endPort without port',
    base({ deny: [{ direction: 'INGRESS', priority: 1, ports: [{ endPort: 1 }] }] }),
    'deny[0].ports[0].endPort',
    'needs port',
  ],
  // counts
  ['65 ingress rules', base({ ingress: times(65, () => ({})) }), 'ingress', 'at most 64 rules; got 65'],
  ['65 egress rules', base({ egress: times(65, () => ({})) }), 'egress', 'at most 64 rules; got 65'],
  [
    '65 deny rules',
    base({ deny: times(65, (i) => ({ direction: 'INGRESS', priority: i })) }),
    'deny',
    'at most 64 deny rules; got 65',
  ],
  [
    '65 peers in a rule',
    base({ ingress: [{}, { from: times(65, () => ({ podSelector: {} })) }] }),
    'ingress[1].from',
    'at most 64 peers; got 65',
  ],
  [
    '65 ports in a rule',
    base({ egress: [{ ports: times(65, (i) => ({ port: i + 1 })) }] }),
    'egress[0].ports',
    'at most 64 ports; got 65',
  ],
  // deny rules
  [
    'a deny priority below 0',
    base({ deny: [{ direction: 'INGRESS', priority: -1 }] }),
    'deny[0].priority',
    'between 0 and 1000; got -1',
  ],
  [
    'a deny priority above 1000',
    base({ deny: [{ direction: 'EGRESS', priority: 1001 }] }),
    'deny[0].priority',
    'between 0 and 1000; got 1001',
  ],
  // policy types
  [
    'a policy type listed twice',
    base({ policyTypes: ['EGRESS', 'EGRESS'] }),
    'policyTypes[1]',
    'EGRESS is listed twice',
  ],
  [
    'egress rules with policyTypes [INGRESS]',
    base({ policyTypes: ['INGRESS'], egress: [{ to: [] }] }),
    'policyTypes',
    'egress rules are given but policyTypes does not include EGRESS',
  ],
  [
    'ingress rules with policyTypes [EGRESS]',
    base({ policyTypes: ['EGRESS'], ingress: [{}] }),
    'policyTypes',
    'ingress rules are given but policyTypes does not include INGRESS',
  ],
];

function expectRefused(response: GqlResponse, field: string, fragment: string): void {
  expect(response.body.data).toBeNull();
  const error = response.body.errors?.[0];
  expect({ code: error?.extensions.code, reason: error?.extensions.reason }).toEqual({
    code: 'BAD_USER_INPUT',
    reason: 'INVALID_NETWORK_POLICY_INPUT',
  });
  expect(error?.message.startsWith(`${field}: `)).toBe(true);
  expect(error?.message).toContain(fragment);
}

describe('createNetworkPolicy refuses, naming the field and writing nothing:', () => {
  it.each(CORPUS)('%s', async (_what, input, field, fragment) => {
    const before = await footprint();
    const response = await api.gql(CREATE, { input }, tenant.ownerToken);
    expectRefused(response, field, fragment);
    expect(await footprint()).toEqual(before);
  });
});

describe('updateNetworkPolicy refuses the same, leaving the policy as it was:', () => {
  it.each(CORPUS.filter((_, i) => i % 4 === 0))('%s', async (_what, input, field, fragment) => {
    const before = await footprint();
    const response = await api.gql(UPDATE, { id: existing.id, input }, tenant.ownerToken);
    expectRefused(response, field, fragment);
    expect(await footprint()).toEqual(before);
  });
});

describe('refusals by the GraphQL types themselves are BAD_USER_INPUT too, naming the field', () => {
  it.each([
    ['an unknown protocol', port({ protocol: 'ICMP' }), ['"input.ingress[0].ports[0].protocol"']],
    ['a port that is not a number', port({ port: 'http' }), ['"input.ingress[0].ports[0].port"']],
    ['a port beyond a 32-bit integer', port({ port: 2 ** 31 }), ['"input.ingress[0].ports[0].port"']],
    ['an unknown policy type', base({ policyTypes: ['FORWARD'] }), ['"input.policyTypes[0]"']],
    ['a deny rule without a priority', base({ deny: [{ direction: 'INGRESS' }] }), ['"input.deny[0]"', '"priority"']],
    ['a deny rule without a direction', base({ deny: [{ priority: 1 }] }), ['"input.deny[0]"', '"direction"']],
    ['no podSelector', { name: 'x' }, ['"podSelector"']],
    [
      'an ipBlock without a cidr',
      fromSecond({ ipBlock: { except: [] } }),
      ['"input.ingress[0].from[1].ipBlock"', '"cidr"'],
    ],
  ])('%s', async (_what, input, fragments) => {
    const before = await footprint();
    const response = await api.gql(CREATE, { input }, tenant.ownerToken);
    expect(response.body.data).toBeNull();
    expect(response.body.errors?.[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'INVALID_QUERY' });
    for (const fragment of fragments) expect(response.body.errors?.[0].message).toContain(fragment);
    expect(await footprint()).toEqual(before);
  });
});

describe('several problems at once', () => {
  it('are all reported, each naming its field, and nothing is written', async () => {
    const before = await footprint();
    const response = await api.gql(
      CREATE,
      {
        input: {
          name: 'Bad Name',
          podSelector: {},
          ingress: [{ from: [{}], ports: [{ port: 0 }] }],
          deny: [{ direction: 'INGRESS', priority: 5000 }],
        },
      },
      tenant.ownerToken,
    );
    expect(response.body.data).toBeNull();
    const message = response.body.errors?.[0].message ?? '';
    const positions = ['name: ', 'ingress[0].from[0]: ', 'ingress[0].ports[0].port: ', 'deny[0].priority: '].map(
      (field) => message.indexOf(field),
    );
    expect(positions[0]).toBe(0);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(new Set(positions).size).toBe(4);
    expect(await footprint()).toEqual(before);
  });

  it('still accepts the limits themselves (64 rules, 32 labels, ports 1 and 65535, priorities 0 and 1000)', async () => {
    const response = await api.gql(
      CREATE,
      {
        input: {
          name: 'at-the-limits',
          podSelector: { matchLabels: labels(32) },
          ingress: times(64, (i) => ({
            from: [ipPeer(`10.${i}.0.0/16`, [`10.${i}.255.255/32`])],
            ports: [{ port: 1 }],
          })),
          egress: [{ ports: [{ port: 1, endPort: 65535 }] }],
          deny: [
            { direction: 'INGRESS', priority: 0 },
            { direction: 'EGRESS', priority: 1000 },
          ],
        },
      },
      tenant.ownerToken,
    );
    expect(dataOf(response).createNetworkPolicy.generation).toBe(1);
  });
});
