/**
 * The embedded coordinator's watches: they poll the changelog and deliver each event once, in revision
 * order; a revision that has been trimmed from the changelog ("compacted") ends the watch with an
 * error. A process polls at once after its own commits, and within ~1 ms of another process's: every
 * commit that changes the revision is followed by a 1-byte write to `<file>-wake` (WakeSignal), and
 * watching processes watch the folder (fs.watch, inotify on Linux) for it. (Not the `-wal` file: its
 * writes come before the commit is visible to readers -- SQLite publishes it in the shared-memory index
 * after the fsync, which makes no file event -- so a poll on them finds nothing about 2 ms too early.)
 * A timer poll (`fsWatchPollIntervalMs`, or `pollIntervalMs` when the folder cannot be watched) backs
 * it up, so correctness never depends on the file watch. Timers are unref()'d.
 */
import type Database from 'better-sqlite3'
import {basename, dirname} from 'node:path'
import {watchFiles, type FileWakeup} from './wakeup.js'
import {CompactedError, keyBytes, prefixEnd, reportWatchError} from './keys.js'
import {isBusy, type LogRow, type Statements} from './embedded-schema.js'
import type {WatchEvent, Watcher} from './types.js'

/** Written after each commit that changes the revision: `<file>` + this. */
export const WAKE_SUFFIX = '-wake'

const PAGE = 2000

export interface WatchOptions {
  pollIntervalMs: number
  useFsWatch: boolean
  fsWatchPollIntervalMs: number
}

interface LogPage {
  revision: number
  compactRevision: number
  lastId: number
  rows: LogRow[]
}

/** The watches of one EmbeddedCoordinator and the polling that feeds them. */
export class EmbeddedWatches {
  private readonly watchers = new Set<EmbeddedWatcher>()
  private pollTimer: NodeJS.Timeout | null = null
  private pollSoon: NodeJS.Immediate | null = null
  /** The folder watch while there are watchers (null without watchers or when it is unavailable). */
  private fsWake: FileWakeup | null = null
  /** fs.watch threw or failed: poll on the timer only (every pollIntervalMs). */
  private fsWatchBroken = false
  private polling = false

  constructor(
    /** The database file (its folder is watched for `<file>-wake`). */
    private readonly path: string,
    private readonly db: Database.Database,
    private readonly st: Statements,
    private readonly opts: WatchOptions,
    private readonly isClosed: () => boolean,
    /** Runs before each poll (reaping expired leases); a busy error is ignored. */
    private readonly beforePoll: () => void,
  ) {}

  add(prefix: string, afterRevision: number, onEvent: (ev: WatchEvent) => void, onError?: (err: Error) => void): Watcher {
    const w = new EmbeddedWatcher(this, keyBytes(prefix), afterRevision, onEvent, onError)
    this.watchers.add(w)
    if (!this.fsWake && !this.fsWatchBroken && this.opts.useFsWatch) {
      this.fsWake = watchFiles(dirname(this.path), [basename(this.path) + WAKE_SUFFIX], () => this.schedulePoll(), () => this.onFileWatchError())
      if (!this.fsWake) this.fsWatchBroken = true
    }
    if (!this.pollTimer) this.startPollTimer()
    this.schedulePoll()
    return w
  }

  remove(w: EmbeddedWatcher): void {
    this.watchers.delete(w)
    if (this.watchers.size === 0) this.stopPolling()
  }

  /** True while another process's commits wake these watches through fs.watch. */
  get fileWatchActive(): boolean {
    return this.fsWake !== null
  }

  /** Polls on the next turn of the event loop (after a commit of this process). */
  schedulePoll(): void {
    if (this.isClosed() || this.watchers.size === 0 || this.pollSoon) return
    this.pollSoon = setImmediate(() => {
      this.pollSoon = null
      this.poll()
    })
    this.pollSoon.unref()
  }

  async closeWatchers(): Promise<void> {
    for (const w of [...this.watchers]) await w.close()
  }

  /** Stops every timer and the folder watch (the coordinator is closing). */
  stop(): void {
    this.stopPolling()
    if (this.pollSoon) clearImmediate(this.pollSoon)
    this.pollSoon = null
  }

  private startPollTimer(): void {
    const ms = this.fsWake ? this.opts.fsWatchPollIntervalMs : this.opts.pollIntervalMs
    this.pollTimer = setInterval(() => this.poll(), ms)
    this.pollTimer.unref()
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer)
    this.pollTimer = null
    this.fsWake?.close()
    this.fsWake = null
  }

  /** The folder watch failed: from now on poll on the (faster) timer only. */
  private onFileWatchError(): void {
    this.fsWake = null
    this.fsWatchBroken = true
    if (this.pollTimer) {
      clearInterval(this.pollTimer)
      this.startPollTimer()
    }
    this.schedulePoll()
  }

  private poll(): void {
    if (this.isClosed() || this.polling || this.watchers.size === 0) return
    this.polling = true
    try {
      try {
        this.beforePoll()
      } catch (err) {
        if (!isBusy(err)) throw err
      }
      for (const w of [...this.watchers]) {
        if (this.isClosed()) break
        try {
          w.poll()
        } catch (err) {
          // A busy database is transient: the next poll tries again. Anything else ends the watch.
          if (!isBusy(err)) w.fail(err instanceof Error ? err : new Error(String(err)))
        }
      }
    } finally {
      this.polling = false
    }
  }

  /**
   * One consistent read (a snapshot) of the change log for a watcher: the rows after row lastId (or,
   * when lastId < 0, after revision afterRevision), at most one page.
   */
  readLog(lastId: number, afterRevision: number, scannedRev: number): LogPage {
    return this.db.transaction((): LogPage => {
      const revision = this.st.getRev.get()!.value
      const compactRevision = this.st.getCompact.get()!.value
      if (lastId >= 0 && revision <= scannedRev) return {revision, compactRevision, lastId, rows: []}
      if (lastId < 0) {
        const first = this.st.logFirstIdAfterRev.get(afterRevision)?.id ?? null
        lastId = first !== null ? first - 1 : (this.st.logMaxId.get()?.id ?? 0)
      }
      return {revision, compactRevision, lastId, rows: this.st.logAfterId.all(lastId, PAGE)}
    })()
  }
}

class EmbeddedWatcher implements Watcher {
  /** Last changelog row id read; -1 until the start position is known. */
  private lastId = -1
  /** Every revision <= scannedRev has been read (delivered, or had no event under the prefix). */
  private scannedRev: number
  private closed = false
  private readonly end: Buffer | null

  constructor(
    private readonly watches: EmbeddedWatches,
    private readonly prefix: Buffer,
    private readonly afterRevision: number,
    private readonly onEvent: (ev: WatchEvent) => void,
    private readonly onError?: (err: Error) => void,
  ) {
    this.scannedRev = afterRevision
    this.end = prefix.length ? prefixEnd(prefix) : null
  }

  private matches(key: Buffer): boolean {
    if (this.prefix.length === 0) return true
    if (Buffer.compare(key, this.prefix) < 0) return false
    return this.end === null || Buffer.compare(key, this.end) < 0
  }

  poll(): void {
    for (;;) {
      if (this.closed) return
      const {revision, compactRevision, lastId, rows} = this.watches.readLog(this.lastId, this.afterRevision, this.scannedRev)
      if (this.scannedRev < compactRevision) {
        this.fail(new CompactedError(this.scannedRev + 1, compactRevision))
        return
      }
      this.lastId = lastId
      for (const row of rows) {
        if (this.closed) return
        this.lastId = row.id
        if (row.rev <= this.afterRevision || !this.matches(row.key)) continue
        try {
          this.onEvent({type: row.type, key: row.key.toString('utf8'), value: row.value, revision: row.rev})
        } catch (err) {
          this.fail(err instanceof Error ? err : new Error(String(err)))
          return
        }
      }
      if (rows.length < PAGE) {
        // Everything committed up to `revision` has been read.
        this.scannedRev = Math.max(this.scannedRev, revision)
        return
      }
      // A full page: its last revision may continue on the next page.
      this.scannedRev = Math.max(this.scannedRev, rows[rows.length - 1].rev - 1)
    }
  }

  fail(err: Error): void {
    if (this.closed) return
    void this.close()
    reportWatchError(err, this.onError)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.watches.remove(this)
  }
}
