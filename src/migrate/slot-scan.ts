/**
 * The job's SCAN of its source masters (docs/migration.md, step 1): each source once, the keys of
 * the job's slots bucketed into the checkpoint file with the cursor; and the full scan for one slot
 * whose pending set lost its mark.
 */
import {failpoint} from './failpoints.js'
import type {SlotRow} from './migration-store.js'
import type {MoveContext} from './move-context.js'
import {laneNext, lanesFrom, lanesText, ScanBuckets, type ScanLane} from './scan-buckets.js'
import type {Reconciled} from './transitions.js'

/** SCAN each source master once, bucketing the keys of the job's unfinished slots. */
export async function scanSources(ctx: MoveContext, rec: Reconciled): Promise<void> {
  const {ms, job, progress} = ctx
  const bySource = new Map<number, Set<number>>()
  for (const r of [...rec.queued, ...(rec.inflight ? [rec.inflight] : [])]) {
    let set = bySource.get(r.source)
    if (!set) bySource.set(r.source, (set = new Set()))
    set.add(r.slot)
  }
  progress.set({phase: 'scanning'})
  let seen = 0
  for (const [source, slots] of bySource) {
    let st = ms.scanState(job.id, source)
    if (st.done) continue
    seen += st.seen
    const addr = ctx.masterOf(source)
    const conn = ctx.masters.raw(addr)
    const lanes = lanesFrom(st.started ? st.cursor : null)
    const t0 = Date.now()
    const buckets = new ScanBuckets((slot) => slots.has(slot))
    let pagesSeen = 0
    let lastFlush = Date.now()
    // Records the pages bucketed so far with each lane's cursor after them (one transaction).
    const flush = () => {
      const done = lanes.every((l) => l.cursor === null)
      ms.recordScanChunk(job.id, source, lanesText(lanes), done, pagesSeen, buckets.take())
      failpoint('scan-chunk')
      pagesSeen = 0
      lastFlush = Date.now()
    }
    let pages = 0
    const scanPage = (c: string) => conn.callRaw(['SCAN', c, 'COUNT', String(ctx.opts.scanCount)])
    // Each lane asks for its next page before bucketing the current one: the round trip and the
    // bucketing overlap. A page fetched but not bucketed is not in the checkpoint (its cursor is not either).
    let failed = false
    const runLane = async (lane: ScanLane): Promise<void> => {
      if (lane.cursor === null) return
      let page = scanPage(lane.cursor)
      for (;;) {
        const raw = await page
        if (failed) return // the other lane failed: this page is not bucketed
        const next = laneNext(lane, ScanBuckets.cursorOf(raw))
        if (next !== null) {
          page = scanPage(next)
          page.catch(() => {}) // awaited on the next turn; a stop may leave it unread
        }
        const {keys} = buckets.addPage(raw)
        pagesSeen += keys
        seen += keys
        progress.set({scannedKeys: seen})
        lane.cursor = next
        // One transaction per ~50k keys scanned or bucketed, or 2 s: few, large chunks (one per slot).
        if (lanes.every((l) => l.cursor === null) || pagesSeen >= 50_000 || buckets.pending >= 50_000 || Date.now() - lastFlush >= 2000) flush()
        if (next === null) return
        if (++pages % 20 === 0) await ctx.checkControl()
        if (ctx.cancelled()) return
      }
    }
    await Promise.all(
      lanes.map((l) =>
        runLane(l).catch((err: unknown) => {
          failed = true
          throw err
        }),
      ),
    )
    if (ctx.cancelled()) return
    if (lanes.every((l) => l.cursor === null) && !ms.scanState(job.id, source).done) flush()
    st = ms.scanState(job.id, source)
    progress.log(`scanned group ${source} (${addr}): ${st.seen} keys in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  }
}

/** Every key of row's slot on its source, by a full SCAN (only when the pending set lost its mark). */
export async function scanSlot(ctx: MoveContext, row: SlotRow): Promise<Buffer[]> {
  const conn = ctx.masters.raw(ctx.masterOf(row.source))
  const buckets = new ScanBuckets((slot) => slot === row.slot)
  const out: Buffer[] = []
  let cursor = '0'
  do {
    const raw = await conn.callRaw(['SCAN', cursor, 'COUNT', String(ctx.opts.scanCount)])
    cursor = buckets.addPage(raw).cursor
    for (const packed of buckets.take().get(row.slot) ?? []) {
      for (let pos = 0; pos < packed.blob.length; ) {
        const len = packed.blob.readUInt32BE(pos)
        out.push(Buffer.from(packed.blob.subarray(pos + 4, pos + 4 + len)))
        pos += 4 + len
      }
    }
  } while (cursor !== '0')
  return out
}
