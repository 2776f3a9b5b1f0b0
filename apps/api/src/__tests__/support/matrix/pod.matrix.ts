import { createPod, POD_FIELDS } from '../../../pod/__tests__/pod-fixtures';
import type { MatrixContext, MatrixEntries } from '../role-matrix';
import { TENANT_ROLES_FROM } from '../role-matrix';
import { uniqueSlug } from '../test-api';

/**
 * Every caller of every entry may create pods in the home tenant; the matrix runs each entry for every
 * caller, so the home tenant gets room for them once (a quota test is not this file's business).
 */
const roomy = new WeakSet<MatrixContext>();
async function podOfHome(context: MatrixContext): Promise<string> {
  if (!roomy.has(context)) {
    roomy.add(context);
    await context.api.prisma.tenant.update({
      where: { id: context.home.tenantId },
      data: { maxPods: 1000, maxVcpus: 1000, maxMemoryMiB: 1_000_000 },
    });
  }
  return (await createPod(context.api, context.home.ownerToken, { memoryMiB: 64 })).id as string;
}

const byId = (mutation: string) => async (context: MatrixContext) => ({
  query: `mutation ($id: ID!) { ${mutation}(id: $id) { id phase } }`,
  variables: { id: await podOfHome(context) },
});

/** Root operations of the pod module and who may call them. */
export const podMatrix: MatrixEntries = {
  'Query.pods': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async () => ({ query: '{ pods(first: 5) { totalCount edges { node { id containers { name } } } } }' }),
  },
  'Query.pod': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async (context) => ({
      query: `query ($id: ID!) { pod(id: $id) { ${POD_FIELDS} } }`,
      variables: { id: await podOfHome(context) },
    }),
  },
  'Query.events': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async () => ({ query: '{ events(first: 5) { totalCount edges { node { id reason } } } }' }),
  },
  'Mutation.createPod': {
    allowed: TENANT_ROLES_FROM('MEMBER'),
    call: async (context) => {
      await podOfHome(context);
      return {
        query: 'mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }',
        variables: {
          input: { name: uniqueSlug('m'), vcpus: 1, memoryMiB: 64, containers: [{ name: 'c', image: 'busybox' }] },
        },
      };
    },
  },
  'Mutation.stopPod': { allowed: TENANT_ROLES_FROM('MEMBER'), call: byId('stopPod') },
  'Mutation.startPod': { allowed: TENANT_ROLES_FROM('MEMBER'), call: byId('startPod') },
  'Mutation.restartPod': { allowed: TENANT_ROLES_FROM('MEMBER'), call: byId('restartPod') },
  'Mutation.deletePod': { allowed: TENANT_ROLES_FROM('MEMBER'), call: byId('deletePod') },
};
