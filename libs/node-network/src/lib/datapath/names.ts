import type { Cidr } from '@caas/ipv4';
import { formatAddress, hostRange, parseAddress, parseCidr } from '@caas/ipv4';

/** Everything an ADR-006 data path names or writes, validated before it reaches `ip`/`nft`. */

export const TENANT_MTU = 1450;
export const VXLAN_PORT = 4789;
/** The MAC every pod port shows the guest (ADR-006 "Routed taps"). */
export const POD_PORT_MAC = '02:ca:00:00:00:01';
/** The transit pool; one /31 per tenant per host. */
export const TRANSIT_POOL = '100.64.0.0/10';
export const MAX_VNI = 0xffffff;

/** Destinations a guest never reaches, whatever its policy says (ADR-006 `forbidden_dst`). */
export const FORBIDDEN_DST: readonly string[] = Object.freeze([
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
]);

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkIfname(name: string): string {
  if (!IFNAME.test(name)) throw new Error(`invalid interface name ${JSON.stringify(name)}`);
  return name;
}

export function checkNetns(name: string): string {
  if (!NETNS.test(name)) throw new Error(`invalid network namespace name ${JSON.stringify(name)}`);
  return name;
}

export function checkAddress(text: string): number {
  const value = parseAddress(text);
  if (value === null) throw new Error(`invalid IPv4 address ${JSON.stringify(text)}`);
  return value;
}

export function checkCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`invalid IPv4 CIDR ${JSON.stringify(text)}`);
  return cidr;
}

export function checkNetworkId(id: number): number {
  if (!Number.isInteger(id) || id < 1 || id > MAX_VNI) throw new Error(`invalid network id ${String(id)}`);
  return id;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const octets = (value: number): number[] => [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256);

/** `02:ca:` + the 4 bytes of the pod's IPv4 address: the guest MAC (unique within a tenant). */
export function guestMac(address: string): string {
  return ['02', 'ca', ...octets(checkAddress(address)).map(hex2)].join(':');
}

/** `02:` + the 4 bytes of the host's underlay address + `00`: the MAC of every `vx*` on that host. */
export function vtepMac(underlay: string): string {
  return ['02', ...octets(checkAddress(underlay)).map(hex2), '00'].join(':');
}

/** `tp` + the first 12 hex digits of the pod id. */
export function podPortName(podId: string): string {
  if (!/^[0-9A-Fa-f-]+$/.test(podId)) throw new Error(`invalid pod id ${JSON.stringify(podId)}`);
  const hex = podId.replace(/-/g, '').toLowerCase();
  if (hex.length < 12) throw new Error(`pod id ${JSON.stringify(podId)} has fewer than 12 hex digits`);
  return `tp${hex.slice(0, 12)}`;
}

export const hostVethName = (networkId: number): string => `vh${checkNetworkId(networkId)}`;
export const tenantVethName = (networkId: number): string => `vt${checkNetworkId(networkId)}`;
export const vxlanName = (networkId: number): string => `vx${checkNetworkId(networkId)}`;

/** The tenant gateway: the first host address of the subnet. */
export function gatewayOf(subnet: string): string {
  return formatAddress(hostRange(checkCidr(subnet)).first);
}

/** The k-th transit /31 of the pool: host side `.0`, tenant side `.1`. */
export function transitPair(index: number): { host: string; tenant: string } {
  const pool = checkCidr(TRANSIT_POOL);
  const size = 2 ** (32 - pool.prefix) / 2;
  if (!Number.isInteger(index) || index < 0 || index >= size) throw new Error(`transit index ${index} out of range`);
  const base = pool.base + index * 2;
  return { host: formatAddress(base), tenant: formatAddress(base + 1) };
}

export function transitIndex(hostSide: string): number | null {
  const pool = checkCidr(TRANSIT_POOL);
  const value = parseAddress(hostSide);
  if (value === null || value < pool.base || value >= pool.base + 2 ** (32 - pool.prefix) || value % 2 !== 0)
    return null;
  return (value - pool.base) / 2;
}

/** Quoted nft string literal for a validated name. */
export const q = (s: string): string => `"${s}"`;
