/** Bounds of the pod log reads (docs/adr-005-logs-and-events.md). */
export const POD_LOG_LIMITS = {
  minTail: 1,
  maxTail: 5000,
  defaultTail: 100,
  /** XREVRANGE page size while looking for the lines a query wants. */
  scanBatch: 1000,
  /**
   * At most this many entries are examined per query, whatever the filters and however many nodes the pod ran
   * on: each node's stream (≈10,000 entries) gets an equal share, at least `scanBatch`.
   */
  maxScanned: 20_000,
  /** A query reads the streams of at most this many nodes: the current one and the most recently scheduled. */
  maxLogNodes: 16,
  /**
   * `since` is about capture time (`t`), the range bound about append time (the stream id): a node clock
   * ahead of Redis' by up to this much still finds its lines.
   */
  sinceSkewMs: 5 * 60_000,
  /** XREAD batch of a log subscription: one message carries at most this many lines. */
  followBatch: 500,
  /**
   * How long one XREAD blocks before the subscription loops (notices a closed connection, and looks up the
   * pod's current node again: after a re-placement it follows the new node's stream).
   */
  followBlockMs: 5_000,
  /** Between two look-ups of the pod's node while it is placed nowhere (nothing to block on). */
  followUnplacedPollMs: 1_000,
  /** Concurrent log subscriptions per API process (each holds one Redis connection), and per tenant. */
  maxFollowersPerProcess: 512,
  maxFollowersPerTenant: 32,
} as const;
