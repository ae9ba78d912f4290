/** Planning a migrate / rebalance job, and the texts that name a job (docs/migration.md). */
import type {TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError} from '../errors.js'
import {masterOf, parseGroupId, parseSlotRange, type Topology} from '../topology/model.js'
import type {Job} from './checkpoints.js'
import type {MigrationProgress, PlannedSlot} from './migration-store.js'
import {planRebalance, type RebalanceBy, type RebalancePlan} from './rebalance-plan.js'
import {slotIdsText} from '../topology/slots.js'
import {maxmemory} from './redis-keys.js'

export function describeJob(job: Job<MigrationProgress>): string {
  const a = job.args as Record<string, unknown>
  const what = job.kind === 'migrate' ? `migrate ${a.from} ${a.to} ${a.group}` : `rebalance --by ${a.by}`
  const p = job.progress
  return `${job.id} ('rstore ${what}', ${p.slotsDone}/${p.slotsTotal} slots done, ${job.state})`
}

export function resumeHint(job: Job<MigrationProgress>): string {
  const a = job.args as Record<string, unknown>
  const cmd = job.kind === 'migrate' ? `rstore migrate ${a.from} ${a.to} ${a.group}` : `rstore rebalance --by ${a.by}`
  return `finish it with '${cmd}' or 'rstore migrate --resume' (or stop it cleanly with 'rstore jobs cancel ${job.id}')`
}

/** The job's plan for a new `migrate from to group`; refuses with the reason when it cannot run. */
export function planMigrate(topo: Topology, fromText: string | number, toText: string | number, groupText: string | number): {plan: PlannedSlot[]; skipped: number[]} {
  const [from, to] = parseSlotRange(fromText, toText)
  const group = parseGroupId(groupText)
  if (!topo.slots.some((s) => s.state !== 'offline') && topo.groups.size === 0) {
    throw new ConflictError(`nothing to migrate: no slot is online and no group exists ('rstore slot init', 'rstore server add ...')`)
  }
  const g = topo.groups.get(group)
  if (!g) throw new NotFoundError(`group ${group} does not exist: create it with 'rstore server add ${group} <host:port> master'`)
  if (!masterOf(g)) throw new ConflictError(`group ${group} has no master: add one with 'rstore server add ${group} <host:port> master'`)
  const plan: PlannedSlot[] = []
  const skipped: number[] = []
  const offline: number[] = []
  for (let id = from; id <= to; id++) {
    const s = topo.slots[id]!
    if (s.state === 'offline') offline.push(id)
    else if (s.state === 'migrating') {
      if (s.group !== group) {
        throw new ConflictError(
          `slot ${id} is migrating from group ${s.from} to group ${s.group} (an interrupted migration): finish it first with 'rstore migrate ${id} ${id} ${s.group}'`,
        )
      }
      plan.push({slot: id, source: s.from!, target: group, migrating: true})
    } else if (s.group === group) skipped.push(id)
    else plan.push({slot: id, source: s.group, target: group})
  }
  if (offline.length) {
    throw new ConflictError(
      `slot${offline.length > 1 ? 's' : ''} ${slotIdsText(offline)} ${offline.length > 1 ? 'are' : 'is'} offline: an offline slot has no data to move; assign it with 'rstore slot range-set <from> <to> ${group} online'`,
    )
  }
  const outside = topo.slots.filter((s) => s.state === 'migrating' && (s.id < from || s.id > to))
  if (outside.length) {
    const s = outside[0]!
    throw new ConflictError(
      `slot ${s.id} is migrating from group ${s.from} to group ${s.group} (an interrupted migration) and only one slot may migrate at a time: finish it first with 'rstore migrate ${s.id} ${s.id} ${s.group}'`,
    )
  }
  for (const p of plan) {
    const sg = topo.groups.get(p.source)
    if (!sg || !masterOf(sg)) throw new ConflictError(`slot ${p.slot} is in group ${p.source}, which has no master to move its keys from`)
  }
  return {plan, skipped}
}

/** Reads each group master's maxmemory (0 when unset) for `rebalance --by memory`. */
export async function groupMaxmemory(topo: Topology): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const g of topo.groups.values()) {
    const m = masterOf(g)
    if (m) out.set(g.id, await maxmemory(m.addr))
  }
  return out
}

export async function planRebalanceNow(store: TopologyStore, by: RebalanceBy): Promise<{plan: RebalancePlan; epoch: number}> {
  const topo = await store.load()
  const weights = by === 'memory' ? await groupMaxmemory(topo) : undefined
  return {plan: planRebalance(topo, by, weights), epoch: topo.epoch}
}
