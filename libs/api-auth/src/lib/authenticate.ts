import type { AuthFailure, Principal } from './principal';
import { AuthenticationError } from './principal';
import type { RateLimiter } from './rate-limiter';
import type { TokenVerifier } from './token-verifier';

export type AuthOutcome =
  | { ok: true; principal: Principal | null }
  | { ok: false; failure: AuthFailure; message: string }
  | { ok: false; failure: 'RATE_LIMITED'; message: string; retryAfterMs: number };

/**
 * What happens to every request before the API does anything else: the bearer token becomes a
 * principal (or a refusal), then the principal's rate limit is charged. No credentials → no principal.
 */
export async function authenticate(
  verifier: TokenVerifier,
  limiter: RateLimiter,
  authorization: string | undefined,
): Promise<AuthOutcome> {
  let principal: Principal | null;
  try {
    principal = await verifier.verify(authorization);
  } catch (error) {
    if (error instanceof AuthenticationError) return { ok: false, failure: error.failure, message: error.message };
    throw error;
  }
  if (principal !== null) {
    const decision = await limiter.hit(principal.kind === 'operator' ? 'operator' : principal.tokenId);
    if (!decision.allowed) {
      return {
        ok: false,
        failure: 'RATE_LIMITED',
        message: 'Too many requests for this token; retry later.',
        retryAfterMs: decision.retryAfterMs,
      };
    }
  }
  return { ok: true, principal };
}
