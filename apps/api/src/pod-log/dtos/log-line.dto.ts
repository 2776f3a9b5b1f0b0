import { ArgsType, Field, ID, Int, ObjectType, registerEnumType } from '@nestjs/graphql';
import type { PodLogRecord } from '@caas/log-stream-contract';
import { POD_LOG_LIMITS } from '../utils/pod-log-limits';

export enum LogStream {
  STDOUT = 'STDOUT',
  STDERR = 'STDERR',
}

registerEnumType(LogStream, { name: 'LogStream', description: "Which of the container's outputs a line came from." });

@ObjectType({ description: 'One line a container wrote.' })
export class LogLine {
  @Field(() => String, {
    description:
      "Position in the log stream of the node that wrote the line (the Redis stream id, `<ms>-<n>`): increasing and unique within that node's stream; a pod that moved between nodes has one stream per node.",
  })
  seq!: string;
  @Field(() => Date, { description: 'When the line was captured.' }) timestamp!: Date;
  @Field(() => String) container!: string;
  @Field(() => LogStream) stream!: LogStream;
  @Field(() => String, { description: 'Without its newline; at most 16 KiB (longer output is split).' })
  line!: string;
}

export function toLogLine(record: PodLogRecord): LogLine {
  return {
    seq: record.id,
    timestamp: new Date(record.timeMs),
    container: record.container,
    stream: record.stream === 'stdout' ? LogStream.STDOUT : LogStream.STDERR,
    line: record.line,
  };
}

@ArgsType()
export class PodLogsArgs {
  @Field(() => ID) podId!: string;

  @Field(() => String, { nullable: true, description: "Only this container's lines." })
  container?: string | null;

  @Field(() => Int, {
    nullable: true,
    defaultValue: POD_LOG_LIMITS.defaultTail,
    description: `The last lines to return, ${POD_LOG_LIMITS.minTail} to ${POD_LOG_LIMITS.maxTail}.`,
  })
  tail?: number | null;

  @Field(() => Date, { nullable: true, description: 'Only lines captured at or after this time.' })
  since?: Date | null;
}

@ArgsType()
export class FollowPodLogsArgs {
  @Field(() => ID) podId!: string;

  @Field(() => String, { nullable: true, description: "Only this container's lines." })
  container?: string | null;
}
