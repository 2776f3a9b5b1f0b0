/**
 * The tenant of `npm run bench:netpolicy` and `bench:network`: 1,000 pods on 10 hosts under 200 policies (app × tier
 * selectors, a pod peer plus an ipBlock with an except, TCP port + UDP range, a shard-wide rule, egress on every
 * third policy, a deny rule on every tenth).
 */
import type { NormalizedNetworkPolicy, Peer } from '@caas/network-policy-model';
import type { TenantPod } from '@caas/netpolicy-compiler';

export const HOST = 'node-3';
const APPS = ['shop', 'blog', 'crm', 'auth', 'search'];
const TIERS = ['web', 'api', 'db', 'cache'];
const pick = (list: string[], i: number): string => list[i % list.length] as string;
const sel = (matchLabels: Record<string, string>): Peer => ({ podSelector: { matchLabels } });

export const makePods = (count = 1000, hosts = 10): TenantPod[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `pod-${i}`,
    labels: { app: pick(APPS, i), tier: pick(TIERS, i >> 2), shard: `s${i % 7}` },
    address: `10.1.${Math.floor(i / 250)}.${(i % 250) + 2}`,
    node: `node-${i % hosts}`,
  }));

export function makePolicy(i: number, variant = 0): NormalizedNetworkPolicy {
  const app = pick(APPS, i);
  const tier = pick(TIERS, i);
  return {
    name: `pol-${String(i).padStart(3, '0')}`,
    podSelector: { matchLabels: { app, tier } },
    policyTypes: i % 3 === 0 ? ['INGRESS', 'EGRESS'] : ['INGRESS'],
    ingress: [
      {
        from: [
          sel({ app, tier: pick(TIERS, i + 1) }),
          { ipBlock: { cidr: '172.16.0.0/12', except: ['172.16.1.0/24'] } },
        ],
        ports: [
          { protocol: 'TCP', port: 8000 + (i % 50) + variant, endPort: null },
          { protocol: 'UDP', port: 5000, endPort: 5100 },
        ],
      },
      { from: [sel({ shard: `s${i % 7}` })], ports: [] },
    ],
    egress: i % 3 === 0 ? [{ to: [sel({ app })], ports: [{ protocol: 'TCP', port: 443, endPort: null }] }] : [],
    deny:
      i % 10 === 0
        ? [
            {
              direction: 'INGRESS',
              priority: i % 5,
              peers: [{ ipBlock: { cidr: '10.1.3.0/24', except: [] } }],
              ports: [],
            },
          ]
        : [],
  };
}

export const makePolicies = (count = 200): NormalizedNetworkPolicy[] =>
  Array.from({ length: count }, (_, i) => makePolicy(i));
