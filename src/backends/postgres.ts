import pg from 'pg'
import {UnreachableError, ValidationError} from '../errors.js'
import {inTransaction, keyStoreTableSpecs, retryTransaction, valuesList, type SqlConn, type SqlDriver, type SqlResult, type TableSpec} from './sql-driver.js'
import type {StoreUrl} from './url.js'

const RETRYABLE = new Set(['40P01' /* deadlock */, '40001' /* serialization */])
const retryable = (e: unknown) => RETRYABLE.has((e as {code?: string}).code ?? '')

/** `?` placeholders -> `$1..$n` (the store's SQL never has a literal `?`). */
const numberedCache = new Map<string, string>()
function numbered(sql: string): string {
  const hit = numberedCache.get(sql)
  if (hit !== undefined) return hit
  let i = 0
  const out = sql.replace(/\?/g, () => `$${++i}`)
  if (numberedCache.size >= 500) numberedCache.clear()
  numberedCache.set(sql, out)
  return out
}

async function run(c: pg.Pool | pg.PoolClient, sql: string, params: unknown[]): Promise<SqlResult> {
  const res = await c.query(numbered(sql), params)
  return {rows: res.rows, affected: res.rowCount ?? 0}
}

/** PostgreSQL through a pg pool. */
export class PostgresDriver implements SqlDriver {
  readonly kind = 'postgres' as const
  readonly shareLock = 'FOR SHARE'
  readonly maxKey = 1024
  readonly maxMember = 1536
  readonly returning = true

  private constructor(private readonly pool: pg.Pool) {}

  static async open(url: StoreUrl): Promise<PostgresDriver> {
    const pool = new pg.Pool({
      host: url.host,
      port: url.port,
      user: url.user ?? 'postgres',
      password: url.password,
      database: url.database,
      max: url.pool.maxOpen,
      idleTimeoutMillis: Math.max(1, url.pool.maxLifetime) * 1000,
      maxLifetimeSeconds: url.pool.maxLifetime || undefined,
      // No pool timeout: pg-pool counts the wait for a free connection against it, which fails
      // commands queued behind a busy pool. The open below bounds the first connect instead.
      connectionTimeoutMillis: 0,
    })
    pool.on('error', () => {})
    try {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('connect timeout after 5 s'), {code: 'ETIMEDOUT'})), 5000)
      })
      await Promise.race([pool.query('SELECT 1'), timeout]).finally(() => clearTimeout(timer))
    } catch (e) {
      void pool.end().catch(() => {})
      const err = e as {code?: string; message: string}
      if (err.code === '3D000') throw new ValidationError(`postgres database '${url.database}' does not exist at ${url.host}:${url.port}`)
      if (err.code === '28P01' || err.code === '28000') throw new ValidationError(`postgres at ${url.host}:${url.port} refused user '${url.user ?? 'postgres'}': ${err.message}`)
      throw new UnreachableError(`cannot reach postgres at ${url.host}:${url.port}: ${err.code ?? err.message}`)
    }
    return new PostgresDriver(pool)
  }

  query(sql: string, params: unknown[] = []): Promise<SqlResult> {
    return run(this.pool, sql, params)
  }

  transaction<T>(fn: (c: SqlConn) => Promise<T>, opts: {snapshot?: boolean} = {}): Promise<T> {
    return retryTransaction(async () => {
      const client = await this.pool.connect()
      const c = {query: (sql: string, params: unknown[] = []) => run(client, sql, params), release: () => client.release()}
      return inTransaction(c, [opts.snapshot ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN'], fn)
    }, retryable)
  }

  insertIgnore(table: string, cols: string[], rows: number, returning?: string): string {
    return `INSERT INTO ${table} (${cols.join(',')}) VALUES ${valuesList(rows, cols.length)} ON CONFLICT DO NOTHING${returning ? ` RETURNING ${returning}` : ''}`
  }

  upsert(table: string, cols: string[], pk: string[], update: string[], rows: number): string {
    return `INSERT INTO ${table} (${cols.join(',')}) VALUES ${valuesList(rows, cols.length)} ON CONFLICT (${pk.join(',')}) DO UPDATE SET ${update.map((c) => `${c}=EXCLUDED.${c}`).join(',')}`
  }

  encodeScore(x: number): number | string {
    return x === Infinity ? 'Infinity' : x === -Infinity ? '-Infinity' : x
  }

  decodeScore(x: unknown): number {
    return Number(x)
  }

  async describe(tables: string[]): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>()
    const {rows} = await this.query(
      `SELECT table_name AS t, column_name AS c, data_type AS d FROM information_schema.columns WHERE table_schema = current_schema() AND table_name IN (${tables.map(() => '?').join(',')})`,
      tables,
    )
    for (const r of rows) {
      const t = String(r.t)
      if (!out.has(t)) out.set(t, new Map())
      out.get(t)!.set(String(r.c).toLowerCase(), String(r.d).toLowerCase())
    }
    return out
  }

  specs(p: string): TableSpec[] {
    return keyStoreTableSpecs(p, {key: ['bytea'], value: ['bytea'], typeCode: ['smallint', 'integer'], double: ['double precision']})
  }

  ddl(p: string): string[] {
    return [
      `CREATE TABLE IF NOT EXISTS ${p}keys (k BYTEA NOT NULL PRIMARY KEY, type SMALLINT NOT NULL, expire_at BIGINT NULL)`,
      `CREATE INDEX IF NOT EXISTS ${p}keys_expire ON ${p}keys (expire_at) WHERE expire_at IS NOT NULL`,
      `CREATE TABLE IF NOT EXISTS ${p}strings (k BYTEA NOT NULL PRIMARY KEY, v BYTEA NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS ${p}hash (k BYTEA NOT NULL, f BYTEA NOT NULL, v BYTEA NOT NULL, PRIMARY KEY (k, f))`,
      `CREATE TABLE IF NOT EXISTS ${p}set (k BYTEA NOT NULL, m BYTEA NOT NULL, PRIMARY KEY (k, m))`,
      `CREATE TABLE IF NOT EXISTS ${p}zset (k BYTEA NOT NULL, m BYTEA NOT NULL, score DOUBLE PRECISION NOT NULL, PRIMARY KEY (k, m))`,
      `CREATE INDEX IF NOT EXISTS ${p}zset_score ON ${p}zset (k, score)`,
      `CREATE TABLE IF NOT EXISTS ${p}list (k BYTEA NOT NULL, pos BIGINT NOT NULL, v BYTEA NOT NULL, PRIMARY KEY (k, pos))`,
    ]
  }

  async withSchemaLock<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    const c: SqlConn = {query: (sql, params = []) => run(client, sql, params)}
    try {
      await client.query(`SELECT pg_advisory_lock(hashtext('rstore_schema'))`)
      return await fn(c)
    } finally {
      await client.query(`SELECT pg_advisory_unlock(hashtext('rstore_schema'))`).catch(() => {})
      client.release()
    }
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
