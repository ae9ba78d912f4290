import {formatDouble, parseDouble} from '../numbers.js'
import {array, bulk, CommandError, error, integer, NIL, type Reply} from '../reply.js'
import {placeholders} from '../sql-driver.js'
import {chunks, dedupe, ERR_FLOAT, ERR_SYNTAX, int64Arg, T, upper, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

export function zsetCommands(s: SqlStore): CommandTable {
  return {
    zadd: [-4, (a, now) => zadd(s, a, now)],
    zrem: [-3, (a, now) => s.removeMembers(a[0], T.zset, 'm', a.slice(1), now)],
    zscore: [3, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.zset, 'd.score AS s', `LEFT JOIN ${s.t.data[T.zset]} d ON d.k = k.k AND d.m = ?`, [a[1]])
      return rows && rows[0].s !== null && rows[0].s !== undefined ? bulk(formatDouble(s.db.decodeScore(rows[0].s))) : NIL
    }],
    zcard: [2, async (a, now) => integer(await s.countOf(a[0], now, T.zset))],
    zrange: [-4, (a, now) => zrange(s, a, now)],
  }
}

function zadd(s: SqlStore, a: Buffer[], now: number): Promise<Reply> {
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
    const sc = parseDouble(rest[j])
    if (sc === null) return Promise.resolve(error(ERR_FLOAT))
    s.checkMember(rest[j + 1])
    pairs.push([sc, rest[j + 1]])
  }
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.existingKey(c, key, T.zset, now)
    if (!st && f.xx) return f.incr ? NIL : integer(0)
    if (!st) await s.insertKey(c, key, T.zset)
    const cur = new Map<string, number>()
    const members = dedupe(pairs.map((p) => p[1]))
    if (st) {
      for (const part of chunks(members, 1000)) {
        const {rows} = await c.query(`SELECT m, score FROM ${s.t.data[T.zset]} WHERE k = ? AND m IN (${placeholders(part.length)})`, [key, ...part])
        for (const r of rows) cur.set((r.m as Buffer).toString('latin1'), s.db.decodeScore(r.score))
      }
    }
    let added = 0
    let changed = 0
    let last: number | null = null
    const writes = new Map<string, [Buffer, number]>()
    for (const [sc, m] of pairs) {
      const h = m.toString('latin1')
      const old = cur.get(h)
      last = null
      if (old !== undefined) {
        if (f.nx) continue
        const next = f.incr ? old + sc : sc
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
        last = sc
        added++
        cur.set(h, sc)
        writes.set(h, [m, sc])
      }
    }
    for (const part of chunks([...writes.values()], 1000)) {
      await c.query(s.db.upsert(s.t.data[T.zset], ['k', 'm', 'score'], ['k', 'm'], ['score'], part.length), part.flatMap(([m, sc]) => [key, m, s.db.encodeScore(sc)]))
    }
    if (!st && added === 0) await c.query(`DELETE FROM ${s.t.keys} WHERE k = ?`, [key])
    if (f.incr) return last === null ? NIL : bulk(formatDouble(last))
    return integer(f.ch ? added + changed : added)
  })
}

function zrange(s: SqlStore, a: Buffer[], now: number): Promise<Reply> {
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
  const zt = s.t.data[T.zset]
  const order = rev ? 'ORDER BY score DESC, m DESC' : 'ORDER BY score ASC, m ASC'
  const reply = (rows: Record<string, unknown>[]) => {
    const out: Reply[] = []
    for (const r of rows) {
      out.push(bulk(r.m as Buffer))
      if (withScores) out.push(bulk(formatDouble(s.db.decodeScore(r.score))))
    }
    return array(out)
  }
  if (byScore) {
    const bound = (b: Buffer) => {
      let x = b.toString('latin1')
      const excl = x.startsWith('(')
      if (excl) x = x.slice(1)
      const v = parseDouble(x)
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
      params.push(s.db.encodeScore(min.v))
    }
    if (max.v !== Infinity || max.excl) {
      conds.push(`score ${max.excl ? '<' : '<='} ?`)
      params.push(s.db.encodeScore(max.v))
    }
    let lim = ''
    if (limit) {
      const [off, cnt] = limit
      if (off < 0n) return Promise.resolve(array([]))
      lim = ` LIMIT ${cnt < 0n ? '18446744073709551615' : cnt.toString()} OFFSET ${off.toString()}`
      // PostgreSQL's LIMIT is a bigint: "no limit" is just the OFFSET.
      if (s.kind === 'postgres' && cnt < 0n) lim = ` OFFSET ${off.toString()}`
    }
    return s.readTx(key, now, T.zset, async (c) => {
      const {rows} = await c.query(`SELECT m, score FROM ${zt} WHERE k = ?${conds.map((x) => ` AND ${x}`).join('')} ${order}${lim}`, [key, ...params])
      return reply(rows)
    }, array([]))
  }
  const start = int64Arg(a[1])
  const stop = int64Arg(a[2])
  return s.readTx(key, now, T.zset, async (c) => {
    const range = await s.indexRange(c, key, T.zset, start, stop)
    if (!range) return array([])
    const {rows} = await c.query(`SELECT m, score FROM ${zt} WHERE k = ? ${order} LIMIT ${range[1]} OFFSET ${range[0]}`, [key])
    return reply(rows)
  }, array([]))
}
