import {setTimeout as sleep} from 'node:timers/promises'
import {ConflictError, RstoreError, ValidationError} from '../errors.js'
import {
  topologyProblem,
  validateGroup,
  type GroupInfo,
  type ProxyInfo,
  type SlotInfo,
  type SlotState,
  type Topology,
} from '../topology/model.js'
import {SLOT_COUNT} from '../topology/slots.js'
import {KeyLayout} from './layout.js'
import type {Compare, Coordinator, KeyValue, Op, Watcher} from './types.js'

/** What an update writes: whole slot and group records (and groups to delete). */
export interface TopologyChange {
  slots?: SlotInfo[]
  groups?: GroupInfo[]
  deleteGroups?: number[]
}

/** Facts about the stored topology that are not part of Topology itself, passed to update's change(). */
export interface TopologyMeta {
  /** `slot init` has run (the slots/ keys exist). */
  initialized: boolean
  /** modRevision of the epoch key (0 when it does not exist yet). */
  epochRevision: number
}

/** A stored value that cannot be parsed. */
export class CorruptError extends RstoreError {
  constructor(message: string) {
    super('ECORRUPT', message)
    this.name = 'CorruptError'
  }
}

/**
 * update() was refused because one of the caller's extraCompares no longer held (the topology itself
 * had not changed). Callers catch it to say which of their conditions failed.
 */
export class PreconditionFailedError extends ConflictError {
  constructor(message = 'a condition checked together with this topology change no longer holds; nothing was written') {
    super(message)
    this.name = 'PreconditionFailedError'
  }
}

const SLOT_STATES: ReadonlySet<string> = new Set<SlotState>(['offline', 'online', 'migrating'])
const UPDATE_ATTEMPTS = 8

/**
 * The one module through which topology (slots, groups, epoch, proxies) is read from and written to the
 * coordinator, under `/rstore/<product>/` (README.md "Coordinator data model").
 *
 * Every routing change goes through update(): one transaction that writes the changed records plus
 * epoch+1 and compares the epoch key's modRevision, so changes are serialized and every change is
 * visible to proxies as one new epoch. Nothing else may write slots/ or groups/.
 */
export class TopologyStore {
  /** Every key of the product (the one owner of the layout). */
  readonly keys: KeyLayout
  readonly prefix: string
  private readonly slotsPrefix: string
  private readonly groupsPrefix: string
  private readonly epochKey: string
  /** Parsed slot and group records by key, with the stored text they were parsed from. */
  private records = new Map<string, CachedRecord>()
  /** parse() calls so far (marks the records a parse saw; the others are dropped). */
  private parses = 0
  /**
   * The last topology read or written by this store (frozen records), valid while the epoch key's
   * modRevision is still meta.epochRevision: every write to slots/ or groups/ also writes the epoch.
   */
  private snapshot: {topo: Topology; meta: TopologyMeta} | null = null

  constructor(
    readonly coord: Coordinator,
    readonly product: string,
  ) {
    this.keys = new KeyLayout(product)
    this.prefix = this.keys.prefix
    this.slotsPrefix = this.keys.slotsPrefix
    this.groupsPrefix = this.keys.groupsPrefix
    this.epochKey = this.keys.epoch
  }

  /** The epoch key or a slots/ or groups/ record: what a change of the topology writes. */
  isTopologyKey(key: string): boolean {
    return key === this.epochKey || key.startsWith(this.slotsPrefix) || key.startsWith(this.groupsPrefix)
  }

  /**
   * The topology as one consistent snapshot. When the epoch key has not been written since this store
   * last read or wrote the topology, that snapshot is returned after one get() of the epoch key;
   * otherwise one list() of the product prefix (only changed records are parsed again).
   */
  async load(): Promise<Topology> {
    return (await this.loadWithMeta()).topo
  }

  /** load() plus the facts update() needs (initialized, the epoch key's modRevision). */
  async loadWithMeta(): Promise<{topo: Topology; meta: TopologyMeta}> {
    return copyOf(await this.read())
  }

  /** The current snapshot (validated by one get(), else listed and parsed); not to be handed out. */
  private async read(): Promise<{topo: Topology; meta: TopologyMeta}> {
    const snap = this.snapshot
    if (snap && snap.meta.epochRevision > 0) {
      const kv = await this.coord.get(this.epochKey)
      if (kv && kv.modRevision === snap.meta.epochRevision) return snap
    }
    // (Concurrent reads may keep an older snapshot last: it only fails the next check.)
    this.snapshot = this.parse(await this.coord.list(this.prefix))
    return this.snapshot
  }

  /**
   * The topology in the keys of one list() of the product prefix (e.g. a proxy's, which also reads
   * the rules config from it). Records whose stored text did not change since this store last parsed
   * them are not parsed again. The result's arrays and map are the caller's; its SlotInfo and
   * GroupInfo objects are shared and frozen.
   */
  parseKvs(kvs: KeyValue[]): {topo: Topology; meta: TopologyMeta} {
    return this.parse(kvs)
  }

  /** True once `slot init` has created the slot table. */
  async slotsInitialized(): Promise<boolean> {
    const kv = await this.coord.get(this.keys.slot(0))
    if (kv) return true
    return (await this.coord.list(this.slotsPrefix)).length > 0
  }

  /** The registered proxies, sorted by id. */
  async proxies(): Promise<ProxyInfo[]> {
    const prefix = this.keys.proxiesPrefix
    const out: ProxyInfo[] = []
    for (const kv of await this.coord.list(prefix)) {
      out.push(this.json<ProxyInfo>(kv))
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /**
   * Optimistic transaction: reads the topology, calls change(topo, meta), which returns the records to
   * write (or throws a typed error, which is passed through with nothing written), checks the result
   * (valid groups, online/migrating slots owned by existing groups, at most one migrating slot), and
   * writes it plus epoch+1 in ONE coordinator transaction that compares the epoch key's modRevision
   * and extraCompares. On a concurrent topology change it re-reads and calls change() again (a few
   * times). If only an extraCompare failed, throws PreconditionFailedError. Returns the new epoch, or
   * the current one when change() returned nothing to write (and extraOps is empty).
   */
  async update(
    change: (topo: Topology, meta: TopologyMeta) => TopologyChange,
    extraCompares: Compare[] = [],
    extraOps: Op[] = [],
  ): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      // change() gets a copy: what it does to it cannot reach the snapshot kept for the next read.
      const base = await this.read()
      const {topo, meta} = copyOf(base)
      const ch = change(topo, meta)
      const slots = ch.slots ?? []
      const groups = ch.groups ?? []
      const deleteGroups = ch.deleteGroups ?? []
      if (!slots.length && !groups.length && !deleteGroups.length && !extraOps.length) return base.topo.epoch
      this.check(base.topo, slots, groups, deleteGroups)

      const epoch = base.topo.epoch + 1
      const ops: Op[] = []
      for (const s of slots) ops.push({type: 'put', key: this.keys.slot(s.id), value: JSON.stringify(slotRecord(s))})
      for (const g of groups) ops.push({type: 'put', key: this.keys.group(g.id), value: JSON.stringify(groupRecord(g))})
      for (const id of deleteGroups) ops.push({type: 'delete', key: this.keys.group(id)})
      ops.push({type: 'put', key: this.epochKey, value: JSON.stringify(epoch)})
      ops.push(...extraOps)
      const compares: Compare[] = [{key: this.epochKey, modRevision: base.meta.epochRevision}, ...extraCompares]
      const res = await this.coord.txn(compares, ops)
      if (res.succeeded) {
        this.afterWrite(base, ops, extraOps, res.revision)
        return epoch
      }

      const now = await this.coord.get(this.epochKey)
      if ((now?.modRevision ?? 0) === base.meta.epochRevision) throw new PreconditionFailedError()
      if (attempt >= UPDATE_ATTEMPTS) {
        throw new ConflictError(`the topology kept changing while this change was applied (${attempt} attempts); try again`)
      }
      await sleep(5 + Math.random() * 20 * attempt)
    }
  }

  /**
   * Calls onChange (once per batch of events: the events of one transaction arrive together on both
   * coordinators, so one setImmediate coalesces them) whenever slots/, groups/ or epoch change after the watch
   * starts (or after fromRevision); the caller reloads. Start the watch before load() so that no change
   * falls between the two. If the underlying watch fails (e.g. a compacted revision) it is restarted
   * from the current revision and onChange is called, so the caller reloads and misses nothing.
   */
  async watch(onChange: () => void, fromRevision?: number): Promise<Watcher> {
    let timer: NodeJS.Immediate | undefined
    let closed = false
    let inner: Watcher | undefined
    const fire = () => {
      if (closed || timer) return
      timer = setImmediate(() => {
        timer = undefined
        if (!closed) onChange()
      })
    }
    const start = async (after: number): Promise<void> => {
      inner = await this.coord.watch(
        this.prefix,
        after,
        (ev) => {
          if (this.isTopologyKey(ev.key)) fire()
        },
        () => {
          if (closed) return
          const old = inner
          void (async () => {
            await old?.close().catch(() => {})
            while (!closed) {
              try {
                await start(await this.coord.revision())
                fire()
                return
              } catch {
                await sleep(500)
              }
            }
          })()
        },
      )
      if (closed) await inner.close()
    }
    await start(fromRevision ?? (await this.coord.revision()))
    return {
      close: async () => {
        closed = true
        if (timer) clearImmediate(timer)
        timer = undefined
        await inner?.close()
      },
    }
  }

  // ---- internals ----

  private parse(kvs: KeyValue[]): {topo: Topology; meta: TopologyMeta} {
    const slots: SlotInfo[] = new Array<SlotInfo>(SLOT_COUNT)
    const groups: [number, GroupInfo][] = []
    let epoch = 0
    let epochRevision = 0
    let initialized = false
    const gen = ++this.parses
    let seen = 0
    for (const kv of kvs) {
      // Most keys are slot records stored as this store last parsed them: one map lookup each.
      let c = this.records.get(kv.key)
      if (c === undefined || c.value !== kv.value) {
        if (kv.key === this.epochKey) {
          epoch = this.parseEpoch(kv)
          epochRevision = kv.modRevision
          continue
        }
        c = this.parseRecord(kv)
        if (!c) continue
        this.records.set(kv.key, c)
      }
      c.seen = gen
      seen++
      if (c.slot) {
        slots[c.slot.id] = c.slot
        initialized = true
      } else groups.push([c.group!.id, c.group!])
    }
    if (this.records.size > seen) for (const [key, c] of this.records) if (c.seen !== gen) this.records.delete(key)
    for (let id = 0; id < SLOT_COUNT; id++) slots[id] ??= offlineSlot(id)
    const sorted = new Map(groups.sort((a, b) => a[0] - b[0]))
    return {topo: {epoch, slots, groups: sorted}, meta: {initialized, epochRevision}}
  }

  /** A slots/<id> or groups/<id> record, parsed and frozen; undefined for any other key. */
  private parseRecord(kv: KeyValue): CachedRecord | undefined {
    if (kv.key.startsWith(this.slotsPrefix)) {
      const id = this.keys.parseSlot(kv.key)
      if (id === undefined || id < 0 || id >= SLOT_COUNT) return undefined
      return {value: kv.value, seen: 0, slot: Object.freeze(this.parseSlot(kv, id))}
    }
    if (kv.key.startsWith(this.groupsPrefix)) {
      const id = this.keys.parseGroup(kv.key)
      if (id === undefined || id < 1) return undefined
      return {value: kv.value, seen: 0, group: freezeGroup(this.parseGroup(kv, id))}
    }
    return undefined
  }

  /**
   * After update()'s transaction succeeded at revision: the snapshot it read plus what it wrote is the
   * topology at that revision (the epoch key's new modRevision), unless extraOps touched topology keys.
   */
  private afterWrite(base: {topo: Topology; meta: TopologyMeta}, ops: Op[], extraOps: Op[], revision: number): void {
    const {topo, meta} = base
    if (!(revision > meta.epochRevision) || extraOps.some((op) => this.touchesTopology(op))) return
    const slots = topo.slots.slice()
    const groups = new Map(topo.groups)
    let initialized = meta.initialized
    try {
      for (const op of ops) {
        if (op.type === 'delete') {
          if (op.key.startsWith(this.groupsPrefix)) {
            groups.delete(Number(op.key.slice(this.groupsPrefix.length)))
            this.records.delete(op.key)
          }
          continue
        }
        if (op.type !== 'put') continue
        const c = this.parseRecord({key: op.key, value: op.value, createRevision: revision, modRevision: revision})
        if (!c) continue
        this.records.set(op.key, c)
        if (c.slot) {
          slots[c.slot.id] = c.slot
          initialized = true
        } else groups.set(c.group!.id, c.group!)
      }
    } catch {
      return // a record that does not read back: the next load() lists and reports it
    }
    const sorted = new Map([...groups.entries()].sort((a, b) => a[0] - b[0]))
    this.snapshot = {topo: {epoch: topo.epoch + 1, slots, groups: sorted}, meta: {initialized, epochRevision: revision}}
  }

  /** Whether an extra op of update() writes the epoch, slots/ or groups/ (then no snapshot is kept). */
  private touchesTopology(op: Op): boolean {
    const topoKey = (k: string) => k === this.epochKey || k.startsWith(this.slotsPrefix) || k.startsWith(this.groupsPrefix)
    if (op.type !== 'deletePrefix') return topoKey(op.key)
    return [this.epochKey, this.slotsPrefix, this.groupsPrefix].some((k) => k.startsWith(op.prefix) || op.prefix.startsWith(k))
  }

  private parseEpoch(kv: KeyValue): number {
    const n = this.json<unknown>(kv)
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new CorruptError(`stored ${kv.key} is not an epoch number: ${kv.value}`)
    return n
  }

  private parseSlot(kv: KeyValue, id: number): SlotInfo {
    const v = this.json<Partial<SlotInfo>>(kv)
    if (!v || typeof v !== 'object' || !SLOT_STATES.has(v.state as string) || !Number.isInteger(v.group) || (v.group as number) < 0) {
      throw new CorruptError(`stored ${kv.key} is not a slot record: ${kv.value}`)
    }
    const s: SlotInfo = {id, state: v.state as SlotState, group: v.group as number}
    if (v.from !== undefined && v.from !== null) s.from = v.from
    if (v.pending === true) s.pending = true
    if (v.hold === true) s.hold = true
    return s
  }

  private parseGroup(kv: KeyValue, id: number): GroupInfo {
    const v = this.json<Partial<GroupInfo>>(kv)
    if (!v || typeof v !== 'object' || !Array.isArray(v.servers)) throw new CorruptError(`stored ${kv.key} is not a group record: ${kv.value}`)
    return {
      id,
      servers: v.servers.map((s) => {
        if (!s || typeof s.addr !== 'string' || (s.role !== 'master' && s.role !== 'slave')) {
          throw new CorruptError(`stored ${kv.key} has a bad server entry: ${JSON.stringify(s)}`)
        }
        return {addr: s.addr, role: s.role}
      }),
    }
  }

  private json<T>(kv: KeyValue): T {
    try {
      return JSON.parse(kv.value) as T
    } catch {
      throw new CorruptError(`stored ${kv.key} is not JSON: ${kv.value.slice(0, 80)}`)
    }
  }

  /** The safety net every update passes: the resulting topology must be one a proxy accepts. */
  private check(topo: Topology, slots: SlotInfo[], groups: GroupInfo[], deleteGroups: number[]): void {
    const nextGroups = new Map(topo.groups)
    for (const id of deleteGroups) nextGroups.delete(id)
    for (const g of groups) {
      if (!Number.isInteger(g.id) || g.id < 1) throw new ValidationError(`invalid group id ${g.id}: a group id is an integer >= 1`)
      validateGroup(g)
      nextGroups.set(g.id, g)
    }
    const nextSlots = topo.slots.slice()
    for (const s of slots) {
      if (!Number.isInteger(s.id) || s.id < 0 || s.id >= SLOT_COUNT) throw new ValidationError(`invalid slot ${s.id}`)
      if (!SLOT_STATES.has(s.state)) throw new ValidationError(`invalid slot state '${s.state}' for slot ${s.id}`)
      nextSlots[s.id] = s
    }
    for (const s of nextSlots) {
      if (s.state === 'offline') continue
      if (!nextGroups.has(s.group)) {
        throw new ConflictError(`slot ${s.id} would be ${s.state} in group ${s.group}, which does not exist`)
      }
      if (s.state === 'migrating' && (s.from === undefined || !nextGroups.has(s.from))) {
        throw new ConflictError(`slot ${s.id} would be migrating from group ${s.from ?? '(none)'}, which does not exist`)
      }
    }
    const problem = topologyProblem({epoch: topo.epoch + 1, slots: nextSlots, groups: nextGroups})
    if (problem) throw new ConflictError(problem)
  }
}

function slotRecord(s: SlotInfo): SlotInfo {
  const r: SlotInfo = {id: s.id, state: s.state, group: s.group}
  if (s.state === 'migrating' && s.from !== undefined) r.from = s.from
  if (s.pending) r.pending = true
  if (s.hold && s.state === 'online') r.hold = true
  return r
}

function groupRecord(g: GroupInfo): GroupInfo {
  return {id: g.id, servers: g.servers.map((s) => ({addr: s.addr, role: s.role}))}
}

/** A parsed slot or group record (frozen: shared by every topology that contains it). */
interface CachedRecord {
  /** The stored text it was parsed from. */
  value: string
  /** The last parse() that saw it. */
  seen: number
  slot?: SlotInfo
  group?: GroupInfo
}

const OFFLINE_SLOTS: readonly SlotInfo[] = Array.from({length: SLOT_COUNT}, (_, id) => Object.freeze<SlotInfo>({id, state: 'offline', group: 0}))

function offlineSlot(id: number): SlotInfo {
  return OFFLINE_SLOTS[id]!
}

function freezeGroup(g: GroupInfo): GroupInfo {
  for (const s of g.servers) Object.freeze(s)
  Object.freeze(g.servers)
  return Object.freeze(g)
}

/** A snapshot whose array and map the caller may change (the records in them are frozen). */
function copyOf(snap: {topo: Topology; meta: TopologyMeta}): {topo: Topology; meta: TopologyMeta} {
  const {topo, meta} = snap
  return {topo: {epoch: topo.epoch, slots: topo.slots.slice(), groups: new Map(topo.groups)}, meta: {...meta}}
}

