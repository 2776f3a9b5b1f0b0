import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePidfile, readPidfile } from '../lifecycle';
import { cmdlineNamesDir, isAlive, parseProcStatState, parseProcStatus, waitUntilGone } from '../proc';

const STATUS = `Name:\tqemu-system-x86
Umask:\t0022
State:\tS (sleeping)
Tgid:\t9272
Pid:\t9272
Uid:\t420123\t420123\t420123\t420123
Gid:\t420124\t420124\t420124\t420124
FDSize:\t64
Groups:\t 
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
`;

describe('/proc parsers (pure)', () => {
  it('parses the status fields the hardening checks need', () => {
    expect(parseProcStatus(STATUS)).toEqual({
      uid: [420123, 420123, 420123, 420123],
      gid: [420124, 420124, 420124, 420124],
      groups: [],
      noNewPrivs: true,
      seccomp: 2,
      capEff: 0n,
      capBnd: 0x1ffffffffffn,
    });
    expect(parseProcStatus(STATUS.replace('Groups:\t ', 'Groups:\t0 27 ')).groups).toEqual([0, 27]);
  });

  it('reads the state after the last parenthesis', () => {
    expect(parseProcStatState('9272 (qemu-system-x86) S 1 9272 9272 0 -1')).toBe('S');
    expect(parseProcStatState('77 (a) b) Z 1 2')).toBe('Z');
    expect(parseProcStatState('garbage')).toBeUndefined();
  });

  it('matches the VM dir only as a whole directory inside QEMU option values', () => {
    const cmdline = [
      'qemu-system-x86_64',
      '-qmp',
      'unix:/vm/a/qmp.sock,server=on,wait=off',
      '-pidfile',
      '/vm/a/qemu.pid',
      '',
    ].join('\0');
    expect(cmdlineNamesDir(cmdline, '/vm/a')).toBe(true);
    expect(cmdlineNamesDir(cmdline, '/vm/a/')).toBe(true);
    expect(cmdlineNamesDir(cmdline, '/vm')).toBe(true); // a parent dir is named too; VM dirs are never nested
    expect(cmdlineNamesDir(cmdline, '/vm/ab')).toBe(false);
    expect(cmdlineNamesDir(cmdline, '/v')).toBe(false);
    expect(cmdlineNamesDir(cmdline.replace(/\/vm\/a/g, '/x/vm/a'), '/vm/a')).toBe(false);
    expect(cmdlineNamesDir('qemu\0-drive\0if=none,file=/vm/a/d.img\0', '/vm/a')).toBe(true);
  });

  it.each([
    ['1234\n', 1234],
    ['  99 ', 99],
    ['1', undefined],
    ['0', undefined],
    ['-5', undefined],
    ['12a', undefined],
    ['', undefined],
    ['99999999999', undefined],
  ])('pidfile %j → %s', (text, pid) => {
    expect(parsePidfile(text)).toBe(pid);
  });
});

describe('process checks on this host', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'proc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('isAlive needs the pid to be alive and to name the dir; waitUntilGone sees it go', async () => {
    const child = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
    const named = spawn('/bin/sh', ['-c', 'sleep 30; :', `${dir}/qmp.sock`], { stdio: 'ignore' });
    try {
      const pid = named.pid ?? 0;
      expect(await isAlive(pid, dir)).toBe(true);
      expect(await isAlive(pid, `${dir}x`)).toBe(false);
      expect(await isAlive(child.pid ?? 0, dir)).toBe(false); // alive, but another process (a reused pid)
      expect(await isAlive(process.pid, dir)).toBe(false);
      expect(await isAlive(2 ** 22 + 10, dir)).toBe(false);
      expect(await waitUntilGone(pid, 50)).toBe(false);
      named.kill('SIGKILL');
      expect(await waitUntilGone(pid, 2000)).toBe(true);
      expect(await isAlive(pid, dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      named.kill('SIGKILL');
    }
  });

  it('readPidfile reads a regular file, never a FIFO (it would block) or a symlink', async () => {
    writeFileSync(join(dir, 'qemu.pid'), '4321\n');
    expect(await readPidfile(dir)).toBe(4321);
    rmSync(join(dir, 'qemu.pid'));
    expect(await readPidfile(dir)).toBeUndefined();
    execFileSync('mkfifo', [join(dir, 'qemu.pid')]);
    expect(await readPidfile(dir)).toBeUndefined();
    rmSync(join(dir, 'qemu.pid'));
    writeFileSync(join(dir, 'real'), '4321\n');
    symlinkSync(join(dir, 'real'), join(dir, 'qemu.pid'));
    expect(await readPidfile(dir)).toBeUndefined();
  });
});
