import {incrByFloatText, INT64_MAX, INT64_MIN, parseDouble, parseInt64} from '../numbers.js'
import {bulk, CommandError, error, integer, NIL, OK, WRONGTYPE, type Reply} from '../reply.js'
import type {SqlConn} from '../sql-driver.js'
import {ERR_FLOAT, ERR_INT, ERR_SYNTAX, int64Arg, num, T, upper, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

export function stringCommands(s: SqlStore): CommandTable {
  return {
    get: [2, (a, now) => get(s, a[0], now)],
    set: [-3, (a, now) => set(s, a, now)],
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

async function set(s: SqlStore, a: Buffer[], now: number): Promise<Reply> {
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
