import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import { compile } from '../compile';
import { diff } from '../diff';
import { recompilePolicy } from '../incremental';
import { HOST, PODS, block, must, policy, pods, tcp, udp } from './fixtures';

const base: NormalizedNetworkPolicy[] = [
  policy('db-in', {
    podSelector: { matchLabels: { role: 'db' } },
    ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(5432)] }],
  }),
  policy('no-dns', { deny: [{ direction: 'EGRESS', priority: 3, peers: [block('0.0.0.0/0')], ports: [udp(53)] }] }),
  policy('all-out', { policyTypes: ['EGRESS'], egress: [{ to: [pods({})], ports: [] }] }),
];

const CHANGES: { name: string; policy: string; policies: NormalizedNetworkPolicy[] }[] = [
  {
    name: 'a port changed',
    policy: 'db-in',
    policies: [
      { ...must(base[0]), ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(5433)] }] },
      must(base[1]),
      must(base[2]),
    ],
  },
  {
    name: 'the selector moved to other pods',
    policy: 'db-in',
    policies: [{ ...must(base[0]), podSelector: { matchLabels: { role: 'tool' } } }, must(base[1]), must(base[2])],
  },
  {
    name: 'a deny rule added',
    policy: 'no-dns',
    policies: [
      must(base[0]),
      {
        ...must(base[1]),
        deny: [...must(base[1]).deny, { direction: 'INGRESS', priority: 1, peers: [block('10.9.0.0/16')], ports: [] }],
      },
      must(base[2]),
    ],
  },
  {
    name: 'a policy added',
    policy: 'deny-tool',
    policies: [
      ...base,
      policy('deny-tool', { policyTypes: ['INGRESS'], podSelector: { matchLabels: { role: 'tool' } } }),
    ],
  },
  { name: 'a policy removed', policy: 'all-out', policies: [must(base[0]), must(base[1])] },
];

describe('recompilePolicy', () => {
  const input = { policies: base, pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' as const };
  const previous = compile(input);

  it.each(CHANGES)('$name: equals a full compile of the new input', ({ policy: name, policies }) => {
    const next = { ...input, policies };
    const before = base.find((p) => p.name === name) ?? null;
    const incremental = recompilePolicy(previous, before, next, name);
    expect(incremental).toEqual(compile(next));
    expect(diff(previous, incremental)).toEqual(diff(previous, compile(next)));
  });

  it('changes nothing when the policy did not change', () => {
    expect(recompilePolicy(previous, must(base[0]), input, 'db-in')).toEqual(previous);
  });
});
