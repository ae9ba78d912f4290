import {ValidationError} from '../errors.js'
import {SLOT_COUNT} from './slots.js'

export type SlotState = 'offline' | 'online' | 'migrating'
export type ServerRole = 'master' | 'slave'

/** One slot's routing record, stored at `slots/<id>`. */
export interface SlotInfo {
  id: number
  state: SlotState
  /** The group that owns the slot (the target while migrating); 0 when never assigned. */
  group: number
  /** While migrating: the group the keys are moving away from. */
  from?: number
  /**
   * Part of a migration job that has not reached this slot yet: proxies record each key they write
   * in this slot on the source group's pending set, so the mover never scans once per slot.
   */
  pending?: boolean
  /**
   * Online slot next in line in a migration job: every proxy parks its commands (as for a held
   * migrating slot) so that, once every proxy has acknowledged it, the slot can turn migrating and its
   * keys move at once while the barrier of that change is still running (docs/architecture.md rule 4 holds: no
   * proxy sends it anything). At most one slot is held this way.
   */
  hold?: boolean
}

export interface ServerInfo {
  addr: string
  role: ServerRole
}

/** A server group, stored at `groups/<id>`. */
export interface GroupInfo {
  id: number
  servers: ServerInfo[]
}

/** A registered proxy, stored at `proxies/<id>` under the proxy's lease. */
export interface ProxyInfo {
  id: string
  addr: string
  httpAddr: string
  state: 'online' | 'offline'
  appliedEpoch: number
  pid: number
  startedAt: number
  /** Set when the proxy refused the newest topology (e.g. two migrating slots). */
  error?: string
  /** A `--cpu N` worker: the id whose control key (`proxyctl/<id>`) it obeys, shared by the workers. */
  controlId?: string
}

/** The routing table as a proxy sees it. */
export interface Topology {
  epoch: number
  slots: SlotInfo[]
  groups: Map<number, GroupInfo>
}

export function parseSlotId(text: string | number): number {
  const n = typeof text === 'number' ? text : Number(text)
  if (!Number.isInteger(n) || n < 0 || n >= SLOT_COUNT || (typeof text === 'string' && !/^\d+$/.test(text.trim()))) {
    throw new ValidationError(`invalid slot '${text}': a slot is an integer from 0 to ${SLOT_COUNT - 1}`)
  }
  return n
}

export function parseSlotRange(from: string | number, to: string | number): [number, number] {
  const a = parseSlotId(from)
  const b = parseSlotId(to)
  if (a > b) throw new ValidationError(`invalid slot range ${a}-${b}: the first slot must not be greater than the last`)
  return [a, b]
}

export function parseGroupId(text: string | number): number {
  const n = typeof text === 'number' ? text : Number(text)
  if (!Number.isInteger(n) || n < 1 || (typeof text === 'string' && !/^\d+$/.test(text.trim()))) {
    throw new ValidationError(`invalid group id '${text}': a group id is an integer >= 1`)
  }
  return n
}

export function parseRole(text: string): ServerRole {
  if (text === 'master' || text === 'slave') return text
  throw new ValidationError(`invalid role '${text}': use master or slave`)
}

/** host:port with a port in 1..65535. */
export function parseAddr(text: string): {host: string; port: number; addr: string} {
  const m = /^(.+):(\d{1,5})$/.exec(text)
  const port = m ? Number(m[2]) : 0
  if (!m || port < 1 || port > 65535) {
    throw new ValidationError(`invalid address '${text}': use host:port, e.g. 127.0.0.1:6379`)
  }
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1')
  return {host, port, addr: text}
}

export function masterOf(group: GroupInfo): ServerInfo | undefined {
  return group.servers.find((s) => s.role === 'master')
}

/** Checks the invariants a group must keep: at most one master, no duplicate address. */
export function validateGroup(group: GroupInfo): void {
  const masters = group.servers.filter((s) => s.role === 'master')
  if (masters.length > 1) {
    throw new ValidationError(`group ${group.id} would have two masters (${masters.map((s) => s.addr).join(', ')})`)
  }
  const seen = new Set<string>()
  for (const s of group.servers) {
    if (seen.has(s.addr)) throw new ValidationError(`server ${s.addr} is listed twice in group ${group.id}`)
    seen.add(s.addr)
  }
}

/** The slots that are migrating; rule 3 says there may be at most one. */
export function migratingSlots(slots: SlotInfo[]): SlotInfo[] {
  return slots.filter((s) => s.state === 'migrating')
}

/**
 * Checks a whole topology before a proxy applies it. Returns a reason when it must be refused
 * (the proxy then keeps its last good topology), else undefined.
 */
export function topologyProblem(topo: Topology): string | undefined {
  const migrating = migratingSlots(topo.slots)
  if (migrating.length > 1) {
    return `topology epoch ${topo.epoch} has ${migrating.length} migrating slots (${migrating
      .map((s) => s.id)
      .join(', ')}); at most one may migrate`
  }
  const held = topo.slots.filter((s) => s.hold)
  const badHold = held.find((s) => s.state !== 'online')
  if (badHold) return `topology epoch ${topo.epoch}: slot ${badHold.id} is ${badHold.state} and held; only an online slot may be held`
  if (held.length > 1) return `topology epoch ${topo.epoch} has ${held.length} held slots (${held.map((s) => s.id).join(', ')}); at most one may be held`
  return undefined
}
