import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cgroupLeaves,
  cgroupPids,
  createCgroup,
  detectCgroupVersion,
  parseProcsFile,
  planCgroup,
  removeCgroup,
} from '../cgroup';
import type { CgroupLayout } from '../cgroup';
import { VmmError } from '../errors';

const v1: CgroupLayout = { version: 'v1', root: '/sys/fs/cgroup', parent: 'caas' };
const v2: CgroupLayout = { version: 'v2', root: '/sys/fs/cgroup', parent: 'caas' };
const limits = { cpuMillis: 1500, memoryBytes: 384 * 1024 * 1024, pidsMax: 100 };

describe('planCgroup (pure)', () => {
  it('v1: cpu, memory and pids hierarchies, CFS quota per 100 ms, no swap', () => {
    expect(planCgroup(v1, 'pod-1', limits)).toEqual({
      version: 'v1',
      create: ['/sys/fs/cgroup/cpu/caas/pod-1', '/sys/fs/cgroup/memory/caas/pod-1', '/sys/fs/cgroup/pids/caas/pod-1'],
      leaves: ['/sys/fs/cgroup/cpu/caas/pod-1', '/sys/fs/cgroup/memory/caas/pod-1', '/sys/fs/cgroup/pids/caas/pod-1'],
      writes: [
        { path: '/sys/fs/cgroup/cpu/caas/pod-1/cpu.cfs_period_us', value: '100000' },
        { path: '/sys/fs/cgroup/cpu/caas/pod-1/cpu.cfs_quota_us', value: '150000' },
        { path: '/sys/fs/cgroup/memory/caas/pod-1/memory.limit_in_bytes', value: '402653184' },
        { path: '/sys/fs/cgroup/memory/caas/pod-1/memory.memsw.limit_in_bytes', value: '402653184', optional: true },
        { path: '/sys/fs/cgroup/pids/caas/pod-1/pids.max', value: '100' },
      ],
      procsFiles: [
        '/sys/fs/cgroup/cpu/caas/pod-1/cgroup.procs',
        '/sys/fs/cgroup/memory/caas/pod-1/cgroup.procs',
        '/sys/fs/cgroup/pids/caas/pod-1/cgroup.procs',
      ],
    });
  });

  it('v2: one leaf, controllers enabled on the way down, cpu.max, memory.max, no swap', () => {
    expect(planCgroup(v2, 'pod-1', { cpuMillis: 250, memoryBytes: 256 * 1024 * 1024 })).toEqual({
      version: 'v2',
      create: ['/sys/fs/cgroup/caas', '/sys/fs/cgroup/caas/pod-1'],
      leaves: ['/sys/fs/cgroup/caas/pod-1'],
      writes: [
        { path: '/sys/fs/cgroup/cgroup.subtree_control', value: '+cpu +memory +pids' },
        { path: '/sys/fs/cgroup/caas/cgroup.subtree_control', value: '+cpu +memory +pids' },
        { path: '/sys/fs/cgroup/caas/pod-1/cpu.max', value: '25000 100000' },
        { path: '/sys/fs/cgroup/caas/pod-1/memory.max', value: '268435456' },
        { path: '/sys/fs/cgroup/caas/pod-1/memory.swap.max', value: '0', optional: true },
        { path: '/sys/fs/cgroup/caas/pod-1/pids.max', value: '128' },
      ],
      procsFiles: ['/sys/fs/cgroup/caas/pod-1/cgroup.procs'],
    });
  });

  it.each([
    ['an id that walks up', '..', limits],
    ['an id with a slash', 'a/b', limits],
    ['an empty id', '', limits],
    ['too little CPU', 'pod-1', { ...limits, cpuMillis: 5 }],
    ['fractional CPU', 'pod-1', { ...limits, cpuMillis: 100.5 }],
    ['too little memory', 'pod-1', { ...limits, memoryBytes: 1024 }],
    ['too few pids', 'pod-1', { ...limits, pidsMax: 2 }],
  ])('refuses %s', (_name, id, l) => {
    expect(() => planCgroup(v1, id, l)).toThrow(VmmError);
  });

  it('refuses a parent that is not one path component', () => {
    expect(() => cgroupLeaves({ ...v2, parent: '../x' }, 'pod-1')).toThrow(VmmError);
    expect(() => cgroupLeaves({ ...v2, parent: '..' }, 'pod-1')).toThrow(VmmError);
  });

  it('parses cgroup.procs', () => {
    expect(parseProcsFile('12\n345\n\n')).toEqual([12, 345]);
    expect(parseProcsFile('')).toEqual([]);
  });
});

describe('cgroup I/O on a fake cgroup tree (plain files)', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cgfake-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('detects v2 by cgroup.controllers, else v1', async () => {
    expect(await detectCgroupVersion(root)).toBe('v1');
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu memory pids\n');
    expect(await detectCgroupVersion(root)).toBe('v2');
  });

  it('v2: creates, writes in order, skips a missing optional file, refuses a leaf with processes', async () => {
    const layout: CgroupLayout = { version: 'v2', root, parent: 'caas' };
    const plan = planCgroup(layout, 'pod-1', { cpuMillis: 1000, memoryBytes: 64 * 1024 * 1024 });
    // Real cgroupfs creates the interface files; here we pre-create the optional one only for v2's swap.
    await createCgroup({ ...plan, writes: plan.writes.filter((w) => w.optional !== true) });
    expect(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
    expect(readFileSync(join(root, 'caas', 'pod-1', 'cpu.max'), 'utf8')).toBe('100000 100000');
    expect(existsSync(join(root, 'caas', 'pod-1', 'memory.swap.max'))).toBe(false);
    await createCgroup(plan); // idempotent; the optional file does not exist → skipped
    expect(existsSync(join(root, 'caas', 'pod-1', 'memory.swap.max'))).toBe(false);

    writeFileSync(join(root, 'caas', 'pod-1', 'cgroup.procs'), '4242\n');
    expect(await cgroupPids(plan.leaves)).toEqual([4242]);
    await expect(createCgroup(plan)).rejects.toMatchObject({ code: 'CGROUP_FAILED' });
  });

  it('reports a failed write as CGROUP_FAILED with the path', async () => {
    const layout: CgroupLayout = { version: 'v1', root, parent: 'caas' };
    const plan = planCgroup(layout, 'pod-1', limits);
    mkdirSync(join(root, 'cpu', 'caas', 'pod-1', 'cpu.cfs_quota_us'), { recursive: true }); // a dir: EISDIR
    await expect(createCgroup(plan)).rejects.toThrow(/cpu\.cfs_quota_us/);
  });

  it('removeCgroup: missing leaves are fine; a non-empty plain dir is an error, not a hang', async () => {
    await expect(removeCgroup([join(root, 'nope')])).resolves.toBeUndefined();
    mkdirSync(join(root, 'full'));
    writeFileSync(join(root, 'full', 'x'), '');
    await expect(removeCgroup([join(root, 'full')], { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'CGROUP_FAILED',
    });
  });
});
