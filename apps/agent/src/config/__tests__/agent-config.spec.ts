import { ConfigError } from '@caas/config';
import { loadAgentConfig } from '../agent-config';

describe('agent configuration', () => {
  it('needs the API URL and defaults the rest', () => {
    const config = loadAgentConfig({ API_URL: 'https://api.example:4000' });
    expect(config).toMatchObject({
      API_URL: 'https://api.example:4000',
      STATE_DIR: '/var/lib/caas-agent',
      REDIS_URL: 'redis://127.0.0.1:6379',
      ALLOW_TCG: false,
      SELF_FENCE: true,
      LOG_LEVEL: 'info',
      VM_UID_BASE: 420_000,
      VM_UID_COUNT: 10_000,
    });
    expect(config.HOST_NETNS).toBeUndefined();
    expect(config.JOIN_TOKEN).toBeUndefined();
    expect(config.NODE_NAME).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(config.NODE_VCPUS).toBeGreaterThan(0);
    expect(config.NODE_MEMORY_MIB).toBeGreaterThanOrEqual(256);
    expect(config.NODE_PODS).toBeGreaterThan(0);
    expect(config.GUEST_KERNEL).toMatch(/dist\/guest\/kernel$/);
    expect(config.GUEST_INITRD).toMatch(/dist\/guest\/initrd\.cpio$/);
  });

  it('takes capacity, flags and the guest from the environment', () => {
    expect(
      loadAgentConfig({
        API_URL: 'http://127.0.0.1:4000',
        NODE_NAME: 'host-1',
        NODE_VCPUS: '8',
        NODE_MEMORY_MIB: '16384',
        NODE_PODS: '20',
        ALLOW_TCG: 'true',
        SELF_FENCE: 'false',
        GUEST_KERNEL: '/opt/guest/kernel',
        JOIN_TOKEN: 'a'.repeat(32),
        HOST_NETNS: 'caas-host-b',
        VM_UID_BASE: '430000',
        VM_UID_COUNT: '1000',
      }),
    ).toMatchObject({
      HOST_NETNS: 'caas-host-b',
      VM_UID_BASE: 430_000,
      VM_UID_COUNT: 1000,
      NODE_NAME: 'host-1',
      NODE_VCPUS: 8,
      NODE_MEMORY_MIB: 16384,
      NODE_PODS: 20,
      ALLOW_TCG: true,
      SELF_FENCE: false,
      GUEST_KERNEL: '/opt/guest/kernel',
    });
  });

  it('refuses a relative state directory and a missing API URL', () => {
    expect(() => loadAgentConfig({ STATE_DIR: 'relative/dir' })).toThrow(ConfigError);
    expect(() => loadAgentConfig({ STATE_DIR: 'relative/dir' })).toThrow(/API_URL[\s\S]*STATE_DIR/);
  });

  it('names every bad variable', () => {
    expect(() =>
      loadAgentConfig({
        API_URL: 'http://x',
        NODE_VCPUS: 'many',
        ALLOW_TCG: 'maybe',
        NODE_NAME: 'Not_A_Label',
        REDIS_URL: 'http://x',
      }),
    ).toThrow(/NODE_VCPUS[\s\S]*ALLOW_TCG|ALLOW_TCG[\s\S]*NODE_VCPUS/);
  });

  it('refuses a host namespace name that is a path or an option, and a VM uid range at root', () => {
    for (const HOST_NETNS of ['../etc', '-n', 'a/b', 'x'.repeat(33)]) {
      expect(() => loadAgentConfig({ API_URL: 'http://x', HOST_NETNS })).toThrow(/HOST_NETNS/);
    }
    expect(() => loadAgentConfig({ API_URL: 'http://x', VM_UID_BASE: '0' })).toThrow(/VM_UID_BASE/);
  });

  it('takes a pod network only whole: underlay link and address together, and an uplink', () => {
    expect(
      loadAgentConfig({
        API_URL: 'http://x',
        UNDERLAY_IFNAME: 'eth1',
        UNDERLAY_ADDRESS: '192.0.2.11',
        UPLINK_IFNAME: 'eth0',
      }),
    ).toMatchObject({
      UNDERLAY_IFNAME: 'eth1',
      UNDERLAY_ADDRESS: '192.0.2.11',
      UPLINK_IFNAME: 'eth0',
      TENANT_NETNS_PREFIX: 'caas-t',
    });
    expect(() => loadAgentConfig({ API_URL: 'http://x', UNDERLAY_IFNAME: 'eth1' })).toThrow(/UNDERLAY_ADDRESS/);
    expect(() =>
      loadAgentConfig({ API_URL: 'http://x', UNDERLAY_IFNAME: 'eth1', UNDERLAY_ADDRESS: '192.0.2.11' }),
    ).toThrow(/UPLINK_IFNAME/);
    expect(() =>
      loadAgentConfig({
        API_URL: 'http://x',
        UNDERLAY_IFNAME: 'eth1',
        UNDERLAY_ADDRESS: 'nope',
        UPLINK_IFNAME: 'eth0',
      }),
    ).toThrow(/UNDERLAY_ADDRESS/);
    expect(() => loadAgentConfig({ API_URL: 'http://x', FORBIDDEN_CIDRS: '10.0.0.0/8;x' })).toThrow(/FORBIDDEN_CIDRS/);
  });
});
