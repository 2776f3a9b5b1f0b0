/**
 * Layer entry names → paths relative to the root, judged lexically (no file system here).
 *
 * - OCI layer paths are relative. A leading `/` (any number of them) or `./` is taken as relative to the root,
 *   as tar does: `/etc/passwd`, `./etc/passwd` and `etc/passwd` are the same entry.
 * - Empty and `.` components are dropped; `..` removes the component before it (`a/../b` is `b`). A `..` that
 *   would climb above the root is refused (UNSAFE_LAYER), never clamped.
 * - A NUL anywhere is refused (UNSAFE_LAYER); a component longer than 255 bytes is refused (BAD_LAYER).
 *
 * This decides only where an entry lands inside the root; that nothing on the way there is a symlink is
 * checked against the file system when the entry is applied.
 */
import { ImageError } from '../errors';

const NAME_MAX = 255;

/** The components of an entry's path inside the root; `[]` is the root itself. */
export function entryPathParts(raw: string, what = 'path'): string[] {
  const shown = JSON.stringify(raw.slice(0, 300));
  if (raw.includes('\0')) throw new ImageError('UNSAFE_LAYER', `a ${what} with a NUL byte: ${shown}`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new ImageError('UNSAFE_LAYER', `a ${what} that climbs out of the root: ${shown}`);
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > NAME_MAX) {
      throw new ImageError('BAD_LAYER', `a ${what} with a name longer than ${NAME_MAX} bytes: ${shown}`);
    }
    parts.push(part);
  }
  return parts;
}
