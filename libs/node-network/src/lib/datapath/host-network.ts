import { formatCidr, parseAddress } from '@caas/ipv4';
import { CommandError, Netns, readCounters } from './exec';
import {
  FORBIDDEN_DST,
  TENANT_MTU,
  checkAddress,
  checkCidr,
  checkIfname,
  checkNetns,
  checkNetworkId,
  hostVethName,
  q,
  transitIndex,
  transitPair,
} from './names';
import { HOST_TABLE, renderHostTable } from './tables';
import { TenantNetwork } from './tenant-network';

export interface HostNetworkOptions {
  /** The namespace that plays "the host namespace" (a simulated host); undefined = the caller's own. */
  netns?: string;
  underlay: { ifname: string; address: string };
  uplink: { ifname: string; address?: string };
  /** The operator's underlay and control-plane CIDRs: forbidden to guests on top of the fixed list. */
  forbidden?: readonly string[];
  /** Prefix of tenant namespace names (`caas-t` → `caas-t4711`); simulated hosts on one machine need their own. */
  tenantNetnsPrefix?: string;
  mtu?: number;
}

export interface TenantOptions {
  networkId: number;
  /** VNI of the tenant's VXLAN; ADR-006 makes it equal to the network id (default). */
  vni?: number;
  subnet: string;
  egress: 'NAT' | 'DENY';
}

interface AddrInfo {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** The host side of ADR-006: `inet caas_host`, the tenant veths, and the tenants' namespaces. */
export class HostNetwork {
  readonly ns: Netns;
  readonly mtu: number;
  readonly tenantNetnsPrefix: string;
  private vteps: string[] = [];
  private readonly forbidden: string[];
  private readonly tenants = new Map<number, TenantNetwork>();

  private constructor(readonly options: HostNetworkOptions) {
    this.ns = new Netns(options.netns === undefined ? undefined : checkNetns(options.netns));
    checkIfname(options.underlay.ifname);
    checkAddress(options.underlay.address);
    checkIfname(options.uplink.ifname);
    if (options.uplink.address !== undefined) checkAddress(options.uplink.address);
    this.tenantNetnsPrefix = options.tenantNetnsPrefix ?? 'caas-t';
    checkNetns(`${this.tenantNetnsPrefix}1`);
    this.mtu = options.mtu ?? TENANT_MTU;
    const extra = [
      ...(options.forbidden ?? []).map((c) => formatCidr(checkCidr(c))),
      `${options.underlay.address}/32`,
      ...(options.uplink.address !== undefined ? [`${options.uplink.address}/32`] : []),
    ];
    this.forbidden = [...FORBIDDEN_DST, ...extra];
  }

  /** Opens (or re-opens after a restart) the host side: sysctls and the whole `caas_host` table, rebuilt from the kernel. */
  static async open(options: HostNetworkOptions): Promise<HostNetwork> {
    const host = new HostNetwork(options);
    await host.checkLinks();
    await host.ns.sysctl({ 'net.ipv4.ip_forward': 1 });
    await host.applyTable();
    return host;
  }

  /** ADR-006 "MTU" and "Shared underlay and uplink": refuse a host that cannot carry tenant frames safely. */
  private async checkLinks(): Promise<void> {
    const { underlay, uplink } = this.options;
    const [link] = await this.ns.ipJson<{ mtu: number }>(['link', 'show', 'dev', underlay.ifname]);
    if (!link) throw new Error(`underlay link ${underlay.ifname} not found`);
    if (link.mtu < this.mtu + 50) {
      throw new Error(`underlay MTU ${link.mtu} is below the tenant MTU ${this.mtu} + 50 (VXLAN overhead)`);
    }
    await this.ns.ip(['link', 'show', 'dev', uplink.ifname]);
    if (underlay.ifname === uplink.ifname && (uplink.address === undefined || uplink.address === underlay.address)) {
      throw new Error('underlay and uplink share a link: the egress address must differ from the VTEP address');
    }
  }

  get underlay(): { ifname: string; address: string } {
    return this.options.underlay;
  }

  /** The destinations forbidden to every tenant on this host (also used inside tenant namespaces). */
  forbiddenDestinations(): readonly string[] {
    return this.forbidden;
  }

  /** Counters of `caas_host` (`tenant_input`, `vxlan_refused`, `tenant_forward`, `forbidden`, `spoofed`). */
  counters(): Promise<Record<string, { packets: number; bytes: number }>> {
    return readCounters(this.ns, HOST_TABLE);
  }

  tenantNetnsName(networkId: number): string {
    return checkNetns(`${this.tenantNetnsPrefix}${checkNetworkId(networkId)}`);
  }

  /** Replaces the `@vteps` set (underlay addresses of all ready nodes) in one transaction. */
  async setVteps(addresses: readonly string[]): Promise<void> {
    const list = [...new Set(addresses.map((a) => (checkAddress(a), a)))].sort();
    const lines = [`flush set inet ${HOST_TABLE} vteps`];
    if (list.length > 0) lines.push(`add element inet ${HOST_TABLE} vteps { ${list.join(', ')} }`);
    await this.ns.nft(`${lines.join('\n')}\n`);
    this.vteps = list;
  }

  /** The tenant's network on this host, created if missing (namespace, veth, VXLAN, guard table). */
  async tenant(options: TenantOptions): Promise<TenantNetwork> {
    const id = checkNetworkId(options.networkId);
    const existing = this.tenants.get(id);
    if (existing) return existing;
    const transit = await this.transitFor(id);
    const tenant = await TenantNetwork.create(this, { ...options, networkId: id, vni: options.vni ?? id }, transit);
    this.tenants.set(id, tenant);
    return tenant;
  }

  /** Called by a tenant once its namespace is gone. */
  async forgetTenant(networkId: number, vethSrc: { ifname: string; address: string }): Promise<void> {
    this.tenants.delete(networkId);
    try {
      await this.ns.ip(['link', 'del', vethSrc.ifname]);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
    }
    await this.ns
      .nft(`delete element inet ${HOST_TABLE} veth_src { ${q(vethSrc.ifname)} . ${vethSrc.address} }\n`)
      .catch(() => undefined);
  }

  async addVethSrc(ifname: string, address: string): Promise<void> {
    await this.ns.nft(`add element inet ${HOST_TABLE} veth_src { ${q(checkIfname(ifname))} . ${address} }\n`);
  }

  /** Removes every tenant this host knows of (and any namespace or vh* left under its prefixes), then `caas_host`. */
  async destroy(): Promise<void> {
    for (const tenant of [...this.tenants.values()]) await tenant.destroy();
    for (const vh of await this.vethAddresses()) {
      const id = Number(vh.ifname.slice(2));
      await this.ns.ip(['link', 'del', vh.ifname]).catch(() => undefined);
      if (Number.isInteger(id) && id > 0) {
        await new Netns(undefined).ip(['netns', 'del', this.tenantNetnsName(id)]).catch(() => undefined);
      }
    }
    await this.ns.nft(`table inet ${HOST_TABLE}\ndelete table inet ${HOST_TABLE}\n`);
  }

  private async vethAddresses(): Promise<{ ifname: string; address: string | undefined }[]> {
    const links = await this.ns.ipJson<AddrInfo>(['addr', 'show']);
    return links
      .filter((l) => /^vh\d+$/.test(l.ifname))
      .map((l) => ({ ifname: l.ifname, address: l.addr_info?.find((a) => a.family === 'inet')?.local }));
  }

  /** The transit /31 of a tenant: read back from its `vh*` if it exists (restart), else the lowest free one. */
  private async transitFor(networkId: number): Promise<{ host: string; tenant: string; index: number }> {
    const veths = await this.vethAddresses();
    const own = veths.find((v) => v.ifname === hostVethName(networkId));
    const ownIndex = own?.address !== undefined ? transitIndex(own.address) : null;
    if (ownIndex !== null) return { ...transitPair(ownIndex), index: ownIndex };
    const used = new Set(veths.map((v) => (v.address !== undefined ? transitIndex(v.address) : null)));
    let index = 0;
    while (used.has(index)) index++;
    return { ...transitPair(index), index };
  }

  /** The `@vteps` elements already in the kernel (kept across a re-open, so an agent restart drops no VXLAN). */
  private async kernelVteps(): Promise<string[]> {
    try {
      const out = await this.ns.nftCommand(['-j', 'list', 'set', 'inet', HOST_TABLE, 'vteps']);
      const items = (JSON.parse(out) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
      const elem = items.find((i) => i.set)?.set?.elem ?? [];
      return elem.filter((e): e is string => typeof e === 'string' && parseAddress(e) !== null);
    } catch (error) {
      if (error instanceof CommandError) return [];
      throw error;
    }
  }

  private async applyTable(): Promise<void> {
    if (this.vteps.length === 0) this.vteps = await this.kernelVteps();
    const vethSrc = (await this.vethAddresses())
      .filter((v): v is { ifname: string; address: string } => v.address !== undefined)
      .map((v) => ({ ifname: v.ifname, address: transitPair(transitIndex(v.address) ?? 0).tenant }));
    await this.ns.nft(
      renderHostTable({
        underlayIf: this.options.underlay.ifname,
        uplinkIf: this.options.uplink.ifname,
        forbidden: this.forbidden,
        vteps: this.vteps,
        vethSrc,
        snatTo: this.options.underlay.ifname === this.options.uplink.ifname ? this.options.uplink.address : undefined,
      }),
    );
  }
}
