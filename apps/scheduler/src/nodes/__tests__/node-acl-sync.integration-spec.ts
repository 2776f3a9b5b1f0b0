import { createHash, randomUUID } from 'node:crypto';
import pino from 'pino';
import { removeNodeUser } from '@caas/node-acl';
import { nodeAclUser } from '@caas/queue-contracts';
import { uniqueRedisPrefix } from '@caas/testing';
import { useBackends } from '../../__tests__/support/backends';
import { NodeAclSync } from '../node-acl-sync';

jest.setTimeout(30_000);

const backends = useBackends('node-acl-sync', 3);
const prefix = uniqueRedisPrefix('node-acl-sync').slice(0, -1);
const nodeIds: string[] = [];

afterAll(async () => {
  for (const id of nodeIds) await removeNodeUser(backends.redis, id).catch(() => undefined);
});

async function insertNode(hash: Buffer | null): Promise<string> {
  const id = randomUUID();
  nodeIds.push(id);
  await backends.db.pool.query(
    `INSERT INTO nodes (id, name, "capacityVcpus", "capacityMemoryMiB", "capacityPods", "credentialHash", "updatedAt")
     VALUES ($1, $2, 4, 4096, 10, $3, now())`,
    [id, `n-${id.slice(0, 8)}`, hash],
  );
  return id;
}

const users = async (): Promise<string[]> => (await backends.redis.call('ACL', 'USERS')) as string[];

it('re-creates the users of nodes with a credential after they were lost, and removes deleted nodes', async () => {
  const sync = new NodeAclSync({
    pool: backends.db.pool,
    redis: backends.redis,
    prefix,
    log: pino({ level: 'silent' }),
    intervalMs: 50,
  });
  const withHash = await insertNode(createHash('sha256').update('pw').digest());
  const withoutHash = await insertNode(null);

  expect(await sync.runOnce()).toMatchObject({ created: 1, updated: 0 });
  expect(await users()).toContain(nodeAclUser(withHash));
  expect(await users()).not.toContain(nodeAclUser(withoutHash));

  // A Redis restart loses the user; the running loop puts it back.
  await backends.redis.call('ACL', 'DELUSER', nodeAclUser(withHash));
  sync.start();
  try {
    for (let i = 0; i < 100 && !(await users()).includes(nodeAclUser(withHash)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await users()).toContain(nodeAclUser(withHash));

    await backends.db.pool.query('DELETE FROM nodes WHERE id = $1', [withHash]);
    for (let i = 0; i < 100 && (await users()).includes(nodeAclUser(withHash)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await users()).not.toContain(nodeAclUser(withHash));
  } finally {
    await sync.stop();
  }
});
