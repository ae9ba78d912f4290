/**
 * The slot-table changes of a migration job (docs/migration.md, "Slot records during a job"), as
 * pure functions over the topology a TopologyStore.update is applied to: each returns the slot
 * records to write, or throws when the table is no longer what the job left it (a compare-and-swap
 * retry calls it again on the newer table, so it must not change anything itself).
 */
import {ConflictError} from '../errors.js'
import type {SlotInfo, Topology} from '../topology/model.js'
import type {SlotRow} from './migration-store.js'

/** What a transition needs of a job's slot row. */
export type SlotMove = Pick<SlotRow, 'slot' | 'source' | 'target' | 'state'>

/** Phase 1: every queued slot still online at its source gets `pending` (proxies record its keys). */
export function markPending(topo: Topology, unmarked: Pick<SlotRow, 'slot' | 'source'>[]): SlotInfo[] {
  return unmarked.map((r) => {
    const t = topo.slots[r.slot]!
    if (t.state !== 'online' || t.group !== r.source) throw new ConflictError(`slot ${r.slot} changed meanwhile (now ${t.state} in group ${t.group}); run the command again`)
    return {...t, pending: true}
  })
}

export interface Advance {
  /** Moved: goes online at its target. */
  finishing: SlotMove | null
  /** To move: turns migrating + pending if still queued. */
  moving: SlotMove | null
  /** Next in line: gets the hold (docs/migration.md, "the pipeline"). */
  next: SlotMove | null
}

/** E1 of the main loop: one change takes finishing online, moving migrating and next held. */
export function advance(topo: Topology, {finishing, moving, next}: Advance): SlotInfo[] {
  const onlineAtSource = (row: SlotMove) => {
    const t = topo.slots[row.slot]!
    if (t.state !== 'online' || t.group !== row.source) throw new ConflictError(`slot ${row.slot} is no longer online in group ${row.source} (now ${t.state} in group ${t.group})`)
    return t
  }
  const out: SlotInfo[] = []
  if (finishing) {
    const t = topo.slots[finishing.slot]!
    if (t.state !== 'migrating' || t.group !== finishing.target) {
      throw new ConflictError(`slot ${finishing.slot} is no longer migrating to group ${finishing.target} (now ${t.state} in group ${t.group})`)
    }
    out.push({id: finishing.slot, state: 'online', group: finishing.target})
  }
  if (moving && moving.state === 'queued') {
    onlineAtSource(moving)
    // Rule 3, checked on the topology this change is applied to.
    const other = topo.slots.find((s) => s.state === 'migrating' && s.id !== finishing?.slot)
    if (other) throw new ConflictError(`slot ${other.id} is migrating (from group ${other.from} to group ${other.group}); only one slot may migrate at a time`)
    // pending on a migrating slot: the move has not started; proxies hold its commands
    // (docs/migration.md) until every proxy has stopped using the old routing.
    out.push({id: moving.slot, state: 'migrating', group: moving.target, from: moving.source, pending: true})
  }
  if (next && !topo.slots[next.slot]!.hold) out.push({...onlineAtSource(next), hold: true})
  return out
}

/** Drops the hold of the slot next in line (its keys are all still on the source). */
export function releaseHold(topo: Topology, slot: number): SlotInfo[] {
  return topo.slots[slot]!.hold ? [{...topo.slots[slot]!, hold: false}] : []
}

/** Drops the hold of queued slots that are not next in line (left by an interrupted run). */
export function releaseStrays(topo: Topology, strays: Pick<SlotRow, 'slot'>[]): SlotInfo[] {
  return strays.map((r) => ({...topo.slots[r.slot]!, hold: false}))
}

/** E2: a migrating slot loses `pending`, so proxies serve it by moving each key they touch (rule 6). */
export function startMoving(topo: Topology, row: Pick<SlotRow, 'slot' | 'source' | 'target'>): SlotInfo[] {
  const now = topo.slots[row.slot]!
  if (now.state !== 'migrating' || now.group !== row.target || now.from !== row.source) {
    throw new ConflictError(`slot ${row.slot} is no longer migrating from group ${row.source} to group ${row.target} (now ${now.state} in group ${now.group})`)
  }
  return now.pending ? [{id: row.slot, state: 'migrating', group: row.target, from: row.source}] : []
}

/** A cancelled job's slots left where they are lose their pending and hold marks. */
export function cancelMarks(topo: Topology, left: Pick<SlotRow, 'slot'>[]): SlotInfo[] {
  return left.map((r) => ({...topo.slots[r.slot]!, pending: false, hold: false}))
}

export interface Reconciled {
  landed: SlotRow[]
  inflight: SlotRow | null
  queued: SlotRow[]
}

/**
 * Matches the job's slot rows with the topology (the truth about slot states): landed (online at
 * the target, recorded migrating), inflight (migrating), queued (online at the source).
 */
export function reconcile(job: {id: string}, topo: Topology, rows: SlotRow[]): Reconciled {
  const out: Reconciled = {landed: [], inflight: null, queued: []}
  for (const r of rows) {
    if (r.state === 'done' || r.state === 'cancelled') continue
    const t = topo.slots[r.slot]!
    if (t.state === 'migrating' && t.group === r.target && t.from === r.source) {
      out.inflight = r
    } else if (t.state === 'online' && t.group === r.target && r.state === 'migrating') {
      out.landed.push(r)
    } else if (t.state === 'online' && t.group === r.source && r.state === 'queued') {
      out.queued.push(r)
    } else {
      throw new ConflictError(
        `job ${job.id}: slot ${r.slot} is ${t.state}${t.state === 'migrating' ? ` from group ${t.from}` : ''} in group ${t.group}, but the job has it ${r.state} (group ${r.source} -> ${r.target}); ` +
          `the slot table was changed outside the job. Put the slot back ('rstore slot info ${r.slot}') or cancel the job ('rstore jobs cancel ${job.id}')`,
      )
    }
  }
  const others = topo.slots.filter((s) => s.state === 'migrating' && s.id !== out.inflight?.slot)
  if (others.length) {
    const s = others[0]!
    throw new ConflictError(`slot ${s.id} is migrating from group ${s.from} to group ${s.group} outside job ${job.id}; only one slot may migrate at a time`)
  }
  return out
}
