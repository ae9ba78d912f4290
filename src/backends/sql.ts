import {ValidationError} from '../errors.js'
import {prefixEnd} from '../coord/keys.js'
import {globMatch, globPrefix} from './glob.js'
import {MysqlDriver} from './mysql.js'
import {formatDouble, incrByFloatText, INT64_MAX, INT64_MIN, parseDouble, parseInt64} from './numbers.js'
import {PostgresDriver} from './postgres.js'
import {array, bulk, bulks, CommandError, error, integer, NIL, NIL_ARRAY, OK, simple, WRONGTYPE, type Reply} from './reply.js'
import {placeholders, type SqlConn, type SqlDriver} from './sql-driver.js'
import {sameSnapshot} from './snapshot.js'
import type {KeySnapshot, KeyStore, KeyType, ScanPage} from './types.js'
import type {StoreUrl} from './url.js'

/** Type codes in the key table. */
const T = {string: 0, hash: 1, list: 2, set: 3, zset: 4} as const
const TYPE_NAMES: KeyType[] = ['string', 'hash', 'list', 'set', 'zset']

/** Thrown inside a transaction to run it again (a concurrent insert of the same key won). */
class RetryTx extends Error {}
/** The batch insert hit present keys and MySQL cannot say which. */
class FastPathMiss extends Error {}

interface KeyState {
  type: number
  expireAt: number | null
}

type Handler = (args: Buffer[], now: number) => Promise<Reply>

const ERR_INT = 'ERR value is not an integer or out of range'
const ERR_FLOAT = 'ERR value is not a valid float'
const ERR_SYNTAX = 'ERR syntax error'

const num = (v: unknown): number => Number(v)
const expiryOf = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))
const upper = (b: Buffer) => b.toString('latin1').toUpperCase()

function int64Arg(b: Buffer, err = ERR_INT): bigint {
  const v = parseInt64(b)
  if (v === null) throw new CommandError(err)
  return v
}

function dedupe(bufs: Buffer[]): Buffer[] {
  const seen = new Set<string>()
  const out: Buffer[] = []
  for (const b of bufs) {
    const h = b.toString('latin1')
    if (!seen.has(h)) {
      seen.add(h)
      out.push(b)
    }
  }
  return out
}

function chunks<X>(xs: X[], n: number): X[][] {
  const out: X[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

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
 */
export class SqlStore implements KeyStore {
  readonly kind: 'mysql' | 'postgres'
  readonly name: string
  private readonly t: {keys: string; data: string[]}
  private readonly handlers: Record<string, [number, Handler]>
  private reaper?: NodeJS.Timeout
  private reaping = false
  /** writeKeysIfAbsent tries the insert-first path again from this time (ms). */
  private fastPathAfter = 0

  private constructor(
    readonly db: SqlDriver,
    url: StoreUrl,
  ) {
    this.kind = db.kind
    this.name = url.display
    const p = url.prefix
    this.t = {keys: `${p}keys`, data: [`${p}strings`, `${p}hash`, `${p}list`, `${p}set`, `${p}zset`]}
    this.handlers = this.commandTable()
  }

  /** Connects, checks the tables' shape (creating missing ones) and starts the reaper. */
  static async open(url: StoreUrl, opts: SqlStoreOptions = {}): Promise<SqlStore> {
    if (url.kind === 'redis') throw new ValidationError(`${url.display} is not a SQL store`)
    const db = url.kind === 'mysql' ? await MysqlDriver.open(url) : await PostgresDriver.open(url)
    const store = new SqlStore(db, url)
    try {
      await store.ensureSchema(url)
    } catch (e) {
      await db.close().catch(() => {})
      throw e
    }
    const every = opts.reapIntervalMs ?? 1000
    if (every > 0) {
      store.reaper = setInterval(() => void store.reap().catch(() => {}), every)
      store.reaper.unref()
    }
    return store
  }

  /** Checks every existing table has the expected columns, then creates the missing ones. */
  private async ensureSchema(url: StoreUrl): Promise<void> {
    const specs = this.db.specs(url.prefix)
    const check = async () => {
      const found = await this.db.describe(specs.map((s) => s.name))
      const missing: string[] = []
      for (const spec of specs) {
        const cols = found.get(spec.name)
        if (!cols) {
          missing.push(spec.name)
          continue
        }
        const want = Object.entries(spec.columns)
        const ok = cols.size === want.length && want.every(([c, types]) => types.includes(cols.get(c) ?? ''))
        if (!ok) {
          const has = [...cols].map(([c, d]) => `${c} ${d}`).join(', ')
          const exp = want.map(([c, d]) => `${c} ${d[0]}`).join(', ')
          throw new ValidationError(
            `${url.display}: table ${spec.name} has the wrong shape (${has}); expected (${exp}): drop or rename it, or use another table prefix (?prefix=)`,
          )
        }
      }
      return missing
    }
    if ((await check()).length === 0) return
    await this.db.withSchemaLock(async (c) => {
      if ((await check()).length === 0) return
      for (const stmt of this.db.ddl(url.prefix)) await c.query(stmt)
    })
  }

  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper)
    await this.db.close()
  }

  // ---------------------------------------------------------------- plumbing

  private async tx<X>(fn: (c: SqlConn) => Promise<X>): Promise<X> {
    for (let i = 0; ; i++) {
      try {
        return await this.db.transaction(fn)
      } catch (e) {
        if (e instanceof RetryTx && i < 100) continue
        throw e
      }
    }
  }

  private checkKey(key: Buffer): void {
    if (key.length > this.db.maxKey) throw new CommandError(`ERR key is longer than ${this.db.maxKey} bytes, the limit of the ${this.kind} store`)
  }

  private checkMember(m: Buffer): void {
    if (m.length > this.db.maxMember) throw new CommandError(`ERR field or member is longer than ${this.db.maxMember} bytes, the limit of the ${this.kind} store`)
  }

  /** Locks the key's row; an expired key is deleted and reported absent. */
  private async lockKey(c: SqlConn, key: Buffer, now: number): Promise<KeyState | null> {
    const {rows} = await c.query(`SELECT type, expire_at FROM ${this.t.keys} WHERE k = ? FOR UPDATE`, [key])
    if (!rows.length) return null
    const st = {type: num(rows[0].type), expireAt: expiryOf(rows[0].expire_at)}
    if (st.expireAt !== null && st.expireAt <= now) {
      await this.dropKey(c, key, st.type)
      return null
    }
    return st
  }

  private async dropKey(c: SqlConn, key: Buffer, type: number): Promise<void> {
    await c.query(`DELETE FROM ${this.t.data[type]} WHERE k = ?`, [key])
    await c.query(`DELETE FROM ${this.t.keys} WHERE k = ?`, [key])
  }

  /** Inserts the key's row (after lockKey found none); a concurrent insert restarts the transaction. */
  private async insertKey(c: SqlConn, key: Buffer, type: number, expireAt: number | null = null): Promise<void> {
    this.checkKey(key)
    const res = await c.query(this.db.insertIgnore(this.t.keys, ['k', 'type', 'expire_at'], 1), [key, type, expireAt])
    if (res.affected !== 1) throw new RetryTx()
  }

  /** Locks or creates a key of the given type; WRONGTYPE if it holds another type. */
  private async ensureKey(c: SqlConn, key: Buffer, type: number, now: number): Promise<KeyState & {created: boolean}> {
    const st = await this.lockKey(c, key, now)
    if (st) {
      if (st.type !== type) throw new CommandError(WRONGTYPE)
      return {...st, created: false}
    }
    await this.insertKey(c, key, type)
    return {type, expireAt: null, created: true}
  }

  /** Locks an existing key of the given type (null if absent); WRONGTYPE if another type. */
  private async existingKey(c: SqlConn, key: Buffer, type: number, now: number): Promise<KeyState | null> {
    const st = await this.lockKey(c, key, now)
    if (st && st.type !== type) throw new CommandError(WRONGTYPE)
    return st
  }

  /** Deletes the key's row when its collection became empty. */
  private async dropIfEmpty(c: SqlConn, key: Buffer, type: number): Promise<void> {
    const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${this.t.data[type]} WHERE k = ?`, [key])
    if (num(rows[0].n) === 0) await c.query(`DELETE FROM ${this.t.keys} WHERE k = ?`, [key])
  }

  /**
   * One statement: the key's row joined with data; null when absent or expired; WRONGTYPE checked.
   * `select` names data columns (alias d), `join` the join clause, `params` its parameters.
   */
  private async readLive(key: Buffer, now: number, type: number, select: string, join: string, params: unknown[] = [], tail = ''): Promise<Record<string, unknown>[] | null> {
    const {rows} = await this.db.query(`SELECT k.type AS kt, k.expire_at AS ke${select ? `, ${select}` : ''} FROM ${this.t.keys} k ${join} WHERE k.k = ?${tail}`, [...params, key])
    if (!rows.length) return null
    const ke = expiryOf(rows[0].ke)
    if (ke !== null && ke <= now) return null
    if (num(rows[0].kt) !== type) throw new CommandError(WRONGTYPE)
    return rows
  }

  private async countOf(key: Buffer, now: number, type: number): Promise<number> {
    const rows = await this.readLive(key, now, type, `(SELECT COUNT(*) FROM ${this.t.data[type]} d WHERE d.k = k.k) AS n`, '')
    return rows ? num(rows[0].n) : 0
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

  private commandTable(): Record<string, [number, Handler]> {
    return {
      ping: [-1, async (a) => (a.length ? bulk(a[0]) : simple('PONG'))],
      dbsize: [1, async () => integer(await this.dbsize())],
      flushdb: [-1, async () => {
        await this.tx(async (c) => {
          for (const t of [...this.t.data, this.t.keys]) await c.query(`DELETE FROM ${t}`)
        })
        return OK
      }],
      get: [2, (a, now) => this.get(a[0], now)],
      set: [-3, (a, now) => this.set(a, now)],
      setnx: [3, async (a, now) => ((await this.set([a[0], a[1], Buffer.from('NX')], now)).type === 'simple' ? integer(1) : integer(0))],
      incr: [2, (a, now) => this.incrBy(a[0], 1n, now)],
      decr: [2, (a, now) => this.incrBy(a[0], -1n, now)],
      incrby: [3, (a, now) => this.incrBy(a[0], int64Arg(a[1]), now)],
      decrby: [3, (a, now) => {
        const by = int64Arg(a[1])
        if (by === INT64_MIN) throw new CommandError('ERR decrement would overflow')
        return this.incrBy(a[0], -by, now)
      }],
      incrbyfloat: [3, (a, now) => this.incrByFloat(a[0], a[1], now)],
      append: [3, (a, now) => this.append(a[0], a[1], now)],
      strlen: [2, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.string, 'LENGTH(d.v) AS n', `LEFT JOIN ${this.t.data[T.string]} d ON d.k = k.k`)
        return integer(rows ? num(rows[0].n ?? 0) : 0)
      }],

      hget: [3, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.hash, 'd.v AS v', `LEFT JOIN ${this.t.data[T.hash]} d ON d.k = k.k AND d.f = ?`, [a[1]])
        return bulk(rows ? ((rows[0].v as Buffer | null) ?? null) : null)
      }],
      hgetall: [2, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.hash, 'd.f AS f, d.v AS v', `LEFT JOIN ${this.t.data[T.hash]} d ON d.k = k.k`)
        const out: Buffer[] = []
        for (const r of rows ?? []) if (r.f !== null && r.f !== undefined) out.push(r.f as Buffer, r.v as Buffer)
        return bulks(out)
      }],
      hlen: [2, async (a, now) => integer(await this.countOf(a[0], now, T.hash))],
      hset: [-4, (a, now) => {
        if (a.length % 2 === 0) return Promise.resolve(error(`ERR wrong number of arguments for 'hset' command`))
        return this.hset(a[0], a.slice(1), now)
      }],
      hdel: [-3, (a, now) => this.removeMembers(a[0], T.hash, 'f', a.slice(1), now)],
      hincrby: [4, (a, now) => this.hincrby(a[0], a[1], int64Arg(a[2]), now)],

      sadd: [-3, (a, now) => this.sadd(a[0], a.slice(1), now)],
      srem: [-3, (a, now) => this.removeMembers(a[0], T.set, 'm', a.slice(1), now)],
      smembers: [2, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.set, 'd.m AS m', `LEFT JOIN ${this.t.data[T.set]} d ON d.k = k.k`)
        return bulks((rows ?? []).filter((r) => r.m !== null && r.m !== undefined).map((r) => r.m as Buffer))
      }],
      sismember: [3, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.set, 'd.m AS m', `LEFT JOIN ${this.t.data[T.set]} d ON d.k = k.k AND d.m = ?`, [a[1]])
        return integer(rows && rows[0].m !== null && rows[0].m !== undefined ? 1 : 0)
      }],
      scard: [2, async (a, now) => integer(await this.countOf(a[0], now, T.set))],

      zadd: [-4, (a, now) => this.zadd(a, now)],
      zrem: [-3, (a, now) => this.removeMembers(a[0], T.zset, 'm', a.slice(1), now)],
      zscore: [3, async (a, now) => {
        const rows = await this.readLive(a[0], now, T.zset, 'd.score AS s', `LEFT JOIN ${this.t.data[T.zset]} d ON d.k = k.k AND d.m = ?`, [a[1]])
        return rows && rows[0].s !== null && rows[0].s !== undefined ? bulk(formatDouble(this.db.decodeScore(rows[0].s))) : NIL
      }],
      zcard: [2, async (a, now) => integer(await this.countOf(a[0], now, T.zset))],
      zrange: [-4, (a, now) => this.zrange(a, now)],

      lpush: [-3, (a, now) => this.push(a[0], a.slice(1), true, now)],
      rpush: [-3, (a, now) => this.push(a[0], a.slice(1), false, now)],
      lpop: [-2, (a, now) => this.pop(a, true, now)],
      rpop: [-2, (a, now) => this.pop(a, false, now)],
      lrange: [4, (a, now) => this.lrange(a[0], int64Arg(a[1]), int64Arg(a[2]), now)],
      llen: [2, async (a, now) => integer(await this.countOf(a[0], now, T.list))],

      del: [-2, (a, now) => this.del(a, now)],
      unlink: [-2, (a, now) => this.del(a, now)],
      exists: [-2, async (a, now) => integer((await this.existing(a, now)).filter(Boolean).length)],
      type: [2, async (a, now) => {
        const st = await this.peek(a[0], now)
        return simple(st ? TYPE_NAMES[st.type] : 'none')
      }],
      expire: [-3, (a, now) => this.expire(a, 1000, 'expire', now)],
      pexpire: [-3, (a, now) => this.expire(a, 1, 'pexpire', now)],
      ttl: [2, async (a, now) => {
        const st = await this.peek(a[0], now)
        if (!st) return integer(-2)
        if (st.expireAt === null) return integer(-1)
        return integer(Math.floor((st.expireAt - now + 500) / 1000))
      }],
      pttl: [2, async (a, now) => {
        const st = await this.peek(a[0], now)
        if (!st) return integer(-2)
        return integer(st.expireAt === null ? -1 : st.expireAt - now)
      }],
      persist: [2, (a, now) =>
        this.tx(async (c) => {
          const st = await this.lockKey(c, a[0], now)
          if (!st || st.expireAt === null) return integer(0)
          await c.query(`UPDATE ${this.t.keys} SET expire_at = NULL WHERE k = ?`, [a[0]])
          return integer(1)
        })],
    }
  }

  /** The key's type and expiry without locking (null if absent or expired). */
  private async peek(key: Buffer, now: number): Promise<KeyState | null> {
    const {rows} = await this.db.query(`SELECT type, expire_at FROM ${this.t.keys} WHERE k = ?`, [key])
    if (!rows.length) return null
    const st = {type: num(rows[0].type), expireAt: expiryOf(rows[0].expire_at)}
    return st.expireAt !== null && st.expireAt <= now ? null : st
  }

  private async readString(c: SqlConn, key: Buffer): Promise<Buffer | null> {
    const {rows} = await c.query(`SELECT v FROM ${this.t.data[T.string]} WHERE k = ?`, [key])
    return rows.length ? (rows[0].v as Buffer) : null
  }

  private writeString(c: SqlConn, key: Buffer, v: Buffer) {
    return c.query(this.db.upsert(this.t.data[T.string], ['k', 'v'], ['k'], ['v'], 1), [key, v])
  }

  private async get(key: Buffer, now: number): Promise<Reply> {
    const rows = await this.readLive(key, now, T.string, 'd.v AS v', `LEFT JOIN ${this.t.data[T.string]} d ON d.k = k.k`)
    return bulk(rows ? ((rows[0].v as Buffer | null) ?? null) : null)
  }

  private async set(a: Buffer[], now: number): Promise<Reply> {
    const [key, value] = a
    let nx = false
    let xx = false
    let get = false
    let keepttl = false
    let expireAt: number | null = null
    let expSet = false
    for (let i = 2; i < a.length; i++) {
      const opt = upper(a[i])
      const next = a[i + 1]
      if (opt === 'NX' && !xx) nx = true
      else if (opt === 'XX' && !nx) xx = true
      else if (opt === 'GET') get = true
      else if (opt === 'KEEPTTL' && !expSet) keepttl = true
      else if ((opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT') && !keepttl && !expSet && next) {
        const n = int64Arg(next)
        i++
        expSet = true
        if (n <= 0n) throw new CommandError(`ERR invalid expire time in 'set' command`)
        const ms = opt === 'EX' || opt === 'EXAT' ? n * 1000n : n
        const at = opt === 'EX' || opt === 'PX' ? ms + BigInt(now) : ms
        if (ms > INT64_MAX / 2n || at > BigInt(Number.MAX_SAFE_INTEGER)) throw new CommandError(`ERR invalid expire time in 'set' command`)
        expireAt = Number(at)
      } else throw new CommandError(ERR_SYNTAX)
    }
    this.checkKey(key)
    return this.tx(async (c) => {
      const st = await this.lockKey(c, key, now)
      let old: Buffer | null = null
      if (get && st) {
        if (st.type !== T.string) throw new CommandError(WRONGTYPE)
        old = await this.readString(c, key)
      }
      if ((nx && st) || (xx && !st)) return get ? bulk(old) : NIL
      const exp = keepttl ? (st?.expireAt ?? null) : expireAt
      if (st) {
        if (st.type !== T.string) await c.query(`DELETE FROM ${this.t.data[st.type]} WHERE k = ?`, [key])
        await c.query(`UPDATE ${this.t.keys} SET type = ?, expire_at = ? WHERE k = ?`, [T.string, exp, key])
      } else {
        await this.insertKey(c, key, T.string, exp)
      }
      await this.writeString(c, key, value)
      return get ? bulk(old) : OK
    })
  }

  private incrBy(key: Buffer, by: bigint, now: number): Promise<Reply> {
    return this.tx(async (c) => {
      const st = await this.ensureKey(c, key, T.string, now)
      const cur = st.created ? null : await this.readString(c, key)
      const base = cur === null ? 0n : parseInt64(cur)
      if (base === null) throw new CommandError(ERR_INT)
      const next = base + by
      if (next > INT64_MAX || next < INT64_MIN) throw new CommandError('ERR increment or decrement would overflow')
      await this.writeString(c, key, Buffer.from(next.toString()))
      return integer(next)
    })
  }

  private incrByFloat(key: Buffer, byArg: Buffer, now: number): Promise<Reply> {
    if (parseDouble(byArg) === null) return Promise.resolve(error(ERR_FLOAT))
    return this.tx(async (c) => {
      const st = await this.ensureKey(c, key, T.string, now)
      const cur = st.created ? null : await this.readString(c, key)
      const next = incrByFloatText(cur === null ? '0' : cur.toString('latin1'), byArg.toString('latin1'))
      if (next === null) throw new CommandError(ERR_FLOAT)
      if (next === 'inf') throw new CommandError('ERR increment would produce NaN or Infinity')
      const text = Buffer.from(next)
      await this.writeString(c, key, text)
      return bulk(text)
    })
  }

  private append(key: Buffer, more: Buffer, now: number): Promise<Reply> {
    return this.tx(async (c) => {
      const st = await this.ensureKey(c, key, T.string, now)
      const cur = st.created ? null : await this.readString(c, key)
      const next = cur ? Buffer.concat([cur, more]) : more
      await this.writeString(c, key, next)
      return integer(next.length)
    })
  }

  private hset(key: Buffer, pairs: Buffer[], now: number): Promise<Reply> {
    const fields = new Map<string, [Buffer, Buffer]>()
    for (let i = 0; i < pairs.length; i += 2) {
      this.checkMember(pairs[i])
      fields.set(pairs[i].toString('latin1'), [pairs[i], pairs[i + 1]])
    }
    this.checkKey(key)
    return this.tx(async (c) => {
      const st = await this.ensureKey(c, key, T.hash, now)
      const list = [...fields.values()]
      let existing = 0
      if (!st.created) {
        for (const part of chunks(list, 1000)) {
          const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${this.t.data[T.hash]} WHERE k = ? AND f IN (${placeholders(part.length)})`, [key, ...part.map((p) => p[0])])
          existing += num(rows[0].n)
        }
      }
      for (const part of chunks(list, 1000)) {
        await c.query(this.db.upsert(this.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], part.length), part.flatMap(([f, v]) => [key, f, v]))
      }
      return integer(list.length - existing)
    })
  }

  private hincrby(key: Buffer, field: Buffer, by: bigint, now: number): Promise<Reply> {
    this.checkMember(field)
    this.checkKey(key)
    return this.tx(async (c) => {
      await this.ensureKey(c, key, T.hash, now)
      const {rows} = await c.query(`SELECT v FROM ${this.t.data[T.hash]} WHERE k = ? AND f = ?`, [key, field])
      const base = rows.length ? parseInt64(rows[0].v as Buffer) : 0n
      if (base === null) throw new CommandError('ERR hash value is not an integer')
      const next = base + by
      if (next > INT64_MAX || next < INT64_MIN) throw new CommandError('ERR increment or decrement would overflow')
      await c.query(this.db.upsert(this.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], 1), [key, field, Buffer.from(next.toString())])
      return integer(next)
    })
  }

  private sadd(key: Buffer, members: Buffer[], now: number): Promise<Reply> {
    const ms = dedupe(members)
    ms.forEach((m) => this.checkMember(m))
    this.checkKey(key)
    return this.tx(async (c) => {
      await this.ensureKey(c, key, T.set, now)
      let added = 0
      for (const part of chunks(ms, 1000)) {
        added += (await c.query(this.db.insertIgnore(this.t.data[T.set], ['k', 'm'], part.length), part.flatMap((m) => [key, m]))).affected
      }
      return integer(added)
    })
  }

  /** HDEL / SREM / ZREM. */
  private removeMembers(key: Buffer, type: number, col: string, members: Buffer[], now: number): Promise<Reply> {
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

  private zadd(a: Buffer[], now: number): Promise<Reply> {
    const key = a[0]
    let i = 1
    const f = {nx: false, xx: false, gt: false, lt: false, ch: false, incr: false}
    for (; i < a.length; i++) {
      const o = upper(a[i])
      if (o === 'NX') f.nx = true
      else if (o === 'XX') f.xx = true
      else if (o === 'GT') f.gt = true
      else if (o === 'LT') f.lt = true
      else if (o === 'CH') f.ch = true
      else if (o === 'INCR') f.incr = true
      else break
    }
    const rest = a.slice(i)
    if (rest.length === 0 || rest.length % 2 !== 0) return Promise.resolve(error(ERR_SYNTAX))
    if (f.nx && f.xx) return Promise.resolve(error('ERR XX and NX options at the same time are not compatible'))
    if ((f.gt && f.nx) || (f.lt && f.nx) || (f.gt && f.lt)) return Promise.resolve(error('ERR GT, LT, and/or NX options at the same time are not compatible'))
    if (f.incr && rest.length > 2) return Promise.resolve(error('ERR INCR option supports a single increment-element pair'))
    const pairs: [number, Buffer][] = []
    for (let j = 0; j < rest.length; j += 2) {
      const s = parseDouble(rest[j])
      if (s === null) return Promise.resolve(error(ERR_FLOAT))
      this.checkMember(rest[j + 1])
      pairs.push([s, rest[j + 1]])
    }
    this.checkKey(key)
    return this.tx(async (c) => {
      const st = await this.existingKey(c, key, T.zset, now)
      if (!st && f.xx) return f.incr ? NIL : integer(0)
      if (!st) await this.insertKey(c, key, T.zset)
      const cur = new Map<string, number>()
      const members = dedupe(pairs.map((p) => p[1]))
      if (st) {
        for (const part of chunks(members, 1000)) {
          const {rows} = await c.query(`SELECT m, score FROM ${this.t.data[T.zset]} WHERE k = ? AND m IN (${placeholders(part.length)})`, [key, ...part])
          for (const r of rows) cur.set((r.m as Buffer).toString('latin1'), this.db.decodeScore(r.score))
        }
      }
      let added = 0
      let changed = 0
      let last: number | null = null
      const writes = new Map<string, [Buffer, number]>()
      for (const [s, m] of pairs) {
        const h = m.toString('latin1')
        const old = cur.get(h)
        last = null
        if (old !== undefined) {
          if (f.nx) continue
          const next = f.incr ? old + s : s
          if (Number.isNaN(next)) throw new CommandError('ERR resulting score is not a number (NaN)')
          if ((f.gt && !(next > old)) || (f.lt && !(next < old))) continue
          last = next
          if (next !== old) {
            changed++
            cur.set(h, next)
            writes.set(h, [m, next])
          }
        } else {
          if (f.xx) continue
          last = s
          added++
          cur.set(h, s)
          writes.set(h, [m, s])
        }
      }
      for (const part of chunks([...writes.values()], 1000)) {
        await c.query(this.db.upsert(this.t.data[T.zset], ['k', 'm', 'score'], ['k', 'm'], ['score'], part.length), part.flatMap(([m, s]) => [key, m, this.db.encodeScore(s)]))
      }
      if (!st && added === 0) await c.query(`DELETE FROM ${this.t.keys} WHERE k = ?`, [key])
      if (f.incr) return last === null ? NIL : bulk(formatDouble(last))
      return integer(f.ch ? added + changed : added)
    })
  }

  private zrange(a: Buffer[], now: number): Promise<Reply> {
    const key = a[0]
    let byScore = false
    let rev = false
    let withScores = false
    let limit: [bigint, bigint] | null = null
    for (let i = 3; i < a.length; i++) {
      const o = upper(a[i])
      if (o === 'BYSCORE') byScore = true
      else if (o === 'BYLEX') return Promise.resolve(error('ERR ZRANGE BYLEX is not supported by the SQL store'))
      else if (o === 'REV') rev = true
      else if (o === 'WITHSCORES') withScores = true
      else if (o === 'LIMIT' && i + 2 < a.length) {
        limit = [int64Arg(a[i + 1]), int64Arg(a[i + 2])]
        i += 2
      } else return Promise.resolve(error(ERR_SYNTAX))
    }
    if (limit && !byScore) return Promise.resolve(error('ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX'))
    const zt = this.t.data[T.zset]
    const order = rev ? 'ORDER BY score DESC, m DESC' : 'ORDER BY score ASC, m ASC'
    const reply = (rows: Record<string, unknown>[]) => {
      const out: Reply[] = []
      for (const r of rows) {
        out.push(bulk(r.m as Buffer))
        if (withScores) out.push(bulk(formatDouble(this.db.decodeScore(r.score))))
      }
      return array(out)
    }
    if (byScore) {
      const bound = (b: Buffer) => {
        let s = b.toString('latin1')
        const excl = s.startsWith('(')
        if (excl) s = s.slice(1)
        const v = parseDouble(s)
        if (v === null) throw new CommandError('ERR min or max is not a float')
        return {v, excl}
      }
      let min: {v: number; excl: boolean}
      let max: {v: number; excl: boolean}
      try {
        ;[min, max] = rev ? [bound(a[2]), bound(a[1])] : [bound(a[1]), bound(a[2])]
      } catch (e) {
        return Promise.resolve(error((e as CommandError).reply))
      }
      const conds: string[] = []
      const params: unknown[] = []
      if (min.v !== -Infinity || min.excl) {
        conds.push(`score ${min.excl ? '>' : '>='} ?`)
        params.push(this.db.encodeScore(min.v))
      }
      if (max.v !== Infinity || max.excl) {
        conds.push(`score ${max.excl ? '<' : '<='} ?`)
        params.push(this.db.encodeScore(max.v))
      }
      let lim = ''
      if (limit) {
        const [off, cnt] = limit
        if (off < 0n) return Promise.resolve(array([]))
        lim = ` LIMIT ${cnt < 0n ? '18446744073709551615' : cnt.toString()} OFFSET ${off.toString()}`
        if (this.kind === 'postgres' && cnt < 0n) lim = ` OFFSET ${off.toString()}`
      }
      return this.readTx(key, now, T.zset, async (c) => {
        const {rows} = await c.query(`SELECT m, score FROM ${zt} WHERE k = ?${conds.map((x) => ` AND ${x}`).join('')} ${order}${lim}`, [key, ...params])
        return reply(rows)
      }, array([]))
    }
    const start = int64Arg(a[1])
    const stop = int64Arg(a[2])
    return this.readTx(key, now, T.zset, async (c) => {
      const range = await this.indexRange(c, key, T.zset, start, stop)
      if (!range) return array([])
      const {rows} = await c.query(`SELECT m, score FROM ${zt} WHERE k = ? ${order} LIMIT ${range[1]} OFFSET ${range[0]}`, [key])
      return reply(rows)
    }, array([]))
  }

  /** A read in one transaction, holding a shared lock on the key's row. */
  private readTx(key: Buffer, now: number, type: number, fn: (c: SqlConn) => Promise<Reply>, absent: Reply): Promise<Reply> {
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
  private async indexRange(c: SqlConn, key: Buffer, type: number, start: bigint, stop: bigint): Promise<[number, number] | null> {
    const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${this.t.data[type]} WHERE k = ?`, [key])
    const len = BigInt(num(rows[0].n))
    if (start < 0n) start += len
    if (stop < 0n) stop += len
    if (start < 0n) start = 0n
    if (start > stop || start >= len) return null
    if (stop >= len) stop = len - 1n
    return [Number(start), Number(stop - start + 1n)]
  }

  private push(key: Buffer, items: Buffer[], left: boolean, now: number): Promise<Reply> {
    this.checkKey(key)
    return this.tx(async (c) => {
      const st = await this.ensureKey(c, key, T.list, now)
      let lo = 0
      let hi = -1
      let n = 0
      if (!st.created) {
        const {rows} = await c.query(`SELECT MIN(pos) AS lo, MAX(pos) AS hi, COUNT(*) AS n FROM ${this.t.data[T.list]} WHERE k = ?`, [key])
        n = num(rows[0].n)
        if (n > 0) {
          lo = num(rows[0].lo)
          hi = num(rows[0].hi)
        }
      }
      const rows: [number, Buffer][] = items.map((v, i) => [left ? lo - 1 - i : hi + 1 + i, v])
      for (const part of chunks(rows, 1000)) {
        await c.query(this.db.insertIgnore(this.t.data[T.list], ['k', 'pos', 'v'], part.length), part.flatMap(([p, v]) => [key, p, v]))
      }
      return integer(n + items.length)
    })
  }

  private pop(a: Buffer[], left: boolean, now: number): Promise<Reply> {
    if (a.length > 2) return Promise.resolve(error(ERR_SYNTAX))
    let count: bigint | null = null
    if (a.length === 2) {
      count = parseInt64(a[1])
      if (count === null || count < 0n) return Promise.resolve(error('ERR value is out of range, must be positive'))
    }
    const key = a[0]
    return this.tx(async (c) => {
      const st = await this.existingKey(c, key, T.list, now)
      if (!st) return count === null ? NIL : NIL_ARRAY
      if (count === 0n) return array([])
      const n = count === null ? 1 : Number(count > 1000000n ? 1000000n : count)
      const {rows} = await c.query(`SELECT pos, v FROM ${this.t.data[T.list]} WHERE k = ? ORDER BY pos ${left ? 'ASC' : 'DESC'} LIMIT ${n}`, [key])
      for (const part of chunks(rows, 1000)) {
        await c.query(`DELETE FROM ${this.t.data[T.list]} WHERE k = ? AND pos IN (${placeholders(part.length)})`, [key, ...part.map((r) => r.pos)])
      }
      await this.dropIfEmpty(c, key, T.list)
      if (count === null) return bulk(rows[0].v as Buffer)
      return bulks(rows.map((r) => r.v as Buffer))
    })
  }

  private lrange(key: Buffer, start: bigint, stop: bigint, now: number): Promise<Reply> {
    return this.readTx(key, now, T.list, async (c) => {
      const range = await this.indexRange(c, key, T.list, start, stop)
      if (!range) return array([])
      const {rows} = await c.query(`SELECT v FROM ${this.t.data[T.list]} WHERE k = ? ORDER BY pos LIMIT ${range[1]} OFFSET ${range[0]}`, [key])
      return bulks(rows.map((r) => r.v as Buffer))
    }, array([]))
  }

  private del(keys: Buffer[], now: number): Promise<Reply> {
    const ks = dedupe(keys).sort(Buffer.compare)
    return this.tx(async (c) => {
      let n = 0
      for (const k of ks) {
        const st = await this.lockKey(c, k, now)
        if (st) {
          await this.dropKey(c, k, st.type)
          n++
        }
      }
      return integer(n)
    })
  }

  private expire(a: Buffer[], unit: number, name: string, now: number): Promise<Reply> {
    const [key, when] = a
    const n = int64Arg(when)
    const f = {nx: false, xx: false, gt: false, lt: false}
    for (const o of a.slice(2)) {
      const u = upper(o)
      if (u === 'NX') f.nx = true
      else if (u === 'XX') f.xx = true
      else if (u === 'GT') f.gt = true
      else if (u === 'LT') f.lt = true
      else return Promise.resolve(error(`ERR Unsupported option ${o.toString()}`))
    }
    if (f.nx && (f.xx || f.gt || f.lt)) return Promise.resolve(error('ERR NX and XX, GT or LT options at the same time are not compatible'))
    if (f.gt && f.lt) return Promise.resolve(error('ERR GT and LT options at the same time are not compatible'))
    const ms = n * BigInt(unit)
    const at = ms + BigInt(now)
    if (n > INT64_MAX / BigInt(unit) || n < INT64_MIN / BigInt(unit) || at > INT64_MAX || at < INT64_MIN) {
      return Promise.resolve(error(`ERR invalid expire time in '${name}' command`))
    }
    const expireAt = Number(at)
    return this.tx(async (c) => {
      const st = await this.lockKey(c, key, now)
      if (!st) return integer(0)
      const cur = st.expireAt
      if (f.nx && cur !== null) return integer(0)
      if (f.xx && cur === null) return integer(0)
      if (f.gt && (cur === null || !(expireAt > cur))) return integer(0)
      if (f.lt && cur !== null && !(expireAt < cur)) return integer(0)
      if (expireAt <= now) await this.dropKey(c, key, st.type)
      else await c.query(`UPDATE ${this.t.keys} SET expire_at = ? WHERE k = ?`, [expireAt, key])
      return integer(1)
    })
  }

  // ---------------------------------------------------------------- whole keys

  async readKey(key: Buffer): Promise<KeySnapshot | null> {
    return (await this.readKeys([key]))[0]
  }

  /** Reads many keys in one consistent snapshot (REPEATABLE READ, read only). */
  async readKeys(keys: Buffer[]): Promise<(KeySnapshot | null)[]> {
    if (keys.length === 0) return []
    const now = Date.now()
    return this.db.transaction((c) => this.readIn(c, keys, now), {snapshot: true})
  }

  async existing(keys: Buffer[], now = Date.now()): Promise<boolean[]> {
    const live = await this.liveKeyRows(this.db, keys, now)
    return keys.map((k) => live.has(k.toString('latin1')))
  }

  /** The key rows of those keys that exist and have not expired, by latin1 key: type and PTTL. */
  private async liveKeyRows(q: SqlConn, keys: Buffer[], now: number): Promise<Map<string, {type: number; pttl: number}>> {
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
  async deleteIfSame(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    const now = Date.now()
    return this.tx(async (c) => {
      const st = await this.lockKey(c, key, now)
      if (!st) return false
      const [cur] = await this.readIn(c, [key], now)
      if (!cur || !sameSnapshot(cur, {...snap, pttl: cur.pttl}, 0)) return false
      await this.dropKey(c, key, st.type)
      return true
    })
  }

  /** The keys' snapshots read on c (the caller's transaction). */
  private async readIn(c: SqlConn, keys: Buffer[], now: number): Promise<(KeySnapshot | null)[]> {
    const found = new Map<string, {type: number; pttl: number; data: Record<string, unknown>[]}>()
    for (const [k, row] of await this.liveKeyRows(c, keys, now)) found.set(k, {...row, data: []})
    for (let type = 0; type < 5; type++) {
      const ks = keys.filter((k) => found.get(k.toString('latin1'))?.type === type)
      const cols = ['v', 'f, v', 'v', 'm', 'm, score'][type]
      const order = ['k', 'k', 'k, pos', 'k', 'k, score, m'][type]
      for (const part of chunks(dedupe(ks), 500)) {
        const {rows} = await c.query(`SELECT k, ${cols} FROM ${this.t.data[type]} WHERE k IN (${placeholders(part.length)}) ORDER BY ${order}`, part)
        for (const r of rows) found.get((r.k as Buffer).toString('latin1'))!.data.push(r)
      }
    }
    return keys.map((k) => {
      const f = found.get(k.toString('latin1'))
      if (!f || f.data.length === 0) return null
      switch (f.type) {
        case T.string:
          return {type: 'string', value: f.data[0].v as Buffer, pttl: f.pttl}
        case T.hash:
          return {type: 'hash', value: f.data.map((r) => [r.f as Buffer, r.v as Buffer] as [Buffer, Buffer]), pttl: f.pttl}
        case T.list:
          return {type: 'list', value: f.data.map((r) => r.v as Buffer), pttl: f.pttl}
        case T.set:
          return {type: 'set', value: f.data.map((r) => r.m as Buffer), pttl: f.pttl}
        default:
          return {type: 'zset', value: f.data.map((r) => [r.m as Buffer, this.db.decodeScore(r.score)] as [Buffer, number]), pttl: f.pttl}
      }
    })
  }

  private validSnapshot(key: Buffer, snap: KeySnapshot): boolean {
    if (key.length > this.db.maxKey) throw new Error(`key is longer than ${this.db.maxKey} bytes, the limit of the ${this.kind} store`)
    if (snap.pttl === 0 || snap.pttl < -1) return false
    if (snap.type === 'string') return true
    if (snap.value.length === 0) return false
    const long = (m: Buffer) => {
      if (m.length > this.db.maxMember) throw new Error(`a field or member of the key is longer than ${this.db.maxMember} bytes, the limit of the ${this.kind} store`)
    }
    if (snap.type === 'hash') snap.value.forEach(([f]) => long(f))
    else if (snap.type === 'set') snap.value.forEach(long)
    else if (snap.type === 'zset') snap.value.forEach(([m]) => long(m))
    return true
  }

  /** Inserts the data rows of keys whose key rows were just inserted. */
  private async insertData(c: SqlConn, entries: {key: Buffer; snap: KeySnapshot}[]): Promise<void> {
    const rows: unknown[][][] = [[], [], [], [], []]
    for (const {key, snap} of entries) {
      switch (snap.type) {
        case 'string':
          rows[T.string].push([key, snap.value])
          break
        case 'hash': {
          const seen = new Map<string, [Buffer, Buffer]>()
          for (const [f, v] of snap.value) seen.set(f.toString('latin1'), [f, v])
          for (const [f, v] of seen.values()) rows[T.hash].push([key, f, v])
          break
        }
        case 'list':
          snap.value.forEach((v, i) => rows[T.list].push([key, i, v]))
          break
        case 'set':
          for (const m of dedupe(snap.value)) rows[T.set].push([key, m])
          break
        case 'zset': {
          const seen = new Map<string, [Buffer, number]>()
          for (const [m, s] of snap.value) seen.set(m.toString('latin1'), [m, s])
          for (const [m, s] of seen.values()) rows[T.zset].push([key, m, this.db.encodeScore(s)])
        }
      }
    }
    const cols = [['k', 'v'], ['k', 'f', 'v'], ['k', 'pos', 'v'], ['k', 'm'], ['k', 'm', 'score']]
    for (let type = 0; type < 5; type++) {
      let batch: unknown[][] = []
      let bytes = 0
      const flush = async () => {
        if (!batch.length) return
        await c.query(this.db.insertIgnore(this.t.data[type], cols[type], batch.length), batch.flat())
        batch = []
        bytes = 0
      }
      for (const r of rows[type]) {
        batch.push(r)
        for (const x of r) if (Buffer.isBuffer(x)) bytes += x.length
        if (batch.length >= 2000 || bytes >= 4 << 20) await flush()
      }
      await flush()
    }
  }

  async writeKeyIfAbsent(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    return (await this.writeKeysIfAbsent([{key, snap}]))[0]
  }

  /**
   * Set-if-absent for a batch in one transaction: lock the present key rows, clear expired ones,
   * INSERT IGNORE / ON CONFLICT DO NOTHING the key rows, then the data rows of the keys inserted.
   * A key present on the target (written there by double-write, so newer) is never touched.
   */
  async writeKeysIfAbsent(entries: {key: Buffer; snap: KeySnapshot}[]): Promise<boolean[]> {
    if (entries.length === 0) return []
    const valid = entries.map((e) => this.validSnapshot(e.key, e.snap))
    const now = Date.now()
    type Mode = 'fast' | 'select' | 'perKey'
    const attempt = (mode: Mode) =>
      this.db.transaction(async (c) => {
        const result = entries.map(() => false)
        const idx = new Map<string, number>()
        entries.forEach((e, i) => {
          const h = e.key.toString('latin1')
          if (valid[i] && !idx.has(h)) idx.set(h, i)
        })
        const row = (i: number) => {
          const s = entries[i].snap
          return [entries[i].key, T[s.type], s.pttl > 0 ? now + s.pttl : null]
        }
        const insertRows = async (part: number[]): Promise<number[] | null> => {
          const sql = this.db.insertIgnore(this.t.keys, ['k', 'type', 'expire_at'], part.length, this.db.returning ? 'k' : undefined)
          const r = await c.query(sql, part.flatMap(row))
          if (this.db.returning) {
            const got = new Set(r.rows.map((x) => (x.k as Buffer).toString('latin1')))
            return part.filter((i) => got.has(entries[i].key.toString('latin1')))
          }
          return r.affected === part.length ? part : null
        }
        const inserted: number[] = []
        let todo = [...idx.values()]
        if (mode === 'fast') {
          // Insert the key rows straight away; only keys that turn out present are looked at.
          const rest: number[] = []
          for (const part of chunks(todo, 1000)) {
            const got = await insertRows(part)
            if (!got) throw new FastPathMiss() // MySQL cannot say which: redo with the locking read first
            const ok = new Set(got)
            for (const i of part) (ok.has(i) ? inserted : rest).push(i)
          }
          todo = rest
        }
        if (todo.length) {
          // Lock the present key rows; expired ones are deleted and count as absent.
          const present = new Set<string>()
          for (const part of chunks(todo, 1000)) {
            const {rows} = await c.query(`SELECT k, type, expire_at FROM ${this.t.keys} WHERE k IN (${placeholders(part.length)}) FOR UPDATE`, part.map((i) => entries[i].key))
            for (const r of rows) {
              const e = expiryOf(r.expire_at)
              if (e !== null && e <= now) await this.dropKey(c, r.k as Buffer, num(r.type))
              else present.add((r.k as Buffer).toString('latin1'))
            }
          }
          todo = todo.filter((i) => !present.has(entries[i].key.toString('latin1')))
          if (mode === 'perKey') {
            for (const i of todo) {
              const r = await c.query(this.db.insertIgnore(this.t.keys, ['k', 'type', 'expire_at'], 1), row(i))
              if (r.affected === 1) inserted.push(i)
            }
          } else {
            for (const part of chunks(todo, 1000)) {
              const got = await insertRows(part)
              if (!got) throw new RetryTx() // a concurrent writer created some of them: redo key by key
              inserted.push(...got)
            }
          }
        }
        await this.insertData(c, inserted.map((i) => entries[i]))
        for (const i of inserted) result[i] = true
        return result
      })
    // MySQL's fast path fails as a whole when any key is present: after a miss, read first for a while.
    const fast = this.db.returning || Date.now() >= this.fastPathAfter
    try {
      return await attempt(fast ? 'fast' : 'select')
    } catch (e) {
      if (e instanceof FastPathMiss) {
        this.fastPathAfter = Date.now() + 5000
        try {
          return await attempt('select')
        } catch (e2) {
          if (e2 instanceof RetryTx) return attempt('perKey')
          throw e2
        }
      }
      if (e instanceof RetryTx) return attempt('perKey')
      throw e
    }
  }

  async writeKey(key: Buffer, snap: KeySnapshot): Promise<void> {
    const valid = this.validSnapshot(key, snap)
    const now = Date.now()
    await this.tx(async (c) => {
      const st = await this.lockKey(c, key, now)
      if (st) await this.dropKey(c, key, st.type)
      if (!valid) return
      await this.insertKey(c, key, T[snap.type], snap.pttl > 0 ? now + snap.pttl : null)
      await this.insertData(c, [{key, snap}])
    })
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
  async reap(limit = 500): Promise<number> {
    if (this.reaping) return 0
    this.reaping = true
    try {
      const now = Date.now()
      return await this.db.transaction(async (c) => {
        const {rows} = await c.query(`SELECT k, type FROM ${this.t.keys} WHERE expire_at <= ? ORDER BY expire_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`, [now])
        if (!rows.length) return 0
        for (let type = 0; type < 5; type++) {
          const ks = rows.filter((r) => num(r.type) === type).map((r) => r.k as Buffer)
          if (ks.length) await c.query(`DELETE FROM ${this.t.data[type]} WHERE k IN (${placeholders(ks.length)})`, ks)
        }
        await c.query(`DELETE FROM ${this.t.keys} WHERE k IN (${placeholders(rows.length)})`, rows.map((r) => r.k))
        return rows.length
      })
    } finally {
      this.reaping = false
    }
  }
}
