import type { JobsOptions } from 'bullmq';
import type { Job } from './jobs';
import { jobIdFor, queueFor } from './jobs';
import { QueueName } from './queue-names';

/**
 * What every job of a queue is added with. Both retention settings are bounded by count and age (BullMQ keeps
 * finished jobs forever otherwise); once a finished job is removed, the same job id can be added again, which
 * is why handlers must be idempotent on (aggregate id, generation) and not rely on the job id alone.
 */
export const QUEUE_JOB_OPTIONS: Record<QueueName, Readonly<JobsOptions>> = {
  [QueueName.Placement]: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 500 },
    removeOnComplete: { count: 10_000, age: 60 * 60 },
    removeOnFail: { count: 10_000, age: 7 * 24 * 60 * 60 },
  },
};

/** The options to add `job` with: its queue's defaults plus the deterministic job id. */
export const jobOptionsFor = (job: Job): JobsOptions => ({
  ...QUEUE_JOB_OPTIONS[queueFor(job.name)],
  jobId: jobIdFor(job),
});
