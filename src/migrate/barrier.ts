/**
 * The proxy barrier (DESIGN.md rule 4): after a slot state change at epoch E, wait until every
 * registered proxy reports appliedEpoch >= E. A proxy acknowledges only after draining what it sent
 * under the previous routing, so once this returns no request routed by the old table is in flight.
 * A proxy whose registration is gone (lease expired) is fenced (rule 5) and no longer waited for.
 */
import type {TopologyStore} from '../coord/topology-store.js'
import {RstoreError} from '../errors.js'
import type {ProxyInfo} from '../topology/model.js'

export class BarrierTimeoutError extends RstoreError {
  readonly exitCode = 3
  constructor(
    message: string,
    readonly proxies: ProxyInfo[],
  ) {
    super('EBARRIER', message)
    this.name = 'BarrierTimeoutError'
  }
}

export interface BarrierOptions {
  timeoutMs: number
  /** Printed when the wait is long: names the proxies waited for. */
  log?: (line: string) => void
  /** Called while waiting (e.g. to check the job's lock); may throw to abort. */
  check?: () => void
  /** Appended to the timeout message (how to resume). */
  resumeHint?: string
}

export function describeProxy(p: ProxyInfo, epoch: number): string {
  return `${p.id} (${p.addr}, pid ${p.pid}, applied epoch ${p.appliedEpoch} < ${epoch}${p.error ? `; it reports: ${p.error}` : ''})`
}

/** Waits for every registered proxy to apply epoch. Returns how long it waited (ms). */
export async function waitForProxies(store: TopologyStore, epoch: number, opts: BarrierOptions): Promise<number> {
  const start = Date.now()
  const reportAfterMs = 1000
  let lastReport = 0
  let lastNames = ''
  let poll = 2
  for (;;) {
    opts.check?.()
    const behind = (await store.proxies()).filter((p) => !(p.appliedEpoch >= epoch))
    const now = Date.now()
    if (behind.length === 0) return now - start
    const waited = now - start
    if (waited >= opts.timeoutMs) {
      throw new BarrierTimeoutError(
        `barrier timeout: proxy ${behind.map((p) => describeProxy(p, epoch)).join(', ')} did not acknowledge topology epoch ${epoch} within ${Math.round(opts.timeoutMs / 1000)} s; ` +
          `stopped cleanly${opts.resumeHint ? `. ${opts.resumeHint}` : ''}`,
        behind,
      )
    }
    const names = behind.map((p) => p.id).join(',')
    if (waited >= reportAfterMs && (names !== lastNames || now - lastReport >= 5000)) {
      lastNames = names
      lastReport = now
      opts.log?.(`waiting for proxy ${behind.map((p) => describeProxy(p, epoch)).join(', ')} to apply epoch ${epoch} (${(waited / 1000).toFixed(1)} s)`)
    }
    await new Promise((r) => setTimeout(r, poll))
    poll = Math.min(poll * 2, waited > 2000 ? 100 : 10)
  }
}
