import { TRANSIT_POOL, VXLAN_PORT, q } from './names';

/** Pure renderers of the two fixed tables of ADR-006 ("Guards that hold whatever the policies say"). */

export const HOST_TABLE = 'caas_host';
/**
 * The guard table in each tenant namespace. ADR-006 puts the guards at the head of `inet caas_tenant`, but that
 * table is replaced whole by the policy compiler's output, which has no guards yet; the guards therefore live in a
 * table of their own whose base chains run before the compiler's (lower priority numbers) and are never replaced
 * by a policy apply.
 */
export const TENANT_GUARD_TABLE = 'caas_guard';

export const HOST_COUNTERS = ['tenant_input', 'vxlan_refused', 'tenant_forward', 'forbidden', 'spoofed'] as const;
export const TENANT_COUNTERS = ['spoofed', 'forbidden', 'egress_deny', 'path_drop'] as const;

export interface HostTableInput {
  underlayIf: string;
  uplinkIf: string;
  /** Destinations tenant traffic never reaches from this host (fixed list + underlay/control-plane CIDRs). */
  forbidden: readonly string[];
  vteps: readonly string[];
  vethSrc: readonly { ifname: string; address: string }[];
  /** SNAT to this egress address instead of masquerading (required when underlay and uplink share a link). */
  snatTo?: string;
}

const elements = (items: readonly string[]): string => (items.length > 0 ? ` elements = { ${items.join(', ')} }` : '');

function countersBlock(names: readonly string[]): string[] {
  return names.map((n) => `\tcounter ${n} {\n\t}`);
}

/** The whole `inet caas_host` table as one replacing transaction (create, delete, define). */
export function renderHostTable(input: HostTableInput): string {
  const t = `inet ${HOST_TABLE}`;
  const up = q(input.uplinkIf);
  const lines = [
    `table ${t}`,
    `delete table ${t}`,
    `table ${t} {`,
    ...countersBlock(HOST_COUNTERS),
    `\tset vteps {\n\t\ttype ipv4_addr;${elements(input.vteps)}\n\t}`,
    `\tset forbidden_dst {\n\t\ttype ipv4_addr; flags interval; auto-merge;${elements(input.forbidden)}\n\t}`,
    `\tset veth_src {\n\t\ttype ifname . ipv4_addr;${elements(input.vethSrc.map((v) => `${q(v.ifname)} . ${v.address}`))}\n\t}`,
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    '\t\tiifname "vh*" counter name "tenant_input" drop',
    `\t\tudp dport ${VXLAN_PORT} iifname ${q(input.underlayIf)} ip saddr @vteps accept`,
    `\t\tudp dport ${VXLAN_PORT} counter name "vxlan_refused" drop`,
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tiifname "vh*" meta nfproto ipv6 counter name "tenant_forward" drop',
    `\t\tiifname "vh*" oifname != ${up} counter name "tenant_forward" drop`,
    '\t\tiifname "vh*" ip daddr @forbidden_dst counter name "forbidden" drop',
    '\t\tiifname "vh*" ip daddr @vteps counter name "forbidden" drop',
    `\t\tiifname "vh*" udp dport ${VXLAN_PORT} counter name "forbidden" drop`,
    '\t\tiifname "vh*" iifname . ip saddr != @veth_src counter name "spoofed" drop',
    '\t\tiifname "vh*" tcp flags syn tcp option maxseg size set rt mtu',
    `\t\tiifname "vh*" oifname ${up} accept`,
    '\t\toifname "vh*" tcp flags syn tcp option maxseg size set rt mtu',
    '\t\toifname "vh*" ct state established,related accept',
    '\t\toifname "vh*" counter name "tenant_forward" drop',
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\toifname ${up} ip saddr ${TRANSIT_POOL} ${input.snatTo !== undefined ? `snat ip to ${input.snatTo}` : 'masquerade'}`,
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

export interface TenantGuardInput {
  subnet: string;
  /** Tenant side of the transit /31 (the egress SNAT address). */
  transit: string;
  vt: string;
  vx: string;
  egress: 'NAT' | 'DENY';
  forbidden: readonly string[];
  podSrc: readonly { ifname: string; mac: string; address: string }[];
}

/** The whole `inet caas_guard` table of a tenant namespace as one replacing transaction. */
export function renderTenantGuardTable(input: TenantGuardInput): string {
  const t = `inet ${TENANT_GUARD_TABLE}`;
  const vt = q(input.vt);
  const vx = q(input.vx);
  const podSrc = input.podSrc.map((p) => `${q(p.ifname)} . ${p.mac} . ${p.address}`);
  const lines = [
    `table ${t}`,
    `delete table ${t}`,
    `table ${t} {`,
    ...countersBlock(TENANT_COUNTERS),
    `\tset pod_src {\n\t\ttype ifname . ether_addr . ipv4_addr;${elements(podSrc)}\n\t}`,
    `\tset forbidden_dst {\n\t\ttype ipv4_addr; flags interval; auto-merge;${elements(input.forbidden)}\n\t}`,
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority raw; policy accept;',
    '\t\tmeta nfproto ipv6 drop',
    '\t\tiifname "tp*" iifname . ether saddr . ip saddr != @pod_src counter name "spoofed" drop',
    '\t}',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t}',
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy drop;',
    '\t\ticmp type { destination-unreachable, time-exceeded, parameter-problem } accept',
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter - 50; policy drop;',
    '\t\tiifname "tp*" oifname "tp*" accept',
    `\t\tiifname "tp*" oifname ${vx} accept`,
    `\t\tiifname ${vx} oifname "tp*" accept`,
    `\t\tiifname "tp*" oifname ${vt} ip daddr ${input.subnet} counter name "path_drop" drop`,
    `\t\tiifname "tp*" oifname ${vt} ip daddr @forbidden_dst counter name "forbidden" drop`,
    ...(input.egress === 'DENY' ? [`\t\tiifname "tp*" oifname ${vt} counter name "egress_deny" drop`] : []),
    `\t\tiifname "tp*" oifname ${vt} accept`,
    `\t\tiifname ${vt} oifname "tp*" ct state established,related accept`,
    '\t\tcounter name "path_drop" drop',
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\toifname ${vt} snat ip to ${input.transit}`,
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}
