import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import type { TenantPod } from '../compile';
import { compile } from '../compile';
import { applyChanges, diff, renderChanges } from '../diff';
import type { Flow } from '../evaluate';
import { evaluate } from '../evaluate';
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
  must,
} from './fixtures';

const base: NormalizedNetworkPolicy[] = [
  policy('db-in', {
    podSelector: { matchLabels: { role: 'db' } },
    ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(5432)] }],
  }),
  policy('no-dns', { deny: [{ direction: 'EGRESS', priority: 3, peers: [block('0.0.0.0/0')], ports: [udp(53)] }] }),
];

const NEW_POD: TenantPod = { id: 'web-3', labels: { role: 'frontend', app: 'shop' }, address: '10.0.0.22', node: HOST };

const STEPS: { name: string; policies: NormalizedNetworkPolicy[]; pods: TenantPod[] }[] = [
  { name: 'no change', policies: base, pods: PODS },
  {
    name: 'one policy changed (port)',
    policies: [
      { ...must(base[0]), ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(5433)] }] },
      must(base[1]),
    ],
    pods: PODS,
  },
  {
    name: 'policy added',
    policies: [
      ...base,
      policy('deny-tool', { policyTypes: ['INGRESS'], podSelector: { matchLabels: { role: 'tool' } } }),
    ],
    pods: PODS,
  },
  { name: 'policy removed', policies: [must(base[0])], pods: PODS },
  { name: 'local pod added (new chains, map elements, set elements)', policies: base, pods: [...PODS, NEW_POD] },
  { name: 'pod removed', policies: base, pods: PODS.filter((p) => p.address !== WEB_REMOTE) },
  {
    name: 'pod relabelled',
    policies: base,
    pods: PODS.map((p) => (p.address === TOOL ? { ...p, labels: { role: 'frontend' } } : p)),
  },
  { name: 'everything removed', policies: [], pods: [] },
];

const FLOWS: Flow[] = [
  { src: WEB, dst: DB, protocol: 'tcp', dport: 5432 },
  { src: WEB, dst: DB, protocol: 'tcp', dport: 5433 },
  { src: TOOL, dst: DB, protocol: 'tcp', dport: 5432 },
  { src: '10.0.0.22', dst: DB, protocol: 'tcp', dport: 5432 },
  { src: WEB_REMOTE, dst: DB, protocol: 'tcp', dport: 5432 },
  { src: CLIENT_REMOTE, dst: TOOL, protocol: 'tcp', dport: 22 },
  { src: DB, dst: OUTSIDE, protocol: 'udp', dport: 53 },
  { src: DB, dst: OUTSIDE, protocol: 'tcp', dport: 443 },
];

describe('diff', () => {
  const prev = compile({ policies: base, pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' });

  it.each(STEPS)(
    '$name: applying the diff gives the full compile, structurally and in behaviour',
    ({ policies, pods: podList }) => {
      const next = compile({ policies, pods: podList, host: HOST, egressDefault: 'ALLOW_NAT' });
      const changes = diff(prev, next);
      const applied = applyChanges(
        prev,
        changes,
        next.chains.map((c) => c.name),
      );
      expect(applied).toEqual(next);
      for (const flow of FLOWS) expect(evaluate(applied, flow)).toEqual(evaluate(next, flow));
    },
  );

  it('no change: no changes, empty script', () => {
    expect(diff(prev, prev)).toEqual([]);
    expect(renderChanges(prev, [])).toBe('');
  });

  it('one changed policy touches only its own chain and counters stay', () => {
    const next = compile({ policies: must(STEPS[1]).policies, pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' });
    const changes = diff(prev, next);
    expect(changes).toEqual([
      {
        op: 'replaceRules',
        chain: 'np_db-in_in',
        rules: must(next.chains.find((c) => c.name === 'np_db-in_in')).rules,
      },
    ]);
    expect(renderChanges(prev, changes)).toMatch(
      /^flush chain inet caas_tenant np_db-in_in\nadd rule inet caas_tenant np_db-in_in /,
    );
  });

  it('a new pod elsewhere only adds set elements', () => {
    const remote: TenantPod = { ...NEW_POD, node: 'node-b' };
    const changes = diff(
      prev,
      compile({ policies: base, pods: [...PODS, remote], host: HOST, egressDefault: 'ALLOW_NAT' }),
    );
    expect(changes.map((c) => c.op).sort()).toEqual(['addElements', 'addElements']);
  });
});
