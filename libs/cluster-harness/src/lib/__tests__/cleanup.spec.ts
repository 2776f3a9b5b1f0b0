import { Cleanup } from '../cleanup';

describe('Cleanup', () => {
  it('undoes in reverse order, once, past a failing step; a step run early is not run again', async () => {
    const logged: string[] = [];
    const done: string[] = [];
    const cleanup = new Cleanup((message) => logged.push(message));
    cleanup.add('first', async () => void done.push('first'));
    const early = cleanup.add('early', async () => void done.push('early'));
    cleanup.add('broken', async () => {
      throw new Error('boom');
    });
    cleanup.add('last', async () => void done.push('last'));
    await early();
    expect(cleanup.started).toBe(false);
    await Promise.all([cleanup.run(), cleanup.run()]);
    await cleanup.run();
    expect(cleanup.started).toBe(true);
    expect(done).toEqual(['early', 'last', 'first']);
    expect(logged).toEqual(['clean-up "broken" failed: boom']);
  });
});
