/**
 * The embedded coordinator's leases: a row with an expiry time, extended by a keep-alive timer in the
 * holder process every ttl/3; any process reaps expired leases (deletes them and their keys, logged as
 * delete events) at the start of its operations and on its watch polls. Timers are unref()'d.
 */
import {LeaseLoss} from './lease-loss.js'
import type {Statements} from './embedded-schema.js'
import type {Lease} from './types.js'

/** What a lease needs from its coordinator (EmbeddedCoordinator). */
export interface LeaseHost {
  readonly isClosed: boolean
  keepAliveLease(id: string, ttlMs: number): {alive: boolean; expiresAt: number}
  revokeLease(id: string): void
  forgetLease(lease: EmbeddedLease): void
}

/**
 * Deletes lease id and its keys, each logged as a delete at revision rev (0: the next revision, taken
 * at the first key). Returns the revision used, 0 when the lease had no key. Inside a write txn.
 */
export function dropLease(st: Statements, id: number, now: number, rev: number): number {
  for (const {key} of st.leaseKeys.all(id)) {
    if (!rev) rev = st.getRev.get()!.value + 1
    st.del.run(key)
    st.log.run(rev, key, 'delete', '', now)
  }
  st.delLease.run(id)
  return rev
}

/** Drops every expired lease (one revision for all their keys); returns it, 0 when nothing changed. */
export function dropExpiredLeases(st: Statements, now: number): number {
  let rev = 0
  for (const {id} of st.expiredLeases.all(now)) rev = dropLease(st, id, now, rev)
  return rev
}

export class EmbeddedLease implements Lease {
  private timer: NodeJS.Timeout | null = null
  private readonly loss = new LeaseLoss(() => {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.coord.forgetLease(this)
  })

  constructor(
    private readonly coord: LeaseHost,
    readonly id: string,
    readonly ttlSeconds: number,
    private readonly ttlMs: number,
    /** Until when the lease is known to be alive (last successful keep-alive + ttl). */
    private expiresAt: number,
  ) {
    this.timer = setInterval(() => this.keepAlive(), Math.max(10, Math.floor(ttlMs / 3)))
    this.timer.unref()
  }

  private keepAlive(): void {
    if (this.loss.isStopped || this.coord.isClosed) return this.loss.stop()
    try {
      const res = this.coord.keepAliveLease(this.id, this.ttlMs)
      if (res.alive) this.expiresAt = res.expiresAt
      else this.loss.markLost()
    } catch {
      // The database is busy for longer than the busy timeout (or failing): the lease is lost once its
      // last known expiry has passed, whatever the database says later.
      if (Date.now() >= this.expiresAt) this.loss.markLost()
    }
  }

  onLost(cb: () => void): void {
    this.loss.onLost(cb)
  }

  async revoke(): Promise<void> {
    this.loss.stop()
    this.coord.revokeLease(this.id)
  }

  release(): void {
    this.loss.stop()
  }
}
