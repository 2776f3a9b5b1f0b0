// A sandbox with a network (ADR-006): QEMU runs in the given namespace on a tap the sandbox creates for the VM's
// uid; the guest configures its interface from the `network` op before its containers start. The namespace here
// plays the tenant namespace: the gateway on lo, proxy ARP and a /32 route on the tap, as the network layer does.
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
    manager = await openManager(stateDir);
  });

  afterAll(() => {
    execFileSync('ip', ['netns', 'delete', NETNS]);
    scratch.remove();
  });

  it('boots on its own tap in the namespace; the guest has its address, MTU and default route; nothing left after', async () => {
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
      // QEMU runs in the namespace, on a tap owned by the VM's uid.
      expect(statSync(`/proc/${sandbox.pid}/ns/net`).ino).toBe(statSync(`/run/netns/${NETNS}`).ino);
      expect(inNs('cat', `/sys/class/net/${TAP}/owner`).trim()).toBe(
        String(statSync(join(stateDir, 'net-1', 'vm')).uid),
      );
      // The network layer's part: the tap routed to the pod's address, answering ARP for the gateway.
      inNs('sysctl', '-q', '-w', `net.ipv4.conf.${TAP}.proxy_arp=1`);
      inNs('ip', 'link', 'set', TAP, 'up');
      inNs('ip', 'route', 'add', '10.0.0.2/32', 'dev', TAP);

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
    expect(inNs('ip', '-o', 'link')).not.toContain(TAP); // the tap went with the VM
  });
});
