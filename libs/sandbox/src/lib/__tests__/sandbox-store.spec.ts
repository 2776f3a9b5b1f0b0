import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxStore } from '../sandbox-store';

describe('SandboxStore directories', () => {
  let tmp: string;
  let umask: number;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'sbstore-'));
    umask = process.umask(0o077); // what a careful operator's shell (or a script writing secrets) leaves behind
  });
  afterEach(() => {
    process.umask(umask);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('are searchable by the VM uids (0711) whatever the umask', async () => {
    const store = new SandboxStore(join(tmp, 'vms'));
    await store.init();
    await store.claim('pod-1');
    expect(statSync(store.root).mode & 0o777).toBe(0o711);
    expect(statSync(store.sandboxDir('pod-1')).mode & 0o777).toBe(0o711);
  });
});
