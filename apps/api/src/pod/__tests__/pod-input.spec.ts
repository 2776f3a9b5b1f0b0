import type { CreatePodInput } from '../dtos/pod.inputs';
import { validateCreatePodInput } from '../pod-input';
import { PodException, PodExceptionCode } from '../pod.exception';
import { INVALID_POD_INPUTS } from './pod-input-corpus';

const valid = (overrides: Record<string, unknown> = {}) =>
  ({
    name: 'web',
    vcpus: 2,
    memoryMiB: 512,
    containers: [{ name: 'main', image: 'registry.example.com/team/app:1.0' }],
    ...overrides,
  }) as unknown as CreatePodInput;

function refusal(input: CreatePodInput): PodException {
  try {
    validateCreatePodInput(input);
  } catch (error) {
    if (error instanceof PodException) return error;
    throw error;
  }
  throw new Error('accepted');
}

describe('validateCreatePodInput', () => {
  it.each(INVALID_POD_INPUTS)('refuses %s, naming %s', (_label, overrides, path) => {
    const error = refusal(valid(overrides));
    expect(error.code).toBe(PodExceptionCode.INVALID_POD_INPUT);
    expect(error.message.startsWith(`${path}: `)).toBe(true);
  });

  it('never echoes an env value in a refusal', () => {
    const secret = 'hunter2-\u0000-secret';
    const error = refusal(
      valid({ containers: [{ name: 'a', image: 'x', env: [{ name: 'S', value: secret, secret: true }] }] }),
    );
    expect(error.message).not.toContain('hunter2');
  });

  it('normalises a full input', () => {
    const spec = validateCreatePodInput(
      valid({
        labels: [
          { key: 'app', value: 'web' },
          { key: 'example.com/tier', value: '' },
        ],
        restartPolicy: 'ON_FAILURE',
        nodeSelector: [{ key: 'pool', value: 'gpu' }],
        containers: [
          {
            name: 'main',
            image: `app@sha256:${'b'.repeat(64)}`,
            command: ['/bin/server'],
            args: ['--port', '8080'],
            env: [
              { name: 'MODE', value: 'prod' },
              { name: 'TOKEN', value: 't', secret: true },
            ],
            workingDir: '/srv',
            user: '1000:1000',
            cpuLimit: 1.2345,
            memoryLimitMiB: 256,
          },
          { name: 'side', image: 'busybox', user: 'nobody', cpuLimit: 2, memoryLimitMiB: 256 },
        ],
      }),
    );
    expect(spec).toEqual({
      name: 'web',
      labels: { app: 'web', 'example.com/tier': '' },
      vcpus: 2,
      memoryMiB: 512,
      restartPolicy: 'ON_FAILURE',
      nodeSelector: { pool: 'gpu' },
      containers: [
        {
          name: 'main',
          image: `app@sha256:${'b'.repeat(64)}`,
          command: ['/bin/server'],
          args: ['--port', '8080'],
          env: [
            { name: 'MODE', value: 'prod', secret: false },
            { name: 'TOKEN', value: 't', secret: true },
          ],
          workingDir: '/srv',
          user: '1000:1000',
          cpuLimitMillis: 1235,
          memoryLimitMiB: 256,
        },
        {
          name: 'side',
          image: 'busybox',
          command: [],
          args: [],
          env: [],
          workingDir: null,
          user: 'nobody',
          cpuLimitMillis: 2000,
          memoryLimitMiB: 256,
        },
      ],
    });
  });

  it('accepts the bounds themselves', () => {
    expect(() =>
      validateCreatePodInput(
        valid({
          name: 'a'.repeat(63),
          vcpus: 64,
          memoryMiB: 262_144,
          labels: Array.from({ length: 64 }, (_, i) => ({ key: `k${i}`, value: 'v'.repeat(63) })),
          containers: Array.from({ length: 16 }, (_, i) => ({ name: `c${i}`, image: 'busybox', cpuLimit: 64 })),
        }),
      ),
    ).not.toThrow();
    expect(() => validateCreatePodInput(valid({ vcpus: 1, memoryMiB: 64 }))).not.toThrow();
  });

  it('defaults the restart policy to ALWAYS', () => {
    expect(validateCreatePodInput(valid()).restartPolicy).toBe('ALWAYS');
    expect(validateCreatePodInput(valid({ restartPolicy: null })).restartPolicy).toBe('ALWAYS');
  });
});
