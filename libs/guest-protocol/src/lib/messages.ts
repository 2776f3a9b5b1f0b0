/**
 * JSON messages of the host ↔ guest protocol, version 1 (kind 1 frames on `caas.ctl`): requests, responses,
 * events and the shapes they carry, with runtime validation of everything the guest sends. Pure definitions;
 * no I/O. The contract is libs/guest-protocol/PROTOCOL.md.
 *
 * Validation follows the contract: unknown fields are ignored (and dropped: the schemas copy known keys only,
 * so nothing like `__proto__` survives), missing or mistyped required fields are refused. Every string and
 * array is bounded, every count is an integer.
 */
import { z } from 'zod';
import { ProtocolError } from './errors';
import { encodeJsonFrame, MAX_SOURCE_BYTES } from './frame';

export const PROTOCOL_VERSION = 1;

/** Bounds on what a message may carry (beyond the 64 KiB of a JSON frame). */
export const MESSAGE_LIMITS = Object.freeze({
  maxContainers: 256,
  maxExecs: 256,
  maxArgs: 1024,
  maxEnv: 1024,
  maxArgLength: 32_768,
  maxAdditionalGids: 256,
  maxMessageLength: 4096,
  maxPathLength: 4096,
  maxHostnameLength: 64,
  maxDiskLength: 20,
  maxVersionLength: 128,
  maxBootIdLength: 128,
  maxSignal: 64,
  /** PID_MAX_LIMIT of Linux. */
  maxPid: 4_194_304,
  maxId: 0xffff_fffe,
});

export const CONTAINER_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const isContainerName = (name: string): boolean => CONTAINER_NAME_PATTERN.test(name);

export const OPS = ['hello', 'ping', 'network', 'run', 'signal', 'stop', 'exec', 'stats', 'shutdown'] as const;
export type Op = (typeof OPS)[number];

export const RESPONSE_ERROR_CODES = [
  'BAD_REQUEST',
  'NOT_FOUND',
  'CONFLICT',
  'UNSUPPORTED_VERSION',
  'INTERNAL',
] as const;
export type ResponseErrorCode = (typeof RESPONSE_ERROR_CODES)[number];

export const CONTAINER_STATES = ['running', 'exited'] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

/** Why a container or exec process exited. */
export const EXIT_REASONS = [
  'Completed',
  'Error',
  'Signaled',
  'OOMKilled',
  'CommandNotFound',
  'PermissionDenied',
  'StartFailed',
] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];

export const FS_TYPES = ['ext4', 'erofs'] as const;
export type FsType = (typeof FS_TYPES)[number];

export const EVENT_NAMES = ['container.started', 'container.exited', 'exec.exited', 'guest.warning'] as const;
export type EventName = (typeof EVENT_NAMES)[number];

// ---------------------------------------------------------------------------------------------------------------
// Shapes.

export interface User {
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** Absent field: no limit. `cpuMillis` 1000 = one vCPU. */
export interface ContainerLimits {
  memoryBytes?: number;
  cpuMillis?: number;
  pids?: number;
}

export interface ContainerSpec {
  name: string;
  /** The `serial=` of the read-only virtio-blk disk holding the image. */
  disk: string;
  fsType: FsType;
  argv: string[];
  /** `KEY=value` entries. */
  env: string[];
  workingDir: string;
  user: User;
  hostname: string;
  limits: ContainerLimits;
  writableLayerBytes: number;
}

export interface ContainerStatus {
  name: string;
  state: ContainerState;
  pid?: number;
  /** CLOCK_BOOTTIME of the guest, nanoseconds. */
  startedAtNs?: number;
  finishedAtNs?: number;
  exitCode?: number;
  signal?: number;
  reason?: ExitReason;
  message?: string;
  oomKilled: boolean;
  /** The seq of the last output chunk the container produced (0: none). */
  lastOutputSeq: number;
}

export interface ExecStatus {
  execId: string;
  container: string;
  state: ContainerState;
  pid?: number;
  exitCode?: number;
  signal?: number;
  reason?: ExitReason;
  message?: string;
  lastOutputSeq: number;
}

export interface ContainerStats {
  name: string;
  cpuUsageUs: number;
  memoryBytes: number;
  memoryLimitBytes?: number;
  pids: number;
  oomKills: number;
}

export interface Stats {
  containers: ContainerStats[];
  guest: { memTotalBytes: number; memAvailableBytes: number; uptimeNs: number };
  output: { droppedChunks: number };
}

/** CLOCK_BOOTTIME of the guest, nanoseconds. */
export interface HelloTimings {
  agentStartNs: number;
  readyNs: number;
  nowNs: number;
}

export interface Hello {
  protocol: typeof PROTOCOL_VERSION;
  agentVersion: string;
  bootId: string;
  /** The last output seq produced (0: none yet). */
  outputSeq: number;
  /** The last event seq produced (0: none yet). */
  eventSeq: number;
  containers: ContainerStatus[];
  execs: ExecStatus[];
  timings: HelloTimings;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests (host → guest) and results.

/** The params of an op without any. */
export type NoParams = Record<never, never>;

export interface HelloParams {
  protocol: typeof PROTOCOL_VERSION;
  /** The last output seq the host accepted (0: from the start). */
  outputFrom: number;
  /** The last event seq the host accepted (0: from the start). */
  eventsFrom: number;
}

/**
 * The guest's one network interface (ADR-006): the one whose MAC is `mac` gets `address` (with the tenant's
 * prefix), `mtu` and `default via gateway onlink`; IPv6 is disabled; no DHCP. Idempotent.
 */
export interface NetworkParams {
  mac: string;
  /** `10.0.0.2/24` */
  address: string;
  gateway: string;
  mtu: number;
}

export interface NetworkResult {
  /** The guest's name of the interface (`eth0`). */
  interface: string;
}

export interface RunParams {
  container: ContainerSpec;
}

export interface SignalParams {
  name: string;
  /** 1..64 */
  signal: number;
}

export interface StopParams {
  name: string;
  /** SIGTERM, then SIGKILL after this. */
  graceMs: number;
}

export interface ExecParams {
  container: string;
  execId: string;
  argv: string[];
  env: string[];
  workingDir: string;
  user: User;
}

export interface ShutdownParams {
  graceMs: number;
}

export interface RequestParamsByOp {
  hello: HelloParams;
  ping: NoParams;
  network: NetworkParams;
  run: RunParams;
  signal: SignalParams;
  stop: StopParams;
  exec: ExecParams;
  stats: NoParams;
  shutdown: ShutdownParams;
}

/** A request of one op (or, without a type argument, of any op: a union discriminated by `op`). */
export type Request<O extends Op = Op> = { [K in O]: { id: number; op: K } & RequestParamsByOp[K] }[O];

/** `{}` */
export type EmptyResult = Record<string, never>;

export interface RunResult {
  status: ContainerStatus;
}

export interface ExecResult {
  pid: number;
}

export interface ResultByOp {
  hello: Hello;
  ping: EmptyResult;
  network: NetworkResult;
  run: RunResult;
  signal: EmptyResult;
  stop: EmptyResult;
  exec: ExecResult;
  stats: Stats;
  shutdown: EmptyResult;
}

// ---------------------------------------------------------------------------------------------------------------
// Guest messages (guest → host).

export interface ResponseError {
  code: ResponseErrorCode;
  message: string;
}

export type ContainerStartedEvent = { event: 'container.started'; name: string; pid: number; atNs: number };
export type ContainerExitedEvent = { event: 'container.exited'; name: string; status: ContainerStatus };
export type ExecExitedEvent = { event: 'exec.exited'; status: ExecStatus };
export type GuestWarningEvent = { event: 'guest.warning'; message: string };
export type GuestEvent = ContainerStartedEvent | ContainerExitedEvent | ExecExitedEvent | GuestWarningEvent;

/**
 * One message from the guest. A successful response's `result` is still unvalidated: the caller knows the op
 * of its request `id` and checks it with `parseResult(op, result)`.
 */
export type GuestMessage =
  | { type: 'response'; id: number; ok: true; result: Record<string, unknown> }
  | { type: 'response'; id: number; ok: false; error: ResponseError }
  | { type: 'event'; seq: number; event: GuestEvent };

// ---------------------------------------------------------------------------------------------------------------
// Schemas.

type Schema<T> = z.ZodType<T, z.ZodTypeDef, unknown>;

const L = MESSAGE_LIMITS;
const NO_NUL = /^[^\0]*$/;

/** A non-negative integer that is exact in JavaScript: counts, bytes, seqs. */
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** 1, 2, … exact in JavaScript: request ids, event seqs. */
const positive = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
/**
 * Nanoseconds of CLOCK_BOOTTIME: an integer, but past 2^53 ns (104 days of uptime) not exact in JavaScript, so
 * not bounded by MAX_SAFE_INTEGER (a long-lived VM must not become unreadable). Precision there is ~100 ns.
 */
const nanoseconds = z.number().int().nonnegative();
const pid = z.number().int().min(1).max(L.maxPid);
const signal = z.number().int().min(1).max(L.maxSignal);
const exitCode = z.number().int().min(0).max(255);
const id32 = z.number().int().min(0).max(L.maxId);
const containerName = z.string().regex(CONTAINER_NAME_PATTERN, 'not a container name');
/** An exec id is an output source, so 1..128 bytes of UTF-8. */
const execId = z
  .string()
  .min(1)
  .max(MAX_SOURCE_BYTES)
  .refine((value) => Buffer.byteLength(value, 'utf8') <= MAX_SOURCE_BYTES, 'exec id over 128 bytes');
const message = z.string().max(L.maxMessageLength);
const arg = z.string().max(L.maxArgLength).regex(NO_NUL, 'contains NUL');
const argv = z
  .array(arg)
  .min(1)
  .max(L.maxArgs)
  .refine((value) => value[0] !== '', 'argv[0] is empty');
const env = z
  .array(
    z
      .string()
      .max(L.maxArgLength)
      .regex(/^[^=\0]+=[^\0]*$/, 'not KEY=value'),
  )
  .max(L.maxEnv);
const absolutePath = z
  .string()
  .max(L.maxPathLength)
  .regex(/^\/[^\0]*$/, 'not an absolute path');
const hostname = z
  .string()
  .max(L.maxHostnameLength)
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/, 'hostname');

export const userSchema: Schema<User> = z.object({
  uid: id32,
  gid: id32,
  additionalGids: z.array(id32).max(L.maxAdditionalGids),
});

export const containerSpecSchema: Schema<ContainerSpec> = z.object({
  name: containerName,
  disk: z
    .string()
    .min(1)
    .max(L.maxDiskLength)
    .regex(/^[A-Za-z0-9._-]+$/, 'not a disk serial'),
  fsType: z.enum(FS_TYPES),
  argv,
  env,
  workingDir: absolutePath,
  user: userSchema,
  hostname,
  limits: z.object({
    memoryBytes: positive.optional(),
    cpuMillis: positive.optional(),
    pids: positive.optional(),
  }),
  writableLayerBytes: positive,
});

export const containerStatusSchema: Schema<ContainerStatus> = z.object({
  name: containerName,
  state: z.enum(CONTAINER_STATES),
  pid: pid.optional(),
  startedAtNs: nanoseconds.optional(),
  finishedAtNs: nanoseconds.optional(),
  exitCode: exitCode.optional(),
  signal: signal.optional(),
  reason: z.enum(EXIT_REASONS).optional(),
  message: message.optional(),
  oomKilled: z.boolean(),
  lastOutputSeq: count,
});

export const execStatusSchema: Schema<ExecStatus> = z.object({
  execId,
  container: containerName,
  state: z.enum(CONTAINER_STATES),
  pid: pid.optional(),
  exitCode: exitCode.optional(),
  signal: signal.optional(),
  reason: z.enum(EXIT_REASONS).optional(),
  message: message.optional(),
  lastOutputSeq: count,
});

export const statsSchema: Schema<Stats> = z.object({
  containers: z
    .array(
      z.object({
        name: containerName,
        cpuUsageUs: count,
        memoryBytes: count,
        memoryLimitBytes: count.optional(),
        pids: count,
        oomKills: count,
      }),
    )
    .max(L.maxContainers),
  guest: z.object({ memTotalBytes: count, memAvailableBytes: count, uptimeNs: nanoseconds }),
  output: z.object({ droppedChunks: count }),
});

export const helloSchema: Schema<Hello> = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  agentVersion: z.string().min(1).max(L.maxVersionLength),
  bootId: z.string().min(1).max(L.maxBootIdLength),
  outputSeq: count,
  eventSeq: count,
  containers: z.array(containerStatusSchema).max(L.maxContainers),
  execs: z.array(execStatusSchema).max(L.maxExecs),
  timings: z.object({ agentStartNs: nanoseconds, readyNs: nanoseconds, nowNs: nanoseconds }),
});

const emptyResult: Schema<EmptyResult> = z.object({}) as unknown as Schema<EmptyResult>;

/** The schema of each op's result, for `parseResult`. */
export const resultSchemas: { readonly [O in Op]: Schema<ResultByOp[O]> } = Object.freeze({
  hello: helloSchema,
  ping: emptyResult,
  network: z.object({ interface: z.string().min(1).max(15) }),
  run: z.object({ status: containerStatusSchema }),
  signal: emptyResult,
  stop: emptyResult,
  exec: z.object({ pid }),
  stats: statsSchema,
  shutdown: emptyResult,
});

const requestId = positive;
const graceMs = count;

/** Requests as the guest reads them: what the host must send (encodeRequestFrame checks it). */
export const requestSchema: Schema<Request> = z.discriminatedUnion('op', [
  z.object({
    id: requestId,
    op: z.literal('hello'),
    protocol: z.literal(PROTOCOL_VERSION),
    outputFrom: count,
    eventsFrom: count,
  }),
  z.object({ id: requestId, op: z.literal('ping') }),
  z.object({
    id: requestId,
    op: z.literal('network'),
    mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'a lower-case MAC address'),
    address: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/([1-9]|[12]\d|30)$/, 'an IPv4 address with a prefix of 1..30'),
    gateway: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, 'an IPv4 address'),
    mtu: z.number().int().min(576).max(9000),
  }),
  z.object({ id: requestId, op: z.literal('run'), container: containerSpecSchema }),
  z.object({ id: requestId, op: z.literal('signal'), name: containerName, signal }),
  z.object({ id: requestId, op: z.literal('stop'), name: containerName, graceMs }),
  z.object({
    id: requestId,
    op: z.literal('exec'),
    container: containerName,
    execId,
    argv,
    env,
    workingDir: absolutePath,
    user: userSchema,
  }),
  z.object({ id: requestId, op: z.literal('stats') }),
  z.object({ id: requestId, op: z.literal('shutdown'), graceMs }),
]);

const plainObject = z.custom<Record<string, unknown>>(
  (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  'not an object',
);

const responseSchema = z.discriminatedUnion('ok', [
  z.object({ id: requestId, ok: z.literal(true), result: plainObject }),
  z.object({
    id: requestId,
    ok: z.literal(false),
    error: z.object({ code: z.enum(RESPONSE_ERROR_CODES), message: message.default('') }),
  }),
]);

export const guestEventSchema: Schema<GuestEvent> = z.discriminatedUnion('event', [
  z.object({ event: z.literal('container.started'), name: containerName, pid, atNs: nanoseconds }),
  z.object({ event: z.literal('container.exited'), name: containerName, status: containerStatusSchema }),
  z.object({ event: z.literal('exec.exited'), status: execStatusSchema }),
  // The Go side marshals `message` with omitempty: an empty warning arrives without it.
  z.object({ event: z.literal('guest.warning'), message: message.default('') }),
]);

const eventSeqSchema = z.object({ seq: positive });

// ---------------------------------------------------------------------------------------------------------------
// Parsing and encoding.

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid';
  const path = issue.path.join('.');
  return `${path === '' ? '(root)' : path}: ${issue.message}`;
}

function check<T>(schema: Schema<T>, value: unknown, code: 'INVALID_MESSAGE' | 'INVALID_RESULT', what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ProtocolError(code, `${what}: ${describe(parsed.error)}`);
  return parsed.data;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * One message from the guest (the `message` of a decoded JSON frame), validated: an object with an own
 * `event` field is an event, anything else must be a response. Throws ProtocolError INVALID_MESSAGE.
 */
export function parseGuestMessage(value: unknown): GuestMessage {
  if (!isObject(value)) throw new ProtocolError('INVALID_MESSAGE', 'a guest message is a JSON object');
  if (Object.hasOwn(value, 'event')) {
    const { seq } = check(eventSeqSchema, value, 'INVALID_MESSAGE', 'event');
    return { type: 'event', seq, event: check(guestEventSchema, value, 'INVALID_MESSAGE', 'event') };
  }
  const response = check(responseSchema, value, 'INVALID_MESSAGE', 'response');
  return response.ok
    ? { type: 'response', id: response.id, ok: true, result: response.result }
    : { type: 'response', id: response.id, ok: false, error: response.error };
}

/** Validates the result of a successful response to a request of `op`. Throws ProtocolError INVALID_RESULT. */
export function parseResult<O extends Op>(op: O, result: unknown): ResultByOp[O] {
  const schema: Schema<ResultByOp[O]> | undefined = Object.hasOwn(resultSchemas, op) ? resultSchemas[op] : undefined;
  if (schema === undefined) throw new ProtocolError('INVALID_RESULT', `unknown op ${String(op)}`);
  return check(schema, result, 'INVALID_RESULT', `${op} result`);
}

/** Validates a request (as a guest would: fake guests in tests). Throws ProtocolError INVALID_MESSAGE. */
export function parseRequest(value: unknown): Request {
  return check(requestSchema, value, 'INVALID_MESSAGE', 'request');
}

/** Validates a container spec (the host checks what it sends). Throws ProtocolError INVALID_MESSAGE. */
export function parseContainerSpec(value: unknown): ContainerSpec {
  return check(containerSpecSchema, value, 'INVALID_MESSAGE', 'container spec');
}

/** A request as a kind 1 frame, after checking it against the contract. Throws ProtocolError. */
export function encodeRequestFrame(request: Request): Buffer {
  return encodeJsonFrame(parseRequest(request));
}

/** A response as a kind 1 frame (fake guests in tests). */
export function encodeResponseFrame(
  response: { id: number; ok: true; result: object } | { id: number; ok: false; error: ResponseError },
): Buffer {
  return encodeJsonFrame(response);
}

/** An event as a kind 1 frame (fake guests in tests). */
export function encodeEventFrame(seq: number, event: GuestEvent): Buffer {
  return encodeJsonFrame({ ...event, seq });
}
