import mysql from 'mysql2/promise'
import {UnreachableError, ValidationError} from '../errors.js'
import {inTransaction, keyStoreTableSpecs, retryTransaction, valuesList, type SqlConn, type SqlDriver, type SqlResult, type TableSpec} from './sql-driver.js'
import type {StoreUrl} from './url.js'

const DBL_MAX = 1.7976931348623157e308
const RETRYABLE = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */])
const retryable = (e: unknown) => RETRYABLE.has((e as {errno?: number}).errno ?? -1)

function toResult(res: unknown): SqlResult {
  if (Array.isArray(res)) return {rows: res as Record<string, unknown>[], affected: 0}
  return {rows: [], affected: (res as {affectedRows?: number}).affectedRows ?? 0}
}

/** MySQL / MariaDB through a mysql2 pool (READ COMMITTED sessions: no gap locks). */
export class MysqlDriver implements SqlDriver {
  readonly kind = 'mysql' as const
  readonly shareLock = 'LOCK IN SHARE MODE'
  readonly maxKey = 1024
  readonly maxMember = 2048
  readonly returning = false

  private constructor(
    private readonly pool: mysql.Pool,
    private readonly database: string,
  ) {}

  static async open(url: StoreUrl): Promise<MysqlDriver> {
    const pool = mysql.createPool({
      host: url.host,
      port: url.port,
      user: url.user ?? 'root',
      password: url.password,
      database: url.database,
      connectionLimit: url.pool.maxOpen,
      maxIdle: Math.min(url.pool.maxIdle, url.pool.maxOpen),
      idleTimeout: Math.max(1, url.pool.maxLifetime) * 1000,
      supportBigNumbers: true,
      bigNumberStrings: false,
      connectTimeout: 5000,
      waitForConnections: true,
    })
    pool.pool.on('connection', (conn: {query(sql: string): void}) => {
      conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED')
    })
    const d = new MysqlDriver(pool, url.database!)
    try {
      await pool.query('SELECT 1')
    } catch (e) {
      await pool.end().catch(() => {})
      const err = e as {code?: string; errno?: number; message: string}
      if (err.errno === 1049) throw new ValidationError(`mysql database '${url.database}' does not exist at ${url.host}:${url.port}`)
      if (err.errno === 1045) throw new ValidationError(`mysql at ${url.host}:${url.port} refused user '${url.user ?? 'root'}': ${err.message}`)
      throw new UnreachableError(`cannot reach mysql at ${url.host}:${url.port}: ${err.code ?? err.message}`)
    }
    return d
  }

  async query(sql: string, params: unknown[] = []): Promise<SqlResult> {
    const [res] = await this.pool.query(sql, params)
    return toResult(res)
  }

  transaction<T>(fn: (c: SqlConn) => Promise<T>, opts: {snapshot?: boolean} = {}): Promise<T> {
    return retryTransaction(async () => {
      const conn = await this.pool.getConnection()
      const c = {query: async (sql: string, params: unknown[] = []) => toResult((await conn.query(sql, params))[0]), release: () => conn.release()}
      const begin = opts.snapshot
        ? ['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY']
        : ['START TRANSACTION']
      return inTransaction(c, begin, fn)
    }, retryable)
  }

  insertIgnore(table: string, cols: string[], rows: number): string {
    return `INSERT IGNORE INTO ${table} (${cols.join(',')}) VALUES ${valuesList(rows, cols.length)}`
  }

  upsert(table: string, cols: string[], _pk: string[], update: string[], rows: number): string {
    return `INSERT INTO ${table} (${cols.join(',')}) VALUES ${valuesList(rows, cols.length)} ON DUPLICATE KEY UPDATE ${update.map((c) => `${c}=VALUES(${c})`).join(',')}`
  }

  encodeScore(x: number): number {
    return x === Infinity ? DBL_MAX : x === -Infinity ? -DBL_MAX : x
  }

  decodeScore(x: unknown): number {
    const n = Number(x)
    return n >= DBL_MAX ? Infinity : n <= -DBL_MAX ? -Infinity : n
  }

  async describe(tables: string[]): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>()
    const {rows} = await this.query(
      `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS d FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (${tables.map(() => '?').join(',')})`,
      [this.database, ...tables],
    )
    for (const r of rows) {
      const t = String(r.t)
      if (!out.has(t)) out.set(t, new Map())
      out.get(t)!.set(String(r.c).toLowerCase(), String(r.d).toLowerCase())
    }
    return out
  }

  specs(p: string): TableSpec[] {
    return keyStoreTableSpecs(p, {key: ['varbinary'], value: ['longblob', 'blob', 'mediumblob'], typeCode: ['tinyint', 'smallint'], double: ['double']})
  }

  ddl(p: string): string[] {
    const tail = 'ENGINE=InnoDB ROW_FORMAT=DYNAMIC'
    return [
      `CREATE TABLE IF NOT EXISTS ${p}keys (k VARBINARY(1024) NOT NULL, type TINYINT NOT NULL, expire_at BIGINT NULL, PRIMARY KEY (k), KEY ${p}keys_expire (expire_at)) ${tail}`,
      `CREATE TABLE IF NOT EXISTS ${p}strings (k VARBINARY(1024) NOT NULL, v LONGBLOB NOT NULL, PRIMARY KEY (k)) ${tail}`,
      `CREATE TABLE IF NOT EXISTS ${p}hash (k VARBINARY(1024) NOT NULL, f VARBINARY(2048) NOT NULL, v LONGBLOB NOT NULL, PRIMARY KEY (k, f)) ${tail}`,
      `CREATE TABLE IF NOT EXISTS ${p}set (k VARBINARY(1024) NOT NULL, m VARBINARY(2048) NOT NULL, PRIMARY KEY (k, m)) ${tail}`,
      `CREATE TABLE IF NOT EXISTS ${p}zset (k VARBINARY(1024) NOT NULL, m VARBINARY(2048) NOT NULL, score DOUBLE NOT NULL, PRIMARY KEY (k, m), KEY ${p}zset_score (k, score)) ${tail}`,
      `CREATE TABLE IF NOT EXISTS ${p}list (k VARBINARY(1024) NOT NULL, pos BIGINT NOT NULL, v LONGBLOB NOT NULL, PRIMARY KEY (k, pos)) ${tail}`,
    ]
  }

  async withSchemaLock<T>(fn: (c: SqlConn) => Promise<T>): Promise<T> {
    const conn = await this.pool.getConnection()
    const c: SqlConn = {query: async (sql, params = []) => toResult((await conn.query(sql, params))[0])}
    try {
      await conn.query(`SELECT GET_LOCK('rstore_schema', 30)`)
      return await fn(c)
    } finally {
      await conn.query(`SELECT RELEASE_LOCK('rstore_schema')`).catch(() => {})
      conn.release()
    }
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
