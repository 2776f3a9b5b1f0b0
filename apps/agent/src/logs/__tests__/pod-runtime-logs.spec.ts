// The pod runtime's wiring of log shipping: a shipper per pod VM, configured with the desired pod, closed with the VM.
import type { PodLogEntry } from '@caas/log-stream-contract';
import { PodRuntime } from '../../runtime/pod-runtime';
import { sandboxIdOf } from '../../runtime/pod-spec';
import {
  FakeHost,
  FakeSandbox,
  FakeTransport,
  desiredPod,
  desiredSet,
  fakeRuntimeOptions,
} from '../../runtime/__tests__/fakes';
import { LogShipping, REDACTED } from '../log-shipper';

const appended: Array<{ podId: string; entries: PodLogEntry[] }> = [];
const appender = {
  appendLogs: (podId: string, entries: PodLogEntry[]) => {
    appended.push({ podId, entries });
    return Promise.resolve();
  },
};
const lines = () => appended.flatMap((a) => a.entries.map((e) => `${a.podId.slice(0, 4)} ${e.container} ${e.line}`));

function runtime(host: FakeHost, transport: FakeTransport) {
  return new PodRuntime({
    ...fakeRuntimeOptions(transport, host),
    leaseGraceMs: 120_000,
    selfFence: false,
    logs: new LogShipping({ appender, limits: { flushIntervalMs: 1 } }),
  });
}

const pod = desiredPod();
pod.containers = pod.containers.map((c) => ({ ...c, env: [{ name: 'TOKEN', value: 'tok-123', secret: true }] }));

beforeEach(() => (appended.length = 0));

it('ships a created pod’s output, redacted, and stops with the VM', async () => {
  const host = new FakeHost();
  const transport = new FakeTransport();
  transport.set = desiredSet([pod]);
  const rt = runtime(host, transport);
  await rt.start();
  await rt.settled();
  const vm = host.created[0];
  expect(vm).toBeDefined();
  vm?.emit('output', { seq: 1, source: 'main', stream: 'stdout', data: Buffer.from('token is tok-123\n') });
  await new Promise((r) => setTimeout(r, 20));
  expect(lines()).toEqual([`3333 main token is ${REDACTED}`]);
  transport.set = desiredSet([{ ...pod, desiredState: 'DELETED', generation: 2 }], { version: '2' });
  await rt.resync();
  expect(vm?.listenerCount('output')).toBe(0);
  await rt.destroyAll();
});

it('holds an adopted VM’s output until the desired set names its pod', async () => {
  const host = new FakeHost();
  const transport = new FakeTransport();
  const adopted = new FakeSandbox({
    id: sandboxIdOf(pod.podId, 1),
    vcpus: 1,
    memoryMiB: 256,
    containers: [{ name: 'main' }],
  } as unknown as ConstructorParameters<typeof FakeSandbox>[0]);
  host.adoptable = [adopted];
  const rt = runtime(host, transport);
  await rt.start();
  adopted.emit('output', { seq: 1, source: 'main', stream: 'stdout', data: Buffer.from('early tok-123\n') });
  await new Promise((r) => setTimeout(r, 20));
  expect(appended).toEqual([]);
  transport.set = desiredSet([pod]);
  await rt.resync();
  await new Promise((r) => setTimeout(r, 20));
  expect(lines()).toEqual([`3333 main early ${REDACTED}`]);
  await rt.destroyAll();
});

it('ships what a VM prints before create or adopt resolve (containers start, buffered output is replayed)', async () => {
  const host = new FakeHost();
  const transport = new FakeTransport();
  transport.set = desiredSet([pod]);
  host.onLaunched = (vm) =>
    vm.emit('output', { seq: 1, source: 'main', stream: 'stdout', data: Buffer.from('first words\n') });
  const adopted = new FakeSandbox({
    id: sandboxIdOf(pod.podId, 1),
    vcpus: 1,
    memoryMiB: 256,
    containers: [{ name: 'main' }],
  } as unknown as ConstructorParameters<typeof FakeSandbox>[0]);
  host.adoptable = [adopted];
  const rt = runtime(host, transport);
  await rt.start();
  await rt.settled();
  await new Promise((r) => setTimeout(r, 20));
  // The adopted VM's replayed line, shipped once its pod is known.
  expect(lines()).toEqual(['3333 main first words']);
  await rt.destroyAll();
});
