import { gatewayOf, guestMac, podPortName, transitIndex, transitPair, vtepMac, checkIfname } from '../names';
import { renderHostTable, renderTenantGuardTable } from '../tables';

describe('data path names', () => {
  it('derives MACs from addresses as ADR-006 says', () => {
    expect(guestMac('10.0.0.2')).toBe('02:ca:0a:00:00:02');
    expect(vtepMac('192.0.2.12')).toBe('02:c0:00:02:0c:00');
    expect(() => guestMac('10.0.0.256')).toThrow();
  });

  it('names pod ports tp + 12 hex digits of the pod id', () => {
    expect(podPortName('3F1E2D4C-5B6A-4000-8000-000000000000')).toBe('tp3f1e2d4c5b6a');
    expect(() => podPortName('abc')).toThrow();
    expect(() => podPortName('x; rm -rf /')).toThrow();
  });

  it('refuses unsafe interface names', () => {
    expect(checkIfname('vh4711')).toBe('vh4711');
    for (const bad of ['', '-x', 'a b', 'a"b', 'sixteen-chars-xx']) expect(() => checkIfname(bad)).toThrow();
  });

  it('allocates transit /31s from 100.64.0.0/10', () => {
    expect(transitPair(0)).toEqual({ host: '100.64.0.0', tenant: '100.64.0.1' });
    expect(transitPair(129)).toEqual({ host: '100.64.1.2', tenant: '100.64.1.3' });
    expect(transitIndex('100.64.1.2')).toBe(129);
    expect(transitIndex('100.64.1.3')).toBeNull();
    expect(transitIndex('10.0.0.0')).toBeNull();
    expect(gatewayOf('10.0.0.0/24')).toBe('10.0.0.1');
  });
});

describe('guard tables', () => {
  it('host table: input from vh* dropped, VXLAN only from @vteps on the underlay, masquerade on the uplink', () => {
    const text = renderHostTable({
      underlayIf: 'eth1',
      uplinkIf: 'eth0',
      forbidden: ['10.0.0.0/8'],
      vteps: ['192.0.2.11'],
      vethSrc: [{ ifname: 'vh1', address: '100.64.0.1' }],
    });
    expect(text).toContain('iifname "vh*" counter name "tenant_input" drop');
    expect(text).toContain('udp dport 4789 iifname "eth1" ip saddr @vteps accept');
    expect(text).toContain('iifname "vh*" oifname != "eth0" counter name "tenant_forward" drop');
    expect(text).toContain('elements = { "vh1" . 100.64.0.1 }');
    expect(text).toContain('oifname "eth0" ip saddr 100.64.0.0/10 masquerade');
  });

  it('tenant guard table: anti-spoofing at raw priority, DENY drops egress, SNAT to the transit address', () => {
    const input = {
      subnet: '10.0.0.0/24',
      transit: '100.64.0.1',
      vt: 'vt1',
      vx: 'vx1',
      forbidden: ['10.0.0.0/8'],
      podSrc: [{ ifname: 'tpaaaaaaaaaaaa', mac: '02:ca:0a:00:00:02', address: '10.0.0.2' }],
    };
    const nat = renderTenantGuardTable({ ...input, egress: 'NAT' });
    expect(nat).toMatch(/priority raw;[^}]*!= @pod_src counter name "spoofed" drop/);
    expect(nat).toContain('oifname "vt1" snat ip to 100.64.0.1');
    expect(nat).not.toContain('egress_deny" drop');
    expect(renderTenantGuardTable({ ...input, egress: 'DENY' })).toContain(
      'iifname "tp*" oifname "vt1" counter name "egress_deny" drop',
    );
  });
});
