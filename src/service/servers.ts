/**
 * Server-group administration (`rstore server ...`, and later the REST API): add-group, remove-group,
 * add, remove, promote, list. Every refusal throws a typed error before anything is written or any
 * server is touched; every record change is one TopologyStore.update (so it bumps the epoch).
 *
 * Replication policy (rstore keeps each group's servers replicating as recorded):
 * - `add <g> <addr> slave`: the server is told `REPLICAOF <master>` when the group has a master (its own
 *   data is replaced by the master's); without a master it is recorded and pointed at the master that
 *   is added later.
 * - `add <g> <addr> master`: the server must not be a replica itself (refused: run `REPLICAOF NO ONE` on
 *   it, or add it as a slave); the group's existing slaves are told `REPLICAOF <addr>`.
 * - `remove`: only the record changes; the removed server is not touched.
 * - `promote <g> <addr>`: writes are paused on the old master (`CLIENT PAUSE WRITE`) while the replica
 *   catches up, then `REPLICAOF NO ONE` on it, the record is switched in one transaction, and the old
 *   master and the other slaves are told `REPLICAOF <addr>`. Writes that waited in the pause fail with
 *   READONLY rather than being lost. If the old master does not answer it is skipped (failover).
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {ConflictError, NotFoundError} from '../errors.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {
  masterOf,
  parseAddr,
  parseGroupId,
  parseRole,
  type GroupInfo,
  type ServerInfo,
  type ServerRole,
  type Topology,
} from '../topology/model.js'
import {parseServerUrl} from '../resp/credentials.js'
import {ensureProxyCredential} from '../backends/proxy-credential.js'
import {redisOps, type RedisOps} from '../backends/redis-ops.js'
import {slotIdsText} from '../topology/slots.js'

export interface ServerAdminOptions {
  /** Redis commands (stubbed in unit tests); default: ioredis with short timeouts. */
  redis?: RedisOps
}

/** The slots a group serves: online or migrating to it, or migrating away from it. */
export function servedSlots(topo: Topology, group: number): number[] {
  return topo.slots.filter((s) => (s.state !== 'offline' && s.group === group) || (s.state === 'migrating' && s.from === group)).map((s) => s.id)
}

function requireGroup(topo: Topology, id: number): GroupInfo {
  const g = topo.groups.get(id)
  if (!g) throw new NotFoundError(`group ${id} does not exist`)
  return g
}

function findServer(topo: Topology, addr: string): {group: GroupInfo; server: ServerInfo} | undefined {
  for (const group of topo.groups.values()) {
    const server = group.servers.find((s) => s.addr === addr)
    if (server) return {group, server}
  }
  return undefined
}

// ---------------------------------------------------------------- groups

export interface GroupResult {
  epoch: number
  group: number
}

export async function addGroup(store: TopologyStore, groupText: string | number): Promise<GroupResult> {
  const id = parseGroupId(groupText)
  const epoch = await store.update((topo) => {
    if (topo.groups.has(id)) throw new ConflictError(`group ${id} already exists`)
    return {groups: [{id, servers: []}]}
  })
  return {epoch, group: id}
}

export async function removeGroup(store: TopologyStore, groupText: string | number): Promise<GroupResult> {
  const id = parseGroupId(groupText)
  const epoch = await store.update((topo) => {
    requireGroup(topo, id)
    const served = servedSlots(topo, id)
    if (served.length) {
      throw new ConflictError(
        `group ${id} serves slot${served.length > 1 ? 's' : ''} ${slotIdsText(served)}`,
        "migrate them to another group first ('rstore migrate')",
      )
    }
    return {deleteGroups: [id]}
  })
  return {epoch, group: id}
}

// ---------------------------------------------------------------- servers

export interface AddServerResult {
  epoch: number
  group: number
  addr: string
  role: ServerRole
  /** The group did not exist and was created (as Reborn's `server add` does). */
  createdGroup: boolean
  /** For a slave: the master it was told to replicate from. */
  replicaOf?: string
  /** Slaves pointed at a newly added master. */
  repointed: string[]
  warnings: string[]
}

function checkAdd(topo: Topology, id: number, addr: string, role: ServerRole): void {
  const found = findServer(topo, addr)
  if (found) {
    throw new ConflictError(
      found.group.id === id
        ? `server ${addr} is already in group ${id} (as ${found.server.role})`
        : `server ${addr} already belongs to group ${found.group.id}: remove it there first`,
    )
  }
  const g = topo.groups.get(id)
  const m = g && masterOf(g)
  if (role === 'master' && m) {
    throw new ConflictError(`group ${id} already has a master (${m.addr})`, `add ${addr} as a slave, then 'rstore server promote ${id} ${addr}'`)
  }
}

/**
 * `server add <g> <addr> <master|slave>`: the server must answer PING; creates the group if missing;
 * refuses a second master, an address already in a group, and a master that is itself a replica.
 */
export async function addServer(
  store: TopologyStore,
  groupText: string | number,
  addrText: string,
  roleText: string,
  opts: ServerAdminOptions = {},
): Promise<AddServerResult> {
  const id = parseGroupId(groupText)
  // redis://user:pass@host:port or rediss://: that credential for this command; host:port is recorded.
  const url = parseServerUrl(addrText)
  const {addr, host} = parseAddr(url.addr)
  const role = parseRole(roleText)
  const redis = opts.redis ?? redisOps({security: url.security})

  const before = await store.load()
  checkAdd(before, id, addr, role)
  const masterBefore = before.groups.get(id) && masterOf(before.groups.get(id)!)?.addr

  await redis.ping(addr)
  const res: AddServerResult = {epoch: 0, group: id, addr, role, createdGroup: false, repointed: [], warnings: []}
  await setupProxyUser(store, redis, before, addr, host, res)
  if (role === 'master') {
    const rep = await redis.replication(addr)
    if (rep.role === 'slave') {
      throw new ConflictError(
        `server ${addr} is a replica of ${rep.masterAddr}: a master must not replicate (run 'REPLICAOF NO ONE' on it, or add it as a slave)`,
      )
    }
  } else if (masterBefore) {
    await redis.replicaOf(addr, masterBefore)
    res.replicaOf = masterBefore
  }

  let slaves: string[] = []
  res.epoch = await store.update((topo) => {
    checkAdd(topo, id, addr, role)
    const g = topo.groups.get(id)
    const m = g && masterOf(g)?.addr
    if (role === 'slave' && m !== masterBefore) {
      throw new ConflictError(`the master of group ${id} changed while ${addr} was being added; run the command again`)
    }
    res.createdGroup = !g
    slaves = g ? g.servers.filter((s) => s.role === 'slave').map((s) => s.addr) : []
    return {groups: [{id, servers: [...(g?.servers ?? []), {addr, role}]}]}
  })

  if (role === 'master') await repointSlaves(redis, slaves, addr, res)
  return res
}

/**
 * Gives the server the proxy's ACL user (docs/security.md): the operator's must log in; rstore's own is
 * (re)created with the same rules every time. Its MIGRATE is limited to the hosts of the group
 * servers, so a server on a new host is added to that list on the servers already recorded.
 */
async function setupProxyUser(store: TopologyStore, redis: RedisOps, topo: Topology, addr: string, host: string, res: {warnings: string[]}): Promise<void> {
  if (!redis.setupProxyUser || !redis.checkLogin) return // unit-test stubs
  const cred = await ensureProxyCredential(store.coord, store.product)
  if (cred.operator) {
    await redis.checkLogin(addr, cred.user, cred.password)
    return
  }
  const others = [...topo.groups.values()].flatMap((g) => g.servers.map((s) => s.addr))
  const oldHosts = new Set(others.map((a) => parseAddr(a).host))
  const hosts = [...oldHosts, host]
  await redis.setupProxyUser(addr, cred.user, cred.password!, hosts)
  if (oldHosts.has(host)) return
  for (const other of others) {
    await redis.setupProxyUser(other, cred.user, cred.password!, hosts).catch((err: Error) => {
      res.warnings.push(`could not let the proxy user on ${other} MIGRATE to ${host}: ${err.message}`)
    })
  }
}

/** Points each slave at the new master; a slave that refuses is a warning, not a failure. */
async function repointSlaves(redis: RedisOps, slaves: string[], addr: string, res: {repointed: string[]; warnings: string[]}): Promise<void> {
  for (const s of slaves) {
    try {
      await redis.replicaOf(s, addr)
      res.repointed.push(s)
    } catch (err) {
      res.warnings.push(`could not point slave ${s} at ${addr}: ${(err as Error).message}`)
    }
  }
}

export interface RemoveServerResult {
  epoch: number
  group: number
  addr: string
  role: ServerRole
}

/** `server remove <g> <addr>`: refused for the master of a group that serves slots. */
export async function removeServer(store: TopologyStore, groupText: string | number, addrText: string): Promise<RemoveServerResult> {
  const id = parseGroupId(groupText)
  const {addr} = parseAddr(addrText)
  let role: ServerRole = 'slave'
  const epoch = await store.update((topo) => {
    const g = requireGroup(topo, id)
    const server = g.servers.find((s) => s.addr === addr)
    if (!server) throw new NotFoundError(`server ${addr} is not in group ${id}`)
    role = server.role
    if (server.role === 'master') {
      const served = servedSlots(topo, id)
      if (served.length) {
        throw new ConflictError(
          `server ${addr} is the master of group ${id}, which serves slot${served.length > 1 ? 's' : ''} ${slotIdsText(served)}`,
          `promote another server first ('rstore server promote ${id} <addr>')`,
        )
      }
    }
    return {groups: [{id, servers: g.servers.filter((s) => s.addr !== addr)}]}
  })
  return {epoch, group: id, addr, role}
}

export interface PromoteResult {
  epoch: number
  group: number
  master: string
  previousMaster?: string
  /** Servers told to replicate from the new master (the old master first when it answered). */
  repointed: string[]
  warnings: string[]
}

export interface PromoteOptions extends ServerAdminOptions {
  /** Promote even if the replica has not caught up with a reachable master (its missing writes are lost). */
  force?: boolean
  /** How long the old master's writes stay paused while the replica catches up. */
  catchUpTimeoutMs?: number
}

/**
 * `server promote <g> <addr>`: makes a slave of the group its master, for real and atomically in the
 * record (see the policy at the top of this file).
 */
export async function promoteServer(
  store: TopologyStore,
  groupText: string | number,
  addrText: string,
  opts: PromoteOptions = {},
): Promise<PromoteResult> {
  const id = parseGroupId(groupText)
  const {addr} = parseAddr(addrText)
  const redis = opts.redis ?? redisOps()
  const catchUpMs = opts.catchUpTimeoutMs ?? 5000

  const check = (topo: Topology): {group: GroupInfo; old?: string} => {
    const group = requireGroup(topo, id)
    const server = group.servers.find((s) => s.addr === addr)
    if (!server) throw new NotFoundError(`server ${addr} is not in group ${id}: add it as a slave first`)
    if (server.role === 'master') throw new ConflictError(`server ${addr} is already the master of group ${id}`)
    return {group, old: masterOf(group)?.addr}
  }
  const {old} = check(await store.load())
  const res: PromoteResult = {epoch: 0, group: id, master: addr, repointed: [], warnings: []}
  if (old) res.previousMaster = old

  await redis.ping(addr)
  let oldUp = false
  if (old) {
    try {
      await redis.ping(old)
      oldUp = true
    } catch (err) {
      res.warnings.push(`old master ${old} does not answer (${(err as Error).message}); promoted without it: point it at ${addr} or remove it`)
    }
  }

  let paused = false
  let detached = false
  const undo = async () => {
    if (detached && old && oldUp) await redis.replicaOf(addr, old).catch(() => {})
    if (paused && old) await redis.unpause(old).catch(() => {})
  }
  let others: string[] = []
  try {
    if (old && oldUp) {
      await redis.pauseWrites(old, catchUpMs + 10_000)
      paused = true
      if (!opts.force) await waitCaughtUp(redis, old, addr, catchUpMs)
    }
    await redis.replicaOf(addr, null)
    detached = true
    // Not caught up with the old master: it may still hold keys a migration already moved off it.
    if (!(old && oldUp && !opts.force)) await dropMovedCopies(store, redis, id, addr, res)
    res.epoch = await store.update((topo) => {
      const now = check(topo)
      if (now.old !== old) throw new ConflictError(`the master of group ${id} changed while promoting ${addr}; run the command again`)
      others = now.group.servers.filter((s) => s.addr !== addr && s.addr !== old).map((s) => s.addr)
      const servers: ServerInfo[] = now.group.servers.map((s) => ({addr: s.addr, role: s.addr === addr ? 'master' : 'slave'}))
      return {groups: [{id, servers}]}
    })
  } catch (err) {
    await undo()
    throw err
  }

  if (old && oldUp) {
    try {
      await redis.replicaOf(old, addr)
      res.repointed.push(old)
    } catch (err) {
      res.warnings.push(`could not point old master ${old} at ${addr}: ${(err as Error).message}`)
    }
    await redis.unpause(old).catch(() => {})
  }
  await repointSlaves(redis, others, addr, res)
  return res
}

/**
 * A promoted replica that had not caught up may hold, of a slot migrating away from its group, keys
 * the old master had already moved to the target (their deletion had not reached it). Left there,
 * the next MIGRATE of such a key meets BUSYKEY and its retry with REPLACE would overwrite the
 * target's newer value; so they are unlinked from the replica before it becomes the master, while
 * nothing routes to it (docs/migration.md "A failover during a migration").
 */
async function dropMovedCopies(store: TopologyStore, redis: RedisOps, group: number, addr: string, res: PromoteResult): Promise<void> {
  const topo = await store.load()
  for (const slot of topo.slots) {
    if (slot.state !== 'migrating' || slot.from !== group) continue
    const target = topo.groups.get(slot.group)
    const targetMaster = target ? masterOf(target)?.addr : undefined
    if (!targetMaster || !redis.dropKeysHeldBy) continue
    const n = await redis.dropKeysHeldBy(addr, targetMaster, slot.id)
    if (n) res.warnings.push(`slot ${slot.id} is migrating to group ${slot.group}: dropped ${n} stale key(s) from ${addr} that ${targetMaster} already holds`)
  }
}

async function waitCaughtUp(redis: RedisOps, master: string, replica: string, timeoutMs: number): Promise<void> {
  const target = (await redis.replication(master)).offset
  const deadline = Date.now() + timeoutMs
  let last = await redis.replication(replica)
  while (!(last.role === 'slave' && last.linkState === 'connected' && last.offset >= target)) {
    if (Date.now() >= deadline) {
      const why =
        last.role !== 'slave'
          ? `it does not replicate (role ${last.role})`
          : last.linkState !== 'connected'
            ? `its link to ${last.masterAddr} is ${last.linkState}`
            : `it is ${target - last.offset} bytes behind`
      throw new ConflictError(
        `server ${replica} has not caught up with master ${master} after ${timeoutMs} ms (${why}); nothing was changed (--force promotes anyway, losing what it lacks)`,
      )
    }
    await sleep(50)
    last = await redis.replication(replica)
  }
}

// ---------------------------------------------------------------- list

export interface GroupSummary {
  id: number
  master?: string
  servers: ServerInfo[]
  /** Slots the group serves (online or migrating). */
  slots: number
}

export interface ServerListResult {
  epoch: number
  groups: GroupSummary[]
}

export async function listServers(store: TopologyStore): Promise<ServerListResult> {
  const topo = await store.load()
  const groups: GroupSummary[] = [...topo.groups.values()].map((g) => {
    const summary: GroupSummary = {id: g.id, servers: g.servers, slots: servedSlots(topo, g.id).length}
    const m = masterOf(g)
    if (m) summary.master = m.addr
    return summary
  })
  return {epoch: topo.epoch, groups}
}
