import { Module } from '@nestjs/common';
import { ContainerLoader } from './container.loader';
import { EventResolver } from './event.resolver';
import { EventService } from './event.service';
import { PodLifecycleService } from './pod-lifecycle.service';
import { PodResolver } from './pod.resolver';
import { PodService } from './pod.service';

@Module({
  providers: [PodResolver, EventResolver, PodService, PodLifecycleService, EventService, ContainerLoader],
  exports: [PodService],
})
export class PodModule {}
