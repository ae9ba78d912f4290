/**
 * Leader election of the HA agents (docs/agent.md "Leader election"): `locks/agent-leader` is
 * created only when absent and bound to the leader's coordinator lease, so one agent leads at a time
 * and a leader killed with SIGKILL is replaced once its lease expires. The revision that created the
 * key is the fencing token: it grows with every new leader, and every leader action is a coordinator
 * transaction that compares the key's modRevision with it, so a deposed leader's late action (one
 * stalled past its lease) is refused by the coordinator itself, not by the leader's own belief.
 */
import {hostname} from 'node:os'
import type {KeyLayout} from '../coord/layout.js'
import type {Compare, Coordinator, Lease, Op, TxnResult} from '../coord/types.js'
import {ConflictError} from '../errors.js'

export const DEFAULT_LEADER_TTL_SEC = 5

export interface LeaderRecord {
  id: string
  host: string
  pid: number
  since: number
}

export interface LeaderStatus {
  /** This agent's id. */
  self: string
  isLeader: boolean
  /** The leader last seen in the coordinator (this agent when it leads). */
  leader: LeaderRecord | null
  /** The leader key's creating revision: this agent's token while it leads, else the leader's. */
  token: number | null
}

export class DeposedError extends ConflictError {
  constructor(id: string, token: number) {
    super(`agent ${id} is no longer the leader (fencing token ${token} is stale): its action was refused`)
    this.name = 'DeposedError'
  }
}

export class LeaderElection {
  private lease: Lease | null = null
  private myToken: number | null = null
  private seen: {record: LeaderRecord | null; token: number | null} = {record: null, token: null}
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> = Promise.resolve()
  private stopped = false

  constructor(
    private readonly coord: Coordinator,
    private readonly keys: KeyLayout,
    readonly id: string,
    private readonly ttlSec: number,
    private readonly log: (line: string) => void,
  ) {}

  get isLeader(): boolean {
    return this.lease !== null
  }

  /** This agent's fencing token while it believes it leads. */
  get token(): number | null {
    return this.myToken
  }

  /** Campaigns now and then every third of the TTL (a free key is taken within ttl/3 of its expiry). */
  start(): void {
    const tick = () => {
      this.running = this.campaign()
        .catch((err: Error) => this.log(`leader election: ${err.message}`))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, Math.max(100, Math.floor((this.ttlSec * 1000) / 3)))
        })
    }
    tick()
  }

  /** One round: read the key; when free, try to create it bound to a new lease. */
  async campaign(): Promise<void> {
    if (this.stopped || this.lease) return
    const key = this.keys.agentLeader
    const kv = await this.coord.get(key)
    if (kv) {
      this.seen = {record: parseLeaderRecord(kv.value), token: kv.modRevision}
      return
    }
    this.seen = {record: null, token: null}
    const record: LeaderRecord = {id: this.id, host: hostname(), pid: process.pid, since: Date.now()}
    const lease = await this.coord.grantLease(this.ttlSec)
    const res = await this.coord.txn([{key, modRevision: 0}], [{type: 'put', key, value: JSON.stringify(record), lease: lease.id}])
    if (!res.succeeded || this.stopped) {
      await lease.revoke().catch(() => {})
      return
    }
    this.lease = lease
    this.myToken = res.revision
    this.seen = {record, token: res.revision}
    this.log(`leader election: ${this.id} is the leader (fencing token ${res.revision})`)
    lease.onLost(() => {
      if (this.lease !== lease) return
      this.lease = null
      this.myToken = null
      this.seen = {record: null, token: null}
      this.log(`leader election: ${this.id} lost its lease: no longer the leader`)
    })
  }

  /** The compare that makes a transaction a leader action: the leader key is still the one we created. */
  fence(token: number): Compare {
    return {key: this.keys.agentLeader, modRevision: token}
  }

  /**
   * A leader action: ops applied only while this agent's leadership (its token) still holds in the
   * coordinator, with the caller's own compares. Refused with DeposedError when it does not.
   */
  async fencedTxn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    const token = this.myToken
    if (token === null) throw new DeposedError(this.id, this.seen.token ?? 0)
    const res = await this.coord.txn([this.fence(token), ...compares], ops)
    if (res.succeeded) return res
    const kv = await this.coord.get(this.keys.agentLeader)
    if (!kv || kv.modRevision !== token) throw new DeposedError(this.id, token)
    return res
  }

  status(): LeaderStatus {
    return {self: this.id, isLeader: this.isLeader, leader: this.seen.record, token: this.seen.token}
  }

  /** Stops keeping the lease alive without giving it up: a stalled leader (a test of fencing). */
  stall(): void {
    this.lease?.release()
  }

  /** Stops campaigning and gives the leadership up at once (the next agent need not wait the TTL). */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.running
    const lease = this.lease
    this.lease = null
    this.myToken = null
    if (lease) {
      await lease.revoke().catch(() => {})
      this.log(`leader election: ${this.id} gave up the leadership`)
    }
  }
}

/** The leader key's value, or null for one that is not ours. */
export function parseLeaderRecord(value: string): LeaderRecord | null {
  try {
    const v = JSON.parse(value) as Partial<LeaderRecord>
    return typeof v.id === 'string' ? {id: v.id, host: String(v.host ?? '?'), pid: Number(v.pid ?? 0), since: Number(v.since ?? 0)} : null
  } catch {
    return null
  }
}
