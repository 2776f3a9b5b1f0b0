import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { DesiredContainer, DesiredPod, DesiredSet } from '@caas/queue-contracts';
import {
  DESIRED_SET_READY_JOB,
  NodeQueueName,
  desiredSetReadyJobId,
  nodeKeys,
  type DesiredSetReady,
} from '@caas/queue-contracts';
import type { SecretBox } from '@caas/security';
import { podEnvSecretContext, registrySecretContext } from '@caas/security';

/**
 * Writes `set` only when its version is newer than the stored one (versions are decimal BIGINTs, compared by
 * length then lexically, so no precision is lost). Returns 1 when written, 0 when the stored set is as new.
 */
const WRITE_IF_NEWER = `
local current = redis.call('GET', KEYS[1])
if current then
  local stored = string.match(current, '"version":"(%d+)"')
  if stored and (#stored > #ARGV[1] or (#stored == #ARGV[1] and stored >= ARGV[1])) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`;

const WRITE_IF_NEWER_COMMAND = 'caasWriteDesiredSetIfNewer';

interface WriteIfNewerCommand {
  [WRITE_IF_NEWER_COMMAND]: (key: string, version: string, set: string) => Promise<number>;
}

/** Announcements kept on a node's queue: the agent only needs the newest. */
const ANNOUNCEMENT_JOB_OPTIONS = { removeOnComplete: { count: 20 }, removeOnFail: { count: 20 }, attempts: 1 };

interface NodeRow {
  id: string;
  desiredVersion: string;
  epoch: number;
  cordoned: boolean;
  draining: boolean;
}

interface PodRow {
  id: string;
  tenantId: string;
  name: string;
  generation: number;
  placement: number;
  desiredState: DesiredPod['desiredState'];
  restartPolicy: DesiredPod['restartPolicy'];
  spec: unknown;
  vcpus: number;
  memoryMiB: number;
  ip: string | null;
  labels: unknown;
  imageDigests: unknown;
  networkId: number;
  subnet: string;
}

interface ContainerRow {
  podId: string;
  name: string;
  image: string;
  command: string[];
  args: string[];
  env: unknown;
  workingDir: string | null;
  user: string | null;
  cpuLimitMillis: number | null;
  memoryLimitMiB: number | null;
}

interface CredentialRow {
  tenantId: string;
  registry: string;
  username: string;
  secretCiphertext: Buffer;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const stringRecord = (value: unknown): Record<string, string> =>
  isRecord(value)
    ? Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'))
    : {};

/** The registry host of an image reference (Docker's rule: the first component, if it looks like a host). */
function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = image.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
}

export interface DesiredSetPublisherOptions {
  pool: pg.Pool;
  /** A producer connection (not a blocking one). */
  redis: Redis;
  /** Base of the node prefixes (`<base>:node:<id>`). */
  prefix: string;
  log: Logger;
  /** Opens secret env values and registry passwords for the node that needs them. */
  secrets: SecretBox;
}

/**
 * Publishes a node's desired set (ADR-009): reads the node's version and pods in one snapshot, writes the set to
 * the node's `desiredSet` key if it is newer than what is stored, and announces "version N is ready" on the node's
 * queue (job id per version, so two publishers of one version add one job). Safe to call from any replica at any
 * time and as often as wanted: it is a pure function of the database at one snapshot.
 */
export class DesiredSetPublisher {
  private readonly queues = new Map<string, Queue>();
  /** Publishes under way, and the one trailing publish queued behind each (see `publishMany`). */
  private readonly running = new Map<string, Promise<void>>();
  private readonly trailing = new Map<string, Promise<void>>();
  private readonly redis: Redis & WriteIfNewerCommand;

  constructor(private readonly options: DesiredSetPublisherOptions) {
    // ioredis sends EVALSHA and falls back to EVAL after a Redis restart emptied the script cache.
    options.redis.defineCommand(WRITE_IF_NEWER_COMMAND, { numberOfKeys: 1, lua: WRITE_IF_NEWER });
    this.redis = options.redis as Redis & WriteIfNewerCommand;
  }

  /** Publishes the node's current set; returns its version, or null when the node does not exist. */
  async publish(nodeId: string): Promise<{ version: string; written: boolean } | null> {
    const set = await this.read(nodeId);
    if (set === null) return null;
    const keys = nodeKeys(nodeId, this.options.prefix);
    const written = await this.writeIfNewer(keys.desiredSet, set);
    if (written) await this.announce(nodeId, { version: set.version, epoch: set.epoch });
    return { version: set.version, written };
  }

  /**
   * Publishes several nodes' sets (errors are logged per node; reconcile repeats what failed). Calls for a node whose
   * publish is under way in this process share one trailing publish after it (which reads a snapshot taken after
   * every change its callers committed), so a burst of placements onto one node costs two reads, not one per pod.
   */
  async publishMany(nodeIds: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(nodeIds)].map((nodeId) => this.coalesced(nodeId)));
  }

  private coalesced(nodeId: string): Promise<void> {
    const queued = this.trailing.get(nodeId);
    if (queued !== undefined) return queued;
    const current = this.running.get(nodeId);
    if (current === undefined) return this.run(nodeId);
    const next = current.then(() => {
      this.trailing.delete(nodeId);
      return this.run(nodeId);
    });
    this.trailing.set(nodeId, next);
    return next;
  }

  private run(nodeId: string): Promise<void> {
    const done: Promise<void> = this.publish(nodeId)
      .then(() => undefined)
      .catch((error: unknown) =>
        this.options.log.warn({ err: error, nodeId }, 'publishing a desired set failed; reconcile retries it'),
      )
      .finally(() => {
        if (this.running.get(nodeId) === done) this.running.delete(nodeId);
      });
    this.running.set(nodeId, done);
    return done;
  }

  /** The version stored in Redis for the node, or null when none is. */
  async storedVersion(nodeId: string): Promise<string | null> {
    const raw = await this.options.redis.get(nodeKeys(nodeId, this.options.prefix).desiredSet);
    return raw === null ? null : (/"version":"(\d+)"/.exec(raw)?.[1] ?? null);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }

  /** Reads the node and everything it must run, at one snapshot. */
  async read(nodeId: string): Promise<DesiredSet | null> {
    const client = await this.options.pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const node = await client.query<NodeRow>(
        `SELECT id, "desiredVersion"::text AS "desiredVersion", epoch, cordoned, draining FROM nodes WHERE id = $1`,
        [nodeId],
      );
      const row = node.rows[0];
      if (!row) {
        await client.query('COMMIT');
        return null;
      }
      const pods = await client.query<PodRow>(
        `SELECT p.id, p."tenantId", p.name, p.generation, p.placement, p."desiredState", p."restartPolicy", p.spec,
                p.vcpus, p."memoryMiB", host(p.ip) AS ip, p.labels, p."imageDigests", t."networkId", t.subnet
         FROM pods p JOIN tenants t ON t.id = p."tenantId" WHERE p."nodeId" = $1 ORDER BY p.id`,
        [nodeId],
      );
      const podIds = pods.rows.map((p) => p.id);
      const tenantIds = [...new Set(pods.rows.map((p) => p.tenantId))];
      const [containers, credentials] = await Promise.all([
        client.query<ContainerRow>(
          `SELECT "podId", name, image, command, args, env, "workingDir", "user", "cpuLimitMillis", "memoryLimitMiB"
           FROM containers WHERE "podId" = ANY($1::uuid[]) ORDER BY "podId", ordinal`,
          [podIds],
        ),
        client.query<CredentialRow>(
          `SELECT "tenantId", registry, username, "secretCiphertext" FROM registry_credentials
           WHERE "tenantId" = ANY($1::uuid[]) ORDER BY "tenantId", registry`,
          [tenantIds],
        ),
      ]);
      await client.query('COMMIT');
      return this.build(row, pods.rows, containers.rows, credentials.rows);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private build(node: NodeRow, pods: PodRow[], containers: ContainerRow[], credentials: CredentialRow[]): DesiredSet {
    const byPod = new Map<string, ContainerRow[]>();
    for (const c of containers) byPod.set(c.podId, [...(byPod.get(c.podId) ?? []), c]);
    const registriesByTenant = new Map<string, Set<string>>();
    const desiredPods = pods.map((pod): DesiredPod => {
      const digests = stringRecord(pod.imageDigests);
      const spec = isRecord(pod.spec) ? pod.spec : {};
      const restart = isRecord(spec['restartRequest']) ? spec['restartRequest']['generation'] : undefined;
      const podContainers = (byPod.get(pod.id) ?? []).map((c) => this.container(pod, c, digests));
      const registries = registriesByTenant.get(pod.tenantId) ?? new Set<string>();
      for (const c of podContainers) registries.add(registryOf(c.image));
      registriesByTenant.set(pod.tenantId, registries);
      return {
        podId: pod.id,
        tenantId: pod.tenantId,
        name: pod.name,
        generation: pod.generation,
        placement: pod.placement,
        desiredState: pod.desiredState,
        restartPolicy: pod.restartPolicy,
        restartGeneration: typeof restart === 'number' ? restart : null,
        vcpus: pod.vcpus,
        memoryMiB: pod.memoryMiB,
        ip: pod.ip,
        network: { vni: pod.networkId, subnet: pod.subnet },
        labels: stringRecord(pod.labels),
        containers: podContainers,
      };
    });
    const registryCredentials = credentials
      .filter((c) => registriesByTenant.get(c.tenantId)?.has(c.registry) === true)
      .flatMap((c) => {
        const password = this.open(c.secretCiphertext, registrySecretContext(c.tenantId, c.registry));
        return password === null
          ? []
          : [{ tenantId: c.tenantId, registry: c.registry, username: c.username, password }];
      });
    return {
      nodeId: node.id,
      version: node.desiredVersion,
      epoch: node.epoch,
      cordoned: node.cordoned,
      draining: node.draining,
      pods: desiredPods,
      registryCredentials,
      generatedAt: new Date().toISOString(),
    };
  }

  private container(pod: PodRow, row: ContainerRow, digests: Record<string, string>): DesiredContainer {
    const env = (Array.isArray(row.env) ? row.env : []).flatMap((entry: unknown) => {
      if (!isRecord(entry) || typeof entry['name'] !== 'string') return [];
      const name = entry['name'];
      if (entry['secret'] === true && typeof entry['ciphertext'] === 'string') {
        const value = this.open(
          Buffer.from(entry['ciphertext'], 'base64'),
          podEnvSecretContext(pod.tenantId, pod.id, row.name, name),
        );
        return value === null ? [] : [{ name, value, secret: true }];
      }
      return typeof entry['value'] === 'string' ? [{ name, value: entry['value'], secret: false }] : [];
    });
    return {
      name: row.name,
      image: row.image,
      imageDigest: digests[row.image] ?? null,
      command: row.command,
      args: row.args,
      env,
      workingDir: row.workingDir,
      user: row.user,
      cpuLimitMillis: row.cpuLimitMillis,
      memoryLimitMiB: row.memoryLimitMiB,
    };
  }

  /** A secret that does not open (wrong key, tampered row) is left out and logged, never published as garbage. */
  private open(sealed: Buffer, context: string): string | null {
    try {
      return this.options.secrets.open(sealed, context);
    } catch {
      this.options.log.error({ context: context.split(':')[0] }, 'a sealed secret does not open; left out of the set');
      return null;
    }
  }

  private async writeIfNewer(key: string, set: DesiredSet): Promise<boolean> {
    return (await this.redis[WRITE_IF_NEWER_COMMAND](key, set.version, JSON.stringify(set))) === 1;
  }

  private async announce(nodeId: string, ready: DesiredSetReady): Promise<void> {
    let queue = this.queues.get(nodeId);
    if (queue === undefined) {
      queue = new Queue(NodeQueueName.Desired, {
        connection: this.options.redis,
        prefix: nodeKeys(nodeId, this.options.prefix).prefix,
      });
      queue.on('error', (error) => this.options.log.warn({ err: error, nodeId }, 'node queue error'));
      this.queues.set(nodeId, queue);
    }
    await queue.add(DESIRED_SET_READY_JOB, ready, {
      ...ANNOUNCEMENT_JOB_OPTIONS,
      jobId: desiredSetReadyJobId(ready.version),
    });
  }
}
