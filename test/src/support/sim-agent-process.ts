// A simulated agent as a separate process, so a test can `kill -9` it and start it again (run with
// `node -r <tsRegisterPath()> sim-agent-process.ts '<json options>'`). Like a real agent it keeps its identity and
// the pods it runs on disk (`stateFile`), re-adopts them after a restart, and prints one JSON line per thing that
// happens: `ready`, `killed-stale` (a pod the control plane no longer gives it), `epoch`.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { DesiredPod, NodeJoinResponse } from '@caas/queue-contracts';
import { NodeConnection } from '@caas/node-client';
import { SimulatedNode } from '@caas/node-simulator';

interface Options {
  identity: NodeJoinResponse;
  redisUrl: string;
  capacity: { vcpus: number; memoryMiB: number; pods: number };
  stateFile: string;
}

const print = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as Options;
  const adopted = existsSync(options.stateFile)
    ? (JSON.parse(readFileSync(options.stateFile, 'utf8')) as { epoch: number; pods: DesiredPod[] })
    : { epoch: options.identity.epoch, pods: [] };
  const connection = new NodeConnection({ identity: options.identity, redisUrl: options.redisUrl });
  const sim = new SimulatedNode(connection, {
    nodeId: options.identity.nodeId,
    epoch: adopted.epoch,
    capacity: { ...options.capacity, diskBytes: 100 * 2 ** 30 },
    heartbeatIntervalMs: options.identity.heartbeatIntervalMs,
    resyncIntervalMs: 1_000,
    bootDelayMs: 20,
    adopted: adopted.pods,
    onKilledStale: (podId) => print({ type: 'killed-stale', podId }),
  });
  let epoch = sim.currentEpoch;
  const save = () => {
    const temp = `${options.stateFile}.tmp`;
    writeFileSync(temp, JSON.stringify({ epoch: sim.currentEpoch, pods: sim.livePods() }));
    renameSync(temp, options.stateFile);
    if (sim.currentEpoch !== epoch) {
      epoch = sim.currentEpoch;
      print({ type: 'epoch', epoch });
    }
  };
  await sim.start();
  save();
  setInterval(save, 50);
  print({ type: 'ready', adopted: adopted.pods.length, epoch: sim.currentEpoch });
}

main().catch((error: unknown) => {
  print({ type: 'error', message: String(error) });
  process.exit(1);
});
