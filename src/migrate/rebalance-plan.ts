/**
 * The rebalance planner (README "Migration", rebalance): pure, no I/O. Given the slot table, the groups and
 * their weights (the master's maxmemory, or 1 each for `--by slots`), it computes each group's target
 * slot count and the fewest slot moves that reach it.
 *
 * Targets: a group's exact share is 1024 * weight / total weight; its target is that share rounded
 * down or up (never further). The slots left over after rounding every share down go, one each, first
 * to groups that hold more than their rounded-down share (each such +1 saves one move), then by the
 * largest fractional part, then by the lowest group id. The number of moves is then
 * sum(max(0, current - target)), the least any plan within one slot of the exact shares can make.
 *
 * Which slots: a group that gives slots away keeps its lowest-numbered ones and gives its highest;
 * the given slots, in slot order, fill the receiving groups in group-id order. Both keep the result
 * in few contiguous ranges.
 */
import {ConflictError, ValidationError} from '../errors.js'
import {masterOf, type SlotInfo, type Topology} from '../topology/model.js'
import {SLOT_COUNT, slotIdsText} from '../topology/slots.js'

export type RebalanceBy = 'memory' | 'slots'

export interface SlotMove {
  slot: number
  from: number
  to: number
}

/** Consecutive moved slots with the same source and target (one row of the printed plan). */
export interface MoveRange {
  from: number
  to: number
  count: number
  fromGroup: number
  toGroup: number
}

export interface GroupShare {
  group: number
  /** maxmemory in bytes (by memory) or 1 (by slots). */
  weight: number
  /** The exact share of the 1024 slots. */
  share: number
  current: number
  target: number
}

export interface RebalancePlan {
  by: RebalanceBy
  groups: GroupShare[]
  moves: SlotMove[]
  ranges: MoveRange[]
}

export function parseRebalanceBy(text: string): RebalanceBy {
  if (text === 'memory' || text === 'slots') return text
  throw new ValidationError(`invalid --by '${text}': use memory or slots`)
}

/**
 * Refuses, with the reason, a topology that cannot be rebalanced: slots not all online (offline,
 * migrating, pending in a job), no groups, a group without a master, and for `--by memory` a master
 * without maxmemory (`weights` holds each group's master maxmemory, 0 or missing when unset).
 */
export function checkRebalanceable(topo: Topology, by: RebalanceBy, weights?: Map<number, number>): void {
  if (topo.groups.size === 0) throw new ConflictError('there are no server groups to rebalance across', "add some with 'rstore server add <group> <host:port> master'")
  const noMaster = [...topo.groups.values()].filter((g) => !masterOf(g)).map((g) => g.id)
  if (noMaster.length) {
    throw new ConflictError(
      `cannot rebalance: every group must have a master, and group${noMaster.length > 1 ? 's' : ''} ${noMaster.join(', ')} ${noMaster.length > 1 ? 'have' : 'has'} none`,
      "add a master with 'rstore server add <group> <host:port> master', or remove the group",
    )
  }
  const migrating = topo.slots.filter((s) => s.state === 'migrating')
  if (migrating.length) {
    const s = migrating[0]!
    throw new ConflictError(`cannot rebalance: every slot must be online, and slot ${s.id} is migrating from group ${s.from} to group ${s.group}`, "finish that migration first ('rstore migrate --resume')")
  }
  const offline = topo.slots.filter((s) => s.state !== 'online')
  if (offline.length) {
    throw new ConflictError(
      `cannot rebalance: every slot must be online, and ${offline.length} ${offline.length > 1 ? 'are' : 'is'} offline (${slotIdsText(offline.map((s) => s.id))})`,
      "assign them with 'rstore slot range-set <from> <to> <group> online'",
    )
  }
  const pending = topo.slots.filter((s) => s.pending)
  if (pending.length) {
    throw new ConflictError(
      `cannot rebalance: slots ${slotIdsText(pending.map((s) => s.id))} are pending in an unfinished migration job`,
      "finish it first ('rstore migrate --resume', see 'rstore jobs')",
    )
  }
  if (by === 'memory') {
    const missing = [...topo.groups.keys()].filter((id) => !(weights?.get(id) ?? 0))
    if (missing.length) {
      const masters = missing.map((id) => `${masterOf(topo.groups.get(id)!)!.addr} (group ${id})`)
      throw new ConflictError(
        `cannot rebalance by memory: every master must have maxmemory set, and ${masters.join(', ')} ${missing.length > 1 ? 'have' : 'has'} none ` +
          `(CONFIG SET maxmemory <bytes> on ${missing.length > 1 ? 'them' : 'it'}, or use --by slots)`,
      )
    }
  }
}

/** Target slot counts: floor or ceil of each exact share, chosen to move the fewest slots. */
export function targetCounts(groups: {group: number; weight: number; current: number}[], total = SLOT_COUNT): GroupShare[] {
  const sum = groups.reduce((a, g) => a + g.weight, 0)
  if (!(sum > 0)) throw new ValidationError('cannot plan: the groups have no weight')
  const out: GroupShare[] = groups.map((g) => {
    const share = (total * g.weight) / sum
    return {group: g.group, weight: g.weight, share, current: g.current, target: Math.floor(share + 1e-9)}
  })
  let extra = total - out.reduce((a, g) => a + g.target, 0)
  const order = out
    .filter((g) => g.share - g.target > 1e-9)
    .sort(
      (a, b) =>
        Number(b.current > b.target) - Number(a.current > a.target) ||
        b.share - b.target - (a.share - a.target) ||
        a.group - b.group,
    )
  for (const g of order) {
    if (extra <= 0) break
    g.target++
    extra--
  }
  return out.sort((a, b) => a.group - b.group)
}

/**
 * The plan. `weights` maps every group to its weight (ignored for `by: 'slots'`). Call
 * checkRebalanceable first; this only assumes every slot is online in a known group.
 */
export function planRebalance(topo: Topology, by: RebalanceBy, weights?: Map<number, number>): RebalancePlan {
  checkRebalanceable(topo, by, weights)
  const owned = new Map<number, number[]>()
  for (const id of topo.groups.keys()) owned.set(id, [])
  for (const s of topo.slots) owned.get(s.group)?.push(s.id)
  const shares = targetCounts(
    [...topo.groups.keys()].map((id) => ({group: id, weight: by === 'memory' ? weights!.get(id)! : 1, current: owned.get(id)!.length})),
    topo.slots.length,
  )
  const given: {slot: number; from: number}[] = []
  for (const g of shares) {
    const mine = owned.get(g.group)!
    if (g.current > g.target) for (const slot of mine.slice(g.target)) given.push({slot, from: g.group})
  }
  given.sort((a, b) => a.slot - b.slot)
  const moves: SlotMove[] = []
  let i = 0
  for (const g of shares) {
    for (let n = g.current; n < g.target; n++) {
      const x = given[i++]!
      moves.push({slot: x.slot, from: x.from, to: g.group})
    }
  }
  moves.sort((a, b) => a.slot - b.slot)
  return {by, groups: shares, moves, ranges: moveRanges(moves)}
}

export function moveRanges(moves: SlotMove[]): MoveRange[] {
  const out: MoveRange[] = []
  for (const m of [...moves].sort((a, b) => a.slot - b.slot)) {
    const last = out[out.length - 1]
    if (last && last.to === m.slot - 1 && last.fromGroup === m.from && last.toGroup === m.to) {
      last.to = m.slot
      last.count++
    } else {
      out.push({from: m.slot, to: m.slot, count: 1, fromGroup: m.from, toGroup: m.to})
    }
  }
  return out
}

/** The slots of the topology, for callers that only have SlotInfo[] (tests). */
export function slotCounts(slots: SlotInfo[]): Map<number, number> {
  const m = new Map<number, number>()
  for (const s of slots) if (s.state !== 'offline') m.set(s.group, (m.get(s.group) ?? 0) + 1)
  return m
}
