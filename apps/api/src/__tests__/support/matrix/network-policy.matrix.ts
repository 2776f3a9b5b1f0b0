import type { MatrixEntries } from '../role-matrix';

/** Root operations of the network-policy module and who may call them. */
export const networkPolicyMatrix: MatrixEntries = {};
