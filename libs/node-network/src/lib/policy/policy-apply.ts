import type { Change, CounterValues, Ruleset } from '@caas/netpolicy-compiler';
import { TABLE_FAMILY, TABLE_NAME, diff, renderChanges, renderText } from '@caas/netpolicy-compiler';
import { PolicyApplyError, PolicyApplyErrorCode } from './policy.exception';
import { nft } from './utils/nft.util';

export interface ApplyResult {
  /** `full`: the table was replaced; `incremental`: only the diff was applied; `unchanged`: nothing to do. */
  mode: 'full' | 'incremental' | 'unchanged';
  /** Number of compiler changes (incremental) — 0 for a full replacement. */
  changes: number;
  /** Counters whose values were read before a full replacement and declared again with them. */
  carriedCounters: number;
  /** Why the incremental path was abandoned for a full replacement. */
  fallbackReason?: string;
}

export interface ApplyOptions {
  /** Read the live counters and declare the surviving ones with their values (default true). */
  carryCounters?: boolean;
}

/**
 * Replaces the whole `inet caas_tenant` table of `netns` with `ruleset` in ONE nft transaction
 * (`table …` + `delete table …` + the new table, as the compiler renders it, so the first apply works too).
 * A rejected script leaves the previous table in force and throws `PolicyApplyError` (`NFT_REJECTED`, nft's
 * stderr attached). Counters that keep their name keep their values (read just before; packets counted between
 * the read and the commit are lost — ADR-006).
 */
export async function applyRuleset(netns: string, ruleset: Ruleset, options: ApplyOptions = {}): Promise<ApplyResult> {
  const live = options.carryCounters === false ? {} : await readCounters(netns);
  const wanted = new Set(ruleset.counters);
  const carried: Record<string, { packets: number; bytes: number }> = {};
  for (const [name, value] of Object.entries(live)) if (wanted.has(name)) carried[name] = value;
  await nft(netns, [], renderText(ruleset, carried));
  return { mode: 'full', changes: 0, carriedCounters: Object.keys(carried).length };
}

/**
 * Turns the live table, which must be `prev`, into `next` with the compiler's minimal changes in ONE nft
 * transaction (counters that persist keep counting). When the diff cannot be expressed incrementally or nft
 * rejects it (for instance because the live table is not `prev`), falls back to `applyRuleset(next)`; an error
 * of that full replacement is thrown.
 */
export async function applyChanges(netns: string, prev: Ruleset, next: Ruleset): Promise<ApplyResult> {
  let changes: Change[];
  try {
    changes = diff(prev, next);
  } catch (error) {
    return fallback(netns, next, `diff: ${error instanceof Error ? error.message : String(error)}`);
  }
  const script = renderChanges(next, changes);
  if (script === '') return { mode: 'unchanged', changes: 0, carriedCounters: 0 };
  try {
    await nft(netns, [], script);
  } catch (error) {
    if (!(error instanceof PolicyApplyError) || error.code !== PolicyApplyErrorCode.NFT_REJECTED) throw error;
    return fallback(netns, next, `nft rejected the incremental script: ${error.stderr.trim()}`);
  }
  return { mode: 'incremental', changes: changes.length, carriedCounters: 0 };
}

async function fallback(netns: string, next: Ruleset, reason: string): Promise<ApplyResult> {
  const result = await applyRuleset(netns, next);
  return { ...result, fallbackReason: reason };
}

interface NftCounterJson {
  counter?: { family?: string; table?: string; name?: string; packets?: number; bytes?: number };
}

/**
 * The named counters of `inet caas_tenant` in `netns` (`nft -j list counters table inet caas_tenant`), in the
 * compiler's `CounterValues` shape. No table yet: no counters.
 */
export async function readCounters(netns: string): Promise<CounterValues> {
  let text: string;
  try {
    text = await nft(netns, ['-j', 'list', 'counters', 'table', TABLE_FAMILY, TABLE_NAME]);
  } catch (error) {
    if (error instanceof PolicyApplyError && /No such file or directory/.test(error.stderr)) return {};
    throw error;
  }
  return parseCounters(text, netns);
}

/** Parses `nft -j list counters` output; counters of other tables are ignored. Exported for unit tests. */
export function parseCounters(text: string, netns = ''): CounterValues {
  let items: unknown;
  try {
    items = (JSON.parse(text) as { nftables?: unknown }).nftables;
  } catch {
    items = undefined;
  }
  if (!Array.isArray(items)) {
    throw new PolicyApplyError(PolicyApplyErrorCode.NFT_OUTPUT_UNREADABLE, 'nft -j printed no nftables array', {
      netns,
      stderr: text.slice(0, 500),
    });
  }
  const values: Record<string, { packets: number; bytes: number }> = {};
  for (const item of items as NftCounterJson[]) {
    const c = item.counter;
    if (c === undefined || c.family !== TABLE_FAMILY || c.table !== TABLE_NAME || typeof c.name !== 'string') continue;
    values[c.name] = { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) };
  }
  return values;
}
