import {parseInt64} from '../numbers.js'
import {array, bulk, bulks, error, integer, NIL, NIL_ARRAY, type Reply} from '../reply.js'
import {placeholders} from '../sql-driver.js'
import {chunks, ERR_SYNTAX, int64Arg, num, T, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

/** Lists keep a pos column: pushes go below the lowest or above the highest pos, so order is ORDER BY pos. */
export function listCommands(s: SqlStore): CommandTable {
  return {
    lpush: [-3, (a, now) => push(s, a[0], a.slice(1), true, now)],
    rpush: [-3, (a, now) => push(s, a[0], a.slice(1), false, now)],
    lpop: [-2, (a, now) => pop(s, a, true, now)],
    rpop: [-2, (a, now) => pop(s, a, false, now)],
    lrange: [4, (a, now) => lrange(s, a[0], int64Arg(a[1]), int64Arg(a[2]), now)],
    llen: [2, async (a, now) => integer(await s.countOf(a[0], now, T.list))],
  }
}

function push(s: SqlStore, key: Buffer, items: Buffer[], left: boolean, now: number): Promise<Reply> {
  s.checkKey(key)
  return s.tx(async (c) => {
    const st = await s.ensureKey(c, key, T.list, now)
    let lo = 0
    let hi = -1
    let n = 0
    if (!st.created) {
      const {rows} = await c.query(`SELECT MIN(pos) AS lo, MAX(pos) AS hi, COUNT(*) AS n FROM ${s.t.data[T.list]} WHERE k = ?`, [key])
      n = num(rows[0].n)
      if (n > 0) {
        lo = num(rows[0].lo)
        hi = num(rows[0].hi)
      }
    }
    const rows: [number, Buffer][] = items.map((v, i) => [left ? lo - 1 - i : hi + 1 + i, v])
    for (const part of chunks(rows, 1000)) {
      await c.query(s.db.insertIgnore(s.t.data[T.list], ['k', 'pos', 'v'], part.length), part.flatMap(([p, v]) => [key, p, v]))
    }
    return integer(n + items.length)
  })
}

function pop(s: SqlStore, a: Buffer[], left: boolean, now: number): Promise<Reply> {
  if (a.length > 2) return Promise.resolve(error(ERR_SYNTAX))
  let count: bigint | null = null
  if (a.length === 2) {
    count = parseInt64(a[1])
    if (count === null || count < 0n) return Promise.resolve(error('ERR value is out of range, must be positive'))
  }
  const key = a[0]
  return s.tx(async (c) => {
    const st = await s.existingKey(c, key, T.list, now)
    if (!st) return count === null ? NIL : NIL_ARRAY
    if (count === 0n) return array([])
    const n = count === null ? 1 : Number(count > 1000000n ? 1000000n : count)
    const {rows} = await c.query(`SELECT pos, v FROM ${s.t.data[T.list]} WHERE k = ? ORDER BY pos ${left ? 'ASC' : 'DESC'} LIMIT ${n}`, [key])
    for (const part of chunks(rows, 1000)) {
      await c.query(`DELETE FROM ${s.t.data[T.list]} WHERE k = ? AND pos IN (${placeholders(part.length)})`, [key, ...part.map((r) => r.pos)])
    }
    await s.dropIfEmpty(c, key, T.list)
    if (count === null) return bulk(rows[0].v as Buffer)
    return bulks(rows.map((r) => r.v as Buffer))
  })
}

function lrange(s: SqlStore, key: Buffer, start: bigint, stop: bigint, now: number): Promise<Reply> {
  return s.readTx(key, now, T.list, async (c) => {
    const range = await s.indexRange(c, key, T.list, start, stop)
    if (!range) return array([])
    const {rows} = await c.query(`SELECT v FROM ${s.t.data[T.list]} WHERE k = ? ORDER BY pos LIMIT ${range[1]} OFFSET ${range[0]}`, [key])
    return bulks(rows.map((r) => r.v as Buffer))
  }, array([]))
}
