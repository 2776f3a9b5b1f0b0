import { FILTER_NAMES } from './filter';
import type { NodeInfo, Resources, Taint } from './types';

/** Filter codes as stored in `PreparedNodes.status` and counted by `place()`: index in FILTER_NAMES + 1; 0 = ok. */
export enum Code {
  Ok = 0,
  NotReady = 1,
  Cordoned = 2,
  Draining = 3,
  DiskPressure = 4,
  NodeSelector = 5,
  UntoleratedTaint = 6,
  InsufficientVcpus = 7,
  InsufficientMemory = 8,
  TooManyPods = 9,
}
export const CODE_COUNT = FILTER_NAMES.length + 1;

const READY = 1;
const CORDONED = 2;
const DRAINING = 4;
const DISK_PRESSURE = 8;

export interface NodeStatus {
  ready: boolean;
  cordoned: boolean;
  draining: boolean;
  diskPressure: boolean;
}

function statusCode(flags: number): Code {
  if ((flags & READY) === 0) return Code.NotReady;
  if (flags & CORDONED) return Code.Cordoned;
  if (flags & DRAINING) return Code.Draining;
  if (flags & DISK_PRESSURE) return Code.DiskPressure;
  return Code.Ok;
}

function flagsOf(s: NodeStatus): number {
  return (
    (s.ready ? READY : 0) |
    (s.cordoned ? CORDONED : 0) |
    (s.draining ? DRAINING : 0) |
    (s.diskPressure ? DISK_PRESSURE : 0)
  );
}

function checkResources(what: string, r: Resources): void {
  for (const k of ['vcpus', 'memoryMiB', 'pods'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0)
      throw new RangeError(`${what}.${k} must be a finite number ≥ 0 (got ${r[k]})`);
  }
}

const taintKey = (t: Taint): string => `${t.key}\u0000${t.value ?? ''}\u0000${t.effect}`;

/**
 * The nodes in columns, built once and reused across many decisions: numeric capacity/allocation arrays, status
 * folded into one filter code per node, labels interned (one value-id column per label key), taints interned
 * (a table of distinct taints and, per node, the ids of its taints). `update()` applies a reservation or a
 * release; `setStatus()` a readiness/cordon/drain/disk-pressure change. A change of the node set, of labels or of
 * taints needs a new `prepareNodes()`.
 *
 * The typed arrays are read by `place()`; treat them as read-only.
 */
export class PreparedNodes {
  readonly size: number;
  readonly ids: readonly string[];
  readonly names: readonly string[];
  readonly capVcpus: Float64Array;
  readonly capMemoryMiB: Float64Array;
  readonly capPods: Float64Array;
  readonly allocVcpus: Float64Array;
  readonly allocMemoryMiB: Float64Array;
  readonly allocPods: Float64Array;
  /** Per node, the first status filter it fails (`Code`), or 0. */
  readonly status: Uint8Array;
  /** Label key → per-node value id (-1: label absent). */
  readonly labelColumns: ReadonlyMap<string, Int32Array>;
  /** Label value → id (one table for all keys). */
  readonly valueIds: ReadonlyMap<string, number>;
  readonly valueNames: readonly string[];
  /** Distinct taints; a node's taints are `taintIds[taintStart[i] .. taintStart[i + 1])`. */
  readonly taintTable: readonly Taint[];
  readonly taintIds: Int32Array;
  readonly taintStart: Int32Array;

  // Scratch buffers reused by place() (no allocation per node).
  /** @internal */ readonly spreadNode: Float64Array;
  /** @internal */ readonly spreadDomain: Float64Array;
  /** @internal */ readonly taintVerdict: Uint8Array;
  /** @internal */ readonly counts: Int32Array = new Int32Array(CODE_COUNT);
  /** @internal */ topIndex: Int32Array = new Int32Array(8);
  /** @internal */ topScore: Float64Array = new Float64Array(8);

  private readonly flags: Uint8Array;
  private readonly index = new Map<string, number>();

  constructor(nodes: readonly NodeInfo[]) {
    const n = nodes.length;
    this.size = n;
    this.ids = nodes.map((x) => x.id);
    this.names = nodes.map((x) => x.name);
    this.capVcpus = new Float64Array(n);
    this.capMemoryMiB = new Float64Array(n);
    this.capPods = new Float64Array(n);
    this.allocVcpus = new Float64Array(n);
    this.allocMemoryMiB = new Float64Array(n);
    this.allocPods = new Float64Array(n);
    this.flags = new Uint8Array(n);
    this.status = new Uint8Array(n);

    const columns = new Map<string, Int32Array>();
    const valueIds = new Map<string, number>();
    const valueNames: string[] = [];
    const taintIndex = new Map<string, number>();
    const taintTable: Taint[] = [];
    const taintIds: number[] = [];
    this.taintStart = new Int32Array(n + 1);

    nodes.forEach((node, i) => {
      if (this.index.has(node.id)) throw new RangeError(`duplicate node id ${node.id}`);
      this.index.set(node.id, i);
      checkResources(`node ${node.name} capacity`, node.capacity);
      checkResources(`node ${node.name} allocated`, node.allocated);
      this.capVcpus[i] = node.capacity.vcpus;
      this.capMemoryMiB[i] = node.capacity.memoryMiB;
      this.capPods[i] = node.capacity.pods;
      this.allocVcpus[i] = node.allocated.vcpus;
      this.allocMemoryMiB[i] = node.allocated.memoryMiB;
      this.allocPods[i] = node.allocated.pods;
      this.flags[i] = flagsOf(node);
      this.status[i] = statusCode(this.flags[i] as number);

      for (const [key, value] of Object.entries(node.labels)) {
        let column = columns.get(key);
        if (!column) {
          column = new Int32Array(n).fill(-1);
          columns.set(key, column);
        }
        let id = valueIds.get(value);
        if (id === undefined) {
          id = valueNames.length;
          valueIds.set(value, id);
          valueNames.push(value);
        }
        column[i] = id;
      }

      this.taintStart[i] = taintIds.length;
      for (const taint of node.taints) {
        const k = taintKey(taint);
        let id = taintIndex.get(k);
        if (id === undefined) {
          id = taintTable.length;
          taintIndex.set(k, id);
          taintTable.push({ key: taint.key, value: taint.value ?? '', effect: taint.effect });
        }
        taintIds.push(id);
      }
    });
    this.taintStart[n] = taintIds.length;

    this.labelColumns = columns;
    this.valueIds = valueIds;
    this.valueNames = valueNames;
    this.taintTable = taintTable;
    this.taintIds = Int32Array.from(taintIds);
    this.spreadNode = new Float64Array(n);
    this.spreadDomain = new Float64Array(valueNames.length);
    this.taintVerdict = new Uint8Array(taintTable.length);
  }

  indexOf(nodeId: string): number {
    return this.index.get(nodeId) ?? -1;
  }

  has(nodeId: string): boolean {
    return this.index.has(nodeId);
  }

  /** Sets a node's allocated resources (e.g. the values the conditional UPDATE returned). False: unknown node. */
  update(nodeId: string, allocated: Resources): boolean {
    const i = this.indexOf(nodeId);
    if (i < 0) return false;
    checkResources(`node ${nodeId} allocated`, allocated);
    this.allocVcpus[i] = allocated.vcpus;
    this.allocMemoryMiB[i] = allocated.memoryMiB;
    this.allocPods[i] = allocated.pods;
    return true;
  }

  /** Applies a readiness, cordon, drain or disk-pressure change. False: unknown node. */
  setStatus(nodeId: string, status: Partial<NodeStatus>): boolean {
    const i = this.indexOf(nodeId);
    if (i < 0) return false;
    const old = this.flags[i] as number;
    const merged: NodeStatus = {
      ready: status.ready ?? (old & READY) !== 0,
      cordoned: status.cordoned ?? (old & CORDONED) !== 0,
      draining: status.draining ?? (old & DRAINING) !== 0,
      diskPressure: status.diskPressure ?? (old & DISK_PRESSURE) !== 0,
    };
    this.flags[i] = flagsOf(merged);
    this.status[i] = statusCode(this.flags[i] as number);
    return true;
  }

  allocated(nodeId: string): Resources | undefined {
    const i = this.indexOf(nodeId);
    if (i < 0) return undefined;
    return {
      vcpus: this.allocVcpus[i] as number,
      memoryMiB: this.allocMemoryMiB[i] as number,
      pods: this.allocPods[i] as number,
    };
  }

  capacity(nodeId: string): Resources | undefined {
    const i = this.indexOf(nodeId);
    if (i < 0) return undefined;
    return {
      vcpus: this.capVcpus[i] as number,
      memoryMiB: this.capMemoryMiB[i] as number,
      pods: this.capPods[i] as number,
    };
  }

  /** The node's value of a label (e.g. its failure domain), as prepared. */
  label(nodeId: string, key: string): string | undefined {
    const i = this.indexOf(nodeId);
    const id = i < 0 ? -1 : (this.labelColumns.get(key)?.[i] ?? -1);
    return id < 0 ? undefined : this.valueNames[id];
  }

  /** @internal Grows the top-K buffers. */
  ensureTopK(k: number): void {
    if (this.topIndex.length < k) {
      this.topIndex = new Int32Array(k);
      this.topScore = new Float64Array(k);
    }
  }
}

export function prepareNodes(nodes: readonly NodeInfo[]): PreparedNodes {
  return new PreparedNodes(nodes);
}
