/** Valid messages and a seeded PRNG, shared by the specs. */
import type { ContainerSpec, ContainerStatus, ExecStatus, GuestEvent, Hello, Request, Stats } from '../messages';

export const spec: ContainerSpec = {
  name: 'web',
  disk: 'c0',
  fsType: 'ext4',
  argv: ['/bin/httpd', '-f'],
  env: ['PATH=/bin:/usr/bin'],
  workingDir: '/',
  user: { uid: 0, gid: 0, additionalGids: [] },
  hostname: 'web',
  limits: { memoryBytes: 67108864, cpuMillis: 500, pids: 256 },
  writableLayerBytes: 67108864,
};

export const running: ContainerStatus = {
  name: 'web',
  state: 'running',
  pid: 42,
  startedAtNs: 1_234_567_890,
  oomKilled: false,
  lastOutputSeq: 0,
};

export const exited: ContainerStatus = {
  name: 'worker-1',
  state: 'exited',
  pid: 43,
  startedAtNs: 1_000,
  finishedAtNs: 2_000,
  exitCode: 137,
  signal: 9,
  reason: 'OOMKilled',
  message: 'killed by the memory limit',
  oomKilled: true,
  lastOutputSeq: 17,
};

export const execStatus: ExecStatus = {
  execId: 'e-7f3a',
  container: 'web',
  state: 'exited',
  pid: 99,
  exitCode: 0,
  reason: 'Completed',
  lastOutputSeq: 18,
};

export const stats: Stats = {
  containers: [
    { name: 'web', cpuUsageUs: 12_345, memoryBytes: 1 << 20, memoryLimitBytes: 1 << 26, pids: 3, oomKills: 0 },
    { name: 'worker-1', cpuUsageUs: 0, memoryBytes: 0, pids: 0, oomKills: 1 },
  ],
  guest: { memTotalBytes: 1 << 28, memAvailableBytes: 1 << 27, uptimeNs: 9_000_000_000 },
  output: { droppedChunks: 2 },
};

export const hello: Hello = {
  protocol: 1,
  agentVersion: '0.1.0',
  bootId: '8c1e0f3a-2d4b-4c5e-9f60-718293a4b5c6',
  outputSeq: 18,
  eventSeq: 5,
  containers: [running, exited],
  execs: [execStatus],
  timings: { agentStartNs: 120_000_000, readyNs: 180_000_000, nowNs: 9_000_000_000 },
};

export const events: GuestEvent[] = [
  { event: 'container.started', name: 'web', pid: 42, atNs: 1_234_567_890 },
  { event: 'container.exited', name: 'worker-1', status: exited },
  { event: 'exec.exited', status: execStatus },
  { event: 'guest.warning', message: 'module nf_tables failed to load' },
];

/** One request of every op. */
export const requests: Request[] = [
  { id: 1, op: 'hello', protocol: 1, outputFrom: 0, eventsFrom: 0 },
  { id: 2, op: 'ping' },
  { id: 10, op: 'network', mac: '02:ca:0a:00:00:02', address: '10.0.0.2/24', gateway: '10.0.0.1', mtu: 1450 },
  { id: 3, op: 'run', container: spec },
  { id: 4, op: 'signal', name: 'web', signal: 15 },
  { id: 5, op: 'stop', name: 'web', graceMs: 10_000 },
  {
    id: 6,
    op: 'exec',
    container: 'web',
    execId: 'e-7f3a',
    argv: ['sh', '-c', 'echo hi'],
    env: ['TERM=xterm'],
    workingDir: '/root',
    user: { uid: 1000, gid: 1000, additionalGids: [10, 20] },
  },
  { id: 7, op: 'stats' },
  { id: 8, op: 'shutdown', graceMs: 5_000 },
];

/** A valid result of every op. */
export const results = {
  hello,
  ping: {},
  network: { interface: 'eth0' },
  run: { status: running },
  signal: {},
  stop: {},
  exec: { pid: 99 },
  stats,
  shutdown: {},
};

/** mulberry32: small, fast, good enough to drive a fuzzer; the same seed gives the same cases. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed per case, derived from the run's seed, so one failing case can be replayed alone. */
export function caseSeed(base: number, index: number): number {
  let h = (base ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
