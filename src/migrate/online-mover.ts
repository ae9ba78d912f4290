/**
 * Moves keys of a migrating slot that proxies serve (docs/migration.md, step 4): MIGRATE batches of
 * small keys under --rate and --delay, big keys alone.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {showKey} from '../topology/key-text.js'
import {failpoint} from './failpoints.js'
import type {SlotRow} from './migration-store.js'
import {emptyResult, slotKeys, type MoveContext, type MoveResult} from './move-context.js'
import {keySizes, migrateKeys} from './redis-keys.js'

/** A key over --big-key: alone, by MIGRATE (the source stalls meanwhile; the stall is reported). */
export async function moveBigKey(ctx: MoveContext, row: SlotRow, key: Buffer, size: number, res: MoveResult): Promise<void> {
  const r = await migrateKeys(ctx.masters.get(ctx.masterOf(row.source)), ctx.masterOf(row.target), [key], ctx.opts.bigKeyTimeoutMs)
  res.moved++
  res.bytes += size
  ctx.counters.moved(1, size)
  res.big.push({slot: row.slot, key, bytes: size, stallMs: r.ms})
  ctx.progress.set({bigKeys: ctx.progress.state.bigKeys + 1})
  ctx.progress.log(`big key '${showKey(key, 80)}' (slot ${row.slot}, ${size} bytes) moved alone in ${r.ms.toFixed(0)} ms`)
}

/** MIGRATEs keys (of row's slot) from the source to the target master: batches, big keys alone. */
export async function moveKeys(ctx: MoveContext, row: SlotRow, keysIn: Buffer[]): Promise<MoveResult> {
  const res = emptyResult()
  const keys = slotKeys(ctx, row, keysIn)
  if (!keys.length) return res
  const {opts, counters, progress, job} = ctx
  const srcAddr = ctx.masterOf(row.source)
  const dst = ctx.masterOf(row.target)
  const src = ctx.masters.get(srcAddr)
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000)
    const sizes = await keySizes(src, chunk)
    let batch: Buffer[] = []
    let batchBytes = 0
    const flush = async () => {
      if (!batch.length) return
      await ctx.limiter.take(batch.length)
      await ctx.checkControl()
      const t0 = performance.now()
      await migrateKeys(src, dst, batch, opts.migrateTimeoutMs)
      failpoint('online-after-migrate')
      counters.migrateMs += performance.now() - t0
      res.moved += batch.length
      res.bytes += batchBytes
      counters.moved(batch.length, batchBytes)
      progress.set({keysMoved: job.progress.keysMoved + res.moved})
      if (opts.delayMs > 0) await sleep(opts.delayMs * batch.length)
      batch = []
      batchBytes = 0
    }
    for (let j = 0; j < chunk.length; j++) {
      const size = sizes[j]
      if (size === null || size === undefined) continue // gone (expired, deleted, or moved by a proxy)
      const key = chunk[j]!
      if (size > opts.bigKeyBytes) {
        await flush()
        await ctx.limiter.take(1)
        await ctx.checkControl()
        await moveBigKey(ctx, row, key, size, res)
        if (opts.delayMs > 0) await sleep(opts.delayMs)
        continue
      }
      batch.push(key)
      batchBytes += size
      if (batch.length >= ctx.batch || batchBytes >= opts.batchBytes) await flush()
    }
    await flush()
  }
  return res
}
