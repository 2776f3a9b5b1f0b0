import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import type { EgressDefault } from '../compile';
import { compile } from '../compile';
import type { Flow } from '../evaluate';
import { evaluate } from '../evaluate';
import { renderText } from '../render';
import {
  CLIENT_REMOTE,
  DB,
  HOST,
  OUTSIDE,
  PODS,
  TOOL,
  WEB,
  WEB_REMOTE,
  block,
  policy,
  pods,
  tcp,
  udp,
} from './fixtures';

interface Case {
  name: string;
  policies: NormalizedNetworkPolicy[];
  egressDefault?: EgressDefault;
  flows: [Flow, 'accept' | 'drop', string?][];
}

const f = (src: string, dst: string, protocol: Flow['protocol'] = 'tcp', dport?: number, ct?: Flow['ct']): Flow => ({
  src,
  dst,
  protocol,
  dport,
  ct,
});

/** The Kubernetes documentation's `test-network-policy`, without namespaces (same-tenant pods instead). */
const k8sExample = policy('test-network-policy', {
  podSelector: { matchLabels: { role: 'db' } },
  policyTypes: ['INGRESS', 'EGRESS'],
  ingress: [{ from: [block('172.17.0.0/16', ['172.17.1.0/24']), pods({ role: 'frontend' })], ports: [tcp(6379)] }],
  egress: [{ to: [block('10.0.0.0/24')], ports: [tcp(5978)] }],
});

const CASES: Case[] = [
  {
    name: 'no policies: same-tenant traffic flows, outside ingress dropped, egress NAT by default',
    policies: [],
    flows: [
      [f(WEB, DB, 'tcp', 5432), 'accept', 'tenant_in'],
      [f(CLIENT_REMOTE, DB, 'udp', 53), 'accept', 'tenant_in'],
      [f(DB, WEB_REMOTE, 'tcp', 80), 'accept', 'tenant_out'],
      [f(DB, OUTSIDE, 'tcp', 443), 'accept', 'egress_default_allow'],
      [f(OUTSIDE, DB, 'tcp', 5432), 'drop', 'outside_in_drop'],
    ],
  },
  {
    name: 'egress default DENY: outside dropped, tenant still allowed',
    policies: [],
    egressDefault: 'DENY',
    flows: [
      [f(DB, OUTSIDE, 'tcp', 443), 'drop', 'egress_default_deny'],
      [f(DB, WEB_REMOTE, 'tcp', 80), 'accept', 'tenant_out'],
      [f(DB, OUTSIDE, 'tcp', 443, 'established'), 'accept'],
    ],
  },
  {
    name: 'kubernetes test-network-policy (ipBlock with except, podSelector, ports)',
    policies: [k8sExample],
    flows: [
      [f(WEB, DB, 'tcp', 6379), 'accept', 'np_test-network-policy_in_0'],
      [f(WEB_REMOTE, DB, 'tcp', 6379), 'accept', 'np_test-network-policy_in_0'],
      [f('172.17.2.5', DB, 'tcp', 6379), 'accept', 'np_test-network-policy_in_0'],
      [f('172.17.1.5', DB, 'tcp', 6379), 'drop', 'isolated_in_drop'],
      [f(WEB, DB, 'tcp', 6380), 'drop', 'isolated_in_drop'],
      [f(CLIENT_REMOTE, DB, 'tcp', 6379), 'drop', 'isolated_in_drop'],
      [f(WEB, DB, 'udp', 6379), 'drop'],
      [f(DB, WEB_REMOTE, 'tcp', 5978), 'accept', 'np_test-network-policy_out_0'],
      [f(DB, WEB_REMOTE, 'tcp', 80), 'drop', 'isolated_out_drop'],
      [f(DB, OUTSIDE, 'tcp', 5978), 'drop', 'isolated_out_drop'],
      [f(WEB, TOOL, 'tcp', 1), 'accept', 'tenant_in'],
    ],
  },
  {
    name: 'default deny ingress',
    policies: [policy('default-deny-ingress')],
    flows: [
      [f(WEB, DB, 'tcp', 5432), 'drop', 'isolated_in_drop'],
      [f(CLIENT_REMOTE, WEB, 'tcp', 80), 'drop', 'isolated_in_drop'],
      [f(DB, WEB_REMOTE, 'tcp', 80), 'accept', 'tenant_out'],
      [f(WEB, DB, 'tcp', 5432, 'established'), 'accept'],
      [f(WEB, DB, 'tcp', 5432, 'invalid'), 'drop', 'ct_invalid'],
    ],
  },
  {
    name: 'default deny egress',
    policies: [policy('default-deny-egress', { policyTypes: ['EGRESS'] })],
    flows: [
      [f(DB, WEB_REMOTE, 'tcp', 80), 'drop', 'isolated_out_drop'],
      [f(DB, OUTSIDE, 'tcp', 443), 'drop', 'isolated_out_drop'],
      [f(CLIENT_REMOTE, DB, 'tcp', 5432), 'accept', 'tenant_in'],
      [f(DB, WEB, 'tcp', 80), 'drop', 'isolated_out_drop'],
    ],
  },
  {
    name: 'allow all ingress and egress',
    policies: [
      policy('allow-all', {
        policyTypes: ['INGRESS', 'EGRESS'],
        ingress: [{ from: [], ports: [] }],
        egress: [{ to: [], ports: [] }],
      }),
    ],
    egressDefault: 'DENY',
    flows: [
      [f(OUTSIDE, DB, 'tcp', 5432), 'accept', 'np_allow-all_in_0'],
      [f(DB, OUTSIDE, 'udp', 53), 'accept', 'np_allow-all_out_0'],
      [f(DB, WEB, 'icmp'), 'accept'],
    ],
  },
  {
    name: 'port ranges (endPort) and UDP vs TCP',
    policies: [
      policy('ranges', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [], ports: [tcp(32000, 32768), udp(53)] }],
      }),
    ],
    flows: [
      [f(WEB, DB, 'tcp', 32000), 'accept', 'np_ranges_in_0'],
      [f(WEB, DB, 'tcp', 32768), 'accept'],
      [f(WEB, DB, 'tcp', 32769), 'drop'],
      [f(WEB, DB, 'tcp', 31999), 'drop'],
      [f(WEB, DB, 'udp', 53), 'accept'],
      [f(WEB, DB, 'tcp', 53), 'drop'],
      [f(WEB, DB, 'udp', 32000), 'drop'],
      [f(WEB, DB, 'icmp'), 'drop'],
    ],
  },
  {
    name: 'protocol without a port: every port of it',
    policies: [
      policy('udp-any', { podSelector: { matchLabels: { role: 'db' } }, ingress: [{ from: [], ports: [udp()] }] }),
    ],
    flows: [
      [f(WEB, DB, 'udp', 1), 'accept'],
      [f(WEB, DB, 'udp', 65535), 'accept'],
      [f(WEB, DB, 'tcp', 1), 'drop'],
    ],
  },
  {
    name: 'deny wins over allow, lowest priority counts first, ties by policy name',
    policies: [
      policy('allow-web', { ingress: [{ from: [], ports: [] }] }),
      policy('b-deny', {
        deny: [{ direction: 'INGRESS', priority: 10, peers: [pods({ role: 'client' })], ports: [] }],
      }),
      policy('a-deny', {
        podSelector: { matchLabels: { role: 'db' } },
        deny: [
          { direction: 'INGRESS', priority: 10, peers: [pods({ role: 'client' })], ports: [tcp(5432)] },
          { direction: 'INGRESS', priority: 5, peers: [block('10.0.0.30/32')], ports: [] },
        ],
      }),
    ],
    flows: [
      [f(CLIENT_REMOTE, DB, 'tcp', 5432), 'drop', 'deny_a-deny_1'],
      [f(CLIENT_REMOTE, WEB, 'tcp', 5432), 'drop', 'deny_b-deny_0'],
      [f(WEB_REMOTE, DB, 'tcp', 5432), 'accept', 'np_allow-web_in_0'],
    ],
  },
  {
    name: 'deny egress without isolating (policyTypes INGRESS only)',
    policies: [
      policy('no-dns-out', {
        podSelector: { matchLabels: { role: 'db' } },
        deny: [{ direction: 'EGRESS', priority: 0, peers: [block('0.0.0.0/0')], ports: [udp(53)] }],
      }),
    ],
    flows: [
      [f(DB, OUTSIDE, 'udp', 53), 'drop', 'deny_no-dns-out_0'],
      [f(DB, OUTSIDE, 'tcp', 443), 'accept', 'egress_default_allow'],
      [f(WEB, DB, 'tcp', 1), 'drop', 'isolated_in_drop'],
    ],
  },
  {
    name: 'selector matching nothing: selects no pod, peers empty',
    policies: [
      policy('nobody', { podSelector: { matchLabels: { role: 'ghost' } } }),
      policy('from-ghosts', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [pods({ role: 'ghost' })], ports: [] }],
      }),
    ],
    flows: [
      [f(WEB, TOOL, 'tcp', 1), 'accept', 'tenant_in'],
      [f(WEB, DB, 'tcp', 1), 'drop', 'isolated_in_drop'],
    ],
  },
  {
    name: 'a pod selected by several policies: allows add up',
    policies: [
      policy('db-from-web', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(5432)] }],
      }),
      policy('db-from-client', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [pods({ role: 'client' })], ports: [tcp(9000)] }],
      }),
    ],
    flows: [
      [f(WEB_REMOTE, DB, 'tcp', 5432), 'accept', 'np_db-from-web_in_0'],
      [f(CLIENT_REMOTE, DB, 'tcp', 9000), 'accept', 'np_db-from-client_in_0'],
      [f(CLIENT_REMOTE, DB, 'tcp', 5432), 'drop'],
      [f(WEB, DB, 'tcp', 9000), 'drop'],
    ],
  },
  {
    name: 'local to local: egress of the sender and ingress of the receiver both apply',
    policies: [
      policy('web-out', {
        podSelector: { matchLabels: { role: 'frontend' } },
        policyTypes: ['EGRESS'],
        egress: [{ to: [pods({ role: 'db' })], ports: [tcp(5432)] }],
      }),
      policy('db-in', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [pods({ app: 'shop' })], ports: [tcp(5432), tcp(5433)] }],
      }),
    ],
    flows: [
      [f(WEB, DB, 'tcp', 5432), 'accept'],
      [f(WEB, DB, 'tcp', 5433), 'drop', 'isolated_out_drop'],
      [f(TOOL, DB, 'tcp', 5432), 'drop', 'isolated_in_drop'],
      [f(WEB, TOOL, 'tcp', 5432), 'drop', 'isolated_out_drop'],
    ],
  },
  {
    name: 'remote pods are only peers: traffic between other hosts is not ours',
    policies: [policy('deny-all')],
    flows: [[f(CLIENT_REMOTE, WEB_REMOTE, 'tcp', 80), 'drop']],
  },
  {
    name: 'egress ipBlock with except to the outside',
    policies: [
      policy('web-egress', {
        podSelector: { matchLabels: { role: 'frontend' } },
        policyTypes: ['EGRESS'],
        egress: [{ to: [block('0.0.0.0/0', ['10.0.0.0/8', '192.168.0.0/16'])], ports: [tcp(443)] }],
      }),
    ],
    egressDefault: 'DENY',
    flows: [
      [f(WEB, OUTSIDE, 'tcp', 443), 'accept', 'np_web-egress_out_0'],
      [f(WEB, DB, 'tcp', 443), 'drop'],
      [f(WEB, '192.168.1.1', 'tcp', 443), 'drop'],
      [f(WEB, OUTSIDE, 'tcp', 80), 'drop'],
      [f(DB, OUTSIDE, 'tcp', 443), 'drop', 'egress_default_deny'],
    ],
  },
];

describe('compile + evaluate (semantics)', () => {
  for (const c of CASES) {
    describe(c.name, () => {
      const ruleset = compile({
        policies: c.policies,
        pods: PODS,
        host: HOST,
        egressDefault: c.egressDefault ?? 'ALLOW_NAT',
      });
      it.each(
        c.flows.map(([flow, verdict, counter]) => ({
          flow,
          verdict,
          counter,
          label: `${flow.src}→${flow.dst} ${flow.protocol}/${flow.dport ?? '-'} ${flow.ct ?? 'new'}`,
        })),
      )('$label → $verdict', ({ flow, verdict, counter }) => {
        const result = evaluate(ruleset, flow);
        expect(result.verdict).toBe(verdict);
        if (counter !== undefined) expect(result.counters).toContain(counter);
      });
    });
  }
});

describe('structure', () => {
  const ruleset = compile({ policies: [k8sExample], pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' });

  it('names counters per policy rule and keeps only local pods in the dispatch maps', () => {
    expect(ruleset.counters).toEqual(
      expect.arrayContaining(['np_test-network-policy_in_0', 'np_test-network-policy_out_0']),
    );
    expect(ruleset.maps.find((m) => m.name === 'pod_in_map')?.elements.map((e) => e.key)).toEqual([DB, WEB, TOOL]);
    expect(ruleset.sets.find((s) => s.name === 'np_test-network-policy_in_0_pods')?.elements).toEqual([
      WEB,
      WEB_REMOTE,
    ]);
  });

  it('every jump and counter refers to something that exists', () => {
    const chains = new Set(ruleset.chains.map((c) => c.name));
    const counters = new Set(ruleset.counters);
    for (const chain of ruleset.chains) {
      for (const rule of chain.rules) {
        if (rule.counter) expect(counters.has(rule.counter)).toBe(true);
        if (rule.verdict.kind === 'jump') expect(chains.has(rule.verdict.chain)).toBe(true);
      }
    }
    for (const map of ruleset.maps) for (const e of map.elements) expect(chains.has(e.chain)).toBe(true);
  });

  it('renders no rule line ending with a closing brace (nft 1.0.6)', () => {
    const text = renderText(ruleset);
    for (const line of text.split('\n')) {
      if (/^\t\t(ip|meta|ct|th|jump|counter)/.test(line)) expect(line.trim().endsWith('}')).toBe(false);
    }
    expect(text).toContain('delete table inet caas_tenant');
  });

  it('rejects duplicate policy names and bad addresses', () => {
    expect(() =>
      compile({ policies: [policy('a'), policy('a')], pods: PODS, host: HOST, egressDefault: 'DENY' }),
    ).toThrow(/duplicate/);
    expect(() =>
      compile({
        policies: [],
        pods: [{ id: 'x', labels: {}, address: 'nope', node: HOST }],
        host: HOST,
        egressDefault: 'DENY',
      }),
    ).toThrow(/address/);
  });
});

describe('determinism', () => {
  const shuffle = <T>(list: readonly T[], seed: number): T[] => {
    const copy = [...list];
    let s = seed;
    for (let i = copy.length - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      const j = s % (i + 1);
      [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
    }
    return copy;
  };
  const policies = CASES.flatMap((c) => c.policies).filter(
    (p, i, all) => all.findIndex((q) => q.name === p.name) === i,
  );

  it.each([1, 2, 3, 4, 5])('shuffled input (seed %i) gives identical output', (seed) => {
    const a = compile({ policies, pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' });
    const b = compile({
      policies: shuffle(policies, seed),
      pods: shuffle(PODS, seed + 7),
      host: HOST,
      egressDefault: 'ALLOW_NAT',
    });
    expect(b).toEqual(a);
    expect(renderText(b)).toBe(renderText(a));
  });
});
