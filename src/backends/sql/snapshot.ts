// Whole-key I/O of the SQL store (read, write, set-if-absent, delete-if-same) for the mover and the
// cutover; comparing snapshots is store-independent and lives in ../snapshot.ts.
import {placeholders, type SqlConn} from '../sql-driver.js'
import {sameSnapshot} from '../snapshot.js'
import type {KeySnapshot} from '../types.js'
import {chunks, dedupe, expiryOf, num, RetryTx, T} from './common.js'
import type {SqlStore} from './store.js'

/** The batch insert hit present keys and MySQL cannot say which. */
class FastPathMiss extends Error {}

type Entry = {key: Buffer; snap: KeySnapshot}

export async function readKeys(s: SqlStore, keys: Buffer[]): Promise<(KeySnapshot | null)[]> {
  if (keys.length === 0) return []
  const now = Date.now()
  return s.db.transaction((c) => readIn(s, c, keys, now), {snapshot: true})
}

export function deleteIfSame(s: SqlStore, key: Buffer, snap: KeySnapshot): Promise<boolean> {
  const now = Date.now()
  return s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    if (!st) return false
    const [cur] = await readIn(s, c, [key], now)
    if (!cur || !sameSnapshot(cur, {...snap, pttl: cur.pttl}, 0)) return false
    await s.dropKey(c, key, st.type)
    return true
  })
}

/** The keys' snapshots read on c (the caller's transaction). */
async function readIn(s: SqlStore, c: SqlConn, keys: Buffer[], now: number): Promise<(KeySnapshot | null)[]> {
  const found = new Map<string, {type: number; pttl: number; data: Record<string, unknown>[]}>()
  for (const [k, row] of await s.liveKeyRows(c, keys, now)) found.set(k, {...row, data: []})
  for (let type = 0; type < 5; type++) {
    const ks = keys.filter((k) => found.get(k.toString('latin1'))?.type === type)
    const cols = ['v', 'f, v', 'v', 'm', 'm, score'][type]
    const order = ['k', 'k', 'k, pos', 'k', 'k, score, m'][type]
    for (const part of chunks(dedupe(ks), 500)) {
      const {rows} = await c.query(`SELECT k, ${cols} FROM ${s.t.data[type]} WHERE k IN (${placeholders(part.length)}) ORDER BY ${order}`, part)
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
        return {type: 'zset', value: f.data.map((r) => [r.m as Buffer, s.db.decodeScore(r.score)] as [Buffer, number]), pttl: f.pttl}
    }
  })
}

/** False for a snapshot that means "no key" (expired, empty); throws when the tables cannot hold it. */
function validSnapshot(s: SqlStore, key: Buffer, snap: KeySnapshot): boolean {
  const {maxKey, maxMember} = s.db
  if (key.length > maxKey) throw new Error(`key is longer than ${maxKey} bytes, the limit of the ${s.kind} store`)
  if (snap.pttl === 0 || snap.pttl < -1) return false
  if (snap.type === 'string') return true
  if (snap.value.length === 0) return false
  const long = (m: Buffer) => {
    if (m.length > maxMember) throw new Error(`a field or member of the key is longer than ${maxMember} bytes, the limit of the ${s.kind} store`)
  }
  if (snap.type === 'hash') snap.value.forEach(([f]) => long(f))
  else if (snap.type === 'set') snap.value.forEach(long)
  else if (snap.type === 'zset') snap.value.forEach(([m]) => long(m))
  return true
}

/** Inserts the data rows of keys whose key rows were just inserted. */
async function insertData(s: SqlStore, c: SqlConn, entries: Entry[]): Promise<void> {
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
        for (const [m, sc] of snap.value) seen.set(m.toString('latin1'), [m, sc])
        for (const [m, sc] of seen.values()) rows[T.zset].push([key, m, s.db.encodeScore(sc)])
      }
    }
  }
  const cols = [['k', 'v'], ['k', 'f', 'v'], ['k', 'pos', 'v'], ['k', 'm'], ['k', 'm', 'score']]
  for (let type = 0; type < 5; type++) {
    let batch: unknown[][] = []
    let bytes = 0
    const flush = async () => {
      if (!batch.length) return
      await c.query(s.db.insertIgnore(s.t.data[type], cols[type], batch.length), batch.flat())
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

/**
 * Set-if-absent for a batch in one transaction: lock the present key rows, clear expired ones,
 * INSERT IGNORE / ON CONFLICT DO NOTHING the key rows, then the data rows of the keys inserted.
 * A key present on the target (written there by double-write, so newer) is never touched.
 */
export async function writeKeysIfAbsent(s: SqlStore, entries: Entry[]): Promise<boolean[]> {
  if (entries.length === 0) return []
  const valid = entries.map((e) => validSnapshot(s, e.key, e.snap))
  const now = Date.now()
  const {db, t} = s
  type Mode = 'fast' | 'select' | 'perKey'
  const attempt = (mode: Mode) =>
    db.transaction(async (c) => {
      const result = entries.map(() => false)
      const idx = new Map<string, number>()
      entries.forEach((e, i) => {
        const h = e.key.toString('latin1')
        if (valid[i] && !idx.has(h)) idx.set(h, i)
      })
      const row = (i: number) => {
        const snap = entries[i].snap
        return [entries[i].key, T[snap.type], snap.pttl > 0 ? now + snap.pttl : null]
      }
      const insertRows = async (part: number[]): Promise<number[] | null> => {
        const sql = db.insertIgnore(t.keys, ['k', 'type', 'expire_at'], part.length, db.returning ? 'k' : undefined)
        const r = await c.query(sql, part.flatMap(row))
        if (db.returning) {
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
          const {rows} = await c.query(`SELECT k, type, expire_at FROM ${t.keys} WHERE k IN (${placeholders(part.length)}) FOR UPDATE`, part.map((i) => entries[i].key))
          for (const r of rows) {
            const e = expiryOf(r.expire_at)
            if (e !== null && e <= now) await s.dropKey(c, r.k as Buffer, num(r.type))
            else present.add((r.k as Buffer).toString('latin1'))
          }
        }
        todo = todo.filter((i) => !present.has(entries[i].key.toString('latin1')))
        if (mode === 'perKey') {
          for (const i of todo) {
            const r = await c.query(db.insertIgnore(t.keys, ['k', 'type', 'expire_at'], 1), row(i))
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
      await insertData(s, c, inserted.map((i) => entries[i]))
      for (const i of inserted) result[i] = true
      return result
    })
  // MySQL's fast path fails as a whole when any key is present: after a miss, read first for a while.
  const fast = db.returning || Date.now() >= s.fastPathAfter
  try {
    return await attempt(fast ? 'fast' : 'select')
  } catch (e) {
    if (e instanceof FastPathMiss) {
      s.fastPathAfter = Date.now() + 5000
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

/** Replaces the key with snap (an invalid snap just deletes it). */
export async function writeKey(s: SqlStore, key: Buffer, snap: KeySnapshot): Promise<void> {
  const valid = validSnapshot(s, key, snap)
  const now = Date.now()
  await s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    if (st) await s.dropKey(c, key, st.type)
    if (!valid) return
    await s.insertKey(c, key, T[snap.type], snap.pttl > 0 ? now + snap.pttl : null)
    await insertData(s, c, [{key, snap}])
  })
}
