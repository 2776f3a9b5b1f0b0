// The network between simulated hosts (ADR-006's underlay), all in namespaces this process creates: a fabric
// namespace holding a bridge, and per host a veth from the bridge into the host's namespace (`ul0`, an address of
// 192.168.77.0/24) plus an uplink veth (`up0`) that leads nowhere. Nothing here touches the root namespace's links or routes.
import { execFileSync } from 'node:child_process';

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
const quietly = (...args: string[]): void => {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
};

/** What an agent of a host on the fabric is told (UNDERLAY_*, UPLINK_IFNAME). */
export interface FabricPort {
  underlayIfname: string;
  underlayAddress: string;
  uplinkIfname: string;
}

export class Fabric {
  private readonly hosts: string[] = [];

  private constructor(readonly netns: string) {}

  /** A fabric namespace `<name>` with a bridge `br0`. */
  static create(name: string): Fabric {
    ip('netns', 'add', name);
    ip('-n', name, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', name, 'link', 'set', 'br0', 'up');
    return new Fabric(name);
  }

  /**
   * Creates the host namespace `hostNetns` (the agent keeps an existing one) and plugs it in: `ul0` with
   * 192.168.77.<10 + index>/24 on the bridge, and `up0`.
   */
  addHost(hostNetns: string, index: number): FabricPort {
    ip('netns', 'add', hostNetns);
    this.hosts.push(hostNetns);
    const outer = `f${index}-${process.pid % 100000}`;
    ip('-n', this.netns, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', hostNetns);
    ip('-n', this.netns, 'link', 'set', outer, 'master', 'br0', 'up');
    const underlayAddress = `192.168.77.${10 + index}`;
    ip('-n', hostNetns, 'addr', 'add', `${underlayAddress}/24`, 'dev', 'ul0');
    ip('-n', hostNetns, 'link', 'set', 'ul0', 'up');
    ip('-n', hostNetns, 'link', 'set', 'lo', 'up');
    // The uplink leads nowhere (egress is proven by libs/node-network's net-spec): a veth whose peer stays down.
    ip('-n', this.netns, 'link', 'add', `u${outer}`, 'type', 'veth', 'peer', 'name', 'up0', 'netns', hostNetns);
    ip('-n', hostNetns, 'link', 'set', 'up0', 'up');
    return { underlayIfname: 'ul0', underlayAddress, uplinkIfname: 'up0' };
  }

  /** Deletes the fabric and every host namespace it created (the VMs must be gone first). */
  destroy(): void {
    for (const host of this.hosts.splice(0)) quietly('netns', 'delete', host);
    quietly('netns', 'delete', this.netns);
  }
}
