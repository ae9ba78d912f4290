/**
 * The proxy barrier (docs/architecture.md rule 4): after a slot state change at epoch E, wait until every
 * registered proxy reports appliedEpoch >= E. A proxy acknowledges only after draining what it sent
 * under the previous routing, so once this returns no request routed by the old table is in flight.
 * A proxy whose registration is gone (lease expired) is fenced (rule 5) and no longer waited for.
 *
 * ProxyAcks keeps one watch on the proxies' records open for its whole life and wakes a waiting
 * barrier on each change (no polling, no watch set up per barrier). Each wait() still starts with one
 * read of the records (a read after the change, so it knows every proxy registered when the change
 * was made, even if the watch has not delivered its registration yet), and re-reads them on a slow
 * fallback timer, so a stalled or failed watch only makes a barrier slower, never wrong.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {CorruptError, type TopologyStore} from '../coord/topology-store.js'
import type {KeyValue, WatchEvent, Watcher} from '../coord/types.js'
import {RstoreError} from '../errors.js'
import type {ProxyInfo} from '../topology/model.js'

export class BarrierTimeoutError extends RstoreError {
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

export interface ProxyAcksOptions {
  /** While the watch works, the records are re-read anyway this often during a wait (ms). Default 50. */
  fallbackPollMs?: number
}

export function describeProxy(p: ProxyInfo, epoch: number): string {
  return `${p.id} (${p.addr}, pid ${p.pid}, applied epoch ${p.appliedEpoch} < ${epoch}${p.error ? `; it reports: ${p.error}` : ''})`
}

/**
 * Waits for every registered proxy to apply epoch. Returns how long it waited (ms). Sets up (and
 * closes) a watch for this one wait: a caller that waits often should keep a ProxyAcks instead.
 */
export async function waitForProxies(store: TopologyStore, epoch: number, opts: BarrierOptions): Promise<number> {
  const acks = new ProxyAcks(store)
  try {
    return await acks.wait(epoch, opts)
  } finally {
    await acks.close()
  }
}

/** A proxy's record as last seen (info null: deleted) and the revision that wrote (or deleted) it. */
interface Entry {
  info: ProxyInfo | null
  rev: number
  /** The stored value is not JSON (a wait() that sees it throws CorruptError, as a read would). */
  corrupt?: string
}

/** How long after a failed watch start a wait() tries again (meanwhile it polls). */
const RESTART_AFTER_MS = 1000
const REPORT_AFTER_MS = 1000

/**
 * The proxies' acknowledgements, kept up to date by one long-lived watch. Create one per mover (or
 * any caller that runs many barriers), call wait() after each topology change, close() at the end.
 *
 *   const acks = new ProxyAcks(store)
 *   try {
 *     const epoch = await store.update(...)
 *     const waitedMs = await acks.wait(epoch, {timeoutMs, log, check, resumeHint})
 *   } finally {
 *     await acks.close()
 *   }
 *
 * The watch is started by the first wait(). Waits may run concurrently.
 */
export class ProxyAcks {
  private readonly prefix: string
  private readonly fallbackPollMs: number
  /** Latest record per proxy key, from the watch's events and every read, newest revision wins. */
  private readonly records = new Map<string, Entry>()
  private watcher: Watcher | null = null
  private starting: Promise<void> | null = null
  private startFailedAt = 0
  /** Bumped when the watch (re)starts, fails or is closed: reads from an older one are not merged. */
  private gen = 0
  private closed = false
  private started = 0
  private readonly wakers = new Set<() => void>()

  constructor(
    readonly store: TopologyStore,
    opts: ProxyAcksOptions = {},
  ) {
    this.prefix = store.keys.proxiesPrefix
    this.fallbackPollMs = opts.fallbackPollMs ?? 50
  }

  /** True while the watch runs (for tests). */
  get watching(): boolean {
    return this.watcher !== null
  }

  /** How many watches have been started: 1, plus one per restart after a failure (for tests). */
  get watchStarts(): number {
    return this.started
  }

  /** Waits for every registered proxy to apply epoch. Returns how long it waited (ms). */
  async wait(epoch: number, opts: BarrierOptions): Promise<number> {
    const start = Date.now()
    await this.ensureWatch()
    let lastReport = 0
    let lastNames = ''
    let poll = 2
    // The first read comes after the change: it names every proxy registered when it was made.
    let read = await this.read()
    const isBehind = (p: ProxyInfo) => !(p.appliedEpoch >= epoch)
    for (;;) {
      opts.check?.()
      // Either view may end the wait: the read is the store's state now; the watched view is at least
      // as new for every proxy a read has seen (it may only still hold one whose deletion is on its way).
      const listBehind = read.list?.filter(isBehind)
      const viewBehind = read.view?.filter(isBehind)
      const now = Date.now()
      if (listBehind?.length === 0 || viewBehind?.length === 0) return now - start
      let behind = (listBehind ?? viewBehind)!
      const waited = now - start
      if (waited >= opts.timeoutMs) {
        if (!read.list) {
          // Name what the store says now, not a proxy whose deletion the watch has yet to deliver.
          read = await this.read()
          behind = read.list!.filter(isBehind)
          if (behind.length === 0 || read.view?.filter(isBehind).length === 0) return Date.now() - start
        }
        throw new BarrierTimeoutError(
          `barrier timeout: proxy ${behind.map((p) => describeProxy(p, epoch)).join(', ')} did not acknowledge topology epoch ${epoch} within ${Math.round(opts.timeoutMs / 1000)} s; ` +
            `stopped cleanly${opts.resumeHint ? `. ${opts.resumeHint}` : ''}`,
          behind,
        )
      }
      const names = behind.map((p) => p.id).join(',')
      if (waited >= REPORT_AFTER_MS && (names !== lastNames || now - lastReport >= 5000)) {
        lastNames = names
        lastReport = now
        opts.log?.(`waiting for proxy ${behind.map((p) => describeProxy(p, epoch)).join(', ')} to apply epoch ${epoch} (${(waited / 1000).toFixed(1)} s)`)
      }
      const untilDeadline = Math.max(1, opts.timeoutMs - waited)
      const gen = this.gen
      if (this.watcher) {
        // Until the watch reports a change; on the fallback timer (or at the deadline) read the store.
        const woken = await this.changed(Math.min(this.fallbackPollMs, untilDeadline))
        read = woken && this.watcher && this.gen === gen ? {list: null, view: this.view()} : await this.read()
      } else {
        await sleep(Math.min(poll, untilDeadline))
        poll = Math.min(poll * 2, waited > 2000 ? 100 : 10)
        await this.ensureWatch()
        read = await this.read()
      }
    }
  }

  /** Stops the watch. A wait() after close() polls the store. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.stopWatch()
  }

  // ---- internals ----

  /**
   * Reads every proxy record (list: the store's state now) and, while the watch runs, merges it into
   * the watched records (view: their state; null when not watching).
   */
  private async read(): Promise<{list: ProxyInfo[] | null; view: ProxyInfo[] | null}> {
    const gen = this.gen
    const live = this.watcher !== null
    const kvs = await this.store.coord.list(this.prefix)
    const list = sortById(kvs.map((kv) => parseRecord(kv)))
    if (!live || !this.watcher || gen !== this.gen) return {list, view: null}
    for (const kv of kvs) {
      const e = this.records.get(kv.key)
      if (!e || kv.modRevision > e.rev) this.records.set(kv.key, {info: parseRecord(kv), rev: kv.modRevision})
    }
    return {list, view: this.view()}
  }

  /** The watched records (throws CorruptError for one that is not JSON, as a read does). */
  private view(): ProxyInfo[] {
    const out: ProxyInfo[] = []
    for (const e of this.records.values()) {
      if (e.corrupt) throw new CorruptError(e.corrupt)
      if (e.info) out.push(e.info)
    }
    return sortById(out)
  }

  /** Resolves true on the next change seen by the watch (or when it stops), false after ms. */
  private changed(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        this.wakers.delete(wake)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.wakers.delete(wake)
        resolve(false)
      }, ms)
      this.wakers.add(wake)
    })
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake()
  }

  private onEvent(ev: WatchEvent): void {
    const e = this.records.get(ev.key)
    if (e && ev.revision <= e.rev) return // a read already saw this record or a newer one
    if (ev.type === 'delete') {
      this.records.set(ev.key, {info: null, rev: ev.revision})
    } else {
      try {
        this.records.set(ev.key, {info: JSON.parse(ev.value) as ProxyInfo, rev: ev.revision})
      } catch {
        this.records.set(ev.key, {info: null, rev: ev.revision, corrupt: notJson(ev.key, ev.value)})
      }
    }
    this.wakeAll()
  }

  private ensureWatch(): Promise<void> {
    if (this.closed || this.watcher) return Promise.resolve()
    if (this.starting) return this.starting
    if (this.startFailedAt && Date.now() - this.startFailedAt < RESTART_AFTER_MS) return Promise.resolve()
    this.starting = this.startWatch().finally(() => {
      this.starting = null
    })
    return this.starting
  }

  private async startWatch(): Promise<void> {
    const gen = ++this.gen
    // Forget what an older watch saw: it may have missed a deletion since. Every wait() reads first.
    this.records.clear()
    let failed = false
    let w: Watcher | null = null
    try {
      const rev = await this.store.coord.revision()
      w = await this.store.coord.watch(
        this.prefix,
        rev,
        (ev) => {
          if (this.gen === gen) this.onEvent(ev)
        },
        () => {
          failed = true
          if (this.gen === gen && this.watcher) void this.stopWatch()
        },
      )
    } catch {
      this.startFailedAt = Date.now()
      return
    }
    if (failed || this.closed || this.gen !== gen) {
      await w.close().catch(() => {})
      if (failed) this.startFailedAt = Date.now()
      return
    }
    this.startFailedAt = 0
    this.started++
    this.watcher = w
  }

  private async stopWatch(): Promise<void> {
    this.gen++
    const w = this.watcher
    this.watcher = null
    this.records.clear()
    this.wakeAll() // waiters go back to reading the store
    await w?.close().catch(() => {})
  }
}

function notJson(key: string, value: string): string {
  return `stored ${key} is not JSON: ${value.slice(0, 80)}`
}

function parseRecord(kv: KeyValue): ProxyInfo {
  try {
    return JSON.parse(kv.value) as ProxyInfo
  } catch {
    throw new CorruptError(notJson(kv.key, kv.value))
  }
}

function sortById(ps: ProxyInfo[]): ProxyInfo[] {
  return ps.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

