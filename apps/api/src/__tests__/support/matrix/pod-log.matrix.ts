import { randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import { PodEventBus } from '../../../common/events/pod-event-bus';
import { REDIS } from '../../../common/infra/tokens';
import type { MatrixContext, MatrixEntries } from '../role-matrix';
import { TENANT_ROLES_FROM } from '../role-matrix';
import { appendLog, insertPod } from '../stream-fixtures';
import { connectWs, graphqlWsUrl } from '../ws-client';

/** A line written by the node the pod is placed on (`insertPod` places it), where the API reads pod output. */
const appendLine = (context: MatrixContext, podId: string) =>
  appendLog(context.api.app.get<Redis>(REDIS), podId, { line: 'matrix' });

/**
 * Subscribes over graphql-ws with `token` and keeps producing (`poke`) until the first frame arrives:
 * `allowed` when it carries data, `CODE/REASON` when it is an error.
 */
async function subscriptionOutcome(
  context: MatrixContext,
  token: string,
  query: string,
  field: string,
  poke: () => Promise<unknown>,
): Promise<string> {
  const outcome = await connectWs(await graphqlWsUrl(context.api.app), { authorization: `Bearer ${token}` });
  if (!outcome.ok) return `refused at connect (${outcome.refusal})`;
  const { client } = outcome;
  try {
    const subscription = client.subscribe(query);
    const deadline = Date.now() + 5000;
    while (subscription.frames.length === 0 && Date.now() < deadline && !client.isClosed) {
      await poke();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const frame = subscription.frames[0];
    if (frame === undefined) return 'no answer';
    const error = frame.type === 'error' ? frame.payload[0] : frame.type === 'next' ? frame.payload.errors?.[0] : null;
    if (error) return `${error.extensions.code}/${error.extensions.reason}`;
    return frame.type === 'next' && frame.payload.data?.[field] ? 'allowed' : `unexpected ${JSON.stringify(frame)}`;
  } finally {
    await client.close();
  }
}

/** Root operations of the pod-log module (pod output and live pod events) and who may call them. */
export const podLogMatrix: MatrixEntries = {
  'Query.podLogs': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    call: async (context) => {
      const podId = await insertPod(context.api, context.home.tenantId);
      await appendLine(context, podId);
      return { query: `{ podLogs(podId: "${podId}", tail: 10) { seq line } }` };
    },
  },
  'Subscription.podLogs': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    run: async (context, token) => {
      const podId = await insertPod(context.api, context.home.tenantId);
      return subscriptionOutcome(
        context,
        token,
        `subscription { podLogs(podId: "${podId}") { line } }`,
        'podLogs',
        () => appendLine(context, podId),
      );
    },
  },
  'Subscription.podEvents': {
    allowed: TENANT_ROLES_FROM('VIEWER'),
    run: async (context, token) => {
      const podId = await insertPod(context.api, context.home.tenantId);
      const bus = context.api.app.get(PodEventBus);
      return subscriptionOutcome(
        context,
        token,
        `subscription { podEvents(podId: "${podId}") { id reason } }`,
        'podEvents',
        () =>
          bus.publish({
            id: String(randomInt(1, 1_000_000)),
            tenantId: context.home.tenantId,
            podId,
            type: 'NORMAL',
            reason: 'Matrix',
            message: 'role matrix',
            createdAt: new Date().toISOString(),
          }),
      );
    },
  },
};
