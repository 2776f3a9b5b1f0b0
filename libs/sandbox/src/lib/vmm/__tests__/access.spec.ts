import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertAccessibleBy, modeAllows, pathAccessProblem, pathChain } from '../access';
import type { PathStep } from '../access';

const vm = { uid: 420001, gid: 420001 };

describe('modeAllows (pure)', () => {
  it.each([
    ['world-readable root file', { mode: 0o100644, uid: 0, gid: 0 }, 'read', true],
    ['root-only file', { mode: 0o100600, uid: 0, gid: 0 }, 'read', false],
    ['owned by the VM uid, 0400', { mode: 0o100400, uid: 420001, gid: 0 }, 'read', true],
    ['group-readable, VM gid', { mode: 0o100640, uid: 0, gid: 420001 }, 'read', true],
    ['group-readable, other gid', { mode: 0o100640, uid: 0, gid: 100 }, 'read', false],
    // Exactly one class applies: an owner without the owner bit is refused even if others may read.
    ['owner without read, others with', { mode: 0o100044, uid: 420001, gid: 0 }, 'read', false],
    ['group without read, others with', { mode: 0o100404, uid: 0, gid: 420001 }, 'read', false],
    ['dir 0711', { mode: 0o40711, uid: 0, gid: 0 }, 'search', true],
    ['dir 0700', { mode: 0o40700, uid: 0, gid: 0 }, 'search', false],
    ['dir 0750, VM group', { mode: 0o40750, uid: 0, gid: 420001 }, 'search', true],
  ] as const)('%s', (_name, facts, kind, allowed) => {
    expect(modeAllows(facts, vm, kind)).toBe(allowed);
  });
});

describe('pathAccessProblem (pure)', () => {
  const dir = (path: string, mode: number): PathStep => ({ path, facts: { mode, uid: 0, gid: 0 }, isDirectory: true });
  const file = (path: string, mode: number): PathStep => ({
    path,
    facts: { mode, uid: 0, gid: 0 },
    isDirectory: false,
  });

  it('accepts a world-readable file under searchable dirs', () => {
    expect(pathAccessProblem([dir('/', 0o755), dir('/img', 0o711), file('/img/k', 0o644)], vm)).toBeUndefined();
  });

  it('names the directory that blocks the way', () => {
    expect(pathAccessProblem([dir('/', 0o755), dir('/root', 0o700), file('/root/k', 0o644)], vm)).toMatch(
      /directory \/root \(mode 0700, owner 0:0\) is not searchable by 420001:420001/,
    );
  });

  it('names an unreadable file and says how to fix it', () => {
    expect(pathAccessProblem([dir('/', 0o755), file('/k', 0o600)], vm)).toMatch(
      /\/k \(mode 0600, owner 0:0\) is not readable by 420001:420001: make it world-readable, or owned by that uid or group/,
    );
  });

  it('builds the ancestor chain', () => {
    expect(pathChain('/a/b/c')).toEqual(['/', '/a', '/a/b', '/a/b/c']);
    expect(pathChain('/')).toEqual(['/']);
  });
});

describe('assertAccessibleBy on real files (as root)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'access-'));
    chmodSync(root, 0o711);
    writeFileSync(join(root, 'open'), 'x');
    chmodSync(join(root, 'open'), 0o644);
    writeFileSync(join(root, 'closed'), 'x');
    chmodSync(join(root, 'closed'), 0o600);
    writeFileSync(join(root, 'mine'), 'x');
    chmodSync(join(root, 'mine'), 0o400);
    chownSync(join(root, 'mine'), vm.uid, vm.gid);
    mkdirSync(join(root, 'private'), { mode: 0o700 });
    writeFileSync(join(root, 'private', 'k'), 'x');
    chmodSync(join(root, 'private', 'k'), 0o644);
    symlinkSync(join(root, 'private', 'k'), join(root, 'link'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('passes readable files', async () => {
    await expect(assertAccessibleBy(join(root, 'open'), vm)).resolves.toBeUndefined();
    await expect(assertAccessibleBy(join(root, 'mine'), vm)).resolves.toBeUndefined();
  });

  it.each(['closed', 'private/k', 'link', 'missing'])('fails %s with IMAGE_NOT_READABLE', async (name) => {
    await expect(assertAccessibleBy(join(root, name), vm)).rejects.toMatchObject({ code: 'IMAGE_NOT_READABLE' });
  });
});
