import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import { printSchema } from 'graphql';
import type { TestApi } from './support/test-api';
import { startTestApi } from './support/test-api';

/** The committed contract: apps/api/schema.graphql. */
const SCHEMA_FILE = join(__dirname, '..', '..', 'schema.graphql');
const UPDATE_COMMAND =
  'UPDATE_SCHEMA=1 npx jest -c apps/api/jest.config.js apps/api/src/__tests__/schema.integration-spec.ts';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

function committedSchema(): string | null {
  try {
    return readFileSync(SCHEMA_FILE, 'utf8');
  } catch {
    return null;
  }
}

it('serves exactly the committed apps/api/schema.graphql', () => {
  const printed = `${printSchema(api.app.get(GraphQLSchemaHost).schema)}\n`;
  if (process.env['UPDATE_SCHEMA'] === '1') {
    writeFileSync(SCHEMA_FILE, printed);
    return;
  }
  const committed = committedSchema();
  if (committed === null) {
    throw new Error(`apps/api/schema.graphql is missing. Generate it with:\n  ${UPDATE_COMMAND}`);
  }
  try {
    expect(printed).toBe(committed);
  } catch (error) {
    (error as Error).message =
      `The running API's schema differs from apps/api/schema.graphql (the public contract). If the change ` +
      `is intended, regenerate the file, review its diff and commit it:\n  ${UPDATE_COMMAND}\n\n${(error as Error).message}`;
    throw error;
  }
});
