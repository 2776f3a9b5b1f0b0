import { Args, Context, ID, Mutation, Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection } from '../common/pagination/connection';
import { ContainerLoader } from './container.loader';
import { Container, Pod, toContainer } from './dtos/pod.dto';
import { CreatePodInput, PodsArgs } from './dtos/pod.inputs';
import { PodLifecycleService } from './pod-lifecycle.service';
import { PodService } from './pod.service';

const PodConnection = Connection(Pod, 'Pod');

@Resolver(() => Pod)
export class PodResolver {
  constructor(
    private readonly podService: PodService,
    private readonly lifecycle: PodLifecycleService,
    private readonly containerLoader: ContainerLoader,
  ) {}

  @TenantRole('VIEWER')
  @Query(() => PodConnection, { description: "The tenant's pods, oldest first, optionally filtered by labels." })
  pods(@CurrentTenant() caller: TenantPrincipal, @Args() args: PodsArgs) {
    return this.podService.list(caller.tenantId, args);
  }

  @TenantRole('VIEWER')
  @Query(() => Pod)
  pod(@CurrentTenant() caller: TenantPrincipal, @Args('id', { type: () => ID }) id: string): Promise<Pod> {
    return this.podService.get(caller.tenantId, assertId(id));
  }

  @TenantRole('MEMBER')
  @Mutation(() => Pod, {
    description: 'Creates a pod (PENDING) within the tenant quota, with an address of its subnet.',
  })
  createPod(@CurrentTenant() caller: TenantPrincipal, @Args('input') input: CreatePodInput): Promise<Pod> {
    return this.podService.create(caller.tenantId, input);
  }

  @TenantRole('MEMBER')
  @Mutation(() => Pod, { description: 'Stops the pod; it keeps its address and quota. No-op when already stopped.' })
  stopPod(@CurrentTenant() caller: TenantPrincipal, @Args('id', { type: () => ID }) id: string): Promise<Pod> {
    return this.lifecycle.stop(caller.tenantId, assertId(id));
  }

  @TenantRole('MEMBER')
  @Mutation(() => Pod, { description: 'Places a STOPPED, SUCCEEDED or FAILED pod again. No-op when it runs.' })
  startPod(@CurrentTenant() caller: TenantPrincipal, @Args('id', { type: () => ID }) id: string): Promise<Pod> {
    return this.lifecycle.start(caller.tenantId, assertId(id));
  }

  @TenantRole('MEMBER')
  @Mutation(() => Pod, { description: 'Restarts the containers of a RUNNING pod in its VM.' })
  restartPod(@CurrentTenant() caller: TenantPrincipal, @Args('id', { type: () => ID }) id: string): Promise<Pod> {
    return this.lifecycle.restart(caller.tenantId, assertId(id));
  }

  @TenantRole('MEMBER')
  @Mutation(() => Pod, {
    description:
      'Deletes the pod and returns it as of the deletion: DELETING while its VM is destroyed, otherwise removed ' +
      'at once (its address and quota released).',
  })
  deletePod(@CurrentTenant() caller: TenantPrincipal, @Args('id', { type: () => ID }) id: string): Promise<Pod> {
    return this.lifecycle.delete(caller.tenantId, assertId(id));
  }

  @ResolveField(() => [Container])
  async containers(@Parent() pod: Pod, @Context() context: object): Promise<Container[]> {
    const rows =
      pod.containerRows ??
      (await this.containerLoader.forRequest(context).load({ tenantId: pod.tenantId, podId: pod.id }));
    return rows.map(toContainer);
  }
}
