/** The knobs of a migration job's key moves (the `rstore migrate` / `rebalance` flags). */
export interface MoveOptions {
  /** Sleep after each key moved, ms (Reborn's --delay). */
  delayMs: number
  /** Keys per second, 0 = unlimited. */
  rate: number
  /** Keys per MIGRATE. */
  batch: number
  /** Most bytes (MEMORY USAGE) per MIGRATE of small keys. */
  batchBytes: number
  barrierTimeoutSec: number
  /** Keys larger than this (MEMORY USAGE bytes) are reported and moved alone. */
  bigKeyBytes: number
  lockTtlSec: number
  /** MIGRATE timeout (ms) for a batch of small keys; big keys get bigKeyTimeoutMs. */
  migrateTimeoutMs: number
  bigKeyTimeoutMs: number
  scanCount: number
  /**
   * Most time (ms) a slot's keys are moved while the proxies hold its commands (the fast DUMP/RESTORE
   * path, see slot-move.ts); a slot that takes longer is released and finished key by key with
   * MIGRATE. 0 = always MIGRATE. Not used with --delay or --rate.
   */
  holdMs: number
  /**
   * The nice value the job command runs at (0 = unchanged): on a shared host a mover at full speed
   * otherwise competes with the proxies and Redis servers for CPU (p99 x2.5 -> x2.0 in bench/migrate).
   */
  nice: number
}

export const DEFAULT_MOVE_OPTIONS: MoveOptions = {
  delayMs: 0,
  rate: 0,
  batch: 200,
  batchBytes: 4 * 1024 * 1024,
  barrierTimeoutSec: 60,
  bigKeyBytes: 8 * 1024 * 1024,
  lockTtlSec: 5,
  migrateTimeoutMs: 10_000,
  bigKeyTimeoutMs: 120_000,
  scanCount: 1000,
  holdMs: 200,
  nice: 10,
}

/** Keys per batch: --batch, and under --rate at most a tenth of a second's worth. */
export function batchSize(opts: MoveOptions): number {
  let batch = Math.max(1, opts.batch)
  if (opts.rate > 0) batch = Math.max(1, Math.min(batch, Math.floor(opts.rate / 10) || 1))
  return batch
}
