export { CommandError } from './exec';
export type { HostNetworkOptions, TenantOptions } from './host-network';
export { HostNetwork } from './host-network';
export type { AttachPodOptions, LocalPod, Peer } from './tenant-network';
export { TenantNetwork } from './tenant-network';
export {
  FORBIDDEN_DST,
  POD_PORT_MAC,
  TENANT_MTU,
  TRANSIT_POOL,
  gatewayOf,
  guestMac,
  podPortName,
  transitPair,
  vtepMac,
} from './names';
export {
  HOST_COUNTERS,
  HOST_TABLE,
  TENANT_COUNTERS,
  TENANT_GUARD_TABLE,
  renderHostTable,
  renderTenantGuardTable,
} from './tables';
