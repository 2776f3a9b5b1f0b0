import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { NodeJoinError } from '@caas/node-client';
import { IdentityError, loadOrJoin } from '../identity';

const response: NodeJoinResponse = {
  nodeId: '22222222-2222-4222-8222-222222222222',
  name: 'host-1',
  epoch: 1,
  redis: { username: 'node-22222222-2222-4222-8222-222222222222', password: 'p'.repeat(64) },
  queuePrefix: 'bull:node:22222222-2222-4222-8222-222222222222',
  keys: { desiredSet: 'bull:node:x:desired-set', status: 'bull:node:x:status' },
  heartbeatIntervalMs: 2000,
  leaseGraceMs: 10000,
};

describe('node identity', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'agent-id-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const options = (stateDir: string, join: jest.Mock, joinToken = 't'.repeat(32)) => ({
    stateDir,
    apiUrl: 'http://api',
    joinToken,
    name: 'host-1',
    capacity: { vcpus: 2, memoryMiB: 1024, pods: 4, diskBytes: 1 },
    accelerator: 'TCG' as const,
    join,
  });

  it('joins once with the token, keeps the identity 0600 in a 0711 dir (traversable by VM uids, not listable), and reuses it afterwards', async () => {
    const stateDir = join(root, 'state');
    const joinCluster = jest.fn().mockResolvedValue(response);
    expect(await loadOrJoin(options(stateDir, joinCluster))).toEqual({ identity: response, joined: true });
    expect(joinCluster).toHaveBeenCalledWith('http://api', expect.objectContaining({ token: 't'.repeat(32) }));
    expect(statSync(stateDir).mode & 0o777).toBe(0o711);
    expect(statSync(join(stateDir, 'identity.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8'))).toEqual(response);
    // Restarted, without the (now used) token: the identity on disk.
    expect(await loadOrJoin(options(stateDir, joinCluster, ''))).toEqual({ identity: response, joined: false });
    expect(joinCluster).toHaveBeenCalledTimes(1);
  });

  it('says what to do without an identity or a token', async () => {
    await expect(loadOrJoin(options(join(root, 's'), jest.fn(), ''))).rejects.toThrow(IdentityError);
    await expect(loadOrJoin(options(join(root, 's'), jest.fn(), ''))).rejects.toThrow(/JOIN_TOKEN/);
  });

  it('tries a join again when the API says retry later or cannot be reached, never when it refuses the node', async () => {
    const limited = new NodeJoinError('RATE_LIMITED', 'Too many join attempts; retry later.', 429);
    const joinCluster = jest
      .fn()
      .mockRejectedValueOnce(limited)
      .mockRejectedValueOnce(new TypeError('fetch failed'))
      .mockResolvedValue(response);
    const retried: number[] = [];
    const joined = await loadOrJoin({
      ...options(join(root, 'r'), joinCluster),
      retryDelayMs: 1,
      onRetry: (_error, attempt) => retried.push(attempt),
    });
    expect(joined.joined).toBe(true);
    expect(retried).toEqual([1, 2]);

    const refused = jest.fn().mockRejectedValue(new NodeJoinError('INVALID_JOIN_TOKEN', 'bad token', 401));
    await expect(loadOrJoin({ ...options(join(root, 'x'), refused), retryDelayMs: 1 })).rejects.toThrow('bad token');
    expect(refused).toHaveBeenCalledTimes(1);

    const down = jest.fn().mockRejectedValue(new NodeJoinError('UNAVAILABLE', 'try later', 503));
    await expect(loadOrJoin({ ...options(join(root, 'y'), down), retries: 2, retryDelayMs: 1 })).rejects.toThrow(
      'try later',
    );
    expect(down).toHaveBeenCalledTimes(3);
  });
});
