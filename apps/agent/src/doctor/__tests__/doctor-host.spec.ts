import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from '../../config/agent-config';
import { checkHost, formatReport } from '../doctor';

// The real probes on this machine: the report must be well-formed, whatever the host has (no assertion that it
// passes: a developer laptop without QEMU is as valid a host for this test as CI).
describe('checkHost on this machine', () => {
  let stateDir: string;
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'caas-doctor-'));
  });
  afterAll(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it('returns one well-formed entry per check', async () => {
    const config = { API_URL: 'http://127.0.0.1:4000', STATE_DIR: stateDir, LOG_LEVEL: 'info' } as AgentConfig;
    const report = await checkHost(config, { kvmTimeoutMs: 5000 });
    expect(report.checks.map((c) => c.name).sort()).toEqual(
      [
        'accelerator',
        'cgroups',
        'disk',
        'guest-initrd',
        'guest-kernel',
        'nftables',
        'pod-network',
        'qemu',
        'root',
        'tools',
        'tun',
      ].sort(),
    );
    for (const c of report.checks) {
      expect(typeof c.ok).toBe('boolean');
      expect(typeof c.required).toBe('boolean');
      expect(c.detail.length).toBeGreaterThan(0);
      if (c.ok) expect(c.fix).toBeUndefined();
      else expect(c.fix?.length).toBeGreaterThan(0);
    }
    expect(report.ok).toBe(report.checks.every((c) => c.ok || !c.required));
    expect(check(report.checks, 'disk').detail).toContain(stateDir);
    expect(formatReport(report).split('\n').length).toBeGreaterThan(report.checks.length);
  }, 30_000);
});

function check<T extends { name: string }>(checks: T[], name: string): T {
  const found = checks.find((c) => c.name === name);
  if (!found) throw new Error(`no ${name}`);
  return found;
}
