import {incrByFloatText, INT64_MAX, INT64_MIN, parseDouble, parseInt64} from '../numbers.js'
import {array, bulk, CommandError, error, integer, NIL, OK, WRONGTYPE, type Reply} from '../reply.js'
import {placeholders, type SqlConn} from '../sql-driver.js'
import {ERR_FLOAT, ERR_INT, ERR_SYNTAX, expiryOf, int64Arg, num, T, upper, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

export function stringCommands(s: SqlStore): CommandTable {
  return {
    get: [2, (a, now) => get(s, a[0], now)],
    set: [-3, (a, now) => set(s, a, now)],
    setex: [4, (a, now) => set(s, [a[0], a[2], Buffer.from('EX'), a[1]], now, 'setex')],
    psetex: [4, (a, now) => set(s, [a[0], a[2], Buffer.from('PX'), a[1]], now, 'psetex')],
    getset: [3, (a, now) => set(s, [a[0], a[1], Buffer.from('GET')], now)],
    getdel: [2, (a, now) => getdel(s, a[0], now)],
    mget: [-2, (a, now) => mget(s, a, now)],
    mset: [-3, (a, now) => {
      if (a.length % 2 !== 0) return Promise.resolve(error(`ERR wrong number of arguments for 'mset' command`))
      return mset(s, a, now)
    }],
    getrange: [4, async (a, now) => {
      const start = int64Arg(a[1])
      const end = int64Arg(a[2])
      const rows = await s.readLive(a[0], now, T.string, 'd.v AS v', `LEFT JOIN ${s.t.data[T.string]} d ON d.k = k.k`)
      return bulk(substring((rows?.[0]?.v as Buffer | undefined) ?? Buffer.alloc(0), start, end))
    }],
    setrange: [4, (a, now) => setrange(s, a[0], int64Arg(a[1]), a[2], now)],
    setnx: [3, async (a, now) => ((await set(s, [a[0], a[1], Buffer.from('NX')], now)).type === 'simple' ? integer(1) : integer(0))],
    incr: [2, (a, now) => incrBy(s, a[0], 1n, now)],
    decr: [2, (a, now) => incrBy(s, a[0], -1n, now)],
    incrby: [3, (a, now) => incrBy(s, a[0], int64Arg(a[1]), now)],
    decrby: [3, (a, now) => {
      const by = int64Arg(a[1])
      if (by === INT64_MIN) throw new CommandError('ERR decrement would overflow')
      return incrBy(s, a[0], -by, now)
    }],
    incrbyfloat: [3, (a, now) => incrByFloat(s, a[0], a[1], now)],
    append: [3, (a, now) => append(s, a[0], a[1], now)],
    strlen: [2, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.string, 'LENGTH(d.v) AS n', `LEFT JOIN ${s.t.data[T.string]} d ON d.k = k.k`)
      return integer(rows ? num(rows[0].n ?? 0) : 0)
    }],
  }
}

async function readString(s: SqlStore, c: SqlConn, key: Buffer): Promise<Buffer | null> {
  const {rows} = await c.query(`SELECT v FROM ${s.t.data[T.string]} WHERE k = ?`, [key])
  return rows.length ? (rows[0].v as Buffer) : null
}

function writeString(s: SqlStore, c: SqlConn, key: Buffer, v: Buffer) {
  return c.query(s.db.upsert(s.t.data[T.string], ['k', 'v'], ['k'], ['v'], 1), [key, v])
}

async function get(s: SqlStore, key: Buffer, now: number): Promise<Reply> {
  const rows = await s.readLive(key, now, T.string, 'd.v AS v', `LEFT JOIN ${s.t.data[T.string]} d ON d.k = k.k`)
  return bulk(rows ? ((rows[0].v as Buffer | null) ?? null) : null)
}

async function set(s: SqlStore, a: Buffer[], now: number, cmd = 'set'): Promise<Reply> {
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
      if (n <= 0n) throw new CommandError(`ERR invalid expire time in '${cmd}' command`)
      const ms = opt === 'EX' || opt === 'EXAT' ? n * 1000n : n
      const at = opt === 'EX' || opt === 'PX' ? ms + BigInt(now) : ms
      if (ms > INT64_MAX / 2n || at > BigInt(Number.MAX_SAFE_INTEGER)) throw new CommandError(`ERR invalid expire time in '${cmd}' command`)
      expireAt = Number(at)
    } else throw new CommandError(ERR_SYNTAX)
  }
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    let old: Buffer | null = null
    if (get && st) {
      if (st.type !== T.string) throw new CommandError(WRONGTYPE)
      old = await readString(s, c, key)
    }
    if ((nx && st) || (xx && !st)) return get ? bulk(old) : NIL
    const exp = keepttl ? (st?.expireAt ?? null) : expireAt
    if (st) {
      if (st.type !== T.string) await c.query(`DELETE FROM ${s.t.data[st.type]} WHERE k = ?`, [key])
      await c.query(`UPDATE ${s.t.keys} SET type = ?, expire_at = ? WHERE k = ?`, [T.string, exp, key])
    } else {
      await s.insertKey(c, key, T.string, exp)
    }
    await writeString(s, c, key, value)
    return get ? bulk(old) : OK
  })
}

function incrBy(s: SqlStore, key: Buffer, by: bigint, now: number): Promise<Reply> {
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.string, now)
    const cur = st.created ? null : await readString(s, c, key)
    const base = cur === null ? 0n : parseInt64(cur)
    if (base === null) throw new CommandError(ERR_INT)
    const next = base + by
    if (next > INT64_MAX || next < INT64_MIN) throw new CommandError('ERR increment or decrement would overflow')
    await writeString(s, c, key, Buffer.from(next.toString()))
    return integer(next)
  })
}

function incrByFloat(s: SqlStore, key: Buffer, byArg: Buffer, now: number): Promise<Reply> {
  if (parseDouble(byArg) === null) return Promise.resolve(error(ERR_FLOAT))
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.string, now)
    const cur = st.created ? null : await readString(s, c, key)
    const next = incrByFloatText(cur === null ? '0' : cur.toString('latin1'), byArg.toString('latin1'))
    if (next === null) throw new CommandError(ERR_FLOAT)
    if (next === 'inf') throw new CommandError('ERR increment would produce NaN or Infinity')
    const text = Buffer.from(next)
    await writeString(s, c, key, text)
    return bulk(text)
  })
}

function append(s: SqlStore, key: Buffer, more: Buffer, now: number): Promise<Reply> {
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.string, now)
    const cur = st.created ? null : await readString(s, c, key)
    const next = cur ? Buffer.concat([cur, more]) : more
    await writeString(s, c, key, next)
    return integer(next.length)
  })
}

/** SET's write inside a transaction: the key becomes a string with this value and no TTL. */
async function putString(s: SqlStore, c: SqlConn, key: Buffer, value: Buffer, now: number): Promise<void> {
  s.checkKey(key)
  const st = await s.lockKey(c, key, now)
  if (st) {
    if (st.type !== T.string) await c.query(`DELETE FROM ${s.t.data[st.type]} WHERE k = ?`, [key])
    await c.query(`UPDATE ${s.t.keys} SET type = ?, expire_at = ? WHERE k = ?`, [T.string, null, key])
  } else {
    await s.insertKey(c, key, T.string)
  }
  await writeString(s, c, key, value)
}

function mset(s: SqlStore, a: Buffer[], now: number): Promise<Reply> {
  // The last value of a key given twice wins, as in Redis; one transaction, so all or none.
  const last = new Map<string, [Buffer, Buffer]>()
  for (let i = 0; i < a.length; i += 2) last.set(a[i].toString('latin1'), [a[i], a[i + 1]])
  return s.tx(async (c) => {
    for (const [key, value] of last.values()) await putString(s, c, key, value, now)
    return OK
  })
}

async function mget(s: SqlStore, keys: Buffer[], now: number): Promise<Reply> {
  const {rows} = await s.db.query(
    `SELECT k.k AS k, k.type AS kt, k.expire_at AS ke, d.v AS v FROM ${s.t.keys} k LEFT JOIN ${s.t.data[T.string]} d ON d.k = k.k WHERE k.k IN (${placeholders(keys.length)})`,
    keys,
  )
  const live = new Map<string, Buffer>()
  for (const r of rows) {
    const ke = expiryOf(r.ke)
    if (num(r.kt) === T.string && (ke === null || ke > now) && r.v) live.set((r.k as Buffer).toString('latin1'), r.v as Buffer)
  }
  // A key of another type is nil in MGET, not WRONGTYPE.
  return array(keys.map((k) => bulk(live.get(k.toString('latin1')) ?? null)))
}

function getdel(s: SqlStore, key: Buffer, now: number): Promise<Reply> {
  return s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    if (!st) return NIL
    if (st.type !== T.string) throw new CommandError(WRONGTYPE)
    const v = await readString(s, c, key)
    await s.dropKey(c, key, T.string)
    return bulk(v)
  })
}

/** GETRANGE's inclusive start..end with negative indexes from the end, clamped as Redis does. */
function substring(v: Buffer, start: bigint, end: bigint): Buffer {
  const len = BigInt(v.length)
  if (start < 0n && end < 0n && start > end) return Buffer.alloc(0)
  if (start < 0n) start += len
  if (end < 0n) end += len
  if (start < 0n) start = 0n
  if (end < 0n) end = 0n
  if (end >= len) end = len - 1n
  if (len === 0n || start > end) return Buffer.alloc(0)
  return v.subarray(Number(start), Number(end) + 1)
}

/** Redis's proto-max-bulk-len default: a string cannot grow past 512 MB. */
const MAX_STRING = 512n * 1024n * 1024n

function setrange(s: SqlStore, key: Buffer, offset: bigint, piece: Buffer, now: number): Promise<Reply> {
  if (offset < 0n) return Promise.resolve(error('ERR offset is out of range'))
  if (piece.length && offset + BigInt(piece.length) > MAX_STRING) return Promise.resolve(error('ERR string exceeds maximum allowed size (proto-max-bulk-len)'))
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    if (st && st.type !== T.string) throw new CommandError(WRONGTYPE)
    const cur = st ? ((await readString(s, c, key)) ?? Buffer.alloc(0)) : Buffer.alloc(0)
    // An empty piece changes nothing and creates no key; it answers the current length.
    if (!piece.length) return integer(cur.length)
    const at = Number(offset)
    const next = Buffer.alloc(Math.max(cur.length, at + piece.length))
    cur.copy(next)
    piece.copy(next, at)
    if (!st) await s.insertKey(c, key, T.string)
    await writeString(s, c, key, next)
    return integer(next.length)
  })
}
