import type {TopologyStore} from '../coord/topology-store.js'
import {masterOf, type SlotInfo} from '../topology/model.js'
import {compileRules, RouteError, type DbGroup, type RoutePath} from '../topology/rules.js'
import {slotOf} from '../topology/slots.js'
import {loadRulesConfig} from './rules-config.js'

export interface RouteMember {
  unit: string
  type: string
  enable: boolean
  isMaster: boolean
  readWeight: number
  /** Where the unit is (URL without password, or host:port). */
  address: string
}

export type RouteResult =
  | {
      key: string
      kind: 'rule'
      epoch: number
      path: RoutePath
      group: {name: string; type: string; enable: boolean; replicateMode: DbGroup['replicateMode']; cache?: string}
      members: RouteMember[]
      /** Units a read may go to (enabled, readWeight > 0). */
      readUnits: string[]
      /** Units a write goes to, by replicate mode. */
      writeUnits: string[]
    }
  | {key: string; kind: 'unregistered'; epoch: number; error: string}
  | {key: string; kind: 'slot'; epoch: number; slot: number; state: SlotInfo['state']; group: number; master?: string; from?: number; pending?: boolean}

function hidePassword(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}

/**
 * The path a key takes: with rules configured, the first matching rule, its capture, the shard chain,
 * the db group and its units (or 'unregistered' when no rule matches); with no rules, its slot, the
 * slot's state and group.
 */
export async function routeKey(store: TopologyStore, key: string): Promise<RouteResult> {
  const {config, epoch} = await loadRulesConfig(store)
  const rules = compileRules(config)
  if (rules.requiresRules) {
    let path: RoutePath | undefined
    try {
      path = rules.route(key)
    } catch (err) {
      if (err instanceof RouteError) return {key, kind: 'unregistered', epoch, error: err.message}
      throw err
    }
    if (!path) return {key, kind: 'unregistered', epoch, error: 'key not registered: no rule matches it'}
    const g = rules.groups.get(path.dbgroup)!
    const members = g.items.map((it) => {
      const u = rules.units.get(it.name)!
      return {
        unit: it.name,
        type: u.type,
        enable: u.enable,
        isMaster: it.isMaster,
        readWeight: it.readWeight,
        address: u.url ? hidePassword(u.url) : `${u.server}:${u.port}`,
      }
    })
    const group: {name: string; type: string; enable: boolean; replicateMode: DbGroup['replicateMode']; cache?: string} = {
      name: g.name,
      type: g.type,
      enable: g.enable,
      replicateMode: g.replicateMode,
    }
    if (g.cache) group.cache = g.cache
    return {
      key,
      kind: 'rule',
      epoch,
      path,
      group,
      members,
      readUnits: rules.readable(g.name).map((m) => m.unit),
      writeUnits: rules.writeUnits(g.name),
    }
  }
  const topo = await store.load()
  const slot = slotOf(Buffer.from(key))
  const s = topo.slots[slot]!
  const res: RouteResult = {key, kind: 'slot', epoch: topo.epoch, slot, state: s.state, group: s.group}
  const grp = topo.groups.get(s.group)
  const m = grp && masterOf(grp)
  if (m) res.master = m.addr
  if (s.state === 'migrating' && s.from !== undefined) res.from = s.from
  if (s.pending) res.pending = true
  return res
}
