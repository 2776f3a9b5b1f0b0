import { z } from 'zod';
import { NodeException, NodeExceptionCode } from '../node.exception';

/**
 * Node labels and taints: validated at the API edge (pure, every refusal INVALID_NODE_INPUT with the path of
 * the offending field), stored as JSON (`labels` `{ key: value }`, `taints` `[{ key, value, effect }]`) and
 * checked again with zod where read back (ADR-001). Label syntax is the pods' (Kubernetes): nodeSelector
 * and tolerations match against these.
 */

export enum TaintEffect {
  NO_SCHEDULE = 'NO_SCHEDULE',
  NO_EXECUTE = 'NO_EXECUTE',
}

export const NODE_LABEL_LIMITS = { maxLabels: 64, maxTaints: 32 } as const;
export const JOIN_TOKEN_TTL_MINUTES = { min: 1, max: 10_080, default: 60 } as const;

export interface LabelPair {
  key: string;
  value: string;
}

export interface TaintSpec {
  key: string;
  value: string;
  effect: TaintEffect;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;

const fail = (path: string, problem: string): never => {
  throw new NodeException(NodeExceptionCode.INVALID_NODE_INPUT, `${path}: ${problem}.`);
};

function checkKey(path: string, key: string): string {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : null;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    fail(path, 'prefix (before "/") must be a lower-case DNS subdomain of at most 253 characters');
  }
  if (!LABEL_NAME.test(name)) {
    fail(path, 'name must be 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric');
  }
  return key;
}

function checkValue(path: string, value: string): string {
  if (value !== '' && !LABEL_NAME.test(value)) {
    fail(path, 'must be empty or 1 to 63 characters of A-Z a-z 0-9 - _ ., starting and ending alphanumeric');
  }
  return value;
}

export function checkNodeLabels(path: string, labels: readonly LabelPair[]): Record<string, string> {
  if (labels.length > NODE_LABEL_LIMITS.maxLabels) fail(path, `must have at most ${NODE_LABEL_LIMITS.maxLabels}`);
  const out: Record<string, string> = {};
  labels.forEach(({ key, value }, index) => {
    checkKey(`${path}[${index}].key`, key);
    checkValue(`${path}[${index}].value`, value);
    if (Object.hasOwn(out, key)) fail(`${path}[${index}].key`, `duplicates the label "${key}"`);
    out[key] = value;
  });
  return out;
}

export function checkTaints(
  path: string,
  taints: readonly { key: string; value?: string | null; effect: TaintEffect }[],
): TaintSpec[] {
  if (taints.length > NODE_LABEL_LIMITS.maxTaints) fail(path, `must have at most ${NODE_LABEL_LIMITS.maxTaints}`);
  const seen = new Set<string>();
  return taints.map(({ key, value, effect }, index) => {
    checkKey(`${path}[${index}].key`, key);
    const checkedValue = checkValue(`${path}[${index}].value`, value ?? '');
    const identity = `${key}\u0000${effect}`;
    if (seen.has(identity)) fail(`${path}[${index}]`, `duplicates the taint "${key}" with effect ${effect}`);
    seen.add(identity);
    return { key, value: checkedValue, effect };
  });
}

export function checkJoinTokenTtl(minutes: number): number {
  const { min, max } = JOIN_TOKEN_TTL_MINUTES;
  if (!Number.isInteger(minutes) || minutes < min || minutes > max) {
    fail('expiresInMinutes', `must be an integer from ${min} to ${max}`);
  }
  return minutes;
}

// Read back: JSON columns are guarded where they are read (ADR-001). A row that fails is our own bug: it
// surfaces as INTERNAL (logged), never as half a node.
const labelsSchema = z.record(z.string());
const taintsSchema = z.array(
  z.object({ key: z.string(), value: z.string().default(''), effect: z.nativeEnum(TaintEffect) }).strip(),
);

export function readLabels(json: unknown): LabelPair[] {
  return Object.entries(labelsSchema.parse(json))
    .map(([key, value]) => ({ key, value }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export function readTaints(json: unknown): TaintSpec[] {
  return taintsSchema.parse(json);
}
