// The scheduler as a cluster: the built API, three scheduler processes and simulated nodes that joined through
// the API and speak the node contract over their own Redis users. Real PostgreSQL and Redis throughout.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { joinCluster } from '@caas/node-client';
import { tsRegisterPath } from '@caas/testing';
import { Cluster, waitFor } from '@caas/cluster-harness';

jest.setTimeout(300_000);

const VM_OVERHEAD_MIB = 256;
const CREATE_POD = `mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }`;

interface PodRow {
  id: string;
  phase: string;
  reason: string | null;
  nodeId: string | null;
  vcpus: number;
  memoryMiB: number;
}

interface NodeRow {
  id: string;
  name: string;
  status: string;
  epoch: number;
  capacityVcpus: number;
  capacityMemoryMiB: number;
  capacityPods: number;
  allocatedVcpus: number;
  allocatedMemoryMiB: number;
  allocatedPods: number;
}

const cluster = new Cluster({ schedulers: 3, label: 'sched-cluster' });

beforeAll(() => cluster.start(), 120_000);
afterAll(() => cluster.stop(), 60_000);

/** Creates `count` pods for the tenant, `parallel` requests at a time. */
async function createPods(
  token: string,
  count: number,
  input: (i: number) => Record<string, unknown>,
  parallel = 16,
): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - start) }, (_, k) =>
      cluster.ok(token, CREATE_POD, { input: input(start + k) }).then((d) => d.createPod.id as string),
    );
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

const pod = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  vcpus: 1,
  memoryMiB: 256,
  containers: [{ name: 'main', image: 'registry.example.com/team/app:1.0' }],
  ...extra,
});

async function pods(where = 'TRUE', params: unknown[] = []): Promise<PodRow[]> {
  return cluster.query<PodRow>(
    `SELECT id, phase, reason, "nodeId", vcpus, "memoryMiB" FROM pods WHERE ${where} ORDER BY id`,
    params,
  );
}

/** No node holds more than its capacity, and each holds exactly the reservations of the pods placed on it. */
async function expectNoOvercommit(): Promise<void> {
  const nodes = await cluster.query<NodeRow>('SELECT * FROM nodes');
  const placed = await pods('"nodeId" IS NOT NULL');
  for (const node of nodes) {
    const mine = placed.filter((p) => p.nodeId === node.id);
    expect({ node: node.name, vcpus: node.allocatedVcpus <= node.capacityVcpus }).toEqual({
      node: node.name,
      vcpus: true,
    });
    expect(node.allocatedMemoryMiB).toBeLessThanOrEqual(node.capacityMemoryMiB);
    expect(node.allocatedPods).toBeLessThanOrEqual(node.capacityPods);
    expect({
      node: node.name,
      vcpus: node.allocatedVcpus,
      memoryMiB: node.allocatedMemoryMiB,
      pods: node.allocatedPods,
    }).toEqual({
      node: node.name,
      vcpus: mine.reduce((s, p) => s + p.vcpus, 0),
      memoryMiB: mine.reduce((s, p) => s + p.memoryMiB + VM_OVERHEAD_MIB, 0),
      pods: mine.length,
    });
  }
}

describe('three scheduler processes, simulated nodes', () => {
  it('place 1,000 pods on tight capacity without overcommitting any node; the rest wait with a reason', async () => {
    // 40 nodes × 20 pods of (1 vCPU, 256 MiB + 256 MiB overhead): room for exactly 800 of the 1,000 pods.
    const sims = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        cluster.node(`tight-${i}`, { vcpus: 20, memoryMiB: 20 * 512, pods: 50 }, { labels: { pool: 'tight' } }),
      ),
    );
    const tenants = await Promise.all(Array.from({ length: 10 }, (_, i) => cluster.tenant(`tight-t${i}`)));
    const started = Date.now();
    const ids = (
      await Promise.all(
        tenants.map((t, ti) =>
          createPods(t.token, 100, (i) => pod(`p${i}`, { nodeSelector: [{ key: 'pool', value: 'tight' }] }), 8).then(
            (created) => created.map((id) => ({ id, ti })),
          ),
        ),
      )
    ).flat();
    expect(ids).toHaveLength(1000);

    await waitFor(
      async () => {
        const rows = await pods();
        const running = rows.filter((p) => p.phase === 'RUNNING').length;
        const waiting = rows.filter((p) => p.phase === 'PENDING' && p.reason === 'Unschedulable').length;
        return running === 800 && waiting === 200;
      },
      180_000,
      '800 pods RUNNING and 200 PENDING (Unschedulable)',
    );
    process.stdout.write(`1,000 pods settled in ${Date.now() - started} ms\n`);
    await expectNoOvercommit();
    // What the nodes run is exactly what the database says they run.
    const placed = await pods('"nodeId" IS NOT NULL');
    for (const { identity, sim } of sims) {
      const expected = placed.filter((p) => p.nodeId === identity.nodeId).map((p) => p.id);
      expect([...sim.podPhases().keys()].sort()).toEqual(expected.sort());
    }
    const events = await cluster.query<{ reason: string; n: number }>(
      `SELECT reason, count(*)::int AS n FROM events WHERE reason IN ('Scheduled', 'FailedScheduling') GROUP BY reason`,
    );
    expect(events.find((e) => e.reason === 'Scheduled')?.n).toBe(800);
    expect(events.find((e) => e.reason === 'FailedScheduling')?.n).toBeGreaterThanOrEqual(200);

    // Clean up for the next tests: the pods go, their quota is released.
    for (const t of tenants) {
      const mine = await cluster.query<{ id: string }>('SELECT id FROM pods WHERE "tenantId" = $1', [t.tenantId]);
      await Promise.all(mine.map((p) => cluster.ok(t.token, 'mutation($id: ID!) { deletePod(id: $id) { id } }', p)));
    }
    await waitFor(async () => (await pods()).length === 0, 120_000, 'every pod deleted');
    const quota = await cluster.query<{ used: number }>('SELECT sum("usedPods")::int AS used FROM tenants');
    expect(quota[0]?.used).toBe(0);
    await expectNoOvercommit();
    await Promise.all(sims.map(({ sim }) => sim.kill()));
  });

  it("keeps a tenant-dedicated pool (tainted caas.dev/tenant=<id>) to its tenant's pods", async () => {
    const owner = await cluster.tenant('pool-owner');
    const other = await cluster.tenant('pool-other');
    const issued = await cluster.ok(
      cluster.operatorToken,
      'mutation($input: CreateNodeJoinTokenInput!) { createNodeJoinToken(input: $input) { token } }',
      {
        input: {
          labels: [{ key: 'pool', value: 'dedicated' }],
          taints: [{ key: 'caas.dev/tenant', value: owner.tenantId, effect: 'NO_SCHEDULE' }],
        },
      },
    );
    const identity = await joinCluster(cluster.apiUrl, {
      token: issued.createNodeJoinToken.token as string,
      name: 'dedicated-0',
      capacity: { vcpus: 8, memoryMiB: 8 * 512, pods: 8, diskBytes: 0 },
    });
    await cluster.simulate(identity, { vcpus: 8, memoryMiB: 8 * 512, pods: 8 }).start();
    const selector = { nodeSelector: [{ key: 'pool', value: 'dedicated' }] };
    const [mine] = await createPods(owner.token, 1, () => pod('mine', selector));
    const [theirs] = await createPods(other.token, 1, () => pod('theirs', selector));
    await waitFor(
      async () => (await pods('id = $1 AND phase = $2', [mine, 'RUNNING'])).length === 1,
      60_000,
      "the owner's pod RUNNING on its pool",
    );
    await waitFor(
      async () => (await pods('id = $1 AND reason = $2', [theirs, 'Unschedulable'])).length === 1,
      30_000,
      "the other tenant's pod refused",
    );
    expect((await pods('id = $1', [mine]))[0]?.nodeId).toBe(identity.nodeId);
    expect((await pods('id = $1', [theirs]))[0]).toMatchObject({ phase: 'PENDING', nodeId: null });
  });

  it("spreads a tenant's pods that share labels over nodes and failure domains", async () => {
    const capacity = { vcpus: 16, memoryMiB: 16 * 512, pods: 16 };
    const nodes = await Promise.all(
      ['a', 'a', 'b', 'c'].map((zone, i) =>
        cluster.node(`spread-${i}`, capacity, { labels: { pool: 'spread', 'topology.caas.dev/zone': zone } }),
      ),
    );
    const tenant = await cluster.tenant('spreader');
    // Every spread node READY, and long enough for each scheduler's cached node view (1 s) to include them all.
    await waitFor(
      async () =>
        (
          await cluster.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM nodes WHERE name LIKE 'spread-%' AND status = 'READY'`,
          )
        )[0]?.n === 4,
      30_000,
      'four spread nodes READY',
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const placed: string[] = [];
    // One after the other: each placement sees the previous ones.
    for (let i = 0; i < 3; i++) {
      const [id] = await createPods(tenant.token, 1, () =>
        pod(`web${i}`, { labels: [{ key: 'app', value: 'web' }], nodeSelector: [{ key: 'pool', value: 'spread' }] }),
      );
      await waitFor(async () => (await pods('id = $1 AND "nodeId" IS NOT NULL', [id])).length === 1, 30_000, 'placed');
      placed.push((await pods('id = $1', [id]))[0]?.nodeId ?? '');
    }
    const zoneOf = new Map(nodes.map((n, i) => [n.identity.nodeId, ['a', 'a', 'b', 'c'][i]]));
    expect(new Set(placed).size).toBe(3);
    expect(new Set(placed.map((nodeId) => zoneOf.get(nodeId))).size).toBe(3);
    await Promise.all(nodes.map((n) => n.sim.kill()));
  });

  it('re-places the pods of a kill -9ed agent; when it returns it is fenced and kills its stale pods', async () => {
    const state = mkdtempSync(join(tmpdir(), 'sim-agent-'));
    const capacity = { vcpus: 8, memoryMiB: 8 * 512, pods: 8 };
    const identity = await cluster.join('doomed', capacity, { pool: 'kill' });
    const agent = startAgent(identity, capacity, join(state, 'state.json'));
    try {
      await agent.line((l) => l.type === 'ready');
      const tenant = await cluster.tenant('killer');
      const ids = await createPods(tenant.token, 5, (i) =>
        pod(`k${i}`, { nodeSelector: [{ key: 'pool', value: 'kill' }] }),
      );
      await waitFor(
        async () => (await pods('id = ANY($1) AND phase = $2', [ids, 'RUNNING'])).length === 5,
        60_000,
        'five pods RUNNING on the doomed node',
      );
      const { identity: spare } = await cluster.node('spare', capacity, { labels: { pool: 'kill' } });

      const killedAt = Date.now();
      agent.child.kill('SIGKILL');
      await waitFor(
        async () => {
          const rows = await pods('id = ANY($1)', [ids]);
          return rows.every((p) => p.phase === 'RUNNING' && p.nodeId === spare.nodeId);
        },
        60_000,
        'the pods RUNNING on the spare node',
      );
      process.stdout.write(`node loss → pods running elsewhere in ${Date.now() - killedAt} ms\n`);
      const [lost] = await cluster.query<NodeRow>('SELECT * FROM nodes WHERE id = $1', [identity.nodeId]);
      expect(lost).toMatchObject({ status: 'NOT_READY', epoch: identity.epoch + 1, allocatedPods: 0 });
      const moved = await cluster.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM events WHERE "podId" = ANY($1) AND reason = 'NodeLost'`,
        [ids],
      );
      expect(moved[0]?.n).toBe(5);

      // The agent comes back with its old epoch and its five VMs: it must destroy them all, then be READY again.
      const back = startAgent(identity, capacity, join(state, 'state.json'));
      try {
        const ready = await back.line((l) => l.type === 'ready');
        expect(ready['adopted']).toBe(5);
        const killed = new Set<string>();
        await waitFor(
          async () => {
            for (const l of back.lines) if (l.type === 'killed-stale') killed.add(String(l['podId']));
            return killed.size === 5;
          },
          30_000,
          'the returning agent to kill its five stale pods',
        );
        expect([...killed].sort()).toEqual([...ids].sort());
        await waitFor(
          async () =>
            (await cluster.query<NodeRow>('SELECT * FROM nodes WHERE id = $1', [identity.nodeId]))[0]?.status ===
            'READY',
          30_000,
          'the returned node READY under its new epoch',
        );
        // The pods stayed where they were moved.
        const rows = await pods('id = ANY($1)', [ids]);
        expect(rows.map((p) => ({ node: p.nodeId === spare.nodeId ? 'spare' : p.nodeId, phase: p.phase }))).toEqual(
          ids.map(() => ({ node: 'spare', phase: 'RUNNING' })),
        );
      } finally {
        back.child.kill('SIGKILL');
      }
    } finally {
      agent.child.kill('SIGKILL');
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('converges although 20 % of pod reports are dropped and another 20 % replayed', async () => {
    const capacity = { vcpus: 16, memoryMiB: 16 * 512, pods: 16 };
    const nodes = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        cluster.node(`lossy-${i}`, capacity, { labels: { pool: 'lossy' }, dropRate: 0.2, replayRate: 0.2 }),
      ),
    );
    const tenant = await cluster.tenant('lossy');
    const started = Date.now();
    const ids = await createPods(tenant.token, 50, (i) =>
      pod(`l${i}`, { nodeSelector: [{ key: 'pool', value: 'lossy' }] }),
    );
    await waitFor(
      async () => (await pods('id = ANY($1) AND phase = $2', [ids, 'RUNNING'])).length === 50,
      120_000,
      'fifty pods RUNNING',
    );
    const [stopIds, deleteIds] = [ids.slice(0, 10), ids.slice(10, 20)];
    await Promise.all([
      ...stopIds.map((id) => cluster.ok(tenant.token, 'mutation($id: ID!) { stopPod(id: $id) { id } }', { id })),
      ...deleteIds.map((id) => cluster.ok(tenant.token, 'mutation($id: ID!) { deletePod(id: $id) { id } }', { id })),
    ]);
    await waitFor(
      async () => {
        const rows = await pods('id = ANY($1)', [ids]);
        return (
          rows.length === 40 &&
          rows.filter((p) => p.phase === 'STOPPED' && p.nodeId === null).length === 10 &&
          rows.filter((p) => p.phase === 'RUNNING').length === 30
        );
      },
      120_000,
      '10 pods STOPPED, 10 deleted, 30 RUNNING',
    );
    process.stdout.write(`lossy reports: converged in ${Date.now() - started} ms\n`);
    const dropped = nodes.reduce((s, n) => s + n.sim.stats.reportsDropped, 0);
    const replayed = nodes.reduce((s, n) => s + n.sim.stats.reportsReplayed, 0);
    expect(dropped).toBeGreaterThan(0);
    expect(replayed).toBeGreaterThan(0);
    const [quota] = await cluster.query<{ usedPods: number }>('SELECT "usedPods" FROM tenants WHERE id = $1', [
      tenant.tenantId,
    ]);
    expect(quota?.usedPods).toBe(40);
    await expectNoOvercommit();

    // Drain one node: its running pods move to the others; nothing stays on it.
    const drained = nodes[0]?.identity as NodeJoinResponse;
    await cluster.ok(cluster.operatorToken, 'mutation($id: ID!) { drainNode(id: $id) { id } }', {
      id: drained.nodeId,
    });
    await waitFor(
      async () => {
        const rows = await pods('id = ANY($1)', [ids]);
        return (
          rows.every((p) => p.nodeId !== drained.nodeId) && rows.filter((p) => p.phase === 'RUNNING').length === 30
        );
      },
      120_000,
      'the drained node empty and 30 pods RUNNING elsewhere',
    );
    await waitFor(async () => nodes[0]?.sim.livePods().length === 0, 30_000, 'the drained node to stop its VMs');

    // Disk pressure: a node that reports it gets no new pods.
    const pressured = nodes[1];
    pressured?.sim.setDiskPressure(true);
    await waitFor(
      async () =>
        (
          await cluster.query<{ diskPressure: boolean }>('SELECT "diskPressure" FROM nodes WHERE id = $1', [
            pressured?.identity.nodeId,
          ])
        )[0]?.diskPressure === true,
      30_000,
      'disk pressure recorded',
    );
    const more = await createPods(tenant.token, 5, (i) =>
      pod(`m${i}`, { nodeSelector: [{ key: 'pool', value: 'lossy' }] }),
    );
    await waitFor(
      async () => (await pods('id = ANY($1) AND phase = $2', [more, 'RUNNING'])).length === 5,
      60_000,
      'five more pods RUNNING',
    );
    expect((await pods('id = ANY($1)', [more])).some((p) => p.nodeId === pressured?.identity.nodeId)).toBe(false);
  });
});

interface AgentLine {
  type: string;
  [key: string]: unknown;
}

/** A simulated agent in its own process, killable with SIGKILL. */
function startAgent(
  identity: NodeJoinResponse,
  capacity: { vcpus: number; memoryMiB: number; pods: number },
  stateFile: string,
): { child: ChildProcess; lines: AgentLine[]; line: (match: (l: AgentLine) => boolean) => Promise<AgentLine> } {
  const child = spawn(
    process.execPath,
    [
      '-r',
      tsRegisterPath(),
      join(__dirname, 'support', 'sim-agent-process.ts'),
      JSON.stringify({ identity, redisUrl: cluster.redisUrl, capacity, stateFile }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: AgentLine[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (raw) => {
      try {
        lines.push(JSON.parse(raw) as AgentLine);
      } catch {
        // not ours
      }
    });
  }
  const line = async (match: (l: AgentLine) => boolean): Promise<AgentLine> => {
    let found: AgentLine | undefined;
    await waitFor(async () => (found = lines.find(match)) !== undefined, 30_000, 'a line from the agent process');
    return found as AgentLine;
  };
  return { child, lines, line };
}
