import type { RestartPolicy } from '@caas/db';
import type { CreatePodInput, LabelInput } from './dtos/pod.inputs';
import { parseImageReference } from './image-reference';
import { PodException, PodExceptionCode } from './pod.exception';

/**
 * Validation of pod input, pure. Every refusal is INVALID_POD_INPUT (BAD_USER_INPUT) with a message that
 * starts with the path of the offending field (`containers[1].image: …`), before anything is written.
 */

export const POD_LIMITS = {
  minVcpus: 1,
  maxVcpus: 64,
  minMemoryMiB: 64,
  maxMemoryMiB: 262_144,
  minContainers: 1,
  maxContainers: 16,
  maxLabels: 64,
  /** Per container: entries of command and of args, the length of one, and of all of them together. */
  maxArgvEntries: 256,
  maxArgLength: 4096,
  maxArgvTotal: 65_536,
  /** Per container: env entries, name length, value length, and all values together. */
  maxEnvEntries: 256,
  maxEnvNameLength: 256,
  maxEnvValueLength: 32_768,
  maxEnvTotal: 131_072,
  maxWorkingDirLength: 4096,
  minContainerMemoryMiB: 4,
} as const;

export interface EnvSpec {
  name: string;
  value: string;
  secret: boolean;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command: string[];
  args: string[];
  env: EnvSpec[];
  workingDir: string | null;
  user: string | null;
  cpuLimitMillis: number | null;
  memoryLimitMiB: number | null;
}

export interface PodSpec {
  name: string;
  labels: Record<string, string>;
  containers: ContainerSpec[];
  vcpus: number;
  memoryMiB: number;
  restartPolicy: RestartPolicy;
  /** Scheduling constraints, stored as the pod's `spec` (the scheduler reads `nodeSelector`). */
  nodeSelector: Record<string, string>;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER_PART = /^(\d{1,10}|[a-z_][a-z0-9_-]{0,31})$/;
const MAX_ID = 4_294_967_294;

const fail = (path: string, problem: string): never => {
  throw new PodException(PodExceptionCode.INVALID_POD_INPUT, `${path}: ${problem}.`);
};

const DNS_LABEL_RULE =
  'must be a DNS label: 1 to 63 lower-case letters, digits and "-", starting and ending alphanumeric';

export function checkDnsLabel(path: string, value: string): string {
  if (!DNS_LABEL.test(value)) fail(path, DNS_LABEL_RULE);
  return value;
}

function checkText(path: string, value: string, maxLength: number): string {
  if (value.length > maxLength) fail(path, `must be at most ${maxLength} characters`);
  // PostgreSQL text and jsonb cannot hold NUL.
  if (value.includes('\u0000')) fail(path, 'must not contain NUL characters');
  return value;
}

function checkInt(path: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) fail(path, `must be an integer from ${min} to ${max}`);
  return value;
}

/** Kubernetes label syntax: `[dns-subdomain/]name`, name ≤ 63; value empty or a name. */
export function checkLabels(path: string, labels: readonly LabelInput[]): Record<string, string> {
  if (labels.length > POD_LIMITS.maxLabels) fail(path, `must have at most ${POD_LIMITS.maxLabels} labels`);
  const out: Record<string, string> = {};
  labels.forEach(({ key, value }, index) => {
    const at = `${path}[${index}]`;
    const slash = key.indexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : null;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
      fail(`${at}.key`, 'prefix (before "/") must be a lower-case DNS subdomain of at most 253 characters');
    }
    if (!LABEL_NAME.test(name)) {
      fail(
        `${at}.key`,
        'name must be 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric, after an optional "prefix/"',
      );
    }
    if (value !== '' && !LABEL_NAME.test(value)) {
      fail(`${at}.value`, 'must be empty or 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric');
    }
    if (Object.hasOwn(out, key)) fail(`${at}.key`, `duplicates the label "${key}"`);
    out[key] = value;
  });
  return out;
}

function checkUser(path: string, user: string): string {
  const parts = user.split(':');
  const valid =
    parts.length <= 2 && parts.every((part) => USER_PART.test(part) && (!/^\d+$/.test(part) || Number(part) <= MAX_ID));
  if (!valid) fail(path, 'must be uid[:gid] (numbers up to 4294967294) or name[:group] (lower-case, at most 32)');
  return user;
}

function checkArgv(path: string, values: readonly string[] | null | undefined): string[] {
  const list = values ?? [];
  if (list.length > POD_LIMITS.maxArgvEntries) fail(path, `must have at most ${POD_LIMITS.maxArgvEntries} entries`);
  list.forEach((value, index) => checkText(`${path}[${index}]`, value, POD_LIMITS.maxArgLength));
  return [...list];
}

function checkContainer(
  path: string,
  input: CreatePodInput['containers'][number],
  vm: { vcpus: number; memoryMiB: number },
): ContainerSpec {
  const name = checkDnsLabel(`${path}.name`, input.name);
  const image = parseImageReference(input.image);
  if ('error' in image)
    fail(`${path}.image`, `${image.error} (e.g. registry.example.com/team/app:1.2 or app@sha256:…)`);

  const command = checkArgv(`${path}.command`, input.command);
  const args = checkArgv(`${path}.args`, input.args);
  const argvTotal = [...command, ...args].reduce((sum, value) => sum + value.length, 0);
  if (argvTotal > POD_LIMITS.maxArgvTotal) {
    fail(`${path}.args`, `command and args together must be at most ${POD_LIMITS.maxArgvTotal} characters`);
  }

  const envInput = input.env ?? [];
  if (envInput.length > POD_LIMITS.maxEnvEntries) {
    fail(`${path}.env`, `must have at most ${POD_LIMITS.maxEnvEntries} entries`);
  }
  const seen = new Set<string>();
  let envTotal = 0;
  const env = envInput.map((entry, index) => {
    const at = `${path}.env[${index}]`;
    if (entry.name.length > POD_LIMITS.maxEnvNameLength || !ENV_NAME.test(entry.name)) {
      fail(`${at}.name`, `must match [A-Za-z_][A-Za-z0-9_]* and be at most ${POD_LIMITS.maxEnvNameLength} characters`);
    }
    if (seen.has(entry.name)) fail(`${at}.name`, `duplicates the variable ${entry.name}`);
    seen.add(entry.name);
    // Never echo a value: it may be a secret.
    checkText(`${at}.value`, entry.value, POD_LIMITS.maxEnvValueLength);
    envTotal += entry.value.length;
    return { name: entry.name, value: entry.value, secret: entry.secret === true };
  });
  if (envTotal > POD_LIMITS.maxEnvTotal) {
    fail(`${path}.env`, `values together must be at most ${POD_LIMITS.maxEnvTotal} characters`);
  }

  let workingDir: string | null = null;
  if (input.workingDir !== undefined && input.workingDir !== null) {
    workingDir = checkText(`${path}.workingDir`, input.workingDir, POD_LIMITS.maxWorkingDirLength);
    if (!workingDir.startsWith('/')) fail(`${path}.workingDir`, 'must be an absolute path');
  }
  const user = input.user === undefined || input.user === null ? null : checkUser(`${path}.user`, input.user);

  let cpuLimitMillis: number | null = null;
  if (input.cpuLimit !== undefined && input.cpuLimit !== null) {
    const cores = input.cpuLimit;
    if (!Number.isFinite(cores) || cores < 0.001 || cores > vm.vcpus) {
      fail(`${path}.cpuLimit`, `must be from 0.001 to the pod's vcpus (${vm.vcpus}) cores`);
    }
    cpuLimitMillis = Math.min(Math.round(cores * 1000), vm.vcpus * 1000);
  }
  let memoryLimitMiB: number | null = null;
  if (input.memoryLimitMiB !== undefined && input.memoryLimitMiB !== null) {
    memoryLimitMiB = input.memoryLimitMiB;
    if (!Number.isInteger(memoryLimitMiB) || memoryLimitMiB < POD_LIMITS.minContainerMemoryMiB) {
      fail(`${path}.memoryLimitMiB`, `must be an integer of at least ${POD_LIMITS.minContainerMemoryMiB}`);
    }
    if (memoryLimitMiB > vm.memoryMiB) {
      fail(`${path}.memoryLimitMiB`, `must fit in the pod's memoryMiB (${vm.memoryMiB})`);
    }
  }
  return { name, image: input.image, command, args, env, workingDir, user, cpuLimitMillis, memoryLimitMiB };
}

export function validateCreatePodInput(input: CreatePodInput): PodSpec {
  const name = checkDnsLabel('name', input.name);
  const vcpus = checkInt('vcpus', input.vcpus, POD_LIMITS.minVcpus, POD_LIMITS.maxVcpus);
  const memoryMiB = checkInt('memoryMiB', input.memoryMiB, POD_LIMITS.minMemoryMiB, POD_LIMITS.maxMemoryMiB);
  const labels = checkLabels('labels', input.labels ?? []);
  if (input.containers.length < POD_LIMITS.minContainers || input.containers.length > POD_LIMITS.maxContainers) {
    fail('containers', `must have ${POD_LIMITS.minContainers} to ${POD_LIMITS.maxContainers} containers`);
  }
  const names = new Set<string>();
  const containers = input.containers.map((container, index) => {
    const spec = checkContainer(`containers[${index}]`, container, { vcpus, memoryMiB });
    if (names.has(spec.name)) fail(`containers[${index}].name`, `duplicates the container "${spec.name}"`);
    names.add(spec.name);
    return spec;
  });
  const limited = containers.reduce((sum, container) => sum + (container.memoryLimitMiB ?? 0), 0);
  if (limited > memoryMiB) {
    fail('containers', `memoryLimitMiB of all containers together (${limited}) must fit in memoryMiB (${memoryMiB})`);
  }
  const nodeSelector = checkLabels('nodeSelector', input.nodeSelector ?? []);
  return { name, labels, containers, vcpus, memoryMiB, restartPolicy: input.restartPolicy ?? 'ALWAYS', nodeSelector };
}
