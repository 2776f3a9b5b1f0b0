import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTscKhz, parseCpuinfoTscKhz } from '../tsc';

const cpuinfo = (mhz: string): string =>
  `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\ncpu MHz\t\t: ${mhz}\ncache size\t: 4096 KB\n\n` +
  'processor\t: 1\ncpu MHz\t\t: 3999.999\n';

describe('parseCpuinfoTscKhz', () => {
  it.each([
    ['2100.000', 2100000],
    ['2100', 2100000],
    ['2099.9996', 2100000],
    ['2099.9994', 2099999],
    ['3591.686', 3591686],
    ['800.5', 800500],
  ])('cpu MHz %s → %d kHz (first CPU only)', (mhz, khz) => {
    expect(parseCpuinfoTscKhz(cpuinfo(mhz))).toBe(khz);
  });

  it('is undefined without a cpu MHz line or with zero', () => {
    expect(parseCpuinfoTscKhz('processor\t: 0\nBogoMIPS\t: 48.00\n')).toBeUndefined();
    expect(parseCpuinfoTscKhz('cpu MHz\t\t: 0.000\n')).toBeUndefined();
    expect(parseCpuinfoTscKhz('cpu MHz\t\t: fast\n')).toBeUndefined();
  });

  it('reads a cpuinfo file, and this host has one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsc-'));
    try {
      writeFileSync(join(dir, 'cpuinfo'), cpuinfo('2100.000'));
      await expect(hostTscKhz(join(dir, 'cpuinfo'))).resolves.toBe(2100000);
      writeFileSync(join(dir, 'none'), 'processor: 0\n');
      await expect(hostTscKhz(join(dir, 'none'))).rejects.toThrow(/cpu MHz/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await hostTscKhz()).toBeGreaterThan(100_000);
  });
});
