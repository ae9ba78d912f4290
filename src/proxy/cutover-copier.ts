import {sameSnapshot} from '../backends/snapshot.js'
import type {KeySnapshot, KeyStore} from '../backends/types.js'

/** Where one key is copied during a cutover: read from the primary, written to every secondary store. */
export interface CopySides {
  from: KeyStore
  to: KeyStore[]
  /** The secondary group's cache: the key is deleted there after each copy. */
  cache?: KeyStore
}

interface KeyCopy {
  key: Buffer
  sides: () => Promise<CopySides>
  /** Writes made since the running round read the primary: they wait for the next round. */
  waiting: {resolve: () => void; reject: (err: Error) => void}[]
}

/** TTLs read a moment apart from the same store differ by the time between the reads. */
const TTL_SLACK_MS = 1000

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

  /**
   * Resolves once a round that read the primary after this call has written the secondary side.
   * id names the key within its cutover and direction; sides() opens the stores (per round).
   */
  copy(id: string, key: Buffer, sides: () => Promise<CopySides>): Promise<void> {
    return new Promise((resolve, reject) => {
      const run = this.running.get(id)
      if (run) {
        run.sides = sides
        run.waiting.push({resolve, reject})
        return
      }
      const fresh: KeyCopy = {key, sides, waiting: [{resolve, reject}]}
      this.running.set(id, fresh)
      void this.drive(id, fresh)
    })
  }

  /** Keys with a copy in progress (tests). */
  get inProgress(): number {
    return this.running.size
  }

  private async drive(id: string, run: KeyCopy): Promise<void> {
    let round = run.waiting
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
        const now = await sides.from.readKey(run.key)
        if (!run.waiting.length && sameSnapshot(snap, now, TTL_SLACK_MS)) break
      }
    } catch (err) {
      for (const w of [...round, ...run.waiting]) w.reject(err as Error)
    } finally {
      this.running.delete(id)
    }
  }
}

async function writeCopy(sides: CopySides, key: Buffer, snap: KeySnapshot | null): Promise<void> {
  for (const to of sides.to) {
    if (snap) await to.writeKey(key, snap)
    else await to.execute([Buffer.from('DEL'), key])
  }
  if (sides.cache) await sides.cache.execute([Buffer.from('DEL'), key])
}
