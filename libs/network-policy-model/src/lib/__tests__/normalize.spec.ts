import type { NetworkPolicyInput, NetworkPolicyIssue, PeerInput, PortInput } from '../normalize';
import { formatIssues, MAX_ISSUES, normalizeNetworkPolicy } from '../normalize';
import { networkPolicySpecSchema, parseNetworkPolicySpec, selectsLabels } from '../model';

const base = (overrides: Partial<NetworkPolicyInput> = {}): NetworkPolicyInput => ({
  name: 'web',
  podSelector: {},
  ...overrides,
});

function normalised(input: NetworkPolicyInput) {
  const result = normalizeNetworkPolicy(input);
  if (!result.ok) throw new Error(`expected a valid policy, got ${formatIssues(result.issues, result.omitted)}`);
  return result.policy;
}

function issuesOf(input: NetworkPolicyInput): NetworkPolicyIssue[] {
  const result = normalizeNetworkPolicy(input);
  if (result.ok) throw new Error(`expected refusal, got ${JSON.stringify(result.policy)}`);
  return result.issues;
}

/** The only issue's path (the test fails when there is not exactly one). */
function onlyIssue(input: NetworkPolicyInput): NetworkPolicyIssue {
  const issues = issuesOf(input);
  expect(issues).toHaveLength(1);
  return issues[0];
}

const fromPeer = (peer: PeerInput): NetworkPolicyInput => base({ ingress: [{ from: [peer] }] });
const ingressPort = (port: PortInput): NetworkPolicyInput => base({ ingress: [{ ports: [port] }] });
const ipBlock = (cidr: string, except?: string[]): NetworkPolicyInput => fromPeer({ ipBlock: { cidr, except } });
const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));

describe('normalizeNetworkPolicy: defaults and normal form', () => {
  it('fills every default for the smallest policy: selects all pods, isolates ingress, allows nothing', () => {
    expect(normalised(base())).toEqual({
      name: 'web',
      podSelector: { matchLabels: {} },
      policyTypes: ['INGRESS'],
      ingress: [],
      egress: [],
      deny: [],
    });
  });

  it('normalises a full policy: labels as a sorted map, TCP by default, endPort equal to port dropped', () => {
    const policy = normalised({
      name: 'db-access',
      podSelector: {
        matchLabels: [
          { key: 'tier', value: 'db' },
          { key: 'app.example.com/name', value: 'pg' },
        ],
      },
      ingress: [
        {
          from: [{ podSelector: { matchLabels: [{ key: 'app', value: 'api' }] } }, { ipBlock: { cidr: '10.0.0.0/8' } }],
          ports: [{ port: 5432 }, { protocol: 'UDP', port: 53, endPort: 53 }],
        },
      ],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }] }],
      deny: [{ direction: 'INGRESS', priority: 10, peers: [{ ipBlock: { cidr: '10.9.0.0/16' } }], ports: [] }],
    });
    expect(policy).toEqual({
      name: 'db-access',
      podSelector: { matchLabels: { 'app.example.com/name': 'pg', tier: 'db' } },
      policyTypes: ['INGRESS', 'EGRESS'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { app: 'api' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: [] } }],
          ports: [
            { protocol: 'TCP', port: 5432, endPort: null },
            { protocol: 'UDP', port: 53, endPort: null },
          ],
        },
      ],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }], ports: [] }],
      deny: [
        { direction: 'INGRESS', priority: 10, peers: [{ ipBlock: { cidr: '10.9.0.0/16', except: [] } }], ports: [] },
      ],
    });
    expect(Object.keys(policy.podSelector.matchLabels)).toEqual(['app.example.com/name', 'tier']);
    // The stored shape is exactly what the read-back schema accepts.
    const { name: _name, ...spec } = policy;
    expect(networkPolicySpecSchema.parse(spec)).toEqual(spec);
  });

  it('treats null lists as empty (absent from, to, ports, except, matchLabels)', () => {
    const policy = normalised(
      base({
        podSelector: { matchLabels: null },
        ingress: [{ from: null, ports: null }],
        egress: [{ to: [{ ipBlock: { cidr: '1.2.3.4/32', except: null } }], ports: null }],
        deny: null,
      }),
    );
    expect(policy.ingress).toEqual([{ from: [], ports: [] }]);
    expect(policy.egress).toEqual([{ to: [{ ipBlock: { cidr: '1.2.3.4/32', except: [] } }], ports: [] }]);
    expect(policy.deny).toEqual([]);
  });

  it('keeps an empty peer selector (every pod of the tenant) distinct from an empty rule', () => {
    const policy = normalised(base({ ingress: [{ from: [{ podSelector: {} }] }, {}] }));
    expect(policy.ingress).toEqual([
      { from: [{ podSelector: { matchLabels: {} } }], ports: [] },
      { from: [], ports: [] },
    ]);
  });

  it('keeps a port without a number (every port of the protocol) and real ranges', () => {
    const policy = normalised(base({ ingress: [{ ports: [{ protocol: 'SCTP' }, { port: 8000, endPort: 8100 }] }] }));
    expect(policy.ingress[0].ports).toEqual([
      { protocol: 'SCTP', port: null, endPort: null },
      { protocol: 'TCP', port: 8000, endPort: 8100 },
    ]);
  });

  it('is idempotent: normalising the read model of a normalised policy gives it again', () => {
    const first = normalised({
      name: 'p',
      podSelector: {
        matchLabels: [
          { key: 'b', value: '2' },
          { key: 'a', value: '' },
        ],
      },
      policyTypes: ['EGRESS', 'INGRESS'],
      egress: [{ to: [{ podSelector: {} }], ports: [{ port: 1, endPort: 65535 }] }],
    });
    const again = normalised({
      name: first.name,
      podSelector: {
        matchLabels: Object.entries(first.podSelector.matchLabels).map(([key, value]) => ({ key, value })),
      },
      policyTypes: first.policyTypes,
      egress: first.egress.map((rule) => ({ to: [{ podSelector: {} }], ports: rule.ports })),
    });
    expect(again).toEqual(first);
  });
});

describe('normalizeNetworkPolicy: policyTypes', () => {
  it.each([
    ['absent, no egress rules', undefined, {}, ['INGRESS']],
    ['null, egress rules', null, { egress: [{}] }, ['INGRESS', 'EGRESS']],
    ['empty list (Kubernetes: as absent)', [], { egress: [{}] }, ['INGRESS', 'EGRESS']],
    ['EGRESS only with egress rules', ['EGRESS'], { egress: [{}] }, ['EGRESS']],
    ['EGRESS only without rules (deny all egress)', ['EGRESS'], {}, ['EGRESS']],
    ['both in any order', ['EGRESS', 'INGRESS'], {}, ['INGRESS', 'EGRESS']],
    [
      'INGRESS only, egress deny rules (deny does not need a policy type)',
      ['INGRESS'],
      {
        deny: [{ direction: 'EGRESS', priority: 0 }],
      },
      ['INGRESS'],
    ],
  ] as const)('%s', (_label, policyTypes, rest, expected) => {
    expect(normalised(base({ policyTypes, ...rest })).policyTypes).toEqual(expected);
  });

  it('refuses egress rules with policyTypes [INGRESS], saying why', () => {
    const issue = onlyIssue(base({ policyTypes: ['INGRESS'], egress: [{ to: [] }] }));
    expect(issue.path).toBe('policyTypes');
    expect(issue.message).toMatch(/egress rules are given but policyTypes does not include EGRESS/);
  });

  it('refuses ingress rules with policyTypes [EGRESS]', () => {
    const issue = onlyIssue(base({ policyTypes: ['EGRESS'], ingress: [{}] }));
    expect(issue).toEqual({ path: 'policyTypes', message: expect.stringMatching(/does not include INGRESS/) });
  });

  it('refuses duplicates and unknown values', () => {
    expect(onlyIssue(base({ policyTypes: ['INGRESS', 'INGRESS'] }))).toEqual({
      path: 'policyTypes[1]',
      message: 'INGRESS is listed twice.',
    });
    expect(onlyIssue(base({ policyTypes: ['INGRESS', 'EGRESS', 'INGRESS'] })).path).toBe('policyTypes');
    expect(onlyIssue(base({ policyTypes: ['FORWARD'] })).path).toBe('policyTypes[0]');
  });
});

describe('normalizeNetworkPolicy: names and labels', () => {
  it.each(['a', 'web', 'web-1', '1st', 'a'.repeat(63), 'x-y-z0'])('accepts the name %s', (name) => {
    expect(normalised(base({ name })).name).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['upper case', 'Web'],
    ['underscore', 'web_1'],
    ['dot', 'web.internal'],
    ['leading dash', '-web'],
    ['trailing dash', 'web-'],
    ['space', 'web 1'],
    ['surrounding spaces', ' web '],
    ['64 characters', 'a'.repeat(64)],
    ['unicode', 'wéb'],
    ['a megabyte', 'a'.repeat(1 << 20)],
  ])('refuses a name with %s', (_label, name) => {
    expect(onlyIssue(base({ name })).path).toBe('name');
  });

  it.each([
    ['app', 'web'],
    ['app.kubernetes.io/name', 'my_app.v1-2'],
    ['example.com/Tier', ''],
    ['a', 'A'],
    [`${'p'.repeat(63)}.example/${'n'.repeat(63)}`, 'v'.repeat(63)],
    ['constructor', 'x'],
  ])('accepts the label %s=%s', (key, value) => {
    expect(normalised(base({ podSelector: { matchLabels: [{ key, value }] } })).podSelector.matchLabels).toEqual({
      [key]: value,
    });
  });

  it.each([
    ['an empty key', '', 'v', 'key'],
    ['a key with a space', 'my app', 'v', 'key'],
    ['a key starting with a dash', '-app', 'v', 'key'],
    ['a key ending with a dot', 'app.', 'v', 'key'],
    ['a key name over 63 characters', 'k'.repeat(64), 'v', 'key'],
    ['an upper-case prefix', 'Example.com/app', 'v', 'key'],
    ['an empty prefix', '/app', 'v', 'key'],
    ['an empty name after the prefix', 'example.com/', 'v', 'key'],
    ['two slashes', 'a/b/c', 'v', 'key'],
    ['a prefix over 253 characters', `${'a'.repeat(60)}.`.repeat(5) + 'com/app', 'v', 'key'],
    ['a huge key', 'k'.repeat(100_000), 'v', 'key'],
    ['a value over 63 characters', 'app', 'v'.repeat(64), 'value'],
    ['a value with a slash', 'app', 'a/b', 'value'],
    ['a value with a space', 'app', 'a b', 'value'],
    ['a value ending with an underscore', 'app', 'web_', 'value'],
    ['a value with a control character', 'app', 'we\nb', 'value'],
  ])('refuses %s', (_label, key, value, field) => {
    expect(onlyIssue(base({ podSelector: { matchLabels: [{ key, value }] } })).path).toBe(
      `podSelector.matchLabels[0].${field}`,
    );
  });

  it('refuses a key given twice in one selector, naming the second', () => {
    const issue = onlyIssue(
      base({
        podSelector: {
          matchLabels: [
            { key: 'app', value: 'a' },
            { key: 'tier', value: 'b' },
            { key: 'app', value: 'a' },
          ],
        },
      }),
    );
    expect(issue).toEqual({
      path: 'podSelector.matchLabels[2].key',
      message: '"app" is already given at matchLabels[0]; a selector takes each key once.',
    });
  });

  it('accepts 32 labels per selector and refuses 33', () => {
    const labels = (n: number) => times(n, (i) => ({ key: `k${i}`, value: 'v' }));
    expect(
      Object.keys(normalised(base({ podSelector: { matchLabels: labels(32) } })).podSelector.matchLabels),
    ).toHaveLength(32);
    expect(onlyIssue(base({ podSelector: { matchLabels: labels(33) } }))).toEqual({
      path: 'podSelector.matchLabels',
      message: 'at most 32 labels; got 33.',
    });
    expect(onlyIssue(fromPeer({ podSelector: { matchLabels: labels(33) } })).path).toBe(
      'ingress[0].from[0].podSelector.matchLabels',
    );
  });

  it('requires a podSelector', () => {
    expect(onlyIssue(base({ podSelector: null })).path).toBe('podSelector');
  });
});

describe('normalizeNetworkPolicy: peers and CIDRs', () => {
  it('refuses a peer with both podSelector and ipBlock', () => {
    expect(onlyIssue(fromPeer({ podSelector: {}, ipBlock: { cidr: '10.0.0.0/8' } }))).toEqual({
      path: 'ingress[0].from[0]',
      message: 'give exactly one of podSelector or ipBlock, not both.',
    });
  });

  it('refuses a peer with neither', () => {
    expect(onlyIssue(base({ egress: [{ to: [{ podSelector: {} }, {}] }] }))).toEqual({
      path: 'egress[0].to[1]',
      message: 'give exactly one of podSelector or ipBlock; neither is set.',
    });
    expect(onlyIssue(fromPeer({ podSelector: null, ipBlock: null })).path).toBe('ingress[0].from[0]');
  });

  it.each(['0.0.0.0/0', '10.0.0.0/8', '172.16.5.0/24', '192.168.1.7/32', '255.255.255.255/32', '8.8.8.8/32'])(
    'accepts the canonical CIDR %s',
    (cidr) => {
      expect(normalised(ipBlock(cidr)).ingress[0].from).toEqual([{ ipBlock: { cidr, except: [] } }]);
    },
  );

  it.each([
    ['host bits set', '10.0.0.1/24', /host bits set; the network is 10\.0\.0\.0\/24/],
    ['host bits set on a /8', '10.1.2.3/8', /the network is 10\.0\.0\.0\/8/],
    ['a zero-padded prefix', '10.0.0.0/08', /not in canonical form; write 10\.0\.0\.0\/8/],
    ['no prefix', '10.0.0.1', /no prefix length; for this one address write 10\.0\.0\.1\/32/],
    ['a prefix above 32', '10.0.0.0/33', /IPv4 CIDR such as/],
    ['a negative prefix', '10.0.0.0/-1', /IPv4 CIDR such as/],
    ['a leading-zero octet', '010.0.0.0/8', /IPv4 CIDR such as/],
    ['an octet above 255', '10.0.0.256/32', /IPv4 CIDR such as/],
    ['three octets', '10.0.0/24', /IPv4 CIDR such as/],
    ['surrounding spaces', ' 10.0.0.0/8', /IPv4 CIDR such as/],
    ['two slashes', '10.0.0.0/8/8', /IPv4 CIDR such as/],
    ['a host name', 'example.com/32', /IPv4 CIDR such as/],
    ['an empty string', '', /IPv4 CIDR such as/],
    ['IPv6', '2001:db8::/32', /IPv6 is not supported yet/],
    ['IPv6 loopback', '::1/128', /IPv6 is not supported yet/],
    ['IPv4-mapped IPv6', '::ffff:10.0.0.0/104', /IPv6 is not supported yet/],
    ['a megabyte', '1'.repeat(1 << 20), /IPv4 CIDR such as/],
  ])('refuses a cidr with %s', (_label, cidr, message) => {
    const issue = onlyIssue(ipBlock(cidr));
    expect(issue.path).toBe('ingress[0].from[0].ipBlock.cidr');
    expect(issue.message).toMatch(message);
  });

  it('accepts excepts strictly inside the cidr, in the order given', () => {
    expect(
      normalised(ipBlock('10.0.0.0/8', ['10.2.0.0/16', '10.1.0.0/16', '10.255.255.255/32'])).ingress[0].from,
    ).toEqual([{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.2.0.0/16', '10.1.0.0/16', '10.255.255.255/32'] } }]);
  });

  it.each([
    ['outside the cidr', '10.0.0.0/16', ['10.1.0.0/24'], /10\.1\.0\.0\/24 is not inside the cidr 10\.0\.0\.0\/16/],
    ['larger than the cidr', '10.0.0.0/16', ['10.0.0.0/8'], /is not inside/],
    ['equal to the cidr', '10.0.0.0/16', ['10.0.1.0/24', '10.0.0.0/16'], /strictly smaller/],
    ['non-canonical', '10.0.0.0/16', ['10.0.0.1/24'], /host bits set/],
    ['IPv6', '10.0.0.0/16', ['fe80::/10'], /IPv6/],
    ['garbage', '0.0.0.0/0', ['nope'], /IPv4 CIDR/],
  ])('refuses an except %s, naming it', (_label, cidr, except, message) => {
    const issue = onlyIssue(ipBlock(cidr, except));
    expect(issue.path).toBe(`ingress[0].from[0].ipBlock.except[${except.length - 1}]`);
    expect(issue.message).toMatch(message);
  });

  it('names the deepest field: ingress[0].from[1].ipBlock.except[0]', () => {
    const issue = onlyIssue(
      base({
        ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/24', except: ['10.0.1.0/25'] } }] }],
      }),
    );
    expect(issue.path).toBe('ingress[0].from[1].ipBlock.except[0]');
    expect(formatIssues([issue])).toBe(
      'ingress[0].from[1].ipBlock.except[0]: 10.0.1.0/25 is not inside the cidr 10.0.0.0/24.',
    );
  });

  it('does not judge excepts against a cidr that is itself wrong (one issue, not two)', () => {
    expect(onlyIssue(ipBlock('10.0.0.1/24', ['10.0.0.0/25'])).path).toBe('ingress[0].from[0].ipBlock.cidr');
  });

  it('bounds excepts per ipBlock (64)', () => {
    const except = (n: number) => times(n, (i) => `10.0.${i}.0/24`);
    expect(normalised(ipBlock('10.0.0.0/16', except(64))).ingress[0].from[0].ipBlock?.except).toHaveLength(64);
    expect(onlyIssue(ipBlock('10.0.0.0/16', except(65))).path).toBe('ingress[0].from[0].ipBlock.except');
  });
});

describe('normalizeNetworkPolicy: ports', () => {
  it.each([
    [{ port: 1 }, { protocol: 'TCP', port: 1, endPort: null }],
    [{ port: 65535 }, { protocol: 'TCP', port: 65535, endPort: null }],
    [{ protocol: 'UDP' }, { protocol: 'UDP', port: null, endPort: null }],
    [
      { port: 1, endPort: 65535 },
      { protocol: 'TCP', port: 1, endPort: 65535 },
    ],
    [
      { protocol: 'SCTP', port: 80, endPort: 80 },
      { protocol: 'SCTP', port: 80, endPort: null },
    ],
    [{}, { protocol: 'TCP', port: null, endPort: null }],
  ] as [PortInput, object][])('accepts %j', (port, expected) => {
    expect(normalised(ingressPort(port)).ingress[0].ports).toEqual([expected]);
  });

  it.each([
    ['port 0', { port: 0 }, 'port', 'must be between 1 and 65535; got 0.'],
    ['port 65536', { port: 65536 }, 'port', 'must be between 1 and 65535; got 65536.'],
    ['a negative port', { port: -80 }, 'port', 'must be between 1 and 65535; got -80.'],
    ['a fractional port', { port: 80.5 }, 'port', 'must be between 1 and 65535; got 80.5.'],
    ['endPort below port', { port: 8080, endPort: 80 }, 'endPort', 'must be at least port (8080); got 80.'],
    ['endPort without port', { endPort: 90 }, 'endPort', 'needs port: endPort ends a range that port starts.'],
    ['endPort 65536', { port: 1, endPort: 65536 }, 'endPort', 'must be between 1 and 65535; got 65536.'],
    ['an unknown protocol', { protocol: 'ICMP' }, 'protocol', 'must be TCP, UDP or SCTP; got "ICMP".'],
  ] as [string, PortInput, string, string][])('refuses %s', (_label, port, field, message) => {
    expect(onlyIssue(ingressPort(port))).toEqual({ path: `ingress[0].ports[0].${field}`, message });
  });

  it('names egress and deny ports too', () => {
    expect(onlyIssue(base({ egress: [{ ports: [{ port: 1 }, { port: 0 }] }] })).path).toBe('egress[0].ports[1].port');
    expect(onlyIssue(base({ deny: [{ direction: 'EGRESS', priority: 1, ports: [{ endPort: 5 }] }] })).path).toBe(
      'deny[0].ports[0].endPort',
    );
  });
});

describe('normalizeNetworkPolicy: deny rules', () => {
  it('keeps deny rules in the order given, with their priority and direction', () => {
    const policy = normalised(
      base({
        deny: [
          { direction: 'EGRESS', priority: 1000, peers: [{ ipBlock: { cidr: '169.254.0.0/16' } }] },
          { direction: 'INGRESS', priority: 0, ports: [{ protocol: 'UDP' }] },
        ],
      }),
    );
    expect(policy.deny).toEqual([
      { direction: 'EGRESS', priority: 1000, peers: [{ ipBlock: { cidr: '169.254.0.0/16', except: [] } }], ports: [] },
      { direction: 'INGRESS', priority: 0, peers: [], ports: [{ protocol: 'UDP', port: null, endPort: null }] },
    ]);
  });

  it.each([-1, 1001, 1.5, 2 ** 31])('refuses priority %s', (priority) => {
    expect(onlyIssue(base({ deny: [{ direction: 'INGRESS', priority }] })).path).toBe('deny[0].priority');
  });

  it('refuses an unknown direction', () => {
    expect(onlyIssue(base({ deny: [{ direction: 'BOTH', priority: 1 }] })).path).toBe('deny[0].direction');
  });

  it('names deny peers', () => {
    expect(onlyIssue(base({ deny: [{ direction: 'INGRESS', priority: 1, peers: [{}] }] })).path).toBe(
      'deny[0].peers[0]',
    );
  });
});

describe('normalizeNetworkPolicy: bounds', () => {
  it.each([
    ['ingress rules', (n: number) => base({ ingress: times(n, () => ({})) }), 'ingress', 'at most 64 rules; got 65.'],
    ['egress rules', (n: number) => base({ egress: times(n, () => ({})) }), 'egress', 'at most 64 rules; got 65.'],
    [
      'deny rules',
      (n: number) => base({ deny: times(n, (i) => ({ direction: 'INGRESS', priority: i })) }),
      'deny',
      'at most 64 deny rules; got 65.',
    ],
    [
      'peers per rule',
      (n: number) => base({ ingress: [{ from: times(n, () => ({ podSelector: {} })) }] }),
      'ingress[0].from',
      'at most 64 peers; got 65.',
    ],
    [
      'peers per egress rule',
      (n: number) => base({ egress: [{}, { to: times(n, () => ({ podSelector: {} })) }] }),
      'egress[1].to',
      'at most 64 peers; got 65.',
    ],
    [
      'ports per rule',
      (n: number) => base({ ingress: [{ ports: times(n, (i) => ({ port: i + 1 })) }] }),
      'ingress[0].ports',
      'at most 64 ports; got 65.',
    ],
    [
      'peers per deny rule',
      (n: number) =>
        base({ deny: [{ direction: 'EGRESS', priority: 5, peers: times(n, () => ({ podSelector: {} })) }] }),
      'deny[0].peers',
      'at most 64 peers; got 65.',
    ],
  ])('accepts 64 %s and refuses 65', (_label, make, path, message) => {
    expect(normalizeNetworkPolicy(make(64)).ok).toBe(true);
    expect(onlyIssue(make(65))).toEqual({ path, message });
  });

  it('does not look inside a list that is too long (bounded work on hostile input)', () => {
    const issues = issuesOf(base({ ingress: times(100_000, () => ({ from: [{}] })) }));
    expect(issues).toEqual([{ path: 'ingress', message: 'at most 64 rules; got 100000.' }]);
  });
});

describe('normalizeNetworkPolicy: several problems', () => {
  it('reports every problem, each naming its field', () => {
    const issues = issuesOf({
      name: 'Bad Name',
      podSelector: { matchLabels: [{ key: '', value: 'x' }] },
      policyTypes: ['INGRESS'],
      ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1/8' } }], ports: [{ port: 0 }] }],
      egress: [{}],
      deny: [{ direction: 'INGRESS', priority: 5000 }],
    });
    expect(issues.map((issue) => issue.path)).toEqual([
      'name',
      'podSelector.matchLabels[0].key',
      'ingress[0].from[0].ipBlock.cidr',
      'ingress[0].ports[0].port',
      'deny[0].priority',
      'policyTypes',
    ]);
  });

  it(`collects at most ${MAX_ISSUES} and counts the rest; the message shows the first few`, () => {
    const result = normalizeNetworkPolicy(base({ ingress: [{ ports: times(50, () => ({ port: 0 })) }] }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues).toHaveLength(MAX_ISSUES);
    expect(result.omitted).toBe(30);
    const message = formatIssues(result.issues, result.omitted);
    expect(
      message.startsWith('ingress[0].ports[0].port: must be between 1 and 65535; got 0. ingress[0].ports[1].port'),
    ).toBe(true);
    expect(message.endsWith('(and 45 more problems)')).toBe(true);
  });
});

describe('stored shape', () => {
  it('reads back what normalisation writes, and refuses anything else', () => {
    const policy = normalised(
      base({ ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 80, endPort: 90 }] }] }),
    );
    const stored = JSON.parse(JSON.stringify(policy));
    const { name: _name, ...spec } = policy;
    expect(parseNetworkPolicySpec(stored)).toEqual(spec);

    const broken = [
      {
        ...stored,
        ingress: [{ from: [{ podSelector: { matchLabels: {} }, ipBlock: { cidr: 'x', except: [] } }], ports: [] }],
      },
      { ...stored, ingress: [{ from: [], ports: [{ protocol: 'TCP', port: 90, endPort: 80 }] }] },
      { ...stored, policyTypes: ['FORWARD'] },
      { ...stored, deny: [{ direction: 'INGRESS', priority: 1001, peers: [], ports: [] }] },
      { ...stored, podSelector: { matchLabels: { a: 1 } } },
      { ...stored, egress: null },
    ];
    for (const value of broken) expect(() => parseNetworkPolicySpec(value)).toThrow();
  });
});

describe('selectsLabels', () => {
  it('selects pods carrying every label of the selector; an empty selector selects all', () => {
    expect(selectsLabels({ matchLabels: {} }, {})).toBe(true);
    expect(selectsLabels({ matchLabels: { app: 'web' } }, { app: 'web', tier: 'front' })).toBe(true);
    expect(selectsLabels({ matchLabels: { app: 'web', tier: 'db' } }, { app: 'web', tier: 'front' })).toBe(false);
    expect(selectsLabels({ matchLabels: { app: '' } }, {})).toBe(false);
    expect(selectsLabels({ matchLabels: { constructor: 'x' } }, {})).toBe(false);
  });
});
