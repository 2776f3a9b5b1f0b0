/**
 * The associated data that binds each kind of sealed secret to its owner (`SecretBox`). The API seals with
 * these; the scheduler opens secrets for the one node that runs the pod (ADR-009).
 */

/** A secret env value: its tenant, pod, container and variable. */
export const podEnvSecretContext = (tenantId: string, podId: string, container: string, name: string): string =>
  `pod-env:${tenantId}:${podId}:${container}:${name}`;

/** A registry password: its tenant and registry. */
export const registrySecretContext = (tenantId: string, registry: string): string =>
  `registry-credential:${tenantId}:${registry}`;
