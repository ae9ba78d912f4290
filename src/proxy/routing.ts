import {masterOf, type Topology} from '../topology/model.js'
import {SLOT_COUNT} from '../topology/slots.js'

/** What the proxy needs to know about one slot, precomputed from the topology. */
export interface SlotRoute {
  state: 'offline' | 'online' | 'migrating'
  /** Master address of the owning group (the target while migrating); '' if none. */
  master: string
  group: number
  /** While migrating: master address of the source group. */
  fromMaster: string
  fromGroup: number
  /** Part of a migration job not yet started: writes record their key in the pending set. */
  pending: boolean
  /**
   * Migrating but not yet acknowledged by every proxy (stored as migrating + pending), or next in line
   * (online + hold): commands wait in the proxy, touching neither side, until the move starts (or the
   * slot is online again). Otherwise a proxy still routing to the source and one already moving keys
   * to the target could each see half of the data.
   */
  hold: boolean
}

export interface RoutingTable {
  epoch: number
  slots: SlotRoute[]
  /** Every master address (for DBSIZE and connection upkeep). */
  masters: string[]
  /** Every group by id, ascending, with its master address ('' if none): the fan-out commands' order. */
  groups: {id: number; master: string}[]
}


export function buildRoutingTable(topo: Topology): RoutingTable {
  const slots: SlotRoute[] = new Array(SLOT_COUNT)
  const masterAddr = (g: number | undefined) => {
    const group = g ? topo.groups.get(g) : undefined
    return group ? (masterOf(group)?.addr ?? '') : ''
  }
  for (let i = 0; i < SLOT_COUNT; i++) {
    const s = topo.slots[i]
    slots[i] = {
      state: s?.state ?? 'offline',
      group: s?.group ?? 0,
      master: masterAddr(s?.group),
      fromGroup: s?.from ?? 0,
      fromMaster: s?.state === 'migrating' ? masterAddr(s.from) : '',
      pending: s?.state === 'online' && Boolean(s.pending),
      hold: (s?.state === 'migrating' && Boolean(s.pending)) || (s?.state === 'online' && Boolean(s.hold)),
    }
  }
  const masters = new Set<string>()
  for (const g of topo.groups.values()) {
    const m = masterOf(g)
    if (m) masters.add(m.addr)
  }
  const groups = [...topo.groups.keys()].sort((a, b) => a - b).map((id) => ({id, master: masterAddr(id)}))
  return {epoch: topo.epoch, slots, masters: [...masters].sort(), groups}
}
