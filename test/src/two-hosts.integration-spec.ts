// Two simulated hosts, as infra/topology runs them: two real agents on this machine, each with its own state dir,
// VM uid range and host network namespace (its VMs run there). One host dies — its agent and every VM of it
// killed at once — and its pods run on the other host; the tenant's events tell the story.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@caas/testing';
import { AgentHost, Cluster, freePort, waitFor } from '@caas/cluster-harness';

jest.setTimeout(600_000);

const cluster = new Cluster({ schedulers: 1, label: 'two-hosts', leaseGraceMs: 3_000 });
const hosts: AgentHost[] = [];
let registryPort: number;
let image: string;

const registry = (command: 'push' | 'stop'): string =>
  execFileSync('bash', [join(repoRoot(), 'scripts/demo-registry.sh'), command], {
    env: { ...process.env, REGISTRY_PORT: String(registryPort) },
    encoding: 'utf8',
  }).trim();

const hostOptions = (letter: 'a' | 'b', uidBase: number) => ({
  name: `host-${letter}`,
  netns: `caas-e2e-${letter}-${process.pid}`,
  vmUidBase: uidBase,
  capacity: { vcpus: 4, memoryMiB: 2048, pods: 4 },
});

/** The network namespace a process runs in, as a device:inode pair. */
const netnsOf = (path: string): string => {
  const s = statSync(path);
  return `${s.dev}:${s.ino}`;
};

beforeAll(async () => {
  registryPort = await freePort();
  image = registry('push');
  await cluster.start();
}, 300_000);

afterAll(async () => {
  for (const host of hosts) await host.destroy();
  await cluster.stop();
  if (registryPort) registry('stop');
}, 120_000);

interface PodView {
  id: string;
  phase: string;
  nodeName: string | null;
  ip: string | null;
}

describe('two simulated hosts', () => {
  it("one host dies with its VMs: its pods run on the other host, and the pods' events show the move", async () => {
    const tenant = await cluster.tenant('movers');
    const a = await AgentHost.join(cluster, hostOptions('a', 421_000));
    hosts.push(a);
    // Both pods go to host-a: it is the only node yet.
    const ids: string[] = [];
    for (const name of ['web', 'worker']) {
      const created = await cluster.ok(
        tenant.token,
        'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }',
        {
          input: {
            name,
            vcpus: 1,
            memoryMiB: 256,
            containers: [
              { name: 'main', image, command: ['/bin/sh', '-c', `echo ${name}; while true; do sleep 1; done`] },
            ],
          },
        },
      );
      ids.push(created.createPod.id as string);
    }
    const pods = async (): Promise<PodView[]> =>
      Promise.all(
        ids.map(
          async (id) =>
            (await cluster.ok(tenant.token, 'query ($id: ID!) { pod(id: $id) { id phase nodeName ip } }', { id }))
              .pod as PodView,
        ),
      );
    const allRunningOn = (node: string, what: string) =>
      waitFor(
        async () => (await pods()).every((p) => p.phase === 'RUNNING' && p.nodeName === node),
        300_000,
        what,
      ).catch(async (error: unknown) => {
        throw new Error(
          `${String(error)}: ${JSON.stringify(await pods())}\n` +
            hosts.map((h) => `--- ${h.options.name}\n${h.output().slice(-3000)}`).join('\n'),
        );
      });
    await allRunningOn('host-a', 'both pods RUNNING on host-a');
    const before = await pods();

    // host-a's VMs run in host-a's own network namespace, not in the namespace the agent runs in.
    expect(a.vmPids()).toHaveLength(2);
    for (const pid of a.vmPids()) {
      expect(netnsOf(`/proc/${pid}/ns/net`)).toBe(netnsOf(`/run/netns/${a.options.netns}`));
      expect(netnsOf(`/proc/${pid}/ns/net`)).not.toBe(netnsOf('/proc/self/ns/net'));
    }

    const b = await AgentHost.join(cluster, hostOptions('b', 422_000));
    hosts.push(b);
    expect(b.vmPids()).toHaveLength(0);

    // host-a dies: its agent and its VMs at once.
    const diedAt = Date.now();
    await a.kill('SIGKILL');
    a.killVms();
    await allRunningOn('host-b', 'both pods RUNNING on host-b');
    const movedAfterS = (Date.now() - diedAt) / 1000;

    const after = await pods();
    // The same pods (same ids, same addresses), now on host-b's VMs in host-b's namespace; nothing left of host-a.
    expect(after.map((p) => [p.id, p.ip])).toEqual(before.map((p) => [p.id, p.ip]));
    expect(b.vmPids()).toHaveLength(2);
    for (const pid of b.vmPids()) {
      expect(netnsOf(`/proc/${pid}/ns/net`)).toBe(netnsOf(`/run/netns/${b.options.netns}`));
    }
    expect(a.vmPids()).toHaveLength(0);
    const [nodeA] = await cluster.query<{ status: string }>(`SELECT status FROM nodes WHERE name = 'host-a'`);
    expect(nodeA?.status).toBe('NOT_READY');

    // The tenant sees the move in each pod's events (oldest first): placed on host-a, lost with it, placed on host-b.
    for (const id of ids) {
      const answer = await cluster.ok(
        tenant.token,
        'query ($id: ID!) { events(podId: $id, first: 100) { edges { node { reason message } } } }',
        { id },
      );
      const events = (answer.events.edges as { node: { reason: string; message: string } }[])
        .map((e) => e.node)
        .reverse();
      const scheduledOnA = events.findIndex((e) => e.reason === 'Scheduled' && e.message.includes('host-a'));
      const lost = events.findIndex((e) => e.reason === 'NodeLost' && e.message.includes('host-a'));
      const scheduledOnB = events.findIndex((e) => e.reason === 'Scheduled' && e.message.includes('host-b'));
      expect({ id, scheduledOnA, lost, scheduledOnB }).toEqual({
        id,
        scheduledOnA: expect.any(Number),
        lost: expect.any(Number),
        scheduledOnB: expect.any(Number),
      });
      expect(scheduledOnA).toBeGreaterThanOrEqual(0);
      expect(lost).toBeGreaterThan(scheduledOnA);
      expect(scheduledOnB).toBeGreaterThan(lost);
      expect(events.slice(scheduledOnB).map((e) => e.reason)).toContain('Started');
    }
    process.stdout.write(`two-hosts: host-a died → both pods RUNNING on host-b after ${movedAfterS.toFixed(1)} s\n`);
  });
});
