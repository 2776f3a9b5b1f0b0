import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { VmmError } from './errors';
import { cleanupVm } from './lifecycle';

const run = promisify(execFile);

/** A pod's tap: its name, in the network namespace (a file such as `/run/netns/caas-t4711`) QEMU runs in. */
export interface TapSpec {
  netns: string;
  name: string;
}

const TAP_NAME = /^[a-z][a-z0-9]{0,14}$/;
const NETNS_PATH = /^\/[A-Za-z0-9_./-]+$/;

function validateTap(tap: TapSpec): void {
  if (!TAP_NAME.test(tap.name)) throw new VmmError('INVALID_SPEC', `tap ${JSON.stringify(tap.name)} is not a tap name`);
  if (!NETNS_PATH.test(tap.netns) || tap.netns.split('/').includes('..')) {
    throw new VmmError('INVALID_SPEC', `netns ${JSON.stringify(tap.netns)} must be an absolute path`);
  }
}

const ip = (tap: TapSpec, ...args: string[]) =>
  run('nsenter', [`--net=${tap.netns}`, '--', 'ip', ...args], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });

/**
 * Creates the persistent tap QEMU opens by name as the VM's uid (so QEMU needs no privilege). `vnet_hdr` for
 * virtio-net offloads; the network layer routes it (ADR-006).
 */
export async function createTap(tap: TapSpec, uid: number): Promise<void> {
  validateTap(tap);
  try {
    await ip(
      tap,
      'tuntap',
      'add',
      'dev',
      tap.name,
      'mode',
      'tap',
      'user',
      String(uid),
      'group',
      String(uid),
      'vnet_hdr',
    );
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? String(error);
    throw new VmmError('LAUNCH_FAILED', `cannot create tap ${tap.name} in ${tap.netns}: ${stderr}`);
  }
}

/** Removes the tap; one that is gone already (or whose namespace is gone) is fine. */
export async function removeTap(tap: TapSpec): Promise<void> {
  validateTap(tap);
  await ip(tap, 'link', 'delete', 'dev', tap.name).catch(() => undefined);
}

/** What a dead VM leaves on the host: its runtime files and cgroups (`cleanupVm`), then its tap when it had one. */
export async function releaseVm(dir: string, id: string, tap?: TapSpec): Promise<void> {
  try {
    await cleanupVm(dir, id);
  } finally {
    if (tap) await removeTap(tap);
  }
}
