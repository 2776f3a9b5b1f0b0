import { hashToken } from '@caas/security';
import type { MatrixEntries } from '../role-matrix';
import { CALLERS, TENANT_ROLES_FROM } from '../role-matrix';
import { dataOf, uniqueSlug } from '../test-api';

/** The foundation's operations: viewer, tenants, API tokens, registry credentials. */
export const foundationMatrix: MatrixEntries = {
  'Query.viewer': {
    allowed: [...CALLERS],
    call: async () => ({ query: '{ viewer { kind } }' }),
  },
  'Query.tenant': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async () => ({ query: '{ tenant { id } }' }),
  },
  'Query.quota': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async () => ({ query: '{ quota { maxPods } }' }),
  },
  'Query.apiTokens': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async () => ({ query: '{ apiTokens { totalCount } }' }),
  },
  'Query.registryCredentials': {
    allowed: TENANT_ROLES_FROM('MEMBER'),
    call: async () => ({ query: '{ registryCredentials { totalCount } }' }),
  },
  'Query.tenants': {
    allowed: ['OPERATOR'],
    call: async () => ({ query: '{ tenants { totalCount } }' }),
  },
  'Mutation.createApiToken': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async () => ({
      query: 'mutation { createApiToken(input: { name: "matrix", role: VIEWER }) { token } }',
    }),
  },
  'Mutation.revokeApiToken': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async ({ api, home }) => {
      const victim = await api.tokenWithRole(home.ownerToken, 'VIEWER');
      return {
        query: `mutation { revokeApiToken(id: "${(await api.prisma.apiToken.findUniqueOrThrow({ where: { tokenHash: hashToken(victim) } })).id}") { id } }`,
      };
    },
  },
  'Mutation.createRegistryCredential': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async () => ({
      query: 'mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { id } }',
      variables: { input: { registry: `${uniqueSlug('r')}.example`, username: 'u', secret: 's' } },
    }),
  },
  'Mutation.deleteRegistryCredential': {
    allowed: TENANT_ROLES_FROM('ADMIN'),
    call: async ({ api, home }) => {
      const { createRegistryCredential } = dataOf(
        await api.gql(
          'mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { id } }',
          { input: { registry: `${uniqueSlug('r')}.example`, username: 'u', secret: 's' } },
          home.ownerToken,
        ),
      );
      return { query: `mutation { deleteRegistryCredential(id: "${createRegistryCredential.id}") { id } }` };
    },
  },
  'Mutation.createTenant': {
    allowed: ['OPERATOR'],
    call: async () => {
      const slug = uniqueSlug();
      return {
        query: `mutation { createTenant(input: { slug: "${slug}", displayName: "m", ownerEmail: "o@${slug}.example" }) { ownerToken } }`,
      };
    },
  },
  'Mutation.updateTenantQuota': {
    allowed: ['OPERATOR'],
    call: async ({ target }) => ({
      query: `mutation { updateTenantQuota(tenantId: "${target.tenantId}", input: { maxPods: 7 }) { id } }`,
    }),
  },
  'Mutation.suspendTenant': {
    allowed: ['OPERATOR'],
    call: async ({ target }) => ({
      query: `mutation { suspendTenant(tenantId: "${target.tenantId}") { id } }`,
    }),
  },
  'Mutation.unsuspendTenant': {
    allowed: ['OPERATOR'],
    call: async ({ target }) => ({
      query: `mutation { unsuspendTenant(tenantId: "${target.tenantId}") { id } }`,
    }),
  },
};
