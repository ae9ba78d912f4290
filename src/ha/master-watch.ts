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
import {chooseCandidate, type ReplicaView} from './candidate.js'
import type {Confirmation} from './confirm.js'
import {offlineLaggingProxies} from './failover-barrier.js'
import {FencedTopologyStore} from './fenced-store.js'
import {DeposedError, type LeaderElection} from './leader.js'
import type {AgentMetrics} from './metrics.js'

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
  result: 'promoted' | 'no-candidate' | 'unconfirmed' | 'refused' | 'failed'
  detail: string
  epoch: number | null
  /** After a promotion: how the proxies took the new epoch, and those set offline (failover-barrier.ts). */
  barrier?: {waitedMs: number; offline: string[]; detail: string}
}

export interface MasterWatchOptions {
  checkIntervalMs: number
  downAfterMs: number
  /** Asks the other live agents whether they see the master down (docs/agent.md "Confirmation"). */
  confirm?: (addr: string) => Promise<Confirmation>
  metrics?: AgentMetrics
  /** How long the proxies get to apply a promotion's epoch before they are set offline. */
  barrierTimeoutMs: number
}

export class MasterWatch {
  private readonly failingSince = new Map<string, number>()
  /** Masters whose current outage was already recorded as unconfirmed (one record per outage). */
  private readonly unconfirmed = new Set<string>()
  private readonly store: TopologyStore
  private readonly records: FailoverRecord[] = []
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> = Promise.resolve()
  private stopped = false
  private lastError = ''
  /** Barriers of past promotions still running: they do not hold up the next checks. */
  private readonly barriers = new Set<Promise<void>>()

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
    await Promise.all(this.barriers)
  }

  /** One check of every group; only the leader checks (a follower forgets what it saw). */
  async round(): Promise<void> {
    if (!this.election.isLeader) {
      this.failingSince.clear()
      this.unconfirmed.clear()
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
      this.opts.metrics?.checks.inc({result: 'failed'})
      const now = Date.now()
      const since = this.failingSince.get(master.addr) ?? now
      if (!this.failingSince.has(master.addr)) this.log(`master check: group ${group.id} master ${master.addr} does not answer (${(err as Error).message})`)
      this.failingSince.set(master.addr, since)
      if (now - since < this.opts.downAfterMs) return
      const confirmation = this.opts.confirm ? await this.opts.confirm(master.addr) : undefined
      if (confirmation && !confirmation.confirmed) {
        // Held back by the agents that see it up; asked again at every check while it stays down here.
        if (!this.unconfirmed.has(master.addr)) this.record(group, master.addr, since, {newMaster: null, result: 'unconfirmed', detail: `${confirmation.summary}: no failover`, epoch: null})
        this.unconfirmed.add(master.addr)
        return
      }
      this.failingSince.delete(master.addr)
      this.unconfirmed.delete(master.addr)
      await this.failover(group, master.addr, since, confirmation?.summary)
      return
    }
    this.opts.metrics?.checks.inc({result: 'ok'})
    this.unconfirmed.delete(master.addr)
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

  private record(group: GroupInfo, old: string, downSince: number, r: Omit<FailoverRecord, 'group' | 'oldMaster' | 'downSince' | 'at'>): FailoverRecord {
    const full: FailoverRecord = {group: group.id, oldMaster: old, downSince, at: Date.now(), ...r}
    this.records.push(full)
    if (this.records.length > KEEP_FAILOVERS) this.records.shift()
    this.opts.metrics?.failovers.inc({result: r.result})
    this.log(`failover: group ${group.id} master ${old} down for ${full.at - downSince} ms: ${r.result}${r.newMaster ? ` ${r.newMaster}` : ''} (${r.detail})`)
    return full
  }

  /** Runs beside the next checks; its outcome is added to the failover's record. */
  private afterPromotion(rec: FailoverRecord, store: TopologyStore, epoch: number): void {
    const task = offlineLaggingProxies(store, this.election, epoch, this.opts.barrierTimeoutMs).then(
      (b) => {
        rec.barrier = b
        if (b.offline.length) this.opts.metrics?.proxiesOffline.inc(b.offline.length)
        this.log(`failover: group ${rec.group}: ${b.detail}`)
      },
      (err: Error) => this.log(`failover: group ${rec.group}: barrier of epoch ${epoch}: ${err.message}`),
    )
    this.barriers.add(task)
    void task.finally(() => this.barriers.delete(task))
  }

  /** The best answering replica by Sentinel's rule (candidate.ts) becomes the master. */
  private async failover(group: GroupInfo, old: string, downSince: number, confirmed?: string): Promise<void> {
    const record = (r: Omit<FailoverRecord, 'group' | 'oldMaster' | 'downSince' | 'at'>): FailoverRecord =>
      this.record(group, old, downSince, confirmed ? {...r, detail: `${confirmed}; ${r.detail}`} : r)
    const answering: ReplicaView[] = []
    const silent: string[] = []
    for (const s of group.servers) {
      if (s.role !== 'slave') continue
      const rep = await this.redis.replication(s.addr).catch(() => undefined)
      if (rep) answering.push({addr: s.addr, offset: rep.offset, priority: rep.priority ?? 100, linkDownSec: rep.linkDownSec ?? 0})
      else silent.push(`${s.addr}: does not answer`)
    }
    const {best, skipped} = chooseCandidate(answering, Date.now() - downSince, this.opts.downAfterMs)
    const why = [...silent, ...skipped].join('; ')
    if (!best) return void record({newMaster: null, result: 'no-candidate', detail: `no replica can be promoted${why ? ` (${why})` : ''}; nothing changed`, epoch: null})
    const token = this.election.token
    if (token === null) return void record({newMaster: null, result: 'refused', detail: 'no longer the leader', epoch: null})
    const store = new FencedTopologyStore(this.coord, this.product, this.election, token)
    try {
      const res = await promoteServer(store, group.id, best.addr, {redis: this.redis, force: true})
      const rec = record({
        newMaster: best.addr,
        result: 'promoted',
        detail: `priority ${best.priority}, offset ${best.offset}; repointed ${res.repointed.join(', ') || 'none'}${why ? `; skipped ${why}` : ''}${res.warnings.length ? `; ${res.warnings.join('; ')}` : ''}`,
        epoch: res.epoch,
      })
      this.afterPromotion(rec, store, res.epoch)
    } catch (err) {
      record({newMaster: best.addr, result: err instanceof DeposedError ? 'refused' : 'failed', detail: (err as Error).message, epoch: null})
    }
  }
}
