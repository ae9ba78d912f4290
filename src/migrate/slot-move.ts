/**
 * One migrating slot's keys, step by step, each step checkpointed in its slot row
 * (docs/migration.md, steps 3 to 5): the bucket, the pending set, then the check that none is left.
 */
import {RstoreError} from '../errors.js'
import {pendingSetKey} from '../topology/internal-keys.js'
import {showKey} from '../topology/key-text.js'
import {HELD_INFLIGHT, moveHeld} from './held-mover.js'
import type {SlotRow} from './migration-store.js'
import type {MoveContext} from './move-context.js'
import {moveKeys} from './online-mover.js'
import {leftovers, setIntact} from './pending-sets.js'
import {sscanPage} from './redis-keys.js'
import {scanSlot} from './slot-scan.js'

/**
 * Bucket, then pending set, then the check that none is left (each step checkpointed). 'held': the
 * slot is still marked pending, so every proxy parks its commands and nothing but the mover touches
 * its keys: they go by DUMP/RESTORE scripts, several batches in flight, about 2.5x MIGRATE's speed.
 * Returns false (nothing half-moved) when the slot should stop being held: heldOver() (over
 * --hold-ms, or a pause or stop asked for); the caller then releases it and finishes 'online'
 * (MIGRATE per batch, proxies moving each key they touch).
 */
export async function moveSlotKeys(ctx: MoveContext, row: SlotRow, mode: 'held' | 'online', heldOver: () => boolean): Promise<boolean> {
  ctx.counters.heldUndumped = 0
  const leave = async () => {
    if (mode === 'held') return heldOver()
    await ctx.checkControl()
    return false
  }
  // A held move cut short by heldOver() leaves its chunk unrecorded: the online path redoes it,
  // skipping the keys already gone from the source.
  const move = (keys: Buffer[]) => (mode === 'held' ? moveHeld(ctx, row, keys, heldOver) : moveKeys(ctx, row, keys))
  const src = mode === 'held' ? ctx.masters.raw(ctx.masterOf(row.source)) : ctx.masters.get(ctx.masterOf(row.source))
  const pendingKey = pendingSetKey(row.slot)
  if (row.step === 'bucket') {
    // Held, the pending set does not change (no proxy writes the slot): its first page moves with
    // the bucket's first chunk, one round of scripts fewer per slot. A resume that repeats the
    // pending set from its start finds those keys gone from the source.
    let firstPage: Promise<[string, Buffer[]]> | null = mode === 'held' ? sscanPage(src, pendingKey, '0', 1000) : null
    firstPage?.catch(() => {})
    let pendingNext = '0'
    for (;;) {
      if (await leave()) return false
      const chunk = Math.max(mode === 'held' ? ctx.batch * HELD_INFLIGHT : ctx.batch, 1000)
      let {seq, keys} = ctx.ms.bucketChunks(ctx.job.id, row.slot, row.bucketSeq, chunk)
      let withPage = false
      if (firstPage) {
        const [next, members] = await firstPage
        firstPage = null
        keys = keys.concat(members)
        pendingNext = next
        withPage = true
      }
      if (!keys.length) break
      const res = await move(keys)
      if (res.complete) row.bucketSeq = seq
      else if (withPage) pendingNext = '0'
      ctx.ms.recordBatch(ctx.job, row, res.moved, res.bytes, res.big)
      if (!res.complete) return false
    }
    // Not recorded by itself: a resume re-reads the bucket after its last chunk, finds none, and
    // goes on with the pending set from its start.
    row.step = pendingNext === '0' && mode === 'held' ? 'verify' : 'pending'
    row.pendingCursor = pendingNext
  }
  if (row.step === 'pending') {
    for (;;) {
      if (await leave()) return false
      const [next, members] = await sscanPage(src, pendingKey, row.pendingCursor, 1000)
      const res = await move(members)
      if (res.complete) {
        row.pendingCursor = next
        if (next === '0') row.step = 'verify'
      }
      ctx.ms.recordBatch(ctx.job, row, res.moved, res.bytes, res.big)
      if (!res.complete) return false
      if (next === '0') break
    }
  }
  // The pending set lost its mark (deleted or replaced by something not a proxy): it cannot be
  // trusted to name every key written since the scan, so the source is scanned for the slot's keys.
  if (!(await setIntact(ctx, row))) {
    const found = await scanSlot(ctx, row)
    ctx.progress.log(`slot ${row.slot}: its pending set on group ${row.source} was tampered with; a scan of the source found ${found.length} key(s) of the slot left, moving them`)
    if (found.length) {
      const res = await move(found)
      ctx.ms.recordBatch(ctx.job, row, res.moved, res.bytes, res.big)
      if (!res.complete) return false
      ctx.counters.heldUndumped++ // and check below that none is left
    }
  }
  // Held and complete: every key of the bucket and the pending set that existed was dumped,
  // restored and unlinked, and nothing else wrote the slot meanwhile, so the check below has nothing
  // to find (unless a key could not be dumped).
  if (mode === 'held' && ctx.counters.heldUndumped === 0) return true
  // verify: nothing of the bucket or the pending set is left on the source.
  for (let round = 1; ; round++) {
    const left = await leftovers(ctx, row)
    if (!left.length) return true
    if (round > 3) {
      throw new RstoreError('EMIGRATE', `slot ${row.slot}: ${left.length} key(s) are still on group ${row.source} after moving (e.g. '${showKey(left[0]!, 80)}'); job ${ctx.job.id} is left resumable`)
    }
    if (await leave()) return false
    ctx.progress.log(`slot ${row.slot}: ${left.length} key(s) still on the source, moving them again`)
    const res = await move(left)
    ctx.ms.recordBatch(ctx.job, row, res.moved, res.bytes, res.big)
    if (!res.complete) return false
  }
}
