import {ValidationError} from '../../errors.js'
import {globMatch, globPrefix} from '../glob.js'
import {MysqlDriver} from '../mysql.js'
import {PostgresDriver} from '../postgres.js'
import {CommandError, error, integer, WRONGTYPE, type Reply} from '../reply.js'
import {placeholders, type SqlConn, type SqlDriver} from '../sql-driver.js'
import type {KeySnapshot, KeyStore, ScanPage} from '../types.js'
import type {StoreUrl} from '../url.js'
import {commandTable} from './commands.js'
import {prefixEnd} from '../../coord/keys.js'
import {chunks, dedupe, expiryOf, num, RetryTx, type CommandTable, type KeyState, type Tables} from './common.js'
import {Reaper} from './reaper.js'
import {ensureSchema} from './schema.js'
import {deleteIfSame, readKeys, writeKey, writeKeysIfAbsent} from './snapshot.js'

export interface SqlStoreOptions {
  /** How often expired keys are deleted in the background (ms); 0 disables the reaper. */
  reapIntervalMs?: number
}

/**
 * Redis data in MySQL/MariaDB or PostgreSQL. A key table (key, type, expire_at) says which type a key
 * has and when it expires; per-type tables hold the data. Every write command is one transaction that
 * first locks the key's row (SELECT ... FOR UPDATE), so concurrent commands on one key serialize and
 * none sees half of another. Expired keys are invisible at once (every read checks expire_at) and
 * deleted by a background reaper (and by any write that finds them).
 *
 * The commands live in ./commands.ts and the per-type modules; the helpers below are theirs to use.
 */
export class SqlStore implements KeyStore {
  readonly kind: 'mysql' | 'postgres'
  readonly name: string
  readonly t: Tables
  private readonly handlers: CommandTable
  private readonly reaper: Reaper
  /** writeKeysIfAbsent tries the insert-first path again from this time (ms). */
  fastPathAfter = 0

  private constructor(
    readonly db: SqlDriver,
    url: StoreUrl,
  ) {
    this.kind = db.kind
    this.name = url.display
    const p = url.prefix
    this.t = {keys: `${p}keys`, data: [`${p}strings`, `${p}hash`, `${p}list`, `${p}set`, `${p}zset`]}
    this.handlers = commandTable(this)
    this.reaper = new Reaper(db, this.t)
  }

  /** Connects, checks the tables' shape (creating missing ones) and starts the reaper. */
  static async open(url: StoreUrl, opts: SqlStoreOptions = {}): Promise<SqlStore> {
    if (url.kind === 'redis') throw new ValidationError(`${url.display} is not a SQL store`)
    const db = url.kind === 'mysql' ? await MysqlDriver.open(url) : await PostgresDriver.open(url)
    const store = new SqlStore(db, url)
    try {
      await ensureSchema(db, url)
    } catch (e) {
      await db.close().catch(() => {})
      throw e
    }
    const every = opts.reapIntervalMs ?? 1000
    if (every > 0) store.reaper.start(every)
    return store
  }

  async close(): Promise<void> {
    this.reaper.stop()
    await this.db.close()
  }

  // ---------------------------------------------------------------- plumbing for the commands

  async tx<X>(fn: (c: SqlConn) => Promise<X>): Promise<X> {
    for (let i = 0; ; i++) {
      try {
        return await this.db.transaction(fn)
      } catch (e) {
        if (e instanceof RetryTx && i < 100) continue
        throw e
      }
    }
  }

  checkKey(key: Buffer): void {
    if (key.length > this.db.maxKey) throw new CommandError(`ERR key is longer than ${this.db.maxKey} bytes, the limit of the ${this.kind} store`)
  }

  checkMember(m: Buffer): void {
    if (m.length > this.db.maxMember) throw new CommandError(`ERR field or member is longer than ${this.db.maxMember} bytes, the limit of the ${this.kind} store`)
  }

  /** Locks the key's row; an expired key is deleted and reported absent. */
  async lockKey(c: SqlConn, key: Buffer, now: number): Promise<KeyState | null> {
    const {rows} = await c.query(`SELECT type, expire_at FROM ${this.t.keys} WHERE k = ? FOR UPDATE`, [key])
    if (!rows.length) return null
    const st = {type: num(rows[0].type), expireAt: expiryOf(rows[0].expire_at)}
    if (st.expireAt !== null && st.expireAt <= now) {
      await this.dropKey(c, key, st.type)
      return null
    }
    return st
  }

  async dropKey(c: SqlConn, key: Buffer, type: number): Promise<void> {
    await c.query(`DELETE FROM ${this.t.data[type]} WHERE k = ?`, [key])
    await c.query(`DELETE FROM ${this.t.keys} WHERE k = ?`, [key])
  }

  /** Inserts the key's row (after lockKey found none); a concurrent insert restarts the transaction. */
  async insertKey(c: SqlConn, key: Buffer, type: number, expireAt: number | null = null): Promise<void> {
    this.checkKey(key)
    const res = await c.query(this.db.insertIgnore(this.t.keys, ['k', 'type', 'expire_at'], 1), [key, type, expireAt])
    if (res.affected !== 1) throw new RetryTx()
  }

  /** Locks or creates a key of the given type; WRONGTYPE if it holds another type. */
  async ensureKey(c: SqlConn, key: Buffer, type: number, now: number): Promise<KeyState & {created: boolean}> {
    const st = await this.lockKey(c, key, now)
    if (st) {
      if (st.type !== type) throw new CommandError(WRONGTYPE)
      return {...st, created: false}
    }
    await this.insertKey(c, key, type)
    return {type, expireAt: null, created: true}
  }

  /** Locks an existing key of the given type (null if absent); WRONGTYPE if another type. */
  async existingKey(c: SqlConn, key: Buffer, type: number, now: number): Promise<KeyState | null> {
    const st = await this.lockKey(c, key, now)
    if (st && st.type !== type) throw new CommandError(WRONGTYPE)
    return st
  }

  /** Deletes the key's row when its collection became empty. */
  async dropIfEmpty(c: SqlConn, key: Buffer, type: number): Promise<void> {
    const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${this.t.data[type]} WHERE k = ?`, [key])
    if (num(rows[0].n) === 0) await c.query(`DELETE FROM ${this.t.keys} WHERE k = ?`, [key])
  }

  /**
   * One statement: the key's row joined with data; null when absent or expired; WRONGTYPE checked.
   * `select` names data columns (alias d), `join` the join clause, `params` its parameters.
   */
  async readLive(key: Buffer, now: number, type: number, select: string, join: string, params: unknown[] = [], tail = ''): Promise<Record<string, unknown>[] | null> {
    const {rows} = await this.db.query(`SELECT k.type AS kt, k.expire_at AS ke${select ? `, ${select}` : ''} FROM ${this.t.keys} k ${join} WHERE k.k = ?${tail}`, [...params, key])
    if (!rows.length) return null
    const ke = expiryOf(rows[0].ke)
    if (ke !== null && ke <= now) return null
    if (num(rows[0].kt) !== type) throw new CommandError(WRONGTYPE)
    return rows
  }

  async countOf(key: Buffer, now: number, type: number): Promise<number> {
    const rows = await this.readLive(key, now, type, `(SELECT COUNT(*) FROM ${this.t.data[type]} d WHERE d.k = k.k) AS n`, '')
    return rows ? num(rows[0].n) : 0
  }

  /** The key's type and expiry without locking (null if absent or expired). */
  async peek(key: Buffer, now: number): Promise<KeyState | null> {
    const {rows} = await this.db.query(`SELECT type, expire_at FROM ${this.t.keys} WHERE k = ?`, [key])
    if (!rows.length) return null
    const st = {type: num(rows[0].type), expireAt: expiryOf(rows[0].expire_at)}
    return st.expireAt !== null && st.expireAt <= now ? null : st
  }

  /** A read in one transaction, holding a shared lock on the key's row. */
  readTx(key: Buffer, now: number, type: number, fn: (c: SqlConn) => Promise<Reply>, absent: Reply): Promise<Reply> {
    return this.db.transaction(async (c) => {
      const {rows} = await c.query(`SELECT type, expire_at FROM ${this.t.keys} WHERE k = ? ${this.db.shareLock}`, [key])
      if (!rows.length) return absent
      const e = expiryOf(rows[0].expire_at)
      if (e !== null && e <= now) return absent
      if (num(rows[0].type) !== type) throw new CommandError(WRONGTYPE)
      return fn(c)
    })
  }

  /** Redis's start/stop normalization: [offset, count] or null when empty. */
  async indexRange(c: SqlConn, key: Buffer, type: number, start: bigint, stop: bigint): Promise<[number, number] | null> {
    const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${this.t.data[type]} WHERE k = ?`, [key])
    const len = BigInt(num(rows[0].n))
    if (start < 0n) start += len
    if (stop < 0n) stop += len
    if (start < 0n) start = 0n
    if (start > stop || start >= len) return null
    if (stop >= len) stop = len - 1n
    return [Number(start), Number(stop - start + 1n)]
  }

  /** HDEL / SREM / ZREM: `col` is the member column of the type's table. */
  removeMembers(key: Buffer, type: number, col: string, members: Buffer[], now: number): Promise<Reply> {
    const ms = dedupe(members)
    return this.tx(async (c) => {
      const st = await this.existingKey(c, key, type, now)
      if (!st) return integer(0)
      let removed = 0
      for (const part of chunks(ms, 1000)) {
        removed += (await c.query(`DELETE FROM ${this.t.data[type]} WHERE k = ? AND ${col} IN (${placeholders(part.length)})`, [key, ...part])).affected
      }
      if (removed) await this.dropIfEmpty(c, key, type)
      return integer(removed)
    })
  }

  // ---------------------------------------------------------------- commands

  async execute(argv: Buffer[]): Promise<Reply> {
    if (argv.length === 0) return error('ERR empty command')
    const name = argv[0].toString('latin1').toLowerCase()
    const entry = this.handlers[name]
    if (!entry) {
      const args = argv.slice(1).map((a) => `'${a.toString().slice(0, 128)}' `).join('')
      return error(`ERR unknown command '${argv[0].toString().slice(0, 128)}', with args beginning with: ${args}`)
    }
    const [arity, fn] = entry
    if ((arity > 0 && argv.length !== arity) || (arity < 0 && argv.length < -arity)) {
      return error(`ERR wrong number of arguments for '${name}' command`)
    }
    try {
      return await fn(argv.slice(1), Date.now())
    } catch (e) {
      if (e instanceof CommandError) return error(e.reply)
      throw e
    }
  }

  command(...args: (string | Buffer | number)[]): Promise<Reply> {
    return this.execute(args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(String(a)))))
  }

  // ---------------------------------------------------------------- whole keys (./snapshot.ts)

  async readKey(key: Buffer): Promise<KeySnapshot | null> {
    return (await this.readKeys([key]))[0]
  }

  /** Reads many keys in one consistent snapshot (REPEATABLE READ, read only). */
  readKeys(keys: Buffer[]): Promise<(KeySnapshot | null)[]> {
    return readKeys(this, keys)
  }

  async existing(keys: Buffer[], now = Date.now()): Promise<boolean[]> {
    const live = await this.liveKeyRows(this.db, keys, now)
    return keys.map((k) => live.has(k.toString('latin1')))
  }

  /** The key rows of those keys that exist and have not expired, by latin1 key: type and PTTL. */
  async liveKeyRows(q: SqlConn, keys: Buffer[], now: number): Promise<Map<string, {type: number; pttl: number}>> {
    const live = new Map<string, {type: number; pttl: number}>()
    for (const part of chunks(keys, 1000)) {
      const {rows} = await q.query(`SELECT k, type, expire_at FROM ${this.t.keys} WHERE k IN (${placeholders(part.length)})`, part)
      for (const r of rows) {
        const e = expiryOf(r.expire_at)
        if (e === null || e > now) live.set((r.k as Buffer).toString('latin1'), {type: num(r.type), pttl: e === null ? -1 : e - now})
      }
    }
    return live
  }

  /**
   * Deletes the key if it still holds snap's type and value (its TTL aside), in one transaction that
   * locks the key's row, so a concurrent writeKey waits; true when deleted.
   */
  deleteIfSame(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    return deleteIfSame(this, key, snap)
  }

  async writeKeyIfAbsent(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    return (await this.writeKeysIfAbsent([{key, snap}]))[0]
  }

  /** Set-if-absent for a batch in one transaction; a key present on the target is never touched. */
  writeKeysIfAbsent(entries: {key: Buffer; snap: KeySnapshot}[]): Promise<boolean[]> {
    return writeKeysIfAbsent(this, entries)
  }

  writeKey(key: Buffer, snap: KeySnapshot): Promise<void> {
    return writeKey(this, key, snap)
  }

  /** Keys in byte order; the cursor is the hex of the last key returned. */
  async scan(cursor: string, match?: string, count = 100): Promise<ScanPage> {
    const now = Date.now()
    const conds = ['(expire_at IS NULL OR expire_at > ?)']
    const params: unknown[] = [now]
    if (cursor !== '0') {
      if (!/^[0-9a-f]+$/.test(cursor)) throw new ValidationError(`bad scan cursor '${cursor}'`)
      conds.push('k > ?')
      params.push(Buffer.from(cursor, 'hex'))
    }
    const pat = match && match !== '*' ? Buffer.from(match) : null
    if (pat) {
      const prefix = globPrefix(pat)
      if (prefix.length) {
        conds.push('k >= ?')
        params.push(prefix)
        const end = prefixEnd(prefix)
        if (end) {
          conds.push('k < ?')
          params.push(end)
        }
      }
    }
    const n = Math.max(1, Math.floor(count))
    const {rows} = await this.db.query(`SELECT k FROM ${this.t.keys} WHERE ${conds.join(' AND ')} ORDER BY k LIMIT ${n}`, params)
    const keys = rows.map((r) => r.k as Buffer)
    const next = rows.length < n ? '0' : keys[keys.length - 1].toString('hex')
    return {cursor: next, keys: pat ? keys.filter((k) => globMatch(pat, k)) : keys}
  }

  async dbsize(): Promise<number> {
    const {rows} = await this.db.query(`SELECT COUNT(*) AS n FROM ${this.t.keys} WHERE expire_at IS NULL OR expire_at > ?`, [Date.now()])
    return num(rows[0].n)
  }

  /** Deletes up to `limit` expired keys (rows locked by live commands are skipped); returns how many. */
  reap(limit = 500): Promise<number> {
    return this.reaper.reap(limit)
  }
}
