import type { MatrixContext, MatrixEntries } from '../role-matrix';
import { insertNode } from '../stream-fixtures';

const withNode = async ({ api }: MatrixContext, operation: string) => {
  const node = await insertNode(api);
  return { query: `mutation { ${operation}(id: "${node.id}") { id } }` };
};

/** Root operations of the node module and who may call them: the operator only. */
export const nodeMatrix: MatrixEntries = {
  'Query.nodes': {
    allowed: ['OPERATOR'],
    call: async () => ({ query: '{ nodes { totalCount } }' }),
  },
  'Query.node': {
    allowed: ['OPERATOR'],
    call: async ({ api }) => ({ query: `{ node(id: "${(await insertNode(api)).id}") { id name } }` }),
  },
  'Mutation.createNodeJoinToken': {
    allowed: ['OPERATOR'],
    call: async () => ({ query: 'mutation { createNodeJoinToken(input: { expiresInMinutes: 5 }) { token } }' }),
  },
  'Mutation.cordonNode': { allowed: ['OPERATOR'], call: (context) => withNode(context, 'cordonNode') },
  'Mutation.uncordonNode': { allowed: ['OPERATOR'], call: (context) => withNode(context, 'uncordonNode') },
  'Mutation.drainNode': { allowed: ['OPERATOR'], call: (context) => withNode(context, 'drainNode') },
};
