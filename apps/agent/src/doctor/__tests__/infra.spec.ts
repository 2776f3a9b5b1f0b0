import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAgentConfig } from '../../config/agent-config';

/**
 * infra/ against the code: the agent's systemd unit keeps pod VMs alive when the agent stops, and every
 * variable an example env file names is one its app's configuration schema reads (and the other way round).
 */
const root = join(__dirname, '../../../../..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

type Loader = (env: Record<string, string | undefined>) => object;

/**
 * The API's and the scheduler's loaders. A static import across apps is refused by the module-boundary lint
 * rule (apps never depend on apps at run time); this test only reads their configuration schemas.
 */
function loaderOf(app: 'api' | 'scheduler'): Loader {
  const mod = jest.requireActual<Record<string, unknown>>(join(root, `apps/${app}/src/config/${app}-config.ts`));
  const name = app === 'api' ? 'loadApiConfig' : 'loadSchedulerConfig';
  const loader = mod[name];
  if (typeof loader !== 'function') throw new Error(`apps/${app} exports no ${name}`);
  return loader as Loader;
}

/** `NAME=value` and `#NAME=value` lines (a commented default); prose comments start with `# `. */
export function parseEnvExample(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^#?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) {
      if (vars.has(m[1] as string)) throw new Error(`${m[1]} is listed twice`);
      vars.set(m[1] as string, m[2] as string);
    }
  }
  return vars;
}

/** The keys of the `z.object({ … })` in a config source file (its schema), read from the source text. */
function schemaKeys(path: string): string[] {
  const source = read(path);
  const open = /z\s*\.object\(\{/.exec(source);
  if (!open) throw new Error(`no z.object({ … }) in ${path}`);
  let depth = 0;
  let end = open.index + open[0].length - 1;
  for (; end < source.length; end++) {
    if (source[end] === '{') depth++;
    else if (source[end] === '}' && --depth === 0) break;
  }
  return [...source.slice(open.index, end).matchAll(/^\s+([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1] as string);
}

/** Secrets and other values an example leaves empty, filled so that the schema can parse the example. */
const fillers: Record<string, () => string> = {
  OPERATOR_TOKEN: () => `caas_${randomBytes(32).toString('base64url')}`,
  SECRETS_KEY: () => randomBytes(32).toString('base64'),
  JOIN_TOKEN: () => randomBytes(24).toString('base64url'),
  NODE_NAME: () => 'node-a',
  NODE_VCPUS: () => '4',
  NODE_MEMORY_MIB: () => '8192',
  NODE_PODS: () => '16',
};

function envOf(vars: Map<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of vars) {
    if (value !== '') env[name] = value;
    else if (fillers[name]) env[name] = fillers[name]();
    else throw new Error(`${name} is empty in the example and the test has no value for it`);
  }
  return env;
}

const apps = [
  {
    app: 'api',
    load: () => loaderOf('api'),
    renamed: { OPERATOR_TOKEN: 'operatorTokenHash', SECRETS_KEY: 'secretsKey' },
  },
  { app: 'scheduler', load: () => loaderOf('scheduler'), renamed: {} },
  { app: 'agent', load: (): Loader => loadAgentConfig, renamed: {} },
] as const;

describe.each(apps)('infra/config/$app.env.example', ({ app, load, renamed }) => {
  const vars = parseEnvExample(read(`infra/config/${app}.env.example`));
  const declared = schemaKeys(`apps/${app}/src/config/${app}-config.ts`);

  it('names exactly the variables the schema declares', () => {
    expect(declared.length).toBeGreaterThan(2);
    expect([...vars.keys()].sort()).toEqual([...declared].sort());
  });

  it('parses under the real schema, every variable it names read by it', () => {
    const config = load()(envOf(vars)) as Record<string, unknown>;
    for (const name of vars.keys()) {
      // zod drops keys its schema does not know: a name missing from the result is not read by the app.
      const key = (renamed as Record<string, string>)[name] ?? name;
      expect({ name, read: key in config }).toEqual({ name, read: true });
    }
  });

  it('a misspelt variable would be caught', () => {
    const config = load()({ ...envOf(vars), LOG_LEVLE: 'debug' }) as Record<string, unknown>;
    expect('LOG_LEVLE' in config).toBe(false);
  });
});

/** `[Section]` → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1] as string, current);
      continue;
    }
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!m || !current) throw new Error(`cannot parse unit line: ${raw}`);
    current.set(m[1] as string, [...(current.get(m[1] as string) ?? []), m[2] as string]);
  }
  return sections;
}

describe('infra/systemd units', () => {
  const unit = (name: string) => parseUnit(read(`infra/systemd/${name}.service`));
  const value = (u: ReturnType<typeof unit>, key: string) => u.get('Service')?.get(key)?.at(-1);

  it('the agent unit leaves the VMs running when the agent stops, and runs doctor first', () => {
    const agent = unit('caas-agent');
    expect(value(agent, 'KillMode')).toBe('process');
    expect(value(agent, 'User') ?? 'root').toBe('root');
    expect(value(agent, 'EnvironmentFile')).toBe('/etc/caas/agent.env');
    expect(value(agent, 'ExecStartPre')).toMatch(/dist\/agent\/apps\/agent\/src\/main\.js doctor$/);
    expect(value(agent, 'Restart')).toBe('on-failure');
    expect(value(agent, 'OOMScoreAdjust')).toBeUndefined(); // QEMU would inherit it
  });

  it.each(['api', 'scheduler'])('caas-%s runs as its own user, hardened', (app) => {
    const u = unit(`caas-${app}`);
    expect(value(u, 'User')).toBe(`caas-${app}`);
    expect(value(u, 'EnvironmentFile')).toBe(`/etc/caas/${app}.env`);
    expect(value(u, 'ExecStart')).toContain(`dist/${app}/apps/${app}/src/main.js`);
    expect(value(u, 'Restart')).toBe('on-failure');
    for (const [key, want] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['PrivateTmp', 'yes'],
      ['CapabilityBoundingSet', ''],
    ] as const) {
      expect({ key, value: value(u, key) }).toEqual({ key, value: want });
    }
    expect(value(u, 'KillMode')).toBeUndefined();
  });
});
