/**
 * The job's side of the pending sets `__rstore:pending:<slot>` (docs/migration.md, "The pending set
 * is not trusted alone"): the intact mark, what is left on the source, and dropping them.
 */
import {RstoreError} from '../errors.js'
import {PENDING_INTACT, pendingSetKey} from '../topology/internal-keys.js'
import {slotOf} from '../topology/slots.js'
import type {SlotRow} from './migration-store.js'
import type {MoveContext} from './move-context.js'
import {existing, isInternalKey, sscanPage} from './redis-keys.js'

/**
 * Puts the mark PENDING_INTACT in each slot's pending set before the slot is marked pending: a set
 * found without it later was deleted or replaced by something other than a proxy.
 */
export async function markSetsIntact(ctx: MoveContext, slots: {slot: number; source: number}[]): Promise<void> {
  const bySource = new Map<number, number[]>()
  for (const r of slots) bySource.set(r.source, [...(bySource.get(r.source) ?? []), r.slot])
  for (const [source, list] of bySource) {
    const p = ctx.masters.get(ctx.masterOf(source)).pipeline()
    for (const slot of list) p.sadd(pendingSetKey(slot), PENDING_INTACT)
    const res = (await p.exec()) ?? []
    const err = res.find((x) => x[0])
    if (err) throw new RstoreError('EMIGRATE', `cannot mark the pending sets on group ${source}: ${String(err[0])}; run the command again`)
  }
}

export async function setIntact(ctx: MoveContext, row: SlotRow): Promise<boolean> {
  return Number(await ctx.masters.get(ctx.masterOf(row.source)).sismember(pendingSetKey(row.slot), PENDING_INTACT)) === 1
}

/** The keys of row's bucket and pending set that still exist on its source. */
export async function leftovers(ctx: MoveContext, row: SlotRow): Promise<Buffer[]> {
  const src = ctx.masters.get(ctx.masterOf(row.source))
  const left: Buffer[] = []
  let seq = -1
  for (;;) {
    const chunk = ctx.ms.bucketChunks(ctx.job.id, row.slot, seq, 1000)
    if (!chunk.keys.length) break
    for (let i = 0; i < chunk.keys.length; i += 1000) left.push(...(await existing(src, chunk.keys.slice(i, i + 1000))))
    seq = chunk.seq
  }
  let cursor = '0'
  do {
    const [next, members] = await sscanPage(src, pendingSetKey(row.slot), cursor, 1000)
    left.push(...(await existing(src, members.filter((k) => !isInternalKey(k) && slotOf(k) === row.slot))))
    cursor = next
  } while (cursor !== '0')
  return left
}

/**
 * A proxy that does not hold a marked migrating slot could have recorded keys in the pending set on
 * the target: dropped for every slot the job finished, one UNLINK per 500 slots and target.
 */
export async function dropTargetPendingSets(ctx: MoveContext): Promise<void> {
  const byTarget = new Map<number, string[]>()
  for (const r of ctx.ms.slots(ctx.job.id)) {
    if (r.state !== 'done') continue
    const list = byTarget.get(r.target) ?? []
    list.push(pendingSetKey(r.slot))
    byTarget.set(r.target, list)
  }
  for (const [group, keys] of byTarget) {
    const conn = ctx.masters.get(ctx.masterOf(group))
    for (let i = 0; i < keys.length; i += 500) await conn.unlink(...keys.slice(i, i + 500))
  }
}
