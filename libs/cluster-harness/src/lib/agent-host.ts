// A real agent on this machine for end-to-end tests and benchmarks: the built agent process on its own state
// directory (identity, VMs, image cache), joined through the API with a fresh join token, running real VMs
// (TCG here). With `netns` it is a simulated host as in infra/topology: its VMs run in its own host network
// namespace, which the agent creates.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@caas/testing';
import type { Capacity, Cluster } from './cluster';
import type { FabricPort } from './fabric';
import type { AppProcess } from './processes';
import { exitsWithin, startApp, waitFor } from './processes';

export interface AgentHostOptions {
  /** NODE_NAME: a DNS label. */
  name: string;
  capacity?: Capacity;
  /** HOST_NETNS: the host network namespace the agent creates and runs its VMs in. */
  netns?: string;
  /** VM_UID_BASE (with VM_UID_COUNT 1000): agents sharing one machine need disjoint VM uid ranges. */
  vmUidBase?: number;
  /** Labels of the node (its join token's). */
  labels?: Record<string, string>;
  /** The pods' network: the host's underlay and uplink on a fabric (with `netns`, which the fabric creates). */
  network?: FabricPort;
  /** Extra agent environment. */
  env?: Record<string, string>;
}

const DEFAULT_CAPACITY: Capacity = { vcpus: 4, memoryMiB: 4096, pods: 8 };

/** pgrep/pkill exit 1 when nothing matches. */
function quietly(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

export class AgentHost {
  readonly stateDir = mkdtempSync(join(tmpdir(), 'caas-agent-'));
  private current: AppProcess | undefined;

  constructor(
    private readonly cluster: Cluster,
    readonly options: AgentHostOptions,
  ) {}

  /** Joins a new host with a fresh join token and waits until its node is READY (or destroys it and throws). */
  static async join(cluster: Cluster, options: AgentHostOptions): Promise<AgentHost> {
    const host = new AgentHost(cluster, options);
    const labels = Object.entries(options.labels ?? {}).map(([key, value]) => ({ key, value }));
    const issued = await cluster.ok(
      cluster.operatorToken,
      'mutation ($input: CreateNodeJoinTokenInput!) { createNodeJoinToken(input: $input) { token } }',
      { input: { labels } },
    );
    host.start(issued.createNodeJoinToken.token as string);
    try {
      await host.waitReady();
    } catch (error) {
      await host.destroy(); // the caller never gets the host: nothing of it may be left behind
      throw error;
    }
    return host;
  }

  get process(): AppProcess | undefined {
    return this.current;
  }

  /** Starts the agent process (a join token only for the first start: the identity is kept in the state dir). */
  start(joinToken?: string): AppProcess {
    const capacity = this.options.capacity ?? DEFAULT_CAPACITY;
    this.current = startApp('agent', {
      API_URL: this.cluster.apiUrl,
      REDIS_URL: this.cluster.redisUrl,
      STATE_DIR: this.stateDir,
      ...(joinToken && { JOIN_TOKEN: joinToken }),
      NODE_NAME: this.options.name,
      NODE_VCPUS: String(capacity.vcpus),
      NODE_MEMORY_MIB: String(capacity.memoryMiB),
      NODE_PODS: String(capacity.pods),
      ALLOW_TCG: 'true',
      GUEST_KERNEL: join(repoRoot(), 'dist/guest/kernel'),
      GUEST_INITRD: join(repoRoot(), 'dist/guest/initrd.cpio'),
      IMAGE_CACHE_LIMIT_BYTES: String(2 * 2 ** 30),
      LOG_LEVEL: 'info',
      ...(this.options.netns && { HOST_NETNS: this.options.netns }),
      ...(this.options.vmUidBase && { VM_UID_BASE: String(this.options.vmUidBase), VM_UID_COUNT: '1000' }),
      ...(this.options.network && {
        UNDERLAY_IFNAME: this.options.network.underlayIfname,
        UNDERLAY_ADDRESS: this.options.network.underlayAddress,
        UPLINK_IFNAME: this.options.network.uplinkIfname,
        TENANT_NETNS_PREFIX: `${this.options.name}-t`,
      }),
      ...this.options.env,
    });
    return this.current;
  }

  /** Until the host's node is READY (the agent's output in the error when it is not). */
  async waitReady(timeoutMs = 120_000): Promise<void> {
    await waitFor(
      async () =>
        (
          await this.cluster.query<{ status: string }>('SELECT status FROM nodes WHERE name = $1', [this.options.name])
        )[0]?.status === 'READY',
      timeoutMs,
      `node ${this.options.name} to join and be READY`,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- agent ${this.options.name}\n${this.output().slice(-4000)}`);
    });
  }

  output(): string {
    return this.current?.output() ?? '';
  }

  /** Sends `signal` to the agent process (its VMs keep running) and waits until it has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 15_000): Promise<void> {
    const agent = this.current;
    if (!agent || agent.child.exitCode !== null || agent.child.signalCode !== null) return;
    agent.child.kill(signal);
    if (!(await exitsWithin(agent.exited, timeoutMs))) {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
  }

  /** Pids of the QEMU processes of this host's VMs (their command lines name paths in its state dir). */
  vmPids(): number[] {
    return quietly('pgrep', ['-f', `qemu-system-x86_64 .*${this.stateDir}/`])
      .split('\n')
      .filter(Boolean)
      .map(Number);
  }

  /** The host dies: every VM of it killed at once. */
  killVms(): void {
    quietly('pkill', ['-KILL', '-f', `qemu-system-x86_64 .*${this.stateDir}/`]);
  }

  /** Stops the agent cleanly, kills what VMs are left, and removes the state dir and the host namespace. */
  async destroy(): Promise<void> {
    await this.kill('SIGTERM');
    this.killVms();
    await waitFor(async () => this.vmPids().length === 0, 10_000, 'the VMs gone').catch(() => undefined);
    rmSync(this.stateDir, { recursive: true, force: true });
    if (this.options.network) {
      // Tenant namespaces the agent left (a pod not deleted before the end of a test).
      const prefix = `${this.options.name}-t`;
      for (const line of quietly('ip', ['netns', 'list']).split('\n')) {
        const name = line.split(' ')[0] ?? '';
        if (name.startsWith(prefix)) quietly('ip', ['netns', 'delete', name]);
      }
    }
    if (this.options.netns) quietly('ip', ['netns', 'delete', this.options.netns]);
  }
}
