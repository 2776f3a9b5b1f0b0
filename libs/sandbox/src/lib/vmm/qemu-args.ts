import { VmmError } from './errors';
import { validateHostPath, validateSocketPath, validateVmDir, validateVmId, vmPaths } from './paths';

export type Accelerator = 'kvm' | 'tcg';

/** How the VM boots. */
export type QemuBoot =
  | {
      kind: 'kernel';
      /** Opened by QEMU by path, as the VM's uid: must be readable by it (see `launchQemu`). */
      kernel: string;
      initrd?: string;
      /** The host's TSC frequency (`hostTscKhz()`), passed as `tsc_early_khz` with `tsc=reliable`. */
      tscKhz: number;
      /** Extra kernel command-line parameters, after ours; one parameter per entry, no whitespace. */
      guestParams?: readonly string[];
      /** Adds `quiet` (default true): the console log then holds warnings, errors and panics only. */
      quiet?: boolean;
    }
  | {
      /** No kernel: QEMU's own microvm firmware (qboot), or `firmware` as `-bios`. For paused VMs and tests. */
      kind: 'firmware';
      firmware?: string;
    };

/** A read-only raw disk image, visible in the guest as `/sys/block/vdX/serial` = `serial`. */
export interface QemuDisk {
  /** Opened read-only by the host process and handed to QEMU as a file descriptor: QEMU never needs the path. */
  path: string;
  serial: string;
}

export interface QemuSpec {
  /** The VM directory: QEMU's sockets, pidfile and console log live here. */
  dir: string;
  accel: Accelerator;
  memoryMiB: number;
  vcpus: number;
  boot: QemuBoot;
  disks?: readonly QemuDisk[];
  /** `-S`: QEMU starts with the vCPUs stopped until QMP `cont`. */
  paused?: boolean;
  /** `-name guest=<name>` (shows in QMP `query-name`); a VM id. */
  name?: string;
  /**
   * The pod's network interface, seen by the guest as a virtio-net device with `mac`: QEMU gets its tap as an
   * open file descriptor (`QemuCommand.tapFd`, which the launch puts there: see `launchQemu`'s `tap`), never by name.
   */
  nic?: QemuNic;
}

export interface QemuNic {
  mac: string;
}

export interface QemuCommand {
  args: string[];
  /** Host files to open read-only and pass to QEMU: `passFiles[i]` must be at fd `FIRST_PASSED_FD + i`. */
  passFiles: string[];
  /** With a `nic`: the descriptor QEMU expects its tap at (after the passed files). */
  tapFd?: number;
}

/** Passed files follow stdin, stdout and stderr. */
export const FIRST_PASSED_FD = 3;
export const MIN_MEMORY_MIB = 32;
export const MAX_MEMORY_MIB = 1024 * 1024;
export const MAX_VCPUS = 64;
/** microvm has 24 virtio-mmio transports; virtio-serial takes one. */
export const MAX_DISKS = 16;
/** virtio-blk's serial is a 20-byte field. */
export const MAX_DISK_SERIAL_BYTES = 20;

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

function nicArgs(nic: QemuNic, tapFd: number): string[] {
  if (!MAC.test(nic.mac)) invalid(`mac ${JSON.stringify(nic.mac)} must be a lower-case MAC address`);
  return ['-netdev', `tap,id=net0,fd=${tapFd}`, '-device', `virtio-net-device,netdev=net0,mac=${nic.mac}`];
}

/** Never absent, whatever the spec: the flags the platform's isolation relies on. */
export const QEMU_SANDBOX_OPTION = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/**
 * The machine every VM runs on, and the KVM probe (accel.ts) boots: a microvm with ACPI, no default devices,
 * config file, display or reboot, the accelerator with its CPU model, memory and vCPUs.
 */
export function machineArgs(accel: Accelerator, memoryMiB: number, vcpus: number): string[] {
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-machine',
    'microvm,acpi=on',
    '-accel',
    accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-m',
    String(memoryMiB),
    '-smp',
    String(vcpus),
  ];
}

/** Kernel parameters we set ourselves; `guestParams` may not override them. */
const RESERVED_GUEST_PARAMS = new Set(['console', 'panic', 'tsc_early_khz', 'tsc', 'quiet']);
const DISK_SERIAL = /^[A-Za-z0-9-]{1,20}$/;
// eslint-disable-next-line no-control-regex
const GUEST_PARAM = /^[^\s"\u0000-\u001f\u007f]+$/;

function invalid(message: string): never {
  throw new VmmError('INVALID_SPEC', message);
}

function checkInteger(what: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    invalid(`${what} must be an integer in ${min}..${max}, got ${value}`);
  }
}

function kernelCommandLine(boot: Extract<QemuBoot, { kind: 'kernel' }>): string {
  checkInteger('tscKhz', boot.tscKhz, 1, 100_000_000);
  const extra = boot.guestParams ?? [];
  for (const param of extra) {
    if (!GUEST_PARAM.test(param)) invalid(`guest parameter ${JSON.stringify(param)} must be one word, no quotes`);
    const key = param.split('=', 1)[0] ?? '';
    if (RESERVED_GUEST_PARAMS.has(key)) invalid(`guest parameter ${key} is set by the VMM layer`);
  }
  return [
    'console=ttyS0',
    'panic=-1',
    ...(boot.quiet === false ? [] : ['quiet']),
    `tsc_early_khz=${boot.tscKhz}`,
    'tsc=reliable',
    ...extra,
  ].join(' ');
}

function bootArgs(boot: QemuBoot): string[] {
  switch (boot.kind) {
    case 'kernel': {
      validateHostPath('kernel', boot.kernel);
      if (boot.initrd !== undefined) validateHostPath('initrd', boot.initrd);
      return [
        '-kernel',
        boot.kernel,
        ...(boot.initrd !== undefined ? ['-initrd', boot.initrd] : []),
        '-append',
        kernelCommandLine(boot),
      ];
    }
    case 'firmware':
      if (boot.firmware === undefined) return [];
      validateHostPath('firmware', boot.firmware);
      return ['-bios', boot.firmware];
  }
}

function diskArgs(disks: readonly QemuDisk[]): QemuCommand {
  if (disks.length > MAX_DISKS) invalid(`at most ${MAX_DISKS} disks, got ${disks.length}`);
  const serials = new Set<string>();
  const args: string[] = [];
  const passFiles: string[] = [];
  disks.forEach((disk, i) => {
    validateHostPath(`disk ${disk.serial}`, disk.path);
    if (!DISK_SERIAL.test(disk.serial)) {
      invalid(`disk serial ${JSON.stringify(disk.serial)} must be 1..20 of [A-Za-z0-9-]`);
    }
    if (serials.has(disk.serial)) invalid(`duplicate disk serial ${disk.serial}`);
    serials.add(disk.serial);
    const fdset = i + 1;
    args.push(
      '-add-fd',
      `fd=${FIRST_PASSED_FD + i},set=${fdset},opaque=disk-${disk.serial}`,
      '-drive',
      `if=none,id=disk${i},file=/dev/fdset/${fdset},readonly=on,format=raw`,
      '-device',
      `virtio-blk-device,drive=disk${i},serial=${disk.serial}`,
    );
    passFiles.push(disk.path);
  });
  return { args, passFiles };
}

/**
 * The QEMU command line for a microVM (pure). Always: no default devices, no user config, no display, no
 * reboot, a guest panic is an exit (code 1) with a `GUEST_PANICKED` event, QMP and both virtio-serial ports as
 * unix-socket servers in the VM dir, read-only disks passed as file descriptors, `-sandbox` with every deny
 * option, and no network device but the pod's own tap when `nic` is given.
 */
export function buildQemuCommand(spec: QemuSpec): QemuCommand {
  validateVmDir(spec.dir);
  const paths = vmPaths(spec.dir);
  for (const socket of [paths.qmpSocket, paths.ctlSocket, paths.outSocket]) validateSocketPath(socket);
  checkInteger('memoryMiB', spec.memoryMiB, MIN_MEMORY_MIB, MAX_MEMORY_MIB);
  checkInteger('vcpus', spec.vcpus, 1, MAX_VCPUS);
  if (spec.name !== undefined) validateVmId(spec.name);
  const disks = diskArgs(spec.disks ?? []);
  const tapFd = spec.nic === undefined ? undefined : FIRST_PASSED_FD + disks.passFiles.length;

  const args = [
    ...(spec.name !== undefined ? ['-name', `guest=${spec.name}`] : []),
    ...machineArgs(spec.accel, spec.memoryMiB, spec.vcpus),
    ...bootArgs(spec.boot),
    '-serial',
    `file:${paths.consoleLog}`,
    '-device',
    'pvpanic',
    '-action',
    'panic=exit-failure',
    '-qmp',
    `unix:${paths.qmpSocket},server=on,wait=off`,
    '-pidfile',
    paths.pidfile,
    '-device',
    'virtio-serial-device',
    '-chardev',
    `socket,id=ctl,path=${paths.ctlSocket},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=ctl,name=caas.ctl',
    '-chardev',
    `socket,id=out,path=${paths.outSocket},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=out,name=caas.out',
    ...disks.args,
    ...(spec.nic && tapFd !== undefined ? nicArgs(spec.nic, tapFd) : []),
    '-sandbox',
    QEMU_SANDBOX_OPTION,
    '-msg',
    'timestamp=on',
    ...(spec.paused === true ? ['-S'] : []),
  ];
  return { args, passFiles: disks.passFiles, ...(tapFd !== undefined && { tapFd }) };
}

/** `buildQemuCommand(spec).args`. */
export function buildQemuArgs(spec: QemuSpec): string[] {
  return buildQemuCommand(spec).args;
}

/**
 * The host files a QEMU command line makes QEMU open by path (kernel, initrd, firmware, and `-drive file=`
 * unless it is an fdset): the files that must be readable by the VM's uid.
 */
export function filesOpenedByPath(args: readonly string[]): string[] {
  const files: string[] = [];
  for (let i = 0; i < args.length - 1; i++) {
    const flag = args[i];
    const value = args[i + 1] ?? '';
    if (flag === '-kernel' || flag === '-initrd' || flag === '-bios') files.push(value);
    if (flag === '-drive') {
      const file = value
        .split(',')
        .find((option) => option.startsWith('file='))
        ?.slice('file='.length);
      if (file !== undefined && !file.startsWith('/dev/fdset/')) files.push(file);
    }
  }
  return files;
}
