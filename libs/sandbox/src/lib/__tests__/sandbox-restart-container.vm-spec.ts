// Sandbox.restartContainer: an exited container runs again in the same VM (the node agent's restart policies).
import { join } from 'node:path';
import type { SandboxManager } from '../sandbox-manager';
import { OutputLog, container, expectNothingLeft, image, openManager, scratchDir, waitFor } from './support/vm-harness';

jest.setTimeout(180_000);

describe('Sandbox.restartContainer (real VM)', () => {
  const scratch = scratchDir();
  const stateDir = join(scratch.dir, 's');
  let manager: SandboxManager;

  beforeAll(async () => {
    manager = await openManager(stateDir);
  });

  afterAll(() => scratch.remove());

  it('runs an exited container again, with a new exit and its output, and refuses a running one', async () => {
    const busybox = image(scratch.dir, 'busybox');
    // Listen from the launch: the first run prints before `create` resolves.
    let log: OutputLog | undefined;
    manager.once('sandbox', (launched) => (log = new OutputLog(launched)));
    const sandbox = await manager.create({
      id: 'restart-1',
      vcpus: 1,
      memoryMiB: 128,
      containers: [container('job', busybox, 'echo run; exit 3'), container('idle', busybox, 'sleep 600')],
    });
    try {
      const first = await sandbox.waitForExit('job');
      expect(first.exitCode).toBe(3);
      await expect(sandbox.restartContainer('idle')).rejects.toThrow(/still running/);
      await expect(sandbox.restartContainer('nope')).rejects.toThrow(/no container nope/);
      const restarted = await sandbox.restartContainer('job');
      expect(['running', 'exited']).toContain(restarted.state);
      const second = await sandbox.waitForExit('job');
      expect(second.exitCode).toBe(3);
      await waitFor('output of both runs', () => log?.text('job', 'stdout') === 'run\nrun\n');
    } finally {
      // Also on failure: a VM left running keeps Jest (its parent) from exiting.
      await sandbox.destroy();
    }
    await expectNothingLeft(sandbox, stateDir);
  });
});
