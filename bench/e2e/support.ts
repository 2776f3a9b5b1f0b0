// Settings, clean-up and the GraphQL calls of `bench:e2e`. Everything started is registered here and undone in
// reverse order, exactly once — on success, on failure and on Ctrl-C.
import type { AgentHost, Cluster } from '@caas/cluster-harness';
import { Cleanup, waitFor } from '@caas/cluster-harness';

export const log = (message: string): void => void process.stderr.write(`[bench:e2e] ${message}\n`);
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `--name N` on the command line, else the environment variable, else the default. */
export function intSetting(flag: string, env: string, fallback: number): number {
  const at = process.argv.indexOf(`--${flag}`);
  const raw = at >= 0 ? process.argv[at + 1] : process.env[env];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${flag} / ${env} must be a non-negative integer`);
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Clean-up
// ---------------------------------------------------------------------------------------------------------

const cleanup = new Cleanup(log);
const hosts = new Set<AgentHost>();
const everyHost: AgentHost[] = [];

export const onCleanup = (name: string, run: () => Promise<void>): void => void cleanup.add(name, run);
export const cleanUp = (): Promise<void> => cleanup.run();

/** A host to destroy at the end (its agent stopped, its VMs killed, its state dir removed). */
export function trackHost(host: AgentHost): AgentHost {
  hosts.add(host);
  everyHost.push(host);
  onCleanup(`destroy host ${host.options.name}`, async () => {
    await host.destroy();
    hosts.delete(host);
  });
  return host;
}

/** QEMU processes of any host this run started that are still there. */
export const leftoverVms = (): number[] => everyHost.flatMap((host) => host.vmPids());

// Last resort (an exit that skipped the clean-up): no VM of ours outlives the benchmark.
cleanup.onSignals({ lastResort: () => hosts.forEach((host) => host.killVms()) });

// ---------------------------------------------------------------------------------------------------------
// GraphQL
// ---------------------------------------------------------------------------------------------------------

export interface PodView {
  id: string;
  phase: string;
  reason: string | null;
  message: string | null;
  nodeName: string | null;
}

const POD = 'id phase reason message nodeName';

export async function createPod(cluster: Cluster, token: string, name: string, image: string): Promise<string> {
  const data = await cluster.ok(token, 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }', {
    input: {
      name,
      vcpus: 1,
      memoryMiB: 256,
      containers: [{ name: 'main', image, command: ['/bin/sh', '-c', 'echo started; exec sleep 3600'] }],
    },
  });
  return data.createPod.id as string;
}

/** The pod as a tenant reads it; null once it is gone. */
export async function podOf(cluster: Cluster, token: string, id: string): Promise<PodView | null> {
  const body = await cluster.gql(token, `query ($id: ID!) { pod(id: $id) { ${POD} } }`, { id });
  if (body.errors?.[0]?.extensions.code === 'NOT_FOUND') return null;
  if (body.errors !== undefined) throw new Error(`pod ${id}: ${JSON.stringify(body.errors)}`);
  return body.data.pod as PodView;
}

const FINAL = new Set(['FAILED', 'SUCCEEDED', 'STOPPED', 'LOST']);

/** Until the pod is RUNNING (on `node` when given); fails fast when it ends. */
export async function waitRunning(cluster: Cluster, token: string, id: string, node?: string): Promise<void> {
  let last: PodView | null = null;
  await waitFor(
    async () => {
      last = await podOf(cluster, token, id);
      if (last && FINAL.has(last.phase)) throw new Error(`pod ${id} ended ${last.phase}: ${last.message ?? ''}`);
      return last?.phase === 'RUNNING' && (node === undefined || last.nodeName === node);
    },
    240_000,
    `pod ${id} RUNNING${node ? ` on ${node}` : ''}`,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}: ${JSON.stringify(last)}`);
  });
}

/** Deletes the pods and waits until they are gone, and every VM of the host with them. */
export async function deletePods(cluster: Cluster, token: string, ids: string[], host: AgentHost): Promise<void> {
  for (const id of ids) await cluster.ok(token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
  for (const id of ids) {
    await waitFor(async () => (await podOf(cluster, token, id)) === null, 120_000, `pod ${id} gone`);
  }
  await waitFor(async () => host.vmPids().length === 0, 60_000, `no VM left on ${host.options.name}`);
}

export async function nodeId(cluster: Cluster, name: string): Promise<string> {
  const [row] = await cluster.query<{ id: string }>('SELECT id FROM nodes WHERE name = $1', [name]);
  if (row === undefined) throw new Error(`no node ${name}`);
  return row.id;
}

export async function cordon(cluster: Cluster, name: string, cordoned: boolean): Promise<void> {
  const mutation = cordoned ? 'cordonNode' : 'uncordonNode';
  await cluster.ok(cluster.operatorToken, `mutation ($id: ID!) { ${mutation}(id: $id) { id } }`, {
    id: await nodeId(cluster, name),
  });
}
