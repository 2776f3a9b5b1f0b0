import { Module } from '@nestjs/common';
import { PodEventStreamService } from './pod-event-stream.service';
import { PodLogResolver } from './pod-log.resolver';
import { PodLogService } from './pod-log.service';

/** Pod output (`podLogs` query and subscription) and live pod events (`podEvents`). */
@Module({ providers: [PodLogResolver, PodLogService, PodEventStreamService] })
export class PodLogModule {}
