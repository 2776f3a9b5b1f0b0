// Two simulated hosts, as infra/topology runs them: two real agents on this machine, each with its own state dir,
// VM uid range and host network namespace (its VMs run there). One host dies — its agent and every VM of it
// killed at once — and its pods run on the other host; the tenant's events tell the story. Then the other host
// is cut off from Redis while its agent lives on: past the lease grace it destroys its own VMs (self-fencing).
import { statSync } from 'node:fs';
import { AgentHost, Cluster, demoRegistry, freePort, TcpLink, waitFor } from '@caas/cluster-harness';

jest.setTimeout(600_000);

const cluster = new Cluster({ schedulers: 1, label: 'two-hosts', leaseGraceMs: 3_000 });
/** host-b reaches Redis through a link the test can cut (a network partition between it and Redis). */
let redisLinkOfB: TcpLink | undefined;
const hosts: AgentHost[] = [];
let registryPort: number;
let image: string;

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
  image = demoRegistry('push', { port: registryPort });
  await cluster.start();
}, 300_000);

afterAll(async () => {
  for (const host of hosts) await host.destroy();
  await redisLinkOfB?.close();
  await cluster.stop();
  if (registryPort) demoRegistry('purge', { port: registryPort });
}, 120_000);

const movers: { token: string; ids: string[] } = { token: '', ids: [] };

interface PodView {
  id: string;
  phase: string;
  nodeName: string | null;
  ip: string | null;
}

const pods = async (): Promise<PodView[]> =>
  Promise.all(
    movers.ids.map(
      async (id) =>
        (await cluster.ok(movers.token, 'query ($id: ID!) { pod(id: $id) { id phase nodeName ip } }', { id }))
          .pod as PodView,
    ),
  );

const allRunningOn = (node: string, what: string) =>
  waitFor(async () => (await pods()).every((p) => p.phase === 'RUNNING' && p.nodeName === node), 300_000, what).catch(
    async (error: unknown) => {
      throw new Error(
        `${String(error)}: ${JSON.stringify(await pods())}\n` +
          hosts.map((h) => `--- ${h.options.name}\n${h.output().slice(-3000)}`).join('\n'),
      );
    },
  );

/** The events of a pod, oldest first. */
async function eventsOf(id: string): Promise<{ reason: string; message: string }[]> {
  const answer = await cluster.ok(
    movers.token,
    'query ($id: ID!) { events(podId: $id, first: 100) { edges { node { reason message } } } }',
    { id },
  );
  return (answer.events.edges as { node: { reason: string; message: string } }[]).map((e) => e.node).reverse();
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
    Object.assign(movers, { token: tenant.token, ids });
    await allRunningOn('host-a', 'both pods RUNNING on host-a');
    const before = await pods();

    // host-a's VMs run in host-a's own network namespace, not in the namespace the agent runs in.
    expect(a.vmPids()).toHaveLength(2);
    for (const pid of a.vmPids()) {
      expect(netnsOf(`/proc/${pid}/ns/net`)).toBe(netnsOf(`/run/netns/${a.options.netns}`));
      expect(netnsOf(`/proc/${pid}/ns/net`)).not.toBe(netnsOf('/proc/self/ns/net'));
    }

    const redis = new URL(cluster.redisUrl);
    redisLinkOfB = await TcpLink.open({ host: redis.hostname, port: Number(redis.port || 6379) });
    const b = await AgentHost.join(cluster, {
      ...hostOptions('b', 422_000),
      env: { REDIS_URL: `redis://127.0.0.1:${redisLinkOfB.port}${redis.pathname}` },
    });
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
      const events = await eventsOf(id);
      const scheduledOnA = events.findIndex((e) => e.reason === 'Scheduled' && e.message.includes('host-a'));
      const lost = events.findIndex((e) => e.reason === 'NodeLost' && e.message.includes('host-a'));
      const scheduledOnB = events.findIndex((e) => e.reason === 'Scheduled' && e.message.includes('host-b'));
      expect(scheduledOnA).toBeGreaterThanOrEqual(0);
      expect(lost).toBeGreaterThan(scheduledOnA);
      expect(scheduledOnB).toBeGreaterThan(lost);
      expect(events.slice(scheduledOnB).map((e) => e.reason)).toContain('Started');
    }
    process.stdout.write(`two-hosts: host-a died → both pods RUNNING on host-b after ${movedAfterS.toFixed(1)} s\n`);
  });

  it('a host cut off from Redis past the lease grace destroys its own VMs (self-fencing); its pods run elsewhere', async () => {
    const [a, b] = hosts as [AgentHost, AgentHost];
    a.start(); // host-a comes back (same identity; the control plane fences its old epoch)
    await a.waitReady();
    await allRunningOn('host-b', 'both pods still on host-b');
    expect(b.vmPids()).toHaveLength(2);

    // host-b is partitioned from Redis; its agent keeps running and cannot renew its lease.
    redisLinkOfB?.cut();
    await waitFor(async () => b.vmPids().length === 0, 60_000, "host-b's agent to destroy its VMs").catch(
      (error: unknown) => {
        throw new Error(`${String(error)}\n--- host-b\n${b.output().slice(-4000)}`);
      },
    );
    expect(b.process?.child.exitCode).toBeNull(); // the agent fenced itself; it did not die
    expect(b.output()).toContain('self-fencing');

    await allRunningOn('host-a', 'both pods RUNNING on host-a after host-b fenced itself');
    expect(a.vmPids()).toHaveLength(2);
    expect(b.vmPids()).toHaveLength(0);
    for (const id of movers.ids) {
      const reasons = (await eventsOf(id)).map((e) => `${e.reason}${e.message.includes('host-b') ? '@b' : ''}`);
      expect(reasons.lastIndexOf('NodeLost@b')).toBeGreaterThan(-1);
    }

    // The partition heals: host-b is READY again (a new epoch), runs nothing, and the pods stay where they are.
    redisLinkOfB?.heal();
    await b.waitReady(60_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(b.vmPids()).toHaveLength(0);
    expect((await pods()).map((p) => [p.phase, p.nodeName])).toEqual([
      ['RUNNING', 'host-a'],
      ['RUNNING', 'host-a'],
    ]);
  });
});
