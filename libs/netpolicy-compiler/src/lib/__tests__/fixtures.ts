import type { NormalizedNetworkPolicy, Peer, PortRange } from '@caas/network-policy-model';
import type { TenantPod } from '../compile';

export const HOST = 'node-a';

export function policy(
  name: string,
  spec: Partial<Omit<NormalizedNetworkPolicy, 'name'>> = {},
): NormalizedNetworkPolicy {
  const ingress = spec.ingress ?? [];
  const egress = spec.egress ?? [];
  return {
    name,
    podSelector: spec.podSelector ?? { matchLabels: {} },
    policyTypes: spec.policyTypes ?? (egress.length > 0 ? ['INGRESS', 'EGRESS'] : ['INGRESS']),
    ingress,
    egress,
    deny: spec.deny ?? [],
  };
}

export const pods = (labels: Record<string, string>): Peer => ({ podSelector: { matchLabels: labels } });
export const block = (cidr: string, except: string[] = []): Peer => ({ ipBlock: { cidr, except } });
export const tcp = (port: number | null = null, endPort: number | null = null): PortRange => ({
  protocol: 'TCP',
  port,
  endPort,
});
export const udp = (port: number | null = null, endPort: number | null = null): PortRange => ({
  protocol: 'UDP',
  port,
  endPort,
});

/** Tenant subnet 10.0.0.0/24; db and web local, a second web and a client on node-b. */
export const PODS: TenantPod[] = [
  { id: 'db-1', labels: { role: 'db', app: 'shop' }, address: '10.0.0.10', node: HOST },
  { id: 'web-1', labels: { role: 'frontend', app: 'shop' }, address: '10.0.0.20', node: HOST },
  { id: 'web-2', labels: { role: 'frontend', app: 'shop' }, address: '10.0.0.21', node: 'node-b' },
  { id: 'client-1', labels: { role: 'client' }, address: '10.0.0.30', node: 'node-b' },
  { id: 'tool-1', labels: { role: 'tool' }, address: '10.0.0.40', node: HOST },
];

export const DB = '10.0.0.10';
export const WEB = '10.0.0.20';
export const WEB_REMOTE = '10.0.0.21';
export const CLIENT_REMOTE = '10.0.0.30';
export const TOOL = '10.0.0.40';
export const OUTSIDE = '93.184.216.34';

export function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('missing fixture');
  return value;
}
