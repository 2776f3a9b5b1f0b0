// Fixtures for the VMM layer's VM tests: a short VM root, tiny firmware images that need no guest kernel,
// and bookkeeping so every VM a test starts is removed afterwards, also when the test fails.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupVm } from '../../lifecycle';
import type { VmHandle } from '../../launch';

/**
 * A 64 KiB firmware image for `-bios` whose reset vector (0xFFFF0, real mode) runs `code`; the rest is `hlt`.
 * QEMU maps it below 4 GiB and the CPU starts there: a "guest" in a few bytes.
 */
export function firmware(code: number[]): Buffer {
  const image = Buffer.alloc(64 * 1024, 0xf4);
  Buffer.from(code).copy(image, 0xfff0);
  return image;
}

/** `mov dx, 0x505; mov al, 1; out dx, al; hlt; jmp $-1`: tells pvpanic (ISA port 0x505) the guest panicked. */
export const PANIC_FIRMWARE = firmware([0xba, 0x05, 0x05, 0xb0, 0x01, 0xee, 0xf4, 0xeb, 0xfd]);
/** `mov dx, 0x3f8; mov al, 'A'; out dx, al; jmp $-3`: writes to the serial console forever. */
export const SPAM_FIRMWARE = firmware([0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xeb, 0xfd]);

export interface VmTestEnv {
  /** `/tmp/cvm-XXXXXX`, mode 0711 (the VM uids may traverse it, not list it). */
  root: string;
  /** World-readable firmware files. */
  fw: { panic: string; spam: string };
  /** A raw disk image readable by root only. */
  rootOnlyDisk: string;
  /** A unique VM id for this run. */
  id: (name: string) => string;
  /** Its directory under `root`. */
  dir: (id: string) => string;
  /** Registers a VM for cleanup. */
  track: (id: string, handle?: VmHandle) => void;
  /** Cleans every tracked VM (closing QMP clients first). */
  cleanupAll: () => Promise<void>;
  remove: () => void;
}

export function createVmTestEnv(): VmTestEnv {
  const root = mkdtempSync('/tmp/cvm-');
  chmodSync(root, 0o711);
  const fwDir = join(root, 'fw');
  mkdirSync(fwDir, { mode: 0o755 });
  const panic = join(fwDir, 'panic.bin');
  const spam = join(fwDir, 'spam.bin');
  writeFileSync(panic, PANIC_FIRMWARE, { mode: 0o644 });
  writeFileSync(spam, SPAM_FIRMWARE, { mode: 0o644 });
  const imgDir = join(root, 'img');
  mkdirSync(imgDir, { mode: 0o700 });
  const rootOnlyDisk = join(imgDir, 'disk.raw');
  writeFileSync(rootOnlyDisk, Buffer.alloc(1024 * 1024), { mode: 0o600 });

  const run = randomBytes(3).toString('hex');
  const tracked = new Map<string, VmHandle | undefined>();
  return {
    root,
    fw: { panic, spam },
    rootOnlyDisk,
    id: (name) => `vmmt-${run}-${name}`,
    dir: (id) => join(root, id),
    track: (id, handle) => {
      tracked.set(id, handle);
    },
    cleanupAll: async () => {
      const errors: unknown[] = [];
      for (const [id, handle] of tracked) {
        handle?.qmp.close();
        try {
          await cleanupVm(join(root, id), id);
        } catch (error) {
          errors.push(error);
        }
      }
      tracked.clear();
      if (errors.length > 0) throw errors[0];
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
