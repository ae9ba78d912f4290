import {INT64_MAX, INT64_MIN} from '../numbers.js'
import {error, integer, simple, type Reply} from '../reply.js'
import {dedupe, int64Arg, TYPE_NAMES, upper, type CommandTable} from './common.js'
import type {SqlStore} from './store.js'

/** Commands on whole keys of any type: existence, deletion, type and expiry. */
export function keyCommands(s: SqlStore): CommandTable {
  return {
    del: [-2, (a, now) => del(s, a, now)],
    unlink: [-2, (a, now) => del(s, a, now)],
    exists: [-2, async (a, now) => integer((await s.existing(a, now)).filter(Boolean).length)],
    type: [2, async (a, now) => {
      const st = await s.peek(a[0], now)
      return simple(st ? TYPE_NAMES[st.type] : 'none')
    }],
    touch: [-2, async (a, now) => integer((await s.existing(a, now)).filter(Boolean).length)],
    expire: [-3, (a, now) => expire(s, a, 1000, 'expire', now, false)],
    pexpire: [-3, (a, now) => expire(s, a, 1, 'pexpire', now, false)],
    expireat: [-3, (a, now) => expire(s, a, 1000, 'expireat', now, true)],
    pexpireat: [-3, (a, now) => expire(s, a, 1, 'pexpireat', now, true)],
    expiretime: [2, async (a, now) => {
      const st = await s.peek(a[0], now)
      return integer(!st ? -2 : st.expireAt === null ? -1 : Math.floor(st.expireAt / 1000))
    }],
    pexpiretime: [2, async (a, now) => {
      const st = await s.peek(a[0], now)
      return integer(!st ? -2 : st.expireAt === null ? -1 : st.expireAt)
    }],
    ttl: [2, async (a, now) => {
      const st = await s.peek(a[0], now)
      if (!st) return integer(-2)
      if (st.expireAt === null) return integer(-1)
      return integer(Math.floor((st.expireAt - now + 500) / 1000))
    }],
    pttl: [2, async (a, now) => {
      const st = await s.peek(a[0], now)
      if (!st) return integer(-2)
      return integer(st.expireAt === null ? -1 : st.expireAt - now)
    }],
    persist: [2, (a, now) =>
      s.tx(async (c) => {
        const st = await s.lockKey(c, a[0], now)
        if (!st || st.expireAt === null) return integer(0)
        await c.query(`UPDATE ${s.t.keys} SET expire_at = NULL WHERE k = ?`, [a[0]])
        return integer(1)
      })],
  }
}

function del(s: SqlStore, keys: Buffer[], now: number): Promise<Reply> {
  // Locked in byte order so two multi-key DELs cannot deadlock each other.
  const ks = dedupe(keys).sort(Buffer.compare)
  return s.tx(async (c) => {
    let n = 0
    for (const k of ks) {
      const st = await s.lockKey(c, k, now)
      if (st) {
        await s.dropKey(c, k, st.type)
        n++
      }
    }
    return integer(n)
  })
}

/** EXPIRE / PEXPIRE, or EXPIREAT / PEXPIREAT when `absolute` (`unit` ms per argument unit), with NX / XX / GT / LT. */
function expire(s: SqlStore, a: Buffer[], unit: number, name: string, now: number, absolute: boolean): Promise<Reply> {
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
  const at = n * BigInt(unit) + (absolute ? 0n : BigInt(now))
  if (n > INT64_MAX / BigInt(unit) || n < INT64_MIN / BigInt(unit) || at > INT64_MAX || at < INT64_MIN) {
    return Promise.resolve(error(`ERR invalid expire time in '${name}' command`))
  }
  // Past 2^53 ms (year 287396) a time is forever for any purpose; clamped so a JS number holds it exactly.
  const expireAt = Number(at > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : at)
  return s.tx(async (c) => {
    const st = await s.lockKey(c, key, now)
    if (!st) return integer(0)
    const cur = st.expireAt
    if (f.nx && cur !== null) return integer(0)
    if (f.xx && cur === null) return integer(0)
    if (f.gt && (cur === null || !(expireAt > cur))) return integer(0)
    if (f.lt && cur !== null && !(expireAt < cur)) return integer(0)
    if (expireAt <= now) await s.dropKey(c, key, st.type)
    else await c.query(`UPDATE ${s.t.keys} SET expire_at = ? WHERE k = ?`, [expireAt, key])
    return integer(1)
  })
}
