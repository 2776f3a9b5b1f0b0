import type { MatrixEntries } from '../role-matrix';

/** Root operations of the pod-log module and who may call them. */
export const podLogMatrix: MatrixEntries = {};
