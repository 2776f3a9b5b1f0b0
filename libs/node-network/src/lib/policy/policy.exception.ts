/** Why applying or reading a tenant's nftables table failed. Stable: callers switch on it. */
export enum PolicyApplyErrorCode {
  /** The namespace name is not one iproute2 would create (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64). */
  INVALID_NETNS = 'INVALID_NETNS',
  /** `/run/netns/<name>` does not exist. */
  NETNS_NOT_FOUND = 'NETNS_NOT_FOUND',
  /** nft refused the script; the transaction was not committed, so the previous table is still in force. */
  NFT_REJECTED = 'NFT_REJECTED',
  /** nft could not be started, was killed, or ran past the deadline. */
  NFT_FAILED = 'NFT_FAILED',
  /** nft succeeded but printed something this module cannot read (`nft -j`). */
  NFT_OUTPUT_UNREADABLE = 'NFT_OUTPUT_UNREADABLE',
}

export class PolicyApplyError extends Error {
  override readonly name = 'PolicyApplyError';

  constructor(
    readonly code: PolicyApplyErrorCode,
    message: string,
    readonly details: { netns: string; stderr?: string; exitCode?: number | null } = { netns: '' },
  ) {
    super(message);
  }

  /** nft's own complaint, as printed (empty when nft did not run). */
  get stderr(): string {
    return this.details.stderr ?? '';
  }
}
