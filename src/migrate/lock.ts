/**
 * `locks/migration`: the one running data-moving job of a product (README.md "Coordinator data model"), bound to a
 * coordinator lease so that a mover killed with SIGKILL frees it when the lease expires (a few
 * seconds). Every topology change the mover makes compares the lock's exact value, so a mover that
 * lost its lock can no longer change the topology.
 */
import {hostname} from 'node:os'
import {parseMigrationLock, type MigrationLockHolder} from '../coord/layout.js'
import type {TopologyStore} from '../coord/topology-store.js'
import type {Compare, Lease} from '../coord/types.js'
import {ConflictError, RstoreError} from '../errors.js'

export type LockValue = MigrationLockHolder

export const DEFAULT_LOCK_TTL_SEC = 5

export class LockLostError extends RstoreError {
  constructor(job: string) {
    super('ELOCKLOST', `job ${job} lost the migration lock (its coordinator lease expired): stopped; run the same command again to resume`)
    this.name = 'LockLostError'
  }
}

export class MigrationLock {
  private lostFlag = false
  private readonly lostCbs: (() => void)[] = []

  private constructor(
    readonly store: TopologyStore,
    readonly lease: Lease,
    readonly value: string,
    readonly holder: LockValue,
  ) {
    lease.onLost(() => {
      this.lostFlag = true
      for (const cb of this.lostCbs) cb()
    })
  }

  get key(): string {
    return this.store.keys.migrationLock
  }

  get lost(): boolean {
    return this.lostFlag
  }

  onLost(cb: () => void): void {
    this.lostCbs.push(cb)
  }

  /** The compare every topology change of the job carries: this exact lock is still held. */
  compare(): Compare {
    return {key: this.key, value: this.value}
  }

  /** Throws unless the lock is still held. */
  check(): void {
    if (this.lostFlag) throw new LockLostError(this.holder.job)
  }

  async release(): Promise<void> {
    await this.lease.revoke().catch(() => {})
  }

  /** The current holder of the product's migration lock, if any. */
  static async holder(store: TopologyStore): Promise<LockValue | undefined> {
    const kv = await store.coord.get(store.keys.migrationLock)
    if (!kv) return undefined
    const v = parseMigrationLock(kv.value)
    return v === undefined ? {job: '?', host: '?', pid: 0, startedAt: 0} : (v as LockValue)
  }

  /**
   * Takes the lock for job. If the lock is held by a process of this host that is gone (a mover
   * killed with SIGKILL), waits for its lease to expire (about ttl seconds), saying so. If a live
   * process holds it, refuses naming the job and the process.
   */
  static async acquire(store: TopologyStore, job: string, opts: {ttlSec?: number; log?: (line: string) => void} = {}): Promise<MigrationLock> {
    const ttl = opts.ttlSec ?? DEFAULT_LOCK_TTL_SEC
    const key = store.keys.migrationLock
    const holder: LockValue = {job, host: hostname(), pid: process.pid, startedAt: Date.now()}
    const value = JSON.stringify(holder)
    let waitedFor = ''
    let deadline = 0
    for (;;) {
      const lease = await store.coord.grantLease(ttl)
      const res = await store.coord.txn([{key, modRevision: 0}], [{type: 'put', key, value, lease: lease.id}])
      if (res.succeeded) return new MigrationLock(store, lease, value, holder)
      await lease.revoke().catch(() => {})
      const other = await MigrationLock.holder(store)
      if (!other) continue
      const who = `${other.host === hostname() ? '' : `host ${other.host}, `}pid ${other.pid}`
      const dead = other.host === hostname() && !pidAlive(other.pid)
      // A holder on another host may be alive or not: give its lease one TTL to expire.
      const remote = other.host !== hostname()
      if (remote && !waitedFor) {
        waitedFor = `remote:${other.job}`
        deadline = Date.now() + (ttl + 2) * 1000
      }
      if (!dead && !(remote && Date.now() < deadline)) {
        if (other.job === job) throw new ConflictError(`migration job ${job} is already running (${who})`, `watch it with 'rstore jobs', pause it with 'rstore jobs pause ${job}'`)
        throw new ConflictError(
          `another data-moving job, ${other.job}, is running (${who})`,
          `wait for it to finish, or pause/cancel it with 'rstore jobs pause|cancel ${other.job}'`,
        )
      }
      const tag = `${other.job}/${other.pid}`
      if (dead && waitedFor !== tag) {
        waitedFor = tag
        // The embedded and etcd leases both expire within ttl of the last keep-alive (plus reaping).
        deadline = Date.now() + (Math.max(ttl, 5) + 10) * 1000
        opts.log?.(`the migration lock is still held by ${other.job} (pid ${other.pid}, no longer running): waiting for its lease to expire`)
      }
      if (Date.now() > deadline) throw new ConflictError(`the migration lock of ${other.job} (pid ${other.pid}) did not expire; is the coordinator reaping leases?`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
}

export function pidAlive(pid: number): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
