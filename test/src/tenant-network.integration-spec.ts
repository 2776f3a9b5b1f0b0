// Tenant networks end to end (issue 9): two simulated hosts on a fabric (their own namespaces, underlay and uplink),
// real agents with the pod network on, pod VMs with their guest networks. A tenant creates pods on both hosts and a
// policy through GraphQL; probes inside the pods (busybox nc, their results in podLogs) see what the hosts enforce.
import { AgentHost, Cluster, Fabric, demoRegistry, freePort, waitFor } from '@caas/cluster-harness';

jest.setTimeout(900_000);

const cluster = new Cluster({ schedulers: 1, label: 'tenant-net', leaseGraceMs: 10_000 });
const fabric = Fabric.create(`caas-fab-${process.pid}`);
const hosts: AgentHost[] = [];
let registryPort: number;
let image: string;

beforeAll(async () => {
  registryPort = await freePort();
  image = demoRegistry('push', { port: registryPort });
  await cluster.start();
  for (const [index, letter] of (['a', 'b'] as const).entries()) {
    const netns = `caas-e2n-${letter}-${process.pid}`;
    const network = fabric.addHost(netns, index);
    hosts.push(
      await AgentHost.join(cluster, {
        name: `net-${letter}`,
        netns,
        network,
        vmUidBase: 423_000 + index * 1_000,
        labels: { 'e2e.caas.dev/host': letter },
        capacity: { vcpus: 4, memoryMiB: 2048, pods: 4 },
      }),
    );
  }
}, 600_000);

afterAll(async () => {
  for (const host of hosts) await host.destroy();
  fabric.destroy();
  await cluster.stop();
  if (registryPort) demoRegistry('purge', { port: registryPort });
}, 120_000);

const CREATE = 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id ip } }';

async function createPod(token: string, name: string, host: 'a' | 'b', role: string, script: string) {
  const created = await cluster.ok(token, CREATE, {
    input: {
      name,
      vcpus: 1,
      memoryMiB: 256,
      labels: [{ key: 'role', value: role }],
      nodeSelector: [{ key: 'e2e.caas.dev/host', value: host }],
      containers: [{ name: 'main', image, command: ['/bin/sh', '-c', script] }],
    },
  });
  return created.createPod as { id: string; ip: string };
}

/** A probe loop: every second, a TCP connect to each target, one line `<target> open|closed` each. */
const probe = (targets: string[]): string =>
  `while true; do for t in ${targets.join(' ')}; do ` +
  `if nc -w 2 \${t%:*} \${t#*:} </dev/null >/dev/null 2>&1; then echo "$t open"; else echo "$t closed"; fi; ` +
  `done; sleep 1; done`;

async function running(token: string, id: string): Promise<void> {
  await waitFor(
    async () =>
      (await cluster.ok(token, 'query ($id: ID!) { pod(id: $id) { phase } }', { id })).pod.phase === 'RUNNING',
    300_000,
    `pod ${id} RUNNING`,
  ).catch(async (error: unknown) => {
    const pod = (await cluster.ok(token, 'query ($id: ID!) { pod(id: $id) { phase reason message nodeName } }', { id }))
      .pod;
    throw new Error(
      `${String(error)}: ${JSON.stringify(pod)}\n` +
        hosts.map((h) => `--- ${h.options.name}\n${h.output().slice(-3000)}`).join('\n'),
    );
  });
}

/** The latest result of each target in the pod's probe lines (podLogs are in order). */
async function probed(token: string, id: string): Promise<Record<string, string>> {
  const data = await cluster.ok(token, 'query ($id: ID!) { podLogs(podId: $id, tail: 200) { line } }', { id });
  const seen: Record<string, string> = {};
  for (const { line } of data.podLogs as { line: string }[]) {
    const [target, state] = line.split(' ');
    if (target && state) seen[target] = state;
  }
  return seen;
}

async function expectProbes(token: string, id: string, want: Record<string, string>, what: string): Promise<void> {
  let last: Record<string, string> = {};
  await waitFor(
    async () => {
      last = await probed(token, id);
      return Object.entries(want).every(([target, state]) => last[target] === state);
    },
    120_000,
    what,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}: saw ${JSON.stringify(last)}, want ${JSON.stringify(want)}`);
  });
}

describe('tenant networks on the hosts', () => {
  it('same-tenant pods reach each other across hosts, a policy admits exactly web → db:8080 on running pods, another tenant reaches nothing', async () => {
    const owner = await cluster.tenant('netowner');
    const other = await cluster.tenant('netother');
    const listen = 'nc -ll -p 8080 -e /bin/true & nc -ll -p 8081 -e /bin/true & wait';
    const db = await createPod(owner.token, 'db', 'a', 'db', listen);
    await running(owner.token, db.id);
    const targets = [`${db.ip}:8080`, `${db.ip}:8081`];
    const web = await createPod(owner.token, 'web', 'b', 'web', probe(targets));
    const batch = await createPod(owner.token, 'batch', 'a', 'batch', probe(targets));
    const intruder = await createPod(other.token, 'intruder', 'b', 'web', probe(targets));
    for (const [token, id] of [
      [owner.token, web.id],
      [owner.token, batch.id],
      [other.token, intruder.id],
    ] as const) {
      await running(token, id);
    }

    // No policy yet: the tenant's pods reach each other, on one host (batch) and across hosts (web); the other
    // tenant's pod, on the same host as web, reaches nothing of it.
    await expectProbes(
      owner.token,
      web.id,
      { [targets[0] as string]: 'open', [targets[1] as string]: 'open' },
      'web reaches db',
    );
    await expectProbes(
      owner.token,
      batch.id,
      { [targets[0] as string]: 'open', [targets[1] as string]: 'open' },
      'batch reaches db',
    );
    await expectProbes(
      other.token,
      intruder.id,
      { [targets[0] as string]: 'closed', [targets[1] as string]: 'closed' },
      'intruder reaches nothing',
    );

    // A policy: db admits TCP 8080 from role=web only. The running pods see it without a restart.
    await cluster.ok(
      owner.token,
      'mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id } }',
      {
        input: {
          name: 'db-from-web',
          podSelector: { matchLabels: [{ key: 'role', value: 'db' }] },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: [{ key: 'role', value: 'web' }] } }],
              ports: [{ protocol: 'TCP', port: 8080 }],
            },
          ],
        },
      },
    );
    await expectProbes(
      owner.token,
      web.id,
      { [targets[0] as string]: 'open', [targets[1] as string]: 'closed' },
      'web: 8080 only',
    );
    await expectProbes(
      owner.token,
      batch.id,
      { [targets[0] as string]: 'closed', [targets[1] as string]: 'closed' },
      'batch: nothing',
    );
    await expectProbes(
      other.token,
      intruder.id,
      { [targets[0] as string]: 'closed', [targets[1] as string]: 'closed' },
      'intruder: nothing',
    );

    // The allow rule's counter, through GraphQL: web's connections to db:8080 went through it (on db's host).
    let counters: { direction: string; rule: number; packets: number; nodes: number }[] = [];
    await waitFor(
      async () => {
        const data = await cluster.ok(
          owner.token,
          '{ networkPolicies(first: 10) { edges { node { name counters { direction rule packets nodes } } } } }',
        );
        counters = data.networkPolicies.edges[0]?.node.counters ?? [];
        return counters.some((c) => c.direction === 'INGRESS' && c.rule === 0 && c.packets > 0);
      },
      60_000,
      'the allow rule counted packets',
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${JSON.stringify(counters)}`);
    });
    // The other tenant has no policy, hence no counters to see.
    const others = await cluster.ok(other.token, '{ networkPolicies(first: 10) { totalCount } }');
    expect(others.networkPolicies.totalCount).toBe(0);

    for (const [token, id] of [
      [owner.token, db.id],
      [owner.token, web.id],
      [owner.token, batch.id],
      [other.token, intruder.id],
    ] as const) {
      await cluster.ok(token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
    }
  });
});
