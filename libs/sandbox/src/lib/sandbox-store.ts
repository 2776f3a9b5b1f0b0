/**
 * What the host keeps about each sandbox, so a restarted host process can adopt it: one directory per
 * sandbox under the state directory, owned by root (mode 0700), holding `sandbox.json` (written once the VM is
 * launched, updated when it is running) and `positions.json` (the output and event positions accepted so far),
 * and the VM's own directory `vm/` that belongs to the VM's uid. QEMU can write to `vm/` only: nothing it
 * writes is ever read back as the host's state.
 */
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Accelerator } from './vmm';
import type { StreamPositions } from './guest-connection';
import { validateSandboxSpec, type SandboxSpec } from './sandbox-spec';

export interface SandboxRecord {
  id: string;
  spec: SandboxSpec;
  accel: Accelerator;
  uid: number;
  gid: number;
  pid: number;
  /** `booting` until every container was asked to run; adoption finishes a boot that a restart interrupted. */
  phase: 'booting' | 'running';
  createdAt: string;
}

const recordSchema = z.object({
  id: z.string(),
  spec: z.unknown(),
  accel: z.enum(['kvm', 'tcg']),
  uid: z.number().int(),
  gid: z.number().int(),
  pid: z.number().int().positive(),
  phase: z.enum(['booting', 'running']),
  createdAt: z.string(),
});

const positionsSchema = z.object({ outputSeq: z.number().int().min(0), eventSeq: z.number().int().min(0) });

export class SandboxStore {
  constructor(readonly root: string) {}

  sandboxDir(id: string): string {
    return join(this.root, id);
  }

  vmDir(id: string): string {
    return join(this.root, id, 'vm');
  }

  /** VM uids must search the root and each sandbox dir: the mode is set explicitly, whatever the umask. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o711 });
    await chmod(this.root, 0o711);
  }

  /** Creates the sandbox's directory; fails with EEXIST when the id is taken. */
  async claim(id: string): Promise<void> {
    await mkdir(this.sandboxDir(id), { mode: 0o711 });
    await chmod(this.sandboxDir(id), 0o711);
  }

  async ids(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  }

  async writeRecord(record: SandboxRecord): Promise<void> {
    await this.writeAtomically(join(this.sandboxDir(record.id), 'sandbox.json'), record);
  }

  async readRecord(id: string): Promise<SandboxRecord | undefined> {
    const text = await readFile(join(this.sandboxDir(id), 'sandbox.json'), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const parsed = recordSchema.safeParse(safeJson(text));
    if (!parsed.success || parsed.data.id !== id) return undefined;
    try {
      return { ...parsed.data, spec: validateSandboxSpec(parsed.data.spec) };
    } catch {
      return undefined;
    }
  }

  async writePositions(id: string, positions: StreamPositions): Promise<void> {
    await this.writeAtomically(join(this.sandboxDir(id), 'positions.json'), positions);
  }

  async readPositions(id: string): Promise<StreamPositions> {
    const text = await readFile(join(this.sandboxDir(id), 'positions.json'), 'utf8').catch(() => undefined);
    const parsed = positionsSchema.safeParse(text === undefined ? undefined : safeJson(text));
    return parsed.success ? parsed.data : { outputSeq: 0, eventSeq: 0 };
  }

  async remove(id: string): Promise<void> {
    await rm(this.sandboxDir(id), { recursive: true, force: true });
  }

  private async writeAtomically(file: string, value: unknown): Promise<void> {
    const temp = `${file}.tmp`;
    await writeFile(temp, JSON.stringify(value), { mode: 0o600 });
    await rename(temp, file);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
