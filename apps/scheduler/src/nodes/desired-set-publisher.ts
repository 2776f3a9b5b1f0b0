import { createHash } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import { networkPolicySpecSchema } from '@caas/network-policy-model';
import type {
  DesiredContainer,
  DesiredNetwork,
  DesiredNetworkPolicy,
  DesiredPod,
  DesiredSet,
} from '@caas/queue-contracts';
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
  /** null: the node has no pod network (joined without an underlay address). */
  underlay: string | null;
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

interface TenantRow {
  id: string;
  networkId: number;
  subnet: string;
  egressDefault: DesiredNetwork['egressDefault'];
}

interface PolicyRow {
  tenantId: string;
  name: string;
  podSelector: unknown;
  policyTypes: unknown;
  ingress: unknown;
  egress: unknown;
  deny: unknown;
}

/** A placed pod of a tenant of the set, on any node, that holds an address. */
interface TenantPodRow {
  id: string;
  tenantId: string;
  ip: string;
  labels: unknown;
  nodeId: string;
  nodeName: string;
  underlay: string | null;
}

interface NetworkRows {
  tenants: TenantRow[];
  policies: PolicyRow[];
  pods: TenantPodRow[];
  vteps: string[];
}

/** A node without a pod network runs no tenant network: nothing to read, nothing to fan out to it. */
const NO_NETWORKS: NetworkRows = { tenants: [], policies: [], pods: [], vteps: [] };

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

/** The first host address of an IPv4 CIDR (the tenant gateway, which the API never gives a pod), or null. */
export function gatewayOf(subnet: string): string | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  if (match === null) return null;
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 30) return null;
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  const gateway = base - (base % size) + 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(gateway / 2 ** shift) % 256).join('.');
}

/**
 * What of a tenant's network other nodes see (its pods with their nodes, and their VTEPs): when it differs from
 * what a node was last published with, the tenant's other nodes need a new set too (`fanOut`).
 */
function networkDigest(network: DesiredNetwork): string {
  const vteps = new Map(network.peers.map((p) => [p.podId, p.vtep]));
  const view = network.pods.map((p) => [p.podId, p.address, p.node, vteps.get(p.podId) ?? null, p.labels]);
  return createHash('sha256').update(JSON.stringify(view)).digest('base64url');
}

export interface PublishOptions {
  /**
   * Also bump and republish the other nodes of every tenant whose network (its pods, their nodes, addresses,
   * labels, VTEPs) differs from what this node was last published with. Default true; the fan-out's own
   * publishes run without it, so one change costs one round.
   */
  fanOut?: boolean;
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
  /** How long a network fan-out waits to collect others into one bump (default `DEFAULT_FAN_OUT_DELAY_MS`). */
  fanOutDelayMs?: number;
}

/** A peer appears on the tenant's other nodes this much later than on its own node, at most, plus a publish. */
export const DEFAULT_FAN_OUT_DELAY_MS = 1000;

/**
 * Publishes a node's desired set (ADR-009): reads the node's version and pods in one snapshot, writes the set to
 * the node's `desiredSet` key if it is newer than what is stored, and announces "version N is ready" on the node's
 * queue (job id per version, so two publishers of one version add one job). Safe to call from any replica at any
 * time and as often as wanted: it is a pure function of the database at one snapshot.
 */
export class DesiredSetPublisher {
  private readonly queues = new Map<string, Queue>();
  /** Publishes under way, and the one trailing publish queued behind each (see `publishMany`). */
  private readonly running = new Map<string, Promise<unknown>>();
  private readonly trailing = new Map<string, Promise<void>>();
  /** The fan-out batch collecting tenants, until its bump starts. */
  private pendingFanOut: { tenants: Set<string>; origins: Set<string>; promise: Promise<string[]> } | null = null;
  private readonly fanOutDelayMs: number;
  /** Nodes whose queued trailing publish must fan out (one of its callers asked for it). */
  private readonly trailingFanOut = new Set<string>();
  private readonly redis: Redis & WriteIfNewerCommand;

  constructor(private readonly options: DesiredSetPublisherOptions) {
    this.fanOutDelayMs = options.fanOutDelayMs ?? DEFAULT_FAN_OUT_DELAY_MS;
    // ioredis sends EVALSHA and falls back to EVAL after a Redis restart emptied the script cache.
    options.redis.defineCommand(WRITE_IF_NEWER_COMMAND, { numberOfKeys: 1, lua: WRITE_IF_NEWER });
    this.redis = options.redis as Redis & WriteIfNewerCommand;
  }

  /**
   * Publishes the node's current set; returns its version, or null when the node does not exist. With `fanOut`
   * (the default), the tenants whose network changed since the node's last publish are fanned out first: their
   * other nodes' versions are bumped (committed before this set is written, so a crash in between leaves versions
   * newer than their sets, which reconcile republishes) and their sets published.
   */
  async publish(nodeId: string, options: PublishOptions = {}): Promise<{ version: string; written: boolean } | null> {
    const published = await this.publishOnce(nodeId, options.fanOut !== false);
    if (published === null) return null;
    await this.publishMany(published.fannedOut, { fanOut: false });
    return { version: published.version, written: published.written };
  }

  /**
   * Publishes the node's set and returns the nodes its fan-out bumped, without publishing them: a publish under
   * way never waits for another node's (two nodes fanning out to each other would wait for each other).
   */
  private async publishOnce(
    nodeId: string,
    fanOut: boolean,
  ): Promise<{ version: string; written: boolean; fannedOut: string[] } | null> {
    const set = await this.read(nodeId);
    if (set === null) return null;
    const keys = nodeKeys(nodeId, this.options.prefix);
    const digests = this.digests(set);
    let fannedOut: string[] = [];
    if (fanOut) {
      const changed = await this.changedTenants(nodeId, digests);
      if (changed.length > 0) {
        fannedOut = await this.fanOutBatch(changed, nodeId);
        this.options.log.debug({ nodeId, tenantIds: changed, fannedOut }, 'tenant networks changed: fanning out');
      }
    }
    const written = await this.writeIfNewer(keys.desiredSet, set);
    if (written) {
      await this.options.redis.set(this.digestKey(nodeId), JSON.stringify(digests));
      await this.announce(nodeId, { version: set.version, epoch: set.epoch });
    }
    return { version: set.version, written, fannedOut };
  }

  /**
   * Bumps the version of every node with a pod of these tenants (but `except`) and publishes their sets without
   * a further fan-out: for a change that is not a pod's (a network policy). Returns the nodes bumped.
   */
  async republishTenants(tenantIds: readonly string[], except: string | null = null): Promise<string[]> {
    if (tenantIds.length === 0) return [];
    const nodeIds = await this.bumpTenantNodes(tenantIds, except);
    if (nodeIds.length > 0) {
      this.options.log.debug({ tenantIds, nodeIds }, 'tenant networks changed: republishing their nodes');
      await this.publishMany(nodeIds, { fanOut: false });
    }
    return nodeIds;
  }

  /**
   * Publishes several nodes' sets (errors are logged per node; reconcile repeats what failed). Calls for a node whose
   * publish is under way in this process share one trailing publish after it (which reads a snapshot taken after
   * every change its callers committed), so a burst of placements onto one node costs two reads, not one per pod.
   */
  async publishMany(nodeIds: Iterable<string>, options: PublishOptions = {}): Promise<void> {
    const fanOut = options.fanOut !== false;
    await Promise.all([...new Set(nodeIds)].map((nodeId) => this.coalesced(nodeId, fanOut)));
  }

  private coalesced(nodeId: string, fanOut: boolean): Promise<void> {
    const queued = this.trailing.get(nodeId);
    if (queued !== undefined) {
      // A caller that wants the fan-out makes the queued publish do it.
      if (fanOut) this.trailingFanOut.add(nodeId);
      return queued;
    }
    const current = this.running.get(nodeId);
    if (current === undefined) return this.run(nodeId, fanOut);
    if (fanOut) this.trailingFanOut.add(nodeId);
    const next = current.then(() => {
      this.trailing.delete(nodeId);
      const withFanOut = this.trailingFanOut.delete(nodeId);
      return this.run(nodeId, withFanOut);
    });
    this.trailing.set(nodeId, next);
    return next;
  }

  private run(nodeId: string, fanOut: boolean): Promise<void> {
    const done: Promise<string[]> = this.publishOnce(nodeId, fanOut)
      .then((published) => published?.fannedOut ?? [])
      .catch((error: unknown) => {
        this.options.log.warn({ err: error, nodeId }, 'publishing a desired set failed; reconcile retries it');
        return [];
      })
      .finally(() => {
        if (this.running.get(nodeId) === done) this.running.delete(nodeId);
      });
    this.running.set(nodeId, done);
    // The fan-out's publishes run after this node's slot is free (see `publishOnce`).
    return done.then((fannedOut) =>
      fannedOut.length > 0 ? this.publishMany(fannedOut, { fanOut: false }) : undefined,
    );
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
        `SELECT id, "desiredVersion"::text AS "desiredVersion", epoch, cordoned, draining,
                host("underlayAddress") AS underlay
         FROM nodes WHERE id = $1`,
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
      const network = row.underlay === null ? NO_NETWORKS : await this.readNetworks(client, nodeId, tenantIds);
      await client.query('COMMIT');
      return this.build(row, pods.rows, containers.rows, credentials.rows, network);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** The networks of the set's tenants and the other nodes' VTEPs, in the snapshot of `read`. */
  private async readNetworks(client: pg.PoolClient, nodeId: string, tenantIds: string[]): Promise<NetworkRows> {
    // One client runs one query at a time: in sequence.
    const tenants = await client.query<TenantRow>(
      `SELECT id, "networkId", subnet, "egressDefault" FROM tenants WHERE id = ANY($1::uuid[]) ORDER BY id`,
      [tenantIds],
    );
    const policies = await client.query<PolicyRow>(
      `SELECT "tenantId", name, "podSelector", "policyTypes"::text[] AS "policyTypes", ingress, egress, deny
         FROM network_policies WHERE "tenantId" = ANY($1::uuid[]) ORDER BY "tenantId", name`,
      [tenantIds],
    );
    const pods = await client.query<TenantPodRow>(
      `SELECT p.id, p."tenantId", host(p.ip) AS ip, p.labels, n.id AS "nodeId", n.name AS "nodeName",
                host(n."underlayAddress") AS underlay
         FROM pods p JOIN nodes n ON n.id = p."nodeId"
         WHERE p."tenantId" = ANY($1::uuid[]) AND p.ip IS NOT NULL ORDER BY p."tenantId", p.id`,
      [tenantIds],
    );
    const vteps = await client.query<{ vtep: string }>(
      `SELECT DISTINCT host("underlayAddress") AS vtep FROM nodes
         WHERE id <> $1 AND "underlayAddress" IS NOT NULL ORDER BY vtep`,
      [nodeId],
    );
    return { tenants: tenants.rows, policies: policies.rows, pods: pods.rows, vteps: vteps.rows.map((r) => r.vtep) };
  }

  /**
   * One network per tenant of the set. A tenant with a stored policy that does not parse, or a subnet without a
   * gateway, gets no network (fail closed: no entry means no namespace and no traffic for its pods here, where a
   * skipped deny or isolating policy would open traffic); the error is logged.
   */
  private networks(nodeId: string, rows: NetworkRows): DesiredNetwork[] {
    const policiesOf = new Map<string, PolicyRow[]>();
    for (const p of rows.policies) policiesOf.set(p.tenantId, [...(policiesOf.get(p.tenantId) ?? []), p]);
    const podsOf = new Map<string, TenantPodRow[]>();
    for (const p of rows.pods) podsOf.set(p.tenantId, [...(podsOf.get(p.tenantId) ?? []), p]);
    return rows.tenants.flatMap((tenant): DesiredNetwork[] => {
      const gateway = gatewayOf(tenant.subnet);
      if (gateway === null) {
        this.options.log.error({ tenantId: tenant.id, subnet: tenant.subnet }, 'tenant subnet has no gateway');
        return [];
      }
      const policies: DesiredNetworkPolicy[] = [];
      for (const row of policiesOf.get(tenant.id) ?? []) {
        const { podSelector, policyTypes, ingress, egress, deny } = row;
        const parsed = networkPolicySpecSchema.safeParse({ podSelector, policyTypes, ingress, egress, deny });
        if (!parsed.success) {
          this.options.log.error(
            { tenantId: tenant.id, policy: row.name, error: parsed.error.message },
            "a stored network policy does not parse: the tenant's network is left out of the set (fail closed)",
          );
          return [];
        }
        policies.push({ name: row.name, ...parsed.data });
      }
      const pods = podsOf.get(tenant.id) ?? [];
      return [
        {
          tenantId: tenant.id,
          networkId: tenant.networkId,
          subnet: tenant.subnet,
          gateway,
          egressDefault: tenant.egressDefault,
          policies,
          pods: pods.map((p) => ({ podId: p.id, address: p.ip, labels: stringRecord(p.labels), node: p.nodeName })),
          peers: pods.flatMap((p) =>
            p.nodeId !== nodeId && p.underlay !== null ? [{ podId: p.id, address: p.ip, vtep: p.underlay }] : [],
          ),
        },
      ];
    });
  }

  private build(
    node: NodeRow,
    pods: PodRow[],
    containers: ContainerRow[],
    credentials: CredentialRow[],
    network: NetworkRows,
  ): DesiredSet {
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
      networks: this.networks(node.id, network),
      vteps: network.vteps,
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

  /** Tenant id → digest of its network as this set shows it; a tenant left out (fail closed) by its pods here. */
  private digests(set: DesiredSet): Record<string, string> {
    const digests: Record<string, string> = {};
    for (const pod of set.pods) digests[pod.tenantId] = `none:${pod.podId}`;
    for (const network of set.networks ?? []) digests[network.tenantId] = networkDigest(network);
    return digests;
  }

  /**
   * Scheduler-only key (outside the node's key space, so no node can read or write it): the digests the node's
   * set was last written with.
   */
  private digestKey(nodeId: string): string {
    return `${this.options.prefix}:desired-set-network-digests:${nodeId}`;
  }

  /** Tenants whose digest differs from the node's last written one, or that were there and are gone. */
  private async changedTenants(nodeId: string, digests: Record<string, string>): Promise<string[]> {
    const raw = await this.options.redis.get(this.digestKey(nodeId));
    let previous: Record<string, unknown> = {};
    try {
      const parsed: unknown = raw === null ? {} : JSON.parse(raw);
      if (isRecord(parsed)) previous = parsed;
    } catch {
      previous = {};
    }
    const tenants = new Set([...Object.keys(previous), ...Object.keys(digests)]);
    return [...tenants].filter((tenantId) => previous[tenantId] !== digests[tenantId]).sort();
  }

  /**
   * Joins the fan-out batch that starts within `fanOutDelayMs`: one bump of every node of the batch's tenants, so a
   * burst of placements of a tenant's pods bumps its nodes a few times, not once per pod. Resolves with the nodes
   * bumped once the bump committed (the caller's own too when the batch has other origins).
   */
  private fanOutBatch(tenantIds: readonly string[], origin: string): Promise<string[]> {
    let batch = this.pendingFanOut;
    if (batch === null) {
      const tenants = new Set<string>();
      const origins = new Set<string>();
      const promise = new Promise<void>((resolve) => setTimeout(resolve, this.fanOutDelayMs)).then(() => {
        if (this.pendingFanOut?.tenants === tenants) this.pendingFanOut = null;
        // A lone origin's snapshot already holds the change; with several, each may predate another's change.
        return this.bumpTenantNodes([...tenants].sort(), origins.size === 1 ? [...origins][0] : null);
      });
      batch = { tenants, origins, promise };
      this.pendingFanOut = batch;
    }
    for (const tenantId of tenantIds) batch.tenants.add(tenantId);
    batch.origins.add(origin);
    return batch.promise;
  }

  /**
   * Bumps every node with a pod network (but `except`) with a pod of these tenants, each in a statement of its own: a fan-out never
   * holds one node's row lock while waiting for another's, so it cannot deadlock with placement, ingest or the
   * monitor, and never holds up more than one node at a time. Returns the nodes bumped. A crash half-way leaves the
   * caller's own set unwritten (it writes after this), so reconcile republishes it and the fan-out runs again.
   */
  private async bumpTenantNodes(tenantIds: readonly string[], except: string | null): Promise<string[]> {
    const { rows } = await this.options.pool.query<{ id: string }>(
      `SELECT DISTINCT p."nodeId" AS id FROM pods p JOIN nodes n ON n.id = p."nodeId"
       WHERE p."tenantId" = ANY($1::uuid[]) AND n."underlayAddress" IS NOT NULL
         AND ($2::uuid IS NULL OR p."nodeId" <> $2::uuid)
       ORDER BY id`,
      [tenantIds, except],
    );
    const bumped: string[] = [];
    for (const { id } of rows) {
      const result = await this.options.pool.query(
        `UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now() WHERE id = $1`,
        [id],
      );
      if (result.rowCount === 1) bumped.push(id);
    }
    return bumped;
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
