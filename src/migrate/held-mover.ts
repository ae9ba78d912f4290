/**
 * Moves keys of a HELD slot (docs/migration.md, step 3): every proxy parks the slot's commands, so
 * nothing but the mover touches its keys and they go by DUMP/RESTORE scripts, several batches in flight.
 */
import {failpoint} from './failpoints.js'
import type {SlotRow} from './migration-store.js'
import {emptyResult, slotKeys, type MoveContext, type MoveResult} from './move-context.js'
import {moveBigKey} from './online-mover.js'
import {dumpKeys, restoreKeys} from './redis-keys.js'

/** Script batches in flight while a held slot moves: source, target and mover work side by side. */
export const HELD_INFLIGHT = 5

/**
 * Per batch, DUMP on the source, RESTORE ... REPLACE on the target, then UNLINK on the source. Not
 * atomic per key, which is safe only because no proxy touches the slot meanwhile; a mover killed
 * between the steps leaves a copy on both sides, and the source copy, still authoritative, replaces
 * it on the next run. Stops taking batches once over() is true (res.complete false).
 */
export async function moveHeld(ctx: MoveContext, row: SlotRow, keysIn: Buffer[], over: () => boolean): Promise<MoveResult> {
  const res = emptyResult()
  const keys = slotKeys(ctx, row, keysIn)
  const {counters, progress, job} = ctx
  const src = ctx.masters.raw(ctx.masterOf(row.source))
  const dst = ctx.masters.raw(ctx.masterOf(row.target))
  const big: {key: Buffer; size: number}[] = []
  const unlinks: Promise<unknown>[] = []
  const t0 = performance.now()
  let next = 0
  const worker = async () => {
    while (next < keys.length) {
      if (over()) {
        res.complete = false
        return
      }
      const batch = keys.slice(next, (next += ctx.batch))
      const d = await dumpKeys(src, batch, ctx.opts.bigKeyBytes)
      await restoreKeys(dst, d)
      failpoint('held-after-restore')
      // Not awaited here: the source runs it before anything sent after it on this connection.
      if (d.keys.length) unlinks.push(src.call(['UNLINK', ...d.keys]))
      big.push(...d.big)
      counters.heldUndumped += d.undumped
      res.moved += d.keys.length
      res.bytes += d.bytes
      counters.moved(d.keys.length, d.bytes)
      progress.set({keysMoved: job.progress.keysMoved + res.moved})
    }
  }
  await Promise.all(Array.from({length: HELD_INFLIGHT}, worker))
  await Promise.all(unlinks)
  failpoint('held-after-unlink')
  counters.migrateMs += performance.now() - t0
  for (const b of big) await moveBigKey(ctx, row, b.key, b.size, res)
  return res
}
