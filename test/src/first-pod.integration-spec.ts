// The first pod end to end: a tenant asks through GraphQL and a VM boots on this host. The built API, one scheduler
// and one real agent (QEMU, TCG here) on a fresh database and Redis prefix; the image comes from a local registry
// (scripts/demo-registry.sh), and a second one that wants Basic auth for the private-image test.
import { createRequire } from 'node:module';
import { AgentHost, Cluster, demoRegistry, freePort, waitFor } from '@caas/cluster-harness';

jest.setTimeout(600_000);

const POD = `id name phase reason message nodeName ip accelerator containers { name phase exitCode restartCount }`;

// A real lease grace period: an agent restarted within it keeps its pods.
const cluster = new Cluster({ schedulers: 1, label: 'first-pod', leaseGraceMs: 10_000 });
let host: AgentHost | undefined;
let registryPort: number;
let image: string;
// The private registry: Basic auth from one user (htpasswd), on its own port and storage.
const PRIVATE_USER = 'puller';
const PRIVATE_PASSWORD = 'right-password';
let privatePort: number;
let privateImage: string;

const registry = (command: 'push' | 'purge', port = registryPort, auth?: string): string =>
  demoRegistry(command, { port, auth });

/** The host's VMs running now. */
const vmCount = (): number => host?.vmPids().length ?? 0;

beforeAll(async () => {
  registryPort = await freePort();
  image = registry('push');
  privatePort = await freePort();
  privateImage = registry('push', privatePort, `${PRIVATE_USER}:${PRIVATE_PASSWORD}`);
  await cluster.start();
  host = await AgentHost.join(cluster, { name: 'e2e-host' });
}, 300_000);

afterAll(async () => {
  for (const socket of sockets) socket.terminate();
  // A stopped agent leaves its VMs running (by design): destroy kills them too, also after a half-failed run.
  await host?.destroy();
  await cluster.stop();
  if (registryPort) registry('purge');
  if (privatePort) registry('purge', privatePort);
}, 120_000);

/** Creates a one-container pod for the tenant and returns its id. */
async function createPod(token: string, name: string, container: Record<string, unknown>, restartPolicy = 'ALWAYS') {
  const created = await cluster.ok(token, 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }', {
    input: { name, vcpus: 1, memoryMiB: 256, restartPolicy, containers: [{ name: 'main', image, ...container }] },
  });
  return created.createPod.id as string;
}

async function podOf(token: string, id: string) {
  return (await cluster.ok(token, `query ($id: ID!) { pod(id: $id) { ${POD} } }`, { id })).pod;
}

interface LogLine {
  container: string;
  stream: string;
  line: string;
  timestamp: string;
}

async function logsOf(token: string, podId: string): Promise<LogLine[]> {
  const data = await cluster.ok(
    token,
    'query ($id: ID!) { podLogs(podId: $id, tail: 1000) { container stream line timestamp } }',
    { id: podId },
  );
  return data.podLogs as LogLine[];
}

// `ws` (Mercurius' own WebSocket dependency, so nothing is added to the workspace) ships no types: the part of
// its API used here.
interface WsSocket {
  send(data: string): void;
  close(): void;
  terminate(): void;
  on(event: 'open', listener: () => void): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
}
const { WebSocket } = createRequire(__filename)('ws') as {
  WebSocket: new (url: string, protocols: string[]) => WsSocket;
};

/** Every subscription socket, closed in afterAll also when a test failed (an open one keeps Jest running). */
const sockets: WsSocket[] = [];

interface Follower {
  /** Every line received so far, in arrival order. */
  lines: LogLine[];
  /** Error frames, GraphQL errors and an early close: none expected. */
  problems: string[];
  close(): void;
}

/**
 * Subscribes to the pod's lines (the podLogs subscription over graphql-transport-ws, as a client of the API
 * would) and collects them as they arrive. Resolves once the server has acknowledged the connection and the
 * subscription is sent.
 */
async function followLogs(token: string, podId: string): Promise<Follower> {
  const socket = new WebSocket(`${cluster.apiUrl.replace(/^http/, 'ws')}/graphql`, ['graphql-transport-ws']);
  sockets.push(socket);
  const follower: Follower = { lines: [], problems: [], close: () => socket.close() };
  const send = (message: object) => socket.send(JSON.stringify(message));
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', (code, reason) => {
      follower.problems.push(`closed ${code} ${reason.toString('utf8')}`);
      reject(new Error(`the subscription connection closed: ${code} ${reason.toString('utf8')}`));
    });
    socket.on('open', () => send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString('utf8')) as {
        type: string;
        payload?: { data?: { podLogs?: LogLine[] }; errors?: unknown[] } | unknown[];
      };
      if (frame.type === 'connection_ack') {
        send({
          type: 'subscribe',
          id: '1',
          payload: {
            query: 'subscription ($id: ID!) { podLogs(podId: $id) { container stream line timestamp } }',
            variables: { id: podId },
          },
        });
        resolve();
      } else if (frame.type === 'ping') {
        send({ type: 'pong' });
      } else if (frame.type === 'next' && frame.payload !== undefined && !Array.isArray(frame.payload)) {
        if (frame.payload.errors !== undefined) follower.problems.push(JSON.stringify(frame.payload.errors));
        follower.lines.push(...(frame.payload.data?.podLogs ?? []));
      } else if (frame.type === 'error' || frame.type === 'complete') {
        follower.problems.push(JSON.stringify(frame));
      }
    });
  });
  return follower;
}

async function reasonsOf(podId: string): Promise<string[]> {
  const rows = await cluster.query<{ reason: string }>(`SELECT reason FROM events WHERE "podId" = $1 ORDER BY id`, [
    podId,
  ]);
  return rows.map((r) => r.reason);
}

describe('the first pod, end to end', () => {
  it('createPod → RUNNING on the host with its IP → stopPod → STOPPED → startPod → RUNNING → deletePod → gone', async () => {
    const before = vmCount();
    const tenant = await cluster.tenant('first');
    const created = await cluster.ok(
      tenant.token,
      `mutation ($input: CreatePodInput!) { createPod(input: $input) { ${POD} } }`,
      {
        input: {
          name: 'hello',
          vcpus: 1,
          memoryMiB: 256,
          containers: [
            { name: 'one', image, command: ['/bin/sh', '-c', 'echo one; while true; do sleep 1; done'] },
            { name: 'two', image, command: ['/bin/sh', '-c', 'echo two >&2; while true; do sleep 1; done'] },
          ],
        },
      },
    );
    const id = created.createPod.id as string;
    // Subscribed before the VM boots: every line the containers write arrives live.
    const follower = await followLogs(tenant.token, id);
    const get = async () =>
      (await cluster.ok(tenant.token, `query ($id: ID!) { pod(id: $id) { ${POD} } }`, { id })).pod;
    const phase = (want: string, what: string) =>
      waitFor(async () => (await get())?.phase === want, 240_000, what).catch(async (error: unknown) => {
        throw new Error(`${String(error)}: ${JSON.stringify(await get())}\n--- agent\n${host?.output().slice(-4000)}`);
      });

    await phase('RUNNING', 'the pod RUNNING');
    const running = await get();
    expect(running).toMatchObject({ nodeName: 'e2e-host', accelerator: 'TCG' });
    expect(running.ip).toMatch(/^10\./);
    expect(running.containers.map((c: { name: string; phase: string }) => [c.name, c.phase])).toEqual([
      ['one', 'RUNNING'],
      ['two', 'RUNNING'],
    ]);
    expect(vmCount()).toBe(before + 1);
    // Both containers' output through the podLogs subscription and the podLogs query, stdout told apart from
    // stderr: `one` writes to stdout, `two` to stderr.
    const expected = [
      { container: 'one', stream: 'STDOUT', line: 'one' },
      { container: 'two', stream: 'STDERR', line: 'two' },
    ];
    const both = (lines: LogLine[]) =>
      expected.every((want) => lines.some((l) => l.container === want.container && l.line === want.line));
    await waitFor(async () => both(follower.lines), 60_000, "both containers' first lines on the subscription").catch(
      (error: unknown) => {
        throw new Error(
          `${String(error)}: ${JSON.stringify(follower)}\n${host?.output().slice(-3000)}\n${cluster.output().slice(-3000)}`,
        );
      },
    );
    follower.close();
    expect(follower.problems).toEqual([]);
    expect(follower.lines.map(({ container, stream, line }) => ({ container, stream, line }))).toEqual(
      expect.arrayContaining(expected),
    );
    expect(follower.lines.every((l) => !Number.isNaN(Date.parse(l.timestamp)))).toBe(true);
    await waitFor(async () => both(await logsOf(tenant.token, id)), 60_000, "both containers' first lines in podLogs");
    expect(
      (await logsOf(tenant.token, id)).map(({ container, stream, line }) => ({ container, stream, line })),
    ).toEqual(expect.arrayContaining(expected));

    await cluster.ok(tenant.token, 'mutation ($id: ID!) { stopPod(id: $id) { id } }', { id });
    await phase('STOPPED', 'the pod STOPPED');
    await waitFor(async () => vmCount() === before, 60_000, 'the VM gone after stopPod');

    await cluster.ok(tenant.token, 'mutation ($id: ID!) { startPod(id: $id) { id } }', { id });
    await phase('RUNNING', 'the pod RUNNING again');
    expect((await get()).ip).toBe(running.ip);

    await cluster.ok(tenant.token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
    const gone = async () => {
      const answer = await cluster.gql(tenant.token, 'query ($id: ID!) { pod(id: $id) { id phase } }', { id });
      return answer.errors?.[0]?.extensions.code === 'NOT_FOUND';
    };
    await waitFor(gone, 240_000, 'the pod gone (NOT_FOUND)');
    await waitFor(async () => vmCount() === before, 60_000, 'no VM left on the host');
    const events = await cluster.query<{ reason: string }>(
      `SELECT reason FROM events WHERE "tenantId" = $1 ORDER BY id`,
      [tenant.tenantId],
    );
    expect(events.map((e) => e.reason)).toEqual(expect.arrayContaining(['Scheduled', 'Pulling', 'Started', 'Stopped']));
  });

  it('after kill -9 of the agent, the restarted agent adopts the running VM: still RUNNING, no second VM', async () => {
    const tenant = await cluster.tenant('survivor');
    const id = await createPod(tenant.token, 'survivor', {
      command: ['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done'],
    });
    await waitFor(async () => (await podOf(tenant.token, id)).phase === 'RUNNING', 240_000, 'the pod RUNNING');
    await waitFor(async () => (await logsOf(tenant.token, id)).length >= 2, 60_000, 'its first lines shipped');
    const vms = vmCount();
    await host?.kill('SIGKILL');
    expect(vmCount()).toBe(vms); // the VM outlives its agent
    const lastBefore = Math.max(0, ...(await logsOf(tenant.token, id)).map((l) => Number(l.line.split(' ')[1])));
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // the pod keeps printing meanwhile
    host?.start();
    await waitFor(
      async () => host?.output().includes('"adopted":1') === true,
      60_000,
      'the restarted agent to adopt the VM',
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- agent\n${host?.output() ?? ''}`);
    });
    // Still the same pod on the same node, with no second VM, and the node keeps its lease.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(await podOf(tenant.token, id)).toMatchObject({ phase: 'RUNNING', nodeName: 'e2e-host' });
    expect(vmCount()).toBe(vms);
    const [node] = await cluster.query<{ status: string; epoch: number }>(
      `SELECT status, epoch FROM nodes WHERE name = 'e2e-host'`,
    );
    expect(node).toEqual({ status: 'READY', epoch: 1 });
    // What the pod printed while its agent was dead arrives (the guest kept it in its buffer), in order. The old
    // agent may have read a line or two it had not shipped yet when it was killed: those are the only ones allowed
    // to be missing (the sandbox persists its read position before the shipper has written the lines).
    const ticks = (await logsOf(tenant.token, id)).map((l) => Number(l.line.split(' ')[1]));
    const whileDead = Array.from({ length: 4 }, (_, i) => lastBefore + 3 + i); // printed during the 3 s outage
    expect(ticks).toEqual(expect.arrayContaining(whileDead));
    expect(ticks).toEqual([...ticks].sort((x, y) => x - y));
    await cluster.ok(tenant.token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
    await waitFor(async () => vmCount() === vms - 1, 60_000, 'the VM gone after deletePod');
  });

  it('restarts a container that exits 3 under ON_FAILURE with backoff; under NEVER the pod ends FAILED with code 3', async () => {
    const tenant = await cluster.tenant('exits');
    const exit3 = { command: ['/bin/sh', '-c', 'echo bye; exit 3'] };
    const retried = await createPod(tenant.token, 'retried', exit3, 'ON_FAILURE');
    const once = await createPod(tenant.token, 'once', exit3, 'NEVER');
    await waitFor(
      async () => ((await podOf(tenant.token, retried)).containers[0]?.restartCount ?? 0) >= 2,
      240_000,
      'two restarts of the ON_FAILURE container',
    );
    expect((await podOf(tenant.token, retried)).phase).toBe('RUNNING');
    expect(await reasonsOf(retried)).toEqual(expect.arrayContaining(['BackOff', 'Restarted']));
    await waitFor(async () => (await podOf(tenant.token, once)).phase === 'FAILED', 240_000, 'the NEVER pod FAILED');
    const failed = await podOf(tenant.token, once);
    expect(failed.containers[0]).toMatchObject({ phase: 'EXITED', exitCode: 3, restartCount: 0 });
    expect(failed.message).toContain('exited with code 3');
    for (const id of [retried, once]) {
      await cluster.ok(tenant.token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
    }
  });

  it('an image or a command that does not exist ends FAILED with a reason a tenant can act on', async () => {
    const tenant = await cluster.tenant('mistakes');
    const noImage = await createPod(tenant.token, 'no-image', {
      image: image.replace('demo/busybox:1', 'demo/does-not-exist:1'),
    });
    const noCommand = await createPod(tenant.token, 'no-command', { command: ['/bin/does-not-exist'] });
    for (const [id, reason] of [
      [noImage, 'ImageNotFound'],
      [noCommand, 'CommandNotFound'],
    ] as const) {
      await waitFor(async () => (await podOf(tenant.token, id)).phase === 'FAILED', 240_000, `${reason} → FAILED`);
      const pod = await podOf(tenant.token, id);
      expect({ reason: pod.reason, message: pod.message }).toEqual({ reason, message: expect.any(String) });
    }
    expect((await podOf(tenant.token, noImage)).message).toContain('does-not-exist');
  });

  it('a private image: no credential, then a wrong password → FAILED naming the registry that refused; the right credential → RUNNING', async () => {
    const tenant = await cluster.tenant('private');
    const registryHost = `127.0.0.1:${privatePort}`;
    const credential = async (secret: string) =>
      (
        await cluster.ok(
          tenant.token,
          'mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { id registry } }',
          { input: { registry: registryHost, username: PRIVATE_USER, secret } },
        )
      ).createRegistryCredential as { id: string; registry: string };
    const ends = async (name: string, phase: 'FAILED' | 'RUNNING') => {
      const id = await createPod(tenant.token, name, { image: privateImage }, 'NEVER');
      await waitFor(async () => (await podOf(tenant.token, id)).phase === phase, 240_000, `${name} ${phase}`).catch(
        async (error: unknown) => {
          throw new Error(`${String(error)}: ${JSON.stringify(await podOf(tenant.token, id))}`);
        },
      );
      return { id, ...(await podOf(tenant.token, id)) };
    };

    // No credential: the registry wants some, and the tenant is told to add one.
    const anonymous = await ends('anonymous', 'FAILED');
    expect(anonymous.reason).toBe('ImagePullUnauthorized');
    expect(anonymous.message).toContain(registryHost);
    expect(anonymous.message).toContain('the registry wants credentials');
    expect(anonymous.message).toContain('add or fix a registry credential');

    // A wrong password: the registry refused the credentials given, and says which registry.
    const wrong = await credential('wrong-password');
    expect(wrong.registry).toBe(registryHost);
    const refused = await ends('wrong-password', 'FAILED');
    expect(refused.reason).toBe('ImagePullUnauthorized');
    expect(refused.message).toContain(registryHost);
    expect(refused.message).toContain('the registry refused the credentials');
    expect(refused.message).not.toContain('wrong-password'); // the secret never shows
    expect(await reasonsOf(refused.id)).toEqual(expect.arrayContaining(['Pulling', 'ImagePullUnauthorized']));

    // The right one (replacing the wrong one): the same image pulls and runs, so the registry itself works.
    await cluster.ok(tenant.token, 'mutation ($id: ID!) { deleteRegistryCredential(id: $id) { id } }', {
      id: wrong.id,
    });
    await credential(PRIVATE_PASSWORD);
    const pulled = await ends('right-password', 'RUNNING');
    expect(pulled.containers[0]).toMatchObject({ name: 'main', phase: 'RUNNING' });
    await waitFor(
      async () => (await logsOf(tenant.token, pulled.id)).some((l) => l.line === 'hello from a caas pod'),
      60_000,
      "the private image's output",
    );
    for (const { id } of [anonymous, refused, pulled]) {
      await cluster.ok(tenant.token, 'mutation ($id: ID!) { deletePod(id: $id) { id } }', { id });
    }
  });
});
