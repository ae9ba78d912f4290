/**
 * The restart delay of a supervised process (docs/agent.md "Restarts"): each quick exit in a row
 * doubles it from the first delay up to a cap, so a command that crashes at once is retried less and
 * less often instead of spinning; one that ran for `stableAfterMs` starts over from the first delay.
 */
export interface BackoffPolicy {
  backoffMs: number
  backoffMaxMs: number
  stableAfterMs: number
}

/** The delay after the n-th quick exit in a row (n >= 1). */
export function restartDelay(policy: BackoffPolicy, quickExitsInARow: number): number {
  const n = Math.max(1, quickExitsInARow)
  // 2^30 already passes any cap; stop doubling before the number overflows.
  const factor = 2 ** Math.min(n - 1, 30)
  return Math.min(policy.backoffMs * factor, Math.max(policy.backoffMs, policy.backoffMaxMs))
}

/** The quick-exit count after an exit: reset to 1 when the process had run long enough. */
export function nextQuickExits(policy: BackoffPolicy, previous: number, ranForMs: number): number {
  return ranForMs >= policy.stableAfterMs ? 1 : previous + 1
}
