/**
 * Invalid pod inputs and the field each refusal must name. Shared by the unit test of the validator and
 * the integration test that proves nothing is written.
 */

type Input = Record<string, unknown>;
type ContainerInput = Record<string, unknown>;

const DIGEST = 'a'.repeat(64);
const main = (overrides: ContainerInput = {}): ContainerInput => ({
  name: 'main',
  image: 'registry.example.com/team/app:1.0',
  ...overrides,
});
const withContainer = (overrides: ContainerInput) => ({ containers: [main(overrides)] });
const many = <T>(count: number, make: (index: number) => T): T[] => Array.from({ length: count }, (_, i) => make(i));

/** [description, overrides of a valid input, the field path the message must start with] */
export const INVALID_POD_INPUTS: [string, Input, string][] = [
  // names
  ['an empty pod name', { name: '' }, 'name'],
  ['an upper-case pod name', { name: 'Web' }, 'name'],
  ['a pod name with an underscore', { name: 'web_1' }, 'name'],
  ['a pod name starting with a dash', { name: '-web' }, 'name'],
  ['a pod name ending with a dash', { name: 'web-' }, 'name'],
  ['a pod name with a dot', { name: 'web.1' }, 'name'],
  ['a pod name over 63 characters', { name: 'a'.repeat(64) }, 'name'],
  ['a pod name with a space', { name: 'my pod' }, 'name'],
  ['an upper-case container name', withContainer({ name: 'Main' }), 'containers[0].name'],
  ['an empty container name', withContainer({ name: '' }), 'containers[0].name'],
  ['two containers with one name', { containers: [main(), main({ image: 'busybox' })] }, 'containers[1].name'],
  // labels
  ['a label key with a space', { labels: [{ key: 'my app', value: 'x' }] }, 'labels[0].key'],
  ['an empty label key', { labels: [{ key: '', value: 'x' }] }, 'labels[0].key'],
  ['a label name over 63 characters', { labels: [{ key: 'k'.repeat(64), value: 'x' }] }, 'labels[0].key'],
  ['an upper-case label key prefix', { labels: [{ key: 'Example.com/app', value: 'x' }] }, 'labels[0].key'],
  // nodeSelector (the same label syntax)
  ['a node selector key with a space', { nodeSelector: [{ key: 'my pool', value: 'x' }] }, 'nodeSelector[0].key'],
  [
    'a duplicated node selector key',
    {
      nodeSelector: [
        { key: 'pool', value: 'a' },
        { key: 'pool', value: 'b' },
      ],
    },
    'nodeSelector[1].key',
  ],
  ['a label key with an empty name', { labels: [{ key: 'example.com/', value: 'x' }] }, 'labels[0].key'],
  ['a label key with two slashes', { labels: [{ key: 'a/b/c', value: 'x' }] }, 'labels[0].key'],
  ['a label value over 63 characters', { labels: [{ key: 'app', value: 'v'.repeat(64) }] }, 'labels[0].value'],
  ['a label value with a slash', { labels: [{ key: 'app', value: 'a/b' }] }, 'labels[0].value'],
  ['a label value ending with a dash', { labels: [{ key: 'app', value: 'web-' }] }, 'labels[0].value'],
  [
    'a duplicate label key',
    {
      labels: [
        { key: 'app', value: 'a' },
        { key: 'app', value: 'b' },
      ],
    },
    'labels[1].key',
  ],
  ['65 labels', { labels: many(65, (i) => ({ key: `k${i}`, value: 'v' })) }, 'labels'],
  // images
  ['an empty image', withContainer({ image: '' }), 'containers[0].image'],
  ['an image with a space', withContainer({ image: 'nginx latest' }), 'containers[0].image'],
  ['an upper-case repository', withContainer({ image: 'registry.example.com/Team/app:1' }), 'containers[0].image'],
  ['an upper-case single-name image', withContainer({ image: 'Nginx' }), 'containers[0].image'],
  ['a digest too short', withContainer({ image: 'nginx@sha256:abc' }), 'containers[0].image'],
  ['an upper-case digest', withContainer({ image: `nginx@sha256:${DIGEST.toUpperCase()}` }), 'containers[0].image'],
  ['a digest of another algorithm', withContainer({ image: `nginx@md5:${DIGEST}` }), 'containers[0].image'],
  ['an empty tag', withContainer({ image: 'nginx:' }), 'containers[0].image'],
  ['an image URL with a scheme', withContainer({ image: 'https://registry.example.com/app' }), 'containers[0].image'],
  ['a registry port out of range', withContainer({ image: 'registry.example.com:70000/app' }), 'containers[0].image'],
  ['an image reference over 512 characters', withContainer({ image: `a:${'1'.repeat(600)}` }), 'containers[0].image'],
  [
    'a bad image in the second container',
    { containers: [main(), main({ name: 'side', image: 'bad image' })] },
    'containers[1].image',
  ],
  // command, args, env
  ['257 command entries', withContainer({ command: many(257, () => 'x') }), 'containers[0].command'],
  ['an argument over 4096 characters', withContainer({ args: ['a'.repeat(4097)] }), 'containers[0].args[0]'],
  ['an argument with NUL', withContainer({ args: ['ok', 'a\u0000b'] }), 'containers[0].args[1]'],
  [
    'command and args over 64 KiB together',
    withContainer({ command: many(10, () => 'c'.repeat(4000)), args: many(10, () => 'a'.repeat(4000)) }),
    'containers[0].args',
  ],
  [
    'an env name starting with a digit',
    withContainer({ env: [{ name: '1X', value: 'v' }] }),
    'containers[0].env[0].name',
  ],
  ['an env name with a dash', withContainer({ env: [{ name: 'MY-VAR', value: 'v' }] }), 'containers[0].env[0].name'],
  ['an empty env name', withContainer({ env: [{ name: '', value: 'v' }] }), 'containers[0].env[0].name'],
  [
    'a duplicate env name',
    withContainer({
      env: [
        { name: 'A', value: '1' },
        { name: 'A', value: '2', secret: true },
      ],
    }),
    'containers[0].env[1].name',
  ],
  [
    'an env value over 32 KiB',
    withContainer({ env: [{ name: 'BIG', value: 'v'.repeat(32_769) }] }),
    'containers[0].env[0].value',
  ],
  [
    'a secret env value with NUL',
    withContainer({ env: [{ name: 'S', value: 'a\u0000', secret: true }] }),
    'containers[0].env[0].value',
  ],
  ['257 env entries', withContainer({ env: many(257, (i) => ({ name: `V${i}`, value: '' })) }), 'containers[0].env'],
  // workingDir, user
  ['a relative workingDir', withContainer({ workingDir: 'app' }), 'containers[0].workingDir'],
  ['an empty workingDir', withContainer({ workingDir: '' }), 'containers[0].workingDir'],
  [
    'a workingDir over 4096 characters',
    withContainer({ workingDir: `/${'d'.repeat(4096)}` }),
    'containers[0].workingDir',
  ],
  ['a user with a space', withContainer({ user: 'root user' }), 'containers[0].user'],
  ['a user with three parts', withContainer({ user: '1:2:3' }), 'containers[0].user'],
  ['a uid over 4294967294', withContainer({ user: '4294967295' }), 'containers[0].user'],
  ['an empty user', withContainer({ user: '' }), 'containers[0].user'],
  // resources
  ['0 vcpus', { vcpus: 0 }, 'vcpus'],
  ['65 vcpus', { vcpus: 65 }, 'vcpus'],
  ['negative vcpus', { vcpus: -1 }, 'vcpus'],
  ['63 MiB of memory', { memoryMiB: 63 }, 'memoryMiB'],
  ['262145 MiB of memory', { memoryMiB: 262_145 }, 'memoryMiB'],
  ['no containers', { containers: [] }, 'containers'],
  ['17 containers', { containers: many(17, (i) => main({ name: `c${i}` })) }, 'containers'],
  ['a CPU limit above vcpus', { vcpus: 2, ...withContainer({ cpuLimit: 2.5 }) }, 'containers[0].cpuLimit'],
  ['a zero CPU limit', withContainer({ cpuLimit: 0 }), 'containers[0].cpuLimit'],
  ['a negative CPU limit', withContainer({ cpuLimit: -1 }), 'containers[0].cpuLimit'],
  ['a CPU limit under one millicore', withContainer({ cpuLimit: 0.0004 }), 'containers[0].cpuLimit'],
  [
    'a container memory limit above the VM',
    { memoryMiB: 256, ...withContainer({ memoryLimitMiB: 257 }) },
    'containers[0].memoryLimitMiB',
  ],
  ['a container memory limit of 0', withContainer({ memoryLimitMiB: 0 }), 'containers[0].memoryLimitMiB'],
  [
    'container memory limits that do not fit together',
    {
      memoryMiB: 256,
      containers: [main({ memoryLimitMiB: 200 }), main({ name: 'side', image: 'busybox', memoryLimitMiB: 100 })],
    },
    'containers',
  ],
];
