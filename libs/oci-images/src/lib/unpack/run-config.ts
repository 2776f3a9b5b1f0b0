/**
 * The OCI image config (application/vnd.oci.image.config.v1+json, or Docker's, which is the same shape): what
 * a container of the image runs by default. Pure and bounded: the config comes from the tenant.
 */
import { ImageError } from '../errors';

export interface ImageRunConfig {
  /** `config.Entrypoint`; undefined when absent or null. */
  entrypoint?: string[];
  /** `config.Cmd`; undefined when absent or null. */
  cmd?: string[];
  /** `config.Env`: `KEY=value` strings, in order (may repeat a key: the last wins, as in docker). */
  env: string[];
  /** `config.WorkingDir`: an absolute path; undefined when absent or empty. */
  workingDir?: string;
  /** `config.User` as written (`name`, `uid`, `name:group`, `uid:gid`, …); see resolveUser. */
  user?: string;
}

/** Bytes of a config document. */
export const MAX_IMAGE_CONFIG_BYTES = 4 * 1024 * 1024;
const MAX_ARGS = 4096;
/** The kernel's bound on one argument or environment string (MAX_ARG_STRLEN). */
const MAX_STRING = 128 * 1024;
/** All of entrypoint + cmd + env together, as execve would take them (ARG_MAX is 2 MiB by default). */
const MAX_TOTAL = 1024 * 1024;
const MAX_PATH = 4096;
const MAX_USER = 256;

const invalid = (message: string): ImageError => new ImageError('UNSUPPORTED_MANIFEST', `image config: ${message}`);

/**
 * Parses and checks an image config: its JSON text (a string or bytes) or the already parsed value. Throws ImageError
 * UNSUPPORTED_MANIFEST for a config that is not valid (or over a bound), NO_MATCHING_PLATFORM for one whose
 * architecture/os is not amd64/linux.
 */
export function parseImageRunConfig(json: unknown): ImageRunConfig {
  let doc: unknown = json;
  if (typeof json === 'string' || json instanceof Uint8Array) {
    const text =
      typeof json === 'string' ? json : Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8');
    if (Buffer.byteLength(text) > MAX_IMAGE_CONFIG_BYTES) throw invalid(`more than ${MAX_IMAGE_CONFIG_BYTES} bytes`);
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw invalid(`not JSON (${(error as Error).message})`);
    }
  }
  if (!isObject(doc)) throw invalid('not a JSON object');
  if (doc['architecture'] !== 'amd64' || doc['os'] !== 'linux') {
    const platform = `${describe(doc['os'])}/${describe(doc['architecture'])}`;
    throw new ImageError('NO_MATCHING_PLATFORM', `the image is for ${platform}, this platform runs linux/amd64 only`);
  }
  const config = doc['config'];
  if (config === undefined || config === null) return { env: [] };
  if (!isObject(config)) throw invalid('"config" is not an object');

  const entrypoint = stringArray(config['Entrypoint'], 'Entrypoint');
  const cmd = stringArray(config['Cmd'], 'Cmd');
  const env = stringArray(config['Env'], 'Env') ?? [];
  for (const variable of env) {
    if (variable.indexOf('=') <= 0) throw invalid(`Env ${JSON.stringify(variable.slice(0, 100))} is not KEY=value`);
  }
  const total = [...(entrypoint ?? []), ...(cmd ?? []), ...env].reduce((sum, s) => sum + Buffer.byteLength(s) + 1, 0);
  if (total > MAX_TOTAL) throw invalid(`Entrypoint, Cmd and Env together exceed ${MAX_TOTAL} bytes`);

  const workingDir = optionalString(config['WorkingDir'], 'WorkingDir', MAX_PATH);
  if (workingDir !== undefined && !workingDir.startsWith('/')) {
    throw invalid(`WorkingDir ${JSON.stringify(workingDir)} is not an absolute path`);
  }
  const user = optionalString(config['User'], 'User', MAX_USER);

  const result: ImageRunConfig = { env };
  if (entrypoint !== undefined) result.entrypoint = entrypoint;
  if (cmd !== undefined) result.cmd = cmd;
  if (workingDir !== undefined) result.workingDir = workingDir;
  if (user !== undefined) result.user = user;
  return result;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 50)) : String(value);
}

function checkString(value: string, field: string, max: number): void {
  if (value.includes('\0')) throw invalid(`${field} contains a NUL byte`);
  if (Buffer.byteLength(value) > max) throw invalid(`${field}: a string of more than ${max} bytes`);
}

function stringArray(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalid(`${field} is not an array of strings`);
  if (value.length > MAX_ARGS) throw invalid(`${field} has more than ${MAX_ARGS} elements`);
  for (const item of value) {
    if (typeof item !== 'string') throw invalid(`${field} is not an array of strings`);
    checkString(item, field, MAX_STRING);
  }
  return [...(value as string[])];
}

function optionalString(value: unknown, field: string, max: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalid(`${field} is not a string`);
  checkString(value, field, max);
  return value;
}
