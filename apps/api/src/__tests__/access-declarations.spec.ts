import 'reflect-metadata';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { RESOLVER_NAME_METADATA, RESOLVER_TYPE_METADATA } from '@nestjs/graphql';
import { ApiTokenResolver } from '../api-token/api-token.resolver';
import type { AccessDeclaration } from '../common/auth/access.decorator';
import { ACCESS_METADATA } from '../common/auth/access.decorator';
import { NetworkPolicyCountersResolver } from '../network-policy/network-policy-counters.resolver';
import { NetworkPolicyResolver } from '../network-policy/network-policy.resolver';
import { NodeResolver } from '../node/node.resolver';
import { PodLogResolver } from '../pod-log/pod-log.resolver';
import { EventResolver } from '../pod/event.resolver';
import { PodResolver } from '../pod/pod.resolver';
import { RegistryCredentialResolver } from '../registry-credential/registry-credential.resolver';
import { TenantResolver } from '../tenant/tenant.resolver';
import { ViewerResolver } from '../viewer/viewer.resolver';

/** Every resolver class of the app. A resolver file not listed here fails the test below. */
const RESOLVERS: Record<string, new (...args: never[]) => object> = {
  'api-token/api-token.resolver.ts': ApiTokenResolver,
  'network-policy/network-policy-counters.resolver.ts': NetworkPolicyCountersResolver,
  'network-policy/network-policy.resolver.ts': NetworkPolicyResolver,
  'node/node.resolver.ts': NodeResolver,
  'pod-log/pod-log.resolver.ts': PodLogResolver,
  'pod/event.resolver.ts': EventResolver,
  'pod/pod.resolver.ts': PodResolver,
  'registry-credential/registry-credential.resolver.ts': RegistryCredentialResolver,
  'tenant/tenant.resolver.ts': TenantResolver,
  'viewer/viewer.resolver.ts': ViewerResolver,
};

const ROOT_TYPES = new Set(['Query', 'Mutation', 'Subscription']);
const SRC = join(__dirname, '..');

interface RootOperation {
  operation: string;
  handler: string;
  declaration: AccessDeclaration | undefined;
}

function rootOperations(): RootOperation[] {
  return Object.values(RESOLVERS).flatMap((resolver) =>
    Object.getOwnPropertyNames(resolver.prototype).flatMap((method) => {
      const handler = (resolver.prototype as Record<string, unknown>)[method];
      if (method === 'constructor' || typeof handler !== 'function') return [];
      const type: unknown = Reflect.getMetadata(RESOLVER_TYPE_METADATA, handler);
      if (typeof type !== 'string' || !ROOT_TYPES.has(type)) return [];
      const name: unknown = Reflect.getMetadata(RESOLVER_NAME_METADATA, handler);
      return [
        {
          operation: `${type}.${typeof name === 'string' ? name : method}`,
          handler: `${resolver.name}.${method}`,
          declaration: Reflect.getMetadata(ACCESS_METADATA, handler) as AccessDeclaration | undefined,
        },
      ];
    }),
  );
}

function describeDeclaration(declaration: AccessDeclaration | undefined): string {
  if (declaration === undefined) return 'MISSING';
  return declaration.kind === 'tenant' ? `tenant >= ${declaration.minRole}` : declaration.kind;
}

function resolverFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === '__tests__' ? [] : resolverFiles(path);
    return entry.name.endsWith('.resolver.ts') ? [relative(SRC, path)] : [];
  });
}

describe('access declarations', () => {
  it('knows every resolver file of the app', () => {
    expect(resolverFiles(SRC).sort()).toEqual(Object.keys(RESOLVERS).sort());
  });

  it('finds the root operations through the GraphQL metadata', () => {
    expect(rootOperations().length).toBeGreaterThanOrEqual(14);
  });

  it('declares who may call every root operation', () => {
    const missing = rootOperations().filter((op) => op.declaration === undefined);
    expect(missing.map((op) => op.handler)).toEqual([]);
  });

  it('declares exactly this (a change here is a change of who may do what: review it)', () => {
    const table = Object.fromEntries(
      rootOperations()
        .map((op) => [op.operation, describeDeclaration(op.declaration)] as const)
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    expect(table).toMatchInlineSnapshot(`
     {
       "Mutation.cordonNode": "operator",
       "Mutation.createApiToken": "tenant >= ADMIN",
       "Mutation.createNetworkPolicy": "tenant >= ADMIN",
       "Mutation.createNodeJoinToken": "operator",
       "Mutation.createPod": "tenant >= MEMBER",
       "Mutation.createRegistryCredential": "tenant >= ADMIN",
       "Mutation.createTenant": "operator",
       "Mutation.deleteNetworkPolicy": "tenant >= ADMIN",
       "Mutation.deletePod": "tenant >= MEMBER",
       "Mutation.deleteRegistryCredential": "tenant >= ADMIN",
       "Mutation.drainNode": "operator",
       "Mutation.restartPod": "tenant >= MEMBER",
       "Mutation.revokeApiToken": "tenant >= ADMIN",
       "Mutation.startPod": "tenant >= MEMBER",
       "Mutation.stopPod": "tenant >= MEMBER",
       "Mutation.suspendTenant": "operator",
       "Mutation.uncordonNode": "operator",
       "Mutation.unsuspendTenant": "operator",
       "Mutation.updateNetworkPolicy": "tenant >= ADMIN",
       "Mutation.updateTenantQuota": "operator",
       "Query.apiTokens": "tenant >= ADMIN",
       "Query.events": "tenant >= VIEWER",
       "Query.networkPolicies": "tenant >= VIEWER",
       "Query.networkPolicy": "tenant >= VIEWER",
       "Query.node": "operator",
       "Query.nodes": "operator",
       "Query.pod": "tenant >= VIEWER",
       "Query.podLogs": "tenant >= VIEWER",
       "Query.pods": "tenant >= VIEWER",
       "Query.quota": "tenant >= VIEWER",
       "Query.registryCredentials": "tenant >= MEMBER",
       "Query.tenant": "tenant >= VIEWER",
       "Query.tenants": "operator",
       "Query.viewer": "authenticated",
       "Subscription.podEvents": "tenant >= VIEWER",
       "Subscription.podLogs": "tenant >= VIEWER",
     }
    `);
  });

  it('declares no root operation public', () => {
    expect(rootOperations().filter((op) => op.declaration?.kind === 'public')).toEqual([]);
  });
});
