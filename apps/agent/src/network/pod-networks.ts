// The pods' networks on this host (ADR-006): for every tenant of the desired set, its namespace, VXLAN peers and
// compiled policy; for every starting pod, its routed tap, handed to the sandbox. Built on @caas/node-network.
import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import { parseNetworkPolicySpec } from '@caas/network-policy-model';
import type { Ruleset } from '@caas/netpolicy-compiler';
import { compile } from '@caas/netpolicy-compiler';
import type { HostNetwork, TenantNetwork } from '@caas/node-network';
import { TENANT_MTU, applyChanges, applyRuleset, netnsPath, readCounters } from '@caas/node-network';
import type { DesiredNetwork, PolicyCountersReport } from '@caas/queue-contracts';
import type { SandboxNetwork } from '@caas/sandbox';

export interface NetworkedSet {
  networks?: DesiredNetwork[];
  vteps?: string[];
}

/** What PodRuntime needs of the network (absent: pods run without one). */
export interface PodNetworks {
  /** Converges the host on the set's tenant networks (peers, policies) before its pods start. */
  converge(set: NetworkedSet): Promise<void>;
  /** Creates and routes the pod's tap; what its sandbox needs. */
  attach(pod: { podId: string; tenantId: string; ip: string | null }): Promise<SandboxNetwork>;
  /** Removes the pod's tap (the tenant's last pod takes its namespace with it). */
  detach(podId: string): Promise<void>;
  /** The per-rule counters of every tenant's applied policy on this host. */
  counters(): Promise<PolicyCountersReport['tenants']>;
}

interface TenantState {
  desired: DesiredNetwork;
  network: TenantNetwork;
  applied?: Ruleset;
  /** The desired network (as JSON) last converged on. */
  converged?: string;
}

export class HostPodNetworks implements PodNetworks {
  private readonly tenants = new Map<string, TenantState>();
  /** podId → tenantId of every attached pod. */
  private readonly attached = new Map<string, string>();
  /** The VTEP list (as JSON) last set. */
  private vteps: string | undefined;

  constructor(
    private readonly host: HostNetwork,
    /** This node's name: the compiler's `host`. */
    private readonly nodeName: string,
  ) {}

  /** Converges what changed since the last convergence (every resync re-reads the set; most are unchanged). */
  async converge(set: NetworkedSet): Promise<void> {
    const vteps = JSON.stringify(set.vteps ?? []);
    if (vteps !== this.vteps) {
      await this.host.setVteps(set.vteps ?? []);
      this.vteps = vteps;
    }
    for (const desired of set.networks ?? []) {
      const state = await this.tenant(desired);
      const key = JSON.stringify(desired);
      if (state.converged === key) continue;
      state.desired = desired;
      await state.network.setPeers(desired.peers.map(({ address, vtep }) => ({ address, vtep })));
      await this.applyPolicy(state);
      state.converged = key;
    }
  }

  async attach(pod: { podId: string; tenantId: string; ip: string | null }): Promise<SandboxNetwork> {
    const state = this.tenants.get(pod.tenantId);
    if (state === undefined) throw new Error(`no network of tenant ${pod.tenantId} in the desired set`);
    if (pod.ip === null) throw new Error(`pod ${pod.podId} has no address`);
    const port =
      state.network.localPods().find((p) => p.podId === pod.podId) ??
      (await state.network.attachPod({ podId: pod.podId, address: pod.ip }));
    this.attached.set(pod.podId, pod.tenantId);
    const prefix = state.desired.subnet.split('/')[1];
    return {
      netns: netnsPath(this.host.tenantNetnsName(state.desired.networkId)),
      tap: port.ifname,
      mac: port.mac,
      address: `${port.address}/${prefix}`,
      gateway: state.desired.gateway,
      mtu: TENANT_MTU,
    };
  }

  async detach(podId: string): Promise<void> {
    const tenantId = this.attached.get(podId);
    if (tenantId === undefined) return;
    this.attached.delete(podId);
    const state = this.tenants.get(tenantId);
    if (state === undefined) return;
    await state.network.detachPod(podId);
    // The last local pod gone took the namespace (and its nftables table) with it.
    if (state.network.localPods().length === 0) this.tenants.delete(tenantId);
  }

  async counters(): Promise<PolicyCountersReport['tenants']> {
    const tenants: PolicyCountersReport['tenants'] = [];
    for (const [tenantId, state] of this.tenants) {
      if (state.applied === undefined) continue;
      tenants.push({ tenantId, counters: await readCounters(this.host.tenantNetnsName(state.desired.networkId)) });
    }
    return tenants;
  }

  private async tenant(desired: DesiredNetwork): Promise<TenantState> {
    const known = this.tenants.get(desired.tenantId);
    if (known) return known;
    const network = await this.host.tenant({
      networkId: desired.networkId,
      subnet: desired.subnet,
      // The guard's DENY is a ban no policy lifts: the compiled policy carries the tenant's egress default.
      egress: 'NAT',
    });
    const state: TenantState = { desired, network };
    this.tenants.set(desired.tenantId, state);
    return state;
  }

  private async applyPolicy(state: TenantState): Promise<void> {
    const next = compile({
      policies: state.desired.policies.map((p): NormalizedNetworkPolicy => ({
        name: p.name,
        ...parseNetworkPolicySpec(p),
      })),
      pods: state.desired.pods.map((p) => ({ id: p.podId, labels: p.labels, address: p.address, node: p.node })),
      host: this.nodeName,
      egressDefault: state.desired.egressDefault,
    });
    const netns = this.host.tenantNetnsName(state.desired.networkId);
    if (state.applied === undefined) await applyRuleset(netns, next);
    else await applyChanges(netns, state.applied, next);
    state.applied = next;
  }
}
