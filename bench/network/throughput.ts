/**
 * The VXLAN-versus-direct throughput figure, over the platform's own data path (`@caas/node-network`, ADR-006): two
 * simulated hosts (namespaces joined by an underlay veth) each open their host side (`caas_host`), one tenant's
 * namespace with its guard table, VXLAN device and peers, and a "pod" namespace behind a routed port (a veth named
 * like the pod's tap, attached as an existing port). The reference is the same pod pair joined by a direct veth.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cleanup } from '@caas/cluster-harness';
import { HostNetwork, TENANT_MTU, gatewayOf, podPortName } from '@caas/node-network';

export { TENANT_MTU };

const execFileAsync = promisify(execFile);
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

const NETWORK_ID = 4711;
const SUBNET = '10.0.0.0/24';
const UNDERLAY = { a: '192.0.2.11', b: '192.0.2.12' } as const;
const POD = {
  a: { id: 'aaaaaaaa-0000-4000-8000-000000000001', address: '10.0.0.2' },
  b: { id: 'bbbbbbbb-0000-4000-8000-000000000002', address: '10.0.0.3' },
} as const;
const DIRECT = { a: '10.9.0.1', b: '10.9.0.2' } as const;

export interface Path {
  /** Host A's tenant namespace (holds the VXLAN device). */
  tenantA: string;
  podA: string;
  podB: string;
  vxlanTarget: string;
  directTarget: string;
}

/** Creates the namespaces and opens the data path on both hosts (registered in `cleanup`; `created` for a last resort). */
export async function buildPaths(prefix: string, cleanup: Cleanup, created: string[]): Promise<Path> {
  const ns = (name: string): string => {
    const full = `${prefix}${name}`;
    ip('netns', 'add', full);
    created.push(full);
    cleanup.add(`netns ${full}`, async () => {
      await execFileAsync('ip', ['netns', 'delete', full]);
      created.splice(created.indexOf(full), 1);
    });
    ip('-n', full, 'link', 'set', 'lo', 'up');
    return full;
  };
  const hosts = { a: ns('ha'), b: ns('hb') };
  const pods = { a: ns('pa'), b: ns('pb') };
  ip('-n', hosts.a, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', hosts.b);
  let tenantA = '';
  for (const side of ['a', 'b'] as const) {
    const other = side === 'a' ? 'b' : 'a';
    ip('-n', hosts[side], 'link', 'set', 'ul0', 'mtu', String(TENANT_MTU + 50), 'up');
    ip('-n', hosts[side], 'addr', 'add', `${UNDERLAY[side]}/24`, 'dev', 'ul0');
    // An uplink that leads nowhere: the figure is pod to pod.
    ip('-n', hosts[side], 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
    ip('-n', hosts[side], 'link', 'set', 'up0', 'up');
    const host = await HostNetwork.open({
      netns: hosts[side],
      underlay: { ifname: 'ul0', address: UNDERLAY[side] },
      uplink: { ifname: 'up0' },
      tenantNetnsPrefix: `${prefix}${side}t`,
    });
    cleanup.add(`data path of host ${side}`, () => host.destroy());
    await host.setVteps([UNDERLAY.a, UNDERLAY.b]);
    const tenant = await host.tenant({ networkId: NETWORK_ID, subnet: SUBNET, egress: 'NAT' });
    const tenantNs = host.tenantNetnsName(NETWORK_ID);
    if (side === 'a') tenantA = tenantNs;
    // The pod: a veth whose tenant-side end is named like the pod's tap, attached as an existing port.
    const port = podPortName(POD[side].id);
    ip('-n', pods[side], 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', tenantNs);
    ip(
      '-n',
      pods[side],
      'link',
      'set',
      'eth0',
      'address',
      guestMacOf(POD[side].address),
      'mtu',
      String(TENANT_MTU),
      'up',
    );
    ip('-n', pods[side], 'addr', 'add', `${POD[side].address}/24`, 'dev', 'eth0');
    ip('-n', pods[side], 'route', 'add', 'default', 'via', gatewayOf(SUBNET), 'dev', 'eth0', 'onlink');
    await tenant.attachPod({ podId: POD[side].id, address: POD[side].address, port: 'existing' });
    await tenant.setPeers([{ address: POD[other].address, vtep: UNDERLAY[other] }]);
  }
  // The same pair joined directly, with the same MTU, for the reference figure.
  ip(
    '-n',
    pods.a,
    'link',
    'add',
    'dir0',
    'mtu',
    String(TENANT_MTU),
    'type',
    'veth',
    'peer',
    'name',
    'dir0',
    'netns',
    pods.b,
  );
  ip('-n', pods.a, 'addr', 'add', `${DIRECT.a}/30`, 'dev', 'dir0');
  ip('-n', pods.b, 'addr', 'add', `${DIRECT.b}/30`, 'dev', 'dir0');
  ip('-n', pods.a, 'link', 'set', 'dir0', 'up');
  ip('-n', pods.b, 'link', 'set', 'dir0', 'up');
  return { tenantA, podA: pods.a, podB: pods.b, vxlanTarget: POD.b.address, directTarget: DIRECT.b };
}

/** The guest MAC the data path binds to the pod's port (anti-spoofing): `02:ca:` + the address's 4 bytes. */
const guestMacOf = (address: string): string =>
  ['02', 'ca', ...address.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');

/** Bytes sent by host A's tenant VXLAN device: proof that the "VXLAN" figure crossed it. */
export function vxlanTxBytes(tenantNs: string): number {
  const out = execFileSync('ip', ['-n', tenantNs, '-j', '-s', 'link', 'show', `vx${NETWORK_ID}`], { encoding: 'utf8' });
  const [link] = JSON.parse(out) as { stats64?: { tx?: { bytes?: number } } }[];
  return link?.stats64?.tx?.bytes ?? 0;
}

/** One iperf3 TCP run from `client` to `target` (served in `server`): received bits per second. */
export async function iperf(
  cleanup: Cleanup,
  server: string,
  client: string,
  target: string,
  seconds: number,
): Promise<number> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-B', target], {
    stdio: 'ignore',
  });
  const stop = cleanup.add(`iperf3 server in ${server}`, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.resolve();
  });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const { stdout } = await execFileAsync(
          'ip',
          ['netns', 'exec', client, 'iperf3', '-c', target, '-t', String(seconds), '-J'],
          { maxBuffer: 16 << 20 },
        );
        const report = JSON.parse(stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
        const bps = report.end?.sum_received?.bits_per_second;
        if (typeof bps !== 'number') throw new Error(`iperf3 printed no sum_received: ${stdout.slice(0, 300)}`);
        return bps;
      } catch (error) {
        // The server may not listen yet: retry for up to 3 s.
        const text = `${String(error)} ${(error as { stdout?: string }).stdout ?? ''}`;
        if (attempt >= 30 || !/unable to connect|refused/i.test(text)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await stop();
  }
}
