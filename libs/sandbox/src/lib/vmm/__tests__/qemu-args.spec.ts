import { VmmError } from '../errors';
import { MAX_SOCKET_PATH_BYTES } from '../paths';
import { buildQemuArgs, buildQemuCommand, filesOpenedByPath, QEMU_SANDBOX_OPTION } from '../qemu-args';
import type { QemuSpec } from '../qemu-args';

const kernelSpec: QemuSpec = {
  dir: '/var/lib/caas/vms/pod-1',
  accel: 'tcg',
  memoryMiB: 256,
  vcpus: 1,
  boot: {
    kind: 'kernel',
    kernel: '/var/lib/caas/guest/vmlinuz',
    initrd: '/var/lib/caas/guest/initrd',
    tscKhz: 2100000,
  },
  disks: [
    { path: '/var/lib/caas/images/sha256-abc.ext4', serial: 'c0' },
    { path: '/var/lib/caas/images/sha256-def.erofs', serial: 'c1' },
  ],
};

/** The value following `flag` each time it appears. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof VmmError ? error.code : `not a VmmError: ${String(error)}`;
  }
  return undefined;
}

const variants: [string, QemuSpec][] = [
  ['kernel + disks, tcg', kernelSpec],
  ['kvm', { ...kernelSpec, accel: 'kvm' }],
  ['firmware, paused, no disks', { ...kernelSpec, boot: { kind: 'firmware' }, disks: [], paused: true }],
  ['custom firmware', { ...kernelSpec, boot: { kind: 'firmware', firmware: '/opt/fw.bin' } }],
  [
    'named, verbose guest',
    { ...kernelSpec, name: 'pod-1', boot: { ...kernelSpec.boot, quiet: false } as QemuSpec['boot'] },
  ],
];

describe('buildQemuArgs: security-relevant flags, whatever the spec', () => {
  it.each(variants)('%s', (_name, spec) => {
    const args = buildQemuArgs(spec);
    for (const flag of ['-nodefaults', '-no-user-config', '-no-reboot']) expect(args).toContain(flag);
    expect(values(args, '-display')).toEqual(['none']);
    expect(values(args, '-sandbox')).toEqual([QEMU_SANDBOX_OPTION]);
    expect(QEMU_SANDBOX_OPTION).toBe('on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    expect(values(args, '-machine')).toEqual(['microvm,acpi=on']);
    expect(values(args, '-action')).toEqual(['panic=exit-failure']);
    expect(values(args, '-device')).toContain('pvpanic');
    // No network of any kind: not a flag, not a device, not a netdev option hidden in another value.
    for (const flag of ['-netdev', '-nic', '-net', '-usb', '-monitor', '-vnc', '-spice', '-chroot', '-runas']) {
      expect(args).not.toContain(flag);
    }
    expect(
      args.filter((a) => /netdev|hostfwd|virtio-net|e1000|rtl8139|vhost|\btap\b|^user\b|[,=]user\b/i.test(a)),
    ).toEqual([]);
    // Devices come from an allow-list: nothing else is ever attached.
    for (const device of values(args, '-device')) {
      expect(device).toMatch(
        /^(pvpanic|virtio-serial-device|virtserialport,chardev=(ctl|out),name=caas\.(ctl|out)|virtio-blk-device,drive=disk\d+,serial=[A-Za-z0-9-]+)$/,
      );
    }
    // Every drive is read-only raw from an fdset, every socket is a server in the VM dir.
    for (const drive of values(args, '-drive'))
      expect(drive).toMatch(/^if=none,id=disk\d+,file=\/dev\/fdset\/\d+,readonly=on,format=raw$/);
    for (const chardev of values(args, '-chardev'))
      expect(chardev).toMatch(new RegExp(`^socket,id=\\w+,path=${spec.dir}/\\w+\\.sock,server=on,wait=off$`));
  });
});

describe('buildQemuCommand', () => {
  it('builds the whole microvm command line', () => {
    const { args, passFiles } = buildQemuCommand(kernelSpec);
    expect(args.join(' ')).toBe(
      [
        '-nodefaults -no-user-config -display none -no-reboot',
        '-machine microvm,acpi=on -accel tcg -cpu max -m 256 -smp 1',
        '-kernel /var/lib/caas/guest/vmlinuz -initrd /var/lib/caas/guest/initrd',
        '-append console=ttyS0 panic=-1 quiet tsc_early_khz=2100000 tsc=reliable',
        '-serial file:/var/lib/caas/vms/pod-1/console.log',
        '-device pvpanic -action panic=exit-failure',
        '-qmp unix:/var/lib/caas/vms/pod-1/qmp.sock,server=on,wait=off',
        '-pidfile /var/lib/caas/vms/pod-1/qemu.pid',
        '-device virtio-serial-device',
        '-chardev socket,id=ctl,path=/var/lib/caas/vms/pod-1/ctl.sock,server=on,wait=off',
        '-device virtserialport,chardev=ctl,name=caas.ctl',
        '-chardev socket,id=out,path=/var/lib/caas/vms/pod-1/out.sock,server=on,wait=off',
        '-device virtserialport,chardev=out,name=caas.out',
        '-add-fd fd=3,set=1,opaque=disk-c0',
        '-drive if=none,id=disk0,file=/dev/fdset/1,readonly=on,format=raw',
        '-device virtio-blk-device,drive=disk0,serial=c0',
        '-add-fd fd=4,set=2,opaque=disk-c1',
        '-drive if=none,id=disk1,file=/dev/fdset/2,readonly=on,format=raw',
        '-device virtio-blk-device,drive=disk1,serial=c1',
        `-sandbox ${QEMU_SANDBOX_OPTION}`,
        '-msg timestamp=on',
      ].join(' '),
    );
    expect(passFiles).toEqual(['/var/lib/caas/images/sha256-abc.ext4', '/var/lib/caas/images/sha256-def.erofs']);
  });

  it('uses -cpu host under KVM and max under TCG', () => {
    expect(values(buildQemuArgs({ ...kernelSpec, accel: 'kvm' }), '-cpu')).toEqual(['host']);
    expect(values(buildQemuArgs({ ...kernelSpec, accel: 'kvm' }), '-accel')).toEqual(['kvm']);
    expect(values(buildQemuArgs(kernelSpec), '-cpu')).toEqual(['max']);
  });

  it('appends guest parameters after its own, drops quiet on request, pauses with -S, names the guest', () => {
    const args = buildQemuArgs({
      ...kernelSpec,
      paused: true,
      name: 'pod-1',
      boot: {
        kind: 'kernel',
        kernel: '/k',
        tscKhz: 1999999,
        quiet: false,
        guestParams: ['caas.outbuf=65536', 'rdinit=/init'],
      },
    });
    expect(values(args, '-append')).toEqual([
      'console=ttyS0 panic=-1 tsc_early_khz=1999999 tsc=reliable caas.outbuf=65536 rdinit=/init',
    ]);
    expect(args).not.toContain('-initrd');
    expect(args[args.length - 1]).toBe('-S');
    expect(values(args, '-name')).toEqual(['guest=pod-1']);
  });

  it('boots the firmware without -kernel/-append', () => {
    const args = buildQemuArgs({ ...kernelSpec, boot: { kind: 'firmware' } });
    expect(args).not.toContain('-kernel');
    expect(args).not.toContain('-append');
    expect(args).not.toContain('-bios');
    expect(values(buildQemuArgs({ ...kernelSpec, boot: { kind: 'firmware', firmware: '/fw.bin' } }), '-bios')).toEqual([
      '/fw.bin',
    ]);
  });

  it('accepts socket paths of exactly 107 bytes and refuses 108', () => {
    const base = '/tmp/';
    // `<dir>/qmp.sock` (and ctl.sock, out.sock: same length) is dir + 9 bytes.
    const dirFor = (socketBytes: number): string => base + 'd'.repeat(socketBytes - 9 - base.length);
    expect(Buffer.byteLength(`${dirFor(107)}/qmp.sock`)).toBe(MAX_SOCKET_PATH_BYTES);
    expect(codeOf(() => buildQemuArgs({ ...kernelSpec, dir: dirFor(107) }))).toBeUndefined();
    expect(codeOf(() => buildQemuArgs({ ...kernelSpec, dir: dirFor(108) }))).toBe('SOCKET_PATH_TOO_LONG');
    // Bytes, not characters.
    expect(codeOf(() => buildQemuArgs({ ...kernelSpec, dir: `/tmp/${'é'.repeat(50)}` }))).toBe('SOCKET_PATH_TOO_LONG');
    expect(() => buildQemuArgs({ ...kernelSpec, dir: dirFor(108) })).toThrow(/at most 107/);
  });

  it.each<[string, Partial<QemuSpec>]>([
    ['relative dir', { dir: 'vms/pod-1' }],
    ['dir with a comma', { dir: '/vms/a,b' }],
    ['dir not normalized', { dir: '/vms/../etc' }],
    ['dir with a newline', { dir: '/vms/a\nb' }],
    ['root dir', { dir: '/' }],
    ['zero memory', { memoryMiB: 0 }],
    ['fractional memory', { memoryMiB: 128.5 }],
    ['too little memory', { memoryMiB: 16 }],
    ['huge memory', { memoryMiB: 2 * 1024 * 1024 }],
    ['no vcpus', { vcpus: 0 }],
    ['too many vcpus', { vcpus: 65 }],
    ['NaN vcpus', { vcpus: Number.NaN }],
    ['bad name', { name: 'Pod_1' }],
    ['serial too long (21 bytes)', { disks: [{ path: '/i', serial: 'a'.repeat(21) }] }],
    ['serial with an underscore', { disks: [{ path: '/i', serial: 'c_0' }] }],
    ['serial with a comma (option injection)', { disks: [{ path: '/i', serial: 'c0,file=/etc/shadow' }] }],
    ['empty serial', { disks: [{ path: '/i', serial: '' }] }],
    [
      'duplicate serials',
      {
        disks: [
          { path: '/i', serial: 'c0' },
          { path: '/j', serial: 'c0' },
        ],
      },
    ],
    ['disk path with a comma (option injection)', { disks: [{ path: '/i,readonly=off', serial: 'c0' }] }],
    ['relative disk path', { disks: [{ path: 'i.ext4', serial: 'c0' }] }],
    ['17 disks', { disks: Array.from({ length: 17 }, (_, i) => ({ path: `/i${i}`, serial: `c${i}` })) }],
    ['kernel path with a comma', { boot: { kind: 'kernel', kernel: '/k,x', tscKhz: 1 } }],
    ['zero TSC', { boot: { kind: 'kernel', kernel: '/k', tscKhz: 0 } }],
    ['guest param with a space', { boot: { kind: 'kernel', kernel: '/k', tscKhz: 1, guestParams: ['a b'] } }],
    ['guest param with a quote', { boot: { kind: 'kernel', kernel: '/k', tscKhz: 1, guestParams: ['a="b'] } }],
    ['guest param overriding panic', { boot: { kind: 'kernel', kernel: '/k', tscKhz: 1, guestParams: ['panic=0'] } }],
    [
      'guest param overriding console',
      { boot: { kind: 'kernel', kernel: '/k', tscKhz: 1, guestParams: ['console=tty0'] } },
    ],
    ['a MAC with an option in it', { nic: { mac: '02:ca:0a:00:00:02,x=y' } }],
    ['an upper-case MAC', { nic: { mac: '02:CA:0A:00:00:02' } }],
  ])('refuses %s', (_name, patch) => {
    expect(codeOf(() => buildQemuArgs({ ...kernelSpec, ...patch }))).toBe('INVALID_SPEC');
  });

  it("gives the pod's tap (a descriptor after the disks') to the guest as a virtio-net device with its MAC", () => {
    const command = buildQemuCommand({
      ...kernelSpec,
      disks: [{ path: '/i', serial: 'c0' }],
      nic: { mac: '02:ca:0a:00:00:02' },
    });
    const args = command.args;
    expect(command.tapFd).toBe(4);
    expect(values(args, '-netdev')).toEqual(['tap,id=net0,fd=4']);
    expect(values(args, '-device')).toContain('virtio-net-device,netdev=net0,mac=02:ca:0a:00:00:02');
    for (const flag of ['-nic', '-net']) expect(args).not.toContain(flag);
  });

  it('accepts a 20-byte serial of letters, digits and dashes', () => {
    const serial = 'Ab-0123456789-abcdef';
    expect(serial).toHaveLength(20);
    expect(values(buildQemuArgs({ ...kernelSpec, disks: [{ path: '/i', serial }] }), '-device')).toContain(
      `virtio-blk-device,drive=disk0,serial=${serial}`,
    );
  });
});

describe('filesOpenedByPath', () => {
  it('lists kernel, initrd and firmware, not fdset disks', () => {
    expect(filesOpenedByPath(buildQemuArgs(kernelSpec))).toEqual([
      '/var/lib/caas/guest/vmlinuz',
      '/var/lib/caas/guest/initrd',
    ]);
    expect(filesOpenedByPath(buildQemuArgs({ ...kernelSpec, boot: { kind: 'firmware', firmware: '/fw' } }))).toEqual([
      '/fw',
    ]);
  });

  it('lists a -drive opened by path', () => {
    expect(filesOpenedByPath(['-drive', 'if=none,file=/img/a.raw,readonly=on', '-kernel', '/k'])).toEqual([
      '/img/a.raw',
      '/k',
    ]);
  });
});
