/**
 * ADR-006 data path with real packets: two simulated hosts (network namespaces joined by an underlay veth), an
 * "internet" namespace, tenants with the SAME subnet, pods as namespaces. Everything lives in namespaces this test
 * creates (prefix `nnt<pid>`) and deletes in afterAll, also on failure. Needs root, iproute2, nftables, node.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostNetwork } from '../host-network';
import { guestMac, vtepMac } from '../names';
import type { TenantNetwork } from '../tenant-network';

jest.setTimeout(20_000);

const P = `nnt${process.pid}`;
const HA = `${P}ha`;
const HB = `${P}hb`;
const INET = `${P}in`;
const UNDERLAY_A = '192.0.2.11';
const UNDERLAY_B = '192.0.2.12';
const UPLINK_A = '198.51.100.11';
const UPLINK_B = '198.51.101.11';
const SERVER = '198.51.100.1';
const CONTROL_PLANE = '203.0.113.5';
const SUBNET = '10.0.0.0/24';
const dir = mkdtempSync(join(tmpdir(), 'nnt-'));
const PROBE = join(dir, 'probe.js');

// A tiny network tool run inside namespaces: servers that report what they receive, clients that print the answer.
writeFileSync(
  PROBE,
  String.raw`
const net = require('net'), dgram = require('dgram');
const [mode, ...a] = process.argv.slice(2);
const done = (s) => { process.stdout.write(s + '\n'); process.exit(0); };
if (mode === 'serve') {
  const [name, tcpPorts, udpPorts] = a;
  for (const p of tcpPorts.split(',').filter(Boolean)) net.createServer((c) => {
    console.log('tcp ' + p + ' from ' + c.remoteAddress + ':' + c.remotePort);
    c.end(name + ' ' + c.remoteAddress + ':' + c.remotePort);
  }).listen(Number(p), '0.0.0.0');
  for (const p of udpPorts.split(',').filter(Boolean)) {
    const s = dgram.createSocket('udp4');
    s.on('message', (m, r) => {
      console.log('udp ' + p + ' from ' + r.address + ':' + r.port + ' ' + m.toString());
      s.send(name + ' ' + r.address + ':' + r.port, r.port, r.address);
    });
    s.bind(Number(p), '0.0.0.0');
  }
  setTimeout(() => console.log('ready'), 50);
} else if (mode === 'tcp') {
  const [host, port] = a;
  const c = net.connect({ host, port: Number(port) });
  let data = '';
  c.on('data', (d) => (data += d));
  c.on('end', () => done(data));
  c.on('error', () => done('FAIL'));
  setTimeout(() => done('FAIL'), 500);
} else if (mode === 'udp') {
  const [host, port, sport, bind, broadcast] = a;
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => done(m.toString()));
  s.on('error', () => done('FAIL'));
  s.bind({ port: Number(sport || 0), address: bind || undefined }, () => {
    if (broadcast) s.setBroadcast(true);
    s.send('hello', Number(port), host);
  });
  setTimeout(() => done('FAIL'), 500);
} else if (mode === 'vxlan') {
  // A forged VXLAN packet: VNI, inner dst MAC (the remote vx), inner src/dst IPv4, inner UDP to dport.
  const [host, vni, dmac, smac, src, dst, dport] = a;
  const ip4 = (t) => Buffer.from(t.split('.').map(Number));
  const mac = (t) => Buffer.from(t.split(':').map((x) => parseInt(x, 16)));
  const payload = Buffer.from('forged');
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(1234, 0); udp.writeUInt16BE(Number(dport), 2); udp.writeUInt16BE(8 + payload.length, 4);
  const iph = Buffer.alloc(20);
  iph[0] = 0x45; iph.writeUInt16BE(20 + 8 + payload.length, 2); iph[8] = 64; iph[9] = 17;
  ip4(src).copy(iph, 12); ip4(dst).copy(iph, 16);
  let sum = 0; for (let i = 0; i < 20; i += 2) sum += iph.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  iph.writeUInt16BE(~sum & 0xffff, 10);
  const eth = Buffer.concat([mac(dmac), mac(smac), Buffer.from([0x08, 0x00])]);
  const vx = Buffer.alloc(8); vx[0] = 0x08; vx.writeUIntBE(Number(vni), 4, 3);
  const s = dgram.createSocket('udp4');
  s.send(Buffer.concat([vx, eth, iph, udp, payload]), 4789, host, () => done('sent'));
  setTimeout(() => done('sent?'), 700);
}
`,
);

function sh(args: string[]): string {
  return execFileSync(args[0] as string, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const inNs = (ns: string, args: string[]): string => sh(['ip', 'netns', 'exec', ns, ...args]);
function probe(ns: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'node', PROBE, ...args], { encoding: 'utf8' }, (_e, stdout) =>
      resolve(stdout.trim() || 'FAIL'),
    );
  });
}
const ping = (ns: string, to: string, extra: string[] = []): Promise<boolean> =>
  new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'busybox', 'ping', '-c', '1', '-W', '1', ...extra, to], (error) =>
      resolve(!error),
    );
  });
/** For a positive ping right after a reconfiguration: a new echo every second until a reply, at most 3 s. */
const RETRY = ['-w', '3'];
const arping = (ns: string, to: string): Promise<boolean> =>
  new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'busybox', 'arping', '-c', '1', '-w', '1', '-I', 'eth0', to], (error) =>
      resolve(!error),
    );
  });

const servers: { ns: string; child: ChildProcess; out: string[] }[] = [];
async function serve(ns: string, name: string, tcp: string, udp: string): Promise<string[]> {
  const child = spawn('ip', ['netns', 'exec', ns, 'node', PROBE, 'serve', name, tcp, udp], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out: string[] = [];
  servers.push({ ns, child, out });
  await new Promise<void>((resolve) => {
    child.stdout?.on('data', (d: Buffer) => {
      out.push(...d.toString().split('\n').filter(Boolean));
      if (out.includes('ready')) resolve();
    });
  });
  return out;
}

function link(ns1: string, if1: string, addr1: string, ns2: string, if2: string, addr2: string, mtu: number): void {
  sh([
    'ip',
    'link',
    'add',
    if1,
    'netns',
    ns1,
    'mtu',
    String(mtu),
    'type',
    'veth',
    'peer',
    'name',
    if2,
    'netns',
    ns2,
    'mtu',
    String(mtu),
  ]);
  sh(['ip', '-n', ns1, 'addr', 'add', addr1, 'dev', if1]);
  sh(['ip', '-n', ns2, 'addr', 'add', addr2, 'dev', if2]);
  sh(['ip', '-n', ns1, 'link', 'set', if1, 'up']);
  sh(['ip', '-n', ns2, 'link', 'set', if2, 'up']);
}

const podNs = (name: string): string => `${P}p${name}`;
/** A "pod": a namespace holding eth0, whose veth peer in the tenant namespace plays the tap. */
async function pod(tenant: TenantNetwork, name: string, podId: string, address: string): Promise<string> {
  const ns = podNs(name);
  sh(['ip', 'netns', 'add', ns]);
  const port = `tp${podId.slice(0, 12)}`;
  sh(['ip', 'link', 'add', port, 'netns', tenant.netnsName, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await tenant.attachPod({ podId, address, port: 'existing' });
  inNs(ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'address', guestMac(address), 'mtu', '1450', 'up']);
  sh(['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.0.0.1']);
  return ns;
}

function cleanupNamespaces(): void {
  for (const s of servers) s.child.kill('SIGKILL');
  const names = sh(['ip', 'netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(P));
  for (const n of names) {
    try {
      sh(['ip', 'netns', 'del', n]);
    } catch {
      // already gone
    }
  }
}

const rxPackets = (ns: string): number =>
  (
    JSON.parse(sh(['ip', '-n', ns, '-j', '-s', 'link', 'show', 'eth0'])) as { stats64: { rx: { packets: number } } }[]
  )[0]?.stats64.rx.packets ?? 0;

/** What a host namespace holds: its links and its whole nftables ruleset. */
const hostState = (ns: string): string =>
  [
    sh(['ip', '-n', ns, '-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(': ')[1]?.split('@')[0])
      .filter(Boolean)
      .sort()
      .join(' '),
    inNs(ns, ['nft', 'list', 'ruleset']),
  ].join('\n');
let baseline: string[] = [];

let hostA: HostNetwork;
let hostB: HostNetwork;
const T1 = 4711; // NAT, pods on both hosts
const T2 = 4712; // NAT, same subnet, pods on both hosts
const T3 = 4713; // DENY, host A only
let t1a: TenantNetwork;
let t1b: TenantNetwork;
let t2a: TenantNetwork;
let t2b: TenantNetwork;
let t3a: TenantNetwork;
let hostAServer: string[];
const podOut: Record<string, string[]> = {};

beforeAll(async () => {
  for (const ns of [HA, HB, INET]) sh(['ip', 'netns', 'add', ns]);
  for (const ns of [HA, HB, INET]) sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  link(HA, 'u0', `${UNDERLAY_A}/24`, HB, 'u0', `${UNDERLAY_B}/24`, 1500 + 50);
  link(HA, 'up0', `${UPLINK_A}/24`, INET, 'ia', `${SERVER}/24`, 1500);
  link(HB, 'up0', `${UPLINK_B}/24`, INET, 'ib', '198.51.101.1/24', 1500);
  sh(['ip', '-n', HA, 'route', 'add', 'default', 'via', SERVER]);
  sh(['ip', '-n', HB, 'route', 'add', 'default', 'via', '198.51.101.1']);
  inNs(INET, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  // The control plane's address (PostgreSQL/Redis stand-in), on host A's loopback (no dummy driver here).
  sh(['ip', '-n', HA, 'addr', 'add', `${CONTROL_PLANE}/32`, 'dev', 'lo']);

  baseline = [HA, HB].map(hostState);
  const forbidden = ['192.0.2.0/24', '203.0.113.0/24'];
  hostA = await HostNetwork.open({
    netns: HA,
    underlay: { ifname: 'u0', address: UNDERLAY_A },
    uplink: { ifname: 'up0', address: UPLINK_A },
    forbidden,
    tenantNetnsPrefix: `${P}a-t`,
  });
  hostB = await HostNetwork.open({
    netns: HB,
    underlay: { ifname: 'u0', address: UNDERLAY_B },
    uplink: { ifname: 'up0', address: UPLINK_B },
    forbidden,
    tenantNetnsPrefix: `${P}b-t`,
  });
  await hostA.setVteps([UNDERLAY_A, UNDERLAY_B]);
  await hostB.setVteps([UNDERLAY_B, UNDERLAY_A]);

  t1a = await hostA.tenant({ networkId: T1, subnet: SUBNET, egress: 'NAT' });
  t1b = await hostB.tenant({ networkId: T1, subnet: SUBNET, egress: 'NAT' });
  t2a = await hostA.tenant({ networkId: T2, subnet: SUBNET, egress: 'NAT' });
  t2b = await hostB.tenant({ networkId: T2, subnet: SUBNET, egress: 'NAT' });
  t3a = await hostA.tenant({ networkId: T3, subnet: SUBNET, egress: 'DENY' });
  await pod(t1a, 'a1', 'a1a1a1a1a1a1-0000', '10.0.0.2');
  await pod(t1a, 'a2', 'a2a2a2a2a2a2-0000', '10.0.0.3');
  await pod(t1b, 'b1', 'b1b1b1b1b1b1-0000', '10.0.0.4');
  await pod(t2a, 'c1', 'c1c1c1c1c1c1-0000', '10.0.0.2');
  await pod(t2b, 'c2', 'c2c2c2c2c2c2-0000', '10.0.0.5');
  await pod(t3a, 'd1', 'd1d1d1d1d1d1-0000', '10.0.0.2');
  await t1a.setPeers([{ address: '10.0.0.4', vtep: UNDERLAY_B }]);
  await t1b.setPeers([
    { address: '10.0.0.2', vtep: UNDERLAY_A },
    { address: '10.0.0.3', vtep: UNDERLAY_A },
    { address: '10.0.0.4', vtep: UNDERLAY_B },
  ]);
  await t2a.setPeers([{ address: '10.0.0.5', vtep: UNDERLAY_B }]);
  await t2b.setPeers([{ address: '10.0.0.2', vtep: UNDERLAY_A }]);

  await serve(INET, 'internet', '80', '7');
  hostAServer = await serve(HA, 'hostA', '5432,6379', '');
  for (const name of ['a1', 'a2', 'b1', 'c1', 'c2', 'd1'])
    podOut[name] = await serve(podNs(name), name, '8080', '9000');
}, 60_000);

afterAll(async () => {
  if (process.env['NNT_KEEP'] === '1') return;
  try {
    await hostA?.destroy();
    await hostB?.destroy();
  } finally {
    cleanupNamespaces();
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);

const replyFrom = (reply: string): string => reply.split(' ')[0] ?? '';
const count = async (t: { counters(): Promise<Record<string, { packets: number }>> }, name: string): Promise<number> =>
  (await t.counters())[name]?.packets ?? 0;

describe('same tenant', () => {
  it('reaches pods on the same host and across hosts over VXLAN (ICMP, TCP, UDP)', async () => {
    expect(await ping(podNs('a1'), '10.0.0.3')).toBe(true);
    expect(await ping(podNs('a1'), '10.0.0.4')).toBe(true);
    expect(await ping(podNs('b1'), '10.0.0.3')).toBe(true);
    expect(await probe(podNs('a1'), ['tcp', '10.0.0.3', '8080'])).toMatch(/^a2 10\.0\.0\.2:/);
    expect(await probe(podNs('a1'), ['tcp', '10.0.0.4', '8080'])).toMatch(/^b1 10\.0\.0\.2:/);
    expect(await probe(podNs('b1'), ['udp', '10.0.0.2', '9000'])).toMatch(/^a1 10\.0\.0\.4:/);
    expect(await probe(podNs('c2'), ['udp', '10.0.0.2', '9000'])).toMatch(/^c1 10\.0\.0\.5:/);
  });
});

describe('other tenant, same address space', () => {
  it('is unreachable: ICMP, TCP, UDP', async () => {
    // 10.0.0.5 is tenant 2's pod on host B; tenant 1 has no such pod.
    const before = podOut['c2']?.length ?? 0;
    expect(
      await Promise.all([
        ping(podNs('a1'), '10.0.0.5'),
        probe(podNs('a1'), ['tcp', '10.0.0.5', '8080']),
        probe(podNs('b1'), ['udp', '10.0.0.5', '9000']),
      ]),
    ).toEqual([false, 'FAIL', 'FAIL']);
    expect(podOut['c2']?.length).toBe(before);
    // Same address in both tenants on one host: each reaches its own.
    expect(replyFrom(await probe(podNs('a2'), ['tcp', '10.0.0.2', '8080']))).toBe('a1');
    expect(replyFrom(await probe(podNs('c2'), ['tcp', '10.0.0.2', '8080']))).toBe('c1');
  });

  it('answers no ARP for another tenant’s address; broadcast does not cross', async () => {
    expect(await Promise.all([arping(podNs('a1'), '10.0.0.3'), arping(podNs('a1'), '10.0.0.5')])).toEqual([
      true,
      false,
    ]);
    const rx = ['a2', 'c1', 'd1'].map((n) => rxPackets(podNs(n)));
    const out = ['a2', 'c1', 'd1'].map((n) => podOut[n]?.length);
    // Only the sender's own socket may hear its broadcast.
    expect(['FAIL', 'a1']).toContain(
      replyFrom(await probe(podNs('a1'), ['udp', '10.0.0.255', '9000', '', '', 'broadcast'])),
    );
    expect(['FAIL', 'a1']).toContain(
      replyFrom(await probe(podNs('a1'), ['udp', '255.255.255.255', '9000', '', '', 'broadcast'])),
    );
    expect(['a2', 'c1', 'd1'].map((n) => rxPackets(podNs(n)))).toEqual(rx);
    expect(['a2', 'c1', 'd1'].map((n) => podOut[n]?.length)).toEqual(out);
  });
});

describe('anti-spoofing', () => {
  it('drops and counts a spoofed source IP before conntrack', async () => {
    const before = await count(t1a, 'spoofed');
    sh(['ip', '-n', podNs('a1'), 'addr', 'add', '10.0.0.77/32', 'dev', 'eth0']);
    try {
      expect(
        await Promise.all([
          probe(podNs('a1'), ['udp', '10.0.0.3', '9000', '', '10.0.0.77']),
          ping(podNs('a1'), '10.0.0.4', ['-I', '10.0.0.77']),
        ]),
      ).toEqual(['FAIL', false]);
    } finally {
      sh(['ip', '-n', podNs('a1'), 'addr', 'del', '10.0.0.77/32', 'dev', 'eth0']);
    }
    expect(await count(t1a, 'spoofed')).toBeGreaterThanOrEqual(before + 2);
    expect(podOut['a2']?.some((l) => l.includes('10.0.0.77'))).toBe(false);
  });

  it('drops and counts a spoofed source MAC', async () => {
    const before = await count(t1a, 'spoofed');
    sh(['ip', '-n', podNs('a1'), 'link', 'set', 'eth0', 'address', '02:ca:0a:00:00:63']);
    try {
      expect(await ping(podNs('a1'), '10.0.0.3')).toBe(false);
    } finally {
      sh(['ip', '-n', podNs('a1'), 'link', 'set', 'eth0', 'address', guestMac('10.0.0.2')]);
    }
    expect(await count(t1a, 'spoofed')).toBeGreaterThan(before);
    expect(await ping(podNs('a1'), '10.0.0.3')).toBe(true);
  });
});

describe('infrastructure is out of reach', () => {
  it('blocks the host’s addresses, the other host’s underlay (incl. UDP 4789) and the control plane', async () => {
    const before = hostAServer.length;
    const forbidden = await count(t1a, 'forbidden');
    const attempts: Promise<string>[] = [];
    for (const [host, port] of [
      [UNDERLAY_A, '5432'],
      [UPLINK_A, '6379'],
      [CONTROL_PLANE, '5432'],
      [CONTROL_PLANE, '6379'],
      ['100.64.0.0', '5432'],
      [UNDERLAY_B, '22'],
      ['10.0.0.1', '5432'],
    ] as const) {
      attempts.push(probe(podNs('a1'), ['tcp', host, port]));
    }
    attempts.push(probe(podNs('a1'), ['udp', UNDERLAY_B, '4789']));
    const pings = [ping(podNs('a1'), UNDERLAY_B), ping(podNs('a1'), UNDERLAY_A)];
    expect(await Promise.all(attempts)).toEqual(attempts.map(() => 'FAIL'));
    expect(await Promise.all(pings)).toEqual([false, false]);
    expect(hostAServer.length).toBe(before);
    expect(await count(t1a, 'forbidden')).toBeGreaterThan(forbidden);
  });

  it('a forged VXLAN packet with the other tenant’s VNI reaches no one; the same packet from a VTEP is delivered', async () => {
    const forged = (target: string): string[] => [
      'vxlan',
      target,
      String(T2),
      vtepMac(UNDERLAY_B),
      vtepMac(UNDERLAY_A),
      '10.0.0.2',
      '10.0.0.5',
      '9000',
    ];
    const hits = (): number => podOut['c2']?.filter((l) => l.includes('forged')).length ?? 0;
    // Control: the packet is well formed (sent from host A's namespace, a known VTEP, it is delivered).
    await probe(HA, forged(UNDERLAY_B));
    await new Promise((r) => setTimeout(r, 200));
    expect(hits()).toBe(1);
    // From a pod of tenant 1: to host B's underlay and uplink.
    await Promise.all([probe(podNs('a1'), forged(UNDERLAY_B)), probe(podNs('a1'), forged(UPLINK_B))]);
    // Defence in depth: with the tenant namespace's guards bypassed, the host namespace still drops them.
    const hostBefore = await hostA.counters();
    inNs(t1a.netnsName, ['nft', 'insert', 'rule', 'inet', 'caas_guard', 'forward', 'accept']);
    try {
      const [, , cp] = await Promise.all([
        probe(podNs('a1'), forged(UNDERLAY_B)),
        probe(podNs('a1'), forged(UPLINK_B)),
        probe(podNs('a1'), ['tcp', CONTROL_PLANE, '5432']),
      ]);
      expect(cp).toBe('FAIL');
    } finally {
      await t1a.applyGuards();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(hits()).toBe(1);
    const hostAfter = await hostA.counters();
    const moved = (n: string): number => (hostAfter[n]?.packets ?? 0) - (hostBefore[n]?.packets ?? 0);
    expect(moved('tenant_forward') + moved('forbidden')).toBeGreaterThanOrEqual(2);
    expect(moved('tenant_input')).toBeGreaterThanOrEqual(1);
  });
});

describe('egress', () => {
  it('NATs two tenants with identical addresses and 5-tuples at once; replies reach the right tenant', async () => {
    const [r1, r2] = await Promise.all([
      probe(podNs('a1'), ['udp', SERVER, '7', '40000']),
      probe(podNs('c1'), ['udp', SERVER, '7', '40000']),
    ]);
    expect(r1).toMatch(/^internet 198\.51\.100\.11:\d+$/);
    expect(r2).toMatch(/^internet 198\.51\.100\.11:\d+$/);
    expect(r1).not.toBe(r2);
    const [t1, t2] = await Promise.all([
      probe(podNs('a1'), ['tcp', SERVER, '80']),
      probe(podNs('c1'), ['tcp', SERVER, '80']),
    ]);
    expect(t1).toMatch(/^internet 198\.51\.100\.11:/);
    expect(t2).toMatch(/^internet 198\.51\.100\.11:/);
    expect(await ping(podNs('b1'), SERVER)).toBe(true);
  });

  it('with egress DENY nothing leaves, and it is counted', async () => {
    const before = await count(t3a, 'egress_deny');
    expect(await Promise.all([probe(podNs('d1'), ['tcp', SERVER, '80']), ping(podNs('d1'), SERVER)])).toEqual([
      'FAIL',
      false,
    ]);
    expect(await count(t3a, 'egress_deny')).toBeGreaterThan(before);
  });
});

describe('IPv6', () => {
  it('is disabled in tenant namespaces and on pod ports', () => {
    for (const t of [t1a, t2b]) {
      expect(inNs(t.netnsName, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6']).trim()).toBe('1');
      const port = t.localPods()[0]?.ifname ?? 'missing';
      expect(inNs(t.netnsName, ['sysctl', '-n', `net.ipv6.conf.${port}.disable_ipv6`]).trim()).toBe('1');
    }
  });
});

describe('setPeers', () => {
  it('converges: removes stale peers, adds missing ones, idempotent', async () => {
    await t1a.setPeers([]);
    expect(await ping(podNs('a1'), '10.0.0.4')).toBe(false);
    expect(sh(['ip', '-n', t1a.netnsName, 'route', 'show', 'dev', 'vx4711']).trim()).toBe('');
    expect(sh(['bridge', '-n', t1a.netnsName, 'fdb', 'show', 'dev', 'vx4711'])).not.toContain(UNDERLAY_B);
    await t1a.setPeers([{ address: '10.0.0.4', vtep: UNDERLAY_B }]);
    await t1a.setPeers([{ address: '10.0.0.4', vtep: UNDERLAY_B }]);
    expect(await ping(podNs('a1'), '10.0.0.4', RETRY)).toBe(true);
  });
});

describe('host checks', () => {
  it('refuses an underlay whose MTU is below the tenant MTU + 50, and a shared underlay/uplink without its own egress address', async () => {
    await expect(
      HostNetwork.open({
        netns: HA,
        underlay: { ifname: 'u0', address: UNDERLAY_A },
        uplink: { ifname: 'up0' },
        mtu: 1501,
      }),
    ).rejects.toThrow(/MTU 1550 is below/);
    await expect(
      HostNetwork.open({ netns: HA, underlay: { ifname: 'u0', address: UNDERLAY_A }, uplink: { ifname: 'u0' } }),
    ).rejects.toThrow(/share a link/);
    await expect(
      HostNetwork.open({ netns: HA, underlay: { ifname: 'u0;x', address: UNDERLAY_A }, uplink: { ifname: 'up0' } }),
    ).rejects.toThrow(/invalid interface name/);
    await expect(hostA.tenant({ networkId: 99, subnet: '100.64.0.0/24', egress: 'NAT' })).rejects.toThrow(/RFC 1918/);
    await expect(hostA.tenant({ networkId: 99, subnet: '10.0.0.1/24', egress: 'NAT' })).rejects.toThrow(/invalid/);
    expect(sh(['ip', 'netns', 'list'])).not.toContain(`${P}a-t99`);
  });
});

describe('pod ports', () => {
  it('creates a persistent vnet_hdr tap with the fixed MAC, route, neighbour and anti-spoofing element; detach removes them', async () => {
    const pod = await t1a.attachPod({ podId: 'e1e1e1e1e1e1-4000', address: '10.0.0.9' });
    expect(pod.ifname).toBe('tpe1e1e1e1e1e1');
    const details = sh(['ip', '-n', t1a.netnsName, '-d', 'link', 'show', pod.ifname]);
    expect(details).toMatch(/tun type tap .*vnet_hdr on persist on/);
    expect(details).toContain('link/ether 02:ca:00:00:00:01');
    expect(sh(['ip', '-n', t1a.netnsName, 'route', 'show', '10.0.0.9'])).toContain(pod.ifname);
    expect(sh(['ip', '-n', t1a.netnsName, 'neigh', 'show', '10.0.0.9'])).toContain('02:ca:0a:00:00:09 PERMANENT');
    expect(inNs(t1a.netnsName, ['nft', 'list', 'set', 'inet', 'caas_guard', 'pod_src'])).toContain('10.0.0.9');
    await t1a.detachPod('e1e1e1e1e1e1-4000');
    expect(sh(['ip', '-n', t1a.netnsName, 'link', 'show'])).not.toContain(pod.ifname);
    expect(inNs(t1a.netnsName, ['nft', 'list', 'set', 'inet', 'caas_guard', 'pod_src'])).not.toContain('10.0.0.9');
    expect(sh(['ip', '-n', t1a.netnsName, 'route', 'show', '10.0.0.9']).trim()).toBe('');
  });
});

describe('agent restart', () => {
  it('re-opening the host and the tenant adopts the kernel state (transit /31, VTEPs, anti-spoofing kept); prune removes unwanted ports', async () => {
    const again = await HostNetwork.open({
      netns: HA,
      underlay: { ifname: 'u0', address: UNDERLAY_A },
      uplink: { ifname: 'up0', address: UPLINK_A },
      forbidden: ['192.0.2.0/24', '203.0.113.0/24'],
      tenantNetnsPrefix: `${P}a-t`,
    });
    expect(inNs(HA, ['nft', 'list', 'set', 'inet', 'caas_host', 'vteps'])).toContain(UNDERLAY_B);
    expect(inNs(HA, ['nft', 'list', 'set', 'inet', 'caas_host', 'veth_src'])).toContain('"vh4711" . 100.64.0.1');
    const t = await again.tenant({ networkId: T1, subnet: SUBNET, egress: 'NAT' });
    expect(t.transit).toMatchObject({ host: '100.64.0.0', tenant: '100.64.0.1' });
    // Adopted before any pod is re-attached: the anti-spoofing elements were kept, traffic still flows.
    expect(await ping(podNs('a1'), '10.0.0.3', RETRY)).toBe(true);
    await t.attachPod({ podId: 'a1a1a1a1a1a1-0000', address: '10.0.0.2', port: 'existing' });
    await t.setPeers([{ address: '10.0.0.4', vtep: UNDERLAY_B }]);
    expect(await ping(podNs('a1'), '10.0.0.4', RETRY)).toBe(true);
    expect(await probe(podNs('a1'), ['tcp', SERVER, '80'])).toMatch(/^internet /);
    // a2 is no longer wanted: pruning removes its port, route and anti-spoofing element.
    expect(await t.pruneUnknownPorts()).toEqual(['tpa2a2a2a2a2a2']);
    expect(await ping(podNs('a1'), '10.0.0.3')).toBe(false);
    expect(inNs(t.netnsName, ['nft', 'list', 'set', 'inet', 'caas_guard', 'pod_src'])).not.toContain('10.0.0.3');
    expect(sh(['ip', '-n', t.netnsName, 'route', 'show', '10.0.0.3']).trim()).toBe('');
  });
});

describe('teardown', () => {
  it('last pod gone removes the tenant namespace, veth, VXLAN, host elements and host conntrack entries', async () => {
    const transit = t2a.transit.tenant;
    const ctCount = (): number =>
      execFileSync('ip', ['netns', 'exec', HA, 'conntrack', '-L', '-s', transit], { encoding: 'utf8', stdio: 'pipe' })
        .split('\n')
        .filter(Boolean).length;
    expect(ctCount()).toBeGreaterThan(0); // from the egress test
    expect(hostState(HA)).toContain(`vh${T2}`);
    await t2a.detachPod('c1c1c1c1c1c1-0000');
    const netns = sh(['ip', 'netns', 'list']);
    expect(netns).not.toContain(`${P}a-t${T2}`);
    expect(netns).toContain(`${P}a-t${T1}`);
    const state = hostState(HA);
    expect(state).not.toContain(`vh${T2}`);
    expect(state).not.toContain(transit);
    expect(state).toContain(`vh${T1}`);
    expect(ctCount()).toBe(0);
    expect(await ping(podNs('a1'), '10.0.0.4', RETRY)).toBe(true);
  });

  it('destroy leaves each host namespace as it was before the first tenant', async () => {
    await hostA.destroy();
    await hostB.destroy();
    expect(sh(['ip', 'netns', 'list'])).not.toMatch(new RegExp(`${P}[ab]-t`));
    expect([HA, HB].map(hostState)).toEqual(baseline);
    for (const ns of [HA, HB])
      expect(sh(['ip', '-n', ns, '-o', 'link', 'show'])).not.toMatch(/ (vh|vx|vt|tp)[0-9a-f]+[@:]/);
  });
});
