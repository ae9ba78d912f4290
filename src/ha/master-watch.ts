/**
 * The leader's check of every group's master (docs/agent.md "Failover"): each `checkIntervalMs` the
 * leader PINGs each recorded master; one that has failed every check for `downAfterMs` is replaced by
 * its best replica through `promoteServer` (the code behind `rstore server promote`) on a fenced
 * store, so only the current leader's promotion can switch the record. A recorded slave that answers
 * as a master (an old master restarted after a failover) is told REPLICAOF the recorded master.
 */
import type {RedisOps} from '../backends/redis-ops.js'
import {TopologyStore} from '../coord/topology-store.js'
import type {Coordinator} from '../coord/types.js'
import {promoteServer} from '../service/servers.js'
import {masterOf, type GroupInfo} from '../topology/model.js'
import {FencedTopologyStore} from './fenced-store.js'
import {DeposedError, type LeaderElection} from './leader.js'

export const DEFAULT_CHECK_INTERVAL_MS = 1000
export const DEFAULT_DOWN_AFTER_MS = 3000
const KEEP_FAILOVERS = 20

export interface FailoverRecord {
  group: number
  oldMaster: string
  newMaster: string | null
  /** When the master's checks started failing, and when the decision was taken. */
  downSince: number
  at: number
  result: 'promoted' | 'no-candidate' | 'refused' | 'failed'
  detail: string
  epoch: number | null
}

export interface MasterWatchOptions {
  checkIntervalMs: number
  downAfterMs: number
}

export class MasterWatch {
  private readonly failingSince = new Map<string, number>()
  private readonly store: TopologyStore
  private readonly records: FailoverRecord[] = []
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> = Promise.resolve()
  private stopped = false
  private lastError = ''

  constructor(
    private readonly coord: Coordinator,
    private readonly product: string,
    private readonly election: LeaderElection,
    private readonly redis: RedisOps,
    private readonly opts: MasterWatchOptions,
    private readonly log: (line: string) => void,
  ) {
    this.store = new TopologyStore(coord, product)
  }

  get failovers(): FailoverRecord[] {
    return [...this.records]
  }

  start(): void {
    const tick = () => {
      this.running = this.round()
        .catch((err: Error) => {
          // Said once per distinct failure (a coordinator down for minutes is one line, not thousands).
          if (err.message !== this.lastError) this.log(`master check: ${err.message}`)
          this.lastError = err.message
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.checkIntervalMs)
        })
    }
    this.timer = setTimeout(tick, this.opts.checkIntervalMs)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.running
  }

  /** One check of every group; only the leader checks (a follower forgets what it saw). */
  async round(): Promise<void> {
    if (!this.election.isLeader) {
      this.failingSince.clear()
      return
    }
    const topo = await this.store.load()
    this.lastError = ''
    await Promise.all([...topo.groups.values()].map((g) => this.checkGroup(g)))
  }

  private async checkGroup(group: GroupInfo): Promise<void> {
    const master = masterOf(group)
    if (!master) return
    try {
      await this.redis.ping(master.addr)
    } catch (err) {
      const now = Date.now()
      const since = this.failingSince.get(master.addr) ?? now
      if (!this.failingSince.has(master.addr)) this.log(`master check: group ${group.id} master ${master.addr} does not answer (${(err as Error).message})`)
      this.failingSince.set(master.addr, since)
      if (now - since >= this.opts.downAfterMs) {
        this.failingSince.delete(master.addr)
        await this.failover(group, master.addr, since)
      }
      return
    }
    if (this.failingSince.delete(master.addr)) this.log(`master check: group ${group.id} master ${master.addr} answers again: no failover`)
    await this.repointReturnedMasters(group, master.addr)
  }

  /** A recorded slave that runs as a master (an old master back after a failover) follows the recorded master. */
  private async repointReturnedMasters(group: GroupInfo, master: string): Promise<void> {
    for (const s of group.servers) {
      if (s.role !== 'slave') continue
      const rep = await this.redis.replication(s.addr).catch(() => undefined)
      if (rep?.role !== 'master' || this.election.token === null) continue
      await this.redis.replicaOf(s.addr, master).then(
        () => this.log(`master check: group ${group.id}: ${s.addr} answers as a master but is recorded as a slave: told REPLICAOF ${master}`),
        (err: Error) => this.log(`master check: group ${group.id}: could not point ${s.addr} at ${master}: ${err.message}`),
      )
    }
  }

  /** The replica that answers with the highest replication offset becomes the master. */
  private async failover(group: GroupInfo, old: string, downSince: number): Promise<void> {
    const record = (r: Omit<FailoverRecord, 'group' | 'oldMaster' | 'downSince' | 'at'>) => {
      const full = {group: group.id, oldMaster: old, downSince, at: Date.now(), ...r}
      this.records.push(full)
      if (this.records.length > KEEP_FAILOVERS) this.records.shift()
      this.log(`failover: group ${group.id} master ${old} down for ${full.at - downSince} ms: ${r.result}${r.newMaster ? ` ${r.newMaster}` : ''} (${r.detail})`)
    }
    const candidates: {addr: string; offset: number}[] = []
    for (const s of group.servers) {
      if (s.role !== 'slave') continue
      const rep = await this.redis.replication(s.addr).catch(() => undefined)
      if (rep) candidates.push({addr: s.addr, offset: rep.offset})
    }
    candidates.sort((a, b) => b.offset - a.offset)
    const best = candidates[0]
    if (!best) return record({newMaster: null, result: 'no-candidate', detail: 'no replica of the group answers; nothing changed', epoch: null})
    const token = this.election.token
    if (token === null) return record({newMaster: null, result: 'refused', detail: 'no longer the leader', epoch: null})
    const store = new FencedTopologyStore(this.coord, this.product, this.election, token)
    try {
      const res = await promoteServer(store, group.id, best.addr, {redis: this.redis, force: true})
      const others = candidates.length - 1
      record({newMaster: best.addr, result: 'promoted', detail: `offset ${best.offset}, ${others} other replica(s) answering; repointed ${res.repointed.join(', ') || 'none'}${res.warnings.length ? `; ${res.warnings.join('; ')}` : ''}`, epoch: res.epoch})
    } catch (err) {
      record({newMaster: best.addr, result: err instanceof DeposedError ? 'refused' : 'failed', detail: (err as Error).message, epoch: null})
    }
  }
}
