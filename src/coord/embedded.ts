/**
 * The embedded coordinator: the coordinator's key space in one SQLite file (WAL), shared by every
 * process of one machine (the CLI, several proxies, a migrator) with the same semantics as etcd:
 *
 * - one global revision, bumped once by every write transaction that changes something; every changed
 *   key is logged in `changelog` at that revision;
 * - txn(): compares and ops inside one `BEGIN IMMEDIATE` transaction (one writer at a time across all
 *   processes; readers never block thanks to WAL);
 * - watches poll the changelog (embedded-watch.ts); leases are rows with an expiry (embedded-lease.ts);
 * - commits are synced (`synchronous = FULL`: the WAL is fsynced) except those that only write what
 *   dies with a lease anyway: puts of lease-bound keys (a proxy's record, e.g. its acknowledged epoch)
 *   and lease grants and keep-alives. Those skip the fsync (~2 ms here, a migration barrier waits for
 *   one per proxy); the next synced commit of any process makes them durable with it (one WAL, fsynced
 *   whole), and a power loss can only lose ones nothing durable was written after.
 *
 * The file's tables and statements are in embedded-schema.ts.
 */
import Database from 'better-sqlite3'
import {existsSync, mkdirSync} from 'node:fs'
import {dirname, resolve} from 'node:path'
import {RstoreError} from '../errors.js'
import {WakeSignal} from './wakeup.js'
import {CoordinatorClosedError, keyBytes, LeaseNotFoundError, prefixEnd, validateOps} from './keys.js'
import {initDatabase, prepareStatements, rawToKeyValue, toKeyValue, type RawKvRow, type Statements} from './embedded-schema.js'
import {dropExpiredLeases, dropLease, EmbeddedLease} from './embedded-lease.js'
import {EmbeddedWatches, WAKE_SUFFIX} from './embedded-watch.js'
import type {Compare, Coordinator, KeyValue, Lease, Op, TxnResult, WatchEvent, Watcher} from './types.js'

export interface EmbeddedOptions {
  /** How often watches poll the change log when the folder cannot be watched (ms). Default 10. */
  pollIntervalMs?: number
  /**
   * Wake watches when another process commits by watching the database's folder (fs.watch). Default
   * true; if fs.watch is unavailable or fails, watches fall back to polling every pollIntervalMs.
   */
  useFsWatch?: boolean
  /** The backup timer poll while the folder watch works (ms). Default 25. */
  fsWatchPollIntervalMs?: number
  /** How long a writer waits for another process's write lock (ms). Default 10000. */
  busyTimeoutMs?: number
  /** The change log keeps at least this many newest rows... Default 100000. */
  changelogKeepRows?: number
  /** ...and every row younger than this (ms). Default 10 minutes. Rows beyond both are trimmed. */
  changelogKeepMs?: number
  /** Trim the change log every this many revisions (default 1000). */
  trimEveryRevisions?: number
  /**
   * Create the file (and its folder) when it is missing. Default true. The CLI opens with false
   * except for `slot init`: a file deleted or a mistyped path under a running
   * cluster would otherwise become a fresh empty coordinator, a second truth beside the live one.
   */
  create?: boolean
}

/** The coordinator file is missing and the caller may not create it. */
export class CoordinatorFileMissingError extends RstoreError {
  constructor(readonly path: string) {
    super('ENOTFOUND', `coordinator file ${path} does not exist; run 'rstore slot init' first, or check --coordinator-addr`)
    this.name = 'CoordinatorFileMissingError'
  }
}

export class EmbeddedCoordinator implements Coordinator {
  readonly kind = 'embedded' as const
  readonly path: string
  private readonly db: Database.Database
  private readonly opts: Required<EmbeddedOptions>
  private closed = false
  private readonly leases = new Set<EmbeddedLease>()
  private readonly watches: EmbeddedWatches
  private readonly wake: WakeSignal
  /** Set when the write transaction running changes the revision. */
  private bumped = false
  private readonly st: Statements

  private constructor(path: string, db: Database.Database, opts: Required<EmbeddedOptions>) {
    this.path = path
    this.db = db
    this.opts = opts
    this.st = prepareStatements(db)
    this.wake = new WakeSignal(path + WAKE_SUFFIX)
    this.watches = new EmbeddedWatches(path, db, this.st, opts, () => this.closed, () => this.reapIfNeeded())
  }

  /** Opens the coordinator file at path, creating it and its folder if missing unless create is false. */
  static async open(path: string, options: EmbeddedOptions = {}): Promise<EmbeddedCoordinator> {
    const file = resolve(path)
    const create = options.create ?? true
    if (!create && !existsSync(file)) throw new CoordinatorFileMissingError(file)
    if (create) mkdirSync(dirname(file), {recursive: true})
    const opts: Required<EmbeddedOptions> = {
      pollIntervalMs: options.pollIntervalMs ?? 10,
      useFsWatch: options.useFsWatch ?? true,
      fsWatchPollIntervalMs: options.fsWatchPollIntervalMs ?? 25,
      busyTimeoutMs: options.busyTimeoutMs ?? 10_000,
      changelogKeepRows: options.changelogKeepRows ?? 100_000,
      changelogKeepMs: options.changelogKeepMs ?? 10 * 60_000,
      trimEveryRevisions: options.trimEveryRevisions ?? 1000,
      create,
    }
    let db: Database.Database
    try {
      // fileMustExist: deleted between the check and here is still refused, never created.
      db = new Database(file, {timeout: opts.busyTimeoutMs, fileMustExist: !create})
    } catch (err) {
      if (!create && !existsSync(file)) throw new CoordinatorFileMissingError(file)
      throw err
    }
    try {
      await initDatabase(db, opts.busyTimeoutMs)
      return new EmbeddedCoordinator(file, db, opts)
    } catch (err) {
      db.close()
      throw err
    }
  }

  // ---- reads ----

  async get(key: string): Promise<KeyValue | null> {
    this.check()
    this.reapIfNeeded()
    const row = this.st.get.get(keyBytes(key))
    return row ? toKeyValue(row) : null
  }

  async list(prefix: string): Promise<KeyValue[]> {
    this.check()
    this.reapIfNeeded()
    return this.rowsUnder(prefix).map(rawToKeyValue)
  }

  async listWithRevision(prefix: string): Promise<{kvs: KeyValue[]; revision: number}> {
    this.check()
    this.reapIfNeeded()
    // One read transaction: the rows and the revision come from the same snapshot.
    return this.db.transaction(() => ({revision: this.st.getRev.get()!.value, kvs: this.rowsUnder(prefix).map(rawToKeyValue)}))()
  }

  async revision(): Promise<number> {
    this.check()
    this.reapIfNeeded()
    return this.st.getRev.get()!.value
  }

  private rowsUnder(prefix: string): RawKvRow[] {
    const start = keyBytes(prefix)
    if (start.length === 0) return this.st.listAll.all()
    const end = prefixEnd(start)
    return end ? this.st.listRange.all(start, end) : this.st.listFrom.all(start)
  }

  private keysUnder(prefix: string): Buffer[] {
    const start = keyBytes(prefix)
    if (start.length === 0) return this.st.keysAll.all().map((r) => r.key)
    const end = prefixEnd(start)
    return (end ? this.st.keysRange.all(start, end) : this.st.keysFrom.all(start)).map((r) => r.key)
  }

  // ---- writes ----

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    this.check()
    validateOps(ops)
    // Only lease-bound puts: nothing here outlives its holder, no need to wait for the disk.
    const ephemeral = ops.length > 0 && ops.every((op) => op.type === 'put' && op.lease !== undefined)
    const result = this.write((): TxnResult => {
      const now = Date.now()
      this.reapExpired(now)
      const current = this.st.getRev.get()!.value
      for (const c of compares) {
        const row = this.st.get.get(keyBytes(c.key))
        if ('modRevision' in c) {
          if ((row?.mod_rev ?? 0) !== c.modRevision) return {succeeded: false, revision: current}
        } else if (!row || row.value !== c.value) {
          return {succeeded: false, revision: current}
        }
      }
      for (const op of ops) {
        if (op.type === 'put' && op.lease !== undefined && !this.st.leaseExists.get(Number(op.lease), now)) {
          throw new LeaseNotFoundError(op.lease)
        }
      }
      const rev = current + 1
      let changed = 0
      for (const op of ops) {
        if (op.type === 'put') {
          const key = keyBytes(op.key)
          this.st.upsert.run(key, op.value, rev, rev, op.lease === undefined ? null : Number(op.lease))
          this.st.log.run(rev, key, 'put', op.value, now)
          changed++
        } else {
          const keys = op.type === 'delete' ? (this.st.get.get(keyBytes(op.key)) ? [keyBytes(op.key)] : []) : this.keysUnder(op.prefix)
          for (const key of keys) {
            this.st.del.run(key)
            this.st.log.run(rev, key, 'delete', '', now)
            changed++
          }
        }
      }
      if (changed === 0) return {succeeded: true, revision: current}
      this.setRevision(rev)
      if (rev % this.opts.trimEveryRevisions === 0) this.trimChangelog(now)
      return {succeeded: true, revision: rev}
    }, !ephemeral)
    return result
  }

  /**
   * Runs fn in a write transaction (BEGIN IMMEDIATE), synced unless durable is false. If it changed
   * the revision, then once it is committed (visible to every reader): local watches poll soon and
   * other processes are signalled.
   */
  private write<T>(fn: () => T, durable = true): T {
    this.bumped = false
    if (!durable) this.st.syncNormal.run()
    try {
      const result = this.db.transaction(fn).immediate()
      if (this.bumped) {
        this.wake.signal()
        this.watches.schedulePoll()
      }
      return result
    } finally {
      this.bumped = false
      if (!durable) this.st.syncFull.run()
    }
  }

  private setRevision(rev: number): void {
    this.st.setRev.run(rev)
    this.bumped = true
  }

  /** Deletes every expired lease and its keys (one revision for all of them). Inside a write txn. */
  private reapExpired(now: number): void {
    const rev = dropExpiredLeases(this.st, now)
    if (rev) this.setRevision(rev)
  }

  /** Cheap check (one indexed read); takes the write lock only when some lease has expired. */
  private reapIfNeeded(): void {
    const now = Date.now()
    if (!this.st.anyExpired.get(now)) return
    this.write(() => this.reapExpired(Date.now()))
  }

  /** Trims the change log: rows beyond the newest changelogKeepRows AND older than changelogKeepMs. */
  private trimChangelog(now: number): void {
    const byCount = this.st.logCountAbove.get(this.opts.changelogKeepRows)?.rev
    if (byCount === undefined) return
    const byAge = this.st.logRevBefore.get(now - this.opts.changelogKeepMs)?.rev ?? null
    if (byAge === null) return
    this.compactTo(Math.min(byCount, byAge))
  }

  private compactTo(rev: number): void {
    if (rev <= this.st.getCompact.get()!.value) return
    this.st.logTrim.run(rev)
    this.st.setCompact.run(rev)
  }

  /**
   * Drops the change log up to and including revision (as etcd's compaction): watches from an older
   * revision fail with CompactedError. Normally automatic; public for tests and maintenance.
   */
  async compact(revision: number): Promise<void> {
    this.check()
    this.write(() => this.compactTo(Math.min(revision, this.st.getRev.get()!.value)))
  }

  // ---- leases ----

  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.check()
    if (!(ttlSeconds > 0)) throw new RangeError(`lease TTL must be positive, got ${ttlSeconds}`)
    const ttlMs = Math.round(ttlSeconds * 1000)
    const now = Date.now()
    const info = this.write(() => this.st.grantLease.run(ttlMs, now + ttlMs), false)
    const lease = new EmbeddedLease(this, String(info.lastInsertRowid), ttlSeconds, ttlMs, now + ttlMs)
    this.leases.add(lease)
    return lease
  }

  /** @internal Extends a lease; false when it is gone or already expired. */
  keepAliveLease(id: string, ttlMs: number): {alive: boolean; expiresAt: number} {
    const now = Date.now()
    const expiresAt = now + ttlMs
    const res = this.write(() => {
      const changes = this.st.keepAlive.run(expiresAt, Number(id), now).changes
      if (changes === 0) this.reapExpired(now)
      return changes
    }, false)
    return {alive: res > 0, expiresAt}
  }

  /** @internal Deletes a lease and every key bound to it. */
  revokeLease(id: string): void {
    if (this.closed) throw new CoordinatorClosedError(this.kind)
    this.write(() => {
      const rev = dropLease(this.st, Number(id), Date.now(), 0)
      if (rev) this.setRevision(rev)
    })
  }

  /** @internal */
  forgetLease(lease: EmbeddedLease): void {
    this.leases.delete(lease)
  }

  // ---- watches ----

  async watch(prefix: string, afterRevision: number, onEvent: (ev: WatchEvent) => void, onError?: (err: Error) => void): Promise<Watcher> {
    this.check()
    return this.watches.add(prefix, afterRevision, onEvent, onError)
  }

  /** True while another process's commits wake this one's watches through fs.watch (for tests). */
  get fileWatchActive(): boolean {
    return this.watches.fileWatchActive
  }

  // ---- lifecycle ----

  private check(): void {
    if (this.closed) throw new CoordinatorClosedError(this.kind)
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.watches.closeWatchers()
    for (const l of [...this.leases]) l.release()
    this.closed = true
    this.watches.stop()
    this.wake.close()
    this.db.close()
  }
}
