import type { NodeInfo, PodRequest, Resources } from './types';
import type { PlacementSettings } from './settings';

/**
 * What placing the pod adds to a node's `allocated*` columns: its vCPUs, its memory plus the per-VM overhead, one
 * pod. The scheduler's conditional reservation must re-check exactly this arithmetic (see `fitsOnNode`):
 *
 *   UPDATE nodes SET allocated_vcpus = allocated_vcpus + $vcpus, allocated_memory_mib = allocated_memory_mib + $mem,
 *     allocated_pods = allocated_pods + $pods
 *   WHERE id = $node AND allocated_vcpus + $vcpus <= capacity_vcpus
 *     AND allocated_memory_mib + $mem <= capacity_memory_mib AND allocated_pods + $pods <= capacity_pods
 */
export function reservationFor(
  pod: Pick<PodRequest, 'vcpus' | 'memoryMiB'>,
  settings: Pick<PlacementSettings, 'vmOverheadMiB'>,
): Resources {
  return { vcpus: pod.vcpus, memoryMiB: pod.memoryMiB + settings.vmOverheadMiB, pods: 1 };
}

/** Whether `reservation` fits on top of `allocated` within `capacity` (each dimension `allocated + r <= capacity`). */
export function fitsWithin(allocated: Resources, reservation: Resources, capacity: Resources): boolean {
  return (
    allocated.vcpus + reservation.vcpus <= capacity.vcpus &&
    allocated.memoryMiB + reservation.memoryMiB <= capacity.memoryMiB &&
    allocated.pods + reservation.pods <= capacity.pods
  );
}

/** The resource arithmetic alone (vCPUs, memory with overhead, pod count) — what the conditional UPDATE re-checks. */
export function fitsOnNode(
  pod: Pick<PodRequest, 'vcpus' | 'memoryMiB'>,
  node: Pick<NodeInfo, 'capacity' | 'allocated'>,
  settings: Pick<PlacementSettings, 'vmOverheadMiB'>,
): boolean {
  return fitsWithin(node.allocated, reservationFor(pod, settings), node.capacity);
}

/** `allocated + reservation` (the node's allocated columns after the reservation). */
export function addResources(allocated: Resources, reservation: Resources): Resources {
  return {
    vcpus: allocated.vcpus + reservation.vcpus,
    memoryMiB: allocated.memoryMiB + reservation.memoryMiB,
    pods: allocated.pods + reservation.pods,
  };
}

/** `allocated - reservation` (releasing a pod). */
export function subtractResources(allocated: Resources, reservation: Resources): Resources {
  return {
    vcpus: allocated.vcpus - reservation.vcpus,
    memoryMiB: allocated.memoryMiB - reservation.memoryMiB,
    pods: allocated.pods - reservation.pods,
  };
}
