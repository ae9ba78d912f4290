/**
 * The embedded coordinator's SQLite file: its tables, pragmas and prepared statements, and the
 * conversion of its rows to KeyValues. Keys are stored as BLOBs (their UTF-8 bytes) so that SQLite
 * orders them exactly like etcd does.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import type Database from 'better-sqlite3'
import type {KeyValue} from './types.js'

export interface KvRow {
  key: Buffer
  value: string
  create_rev: number
  mod_rev: number
  lease: number | null
}

export interface LogRow {
  id: number
  rev: number
  key: Buffer
  type: 'put' | 'delete'
  value: string
}

/**
 * A list() row as an array, the key already text: `CAST(key AS TEXT)` reads the stored UTF-8 bytes as
 * a string, as Buffer.toString('utf8') would, without a Buffer per row (list() of a product's ~1000
 * keys is what a proxy reads on every topology change: this makes it ~2.5x faster).
 */
export type RawKvRow = [key: string, value: string, createRev: number, modRev: number, lease: number | null]

export function rawToKeyValue(row: RawKvRow): KeyValue {
  const kv: KeyValue = {key: row[0], value: row[1], createRevision: row[2], modRevision: row[3]}
  if (row[4] !== null) kv.lease = String(row[4])
  return kv
}

export function toKeyValue(row: KvRow): KeyValue {
  const kv: KeyValue = {key: row.key.toString('utf8'), value: row.value, createRevision: row.create_rev, modRevision: row.mod_rev}
  if (row.lease !== null) kv.lease = String(row.lease)
  return kv
}

/** Another process holds the lock: transient, worth trying again. */
export function isBusy(err: unknown): boolean {
  const code = (err as {code?: string})?.code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code === 'SQLITE_BUSY_SNAPSHOT'
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

/** Sets the pragmas (WAL, synced commits) and creates the tables if missing. */
export async function initDatabase(db: Database.Database, busyTimeoutMs: number): Promise<void> {
  // Several processes may open a fresh file at once: switching to WAL and creating the schema can
  // meet a lock even with the busy timeout (SQLite does not always call the busy handler here).
  const deadline = Date.now() + busyTimeoutMs
  for (;;) {
    try {
      db.pragma(`busy_timeout = ${busyTimeoutMs}`)
      if (String(db.pragma('journal_mode', {simple: true})).toLowerCase() !== 'wal') db.pragma('journal_mode = WAL')
      db.pragma('synchronous = FULL')
      db.pragma('foreign_keys = OFF')
      db.transaction(() => db.exec(SCHEMA)).immediate()
      return
    } catch (err) {
      if (!isBusy(err) || Date.now() > deadline) throw err
      await sleep(20 + Math.random() * 30)
    }
  }
}

export interface Statements {
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

export function prepareStatements(db: Database.Database): Statements {
  return {
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
