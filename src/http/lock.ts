/**
 * `locks/dashboard`: one active dashboard per product (docs/dashboard.md "Lock"), bound to a
 * coordinator lease as `locks/migration` is (src/migrate/lock.ts): a dashboard killed with SIGKILL
 * frees it when its lease expires, so the next one takes over without anybody removing a lock.
 */
import {hostname} from 'node:os'
import type {TopologyStore} from '../coord/topology-store.js'
import type {Lease} from '../coord/types.js'
import {ConflictError} from '../errors.js'
import {pidAlive} from '../migrate/lock.js'

export const DASHBOARD_LOCK_TTL_SEC = 5

export interface DashboardHolder {
  addr: string
  host: string
  pid: number
  startedAt: number
}

export async function dashboardHolder(store: TopologyStore): Promise<DashboardHolder | undefined> {
  const kv = await store.coord.get(store.keys.dashboardLock)
  if (!kv) return undefined
  try {
    return JSON.parse(kv.value) as DashboardHolder
  } catch {
    return {addr: '?', host: '?', pid: 0, startedAt: 0}
  }
}

/**
 * Takes the lock for a dashboard on addr. A holder that is a live process (or on another host, after
 * one TTL) refuses; a holder of this host whose process is gone is waited out until its lease expires.
 */
export async function acquireDashboardLock(store: TopologyStore, addr: string, opts: {ttlSec?: number; log?: (line: string) => void} = {}): Promise<Lease> {
  const ttl = opts.ttlSec ?? DASHBOARD_LOCK_TTL_SEC
  const key = store.keys.dashboardLock
  const value = JSON.stringify({addr, host: hostname(), pid: process.pid, startedAt: Date.now()} satisfies DashboardHolder)
  let deadline = 0
  for (;;) {
    const lease = await store.coord.grantLease(ttl)
    const res = await store.coord.txn([{key, modRevision: 0}], [{type: 'put', key, value, lease: lease.id}])
    if (res.succeeded) return lease
    await lease.revoke().catch(() => {})
    const other = await dashboardHolder(store)
    if (!other) continue
    const local = other.host === hostname()
    const dead = local && !pidAlive(other.pid)
    if (!deadline) {
      // A dead local holder's lease ends within ttl of its last keep-alive (plus reaping); a remote one may be alive.
      deadline = Date.now() + (local ? Math.max(ttl, 5) + 10 : ttl + 2) * 1000
      if (dead) opts.log?.(`the dashboard lock is still held by pid ${other.pid} (no longer running): waiting for its lease to expire`)
    }
    if ((!dead && local) || Date.now() > deadline) {
      throw new ConflictError(
        `another dashboard of this product is running on ${other.addr} (${local ? '' : `host ${other.host}, `}pid ${other.pid})`,
        'use that one, or stop it first',
      )
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}
