import {setTimeout as sleep} from 'node:timers/promises'

/** What the SQL key store needs from a database driver (MySQL/MariaDB or PostgreSQL). */
export interface SqlResult {
  rows: Record<string, unknown>[]
  /** Rows inserted/updated/deleted by a write statement. */
  affected: number
}

export interface SqlConn {
  /** Runs one statement; placeholders are `?` (translated for PostgreSQL). */
  query(sql: string, params?: unknown[]): Promise<SqlResult>
}

export interface TableSpec {
  name: string
  /** column name -> accepted data_type values (information_schema, lower case). */
  columns: Record<string, string[]>
}

export interface SqlDriver extends SqlConn {
  readonly kind: 'mysql' | 'postgres'
  /** Runs fn in a transaction on one connection; retried on deadlock / serialization failure. */
  transaction<T>(fn: (c: SqlConn) => Promise<T>, opts?: {snapshot?: boolean}): Promise<T>
  /** INSERT that skips rows whose primary key exists. */
  insertIgnore(table: string, cols: string[], rows: number, returning?: string): string
  /** INSERT that overwrites `update` columns on a primary key conflict. */
  upsert(table: string, cols: string[], pk: string[], update: string[], rows: number): string
  /** Row lock suffix for a shared read lock. */
  readonly shareLock: string
  /** Longest key / field / member the tables accept (bytes). */
  readonly maxKey: number
  readonly maxMember: number
  /** Whether the driver can report which rows an INSERT ... RETURNING inserted. */
  readonly returning: boolean
  /** Scores as stored (MySQL has no infinities). */
  encodeScore(x: number): number | string
  decodeScore(x: unknown): number
  /** Columns of existing tables among `tables` (empty map entry = table absent). */
  describe(tables: string[]): Promise<Map<string, Map<string, string>>>
  /** CREATE statements for the key store's tables with this prefix. */
  ddl(prefix: string): string[]
  /** The expected shape of each table (for the check at open). */
  specs(prefix: string): TableSpec[]
  /** Runs fn while holding a database-wide named lock (schema creation). */
  withSchemaLock<T>(fn: (c: SqlConn) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export function valuesList(rows: number, cols: number): string {
  const one = `(${new Array(cols).fill('?').join(',')})`
  return new Array(rows).fill(one).join(',')
}

export function placeholders(n: number): string {
  return new Array(n).fill('?').join(',')
}

/**
 * Runs one transaction attempt until it succeeds or fails with an error that `retryable` (the
 * dialect's deadlock / serialization codes) rejects; at most `retries` reruns, each after a short
 * random backoff so two colliding transactions do not collide again.
 */
export async function retryTransaction<T>(attempt: () => Promise<T>, retryable: (e: unknown) => boolean, retries = 20): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt()
    } catch (e) {
      if (i >= retries || !retryable(e)) throw e
      await sleep(Math.random() * 5 * (i + 1))
    }
  }
}

/**
 * One attempt of a transaction on a pooled connection: the dialect's BEGIN statements, fn, COMMIT; on
 * any error ROLLBACK (best effort) and rethrow. The connection goes back to its pool either way.
 */
export async function inTransaction<T>(conn: SqlConn & {release(): void}, begin: string[], fn: (c: SqlConn) => Promise<T>): Promise<T> {
  try {
    for (const sql of begin) await conn.query(sql)
    const out = await fn(conn)
    await conn.query('COMMIT')
    return out
  } catch (e) {
    await conn.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    conn.release()
  }
}

/** The column types a dialect accepts for each kind of column of the key-store tables (the first is created). */
export interface ColumnTypes {
  key: string[]
  value: string[]
  typeCode: string[]
  double: string[]
}

/** The shape of the key-store tables (one per Redis type, docs/architecture.md "SQL routing"), checked at open. */
export function keyStoreTableSpecs(p: string, t: ColumnTypes): TableSpec[] {
  const int64 = ['bigint']
  return [
    {name: `${p}keys`, columns: {k: t.key, type: t.typeCode, expire_at: int64}},
    {name: `${p}strings`, columns: {k: t.key, v: t.value}},
    {name: `${p}hash`, columns: {k: t.key, f: t.key, v: t.value}},
    {name: `${p}set`, columns: {k: t.key, m: t.key}},
    {name: `${p}zset`, columns: {k: t.key, m: t.key, score: t.double}},
    {name: `${p}list`, columns: {k: t.key, pos: int64, v: t.value}},
  ]
}
