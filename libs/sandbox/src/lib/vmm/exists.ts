import { access } from 'node:fs/promises';

/** Whether `path` exists (as far as this process can see: `access(2)` with F_OK). */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
