/**
 * Every key under a prefix, mirrored in memory from one list() and then one watch, for a reader that
 * needs all of them on every change: a proxy re-reads the whole product (1024 slot records, groups,
 * rules) on every epoch, and a list() per epoch cost it ~1.5 ms of its event loop per slot a migration
 * moved. The events of one transaction arrive in one turn of the event loop on both coordinators, and
 * onChange is called once per turn (setImmediate), so snapshot() there is the store at one revision.
 * Mirrored values carry no lease (watch events do not say).
 */
import {setTimeout as sleep} from 'node:timers/promises'
import type {Coordinator, KeyValue, WatchEvent, Watcher} from './types.js'

export class PrefixMirror {
  private readonly byKey = new Map<string, KeyValue>()
  /** byKey's values in key order (rebuilt after a key came or went), and each key's index there. */
  private sorted: KeyValue[] | null = null
  private readonly index = new Map<string, number>()
  /** sorted was handed out by snapshot(): copy it before changing it. */
  private shared = false
  private watcher: Watcher | null = null
  private pending: NodeJS.Immediate | null = null
  private closed = false
  private resyncing: Promise<void> | null = null
  /** The revision the mirror is at (the list's, then each event's). */
  revision = 0
  /** Lists so far (1 + one per failed watch or forced resync). */
  resyncs = 0

  private constructor(
    private readonly coord: Coordinator,
    private readonly prefix: string,
    /** Which events call onChange (all when absent). */
    private readonly relevant: (key: string) => boolean,
    private readonly onChange: () => void,
  ) {}

  /** Lists the prefix and watches it from the list's revision. */
  static async start(coord: Coordinator, prefix: string, onChange: () => void, relevant: (key: string) => boolean = () => true): Promise<PrefixMirror> {
    const m = new PrefixMirror(coord, prefix, relevant, onChange)
    await m.resync()
    return m
  }

  /** Every key under the prefix, sorted by key (as list() returns them). Not to be modified. */
  snapshot(): KeyValue[] {
    if (!this.sorted) this.setSorted([...this.byKey.values()].sort((a, b) => compareKeys(a.key, b.key)))
    this.shared = true
    return this.sorted!
  }

  private setSorted(kvs: KeyValue[]): void {
    this.sorted = kvs
    this.shared = false
    this.index.clear()
    kvs.forEach((kv, i) => this.index.set(kv.key, i))
  }

  /** Lists again and restarts the watch (after the watch failed, or when the caller doubts the mirror). */
  resync(): Promise<void> {
    // One at a time: two at once would leave one watch running unclosed.
    this.resyncing ??= this.doResync().finally(() => {
      this.resyncing = null
    })
    return this.resyncing
  }

  private async doResync(): Promise<void> {
    const old = this.watcher
    this.watcher = null
    await old?.close().catch(() => {})
    const {kvs, revision} = await this.coord.listWithRevision(this.prefix)
    this.resyncs++
    this.byKey.clear()
    for (const kv of kvs) this.byKey.set(kv.key, kv)
    this.setSorted(kvs)
    this.revision = revision
    const w = await this.coord.watch(this.prefix, revision, (ev) => this.apply(ev), () => void this.recover())
    if (this.closed) await w.close()
    else this.watcher = w
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.pending) clearImmediate(this.pending)
    await this.watcher?.close()
  }

  private apply(ev: WatchEvent): void {
    const had = this.byKey.get(ev.key)
    if (ev.type === 'delete') {
      if (had) {
        this.byKey.delete(ev.key)
        this.sorted = null
      }
    } else {
      const kv: KeyValue = {key: ev.key, value: ev.value, createRevision: had?.createRevision ?? ev.revision, modRevision: ev.revision}
      this.byKey.set(ev.key, kv)
      if (!had) this.sorted = null
      else if (this.sorted) {
        if (this.shared) this.setSorted(this.sorted.slice())
        this.sorted[this.index.get(ev.key)!] = kv
      }
    }
    this.revision = ev.revision
    if (this.relevant(ev.key)) this.changed()
  }

  private changed(): void {
    if (this.pending || this.closed) return
    this.pending = setImmediate(() => {
      this.pending = null
      if (!this.closed) this.onChange()
    })
  }

  /** The watch ended (e.g. a compacted revision): list again, then report a change. */
  private async recover(): Promise<void> {
    while (!this.closed) {
      try {
        await this.resync()
        this.changed()
        return
      } catch {
        await sleep(500)
      }
    }
  }
}

const SURROGATE = /[\uD800-\uDFFF]/

/** Byte order of the keys' UTF-8 (etcd's and list()'s order); plain string order gives the same without astral characters. */
function compareKeys(a: string, b: string): number {
  if (SURROGATE.test(a) || SURROGATE.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b))
  return a < b ? -1 : a > b ? 1 : 0
}
