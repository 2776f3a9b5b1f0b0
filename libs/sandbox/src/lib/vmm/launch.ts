import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assertAccessibleBy } from './access';
import { createCgroup, defaultCgroupLayout, planCgroup, removeCgroup } from './cgroup';
import type { CgroupLayout, CgroupLimits } from './cgroup';
import { VmmError } from './errors';
import { findVmProcess } from './lifecycle';
import { staleRuntimeFiles, validateSocketPath, validateVmDir, validateVmId, vmPaths } from './paths';
import type { VmPaths } from './paths';
import { waitUntilGone } from './proc';
import { filesOpenedByPath, QEMU_SANDBOX_OPTION } from './qemu-args';
import { QmpClient } from './qmp-client';

export interface LaunchOptions {
  /** The VM id: names its cgroup (`caas/<id>`). */
  id: string;
  /** The VM directory (created if missing, owned by `uid`, mode 0700); its parent must exist and be searchable by `uid`. */
  dir: string;
  /** From `buildQemuCommand(spec).args`. */
  args: readonly string[];
  /** From `buildQemuCommand(spec).passFiles`: opened read-only here, at fds 3, 4, … in QEMU. */
  passFiles?: readonly string[];
  /** The VM's own unprivileged uid and gid (`allocateVmUid`). */
  uid: number;
  gid: number;
  cgroup: CgroupLimits;
  /** Default: detected under `/sys/fs/cgroup`, parent `caas`. */
  cgroupLayout?: CgroupLayout;
  /** Default `qemu-system-x86_64` (resolved on PATH by the shell). */
  qemuBinary?: string;
  /**
   * A network namespace file (`/run/netns/<name>`) QEMU runs in (the host namespace of a simulated host); default
   * the agent's own namespace.
   */
  netns?: string;
  /**
   * The pod's tap (in `netns`), handed to QEMU as descriptor `fd` (`buildQemuCommand(spec).tapFd`) by `helper`
   * (caas-tapfd, runtime/tapfd) while still root: QEMU needs no access to /dev/net/tun.
   */
  tap?: LaunchTap;
  /**
   * RLIMIT_FSIZE of QEMU, with SIGXFSZ ignored: the guest console log (and QEMU's own log) stop growing at this
   * size instead of filling the host disk; QEMU keeps running. Default 64 MiB.
   */
  maxLogBytes?: number;
  /** Until QMP answers. Default 10000 ms. */
  startTimeoutMs?: number;
}

export interface LaunchTap {
  name: string;
  fd: number;
  helper: string;
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface VmHandle {
  id: string;
  dir: string;
  pid: number;
  uid: number;
  gid: number;
  paths: VmPaths;
  /** This VM's cgroup directories. */
  cgroupLeaves: string[];
  /** Connected and negotiated; owned by the caller (close it to let another client connect). */
  qmp: QmpClient;
  /** Resolves when QEMU exits, while it is this process's child (not after a host-process restart). */
  exited: Promise<VmExit>;
}

export const DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024;
/** Exit status of the launch shell when it cannot join a cgroup (QEMU never ran). */
export const CGROUP_JOIN_FAILED_EXIT = 125;
const SAFE_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The launch command (pure): a shell joins every cgroup as itself, ignores SIGXFSZ, execs nsenter into the
 * network namespace when one is given, then caas-tapfd when the VM has a tap (it opens the tap at the descriptor
 * QEMU expects), then prlimit (file size cap, no core dumps: a QEMU core holds guest
 * memory), which execs setpriv (the VM's uid/gid, no
 * supplementary groups, no_new_privs, no capabilities in any set), which execs QEMU. Every exec keeps the pid,
 * so QEMU is in its cgroup before it runs any code, let alone guest code.
 */
export function buildLaunchCommand(options: {
  procsFiles: readonly string[];
  uid: number;
  gid: number;
  qemuBinary: string;
  args: readonly string[];
  maxLogBytes: number;
  netns?: string;
  tap?: LaunchTap;
}): { file: string; args: string[] } {
  const script =
    'for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit ' +
    `${CGROUP_JOIN_FAILED_EXIT}; shift; done; shift; trap '' XFSZ; exec "$@"`;
  return {
    file: '/bin/sh',
    args: [
      '-c',
      script,
      'sh',
      ...options.procsFiles,
      '--',
      ...(options.netns === undefined ? [] : ['nsenter', `--net=${options.netns}`, '--']),
      ...(options.tap === undefined ? [] : [options.tap.helper, options.tap.name, String(options.tap.fd), '--']),
      'prlimit',
      `--fsize=${options.maxLogBytes}:${options.maxLogBytes}`,
      '--core=0:0',
      '--',
      'setpriv',
      `--reuid=${options.uid}`,
      `--regid=${options.gid}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      options.qemuBinary,
      ...options.args,
    ],
  };
}

function valueAfter(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Refuses a command line that lacks the flags the platform's isolation relies on (pure). */
export function assertHardenedArgs(args: readonly string[], paths: VmPaths): void {
  const missing: string[] = [];
  if (!args.includes('-nodefaults')) missing.push('-nodefaults');
  if (!args.includes('-no-user-config')) missing.push('-no-user-config');
  if (valueAfter(args, '-sandbox') !== QEMU_SANDBOX_OPTION) missing.push(`-sandbox ${QEMU_SANDBOX_OPTION}`);
  if (valueAfter(args, '-pidfile') !== paths.pidfile) missing.push(`-pidfile ${paths.pidfile}`);
  if (valueAfter(args, '-qmp') !== `unix:${paths.qmpSocket},server=on,wait=off`) missing.push(`-qmp in ${paths.dir}`);
  if (missing.length > 0) {
    throw new VmmError('INVALID_SPEC', `QEMU arguments lack ${missing.join(', ')} (build them with buildQemuCommand)`);
  }
}

function validateIds(uid: number, gid: number): void {
  for (const [what, id] of [
    ['uid', uid],
    ['gid', gid],
  ] as const) {
    if (!Number.isSafeInteger(id) || id < 1000 || id >= 0xffff_fffe) {
      throw new VmmError('INVALID_SPEC', `${what} ${id} is not an unprivileged VM id`);
    }
  }
}

async function prepareDir(dir: string, uid: number, gid: number): Promise<void> {
  try {
    const s = await lstat(dir);
    if (!s.isDirectory()) throw new VmmError('INVALID_SPEC', `${dir} exists and is not a directory`);
    if (s.uid !== 0 && s.uid !== uid) {
      // Its files belong to that uid: another uid could not reopen them (and must not read them).
      throw new VmmError(
        'INVALID_SPEC',
        `${dir} belongs to uid ${s.uid}: relaunch with that uid, or clean it up first`,
      );
    }
    if (await findVmProcess(dir)) throw new VmmError('VM_ALREADY_RUNNING', `a QEMU already runs in ${dir}`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dir, { mode: 0o700 });
  }
  await chown(dir, uid, gid);
  await chmod(dir, 0o700);
  const paths = vmPaths(dir);
  // A killed QEMU leaves its sockets and pidfile behind; QEMU refuses to bind over a socket file.
  await Promise.all(staleRuntimeFiles(paths).map((file) => rm(file, { force: true })));
  // QEMU truncates the console log: keep the previous boot's (why did it die?) as console.log.1.
  try {
    await rename(paths.consoleLog, `${paths.consoleLog}.1`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

async function openPassFiles(files: readonly string[]): Promise<FileHandle[]> {
  const handles: FileHandle[] = [];
  try {
    for (const file of files) {
      const handle = await open(file, constants.O_RDONLY | constants.O_NOCTTY);
      handles.push(handle);
      if (!(await handle.stat()).isFile())
        throw new VmmError('INVALID_SPEC', `disk image ${file} is not a regular file`);
    }
    return handles;
  } catch (error) {
    await Promise.all(handles.map((h) => h.close()));
    if (error instanceof VmmError) throw error;
    throw new VmmError('IMAGE_NOT_READABLE', `cannot open disk image: ${String(error)}`, { cause: error });
  }
}

async function logTail(paths: VmPaths): Promise<string> {
  try {
    const text = await readFile(paths.qemuLog, 'utf8');
    return text.trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '';
  }
}

/**
 * Starts QEMU for one VM, hardened (see `buildLaunchCommand`), detached in its own session with stdio to
 * `qemu.log`, so it outlives this process; resolves once QMP answers `query-status`.
 *
 * Files QEMU opens by path (kernel, initrd, firmware) must be readable by the VM's uid: world-readable, or
 * owned by that uid or its group, in directories it can search. This is checked from the mode bits (ACLs
 * ignored) and fails with IMAGE_NOT_READABLE; nothing is chmod-ed here. Disk images are opened by this
 * process and passed as file descriptors, so they may stay readable by root only.
 *
 * On failure the cgroup is removed and QEMU is killed; the directory stays (its logs explain the failure):
 * `cleanupVm` removes it.
 */
export async function launchQemu(options: LaunchOptions): Promise<VmHandle> {
  const { id, dir, uid, gid } = options;
  validateVmId(id);
  validateVmDir(dir);
  validateIds(uid, gid);
  const paths = vmPaths(dir);
  for (const socket of [paths.qmpSocket, paths.ctlSocket, paths.outSocket]) validateSocketPath(socket);
  assertHardenedArgs(options.args, paths);
  const maxLogBytes = options.maxLogBytes ?? DEFAULT_MAX_LOG_BYTES;
  if (!Number.isSafeInteger(maxLogBytes) || maxLogBytes < 4096) {
    throw new VmmError('INVALID_SPEC', `maxLogBytes must be an integer of at least 4096, got ${maxLogBytes}`);
  }
  if (options.netns !== undefined) await assertNetns(options.netns);
  const layout = options.cgroupLayout ?? (await defaultCgroupLayout());
  const plan = planCgroup(layout, id, options.cgroup);

  const who = { uid, gid };
  await assertAccessibleBy(dirname(dir), who);
  for (const file of filesOpenedByPath(options.args)) await assertAccessibleBy(file, who);

  await prepareDir(dir, uid, gid);
  const passed = await openPassFiles(options.passFiles ?? []);
  let log: FileHandle | undefined;
  let pid: number | undefined;
  let cgroupCreated = false;
  try {
    // Refuses a cgroup that still holds processes (another QEMU with this id): those are never touched here.
    await createCgroup(plan);
    cgroupCreated = true;
    log = await open(
      paths.qemuLog,
      constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW,
      0o600,
    );
    const command = buildLaunchCommand({
      procsFiles: plan.procsFiles,
      uid,
      gid,
      qemuBinary: options.qemuBinary ?? 'qemu-system-x86_64',
      args: options.args,
      maxLogBytes,
      netns: options.netns,
      tap: options.tap,
    });
    // stdio[i] becomes fd i in the child: the passed files land at FIRST_PASSED_FD (3), 4, …
    const child = spawn(command.file, command.args, {
      cwd: dir,
      detached: true,
      env: { PATH: SAFE_PATH },
      stdio: ['ignore', log.fd, log.fd, ...passed.map((h) => h.fd)],
    });
    let spawnError: Error | undefined;
    const exited = new Promise<VmExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => {
        spawnError = error;
        resolve({ code: null, signal: null });
      });
    });
    child.unref();
    pid = child.pid;
    if (pid === undefined) {
      await exited;
      throw new VmmError('LAUNCH_FAILED', `cannot start /bin/sh for ${id}: ${String(spawnError)}`);
    }
    const qmp = await connectUnlessExited(paths, options.startTimeoutMs ?? 10_000, exited, id);
    try {
      await qmp.queryStatus();
    } catch (error) {
      qmp.close();
      throw new VmmError('LAUNCH_FAILED', `QEMU for ${id} does not answer query-status: ${String(error)}`, {
        cause: error,
      });
    }
    return { id, dir, pid, uid, gid, paths, cgroupLeaves: plan.leaves, qmp, exited };
  } catch (error) {
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await waitUntilGone(pid, 5000);
    }
    if (cgroupCreated) await removeCgroup(plan.leaves).catch(() => undefined);
    throw error;
  } finally {
    await log?.close();
    await Promise.all(passed.map((h) => h.close()));
  }
}

/** A network namespace file: absolute, and a mounted namespace (not a stale or plain file). */
async function assertNetns(path: string): Promise<void> {
  if (!/^\/[A-Za-z0-9_./-]+$/.test(path) || path.split('/').includes('..')) {
    throw new VmmError('INVALID_SPEC', `netns must be an absolute path such as /run/netns/<name>, got ${path}`);
  }
  const own = await stat('/proc/self/ns/net');
  const target = await stat(path).catch(() => undefined);
  // A bind-mounted namespace file lives on nsfs: same device as our own namespace file, and never a regular file's.
  if (target === undefined || target.dev !== own.dev) {
    throw new VmmError('LAUNCH_FAILED', `${path} is not a network namespace (ip netns add <name> creates one)`);
  }
}

function describeExit(exit: VmExit): string {
  if (exit.signal !== null) return `signal ${exit.signal}`;
  if (exit.code === CGROUP_JOIN_FAILED_EXIT) return `exit ${exit.code}: could not join its cgroup`;
  return `exit ${String(exit.code)}`;
}

/** A QMP client once QEMU answers, or LAUNCH_FAILED (with the end of qemu.log) when it exits or times out first. */
async function connectUnlessExited(
  paths: VmPaths,
  timeoutMs: number,
  exited: Promise<VmExit>,
  id: string,
): Promise<QmpClient> {
  const connecting = QmpClient.connect(paths.qmpSocket, { timeoutMs }).then(
    (client) => ({ client }),
    (error: unknown) => ({ error }),
  );
  const outcome = await Promise.race([
    connecting,
    exited.then((exit) => ({
      error: new VmmError('LAUNCH_FAILED', `QEMU for ${id} exited at start (${describeExit(exit)})`),
    })),
  ]);
  if ('client' in outcome) return outcome.client;
  // QEMU is gone; should the connection have won a moment later, close it.
  void connecting.then((late) => ('client' in late ? late.client.close() : undefined));
  const tail = await logTail(paths);
  const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
  throw new VmmError('LAUNCH_FAILED', `${message}${tail ? `: ${tail}` : ''}`, { cause: outcome.error });
}
