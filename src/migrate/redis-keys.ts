/**
 * The Redis side of the mover: connections to group masters (ioredis, and raw ones for the hot
 * path), SSCAN pages, key sizes, `MIGRATE ... KEYS` with the retry rule of docs/architecture.md rule 6,
 * and the DUMP/RESTORE scripts that move a held slot's keys (MIGRATE reads the target's replies a
 * byte per syscall: ~80k small keys/s here, against ~200k/s for pipelined script calls).
 */
import {createHash} from 'node:crypto'
import {Redis} from 'ioredis'
import {RstoreError, UnreachableError} from '../errors.js'
import {adminSecurity, ioredisSecurity, migrateAuthArgs} from '../resp/credentials.js'
import {parseAddr} from '../topology/model.js'
import {RawRedis} from './raw-redis.js'
import {isReservedKeyAt} from '../topology/internal-keys.js'

/** Whether the key buf[start, end) (the whole buffer by default) is one of rstore's own. */
export function isInternalKey(buf: Buffer, start = 0, end = buf.length): boolean {
  return isReservedKeyAt(buf, start, end)
}

export class MigrateError extends RstoreError {
  constructor(message: string) {
    super('EMIGRATE', message)
    this.name = 'MigrateError'
  }
}

/** One ioredis connection and one raw one (the hot path) per master address, reused for the whole job. */
export class Masters {
  private readonly conns = new Map<string, Redis>()
  private readonly raws = new Map<string, RawRedis>()

  raw(addr: string): RawRedis {
    let c = this.raws.get(addr)
    if (!c) this.raws.set(addr, (c = new RawRedis(addr)))
    return c
  }

  get(addr: string): Redis {
    let c = this.conns.get(addr)
    if (!c) {
      const {host, port} = parseAddr(addr)
      c = new Redis({host, port, ...ioredisSecurity(adminSecurity()), lazyConnect: false, maxRetriesPerRequest: 3, connectTimeout: 3000, enableAutoPipelining: false})
      c.on('error', () => {})
      this.conns.set(addr, c)
    }
    return c
  }

  close(): void {
    for (const c of this.conns.values()) c.disconnect()
    this.conns.clear()
    for (const c of this.raws.values()) c.close()
    this.raws.clear()
  }
}

export async function sscanPage(r: Redis | RawRedis, setKey: string, cursor: string, count: number): Promise<[string, Buffer[]]> {
  const [next, members] =
    r instanceof RawRedis ? ((await r.call(['SSCAN', setKey, cursor, 'COUNT', String(count)])) as [Buffer, Buffer[]]) : await r.sscanBuffer(setKey, cursor, 'COUNT', count)
  return [next.toString(), members]
}

/** MEMORY USAGE of each key (null when the key does not exist): one script call per 1000 keys. */
export async function keySizes(r: Redis, keys: Buffer[]): Promise<(number | null)[]> {
  const out: (number | null)[] = []
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000)
    const res = (await SIZES_SCRIPT.run(r, chunk, [])) as number[]
    for (const v of res) out.push(v < 0 ? null : Number(v))
  }
  return out
}

/** How many of keys exist (EXISTS counts), and which when asked. */
export async function existing(r: Redis, keys: Buffer[]): Promise<Buffer[]> {
  if (!keys.length) return []
  const n = Number(await r.call('EXISTS', ...keys))
  if (n === 0) return []
  const p = r.pipeline()
  for (const k of keys) p.exists(k)
  const res = (await p.exec()) ?? []
  return keys.filter((_, i) => Number(res[i]?.[1] ?? 0) > 0)
}

function retryable(msg: string): boolean {
  return /BUSYKEY|IOERR|timeout|timed out|ECONNRESET|ECONNREFUSED|EPIPE|Connection is closed|LOADING/i.test(msg)
}

export interface MigrateResult {
  /** 'OK' (moved) or 'NOKEY' (none of them existed). */
  reply: string
  /** Tries with REPLACE after a BUSYKEY / IOERR / timeout. */
  replaced: number
  ms: number
}

/**
 * `MIGRATE host port "" 0 timeout KEYS k1..kn` on the source. Without REPLACE first; after BUSYKEY,
 * IOERR or a timeout a key may be on both sides, and the source copy is the authoritative one
 * (nothing writes the target while a key is still on the source), so the retry uses REPLACE.
 */
export async function migrateKeys(src: Redis, target: string, keys: Buffer[], timeoutMs: number, attempts = 6): Promise<MigrateResult> {
  const {host, port} = parseAddr(target)
  const start = performance.now()
  let replace = false
  let replaced = 0
  for (let attempt = 1; ; attempt++) {
    const args: (string | Buffer)[] = [host, String(port), '', '0', String(timeoutMs)]
    if (replace) args.push('REPLACE')
    // The source server logs in to the target with the admin credential.
    args.push(...migrateAuthArgs(adminSecurity()), 'KEYS', ...keys)
    try {
      const reply = String(await src.call('MIGRATE', ...args))
      return {reply, replaced, ms: performance.now() - start}
    } catch (err) {
      const msg = (err as Error).message
      if (attempt >= attempts || !retryable(msg)) {
        throw new MigrateError(`MIGRATE of ${keys.length} key(s) to ${target} failed: ${msg}`)
      }
      replace = true
      replaced++
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)))
    }
  }
}

/** The master's maxmemory in bytes (0 = not set). */
export async function maxmemory(addr: string): Promise<number> {
  const {host, port} = parseAddr(addr)
  const r = new Redis({host, port, ...ioredisSecurity(adminSecurity()), lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null})
  r.on('error', () => {})
  try {
    await r.connect()
    const res = (await r.config('GET', 'maxmemory')) as string[]
    return Number(res[1] ?? 0)
  } catch (err) {
    throw new UnreachableError(`server ${addr} does not answer CONFIG GET maxmemory: ${(err as Error).message}`)
  } finally {
    r.disconnect()
  }
}

/** A Lua script run by EVALSHA, loaded by EVAL on the first NOSCRIPT. */
class LuaScript {
  readonly sha: string
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex')
  }

  async run(r: Redis | RawRedis, keys: Buffer[], args: (string | Buffer)[]): Promise<unknown> {
    const call = (cmd: string, script: string) =>
      r instanceof RawRedis ? r.call([cmd, script, String(keys.length), ...keys, ...args]) : r.callBuffer(cmd, script, String(keys.length), ...keys, ...args)
    try {
      return await call('EVALSHA', this.sha)
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err
      return call('EVAL', this.lua)
    }
  }
}

const SIZES_SCRIPT = new LuaScript("local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('MEMORY', 'USAGE', k) or -1 end return out")

/**
 * Per key: nothing when it does not exist; [key, DUMP payload, PTTL] when its MEMORY USAGE is at most
 * ARGV[1]; [key, size, -3] (a big key, moved alone by MIGRATE) otherwise. One atomic call, so the
 * payload and its TTL belong together.
 */
const DUMP_SCRIPT = new LuaScript(`
local big = tonumber(ARGV[1])
local out = {}
for _, k in ipairs(KEYS) do
  -- PTTL first: it expires a key past its TTL (MEMORY USAGE alone would still see it).
  local ttl = redis.call('PTTL', k)
  if ttl ~= -2 then
    local size = redis.call('MEMORY', 'USAGE', k)
    out[#out + 1] = k
    if size > big then
      out[#out + 1] = size
      out[#out + 1] = -3
    else
      out[#out + 1] = redis.call('DUMP', k)
      out[#out + 1] = ttl
    end
  end
end
return out`)

/** RESTORE k ttl payload REPLACE for each key (ARGV: ttl, payload pairs). */
const RESTORE_SCRIPT = new LuaScript(`
for i, k in ipairs(KEYS) do
  redis.call('RESTORE', k, ARGV[2 * i - 1], ARGV[2 * i], 'REPLACE')
end
return #KEYS`)

export interface Dumped {
  /** Keys dumped, with their TTL (ms, 0 = none) and payload. */
  keys: Buffer[]
  ttls: string[]
  payloads: Buffer[]
  bytes: number
  /** Keys over the big-key size, not dumped. */
  big: {key: Buffer; size: number}[]
  /** Keys that existed but came back without a payload (left on the source). */
  undumped: number
}

/** DUMP + PTTL of the keys that exist (big ones only listed), in one script call on the source. */
export async function dumpKeys(src: RawRedis, keys: Buffer[], bigKeyBytes: number): Promise<Dumped> {
  const reply = (await DUMP_SCRIPT.run(src, keys, [String(bigKeyBytes)])) as (Buffer | number)[]
  const out: Dumped = {keys: [], ttls: [], payloads: [], bytes: 0, big: [], undumped: 0}
  for (let i = 0; i + 2 < reply.length; i += 3) {
    const key = reply[i] as Buffer
    const ttl = Number(reply[i + 2])
    if (ttl === -3) {
      out.big.push({key, size: Number(reply[i + 1])})
      continue
    }
    const payload = reply[i + 1]
    if (!Buffer.isBuffer(payload)) {
      out.undumped++ // left on the source, where the check after the slot finds it
      continue
    }
    out.keys.push(key)
    out.payloads.push(payload)
    // PTTL -1: no expiry (RESTORE ttl 0). PTTL 0: expires within this millisecond; RESTORE would take
    // 0 as "no expiry", so 1 ms (as MIGRATE does).
    out.ttls.push(ttl === -1 ? '0' : String(Math.max(ttl, 1)))
    out.bytes += payload.length
  }
  return out
}

/**
 * RESTORE ... REPLACE of dumped keys on the target, in one script call. Only for a slot whose
 * commands every proxy holds: then the source copy is the only authoritative one and nothing else
 * writes these keys on the target.
 */
export async function restoreKeys(dst: RawRedis, d: Dumped): Promise<void> {
  if (!d.keys.length) return
  const args: (string | Buffer)[] = []
  for (let i = 0; i < d.keys.length; i++) args.push(d.ttls[i]!, d.payloads[i]!)
  await RESTORE_SCRIPT.run(dst, d.keys, args)
}
