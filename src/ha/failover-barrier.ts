/**
 * The proxies after a failover (docs/agent.md "Proxies after a failover"): the promotion's epoch is
 * waited for like a migration's barrier, but a proxy that does not apply it within the timeout does
 * not block anything; it is set offline (its control key, written as a fenced leader action), so it
 * answers `ERR proxy is offline` once it catches up instead of serving, and an operator puts it back
 * with `rstore proxy online <id>`. A proxy cut off from the coordinator needs no help: its lease
 * expires and it fences itself (docs/architecture.md rule 5), and the barrier stops waiting for it.
 */
import type {TopologyStore} from '../coord/topology-store.js'
import {BarrierTimeoutError, describeProxy, waitForProxies} from '../migrate/barrier.js'
import type {LeaderElection} from './leader.js'

export const DEFAULT_FAILOVER_BARRIER_MS = 5000

export interface BarrierOutcome {
  /** How long the proxies took to apply the epoch (or the timeout, when some did not). */
  waitedMs: number
  /** Control ids set offline, each with why ('' when every proxy applied the epoch). */
  offline: string[]
  detail: string
}

export async function offlineLaggingProxies(store: TopologyStore, election: LeaderElection, epoch: number, timeoutMs: number): Promise<BarrierOutcome> {
  const start = Date.now()
  try {
    const waitedMs = await waitForProxies(store, epoch, {timeoutMs})
    return {waitedMs, offline: [], detail: `every proxy applied epoch ${epoch} in ${waitedMs} ms`}
  } catch (err) {
    if (!(err instanceof BarrierTimeoutError)) throw err
    // A --cpu worker obeys its proxy's control key: the whole proxy goes offline.
    const ids = [...new Set(err.proxies.map((p) => p.controlId ?? p.id))]
    const value = JSON.stringify({state: 'offline'})
    await election.fencedTxn([], ids.map((id) => ({type: 'put' as const, key: store.keys.proxyControl(id), value})))
    return {
      waitedMs: Date.now() - start,
      offline: ids,
      detail: `proxy ${err.proxies.map((p) => describeProxy(p, epoch)).join(', ')} did not apply epoch ${epoch} within ${timeoutMs} ms: set offline ('rstore proxy online ${ids[0]}' puts it back)`,
    }
  }
}
