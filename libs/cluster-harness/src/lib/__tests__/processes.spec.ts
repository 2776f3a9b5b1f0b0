import { createServer } from 'node:net';
import { exitsWithin, freePort, waitFor } from '../processes';

describe('freePort', () => {
  it('gives a loopback port that can be listened on', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});

describe('waitFor', () => {
  it('returns once the check holds, counting a throwing check as not yet', async () => {
    let calls = 0;
    await waitFor(
      async () => {
        calls++;
        if (calls === 1) throw new Error('not up');
        return calls >= 3;
      },
      5_000,
      'three calls',
    );
    expect(calls).toBe(3);
  });

  it('fails naming what it waited for', async () => {
    await expect(waitFor(async () => false, 250, 'the impossible')).rejects.toThrow(
      'timed out waiting for the impossible',
    );
  });
});

describe('exitsWithin', () => {
  it('says whether the promise settled in time', async () => {
    expect(await exitsWithin(Promise.resolve(0), 1_000)).toBe(true);
    expect(await exitsWithin(new Promise(() => undefined), 50)).toBe(false);
  });
});
