import {bulks, integer, type Reply} from '../reply.js'
import {chunks, dedupe, T, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

export function setCommands(s: SqlStore): CommandTable {
  return {
    sadd: [-3, (a, now) => sadd(s, a[0], a.slice(1), now)],
    srem: [-3, (a, now) => s.removeMembers(a[0], T.set, 'm', a.slice(1), now)],
    smembers: [2, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.set, 'd.m AS m', `LEFT JOIN ${s.t.data[T.set]} d ON d.k = k.k`)
      return bulks((rows ?? []).filter((r) => r.m !== null && r.m !== undefined).map((r) => r.m as Buffer))
    }],
    sismember: [3, async (a, now) => {
      const rows = await s.readLive(a[0], now, T.set, 'd.m AS m', `LEFT JOIN ${s.t.data[T.set]} d ON d.k = k.k AND d.m = ?`, [a[1]])
      return integer(rows && rows[0].m !== null && rows[0].m !== undefined ? 1 : 0)
    }],
    scard: [2, async (a, now) => integer(await s.countOf(a[0], now, T.set))],
  }
}

function sadd(s: SqlStore, key: Buffer, members: Buffer[], now: number): Promise<Reply> {
  const ms = dedupe(members)
  ms.forEach((m) => s.checkMember(m))
  s.checkKey(key)
  return s.tx(async (c) => {
    await s.ensureKey(c, key, T.set, now)
    let added = 0
    for (const part of chunks(ms, 1000)) {
      added += (await c.query(s.db.insertIgnore(s.t.data[T.set], ['k', 'm'], part.length), part.flatMap((m) => [key, m]))).affected
    }
    return integer(added)
  })
}
