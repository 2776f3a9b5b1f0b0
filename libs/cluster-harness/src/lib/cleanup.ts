// Undo steps of a benchmark or test run: everything started is registered here and undone in reverse order,
// exactly once — on success, on failure and on Ctrl-C.

interface Step {
  name: string;
  run: () => Promise<void>;
}

export class Cleanup {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly log: (message: string) => void) {}

  /** True once the clean-up has begun: loops should stop, and shutdown chatter need not be echoed. */
  get started(): boolean {
    return this.running !== undefined;
  }

  /** Registers an undo step; returns a function that runs it now (and takes it off the list). */
  add(name: string, run: () => Promise<void>): () => Promise<void> {
    const step = { name, run };
    this.steps.push(step);
    return async () => {
      const at = this.steps.indexOf(step);
      if (at < 0) return;
      this.steps.splice(at, 1);
      await this.runStep(step);
    };
  }

  /** Runs every step left, newest first; a failing step is logged and the others still run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.splice(0).reverse()) await this.runStep(step);
    })();
    return this.running;
  }

  /**
   * On SIGINT, SIGTERM or SIGHUP: `beforeSteps`, the clean-up, then exit 130. `lastResort` runs (synchronously) on
   * any exit, for what must not outlive the process even when the clean-up was skipped.
   */
  onSignals(options: { beforeSteps?: () => void; lastResort?: () => void } = {}): void {
    if (options.lastResort) process.on('exit', options.lastResort);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        this.log(`${signal}: cleaning up`);
        options.beforeSteps?.();
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  private async runStep(step: Step): Promise<void> {
    try {
      await step.run();
    } catch (error) {
      this.log(`clean-up "${step.name}" failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
