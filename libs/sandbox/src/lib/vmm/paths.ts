import { isAbsolute, join, normalize } from 'node:path';
import { VmmError } from './errors';

/** `sockaddr_un.sun_path` is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** The files QEMU keeps in a VM's directory. All of them are created by QEMU (as the VM's uid) except `qemuLog`. */
export interface VmPaths {
  dir: string;
  /** QMP control socket (QEMU is the server). */
  qmpSocket: string;
  /** virtio-serial port `caas.ctl` (QEMU is the server). */
  ctlSocket: string;
  /** virtio-serial port `caas.out` (QEMU is the server). */
  outSocket: string;
  /** Written by QEMU once it has parsed its options; removed when it exits cleanly. */
  pidfile: string;
  /** The guest's serial console (`-serial file:`), kept after the VM is gone until cleanup. */
  consoleLog: string;
  /** QEMU's own stdout and stderr. */
  qemuLog: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    dir,
    qmpSocket: join(dir, 'qmp.sock'),
    ctlSocket: join(dir, 'ctl.sock'),
    outSocket: join(dir, 'out.sock'),
    pidfile: join(dir, 'qemu.pid'),
    consoleLog: join(dir, 'console.log'),
    qemuLog: join(dir, 'qemu.log'),
  };
}

/** The files under a VM dir that a dead QEMU leaves behind and that must go before the dir is reused. */
export function staleRuntimeFiles(paths: VmPaths): string[] {
  return [paths.qmpSocket, paths.ctlSocket, paths.outSocket, paths.pidfile];
}

const VM_ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A VM id names its cgroup: a DNS label, so it can never walk out of the `caas` parent. */
export function validateVmId(id: string): void {
  if (!VM_ID.test(id)) {
    throw new VmmError('INVALID_SPEC', `invalid VM id ${JSON.stringify(id)}: expected ${VM_ID.source}`);
  }
}

/**
 * A path QEMU sees inside an option value: absolute, normalized, and free of the characters QEMU's option
 * parser or the guest command line would split on (`,` separates QEMU sub-options; doubling it would work,
 * but no path we build needs one).
 */
export function validateHostPath(what: string, path: string): void {
  if (!isAbsolute(path) || normalize(path) !== path || (path.length > 1 && path.endsWith('/'))) {
    throw new VmmError('INVALID_SPEC', `${what} must be an absolute, normalized path: ${JSON.stringify(path)}`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[,\u0000-\u001f\u007f]/.test(path)) {
    throw new VmmError(
      'INVALID_SPEC',
      `${what} must not contain a comma or control characters: ${JSON.stringify(path)}`,
    );
  }
}

export function validateVmDir(dir: string): void {
  validateHostPath('VM dir', dir);
  if (dir === '/') throw new VmmError('INVALID_SPEC', 'VM dir must not be /');
}

/** Throws SOCKET_PATH_TOO_LONG when a socket path does not fit in `sun_path`. */
export function validateSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new VmmError(
      'SOCKET_PATH_TOO_LONG',
      `unix socket path is ${bytes} bytes, at most ${MAX_SOCKET_PATH_BYTES} fit in sockaddr_un: ${path} ` +
        '(use a shorter state directory)',
    );
  }
}
