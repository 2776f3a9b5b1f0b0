/**
 * Pod events over Redis pub/sub: whoever appends an `events` row for a pod (API or scheduler) publishes it,
 * after its transaction commits, on the pod's channel; every API replica relays it to its `podEvents`
 * subscribers. Pure definitions; no I/O. See docs/adr-005-logs-and-events.md.
 */

/** Every pod event channel starts with this. */
export const POD_EVENT_CHANNEL_PREFIX = 'caas:pod-events:';

/** The pub/sub channel of one pod's events. */
export const podEventChannel = (podId: string): string => `${POD_EVENT_CHANNEL_PREFIX}${podId.toLowerCase()}`;

/** One row of the `events` table as published (JSON), and what `podEvents` subscribers receive. */
export interface PodEventMessage {
  /** The row id (BIGSERIAL), as a decimal string. */
  id: string;
  tenantId: string;
  podId: string;
  type: 'NORMAL' | 'WARNING';
  /** Machine-readable, CamelCase (`Scheduled`, `Pulling`, `OOMKilled`, …). */
  reason: string;
  /** Human-readable; never carries secret values (they are redacted before an event is written). */
  message: string;
  /** ISO 8601. */
  createdAt: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const isString = (value: unknown, max: number): value is string => typeof value === 'string' && value.length <= max;

/** Parses a published message; anything that is not exactly a pod event is refused (`null`). */
export function parsePodEventMessage(payload: string): PodEventMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { id, tenantId, podId, type, reason, message, createdAt } = value as Record<string, unknown>;
  if (!isString(id, 20) || !/^\d+$/.test(id)) return null;
  if (!isString(tenantId, 36) || !UUID.test(tenantId) || !isString(podId, 36) || !UUID.test(podId)) return null;
  if (type !== 'NORMAL' && type !== 'WARNING') return null;
  if (!isString(reason, 100) || !isString(message, 2000) || !isString(createdAt, 40)) return null;
  if (Number.isNaN(Date.parse(createdAt))) return null;
  return { id, tenantId, podId, type, reason, message, createdAt };
}
