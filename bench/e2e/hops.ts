// The hops of one pod start, from the timestamps bench:e2e collects (all epoch ms on this host's clock: the
// benchmark, the API, the scheduler, PostgreSQL and the agent share it), and their statistics. Pure.

/** One measured start. */
export interface PodRun {
  podId: string;
  /** `createPod` sent (the benchmark). */
  requestedAt: number;
  /** `createPod` answered (the benchmark). */
  createdAt: number;
  /** `pods."scheduledAt"`: the placement's transaction (the scheduler, PostgreSQL's clock). */
  scheduledAt: number;
  /** The agent's `pod VM booted` line: its converge loop began the pod (it had read the desired set). */
  workStartedAt: number;
  /** … the images were ready (cached: the lease and metadata only). */
  pulledAt: number;
  /** … `sandboxes.create` launched QEMU. */
  launchedAt: number;
  /** … the guest agent answered hello: the VM is booted. */
  readyAt: number;
  /** … every container was asked to run and answered. */
  containersStartedAt: number;
  /** … the RUNNING report was written to the node's stream. */
  reportedAt: number;
  /** `pods."startedAt"`: the ingest wrote RUNNING (PostgreSQL's clock). */
  runningAt: number;
  /** The first `pod` query that answered RUNNING came back (the benchmark). */
  visibleAt: number;
}

/** A timestamp of a run. */
export type Stamp = Exclude<keyof PodRun, 'podId'>;

export interface Hop {
  key: string;
  label: string;
  from: Stamp;
  to: Stamp;
}

/** In order; their sum is create → RUNNING visible. */
export const HOPS: readonly Hop[] = [
  { key: 'api_create', label: 'createPod sent → answered (API)', from: 'requestedAt', to: 'createdAt' },
  { key: 'placement', label: 'answered → Scheduled (outbox, placement)', from: 'createdAt', to: 'scheduledAt' },
  {
    key: 'to_agent',
    label: 'Scheduled → agent starts the pod (desired set)',
    from: 'scheduledAt',
    to: 'workStartedAt',
  },
  { key: 'image', label: 'agent starts → image ready (cached)', from: 'workStartedAt', to: 'pulledAt' },
  { key: 'pre_launch', label: 'image ready → QEMU exec (VM prep)', from: 'pulledAt', to: 'launchedAt' },
  { key: 'boot', label: 'QEMU exec → guest agent ready (raw boot)', from: 'launchedAt', to: 'readyAt' },
  { key: 'containers', label: 'guest ready → containers started', from: 'readyAt', to: 'containersStartedAt' },
  {
    key: 'report',
    label: 'containers started → RUNNING reported (agent)',
    from: 'containersStartedAt',
    to: 'reportedAt',
  },
  { key: 'ingest', label: 'reported → RUNNING in PostgreSQL (ingest)', from: 'reportedAt', to: 'runningAt' },
  { key: 'visible', label: 'RUNNING in PostgreSQL → seen by a pod query', from: 'runningAt', to: 'visibleAt' },
];

export const hopMs = (run: PodRun, hop: Hop): number => run[hop.to] - run[hop.from];
export const createToRunningMs = (run: PodRun): number => run.visibleAt - run.requestedAt;
export const rawBootMs = (run: PodRun): number => run.readyAt - run.launchedAt;
/** Everything that is not the VM's boot. */
export const overheadMs = (run: PodRun): number => createToRunningMs(run) - rawBootMs(run);

/** Linear interpolation between closest ranks (q in [0, 1]); NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  const lo = sorted[low] ?? Number.NaN;
  const hi = sorted[high] ?? lo;
  return lo + (hi - lo) * (at - low);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);
export const p90 = (values: readonly number[]): number => quantile(values, 0.9);

export const round = (value: number, digits = 0): number => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};

/** The agent's structured `pod VM booted` line (pod-runtime.ts), by pod id and placement. */
export interface BootLine {
  podId: string;
  placement: number;
  accel: string;
  bootMs: number | null;
  pullMs: number;
  workStartedAt: number;
  pulledAt: number;
  launchedAt?: number;
  readyAt?: number;
  containersStartedAt?: number;
  reportedAt: number;
}

/** Every `pod VM booted` line in an agent's output (pino JSON, one object a line). */
export function bootLines(output: string): BootLine[] {
  const lines: BootLine[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"pod VM booted"')) continue;
    try {
      const parsed = JSON.parse(line) as Partial<BootLine> & { msg?: string };
      if (parsed.msg === 'pod VM booted' && typeof parsed.podId === 'string') lines.push(parsed as BootLine);
    } catch {
      // a line cut by an interleaved stderr chunk: not ours
    }
  }
  return lines;
}
