import {incrByFloatText, INT64_MAX, INT64_MIN, parseDouble, parseInt64} from '../numbers.js'
import {bulk, bulks, CommandError, error, integer, OK, type Reply} from '../reply.js'
import {placeholders} from '../sql-driver.js'
import {chunks, ERR_FLOAT, int64Arg, num, T, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

export function hashCommands(s: SqlStore): CommandTable {
  return {
    hget: [3, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.hash, 'd.v AS v', `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k AND d.f = ?`, [a[1]])
      return bulk(rows ? ((rows[0].v as Buffer | null) ?? null) : null)
    }],
    hgetall: [2, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.hash, 'd.f AS f, d.v AS v', `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k`)
      const out: Buffer[] = []
      for (const r of rows ?? []) if (r.f !== null && r.f !== undefined) out.push(r.f as Buffer, r.v as Buffer)
      return bulks(out)
    }],
    hlen: [2, async (a, now) => integer(await s.countOf(a[0], now, T.hash))],
    hset: [-4, (a, now) => {
      if (a.length % 2 === 0) return Promise.resolve(error(`ERR wrong number of arguments for 'hset' command`))
      return hset(s, a[0], a.slice(1), now)
    }],
    hdel: [-3, (a, now) => s.removeMembers(a[0], T.hash, 'f', a.slice(1), now)],
    hincrby: [4, (a, now) => hincrby(s, a[0], a[1], int64Arg(a[2]), now)],
    hincrbyfloat: [4, (a, now) => hincrbyfloat(s, a[0], a[1], a[2], now)],
    hmset: [-4, async (a, now) => {
      if (a.length % 2 === 0) return error(`ERR wrong number of arguments for 'hmset' command`)
      await hset(s, a[0], a.slice(1), now)
      return OK
    }],
    hsetnx: [4, (a, now) => hsetnx(s, a[0], a[1], a[2], now)],
    hmget: [-3, async (a, now) => {
      const fields = a.slice(1)
      const rows = await s.readLive(a[0], now, T.hash, 'd.f AS f, d.v AS v', `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k AND d.f IN (${placeholders(fields.length)})`, fields)
      const found = new Map<string, Buffer>()
      for (const r of rows ?? []) if (r.f !== null && r.f !== undefined) found.set((r.f as Buffer).toString('latin1'), r.v as Buffer)
      return bulks(fields.map((f) => found.get(f.toString('latin1')) ?? null))
    }],
    hexists: [3, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.hash, 'd.f AS f', `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k AND d.f = ?`, [a[1]])
      return integer(rows && rows[0].f !== null && rows[0].f !== undefined ? 1 : 0)
    }],
    hstrlen: [3, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.hash, 'LENGTH(d.v) AS n', `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k AND d.f = ?`, [a[1]])
      return integer(rows ? num(rows[0].n ?? 0) : 0)
    }],
    hkeys: [2, (a, now) => hashColumn(s, a[0], 'f', now)],
    hvals: [2, (a, now) => hashColumn(s, a[0], 'v', now)],
  }
}

/** HKEYS / HVALS: one column of the hash's rows. */
async function hashColumn(s: SqlStore, key: Buffer, column: 'f' | 'v', now: number): Promise<Reply> {
  const rows = await s.readLive(key, now, T.hash, `d.${column} AS x`, `LEFT JOIN ${s.t.data[T.hash]} d ON d.k = k.k`)
  return bulks((rows ?? []).filter((r) => r.x !== null && r.x !== undefined).map((r) => r.x as Buffer))
}

function hsetnx(s: SqlStore, key: Buffer, field: Buffer, value: Buffer, now: number): Promise<Reply> {
  s.checkMember(field)
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.hash, now)
    if (!st.created) {
      const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${s.t.data[T.hash]} WHERE k = ? AND f = ?`, [key, field])
      if (num(rows[0].n) > 0) return integer(0)
    }
    await c.query(s.db.upsert(s.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], 1), [key, field, value])
    return integer(1)
  })
}

function hincrbyfloat(s: SqlStore, key: Buffer, field: Buffer, by: Buffer, now: number): Promise<Reply> {
  const incr = parseDouble(by)
  if (incr === null) return Promise.resolve(error(ERR_FLOAT))
  // Redis refuses an infinite increment before it reads the hash
  if (!Number.isFinite(incr)) return Promise.resolve(error('ERR value is NaN or Infinity'))
  s.checkMember(field)
  s.checkKey(key)
  return s.tx(async (c) => {
    await s.ensureKey(c, key, T.hash, now)
    const {rows} = await c.query(`SELECT v FROM ${s.t.data[T.hash]} WHERE k = ? AND f = ?`, [key, field])
    const next = incrByFloatText(rows.length ? (rows[0].v as Buffer).toString('latin1') : '0', by.toString('latin1'))
    if (next === null) throw new CommandError('ERR hash value is not a float')
    if (next === 'inf') throw new CommandError('ERR increment would produce NaN or Infinity')
    const text = Buffer.from(next)
    await c.query(s.db.upsert(s.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], 1), [key, field, text])
    return bulk(text)
  })
}

function hset(s: SqlStore, key: Buffer, pairs: Buffer[], now: number): Promise<Reply> {
  const fields = new Map<string, [Buffer, Buffer]>()
  for (let i = 0; i < pairs.length; i += 2) {
    s.checkMember(pairs[i])
    fields.set(pairs[i].toString('latin1'), [pairs[i], pairs[i + 1]])
  }
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.hash, now)
    const list = [...fields.values()]
    let existing = 0
    if (!st.created) {
      for (const part of chunks(list, 1000)) {
        const {rows} = await c.query(`SELECT COUNT(*) AS n FROM ${s.t.data[T.hash]} WHERE k = ? AND f IN (${placeholders(part.length)})`, [key, ...part.map((p) => p[0])])
        existing += num(rows[0].n)
      }
    }
    for (const part of chunks(list, 1000)) {
      await c.query(s.db.upsert(s.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], part.length), part.flatMap(([f, v]) => [key, f, v]))
    }
    return integer(list.length - existing)
  })
}

function hincrby(s: SqlStore, key: Buffer, field: Buffer, by: bigint, now: number): Promise<Reply> {
  s.checkMember(field)
  s.checkKey(key)
  return s.tx(async (c) => {
    await s.ensureKey(c, key, T.hash, now)
    const {rows} = await c.query(`SELECT v FROM ${s.t.data[T.hash]} WHERE k = ? AND f = ?`, [key, field])
    const base = rows.length ? parseInt64(rows[0].v as Buffer) : 0n
    if (base === null) throw new CommandError('ERR hash value is not an integer')
    const next = base + by
    if (next > INT64_MAX || next < INT64_MIN) throw new CommandError('ERR increment or decrement would overflow')
    await c.query(s.db.upsert(s.t.data[T.hash], ['k', 'f', 'v'], ['k', 'f'], ['v'], 1), [key, field, Buffer.from(next.toString())])
    return integer(next)
  })
}
