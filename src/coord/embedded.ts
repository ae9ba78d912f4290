/**
 * The embedded coordinator: the coordinator's key space in one SQLite file (WAL), shared by every
 * process of one machine (the CLI, several proxies, a migrator) with the same semantics as etcd:
 *
 * - one global revision, bumped once by every write transaction that changes something; every changed
 *   key is logged in `changelog` at that revision;
 * - txn(): compares and ops inside one `BEGIN IMMEDIATE` transaction (one writer at a time across all
 *   processes; readers never block thanks to WAL);
 * - watches poll the changelog and deliver each event once, in revision order; a revision that has
 *   been trimmed from the changelog ("compacted") ends the watch with an error. A process polls at
 *   once after its own commits, and within ~1 ms of another process's: every commit that changes the
 *   revision is followed by a 1-byte write to `<file>-wake`, and watching processes watch the folder
 *   (fs.watch, inotify on Linux) for it. (Not the `-wal` file: its writes come before the commit is
 *   visible to readers -- SQLite publishes it in the shared-memory index after the fsync, which makes
 *   no file event -- so a poll on them finds nothing about 2 ms too early.) A timer poll
 *   (`fsWatchPollIntervalMs`, or `pollIntervalMs` when the folder cannot be watched) backs it up, so
 *   correctness never depends on the file watch;
 * - commits are synced (`synchronous = FULL`: the WAL is fsynced) except those that only write what
 *   dies with a lease anyway: puts of lease-bound keys (a proxy's record, e.g. its acknowledged epoch)
 *   and lease grants and keep-alives. Those skip the fsync (~2 ms here, a migration barrier waits for
 *   one per proxy); the next synced commit of any process makes them durable with it (one WAL, fsynced
 *   whole), and a power loss can only lose ones nothing durable was written after;
 * - leases: a row with an expiry time, extended by a keep-alive timer in the holder process every
 *   ttl/3; any process reaps expired leases (deletes them and their keys, logged as delete events) at
 *   the start of its operations and on its watch polls. Timers are unref()'d.
 *
 * Keys are stored as BLOBs (their UTF-8 bytes) so that SQLite orders them exactly like etcd does.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import Database from 'better-sqlite3'
import {closeSync, existsSync, constants as fsc, mkdirSync, openSync, writeSync} from 'node:fs'
import {basename, dirname, resolve} from 'node:path'
import {RstoreError} from '../errors.js'
import {watchFiles, type FileWakeup} from './wakeup.js'
import {CompactedError, CoordinatorClosedError, keyBytes, LeaseNotFoundError, prefixEnd, reportWatchError, validateOps} from './keys.js'
import {LeaseLoss} from './lease-loss.js'
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

interface KvRow {
  key: Buffer
  value: string
  create_rev: number
  mod_rev: number
  lease: number | null
}

interface LogRow {
  id: number
  rev: number
  key: Buffer
  type: 'put' | 'delete'
  value: string
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1), ('compact_revision', 0);
CREATE TABLE IF NOT EXISTS kv (
  key BLOB PRIMARY KEY,
  value TEXT NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  lease INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS changelog (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rev INTEGER NOT NULL,
  key BLOB NOT NULL,
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changelog_rev ON changelog (rev);
CREATE TABLE IF NOT EXISTS leases (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ttl_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at_ms);
`

const PAGE = 2000

/** Written (1 byte, at offset 0) after each commit that changes the revision: `<file>` + this. */
const WAKE_SUFFIX = '-wake'
const WAKE_BYTE = Buffer.from([0x2a])

function isBusy(err: unknown): boolean {
  const code = (err as {code?: string})?.code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT'
}

/**
 * A list() row as an array, the key already text: `CAST(key AS TEXT)` reads the stored UTF-8 bytes as
 * a string, as Buffer.toString('utf8') would, without a Buffer per row (list() of a product's ~1000
 * keys is what a proxy reads on every topology change: this makes it ~2.5x faster).
 */
type RawKvRow = [key: string, value: string, createRev: number, modRev: number, lease: number | null]

function rawToKeyValue(row: RawKvRow): KeyValue {
  const kv: KeyValue = {key: row[0], value: row[1], createRevision: row[2], modRevision: row[3]}
  if (row[4] !== null) kv.lease = String(row[4])
  return kv
}

function toKeyValue(row: KvRow): KeyValue {
  const kv: KeyValue = {key: row.key.toString('utf8'), value: row.value, createRevision: row.create_rev, modRevision: row.mod_rev}
  if (row.lease !== null) kv.lease = String(row.lease)
  return kv
}

export class EmbeddedCoordinator implements Coordinator {
  readonly kind = 'embedded' as const
  readonly path: string
  private readonly db: Database.Database
  private readonly opts: Required<EmbeddedOptions>
  private closed = false
  private readonly leases = new Set<EmbeddedLease>()
  private readonly watchers = new Set<EmbeddedWatcher>()
  private pollTimer: NodeJS.Timeout | null = null
  private pollSoon: NodeJS.Immediate | null = null
  /** The folder watch while there are watchers (null without watchers or when it is unavailable). */
  private fsWake: FileWakeup | null = null
  /** fs.watch threw or failed: poll on the timer only (every pollIntervalMs). */
  private fsWatchBroken = false
  /** The `<file>-wake` descriptor (-1 until opened; null when it cannot be opened: no signal). */
  private wakeFd: number | null = -1
  /** Set when the write transaction running changes the revision. */
  private bumped = false

  private readonly st: {
    getRev: Database.Statement<[], {value: number}>
    setRev: Database.Statement<[number]>
    getCompact: Database.Statement<[], {value: number}>
    setCompact: Database.Statement<[number]>
    get: Database.Statement<[Buffer], KvRow>
    listAll: Database.Statement<[], RawKvRow>
    listFrom: Database.Statement<[Buffer], RawKvRow>
    listRange: Database.Statement<[Buffer, Buffer], RawKvRow>
    keysFrom: Database.Statement<[Buffer], {key: Buffer}>
    keysRange: Database.Statement<[Buffer, Buffer], {key: Buffer}>
    keysAll: Database.Statement<[], {key: Buffer}>
    upsert: Database.Statement<[Buffer, string, number, number, number | null]>
    del: Database.Statement<[Buffer]>
    log: Database.Statement<[number, Buffer, string, string, number]>
    leaseExists: Database.Statement<[number, number], {id: number}>
    anyExpired: Database.Statement<[number], {id: number}>
    expiredLeases: Database.Statement<[number], {id: number}>
    leaseKeys: Database.Statement<[number], {key: Buffer}>
    delLease: Database.Statement<[number]>
    grantLease: Database.Statement<[number, number]>
    keepAlive: Database.Statement<[number, number, number]>
    logFirstIdAfterRev: Database.Statement<[number], {id: number | null}>
    logAfterId: Database.Statement<[number, number], LogRow>
    logMaxId: Database.Statement<[], {id: number | null}>
    logCountAbove: Database.Statement<[number], {rev: number}>
    logRevBefore: Database.Statement<[number], {rev: number | null}>
    logTrim: Database.Statement<[number]>
    syncNormal: Database.Statement<[]>
    syncFull: Database.Statement<[]>
  }

  private constructor(path: string, db: Database.Database, opts: Required<EmbeddedOptions>) {
    this.path = path
    this.db = db
    this.opts = opts
    this.st = {
      getRev: db.prepare(`SELECT value FROM meta WHERE name = 'revision'`),
      setRev: db.prepare(`UPDATE meta SET value = ? WHERE name = 'revision'`),
      getCompact: db.prepare(`SELECT value FROM meta WHERE name = 'compact_revision'`),
      setCompact: db.prepare(`UPDATE meta SET value = ? WHERE name = 'compact_revision'`),
      get: db.prepare(`SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key = ?`),
      listAll: db.prepare<[], RawKvRow>(`SELECT CAST(key AS TEXT), value, create_rev, mod_rev, lease FROM kv ORDER BY key`).raw(),
      listFrom: db.prepare<[Buffer], RawKvRow>(`SELECT CAST(key AS TEXT), value, create_rev, mod_rev, lease FROM kv WHERE key >= ? ORDER BY key`).raw(),
      listRange: db
        .prepare<[Buffer, Buffer], RawKvRow>(`SELECT CAST(key AS TEXT), value, create_rev, mod_rev, lease FROM kv WHERE key >= ? AND key < ? ORDER BY key`)
        .raw(),
      keysAll: db.prepare(`SELECT key FROM kv ORDER BY key`),
      keysFrom: db.prepare(`SELECT key FROM kv WHERE key >= ? ORDER BY key`),
      keysRange: db.prepare(`SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key`),
      upsert: db.prepare(
        `INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease`,
      ),
      del: db.prepare(`DELETE FROM kv WHERE key = ?`),
      log: db.prepare(`INSERT INTO changelog (rev, key, type, value, at_ms) VALUES (?, ?, ?, ?, ?)`),
      leaseExists: db.prepare(`SELECT id FROM leases WHERE id = ? AND expires_at_ms > ?`),
      anyExpired: db.prepare(`SELECT id FROM leases WHERE expires_at_ms <= ? LIMIT 1`),
      expiredLeases: db.prepare(`SELECT id FROM leases WHERE expires_at_ms <= ? ORDER BY id`),
      leaseKeys: db.prepare(`SELECT key FROM kv WHERE lease = ? ORDER BY key`),
      delLease: db.prepare(`DELETE FROM leases WHERE id = ?`),
      grantLease: db.prepare(`INSERT INTO leases (ttl_ms, expires_at_ms) VALUES (?, ?)`),
      keepAlive: db.prepare(`UPDATE leases SET expires_at_ms = ? WHERE id = ? AND expires_at_ms > ?`),
      logFirstIdAfterRev: db.prepare(`SELECT min(id) AS id FROM changelog WHERE rev > ?`),
      logAfterId: db.prepare(`SELECT id, rev, key, type, value FROM changelog WHERE id > ? ORDER BY id LIMIT ?`),
      logMaxId: db.prepare(`SELECT max(id) AS id FROM changelog`),
      logCountAbove: db.prepare(`SELECT rev FROM changelog ORDER BY id DESC LIMIT 1 OFFSET ?`),
      logRevBefore: db.prepare(`SELECT max(rev) AS rev FROM changelog WHERE at_ms < ?`),
      logTrim: db.prepare(`DELETE FROM changelog WHERE rev <= ?`),
      syncNormal: db.prepare(`PRAGMA synchronous = NORMAL`),
      syncFull: db.prepare(`PRAGMA synchronous = FULL`),
    }
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
      // Several processes may open a fresh file at once: switching to WAL and creating the schema can
      // meet a lock even with the busy timeout (SQLite does not always call the busy handler here).
      const deadline = Date.now() + opts.busyTimeoutMs
      for (;;) {
        try {
          db.pragma(`busy_timeout = ${opts.busyTimeoutMs}`)
          if (String(db.pragma('journal_mode', {simple: true})).toLowerCase() !== 'wal') db.pragma('journal_mode = WAL')
          db.pragma('synchronous = FULL')
          db.pragma('foreign_keys = OFF')
          db.transaction(() => db.exec(SCHEMA)).immediate()
          break
        } catch (err) {
          if (!isBusy(err) || Date.now() > deadline) throw err
          await sleep(20 + Math.random() * 30)
        }
      }
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
        this.signalCommit()
        this.schedulePollSoon()
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

  /** Wakes the watches of other processes (they watch `<file>-wake`); best effort. */
  private signalCommit(): void {
    if (this.wakeFd === -1) {
      try {
        this.wakeFd = openSync(this.path + WAKE_SUFFIX, fsc.O_WRONLY | fsc.O_CREAT, 0o666)
      } catch {
        this.wakeFd = null // e.g. no permission: other processes see this one's commits on their timer poll
      }
    }
    if (this.wakeFd === null) return
    try {
      writeSync(this.wakeFd, WAKE_BYTE, 0, 1, 0)
    } catch {
      // a full disk, say: the timer polls remain
    }
  }

  /** Deletes every expired lease and its keys (one revision for all of them). Inside a write txn. */
  private reapExpired(now: number): void {
    const expired = this.st.expiredLeases.all(now)
    if (expired.length === 0) return
    let rev = 0
    for (const {id} of expired) {
      for (const {key} of this.st.leaseKeys.all(id)) {
        if (!rev) rev = this.st.getRev.get()!.value + 1
        this.st.del.run(key)
        this.st.log.run(rev, key, 'delete', '', now)
      }
      this.st.delLease.run(id)
    }
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
      const now = Date.now()
      const keys = this.st.leaseKeys.all(Number(id))
      if (keys.length) {
        const rev = this.st.getRev.get()!.value + 1
        for (const {key} of keys) {
          this.st.del.run(key)
          this.st.log.run(rev, key, 'delete', '', now)
        }
        this.setRevision(rev)
      }
      this.st.delLease.run(Number(id))
    })
  }

  /** @internal */
  forgetLease(lease: EmbeddedLease): void {
    this.leases.delete(lease)
  }

  // ---- watches ----

  async watch(prefix: string, afterRevision: number, onEvent: (ev: WatchEvent) => void, onError?: (err: Error) => void): Promise<Watcher> {
    this.check()
    const w = new EmbeddedWatcher(this, keyBytes(prefix), afterRevision, onEvent, onError)
    this.watchers.add(w)
    if (!this.fsWake && !this.fsWatchBroken && this.opts.useFsWatch) {
      this.fsWake = watchFiles(dirname(this.path), [basename(this.path) + WAKE_SUFFIX], () => this.schedulePollSoon(), () => this.onFileWatchError())
      if (!this.fsWake) this.fsWatchBroken = true
    }
    if (!this.pollTimer) this.startPollTimer()
    this.schedulePollSoon()
    return w
  }

  /** @internal */
  removeWatcher(w: EmbeddedWatcher): void {
    this.watchers.delete(w)
    if (this.watchers.size === 0) this.stopPolling()
  }

  /** True while another process's commits wake this one's watches through fs.watch (for tests). */
  get fileWatchActive(): boolean {
    return this.fsWake !== null
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
    this.schedulePollSoon()
  }

  private schedulePollSoon(): void {
    if (this.closed || this.watchers.size === 0 || this.pollSoon) return
    this.pollSoon = setImmediate(() => {
      this.pollSoon = null
      this.poll()
    })
    this.pollSoon.unref()
  }

  private polling = false

  private poll(): void {
    if (this.closed || this.polling || this.watchers.size === 0) return
    this.polling = true
    try {
      try {
        this.reapIfNeeded()
      } catch (err) {
        if (!isBusy(err)) throw err
      }
      for (const w of [...this.watchers]) {
        if (this.closed) break
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
   * @internal One consistent read (a snapshot) of the change log for a watcher: the rows after row
   * lastId (or, when lastId < 0, after revision afterRevision), at most one page.
   */
  readLog(lastId: number, afterRevision: number, scannedRev: number): {revision: number; compactRevision: number; lastId: number; rows: LogRow[]} {
    return this.db.transaction(() => {
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
    for (const w of [...this.watchers]) await w.close()
    for (const l of [...this.leases]) l.release()
    this.closed = true
    this.stopPolling()
    if (this.pollSoon) clearImmediate(this.pollSoon)
    this.pollSoon = null
    if (typeof this.wakeFd === 'number' && this.wakeFd >= 0) closeSync(this.wakeFd)
    this.wakeFd = null
    this.db.close()
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
    private readonly coord: EmbeddedCoordinator,
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
      const {revision, compactRevision, lastId, rows} = this.coord.readLog(this.lastId, this.afterRevision, this.scannedRev)
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
    this.coord.removeWatcher(this)
  }
}

class EmbeddedLease implements Lease {
  private timer: NodeJS.Timeout | null = null
  private readonly loss = new LeaseLoss(() => {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.coord.forgetLease(this)
  })

  constructor(
    private readonly coord: EmbeddedCoordinator,
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
