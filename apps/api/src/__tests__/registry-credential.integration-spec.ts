import { randomUUID } from 'node:crypto';
import { SecretBox } from '@caas/security';
import { registrySecretContext } from '@caas/security';
import type { CreatedTenant, Data, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;
/** Every response of this file, to prove no secret ever comes back. */
const responses: GqlResponse[] = [];
const SECRETS: string[] = [];

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const FIELDS = 'id registry username createdAt';
const CREATE = `mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { ${FIELDS} } }`;
const DELETE = `mutation ($id: ID!) { deleteRegistryCredential(id: $id) { ${FIELDS} } }`;
const LIST = `query ($first: Int, $after: String) {
  registryCredentials(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${FIELDS} } }
  }
}`;

async function gql(query: string, variables: Record<string, unknown>, token: string): Promise<GqlResponse> {
  const response = await api.gql(query, variables, token);
  responses.push(response);
  return response;
}

/** A secret that is easy to find in any text or byte dump. */
function newSecret(): string {
  const secret = `s3cr3t-${randomUUID()}`;
  SECRETS.push(secret);
  return secret;
}

const create = (token: string, input: { registry: string; username: string; secret: string }) =>
  gql(CREATE, { input }, token);

describe('createRegistryCredential', () => {
  let tenant: CreatedTenant;
  beforeAll(async () => {
    tenant = await api.createTenant();
  });

  it('stores the credential and returns it without its secret', async () => {
    const secret = newSecret();
    const response = await create(tenant.ownerToken, {
      registry: '  Registry.Example.COM:5000 ',
      username: '  robot$deploy ',
      secret,
    });
    const { createRegistryCredential } = dataOf(response);
    expect(createRegistryCredential).toEqual({
      id: expect.any(String),
      registry: 'registry.example.com:5000',
      username: 'robot$deploy',
      createdAt: expect.any(String),
    });
    expect(response.text).not.toContain(secret);
  });

  it('keeps only ciphertext at rest, sealed for this tenant and registry', async () => {
    const secret = newSecret();
    const { createRegistryCredential } = dataOf(
      await create(tenant.ownerToken, { registry: 'ghcr.io', username: 'bot', secret }),
    );
    const row = await api.prisma.registryCredential.findUniqueOrThrow({ where: { id: createRegistryCredential.id } });
    const ciphertext = Buffer.from(row.secretCiphertext);
    expect(ciphertext.includes(Buffer.from(secret, 'utf8'))).toBe(false);
    expect(ciphertext.toString('latin1')).not.toContain(secret.slice(7, 20));

    const [{ json }] = await api.prisma.$queryRaw<{ json: string }[]>`
      SELECT row_to_json(r)::text AS json FROM registry_credentials r WHERE id = ${row.id}::uuid`;
    expect(json).not.toContain(secret);
    expect(json).not.toContain(Buffer.from(secret).toString('hex'));
    expect(json).not.toContain(Buffer.from(secret).toString('base64'));

    // It is the secret, sealed with the platform key and bound to this tenant and registry.
    const box = new SecretBox(api.config.secretsKey);
    expect(box.open(row.secretCiphertext, registrySecretContext(tenant.tenantId, 'ghcr.io'))).toBe(secret);
    expect(() => box.open(row.secretCiphertext, registrySecretContext(randomUUID(), 'ghcr.io'))).toThrow();
  });

  it('refuses a second credential for the same registry with CONFLICT', async () => {
    dataOf(await create(tenant.ownerToken, { registry: 'quay.io', username: 'a', secret: newSecret() }));
    const before = await api.prisma.registryCredential.count({ where: { tenantId: tenant.tenantId } });
    const response = await create(tenant.ownerToken, { registry: 'QUAY.IO', username: 'b', secret: newSecret() });
    expectError(response, 'CONFLICT', 'REGISTRY_CREDENTIAL_EXISTS');
    expect(response.body.data).toBeNull();
    expect(await api.prisma.registryCredential.count({ where: { tenantId: tenant.tenantId } })).toBe(before);
    const row = await api.prisma.registryCredential.findFirstOrThrow({
      where: { tenantId: tenant.tenantId, registry: 'quay.io' },
    });
    expect(row.username).toBe('a');
  });

  it.each([
    ['a registry URL with a scheme', { registry: 'https://registry.example.com' }],
    ['a registry with a path', { registry: 'registry.example.com/team' }],
    ['a registry with a space', { registry: 'registry example.com' }],
    ['a registry port above 65535', { registry: 'registry.example.com:70000' }],
    ['an empty registry', { registry: '  ' }],
    ['a registry label over 63 characters', { registry: `${'a'.repeat(64)}.example.com` }],
    ['an empty username', { username: '   ' }],
    ['a username over 255 characters', { username: 'u'.repeat(256) }],
    ['a username with a control character', { username: 'bot\nadmin' }],
    ['an empty secret', { secret: '' }],
    ['a secret over 4096 characters', { secret: 'x'.repeat(4097) }],
    ['a secret with a control character', { secret: 'line1\nline2' }],
  ])('refuses %s with BAD_USER_INPUT and stores nothing', async (_label, override) => {
    const before = await api.prisma.registryCredential.count();
    const input = { registry: 'valid.example.com', username: 'bot', secret: newSecret(), ...override };
    const response = await create(tenant.ownerToken, input);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_REGISTRY_CREDENTIAL_INPUT');
    expect(response.body.data).toBeNull();
    expect(await api.prisma.registryCredential.count()).toBe(before);
  });
});

describe('registryCredentials', () => {
  it('pages through the tenant credentials, never with a secret', async () => {
    const tenant = await api.createTenant();
    const member = await api.tokenWithRole(tenant.ownerToken, 'MEMBER');
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { createRegistryCredential } = dataOf(
        await create(tenant.ownerToken, { registry: `r${i}.example.com`, username: `u${i}`, secret: newSecret() }),
      );
      created.push(createRegistryCredential.id);
    }

    const seen: string[] = [];
    let after: string | null = null;
    const shapes: [number, boolean][] = [];
    do {
      const { registryCredentials }: Data = dataOf(await gql(LIST, { first: 2, after }, member));
      expect(registryCredentials.totalCount).toBe(5);
      shapes.push([registryCredentials.edges.length, registryCredentials.pageInfo.hasNextPage]);
      for (const edge of registryCredentials.edges) {
        expect(edge.cursor).not.toContain(edge.node.id);
        expect(Object.keys(edge.node).sort()).toEqual(['createdAt', 'id', 'registry', 'username']);
        seen.push(edge.node.id);
      }
      after = registryCredentials.pageInfo.hasNextPage ? registryCredentials.pageInfo.endCursor : null;
    } while (after !== null && shapes.length < 10);
    expect(shapes).toEqual([
      [2, true],
      [2, true],
      [1, false],
    ]);
    expect(seen).toEqual(created);
  });

  it('has no field that could return the secret', async () => {
    const tenant = await api.createTenant();
    const response = await gql('{ registryCredentials { edges { node { id secret } } } }', {}, tenant.ownerToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_QUERY');
    expect(response.body.data).toBeNull();
  });

  it('refuses an invalid cursor with BAD_USER_INPUT', async () => {
    const tenant = await api.createTenant();
    expectError(await gql(LIST, { after: '!!!' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
  });
});

describe('deleteRegistryCredential', () => {
  it('deletes and returns what it was; then it is NOT_FOUND and gone from the list', async () => {
    const tenant = await api.createTenant();
    const secret = newSecret();
    const { createRegistryCredential } = dataOf(
      await create(tenant.ownerToken, { registry: 'docker.io', username: 'me', secret }),
    );
    const { id } = createRegistryCredential;

    const deleted = await gql(DELETE, { id }, tenant.ownerToken);
    expect(dataOf(deleted).deleteRegistryCredential).toEqual(createRegistryCredential);
    expect(deleted.text).not.toContain(secret);
    expect(await api.prisma.registryCredential.findUnique({ where: { id } })).toBeNull();

    expectError(await gql(DELETE, { id }, tenant.ownerToken), 'NOT_FOUND', 'REGISTRY_CREDENTIAL_NOT_FOUND');
    expect(dataOf(await gql(LIST, {}, tenant.ownerToken)).registryCredentials).toMatchObject({
      totalCount: 0,
      edges: [],
    });

    // The registry is free again.
    dataOf(await create(tenant.ownerToken, { registry: 'docker.io', username: 'me2', secret: newSecret() }));
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one', async () => {
    const tenant = await api.createTenant();
    expectError(
      await gql(DELETE, { id: randomUUID() }, tenant.ownerToken),
      'NOT_FOUND',
      'REGISTRY_CREDENTIAL_NOT_FOUND',
    );
    expectError(await gql(DELETE, { id: 'docker.io' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_ID');
  });
});

describe('write-only secrets', () => {
  it('never returned a secret in any response of this file', () => {
    expect(responses.length).toBeGreaterThan(20);
    expect(SECRETS.length).toBeGreaterThan(10);
    for (const response of responses) {
      for (const secret of SECRETS) expect(response.text).not.toContain(secret);
    }
  });
});
