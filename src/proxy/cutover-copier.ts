import {sameSnapshot} from '../backends/snapshot.js'
import type {KeySnapshot, KeyStore} from '../backends/types.js'

/** Where one key is copied during a cutover: read from the primary, written to every secondary store. */
export interface CopySides {
  from: KeyStore
  to: KeyStore[]
  /** The secondary group's cache: the key is deleted there after each copy. */
  cache?: KeyStore
}

/** The cutover step a copy was asked under: its direction is only valid while that step holds. */
export interface CopyTag {
  cutover: string
  step: string
}

interface KeyCopy {
  key: Buffer
  tag: CopyTag
  sides: () => Promise<CopySides>
  /** Writes made since the running round read the primary: they wait for the next round. */
  waiting: {resolve: () => void; reject: (err: Error) => void}[]
  /** Its step is over (or held): finish the closing checks, then stop. */
  retiring: boolean
  done: Promise<void>
}

/** Reads of one store gathered in one turn of the event loop. */
interface ReadBatch {
  keys: Buffer[]
  waiters: {resolve: (s: KeySnapshot | null) => void; reject: (e: Error) => void}[]
}

/** TTLs read a moment apart from the same store differ by the time between the reads. */
const TTL_SLACK_MS = 1000
/** Closing rounds a retiring copy may still run while other proxies keep writing the old way. */
const RETIRE_ROUNDS = 50

/**
 * Copies the value of keys written during a cutover from the primary side to the secondary one, so a
 * non-idempotent write (INCR, HINCRBY, RPUSH, ...) reaches the secondary as its resulting value.
 *
 * Two copies of one key must not land out of order, or the secondary keeps an older value for good:
 * - Within this proxy, copies of a key are coalesced: one round at a time, and a write waits for a round
 *   that read the primary after it was applied.
 * - Across proxies (another proxy's round can land after ours with an older read), a round ends by
 *   reading the primary again; if the key changed since the round read it, the copy runs again. The last
 *   copy to land is therefore always followed by a check that finds the primary unchanged.
 */
export class CutoverCopier {
  private readonly running = new Map<string, KeyCopy>()
  /** Closing checks asked in this turn of the event loop, per store: read as one readKeys. */
  private readonly checks = new Map<KeyStore, ReadBatch>()

  /** isCurrent: whether copies asked under a tag may still go on (its cutover is still at that step, not held). */
  constructor(private readonly isCurrent: (tag: CopyTag) => boolean = () => true) {}

  /**
   * Resolves once a round that read the primary after this call has written the secondary side.
   * id names the key within its cutover, step and direction; sides() opens the stores (per round).
   */
  copy(id: string, tag: CopyTag, key: Buffer, sides: () => Promise<CopySides>): Promise<void> {
    return new Promise((resolve, reject) => {
      const run = this.running.get(id)
      if (run) {
        run.sides = sides
        run.waiting.push({resolve, reject})
        return
      }
      let finished!: () => void
      const fresh: KeyCopy = {key, tag, sides, waiting: [{resolve, reject}], retiring: !this.isCurrent(tag), done: new Promise((r) => (finished = r))}
      this.running.set(id, fresh)
      void this.drive(id, fresh).finally(finished)
    })
  }

  /** After a configuration change: copies whose step is over finish their closing checks and stop. */
  retire(): void {
    for (const run of this.running.values()) if (!this.isCurrent(run.tag)) run.retiring = true
  }

  /**
   * Resolves when every retiring copy has stopped. The proxy waits for this (after the requests in
   * flight) before it acknowledges a configuration: a copy in the old direction must not land after
   * another proxy has started writing the new side first.
   */
  async settled(): Promise<void> {
    await Promise.all([...this.running.values()].filter((r) => r.retiring).map((r) => r.done))
  }

  /** Keys with a copy in progress (tests). */
  get inProgress(): number {
    return this.running.size
  }

  private async drive(id: string, run: KeyCopy): Promise<void> {
    let round = run.waiting
    let closingRounds = 0
    try {
      for (;;) {
        round = run.waiting
        run.waiting = []
        const sides = await run.sides()
        const snap = await sides.from.readKey(run.key)
        await writeCopy(sides, run.key, snap)
        for (const w of round) w.resolve()
        round = []
        if (run.waiting.length) continue
        // The cross-proxy check: unchanged means no copy with an older read can still be pending
        // behind ours without its own round seeing the change.
        const now = await this.readAgain(sides.from, run.key)
        if (!run.waiting.length && sameSnapshot(snap, now, TTL_SLACK_MS)) break
        if (run.retiring && !run.waiting.length && ++closingRounds > RETIRE_ROUNDS) break
      }
    } catch (err) {
      for (const w of [...round, ...run.waiting]) w.reject(err as Error)
    } finally {
      this.running.delete(id)
    }
  }

  /**
   * A closing check's read, batched with the others asked of the same store in this turn: the check
   * runs after the writer has its answer, so waiting a turn costs no latency and saves round trips.
   */
  private readAgain(store: KeyStore, key: Buffer): Promise<KeySnapshot | null> {
    let batch = this.checks.get(store)
    if (!batch) {
      const fresh: ReadBatch = {keys: [], waiters: []}
      this.checks.set(store, fresh)
      setImmediate(() => {
        this.checks.delete(store)
        store.readKeys(fresh.keys).then(
          (snaps) => fresh.waiters.forEach((w, i) => w.resolve(snaps[i] ?? null)),
          (err: Error) => fresh.waiters.forEach((w) => w.reject(err)),
        )
      })
      batch = fresh
    }
    const b = batch
    return new Promise((resolve, reject) => {
      b.keys.push(key)
      b.waiters.push({resolve, reject})
    })
  }
}

async function writeCopy(sides: CopySides, key: Buffer, snap: KeySnapshot | null): Promise<void> {
  for (const to of sides.to) {
    if (snap) await to.writeKey(key, snap)
    else await to.execute([Buffer.from('DEL'), key])
  }
  if (sides.cache) await sides.cache.execute([Buffer.from('DEL'), key])
}
