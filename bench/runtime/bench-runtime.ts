/**
 * `npm run bench:runtime`: what a pod sandbox costs. Part 1 boots RUNS sandboxes one after another (one busybox
 * container each), timestamps every hop from `manager.create()` to the running container, and reports medians.
 * Part 2 keeps idle pod VMs running, one more at a time (up to MAX_VMS), measuring memory, idle CPU and guest
 * responsiveness, and extrapolates how many idle VMs the host holds. Progress goes to stderr; the table and one
 * final JSON line to stdout. See bench/README.md.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SandboxManager, buildBusyboxImage, cleanupVm, type Sandbox, type SandboxSpec } from '@caas/sandbox';
import { median, memAvailableMiB, percentile, processCpuSeconds, processMemory, qemuPids, round } from './host-stats';

const RUNS = intEnv('RUNS', 20, 1);
const MAX_VMS = intEnv('MAX_VMS', 12, 1);
/** How long after its container started a VM counts as idle. */
const IDLE_SETTLE_MS = intEnv('IDLE_SETTLE_MS', 5_000, 0);
const CPU_WINDOW_MS = 3_000;
const PROBES_PER_VM = 3;
const MEMORY_RESERVE_MIB = 2_048;
const PROBE_LIMIT_MS = 1_000;
const CPU_BUDGET = 0.8;
const VM_MEMORY_MIB = 128;
const GOAL_OVERHEAD_MS = 250;
const GOAL_AGENT_READY_MS = 50;

function intEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${raw}`);
  return value;
}

const log = (message: string) => process.stderr.write(`[bench:runtime] ${message}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function repoRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'nx.json'))) return dir;
  }
  return process.cwd();
}

function podSpec(id: string, image: string): SandboxSpec {
  return {
    id,
    vcpus: 1,
    memoryMiB: VM_MEMORY_MIB,
    containers: [
      {
        name: 'main',
        image: { path: image, fsType: 'ext4' },
        argv: ['/bin/sh', '-c', 'echo started; sleep 600'],
        env: ['PATH=/bin'],
        workingDir: '/',
        user: { uid: 0, gid: 0, additionalGids: [] },
        hostname: 'main',
        limits: {},
        writableLayerBytes: 16 * 1024 * 1024,
      },
    ],
  };
}

/** One sandbox created and seen running, with every timestamp the run collects (epoch ms unless `Ns`). */
interface Created {
  sandbox: Sandbox;
  calledAt: number;
  resolvedAt: number;
  /** The manager tracks the sandbox: QEMU's QMP answered and its record is written (concurrent with the boot). */
  trackedAt: number;
  /** Guest CLOCK_BOOTTIME of the `container.started` event. */
  startedAtNs: number;
  /** The container's "started" line reached the host. */
  outputAt: number;
  /** Host epoch ms at guest CLOCK_BOOTTIME 0 (≈ kernel entry), and the round trip of the probe that fixed it. */
  guestZero: number;
  calibrationRttMs: number;
  /** Guest CLOCK_BOOTTIME at which the agent logged "setup done" on the console (info; undefined if absent). */
  setupDoneNs: number | undefined;
}

/**
 * Maps the guest's CLOCK_BOOTTIME onto the host clock, NTP-style: of a few `stats()` round trips, the one with
 * the shortest round trip places the guest's `uptimeNs` at its host midpoint (error ≤ half that round trip).
 * The hello answer (`timings.guest.nowNs` at `readyAt`) would do too, but it reaches the host tens of ms late
 * while the guest is still busy with its late boot. Both clocks run at the same rate (tsc_early_khz).
 */
async function calibrate(sandbox: Sandbox): Promise<{ guestZero: number; rttMs: number }> {
  let best = { guestZero: NaN, rttMs: Infinity };
  for (let i = 0; i < 5; i++) {
    const sent = Date.now();
    const sentHr = performance.now();
    const { guest } = await sandbox.stats();
    const rttMs = performance.now() - sentHr;
    if (rttMs < best.rttMs) best = { guestZero: sent + rttMs / 2 - guest.uptimeNs / 1e6, rttMs };
  }
  return best;
}

/** The agent's "setup done N ms after agent start" console line (its late boot: remaining modules, cgroups). */
function setupDoneNs(consoleLog: string, agentStartNs: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(consoleLog, 'utf8');
  } catch {
    return undefined;
  }
  const match = /setup done ([\d.]+) ms after agent start/.exec(text);
  return match ? agentStartNs + Number(match[1]) * 1e6 : undefined;
}

class Bench {
  private readonly tmp = mkdtempSync('/tmp/cb-');
  private readonly stateDir = join(this.tmp, 's');
  private readonly prefix = `rb${randomBytes(2).toString('hex')}`;
  private manager: SandboxManager | undefined;
  private inflight: Promise<unknown> | undefined;
  private readonly ourPids = new Set<number>();
  private aborted = false;
  private cleaning: Promise<number> | undefined;

  constructor() {
    chmodSync(this.tmp, 0o711); // each VM's uid must reach its own directory below it
  }

  async open(): Promise<SandboxManager> {
    const guest = join(repoRoot(), 'dist/guest');
    const manager = await SandboxManager.open({
      stateDir: this.stateDir,
      kernel: join(guest, 'kernel'),
      initrd: join(guest, 'initrd.cpio'),
      allowTcg: true,
      bootTimeoutMs: 120_000,
    });
    manager.on('sandbox', (sandbox) => this.ourPids.add(sandbox.pid));
    this.manager = manager;
    return manager;
  }

  image(): string {
    return buildBusyboxImage(join(this.tmp, 'busybox.ext4'));
  }

  async create(name: string, image: string): Promise<Created> {
    if (this.aborted || !this.manager) throw new Error('aborted');
    const manager = this.manager;
    const spec = podSpec(`${this.prefix}-${name}`, image);
    const seen: { trackedAt?: number; startedAtNs?: number; outputAt?: number } = {};
    const onSandbox = (sandbox: Sandbox) => {
      if (sandbox.id !== spec.id) return;
      seen.trackedAt = Date.now();
      sandbox.on('container', (status) => {
        if (status.name === 'main' && status.startedAtNs !== undefined) seen.startedAtNs ??= status.startedAtNs;
      });
      sandbox.on('output', (chunk) => {
        if (chunk.source === 'main' && chunk.data.toString('utf8').includes('started')) seen.outputAt ??= Date.now();
      });
    };
    manager.on('sandbox', onSandbox);
    const calledAt = Date.now();
    const creating = manager.create(spec);
    this.inflight = creating;
    let sandbox: Sandbox;
    try {
      sandbox = await creating;
    } finally {
      this.inflight = undefined;
      manager.off('sandbox', onSandbox);
    }
    const resolvedAt = Date.now();
    const deadline = Date.now() + 10_000;
    while ((seen.startedAtNs === undefined || seen.outputAt === undefined) && Date.now() < deadline) await sleep(10);
    const { trackedAt, startedAtNs, outputAt } = seen;
    if (trackedAt === undefined || startedAtNs === undefined || outputAt === undefined) {
      await sandbox.destroy();
      throw new Error(`${spec.id}: the container did not report its start and its first line within 10 s`);
    }
    const { guestZero, rttMs } = await calibrate(sandbox);
    // The Sandbox does not expose its console log: this is the state dir layout of SandboxStore + vmPaths.
    const consoleLog = join(this.stateDir, spec.id, 'vm', 'console.log');
    const setupDone = setupDoneNs(consoleLog, sandbox.timings.guest?.agentStartNs ?? NaN);
    return {
      sandbox,
      calledAt,
      resolvedAt,
      trackedAt,
      startedAtNs,
      outputAt,
      guestZero,
      calibrationRttMs: rttMs,
      setupDoneNs: setupDone,
    };
  }

  /** Destroys every VM of this run and removes the state dir; resolves with how many of our QEMUs survived. */
  cleanup(): Promise<number> {
    this.aborted = true;
    this.cleaning ??= (async () => {
      // A create in flight may be about to spawn a QEMU: let it settle (bounded) so it is found below.
      await Promise.race([this.inflight?.catch(() => undefined), sleep(15_000)]);
      await Promise.all((this.manager?.list() ?? []).map((sandbox) => sandbox.destroy().catch(() => undefined)));
      // Anything the manager no longer (or not yet) tracked: its VM dir and cgroup still name it.
      const ids = existsSync(this.stateDir) ? readdirSync(this.stateDir) : [];
      for (const id of ids) {
        await cleanupVm(join(this.stateDir, id, 'vm'), id).catch((error: Error) =>
          log(`cleanup ${id}: ${error.message}`),
        );
      }
      rmSync(this.tmp, { recursive: true, force: true });
      const left = qemuPids().filter((pid) => this.ourPids.has(pid));
      if (left.length > 0) log(`WARNING: QEMU processes of this run still alive: ${left.join(' ')}`);
      return left.length;
    })();
    return this.cleaning;
  }
}

/** Per-run figures, ms. */
interface RunFigures {
  pre_launch: number;
  qemu_to_kernel: number;
  kernel_to_agent: number;
  agent_to_ready: number;
  ready_to_hello: number;
  hello_transit: number;
  raw_boot: number;
  ready_to_container: number;
  ready_to_container_started: number;
  guest_ready_to_setup_done: number;
  setup_done_to_container_started: number;
  container_started_to_answer: number;
  container_to_resolved: number;
  sandbox_create: number;
  overhead: number;
  launch_to_qmp: number;
  ready_to_output: number;
  calibration_rtt: number;
  destroy: number;
}

function figures(created: Created, destroyMs: number): RunFigures {
  const { sandbox, calledAt, resolvedAt, guestZero } = created;
  const { launchedAt, readyAt, containersStartedAt, guest } = sandbox.timings;
  if (readyAt === undefined || containersStartedAt === undefined || guest === undefined) {
    throw new Error(`${sandbox.id}: the sandbox has no ready timings`);
  }
  const ms = (ns: number) => ns / 1e6;
  const onHost = (ns: number) => guestZero + ms(ns);
  const setupDone = created.setupDoneNs ?? NaN;
  return {
    pre_launch: launchedAt - calledAt,
    qemu_to_kernel: guestZero - launchedAt,
    kernel_to_agent: ms(guest.agentStartNs),
    agent_to_ready: ms(guest.readyNs - guest.agentStartNs),
    ready_to_hello: ms(guest.nowNs - guest.readyNs),
    hello_transit: readyAt - onHost(guest.nowNs),
    raw_boot: readyAt - launchedAt,
    ready_to_container: containersStartedAt - readyAt,
    ready_to_container_started: onHost(created.startedAtNs) - readyAt,
    guest_ready_to_setup_done: ms(setupDone - guest.readyNs),
    setup_done_to_container_started: ms(created.startedAtNs - setupDone),
    container_started_to_answer: containersStartedAt - onHost(created.startedAtNs),
    container_to_resolved: resolvedAt - containersStartedAt,
    sandbox_create: resolvedAt - calledAt,
    overhead: resolvedAt - calledAt - (readyAt - launchedAt),
    launch_to_qmp: created.trackedAt - launchedAt,
    ready_to_output: created.outputAt - readyAt,
    calibration_rtt: created.calibrationRttMs,
    destroy: destroyMs,
  };
}

async function bootRuns(bench: Bench, image: string): Promise<RunFigures[]> {
  const runs: RunFigures[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const created = await bench.create(`r${i}`, image);
    const destroyStart = Date.now();
    await created.sandbox.destroy();
    const run = figures(created, Date.now() - destroyStart);
    runs.push(run);
    log(
      `run ${i}/${RUNS}: create ${run.sandbox_create} ms, raw boot ${run.raw_boot} ms ` +
        `(qemu→kernel ${run.qemu_to_kernel.toFixed(0)}, kernel→agent ${run.kernel_to_agent.toFixed(0)}, ` +
        `agent→ready ${run.agent_to_ready.toFixed(1)}), overhead ${run.overhead} ms, load ${load()}`,
    );
  }
  return runs;
}

interface IdleStep {
  vms: number;
  memAvailableMiB: number;
  totalPssMiB: number;
  newRssMiB: number;
  newPssMiB: number;
  /** Idle CPU of one VM, fraction of one core (all VMs' utime+stime over the window / VMs). */
  cpuPerVm: number;
  probeMedianMs: number;
  probeMaxMs: number;
}

interface IdleResult {
  steps: IdleStep[];
  memStartMiB: number;
  /** Why it stopped before MAX_VMS, if it did. */
  saturated?: string;
}

async function probe(sandbox: Sandbox): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < PROBES_PER_VM; i++) {
    const start = performance.now();
    await sandbox.stats();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

async function idleVms(bench: Bench, image: string): Promise<IdleResult> {
  const memStartMiB = memAvailableMiB();
  const vms: Sandbox[] = [];
  const steps: IdleStep[] = [];
  log(`idle VMs: MemAvailable ${memStartMiB.toFixed(0)} MiB at start, up to ${MAX_VMS} VMs`);
  for (let n = 1; n <= MAX_VMS; n++) {
    let created: Created;
    try {
      created = await bench.create(`idle${n}`, image);
    } catch (error) {
      return { steps, memStartMiB, saturated: `VM ${n} did not start: ${(error as Error).message}` };
    }
    vms.push(created.sandbox);
    await sleep((created.sandbox.timings.containersStartedAt ?? Date.now()) + IDLE_SETTLE_MS - Date.now());
    const own = processMemory(created.sandbox.pid);
    const memAvailable = memAvailableMiB();
    const totalPss = vms.reduce((sum, vm) => sum + (processMemory(vm.pid)?.pssMiB ?? 0), 0);
    const cpuBefore = vms.map((vm) => processCpuSeconds(vm.pid) ?? NaN);
    const windowStart = performance.now();
    await sleep(CPU_WINDOW_MS);
    const windowS = (performance.now() - windowStart) / 1000;
    const cpuUsed = vms.reduce((sum, vm, i) => sum + ((processCpuSeconds(vm.pid) ?? NaN) - (cpuBefore[i] ?? NaN)), 0);
    const probes: number[] = [];
    for (const vm of vms) probes.push(await probe(vm));
    const step: IdleStep = {
      vms: n,
      memAvailableMiB: memAvailable,
      totalPssMiB: totalPss,
      newRssMiB: own?.rssMiB ?? NaN,
      newPssMiB: own?.pssMiB ?? NaN,
      cpuPerVm: cpuUsed / windowS / n,
      probeMedianMs: median(probes),
      probeMaxMs: Math.max(...probes),
    };
    steps.push(step);
    log(
      `idle ${n}: VM rss ${step.newRssMiB.toFixed(1)} MiB pss ${step.newPssMiB.toFixed(1)} MiB, ` +
        `total pss ${totalPss.toFixed(0)} MiB, MemAvailable ${memAvailable.toFixed(0)} MiB, ` +
        `idle cpu/VM ${(step.cpuPerVm * 100).toFixed(2)} %, stats() median ${step.probeMedianMs.toFixed(1)} ms ` +
        `max ${step.probeMaxMs.toFixed(1)} ms, load ${load()}`,
    );
    if (memAvailable < MEMORY_RESERVE_MIB) {
      return { steps, memStartMiB, saturated: `MemAvailable ${memAvailable.toFixed(0)} MiB < 2 GiB at ${n} VMs` };
    }
    if (step.probeMaxMs > PROBE_LIMIT_MS) {
      return { steps, memStartMiB, saturated: `stats() took ${step.probeMaxMs.toFixed(0)} ms > 1 s at ${n} VMs` };
    }
  }
  return { steps, memStartMiB };
}

function capacity(idle: IdleResult, cores: number) {
  const last = idle.steps.at(-1);
  if (!last) return undefined;
  const perVmPss = last.totalPssMiB / last.vms;
  const memoryBound = Math.floor((idle.memStartMiB - MEMORY_RESERVE_MIB) / perVmPss);
  const cpuBound = Math.floor((CPU_BUDGET * cores) / Math.max(last.cpuPerVm, 1e-6));
  // A step that saturated the host does not count: the one before it is the most that ran acceptably.
  const measuredOk = idle.saturated ? Math.max(0, idle.steps.length - 1) : idle.steps.length;
  const bound = idle.saturated ? 'measured' : memoryBound <= cpuBound ? 'memory' : 'cpu';
  const maxIdleVms = idle.saturated ? measuredOk : Math.min(memoryBound, cpuBound);
  return { perVmPss, memoryBound, cpuBound, measured: idle.steps.length, bound, maxIdleVms, last };
}

function table(rows: Array<[string, string, number[]]>): string {
  const lines = [
    `${'hop'.padEnd(54)}${'clock'.padEnd(12)}${'median ms'.padStart(11)}${'p90 ms'.padStart(10)}`,
    '-'.repeat(87),
  ];
  for (const [label, clock, values] of rows) {
    if (values.length === 0) {
      lines.push('');
      continue;
    }
    const fmt = (value: number, width: number) => (Number.isFinite(value) ? value.toFixed(1) : 'n/a').padStart(width);
    lines.push(`${label.padEnd(54)}${clock.padEnd(12)}${fmt(median(values), 11)}${fmt(percentile(values, 90), 10)}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const cores = cpus().length;
  const bench = new Bench();
  let exiting = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      if (exiting) return;
      exiting = true;
      log(`${signal}: destroying this run's VMs`);
      void bench.cleanup().finally(() => process.exit(code));
    });
  }
  const loadStart = load();
  const otherQemu = qemuPids().length;
  log(`${cores} cores, load average ${loadStart}, ${otherQemu} QEMU process(es) of others running`);
  try {
    const image = bench.image();
    const manager = await bench.open();
    log(`accelerator ${manager.accelerator.accel}; ${RUNS} sequential boots`);
    const runs = await bootRuns(bench, image);
    const loadAfterRuns = load();
    const idle = await idleVms(bench, image);
    const loadEnd = load();
    log(`destroying ${manager.list().length} idle VMs`);
    const leftBehind = await bench.cleanup();

    const col = (key: keyof RunFigures) => runs.map((run) => run[key]);
    const med = (key: keyof RunFigures) => round(median(col(key)));
    const cap = capacity(idle, cores);
    const idleRss = median(idle.steps.map((s) => s.newRssMiB));
    const idlePss = median(idle.steps.map((s) => s.newPssMiB));
    const overheadOk = median(col('overhead')) <= GOAL_OVERHEAD_MS;
    const agentReadyOk = median(col('agent_to_ready')) <= GOAL_AGENT_READY_MS;
    const kernelShare = median(col('qemu_to_kernel')) + median(col('kernel_to_agent'));

    const out: string[] = [];
    out.push(`bench:runtime — accel ${manager.accelerator.accel}, ${runs.length} sequential runs, ${cores} cores`);
    out.push(`load average: ${loadStart} at start, ${loadAfterRuns} after the runs, ${loadEnd} at the end`);
    out.push(`other QEMU processes on the host at start: ${otherQemu}`, '');
    out.push(
      table([
        ['create() called → QEMU launch (pre-launch)', 'host', col('pre_launch')],
        ['QEMU launch (launchedAt) → kernel entry', 'host↔guest', col('qemu_to_kernel')],
        ['kernel entry → guest agent start (agentStartNs)', 'guest', col('kernel_to_agent')],
        ['guest agent start → ready (readyNs)', 'guest', col('agent_to_ready')],
        ['ready → hello answered (nowNs)', 'guest', col('ready_to_hello')],
        ['hello answered → answer on the host (readyAt)', 'host↔guest', col('hello_transit')],
        ['= raw boot: QEMU launch → ready on the host', 'host', col('raw_boot')],
        ['host ready → container.started (atNs)', 'host↔guest', col('ready_to_container_started')],
        ['  guest ready → agent setup done (console, info)', 'guest', col('guest_ready_to_setup_done')],
        ['  agent setup done → container.started (info)', 'guest', col('setup_done_to_container_started')],
        ['container.started → run answered on the host', 'host↔guest', col('container_started_to_answer')],
        ['= ready → containers started (containersStartedAt)', 'host', col('ready_to_container')],
        ['containers started → create() resolved', 'host', col('container_to_resolved')],
        ['= sandbox_create: create() called → resolved', 'host', col('sandbox_create')],
        ['= overhead: sandbox_create − raw boot', 'host', col('overhead')],
        ['', '', []],
        ['QEMU launch → QMP up, sandbox tracked (concurrent)', 'host', col('launch_to_qmp')],
        ['host ready → first output line on the host', 'host', col('ready_to_output')],
        ['clock mapping: best stats() round trip', 'host', col('calibration_rtt')],
        ['destroy()', 'host', col('destroy')],
      ]),
    );
    out.push('');
    out.push(
      `goal overhead_ms ≤ ${GOAL_OVERHEAD_MS}: ${med('overhead')} ms — ${overheadOk ? 'PASS' : 'FAIL'}`,
      `goal agent start → ready ≤ ${GOAL_AGENT_READY_MS} ms: ${med('agent_to_ready')} ms — ${agentReadyOk ? 'PASS' : 'FAIL'}`,
      `goal raw boot as low as the stock kernel allows: ${med('raw_boot')} ms, of which QEMU + kernel before the ` +
        `agent ${kernelShare.toFixed(0)} ms (no numeric goal)`,
      '',
    );
    out.push(
      `${'idle VMs'.padEnd(9)}${'MemAvail MiB'.padStart(13)}${'total PSS'.padStart(11)}${'new RSS'.padStart(9)}` +
        `${'new PSS'.padStart(9)}${'cpu/VM %'.padStart(10)}${'stats() p50'.padStart(13)}${'max ms'.padStart(8)}`,
    );
    for (const s of idle.steps) {
      out.push(
        `${String(s.vms).padEnd(9)}${s.memAvailableMiB.toFixed(0).padStart(13)}${s.totalPssMiB.toFixed(0).padStart(11)}` +
          `${s.newRssMiB.toFixed(1).padStart(9)}${s.newPssMiB.toFixed(1).padStart(9)}` +
          `${(s.cpuPerVm * 100).toFixed(2).padStart(10)}${s.probeMedianMs.toFixed(1).padStart(13)}` +
          `${s.probeMaxMs.toFixed(1).padStart(8)}`,
      );
    }
    out.push(
      `idle ${VM_MEMORY_MIB} MiB VM, ${IDLE_SETTLE_MS / 1000} s after its container started (median of ` +
        `${idle.steps.length}): RSS ${idleRss.toFixed(1)} MiB, PSS ${idlePss.toFixed(1)} MiB`,
    );
    if (cap) {
      out.push(
        idle.saturated
          ? `max_idle_vms = ${cap.maxIdleVms}: MEASURED, the host saturated (${idle.saturated})`
          : `max_idle_vms = ${cap.maxIdleVms}: EXTRAPOLATED from ${cap.measured} measured idle VMs (no saturation), ` +
              `${cap.bound} bound applies — memory: (${idle.memStartMiB.toFixed(0)} MiB available − 2 GiB) / ` +
              `${cap.perVmPss.toFixed(1)} MiB PSS per VM = ${cap.memoryBound}; CPU: ${CPU_BUDGET} × ${cores} cores / ` +
              `${(cap.last.cpuPerVm * 100).toFixed(2)} % per VM = ${cap.cpuBound}`,
      );
    }
    out.push(`QEMU processes of this run left behind: ${leftBehind}`);
    process.stdout.write(`${out.join('\n')}\n`);

    const result = {
      benchmark: 'runtime',
      accel: manager.accelerator.accel,
      runs: runs.length,
      raw_boot_ms: med('raw_boot'),
      raw_boot_p90_ms: round(percentile(col('raw_boot'), 90)),
      sandbox_create_ms: med('sandbox_create'),
      sandbox_create_p90_ms: round(percentile(col('sandbox_create'), 90)),
      overhead_ms: med('overhead'),
      pre_launch_ms: med('pre_launch'),
      qemu_to_kernel_ms: med('qemu_to_kernel'),
      kernel_to_agent_ms: med('kernel_to_agent'),
      agent_to_ready_ms: med('agent_to_ready'),
      ready_to_hello_ms: med('ready_to_hello'),
      hello_transit_ms: med('hello_transit'),
      ready_to_container_ms: med('ready_to_container'),
      ready_to_container_started_ms: med('ready_to_container_started'),
      guest_ready_to_setup_done_ms: med('guest_ready_to_setup_done'),
      container_started_to_answer_ms: med('container_started_to_answer'),
      container_to_resolved_ms: med('container_to_resolved'),
      clock_calibration_rtt_ms: med('calibration_rtt'),
      launch_to_qmp_ms: med('launch_to_qmp'),
      destroy_ms: med('destroy'),
      goal_overhead_ms: GOAL_OVERHEAD_MS,
      goal_overhead_met: overheadOk,
      goal_agent_to_ready_ms: GOAL_AGENT_READY_MS,
      goal_agent_to_ready_met: agentReadyOk,
      vm_memory_mib: VM_MEMORY_MIB,
      idle_vm_rss_mib: round(idleRss),
      idle_vm_pss_mib: round(idlePss),
      idle_vm_cpu_pct: round(cap ? cap.last.cpuPerVm * 100 : NaN, 2),
      idle_probe_ms: round(cap?.last.probeMedianMs),
      max_idle_vms: cap?.maxIdleVms ?? null,
      max_idle_vms_measured: cap?.measured ?? 0,
      max_idle_vms_extrapolated: cap ? !idle.saturated : null,
      max_idle_vms_bound: cap?.bound ?? null,
      max_idle_vms_memory_bound: cap?.memoryBound ?? null,
      max_idle_vms_cpu_bound: cap?.cpuBound ?? null,
      max_idle_vms_saturation: idle.saturated ?? null,
      per_vm_pss_mib: round(cap?.perVmPss),
      mem_available_start_mib: round(idle.memStartMiB, 0),
      mem_available_drop_per_vm_mib: round(cap ? (idle.memStartMiB - cap.last.memAvailableMiB) / cap.measured : NaN),
      cores,
      loadavg_start: loadStart,
      loadavg_end: loadEnd,
      other_qemu_at_start: otherQemu,
      qemu_left_behind: leftBehind,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await bench.cleanup();
    process.exitCode = 1;
  }
}

void main();
