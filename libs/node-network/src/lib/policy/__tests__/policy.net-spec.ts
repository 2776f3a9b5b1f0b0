/**
 * applyRuleset / applyChanges / readCounters with real packets: a tenant namespace routes between three pod
 * namespaces (db, web, other) and enforces the compiled `inet caas_tenant`. Needs root, iproute2, nftables.
 * Only namespaces named `npt<pid>…` are created, and all are deleted in afterAll (and on exit).
 */
import { execFileSync } from 'node:child_process';
import type { NormalizedNetworkPolicy, PortRange } from '@caas/network-policy-model';
import type { Ruleset, TenantPod } from '@caas/netpolicy-compiler';
import { compile, renderText } from '@caas/netpolicy-compiler';
import { applyChanges, applyRuleset, readCounters } from '../policy-apply';
import { PolicyApplyError, PolicyApplyErrorCode } from '../policy.exception';
import { Prober, Topology, startEchoServer } from './netns.fixture';

jest.setTimeout(60_000);

const HOST = 'node-a';
const DB = '10.0.0.10';
const WEB = '10.0.0.20';
const OTHER = '10.0.0.30';
const PODS: TenantPod[] = [
  { id: 'db', labels: { app: 'db' }, address: DB, node: HOST },
  { id: 'web', labels: { role: 'web' }, address: WEB, node: HOST },
  { id: 'other', labels: { role: 'batch' }, address: OTHER, node: HOST },
];
const tcp = (port: number): PortRange => ({ protocol: 'TCP', port, endPort: null });
const dbFromWeb = (ports: number[]): NormalizedNetworkPolicy => ({
  name: 'db-from-web',
  podSelector: { matchLabels: { app: 'db' } },
  policyTypes: ['INGRESS'],
  ingress: [{ from: [{ podSelector: { matchLabels: { role: 'web' } } }], ports: ports.map(tcp) }],
  egress: [],
  deny: [],
});
const rulesetFor = (ports: number[]): Ruleset =>
  compile({ policies: [dbFromWeb(ports)], pods: PODS, host: HOST, egressDefault: 'DENY' });
const ALLOW_COUNTER = 'np_db-from-web_in_0';

const topology = new Topology(`npt${process.pid}`);
let web: Prober;
let other: Prober;

/** The table without counter values (they move with every packet). */
function liveTable(): string {
  return execFileSync('ip', ['netns', 'exec', topology.tenant, 'nft', 'list', 'table', 'inet', 'caas_tenant'], {
    encoding: 'utf8',
  }).replace(/packets \d+ bytes \d+/g, 'packets N bytes M');
}

beforeAll(async () => {
  topology.createTenant();
  const dbNs = topology.addPod('db', DB);
  const webNs = topology.addPod('web', WEB);
  const otherNs = topology.addPod('oth', OTHER);
  await startEchoServer(topology, dbNs, [8080, 8081]);
  web = new Prober(topology, webNs);
  other = new Prober(topology, otherNs);
});

afterAll(() => {
  topology.destroySync();
});

describe('policy rulesets applied in a tenant namespace', () => {
  const v1 = rulesetFor([8080]);

  it('without a table the tenant routes everything (sanity check of the topology)', async () => {
    expect(await readCounters(topology.tenant)).toEqual({});
    expect(await web.connect(DB, 8081)).toBe(true);
    expect(await other.connect(DB, 8080)).toBe(true);
  });

  it('1. allows exactly TCP 8080 from role=web to app=db, replies flow, the allow counter moves', async () => {
    const result = await applyRuleset(topology.tenant, v1);
    expect(result).toMatchObject({ mode: 'full', carriedCounters: 0 });
    const before = (await readCounters(topology.tenant))[ALLOW_COUNTER];
    expect(before).toEqual({ packets: 0, bytes: 0 });

    expect(await web.connect(DB, 8080)).toBe(true); // connect + echo: replies flow
    expect(await web.connect(DB, 8081)).toBe(false);
    expect(await other.connect(DB, 8080)).toBe(false);

    const counters = await readCounters(topology.tenant);
    // Only the first packet of a flow walks the policy (established is accepted before it): one SYN.
    expect(counters[ALLOW_COUNTER]?.packets).toBe(1);
    expect(counters['isolated_in_drop']?.packets).toBeGreaterThanOrEqual(2);

    // A full re-apply keeps the counters whose names persist.
    const again = await applyRuleset(topology.tenant, v1);
    expect(again.carriedCounters).toBe(v1.counters.length);
    expect((await readCounters(topology.tenant))[ALLOW_COUNTER]).toEqual(counters[ALLOW_COUNTER]);
  });

  it('2. applyChanges changes reachability of running pods; established connections keep flowing (ADR-006)', async () => {
    expect(await web.hold('a', DB, 8080)).toBe(true);
    const counterBefore = (await readCounters(topology.tenant))[ALLOW_COUNTER];

    const v2 = rulesetFor([8080, 8081]);
    const widened = await applyChanges(topology.tenant, v1, v2);
    expect(widened.mode).toBe('incremental');
    expect(widened.fallbackReason).toBeUndefined();
    expect(await web.connect(DB, 8081)).toBe(true);
    expect(await other.connect(DB, 8081)).toBe(false);
    expect(await web.ping('a')).toBe(true);
    // The counter survived the incremental update (same name) and counted the new flow.
    expect((await readCounters(topology.tenant))[ALLOW_COUNTER]?.packets).toBe((counterBefore?.packets ?? 0) + 1);

    // Tightening: 8080 no longer allowed. New connections are refused; the established one keeps flowing,
    // because `ct state established,related accept` comes before the policy — cutting it is the agent's
    // separate conntrack step after the apply (ADR-006 "Existing connections"), not part of the apply.
    const v3 = rulesetFor([8081]);
    const tightened = await applyChanges(topology.tenant, v2, v3);
    expect(tightened.mode).toBe('incremental');
    expect(await web.connect(DB, 8080)).toBe(false);
    expect(await web.connect(DB, 8081)).toBe(true);
    expect(await web.ping('a')).toBe(true);

    // Back to v1; an unchanged apply is a no-op.
    expect((await applyChanges(topology.tenant, v3, v1)).mode).toBe('incremental');
    expect(await applyChanges(topology.tenant, v1, v1)).toMatchObject({ mode: 'unchanged', changes: 0 });
    expect(liveTable()).toBe(liveTableOf(v1));
  });

  it('2b. applyChanges falls back to a full replacement when the live table is not `prev`', async () => {
    // A "prev" that was never applied: it has a pod whose chains the diff deletes, and they do not exist.
    const ghost: TenantPod = { id: 'ghost', labels: {}, address: '10.0.0.99', node: HOST };
    const stale = compile({ policies: [dbFromWeb([8080])], pods: [...PODS, ghost], host: HOST, egressDefault: 'DENY' });
    const v2 = rulesetFor([8080, 8081]);
    const result = await applyChanges(topology.tenant, stale, v2);
    expect(result.mode).toBe('full');
    expect(result.fallbackReason).toMatch(/nft rejected/);
    expect(await web.connect(DB, 8081)).toBe(true);
    await applyRuleset(topology.tenant, v1);
  });

  it('3. a bad ruleset is refused with PolicyApplyError and the previous ruleset stays in force', async () => {
    const before = liveTable();
    const bad: Ruleset = {
      ...v1,
      chains: v1.chains.map((c) =>
        c.name === 'policy_in'
          ? {
              ...c,
              rules: [
                {
                  exprs: [{ kind: 'addrSet', field: 'saddr', negate: false, set: 'no_such_set' }],
                  verdict: { kind: 'accept' },
                },
                ...c.rules,
              ],
            }
          : c,
      ),
    };
    const error = await applyRuleset(topology.tenant, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PolicyApplyError);
    expect((error as PolicyApplyError).code).toBe(PolicyApplyErrorCode.NFT_REJECTED);
    expect((error as PolicyApplyError).stderr).toMatch(/no_such_set/);
    expect(liveTable()).toBe(before);
    expect(await web.connect(DB, 8080)).toBe(true);
    expect(await other.connect(DB, 8080)).toBe(false);

    await expect(applyRuleset('../etc', v1)).rejects.toMatchObject({ code: PolicyApplyErrorCode.INVALID_NETNS });
    await expect(readCounters(`${topology.prefix}missing`)).rejects.toMatchObject({
      code: PolicyApplyErrorCode.NETNS_NOT_FOUND,
    });
  });
});

/** What the table looks like when `ruleset` was applied in a fresh namespace (counter values masked). */
function liveTableOf(ruleset: Ruleset): string {
  const ns = `${topology.prefix}x`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: renderText(ruleset) });
    return execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'caas_tenant'], {
      encoding: 'utf8',
    }).replace(/packets \d+ bytes \d+/g, 'packets N bytes M');
  } finally {
    execFileSync('ip', ['netns', 'delete', ns]);
  }
}
