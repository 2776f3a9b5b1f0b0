import type { MatrixContext, MatrixEntries } from '../role-matrix';
import { TENANT_ROLES_FROM } from '../role-matrix';
import { dataOf, uniqueSlug } from '../test-api';

const CREATE = 'mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id } }';

/** A fresh policy of the home tenant, created by its owner. */
async function homePolicy({ api, home }: MatrixContext): Promise<string> {
  const { createNetworkPolicy } = dataOf(
    await api.gql(CREATE, { input: { name: uniqueSlug('np'), podSelector: {} } }, home.ownerToken),
  );
  return createNetworkPolicy.id as string;
}

/** Root operations of the network-policy module and who may call them: reads VIEWER+, writes ADMIN+. */
export const networkPolicyMatrix: MatrixEntries = {
  'Query.networkPolicies': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async () => ({ query: '{ networkPolicies { totalCount } }' }),
  },
  'Query.networkPolicy': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async (context) => ({
      query: 'query ($id: ID!) { networkPolicy(id: $id) { id } }',
      variables: { id: await homePolicy(context) },
    }),
  },
  'Mutation.createNetworkPolicy': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async () => ({
      query: CREATE,
      variables: { input: { name: uniqueSlug('np'), podSelector: {}, ingress: [{}] } },
    }),
  },
  'Mutation.updateNetworkPolicy': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async (context) => ({
      query:
        'mutation ($id: ID!, $input: UpdateNetworkPolicyInput!) { updateNetworkPolicy(id: $id, input: $input) { id } }',
      variables: { id: await homePolicy(context), input: { name: uniqueSlug('np'), podSelector: {} } },
    }),
  },
  'Mutation.deleteNetworkPolicy': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async (context) => ({
      query: 'mutation ($id: ID!) { deleteNetworkPolicy(id: $id) { id } }',
      variables: { id: await homePolicy(context) },
    }),
  },
};
