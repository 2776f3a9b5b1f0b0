// A separate host process for restart tests (run with `node -r <tsRegisterPath()> host-process.ts OPTIONS SPEC`):
// opens a manager, creates the sandbox and prints one JSON line per thing it sees, until it is killed.
import { SandboxManager, type SandboxManagerOptions, type SandboxSpec } from '../../../index';

async function main(): Promise<void> {
  const [options, spec] = process.argv.slice(2).map((arg) => JSON.parse(arg)) as [SandboxManagerOptions, SandboxSpec];
  const manager = await SandboxManager.open(options);
  const print = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);
  manager.on('sandbox', (sandbox) => {
    sandbox.on('output', (chunk) => print({ type: 'output', seq: chunk.seq, data: chunk.data.toString('utf8') }));
    sandbox.on('gap', (gap) => print({ type: 'gap', ...gap }));
  });
  const sandbox = await manager.create(spec);
  print({ type: 'ready', pid: sandbox.pid });
}

main().catch((error: unknown) => {
  process.stdout.write(`${JSON.stringify({ type: 'error', message: String(error) })}\n`);
  process.exit(1);
});
