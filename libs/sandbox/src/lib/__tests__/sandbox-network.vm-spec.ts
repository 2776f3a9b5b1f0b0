// A sandbox with a network (ADR-006): QEMU runs in the given namespace and gets the pod's tap as a descriptor; the
// guest configures its interface from the `network` op before its containers start. The test plays the network
// layer: the namespace with the gateway on lo, the persistent tap with proxy ARP and a /32 route to the pod.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxManager } from '../sandbox-manager';
import { OutputLog, container, expectNothingLeft, image, openManager, scratchDir, waitFor } from './support/vm-harness';

jest.setTimeout(180_000);

const NETNS = `sbn${process.pid}`;
const TAP = 'tpsbn1';
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', NETNS, ...args], { encoding: 'utf8' });

describe('a sandbox with a network (real VM)', () => {
  const scratch = scratchDir();
  const stateDir = join(scratch.dir, 's');
  let manager: SandboxManager;

  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', NETNS]);
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'addr', 'add', '10.0.0.1/32', 'dev', 'lo');
    inNs('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'vnet_hdr');
    inNs('sysctl', '-q', '-w', `net.ipv4.conf.${TAP}.proxy_arp=1`);
    inNs('ip', 'link', 'set', TAP, 'up');
    inNs('ip', 'route', 'add', '10.0.0.2/32', 'dev', TAP);
    manager = await openManager(stateDir);
  });

  afterAll(() => {
    execFileSync('ip', ['netns', 'delete', NETNS]);
    scratch.remove();
  });

  it('boots in the namespace on its tap; the guest has its address, MTU and default route; the tap outlives the VM', async () => {
    const busybox = image(scratch.dir, 'busybox');
    let log: OutputLog | undefined;
    manager.once('sandbox', (launched) => (log = new OutputLog(launched)));
    const sandbox = await manager.create({
      id: 'net-1',
      vcpus: 1,
      memoryMiB: 128,
      containers: [
        container(
          'probe',
          busybox,
          'cat /sys/class/net/eth0/mtu /sys/class/net/eth0/address; ip -4 addr 2>/dev/null; ip route 2>/dev/null; cat /proc/net/route; sleep 600',
        ),
      ],
      network: {
        netns: `/run/netns/${NETNS}`,
        tap: TAP,
        mac: '02:ca:0a:00:00:02',
        address: '10.0.0.2/24',
        gateway: '10.0.0.1',
        mtu: 1450,
      },
    });
    try {
      // QEMU runs in the namespace, holding the tap open (as an unprivileged uid: it got a descriptor).
      expect(statSync(`/proc/${sandbox.pid}/ns/net`).ino).toBe(statSync(`/run/netns/${NETNS}`).ino);
      expect(inNs('ip', '-o', 'link', 'show', TAP)).toMatch(/LOWER_UP/);

      await waitFor('the probe container output', () => (log?.text('probe', 'stdout') ?? '').includes('0000'));
      const out = log?.text('probe', 'stdout') ?? '';
      expect(out).toContain('1450\n02:ca:0a:00:00:02\n');
      // /proc/net/route: a default route (destination 00000000) via 10.0.0.1 (0100000A, little-endian) on eth0.
      expect(out).toMatch(/eth0\s+00000000\s+0100000A/);
      // Packets both ways: the guest's kernel answers a ping from the namespace.
      expect(inNs('busybox', 'ping', '-c', '1', '-W', '10', '10.0.0.2')).toMatch(/1 packets received/);
    } finally {
      await sandbox.destroy();
    }
    await expectNothingLeft(sandbox, stateDir);
    // The tap belongs to the network layer: still there, no longer carried by anyone.
    expect(inNs('ip', '-o', 'link', 'show', TAP)).not.toMatch(/LOWER_UP/);
  });
});
