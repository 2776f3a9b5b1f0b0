/** IPv4 addresses and CIDR blocks as unsigned 32-bit integers. Pure; no I/O. */

export interface Cidr {
  /** Network address. */
  base: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseAddress(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses `a.b.c.d/n`; refuses host bits set (`10.0.0.1/24`), so every accepted text is canonical. */
export function parseCidr(text: string): Cidr | null {
  const [address, prefixText, ...rest] = text.split('/');
  if (rest.length > 0 || prefixText === undefined || !/^\d{1,2}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  const base = parseAddress(address ?? '');
  if (base === null || prefix > 32 || base % blockSize(prefix) !== 0) return null;
  return { base, prefix };
}

export function formatCidr({ base, prefix }: Cidr): string {
  return `${formatAddress(base)}/${prefix}`;
}

export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && inner.base >= outer.base && inner.base < outer.base + blockSize(outer.prefix);
}

const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map((c) => parseCidr(c) as Cidr);

/** Inside RFC 1918 private space. */
export function isPrivate(cidr: Cidr): boolean {
  return PRIVATE_RANGES.some((range) => contains(range, cidr));
}

/**
 * The `index`-th block of `prefix` length inside `pool`, wrapping around when the pool is used up
 * (tenant subnets may overlap by design; wrapping only makes overlap possible, never required).
 */
export function nthBlock(pool: Cidr, prefix: number, index: number): Cidr {
  if (prefix < pool.prefix) throw new RangeError(`a /${prefix} block does not fit in a /${pool.prefix} pool`);
  const blocks = blockSize(pool.prefix) / blockSize(prefix);
  return { base: pool.base + (index % blocks) * blockSize(prefix), prefix };
}

/**
 * The host addresses of a block: every address but the network and broadcast addresses. A /31 has no
 * broadcast address (RFC 3021) and a /32 is a single host, so both are wholly usable.
 */
export function hostRange({ base, prefix }: Cidr): { first: number; last: number } {
  const size = blockSize(prefix);
  return size <= 2 ? { first: base, last: base + size - 1 } : { first: base + 1, last: base + size - 2 };
}
