import { join } from 'node:path';
import pino from 'pino';
import { ConfigError } from '@caas/config';
import { NodeConnection } from '@caas/node-client';
import { HostNetwork } from '@caas/node-network';
import { ImageService } from '@caas/oci-images';
import { SandboxManager } from '@caas/sandbox';
import { loadAgentConfig, type AgentConfig } from './config/agent-config';
import { checkHost, type DoctorReport } from './doctor/doctor';
import { IdentityError, loadOrJoin } from './identity/identity';
import { LogShipping } from './logs/log-shipper';
import { throttled } from './logs/throttle';
import { ensureHostNetns } from './runtime/host-netns';
import { HostPodNetworks } from './network/pod-networks';
import { PodRuntime } from './runtime/pod-runtime';

const EX_UNAVAILABLE = 69;
const EX_CONFIG = 78;

function printReport(report: DoctorReport, out: NodeJS.WritableStream): void {
  for (const check of report.checks) {
    const mark = check.ok ? 'ok  ' : check.required ? 'FAIL' : 'warn';
    out.write(`${mark} ${check.name}: ${check.detail}\n`);
    if (!check.ok && check.fix) out.write(`     fix: ${check.fix}\n`);
  }
  out.write(report.ok ? 'this host can run pods\n' : 'this host cannot run pods yet\n');
}

async function doctor(config: AgentConfig): Promise<void> {
  const report = await checkHost(config);
  printReport(report, process.stdout);
  process.exitCode = report.ok ? 0 : 1;
}

/** The host side of the pods' network (ADR-006), or undefined (with a warning) on a host configured without one. */
async function openPodNetworks(config: AgentConfig, log: pino.Logger): Promise<HostNetwork | undefined> {
  if (config.UNDERLAY_IFNAME === undefined || config.UNDERLAY_ADDRESS === undefined || !config.UPLINK_IFNAME) {
    log.warn('no UNDERLAY_IFNAME: pods run without a network device');
    return undefined;
  }
  const host = await HostNetwork.open({
    netns: config.HOST_NETNS,
    underlay: { ifname: config.UNDERLAY_IFNAME, address: config.UNDERLAY_ADDRESS },
    uplink: { ifname: config.UPLINK_IFNAME, ...(config.UPLINK_ADDRESS && { address: config.UPLINK_ADDRESS }) },
    forbidden: config.FORBIDDEN_CIDRS?.split(',') ?? [],
    tenantNetnsPrefix: config.TENANT_NETNS_PREFIX,
  });
  log.info({ underlay: config.UNDERLAY_IFNAME, uplink: config.UPLINK_IFNAME }, 'pod network ready');
  return host;
}

async function daemon(config: AgentConfig): Promise<void> {
  const log = pino({ level: config.LOG_LEVEL, base: { app: 'agent' } });
  const report = await checkHost(config);
  if (!report.ok) {
    printReport(report, process.stderr);
    log.fatal({ failed: report.checks.filter((c) => c.required && !c.ok).map((c) => c.name) }, 'host check failed');
    process.exitCode = EX_UNAVAILABLE;
    return;
  }
  const netns = config.HOST_NETNS === undefined ? undefined : await ensureHostNetns(config.HOST_NETNS);
  if (netns) log.info({ netns }, 'VMs run in the host network namespace');
  const sandboxes = await SandboxManager.open({
    stateDir: join(config.STATE_DIR, 'vms'),
    kernel: config.GUEST_KERNEL,
    initrd: config.GUEST_INITRD,
    allowTcg: config.ALLOW_TCG,
    uidRange: { base: config.VM_UID_BASE, count: config.VM_UID_COUNT },
    netns,
  });
  log.info({ accelerator: sandboxes.accelerator }, 'accelerator chosen');
  if (sandboxes.accelerator.accel === 'tcg') log.warn('running VMs under TCG: not a security boundary');
  const images = await ImageService.open({
    cacheDir: join(config.STATE_DIR, 'images'),
    cacheLimitBytes: config.IMAGE_CACHE_LIMIT_BYTES,
  });
  const capacity = {
    vcpus: config.NODE_VCPUS,
    memoryMiB: config.NODE_MEMORY_MIB,
    pods: config.NODE_PODS,
    diskBytes: config.IMAGE_CACHE_LIMIT_BYTES,
  };
  const networks = await openPodNetworks(config, log);
  const { identity, joined } = await loadOrJoin({
    stateDir: config.STATE_DIR,
    apiUrl: config.API_URL,
    joinToken: config.JOIN_TOKEN,
    name: config.NODE_NAME,
    capacity,
    accelerator: sandboxes.accelerator.accel === 'kvm' ? 'KVM' : 'TCG',
    ...(networks && { underlayAddress: networks.underlay.address }),
    onRetry: (error, attempt, delayMs) =>
      log.warn({ error: error instanceof Error ? error.message : String(error), attempt, delayMs }, 'join: retrying'),
  });
  log.info({ nodeId: identity.nodeId, name: identity.name, joined }, joined ? 'joined the cluster' : 'node identity');
  const connection = new NodeConnection({
    identity,
    redisUrl: config.REDIS_URL,
    onError: throttled((error: Error, suppressed) => log.warn({ error: error.message, suppressed }, 'redis'), 5_000),
  });
  const runtime = new PodRuntime({
    transport: connection,
    sandboxes,
    images,
    epoch: identity.epoch,
    capacity,
    heartbeatIntervalMs: identity.heartbeatIntervalMs,
    leaseGraceMs: identity.leaseGraceMs,
    selfFence: config.SELF_FENCE,
    log,
    logs: new LogShipping({ appender: connection, log }),
    ...(networks && { networks: new HostPodNetworks(networks, identity.name) }),
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: the VMs keep running for the next agent');
    void (async () => {
      await runtime.detach();
      await connection.close();
      await images.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await runtime.start();
  log.info({ epoch: runtime.currentEpoch, version: runtime.version }, 'agent running');
}

async function main(): Promise<void> {
  const config = loadAgentConfig();
  if (process.argv[2] === 'doctor') return doctor(config);
  if (process.argv[2] !== undefined) throw new Error(`unknown command ${process.argv[2]} (try: doctor)`);
  return daemon(config);
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof IdentityError;
  process.stderr.write(`${known ? (error as Error).message : `agent failed: ${String(error)}`}\n`);
  process.exitCode = error instanceof ConfigError ? EX_CONFIG : 1;
});
