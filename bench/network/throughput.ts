/**
 * The VXLAN-versus-direct throughput figure. The bench builds its own minimal path here (two "host" namespaces on
 * an underlay veth, a VXLAN device per host with a static FDB entry, a routed "pod" namespace behind each host, as
 * ADR-006 lays it out); it should switch to the data path library (`lib/datapath`) once that is in place.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { Cleanup } from '@caas/cluster-harness';

const execFileAsync = promisify(execFile);
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};
const sysctl = (ns: string, setting: string): void => {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', setting]);
};

export const TENANT_MTU = 1450;
const VNI = '4711';
const GATEWAY = '10.0.0.1';
const UNDERLAY = { a: '192.0.2.11', b: '192.0.2.12' } as const;
const POD = { a: '10.0.0.2', b: '10.0.0.3' } as const;
const DIRECT = { a: '10.9.0.1', b: '10.9.0.2' } as const;
/** `02:` + the host's underlay address + `00` (ADR-006 deterministic VTEP MAC). */
const vtepMac = (address: string): string =>
  ['02', ...address.split('.').map((o) => Number(o).toString(16).padStart(2, '0')), '00'].join(':');

export interface Path {
  hostA: string;
  podA: string;
  podB: string;
  vxlanTarget: string;
  directTarget: string;
}

/** Creates the namespaces (registered in `cleanup`, and in `created` for a synchronous last resort). */
export function buildPaths(prefix: string, cleanup: Cleanup, created: string[]): Path {
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
  for (const side of ['a', 'b'] as const) {
    const other = side === 'a' ? 'b' : 'a';
    const host = hosts[side];
    ip('-n', host, 'link', 'set', 'ul0', 'mtu', String(TENANT_MTU + 50), 'up');
    ip('-n', host, 'addr', 'add', `${UNDERLAY[side]}/24`, 'dev', 'ul0');
    sysctl(host, 'net.ipv4.ip_forward=1');
    ip('-n', host, 'addr', 'add', `${GATEWAY}/32`, 'dev', 'lo');
    const vx = `vx${VNI}`;
    // The same sequence of ip(8) commands as ADR-006, but created directly in the "host" namespace.
    ip(
      '-n',
      host,
      'link',
      'add',
      vx,
      'type',
      'vxlan',
      'id',
      VNI,
      'local',
      UNDERLAY[side],
      'dev',
      'ul0',
      'dstport',
      '4789',
      'nolearning',
    );
    ip(
      '-n',
      host,
      'link',
      'set',
      vx,
      'address',
      vtepMac(UNDERLAY[side]),
      'mtu',
      String(TENANT_MTU),
      'arp',
      'off',
      'up',
    );
    ip('-n', host, 'neigh', 'add', POD[other], 'lladdr', vtepMac(UNDERLAY[other]), 'dev', vx, 'nud', 'permanent');
    ip('-n', host, 'route', 'add', `${POD[other]}/32`, 'dev', vx);
    execFileSync('ip', [
      'netns',
      'exec',
      host,
      'bridge',
      'fdb',
      'append',
      vtepMac(UNDERLAY[other]),
      'dev',
      vx,
      'dst',
      UNDERLAY[other],
    ]);
    // The pod: a routed veth with a /32, default via the gateway (as a tap would be).
    ip(
      '-n',
      host,
      'link',
      'add',
      'tp0',
      'mtu',
      String(TENANT_MTU),
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      pods[side],
    );
    ip('-n', host, 'link', 'set', 'tp0', 'up');
    ip('-n', host, 'route', 'add', `${POD[side]}/32`, 'dev', 'tp0');
    ip('-n', pods[side], 'link', 'set', 'eth0', 'mtu', String(TENANT_MTU), 'up');
    ip('-n', pods[side], 'addr', 'add', `${POD[side]}/32`, 'dev', 'eth0');
    ip('-n', pods[side], 'route', 'add', GATEWAY, 'dev', 'eth0');
    ip('-n', pods[side], 'route', 'add', 'default', 'via', GATEWAY, 'dev', 'eth0');
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
  return { hostA: hosts.a, podA: pods.a, podB: pods.b, vxlanTarget: POD.b, directTarget: DIRECT.b };
}

/** Bytes sent by the host's VXLAN device: proof that the "VXLAN" figure crossed it. */
export function vxlanTxBytes(host: string): number {
  const out = execFileSync('ip', ['-n', host, '-j', '-s', 'link', 'show', `vx${VNI}`], { encoding: 'utf8' });
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
