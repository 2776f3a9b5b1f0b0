import { useBackends } from '../../__tests__/support/backends';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import pino from 'pino';
import { DESIRED_SET_READY_JOB, NodeQueueName, nodeKeys, parseDesiredSet } from '@caas/queue-contracts';
import { SecretBox, podEnvSecretContext, registrySecretContext } from '@caas/security';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { seedNode, seedPod, seedTenant } from '../../monitor/__tests__/seed';
import { DesiredSetPublisher } from '../desired-set-publisher';

const backends = useBackends('desired-set-publisher', 8);
const log = pino({ level: 'silent' });
const box = new SecretBox(randomBytes(32));
let prefix: string;
let publishers: DesiredSetPublisher[];
let queues: Queue[];

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants, registry_credentials CASCADE');
  prefix = uniqueRedisPrefix('desired-set');
  publishers = [];
  queues = [];
});

afterEach(async () => {
  await Promise.all([...publishers.map((p) => p.close()), ...queues.map((q) => q.close())]);
  await flushRedisPrefix(testRedisUrl(), prefix);
});

function publisher(secrets: SecretBox = box): DesiredSetPublisher {
  const created = new DesiredSetPublisher({ pool: backends.db.pool, redis: backends.redis, prefix, log, secrets });
  publishers.push(created);
  return created;
}

async function storedSet(nodeId: string) {
  const raw = await backends.redis.get(nodeKeys(nodeId, prefix).desiredSet);
  if (raw === null) return null;
  const parsed = parseDesiredSet(raw);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.set;
}

/** A pod whose container has a plain and a secret env value and an image of a private registry. */
async function richPod(tenantId: string, nodeId: string): Promise<string> {
  const podId = await seedPod(backends.db.pool, { tenantId, nodeId, ip: '10.0.0.7' });
  const sealed = box.seal('s3cr3t', podEnvSecretContext(tenantId, podId, 'main', 'API_KEY'));
  await backends.db.pool.query(
    `UPDATE containers SET image = 'registry.example.com:5000/team/app:1.0', env = $2 WHERE "podId" = $1`,
    [
      podId,
      JSON.stringify([
        { name: 'MODE', value: 'prod' },
        { name: 'API_KEY', secret: true, ciphertext: Buffer.from(sealed).toString('base64') },
      ]),
    ],
  );
  return podId;
}

async function credential(tenantId: string, registry: string, password: string): Promise<void> {
  await backends.db.pool.query(
    `INSERT INTO registry_credentials ("tenantId", registry, username, "secretCiphertext", "updatedAt")
     VALUES ($1, $2, 'robot', $3, now())`,
    [tenantId, registry, Buffer.from(box.seal(password, registrySecretContext(tenantId, registry)))],
  );
}

describe('desired-set publisher', () => {
  it("writes the node's whole set, opens its secrets for it, and announces the version on the node's queue", async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const nodeId = await seedNode(backends.db.pool, { epoch: 3, desiredVersion: 7 });
    const other = await seedNode(backends.db.pool);
    const podId = await richPod(tenantId, nodeId);
    await seedPod(backends.db.pool, { tenantId, nodeId: other });
    await credential(tenantId, 'registry.example.com:5000', 'pw-used');
    await credential(tenantId, 'ghcr.io', 'pw-unused');

    expect(await publisher().publish(nodeId)).toEqual({ version: '7', written: true });
    const set = await storedSet(nodeId);
    expect(set).toMatchObject({ nodeId, version: '7', epoch: 3, cordoned: false, draining: false });
    expect(set?.pods.map((p) => p.podId)).toEqual([podId]);
    expect(set?.pods[0]).toMatchObject({
      tenantId,
      placement: 1,
      desiredState: 'RUNNING',
      ip: '10.0.0.7',
      network: { subnet: '10.0.0.0/16' },
      containers: [
        {
          name: 'main',
          image: 'registry.example.com:5000/team/app:1.0',
          env: [
            { name: 'MODE', value: 'prod', secret: false },
            { name: 'API_KEY', value: 's3cr3t', secret: true },
          ],
        },
      ],
    });
    // Only the credential of a registry its images name.
    expect(set?.registryCredentials).toEqual([
      { tenantId, registry: 'registry.example.com:5000', username: 'robot', password: 'pw-used' },
    ]);

    const queue = new Queue(NodeQueueName.Desired, {
      connection: backends.redis,
      prefix: nodeKeys(nodeId, prefix).prefix,
    });
    queues.push(queue);
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.map((j) => [j.id, j.name, j.data])).toEqual([
      ['v7', DESIRED_SET_READY_JOB, { version: '7', epoch: 3 }],
    ]);
    // Publishing the same version again writes and announces nothing new.
    expect(await publisher().publish(nodeId)).toEqual({ version: '7', written: false });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 1 });
  });

  it('never overwrites a newer set with an older snapshot (versions compared as numbers of any length)', async () => {
    const nodeId = await seedNode(backends.db.pool, { desiredVersion: 9 });
    const p = publisher();
    expect((await p.publish(nodeId))?.written).toBe(true);
    // A replica that read version 10 already wrote it: version 9 must not replace it.
    const newer = JSON.stringify({ ...(await storedSet(nodeId)), version: '10' });
    await backends.redis.set(nodeKeys(nodeId, prefix).desiredSet, newer);
    expect(await p.publish(nodeId)).toEqual({ version: '9', written: false });
    expect(await p.storedVersion(nodeId)).toBe('10');
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = 11 WHERE id = $1`, [nodeId]);
    expect(await p.publish(nodeId)).toEqual({ version: '11', written: true });
  });

  it('leaves out a secret that does not open, rather than publishing garbage', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const nodeId = await seedNode(backends.db.pool);
    await richPod(tenantId, nodeId);
    await publisher(new SecretBox(randomBytes(32))).publish(nodeId);
    const env = (await storedSet(nodeId))?.pods[0]?.containers[0]?.env;
    expect(env).toEqual([{ name: 'MODE', value: 'prod', secret: false }]);
  });

  it('coalesces a burst of publishes of one node into the one under way and one trailing publish', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const nodeId = await seedNode(backends.db.pool, { desiredVersion: 1 });
    const p = publisher();
    const read = jest.spyOn(p, 'read');
    for (let i = 0; i < 20; i++) await seedPod(backends.db.pool, { tenantId, nodeId });
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = 21 WHERE id = $1`, [nodeId]);
    await Promise.all(Array.from({ length: 20 }, () => p.publishMany([nodeId])));
    expect(read.mock.calls.length).toBeLessThanOrEqual(2);
    expect((await storedSet(nodeId))?.version).toBe('21');

    // A change committed while a publish is under way reaches Redis through the trailing publish.
    const first = p.publishMany([nodeId]);
    await seedPod(backends.db.pool, { tenantId, nodeId });
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = 22 WHERE id = $1`, [nodeId]);
    await Promise.all([first, p.publishMany([nodeId])]);
    const set = await storedSet(nodeId);
    expect(set?.version).toBe('22');
    expect(set?.pods).toHaveLength(21);
  });
});
