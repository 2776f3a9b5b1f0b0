/**
 * Checks rendered rulesets and diff scripts against the real nft (1.0.6) inside a network namespace this test
 * creates and always deletes. Needs root, iproute2 and nftables.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../compile';
import { diff, renderChanges } from '../diff';
import { renderText } from '../render';
import { HOST, must, PODS, block, policy, pods, tcp, udp } from './fixtures';

const NS = `caas-nptest-${randomBytes(4).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'nptest-'));

function nft(args: string[], script?: string): string {
  const file = join(dir, `script-${randomBytes(4).toString('hex')}.nft`);
  if (script !== undefined) writeFileSync(file, script);
  try {
    return execFileSync('ip', ['netns', 'exec', NS, 'nft', ...args, ...(script !== undefined ? ['-f', file] : [])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as { stderr?: string };
    throw new Error(`nft ${args.join(' ')} failed: ${e.stderr ?? String(error)}\n--- script ---\n${script ?? ''}`);
  }
}

const policies = [
  policy('test-network-policy', {
    podSelector: { matchLabels: { role: 'db' } },
    policyTypes: ['INGRESS', 'EGRESS'],
    ingress: [{ from: [block('172.17.0.0/16', ['172.17.1.0/24']), pods({ role: 'frontend' })], ports: [tcp(6379)] }],
    egress: [{ to: [block('10.0.0.0/24'), block('10.0.0.0/25')], ports: [tcp(5978), udp(1000, 2000)] }],
  }),
  policy('deny-clients', {
    deny: [{ direction: 'INGRESS', priority: 1, peers: [pods({ role: 'client' })], ports: [] }],
  }),
  policy('nobody', {
    podSelector: { matchLabels: { role: 'ghost' } },
    ingress: [{ from: [pods({ role: 'ghost' })], ports: [udp()] }],
  }),
];

describe('nft accepts the rendered scripts', () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NS]);
  });
  afterAll(() => {
    try {
      execFileSync('ip', ['netns', 'delete', NS]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const full = compile({ policies, pods: PODS, host: HOST, egressDefault: 'ALLOW_NAT' });

  it.each([
    ['no policies', compile({ policies: [], pods: PODS, host: HOST, egressDefault: 'DENY' })],
    ['no pods', compile({ policies, pods: [], host: HOST, egressDefault: 'DENY' })],
    ['several policies', full],
  ])('%s: nft --check, then apply', (_name, ruleset) => {
    nft(['--check'], renderText(ruleset));
    nft([], renderText(ruleset, { 'np_test-network-policy_in_0': { packets: 7, bytes: 700 } }));
    expect(nft(['list', 'table', 'inet', 'caas_tenant'])).toContain('chain policy_in');
  });

  it('applies twice (replacement), keeps carried-over counters, then applies a diff script', () => {
    nft([], renderText(full, { 'np_test-network-policy_in_0': { packets: 7, bytes: 700 } }));
    expect(nft(['list', 'counter', 'inet', 'caas_tenant', 'np_test-network-policy_in_0'])).toMatch(
      /packets 7 bytes 700/,
    );
    const nextPolicies = [
      { ...must(policies[0]), ingress: [{ from: [pods({ role: 'frontend' })], ports: [tcp(6380)] }] },
      policy('deny-tools', {
        deny: [{ direction: 'EGRESS', priority: 0, peers: [block('0.0.0.0/0', ['10.0.0.0/8'])], ports: [udp(53)] }],
      }),
    ];
    const nextPods = [
      ...PODS.filter((p) => p.id !== 'tool-1'),
      { id: 'new', labels: { role: 'frontend' }, address: '10.0.0.50', node: HOST },
    ];
    const next = compile({ policies: nextPolicies, pods: nextPods, host: HOST, egressDefault: 'DENY' });
    const script = renderChanges(full, diff(full, next));
    nft(['--check'], script);
    nft([], script);
    const listed = nft(['list', 'table', 'inet', 'caas_tenant']);
    expect(listed).toContain('chain pod_in_10_0_0_50');
    expect(listed).not.toContain('pod_in_10_0_0_40');
    expect(listed).not.toContain('deny-clients');
    // The surviving counter kept its value through the incremental update.
    expect(nft(['list', 'counter', 'inet', 'caas_tenant', 'np_test-network-policy_in_0'])).toMatch(
      /packets 7 bytes 700/,
    );
  });
});
