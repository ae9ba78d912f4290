/**
 * What the key movers (slot-move.ts, held-mover.ts, online-mover.ts, slot-scan.ts, pending-sets.ts)
 * take from the job's Mover: its connections, options, counters and control check, not the Mover itself.
 */
import {showKey} from '../topology/key-text.js'
import {slotOf} from '../topology/slots.js'
import type {Job} from './checkpoints.js'
import type {JobCounters} from './job-counters.js'
import type {BigKey, MigrationProgress, MigrationStore, SlotRow} from './migration-store.js'
import type {MoveOptions} from './move-options.js'
import type {Progress} from './progress.js'
import type {RateLimiter} from './rate-limit.js'
import {isInternalKey, type Masters} from './redis-keys.js'

export interface MoveContext {
  readonly job: Job<MigrationProgress>
  readonly ms: MigrationStore
  readonly masters: Masters
  readonly opts: MoveOptions
  /** Keys per batch (batchSize of opts). */
  readonly batch: number
  readonly progress: Progress
  readonly counters: JobCounters
  /** --rate. */
  readonly limiter: RateLimiter
  /** The address of the group's master in the current topology (ConflictError if it has none). */
  masterOf(group: number): string
  /** Between batches: the lock, a stop, pause and cancel from `rstore jobs`. */
  checkControl(): Promise<void>
  /** A cancel was asked for (read after checkControl). */
  cancelled(): boolean
}

export interface MoveResult {
  moved: number
  bytes: number
  big: BigKey[]
  /** False when a held move stopped early (over its time budget, or a pause/stop asked for). */
  complete: boolean
}

export function emptyResult(): MoveResult {
  return {moved: 0, bytes: 0, big: [], complete: true}
}

/** The keys of row's slot among keysIn; members of other slots are reported and left alone. */
export function slotKeys(ctx: MoveContext, row: SlotRow, keysIn: Buffer[]): Buffer[] {
  const foreign: Buffer[] = []
  const keys = userKeys(keysIn, row.slot, foreign)
  if (foreign.length) {
    ctx.counters.foreignMembers += foreign.length
    const k = foreign[0]!
    ctx.progress.log(
      `slot ${row.slot}: skipped ${foreign.length} pending-set member(s) of other slots (e.g. '${showKey(k, 80)}', slot ${slotOf(k)}): not moved, left where they are`,
    )
  }
  return keys
}

/**
 * The keys of the slot without rstore's own (`__rstore:...`) and without repeats. A pending-set
 * member of another slot (the set written by something other than a proxy) is never moved: moving
 * it would take a live key off the group that serves it (docs/migration.md). Such members go to foreign.
 */
export function userKeys(keysIn: Buffer[], slot: number, foreign: Buffer[]): Buffer[] {
  const seen = new Set<string>()
  const keys: Buffer[] = []
  for (const k of keysIn) {
    if (isInternalKey(k)) continue
    if (slotOf(k) !== slot) {
      foreign.push(k)
      continue
    }
    const id = k.toString('latin1')
    if (seen.has(id)) continue
    seen.add(id)
    keys.push(k)
  }
  return keys
}
