/**
 * Slot administration (`rstore slot ...`, and later the REST API): init, info, list, set, range-set.
 * Every refusal throws a typed error before anything is written; every write is one TopologyStore.update.
 */
import {parseMigrationLock} from '../coord/layout.js'
import {PreconditionFailedError, type TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError, ValidationError} from '../errors.js'
import {masterOf, parseGroupId, parseSlotId, parseSlotRange, type SlotInfo, type SlotState, type Topology} from '../topology/model.js'
import {SLOT_COUNT, slotIdsText} from '../topology/slots.js'

export type SlotStatus = 'online' | 'offline'

/** A run of consecutive slots with the same state, group (and source group while migrating). */
export interface SlotRange {
  from: number
  to: number
  count: number
  state: SlotState
  group: number
  /** While migrating: the group the keys move away from. */
  fromGroup?: number
  /** Waiting in a migration job (see SlotInfo.pending). */
  pending?: boolean
  /** Next in line in a migration job: the proxies park its commands (see SlotInfo.hold). */
  hold?: boolean
}

export function parseStatus(text: string): SlotStatus {
  if (text === 'online' || text === 'offline') return text
  if (text === 'migrating') {
    throw new ValidationError('a slot cannot be set to migrating by hand', "'rstore migrate <from> <to> <group>' moves slots with their data")
  }
  throw new ValidationError(`invalid status '${text}': use online or offline`)
}

/** Consecutive slots with equal state/group/from, in slot order. */
export function compactSlots(slots: SlotInfo[]): SlotRange[] {
  const out: SlotRange[] = []
  for (const s of slots) {
    const last = out[out.length - 1]
    const fromGroup = s.state === 'migrating' ? s.from : undefined
    if (
      last &&
      last.to === s.id - 1 &&
      last.state === s.state &&
      last.group === s.group &&
      last.fromGroup === fromGroup &&
      !!last.pending === !!s.pending &&
      !!last.hold === !!s.hold
    ) {
      last.to = s.id
      last.count++
    } else {
      const r: SlotRange = {from: s.id, to: s.id, count: 1, state: s.state, group: s.group}
      if (fromGroup !== undefined) r.fromGroup = fromGroup
      if (s.pending) r.pending = true
      if (s.hold) r.hold = true
      out.push(r)
    }
  }
  return out
}

export interface MigrationLock {
  job?: string
  host?: string
  pid?: number
}

/** The running data-moving job holding `locks/migration`, if any. */
export async function migrationLock(store: TopologyStore): Promise<MigrationLock | undefined> {
  const kv = await store.coord.get(store.keys.migrationLock)
  if (!kv) return undefined
  return parseMigrationLock(kv.value) ?? {}
}

function describeLock(lock: MigrationLock): string {
  return `${lock.job ?? 'a migration job'}${lock.host || lock.pid ? ` (${[lock.host, lock.pid && `pid ${lock.pid}`].filter(Boolean).join(', ')})` : ''}`
}

export interface InitResult {
  epoch: number
  slots: number
  /** True when an existing table was reset (--force). */
  reset: boolean
}

/**
 * Creates the 1024 slots offline (group 0). Refuses to wipe an existing table unless force, and always
 * refuses while a migration job holds `locks/migration`.
 */
export async function initSlots(store: TopologyStore, opts: {force?: boolean} = {}): Promise<InitResult> {
  const lockKey = store.keys.migrationLock
  const lock = await migrationLock(store)
  if (lock) throw new ConflictError(`cannot initialize the slots while ${describeLock(lock)} is running: wait for it to finish or stop it`)
  let reset = false
  try {
    const epoch = await store.update(
      (topo, meta) => {
        if (meta.initialized && !opts.force) {
          const used = topo.slots.filter((s) => s.state !== 'offline').length
          throw new ConflictError(
            `the slots of product '${store.product}' are already initialized (${used} of them online or migrating); use --force to reset all ${SLOT_COUNT} to offline`,
          )
        }
        reset = meta.initialized
        const slots: SlotInfo[] = []
        for (let id = 0; id < SLOT_COUNT; id++) slots.push({id, state: 'offline', group: 0})
        return {slots}
      },
      [{key: lockKey, modRevision: 0}],
    )
    return {epoch, slots: SLOT_COUNT, reset}
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      throw new ConflictError('cannot initialize the slots: a migration job started meanwhile; wait for it to finish or stop it')
    }
    throw err
  }
}

export interface SlotInfoResult {
  epoch: number
  slot: SlotInfo
  /** The owning group's master address, when it has one. */
  master?: string
  /** While migrating: the source group's master address. */
  fromMaster?: string
}

export async function slotInfo(store: TopologyStore, slotText: string | number): Promise<SlotInfoResult> {
  const id = parseSlotId(slotText)
  const {topo, meta} = await store.loadWithMeta()
  requireInitialized(store, meta.initialized)
  const slot = topo.slots[id]!
  const res: SlotInfoResult = {epoch: topo.epoch, slot}
  const g = topo.groups.get(slot.group)
  const m = g && masterOf(g)
  if (m) res.master = m.addr
  if (slot.from !== undefined) {
    const f = topo.groups.get(slot.from)
    const fm = f && masterOf(f)
    if (fm) res.fromMaster = fm.addr
  }
  return res
}

export interface SlotListResult {
  epoch: number
  initialized: boolean
  ranges: SlotRange[]
}

export async function listSlots(store: TopologyStore): Promise<SlotListResult> {
  const {topo, meta} = await store.loadWithMeta()
  return {epoch: topo.epoch, initialized: meta.initialized, ranges: meta.initialized ? compactSlots(topo.slots) : []}
}

export interface SetSlotsResult {
  epoch: number
  from: number
  to: number
  group: number
  state: SlotStatus
  /** How many slots actually changed (0: nothing was written, the epoch is unchanged). */
  changed: number
}

/**
 * `slot range-set <from> <to> <group> <status>` (and `slot set`, a range of one). Refused: bad or
 * reversed range, slots not initialized, group missing or without master, a slot of the range migrating,
 * an online slot that would change group (that moves data: `rstore migrate`) unless force.
 */
export async function setSlotRange(
  store: TopologyStore,
  fromText: string | number,
  toText: string | number,
  groupText: string | number,
  statusText: string,
  opts: {force?: boolean} = {},
): Promise<SetSlotsResult> {
  const [from, to] = parseSlotRange(fromText, toText)
  const group = parseGroupId(groupText)
  const state = parseStatus(statusText)
  let changed = 0
  const epoch = await store.update((topo, meta) => {
    requireInitialized(store, meta.initialized)
    requireServingGroup(topo, group)
    const range = topo.slots.slice(from, to + 1)
    const migrating = range.filter((s) => s.state === 'migrating')
    if (migrating.length) {
      const s = migrating[0]!
      throw new ConflictError(
        `slot ${s.id} is migrating from group ${s.from} to group ${s.group}`,
        "wait for 'rstore migrate' to finish it (or resume it) before setting it",
      )
    }
    const pending = range.filter((s) => s.pending)
    if (pending.length) {
      throw new ConflictError(
        `slot${pending.length > 1 ? 's' : ''} ${slotIdsText(pending.map((s) => s.id))} ${pending.length > 1 ? 'are' : 'is'} pending in an unfinished migration job`,
        "finish it first ('rstore migrate' resumes it)",
      )
    }
    if (!opts.force) {
      const moving = range.filter((s) => s.state === 'online' && s.group !== group)
      if (moving.length) {
        const groups = [...new Set(moving.map((s) => s.group))].join(', ')
        throw new ConflictError(
          `slot${moving.length > 1 ? 's' : ''} ${slotIdsText(moving.map((s) => s.id))} ${moving.length > 1 ? 'are' : 'is'} online in group ${groups}: ` +
            `moving ${moving.length > 1 ? 'them' : 'it'} to group ${group} would strand ${moving.length > 1 ? 'their' : 'its'} keys: that is the job of 'rstore migrate ${from} ${to} ${group}' (use --force only for empty slots)`,
        )
      }
    }
    const slots = range.filter((s) => s.state !== state || s.group !== group).map((s) => ({id: s.id, state, group}))
    changed = slots.length
    return {slots}
  })
  return {epoch, from, to, group, state, changed}
}

export async function setSlot(
  store: TopologyStore,
  slotText: string | number,
  groupText: string | number,
  statusText: string,
  opts: {force?: boolean} = {},
): Promise<SetSlotsResult> {
  const id = parseSlotId(slotText)
  return setSlotRange(store, id, id, groupText, statusText, opts)
}

function requireInitialized(store: TopologyStore, initialized: boolean): void {
  if (!initialized) throw new ConflictError(`the slots of product '${store.product}' are not initialized`, "run 'rstore slot init' first")
}

/** The group exists and has a master (slots can only be served by a group with a master). */
export function requireServingGroup(topo: Topology, group: number): void {
  const g = topo.groups.get(group)
  if (!g) throw new NotFoundError(`group ${group} does not exist`, `create it with 'rstore server add-group ${group}' and add a master`)
  if (!masterOf(g)) throw new ConflictError(`group ${group} has no master`, `add one with 'rstore server add ${group} <host:port> master'`)
}
