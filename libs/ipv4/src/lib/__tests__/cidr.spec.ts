import { contains, formatAddress, formatCidr, hostRange, isPrivate, nthBlock, parseAddress, parseCidr } from '../cidr';

const cidr = (text: string) => {
  const parsed = parseCidr(text);
  if (parsed === null) throw new Error(`bad test CIDR ${text}`);
  return parsed;
};

describe('IPv4 CIDR', () => {
  it('parses and formats addresses', () => {
    expect(parseAddress('10.128.0.1')).toBe(0x0a800001);
    expect(formatAddress(0xffffffff)).toBe('255.255.255.255');
    for (const bad of ['10.0.0', '10.0.0.256', '01.0.0.1', '1.2.3.4.5', 'a.b.c.d', ''])
      expect(parseAddress(bad)).toBeNull();
  });

  it('accepts canonical CIDRs only', () => {
    expect(formatCidr(cidr('10.128.16.0/20'))).toBe('10.128.16.0/20');
    for (const bad of ['10.0.0.1/24', '10.0.0.0/33', '10.0.0.0', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1']) {
      expect(parseCidr(bad)).toBeNull();
    }
  });

  it('knows containment and private space', () => {
    expect(contains(cidr('10.0.0.0/8'), cidr('10.1.0.0/16'))).toBe(true);
    expect(contains(cidr('10.1.0.0/16'), cidr('10.0.0.0/8'))).toBe(false);
    expect(contains(cidr('10.0.0.0/8'), cidr('11.0.0.0/16'))).toBe(false);
    expect(isPrivate(cidr('172.20.0.0/16'))).toBe(true);
    expect(isPrivate(cidr('172.32.0.0/16'))).toBe(false);
    expect(isPrivate(cidr('192.168.10.0/24'))).toBe(true);
    expect(isPrivate(cidr('8.8.8.0/24'))).toBe(false);
  });

  it('carves the n-th block of a pool and wraps around', () => {
    const pool = cidr('10.128.0.0/9');
    expect(formatCidr(nthBlock(pool, 20, 0))).toBe('10.128.0.0/20');
    expect(formatCidr(nthBlock(pool, 20, 1))).toBe('10.128.16.0/20');
    expect(formatCidr(nthBlock(pool, 20, 2047))).toBe('10.255.240.0/20');
    expect(formatCidr(nthBlock(pool, 20, 2048))).toBe('10.128.0.0/20');
    expect(() => nthBlock(pool, 8, 0)).toThrow(RangeError);
  });

  it('gives the host addresses of a block, without its network and broadcast addresses', () => {
    const range = (text: string) => {
      const { first, last } = hostRange(cidr(text));
      return [formatAddress(first), formatAddress(last)];
    };
    expect(range('10.20.0.0/16')).toEqual(['10.20.0.1', '10.20.255.254']);
    expect(range('192.168.1.16/28')).toEqual(['192.168.1.17', '192.168.1.30']);
    expect(range('10.0.0.0/30')).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(range('10.0.0.0/31')).toEqual(['10.0.0.0', '10.0.0.1']);
    expect(range('10.0.0.7/32')).toEqual(['10.0.0.7', '10.0.0.7']);
    expect(range('0.0.0.0/0')).toEqual(['0.0.0.1', '255.255.255.254']);
  });
});
