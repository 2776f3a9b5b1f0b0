import { CREATE_POD, errorMessage, podInput, rowCounts } from '../pod/__tests__/pod-fixtures';
import { INVALID_POD_INPUTS } from '../pod/__tests__/pod-input-corpus';
import type { CreatedTenant, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;
let tenant: CreatedTenant;

beforeAll(async () => {
  api = await startTestApi();
  tenant = await api.createTenant();
  // Room enough that only validation can refuse.
  await api.prisma.tenant.update({
    where: { id: tenant.tenantId },
    data: { maxPods: 1000, maxVcpus: 10_000, maxMemoryMiB: 10_000_000 },
  });
});

afterAll(async () => {
  await api?.close();
});

describe('createPod validation', () => {
  it.each(INVALID_POD_INPUTS)(
    'refuses %s with BAD_USER_INPUT naming %s, and writes nothing',
    async (_label, overrides, path) => {
      const before = await rowCounts(api, tenant.tenantId);
      const response = await api.gql(CREATE_POD, { input: podInput(overrides) }, tenant.ownerToken);
      expectError(response, 'BAD_USER_INPUT', 'INVALID_POD_INPUT');
      expect(response.body.data).toBeNull();
      expect(errorMessage(response).startsWith(`${path}: `)).toBe(true);
      expect(await rowCounts(api, tenant.tenantId)).toEqual(before);
    },
  );

  it('accepts the largest valid pod', async () => {
    const pod = dataOf(
      await api.gql(
        CREATE_POD,
        {
          input: podInput({
            name: 'a'.repeat(63),
            vcpus: 64,
            memoryMiB: 262_144,
            labels: Array.from({ length: 64 }, (_, i) => ({ key: `example.com/k${i}`, value: 'v'.repeat(63) })),
            containers: Array.from({ length: 16 }, (_, i) => ({
              name: `c${i}`,
              image: `registry.example.com:5000/team/app-${i}:v1.${i}@sha256:${'e'.repeat(64)}`,
              cpuLimit: 64,
              memoryLimitMiB: 16_384,
              env: [{ name: '_X', value: 'y'.repeat(32_768) }],
            })),
          }),
        },
        tenant.ownerToken,
      ),
    ).createPod;
    expect(pod.containers).toHaveLength(16);
    expect(pod.labels).toHaveLength(64);
  });
});
