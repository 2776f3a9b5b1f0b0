import { contains, formatCidr, isPrivate } from '@caas/ipv4';
import { CommandError, Netns, readCounters, run } from './exec';
import type { HostNetwork, TenantOptions } from './host-network';
import {
  POD_PORT_MAC,
  VXLAN_PORT,
  checkAddress,
  checkCidr,
  checkIfname,
  gatewayOf,
  guestMac,
  hostVethName,
  podPortName,
  q,
  tenantVethName,
  vtepMac,
  vxlanName,
} from './names';
import { TENANT_GUARD_TABLE, renderTenantGuardTable } from './tables';

export interface AttachPodOptions {
  podId: string;
  /** The pod's IPv4 address inside the tenant subnet. */
  address: string;
  /**
   * `tap` (default): create a persistent `vnet_hdr` tap named `tp<12 hex>` in the tenant namespace.
   * `existing`: the caller already put an interface of that name in the tenant namespace (a veth in tests).
   */
  port?: 'tap' | 'existing';
}

export interface Peer {
  /** A remote pod's address. */
  address: string;
  /** The underlay address of the node it runs on. */
  vtep: string;
}

export interface LocalPod {
  podId: string;
  ifname: string;
  address: string;
  mac: string;
}

interface RouteInfo {
  dst: string;
  dev?: string;
}
interface NeighInfo {
  dst: string;
  lladdr?: string;
}
interface FdbInfo {
  mac: string;
  dst?: string;
}

const isMissing = (error: unknown): boolean =>
  error instanceof CommandError && /No such|Cannot find|does not exist|not found/i.test(error.stderr);

/** One tenant on one host: its namespace `caas-t<networkId>` and everything in it (ADR-006). */
export class TenantNetwork {
  readonly ns: Netns;
  readonly networkId: number;
  readonly vni: number;
  readonly subnet: string;
  readonly gateway: string;
  readonly egress: 'NAT' | 'DENY';
  readonly vh: string;
  readonly vt: string;
  readonly vx: string;
  private readonly pods = new Map<string, LocalPod>();
  /** Anti-spoofing elements found in an adopted namespace (agent restart), kept until their pod is re-attached or pruned. */
  private readonly adopted = new Map<string, { ifname: string; mac: string; address: string }>();
  private destroyed = false;

  private constructor(
    private readonly host: HostNetwork,
    options: Required<TenantOptions>,
    readonly transit: { host: string; tenant: string },
  ) {
    this.networkId = options.networkId;
    this.vni = options.vni;
    this.subnet = formatCidr(checkCidr(options.subnet));
    this.gateway = gatewayOf(this.subnet);
    this.egress = options.egress;
    this.vh = hostVethName(this.networkId);
    this.vt = tenantVethName(this.networkId);
    this.vx = vxlanName(this.networkId);
    this.ns = new Netns(host.tenantNetnsName(this.networkId));
  }

  get netnsName(): string {
    return this.ns.name as string;
  }

  static async create(
    host: HostNetwork,
    options: Required<TenantOptions>,
    transit: { host: string; tenant: string },
  ): Promise<TenantNetwork> {
    if (!Number.isInteger(options.vni) || options.vni < 1 || options.vni > 0xffffff) throw new Error('invalid VNI');
    if (options.egress !== 'NAT' && options.egress !== 'DENY') throw new Error('invalid egress mode');
    const subnet = checkCidr(options.subnet);
    if (!isPrivate(subnet) || subnet.prefix > 30) {
      throw new Error(`tenant subnet ${options.subnet} must be an RFC 1918 block of /30 or larger`);
    }
    const t = new TenantNetwork(host, options, transit);
    try {
      await t.build();
    } catch (error) {
      await t.destroy().catch(() => undefined);
      throw error;
    }
    return t;
  }

  private async build(): Promise<void> {
    const name = this.netnsName;
    const hostNs = this.host.ns;
    const mtu = String(this.host.mtu);
    const existing = (await run('ip', ['netns', 'list'])).split('\n').some((l) => l.split(' ')[0] === name);
    if (!existing) await run('ip', ['netns', 'add', name]);
    else for (const e of await this.kernelPodSrc()) this.adopted.set(e.ifname, e);
    // 1. namespace and guards first: the guard table (policy drop on input/output/forward) before any link is up.
    await this.applyGuards();
    await this.ns.sysctl({
      'net.ipv4.ip_forward': 1,
      'net.ipv6.conf.all.disable_ipv6': 1,
      'net.ipv6.conf.default.disable_ipv6': 1,
      'net.ipv4.conf.all.accept_redirects': 0,
      'net.ipv4.conf.default.accept_redirects': 0,
      'net.ipv4.conf.all.send_redirects': 0,
      'net.ipv4.conf.default.send_redirects': 0,
      'net.ipv4.conf.all.accept_source_route': 0,
      'net.ipv4.conf.default.accept_source_route': 0,
      'net.ipv4.conf.all.rp_filter': 1,
      'net.ipv4.conf.default.rp_filter': 1,
      'net.netfilter.nf_conntrack_tcp_loose': 0,
    });
    // 2. gateway /32 on lo, unreachable subnet.
    await this.ns.ip(['link', 'set', 'lo', 'up']);
    await this.ns.ip(['addr', 'replace', `${this.gateway}/32`, 'dev', 'lo']);
    await this.ns.ip(['route', 'replace', 'unreachable', this.subnet]);
    // 3. veth + transit /31 + host @veth_src.
    const links = await hostNs.ipJson<{ ifname: string }>(['link', 'show']);
    if (!links.some((l) => l.ifname === this.vh)) {
      await hostNs.ip([
        'link',
        'add',
        this.vh,
        'mtu',
        mtu,
        'type',
        'veth',
        'peer',
        'name',
        this.vt,
        'mtu',
        mtu,
        'netns',
        name,
      ]);
    }
    await hostNs.sysctl({ [`net.ipv4.conf.${this.vh}.rp_filter`]: 2, [`net.ipv6.conf.${this.vh}.disable_ipv6`]: 1 });
    await hostNs.ip(['addr', 'replace', `${this.transit.host}/31`, 'dev', this.vh]);
    await hostNs.ip(['link', 'set', this.vh, 'up']);
    await this.ns.ip(['addr', 'replace', `${this.transit.tenant}/31`, 'dev', this.vt]);
    await this.ns.ip(['link', 'set', this.vt, 'up']);
    await this.ns.ip(['route', 'replace', 'default', 'via', this.transit.host, 'dev', this.vt]);
    await this.host.addVethSrc(this.vh, this.transit.tenant);
    // 4. VXLAN: created in the host namespace (its UDP socket stays on the underlay), then moved in.
    const tenantLinks = await this.ns.ipJson<{ ifname: string }>(['link', 'show']);
    if (!tenantLinks.some((l) => l.ifname === this.vx)) {
      const { ifname, address } = this.host.underlay;
      await hostNs.ip([
        'link',
        'add',
        this.vx,
        'type',
        'vxlan',
        'id',
        String(this.vni),
        'local',
        address,
        'dev',
        ifname,
        'dstport',
        String(VXLAN_PORT),
        'nolearning',
      ]);
      await hostNs.ip(['link', 'set', this.vx, 'netns', name]);
    }
    await this.ns.ip([
      'link',
      'set',
      this.vx,
      'address',
      vtepMac(this.host.underlay.address),
      'mtu',
      mtu,
      'arp',
      'off',
      'up',
    ]);
    await this.ns.sysctl({ [`net.ipv4.conf.${this.vx}.rp_filter`]: 1 });
  }

  /** Re-renders the guard table (anti-spoofing set included) in one transaction; also repairs a tampered one. */
  async applyGuards(): Promise<void> {
    await this.ns.nft(
      renderTenantGuardTable({
        subnet: this.subnet,
        transit: this.transit.tenant,
        vt: this.vt,
        vx: this.vx,
        egress: this.egress,
        forbidden: this.host.forbiddenDestinations(),
        podSrc: [
          ...[...this.pods.values()].map((p) => ({ ifname: p.ifname, mac: p.mac, address: p.address })),
          ...[...this.adopted.values()].filter((a) => ![...this.pods.values()].some((p) => p.ifname === a.ifname)),
        ],
      }),
    );
  }

  private async kernelPodSrc(): Promise<{ ifname: string; mac: string; address: string }[]> {
    try {
      const out = await this.ns.nftCommand(['-j', 'list', 'set', 'inet', TENANT_GUARD_TABLE, 'pod_src']);
      type Elem = { concat?: unknown[] };
      const items = (JSON.parse(out) as { nftables: { set?: { elem?: Elem[] } }[] }).nftables;
      const result: { ifname: string; mac: string; address: string }[] = [];
      for (const e of items.find((i) => i.set)?.set?.elem ?? []) {
        const [ifname, mac, address] = e.concat ?? [];
        if (typeof ifname === 'string' && typeof mac === 'string' && typeof address === 'string') {
          result.push({ ifname: checkIfname(ifname), mac, address });
        }
      }
      return result;
    } catch (error) {
      if (error instanceof CommandError) return [];
      throw error;
    }
  }

  /**
   * After a restart, once every wanted pod is attached again: deletes the pod ports (and their route, neighbour and
   * anti-spoofing element) that no attached pod owns. Returns the names removed.
   */
  async pruneUnknownPorts(): Promise<string[]> {
    const owned = new Set([...this.pods.values()].map((p) => p.ifname));
    const links = await this.ns.ipJson<{ ifname: string }>(['link', 'show']);
    const stale = new Set(links.map((l) => l.ifname).filter((n) => /^tp[0-9a-f]{12}$/.test(n) && !owned.has(n)));
    for (const a of this.adopted.values()) if (!owned.has(a.ifname)) stale.add(a.ifname);
    for (const ifname of stale) {
      const a = this.adopted.get(ifname);
      if (a) {
        await this.ns.ip(['route', 'del', `${a.address}/32`, 'dev', ifname]).catch(() => undefined);
        await this.ns
          .nft(`delete element inet ${TENANT_GUARD_TABLE} pod_src { ${q(ifname)} . ${a.mac} . ${a.address} }\n`)
          .catch(() => undefined);
        await this.ns.conntrackDelete(['-s', a.address]);
        await this.ns.conntrackDelete(['-d', a.address]);
      }
      this.adopted.delete(ifname);
      await this.ns.ip(['link', 'del', ifname]).catch(() => undefined);
    }
    return [...stale].sort();
  }

  private checkInSubnet(address: string): void {
    const value = checkAddress(address);
    if (!contains(checkCidr(this.subnet), { base: value, prefix: 32 })) {
      throw new Error(`${address} is not in the tenant subnet ${this.subnet}`);
    }
    if (address === this.gateway) throw new Error(`${address} is the tenant gateway`);
  }

  /** Guard counters of the tenant namespace (`spoofed`, `forbidden`, `egress_deny`, `path_drop`). */
  counters(): Promise<Record<string, { packets: number; bytes: number }>> {
    return readCounters(this.ns, TENANT_GUARD_TABLE);
  }

  localPods(): LocalPod[] {
    return [...this.pods.values()];
  }

  /** The pod's port with its /32 route, permanent neighbour and anti-spoofing element. Returns the port name. */
  async attachPod(options: AttachPodOptions): Promise<LocalPod> {
    if (this.destroyed) throw new Error('tenant network destroyed');
    this.checkInSubnet(options.address);
    const ifname = checkIfname(podPortName(options.podId));
    const mac = guestMac(options.address);
    for (const p of this.pods.values()) {
      if (p.address === options.address && p.podId !== options.podId) throw new Error(`${options.address} is taken`);
    }
    const links = await this.ns.ipJson<{ ifname: string }>(['link', 'show']);
    const present = links.some((l) => l.ifname === ifname);
    if ((options.port ?? 'tap') === 'tap') {
      if (!present) await this.ns.ip(['tuntap', 'add', 'dev', ifname, 'mode', 'tap', 'vnet_hdr']);
    } else if (!present) {
      throw new Error(`interface ${ifname} does not exist in ${this.netnsName}`);
    }
    await this.ns.sysctl({
      [`net.ipv6.conf.${ifname}.disable_ipv6`]: 1,
      [`net.ipv4.conf.${ifname}.proxy_arp`]: 1,
      // Proxy ARP answers after a random delay of up to 0.8 s by default; a routed port has nothing to wait for.
      [`net.ipv4.neigh.${ifname}.proxy_delay`]: 0,
      [`net.ipv4.conf.${ifname}.rp_filter`]: 1,
      [`net.ipv4.conf.${ifname}.accept_redirects`]: 0,
      [`net.ipv4.conf.${ifname}.send_redirects`]: 0,
    });
    await this.ns.ip(['link', 'set', ifname, 'address', POD_PORT_MAC, 'mtu', String(this.host.mtu), 'up']);
    const pod: LocalPod = { podId: options.podId, ifname, address: options.address, mac };
    this.pods.set(options.podId, pod);
    const old = this.adopted.get(ifname);
    this.adopted.delete(ifname);
    if (old && (old.address !== pod.address || old.mac !== pod.mac)) {
      await this.ns
        .nft(`delete element inet ${TENANT_GUARD_TABLE} pod_src { ${q(ifname)} . ${old.mac} . ${old.address} }\n`)
        .catch(() => undefined);
    }
    // Guards before reachability: the anti-spoofing element exists before the route does.
    await this.ns.nft(
      `add element inet ${TENANT_GUARD_TABLE} pod_src { ${q(ifname)} . ${mac} . ${options.address} }\n`,
    );
    await this.ns.ip(['route', 'replace', `${options.address}/32`, 'dev', ifname]);
    await this.ns.ip(['neigh', 'replace', options.address, 'lladdr', mac, 'dev', ifname, 'nud', 'permanent']);
    return pod;
  }

  /** Removes the pod's port, route, neighbour and anti-spoofing element; the last pod gone destroys the tenant. */
  async detachPod(podId: string): Promise<void> {
    const pod = this.pods.get(podId);
    if (!pod) return;
    await this.ns.ip(['route', 'del', `${pod.address}/32`, 'dev', pod.ifname]).catch(() => undefined);
    await this.ns.ip(['neigh', 'del', pod.address, 'dev', pod.ifname]).catch(() => undefined);
    await this.ns
      .nft(`delete element inet ${TENANT_GUARD_TABLE} pod_src { ${q(pod.ifname)} . ${pod.mac} . ${pod.address} }\n`)
      .catch(() => undefined);
    await this.ns.ip(['link', 'del', pod.ifname]).catch((e: unknown) => {
      if (!isMissing(e)) throw e;
    });
    this.pods.delete(podId);
    // A later pod with the same address starts clean.
    await this.ns.conntrackDelete(['-s', pod.address]);
    await this.ns.conntrackDelete(['-d', pod.address]);
    if (this.pods.size === 0) await this.destroy();
  }

  /** Converges remote pods: a /32 route and permanent neighbour each, one FDB entry per remote host. */
  async setPeers(peers: readonly Peer[]): Promise<void> {
    const local = new Set([...this.pods.values()].map((p) => p.address));
    const wanted = new Map<string, string>();
    for (const peer of peers) {
      this.checkInSubnet(peer.address);
      checkAddress(peer.vtep);
      if (peer.vtep === this.host.underlay.address) continue; // local pods are routed to their ports
      if (local.has(peer.address)) throw new Error(`${peer.address} is a local pod`);
      wanted.set(peer.address, peer.vtep);
    }
    const hosts = new Map<string, string>(); // MAC -> underlay
    for (const vtep of wanted.values()) hosts.set(vtepMac(vtep), vtep);

    const fdb = (await this.ns.bridgeJson<FdbInfo>(['fdb', 'show', 'dev', this.vx])).filter((e) => e.dst !== undefined);
    for (const [mac, dst] of hosts) {
      if (!fdb.some((e) => e.mac === mac && e.dst === dst)) {
        await this.ns.bridge(['fdb', 'replace', mac, 'dev', this.vx, 'dst', dst, 'self', 'permanent']);
      }
    }
    const routes = await this.ns.ipJson<RouteInfo>(['route', 'show', 'dev', this.vx]);
    const neighs = await this.ns.ipJson<NeighInfo>(['neigh', 'show', 'dev', this.vx]);
    for (const [address, vtep] of wanted) {
      const mac = vtepMac(vtep);
      if (!neighs.some((n) => n.dst === address && n.lladdr === mac)) {
        await this.ns.ip(['neigh', 'replace', address, 'lladdr', mac, 'dev', this.vx, 'nud', 'permanent']);
      }
      if (!routes.some((r) => r.dst === address)) {
        await this.ns.ip(['route', 'replace', `${address}/32`, 'dev', this.vx]);
      }
    }
    for (const r of routes) {
      if (!wanted.has(r.dst)) await this.ns.ip(['route', 'del', r.dst, 'dev', this.vx]).catch(() => undefined);
    }
    for (const n of neighs) {
      if (!wanted.has(n.dst)) await this.ns.ip(['neigh', 'del', n.dst, 'dev', this.vx]).catch(() => undefined);
    }
    for (const e of fdb) {
      if (!hosts.has(e.mac)) {
        await this.ns
          .bridge(['fdb', 'del', e.mac, 'dev', this.vx, 'dst', e.dst as string, 'self'])
          .catch(() => undefined);
      }
    }
  }

  /** Deletes the namespace and everything in it, the host veth and the host `@veth_src` element. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    // Explicit deletes first: `ip netns del` frees devices asynchronously, and a VNI must be reusable at once.
    for (const ifname of [this.vx, ...[...this.pods.values()].map((p) => p.ifname)]) {
      await this.ns.ip(['link', 'del', ifname]).catch(() => undefined);
    }
    this.pods.clear();
    await run('ip', ['netns', 'del', this.netnsName]).catch((e: unknown) => {
      if (!isMissing(e)) throw e;
    });
    await this.host.forgetTenant(this.networkId, { ifname: this.vh, address: this.transit.tenant });
    // Host conntrack entries of its egress flows (original source = the transit address).
    await this.host.ns.conntrackDelete(['-s', this.transit.tenant]);
  }
}
