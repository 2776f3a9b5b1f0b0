import { readFile } from 'node:fs/promises';

/**
 * The host's TSC frequency in kHz from the first `cpu MHz` line of `/proc/cpuinfo` (e.g. `2100.000` → 2100000),
 * or undefined when there is none. Passed to the guest as `tsc_early_khz`: microvm has no HPET or ACPI PM timer,
 * and under TCG a guest that cannot calibrate its TSC may spin forever at boot.
 */
export function parseCpuinfoTscKhz(cpuinfo: string): number | undefined {
  const match = /^cpu MHz\s*:\s*(\d+)(?:\.(\d+))?\s*$/m.exec(cpuinfo);
  if (!match) return undefined;
  // Decimal arithmetic on the digits: 2100.0005 MHz → 2100001 kHz (rounded), no binary floating point drift.
  const whole = Number(match[1]);
  const fraction = (match[2] ?? '').padEnd(4, '0');
  const khz = whole * 1000 + Number(fraction.slice(0, 3)) + (Number(fraction[3]) >= 5 ? 1 : 0);
  return khz > 0 ? khz : undefined;
}

/** Reads `/proc/cpuinfo`; throws when it names no CPU frequency (then the caller must configure one). */
export async function hostTscKhz(cpuinfoPath = '/proc/cpuinfo'): Promise<number> {
  const khz = parseCpuinfoTscKhz(await readFile(cpuinfoPath, 'utf8'));
  if (khz === undefined) throw new Error(`no "cpu MHz" line in ${cpuinfoPath}: configure the TSC frequency`);
  return khz;
}
