import {Redis, ReplyError} from 'ioredis'
import {UnreachableError} from '../errors.js'
import {array, bulk, error, integer, NIL_ARRAY, simple, type Reply} from './reply.js'
import type {KeySnapshot, KeyStore, ScanPage} from './types.js'
import type {StoreUrl} from './url.js'

/** Commands whose non-null bulk-looking answer is really a status reply (+OK, +string, ...). */
const STATUS_COMMANDS = new Set([
  'set', 'type', 'ping', 'flushdb', 'flushall', 'select', 'restore', 'rename', 'lset', 'ltrim', 'mset', 'hmset', 'setex',
  'psetex', 'migrate', 'quit', 'auth', 'save', 'bgsave', 'bgrewriteaof', 'swapdb', 'watch', 'unwatch', 'multi', 'discard',
  'script', 'config', 'client', 'debug', 'replicaof', 'slaveof', 'shutdown', 'readonly', 'readwrite', 'reset', 'hello',
])

const READ_SCRIPT = `
local k = KEYS[1]
local t = redis.call('TYPE', k).ok
if t == 'none' then return false end
local pttl = redis.call('PTTL', k)
local v
if t == 'string' then v = redis.call('GET', k)
elseif t == 'hash' then v = redis.call('HGETALL', k)
elseif t == 'set' then v = redis.call('SMEMBERS', k)
elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
else return {t, pttl} end
local d = false
if ARGV[1] == '1' then d = redis.call('DUMP', k) end
return {t, pttl, v, d}
`

/**
 * Reads many keys in one call: for each key its type, PTTL and, for a string, its value (a string is
 * read whole by GET in the same atomic script). Other types come back without a value and are read
 * one by one with READ_SCRIPT, so one call never holds Redis for longer than the batch's GETs.
 */
const READ_STRINGS_SCRIPT = `
local out = {}
for i, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k).ok
  local n = 3 * i
  out[n - 2] = t
  if t == 'none' then
    out[n - 1] = -2
    out[n] = false
  else
    out[n - 1] = redis.call('PTTL', k)
    if t == 'string' then out[n] = redis.call('GET', k) else out[n] = false end
  end
end
return out
`

const WRITE_SCRIPT = `
local k = KEYS[1]
if ARGV[1] == 'nx' then
  if redis.call('EXISTS', k) == 1 then return 0 end
else
  redis.call('DEL', k)
end
local t = ARGV[2]
local pttl = tonumber(ARGV[3])
local n = #ARGV
if t == 'string' then
  redis.call('SET', k, ARGV[4])
else
  local cmd = ({hash = 'HSET', set = 'SADD', list = 'RPUSH', zset = 'ZADD'})[t]
  local i = 4
  while i <= n do
    local j = math.min(i + 999, n)
    redis.call(cmd, k, unpack(ARGV, i, j))
    i = j + 1
  end
end
if pttl > 0 then redis.call('PEXPIRE', k, pttl) end
return 1
`

type RawReply = Buffer | string | number | null | RawReply[]

/** Formats a score as Redis accepts it (and round-trips a double exactly). */
export function formatScore(x: number): string {
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  return String(x)
}

export function parseScore(s: string): number {
  const t = s.toLowerCase()
  if (t === 'inf' || t === '+inf') return Infinity
  if (t === '-inf') return -Infinity
  return Number(s)
}

/** 1 or 0 per key: whether it exists. */
const EXISTS_EACH_SCRIPT = `
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('EXISTS', k) end
return out
`

/**
 * DEL the key if it holds the value given as writeArgs gives it (ARGV[1] type, ARGV[2] PTTL, ignored,
 * then the items); compared by content, since DUMP payloads of equal hashes or sets can differ in
 * element order.
 */
const DELETE_IF_SAME_SCRIPT = `
local k = KEYS[1]
local t = ARGV[1]
if redis.call('TYPE', k).ok ~= t then return 0 end
local n = #ARGV - 2
if t == 'string' then
  if redis.call('GET', k) ~= ARGV[3] then return 0 end
elseif t == 'list' then
  if redis.call('LLEN', k) ~= n then return 0 end
  local cur = redis.call('LRANGE', k, 0, -1)
  for i = 1, n do if cur[i] ~= ARGV[i + 2] then return 0 end end
elseif t == 'hash' then
  if redis.call('HLEN', k) ~= n / 2 then return 0 end
  for i = 3, #ARGV, 2 do if redis.call('HGET', k, ARGV[i]) ~= ARGV[i + 1] then return 0 end end
elseif t == 'set' then
  if redis.call('SCARD', k) ~= n then return 0 end
  for i = 3, #ARGV do if redis.call('SISMEMBER', k, ARGV[i]) == 0 then return 0 end end
elseif t == 'zset' then
  if redis.call('ZCARD', k) ~= n / 2 then return 0 end
  for i = 3, #ARGV, 2 do
    local s = redis.call('ZSCORE', k, ARGV[i + 1])
    if not s or (s ~= ARGV[i] and tonumber(s) ~= tonumber(ARGV[i])) then return 0 end
  end
else
  return 0
end
redis.call('DEL', k)
return 1
`

interface ScriptClient extends Redis {
  rstoreExistsEach(numKeys: number, ...keys: Buffer[]): Promise<(number | string)[]>
  rstoreDeleteIfSame(key: Buffer, ...args: (Buffer | string)[]): Promise<number | string>
  rstoreReadBuffer(key: Buffer, dump: string): Promise<RawReply>
  rstoreWrite(key: Buffer, ...args: (Buffer | string)[]): Promise<number | string>
  rstoreReadStringsBuffer(numKeys: number, ...keys: Buffer[]): Promise<RawReply[]>
}

/** A Redis server as a key store: commands pass through; whole-key copies use Lua and DUMP/RESTORE. */
export class RedisStore implements KeyStore {
  readonly kind = 'redis' as const

  private constructor(
    readonly client: ScriptClient,
    readonly name: string,
  ) {}

  static async open(url: Pick<StoreUrl, 'host' | 'port' | 'user' | 'password' | 'database' | 'display'>): Promise<RedisStore> {
    const client = new Redis({
      host: url.host,
      port: url.port,
      username: url.user,
      password: url.password,
      db: url.database ? Number(url.database) : 0,
      lazyConnect: true,
      stringNumbers: true,
      maxRetriesPerRequest: 3,
      connectTimeout: 5000,
      retryStrategy: (times) => (times > 10 ? null : Math.min(times * 100, 1000)),
    }) as ScriptClient
    let lastError: Error | undefined
    client.on('error', (e: Error) => {
      lastError = e
    })
    client.defineCommand('rstoreRead', {numberOfKeys: 1, lua: READ_SCRIPT})
    client.defineCommand('rstoreReadStrings', {lua: READ_STRINGS_SCRIPT})
    client.defineCommand('rstoreWrite', {numberOfKeys: 1, lua: WRITE_SCRIPT})
    client.defineCommand('rstoreDeleteIfSame', {numberOfKeys: 1, lua: DELETE_IF_SAME_SCRIPT})
    client.defineCommand('rstoreExistsEach', {lua: EXISTS_EACH_SCRIPT})
    try {
      // Fail fast when nothing listens: one attempt at connect time, reconnects later.
      const opts = client.options
      const retry = opts.retryStrategy
      opts.retryStrategy = () => null
      await client.connect()
      await client.ping()
      opts.retryStrategy = retry
    } catch (e) {
      client.disconnect()
      throw new UnreachableError(`cannot reach redis at ${url.host}:${url.port}: ${(lastError ?? (e as Error)).message}`)
    }
    return new RedisStore(client, url.display)
  }

  async execute(argv: Buffer[]): Promise<Reply> {
    if (argv.length === 0) return error('ERR empty command')
    const name = argv[0].toString().toLowerCase()
    try {
      // Upper case: ioredis keys its reply transformers (HGETALL -> object) by the lower-case name.
      const raw = (await this.client.callBuffer(name.toUpperCase(), ...argv.slice(1))) as RawReply
      if (raw === null && (name === 'lpop' || name === 'rpop') && argv.length > 2) return NIL_ARRAY
      if (Buffer.isBuffer(raw) && STATUS_COMMANDS.has(name)) {
        if (name === 'set' && argv.some((a, i) => i > 2 && a.toString().toLowerCase() === 'get')) return bulk(raw)
        return simple(raw.toString())
      }
      return convert(raw)
    } catch (e) {
      if (e instanceof ReplyError) return error((e as Error).message)
      throw e
    }
  }

  command(...args: (string | Buffer | number)[]): Promise<Reply> {
    return this.execute(args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(String(a)))))
  }

  async readKey(key: Buffer, opts: {dump?: boolean} = {}): Promise<KeySnapshot | null> {
    return decodeSnapshot(key, await this.client.rstoreReadBuffer(key, opts.dump ? '1' : '0'))
  }

  async readKeys(keys: Buffer[], opts: {dump?: boolean} = {}): Promise<(KeySnapshot | null)[]> {
    if (keys.length === 0) return []
    if (!opts.dump) return this.readKeysFast(keys)
    return this.readKeysEach(keys, opts)
  }

  /**
   * Strings (the bulk of most key spaces) in one script call per batch instead of one per key, which
   * saves the client most of its per-command work and garbage; other types are then read one by one.
   */
  private async readKeysFast(keys: Buffer[]): Promise<(KeySnapshot | null)[]> {
    const out: (KeySnapshot | null)[] = new Array(keys.length).fill(null)
    const others: number[] = []
    for (let start = 0; start < keys.length; start += 1000) {
      const part = keys.slice(start, start + 1000)
      const raw = await this.client.rstoreReadStringsBuffer(part.length, ...part)
      for (let j = 0; j < part.length; j++) {
        const t = raw[3 * j] as Buffer | string
        const type = Buffer.isBuffer(t) ? t.toString('latin1') : String(t)
        const pttl = Number(raw[3 * j + 1])
        if (type === 'none' || pttl === -2) continue
        if (type === 'string' && Buffer.isBuffer(raw[3 * j + 2])) out[start + j] = {type: 'string', value: raw[3 * j + 2] as Buffer, pttl: pttl < 0 ? -1 : pttl}
        else others.push(start + j)
      }
    }
    if (others.length) {
      const snaps = await this.readKeysEach(others.map((i) => keys[i]), {})
      others.forEach((i, j) => (out[i] = snaps[j]))
    }
    return out
  }

  private async readKeysEach(keys: Buffer[], opts: {dump?: boolean}): Promise<(KeySnapshot | null)[]> {
    const p = this.client.pipeline() as unknown as {rstoreReadBuffer(k: Buffer, d: string): void; exec(): Promise<[Error | null, RawReply][]>}
    for (const k of keys) p.rstoreReadBuffer(k, opts.dump ? '1' : '0')
    const res = await p.exec()
    return res.map(([err, raw], i) => {
      if (err) throw err
      return decodeSnapshot(keys[i], raw)
    })
  }

  async writeKeyIfAbsent(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    return (await this.writeKeysIfAbsent([{key, snap}]))[0]
  }

  async writeKeysIfAbsent(entries: {key: Buffer; snap: KeySnapshot}[]): Promise<boolean[]> {
    if (entries.length === 0) return []
    const p = this.client.pipeline()
    for (const {key, snap} of entries) {
      if (snap.dump) p.restore(key, snap.pttl > 0 ? snap.pttl : 0, snap.dump)
      else (p as unknown as {rstoreWrite(k: Buffer, ...a: (Buffer | string)[]): void}).rstoreWrite(key, 'nx', ...writeArgs(snap))
    }
    const res = (await p.exec()) ?? []
    return res.map(([err, val]) => {
      if (err) {
        if (/^BUSYKEY/.test(err.message)) return false
        throw err
      }
      return val === 'OK' || Number(val) === 1
    })
  }

  async writeKey(key: Buffer, snap: KeySnapshot): Promise<void> {
    if (snap.dump) {
      await this.client.restore(key, snap.pttl > 0 ? snap.pttl : 0, snap.dump, 'REPLACE')
      return
    }
    await this.client.rstoreWrite(key, 'replace', ...writeArgs(snap))
  }

  async existing(keys: Buffer[]): Promise<boolean[]> {
    const out: boolean[] = []
    for (let start = 0; start < keys.length; start += 1000) {
      const part = keys.slice(start, start + 1000)
      for (const n of await this.client.rstoreExistsEach(part.length, ...part)) out.push(Number(n) === 1)
    }
    return out
  }

  /** Deletes the key if it still holds snap's type and value (its TTL aside), compared inside Redis. */
  async deleteIfSame(key: Buffer, snap: KeySnapshot): Promise<boolean> {
    return Number(await this.client.rstoreDeleteIfSame(key, ...writeArgs(snap))) === 1
  }

  async scan(cursor: string, match?: string, count = 100): Promise<ScanPage> {
    const args: (string | number)[] = [cursor]
    if (match) args.push('MATCH', match)
    args.push('COUNT', count)
    const [next, keys] = (await this.client.callBuffer('scan', ...args)) as [Buffer, Buffer[]]
    return {cursor: next.toString(), keys}
  }

  async dbsize(): Promise<number> {
    return Number(await this.client.dbsize())
  }

  async close(): Promise<void> {
    this.client.disconnect()
  }
}

function writeArgs(snap: KeySnapshot): (Buffer | string)[] {
  const out: (Buffer | string)[] = [snap.type, String(snap.pttl)]
  switch (snap.type) {
    case 'string':
      out.push(snap.value)
      break
    case 'hash':
      for (const [f, v] of snap.value) out.push(f, v)
      break
    case 'set':
    case 'list':
      out.push(...snap.value)
      break
    case 'zset':
      for (const [m, s] of snap.value) out.push(formatScore(s), m)
      break
  }
  return out
}

function convert(raw: RawReply): Reply {
  if (raw === null || raw === undefined) return bulk(null)
  if (Buffer.isBuffer(raw)) return bulk(raw)
  if (typeof raw === 'string') return integer(BigInt(raw))
  if (typeof raw === 'number') return integer(raw)
  return array(raw.map(convert))
}

function decodeSnapshot(key: Buffer, raw: RawReply): KeySnapshot | null {
  if (raw === null || !Array.isArray(raw)) return null
  const type = (raw[0] as Buffer).toString()
  const pttl = Number(raw[1] as string)
  if (pttl === -2) return null
  if (raw.length < 3) throw new Error(`key ${JSON.stringify(key.toString())} has type ${type}, which rstore does not copy`)
  const v = raw[2] as Buffer[] | Buffer
  const dump = Buffer.isBuffer(raw[3]) ? raw[3] : undefined
  const base = {pttl: pttl < 0 ? -1 : pttl, ...(dump ? {dump} : {})}
  switch (type) {
    case 'string':
      return {type, value: v as Buffer, ...base}
    case 'hash': {
      const a = v as Buffer[]
      const pairs: [Buffer, Buffer][] = []
      for (let i = 0; i < a.length; i += 2) pairs.push([a[i], a[i + 1]])
      return {type, value: pairs, ...base}
    }
    case 'set':
    case 'list':
      return {type, value: v as Buffer[], ...base}
    case 'zset': {
      const a = v as Buffer[]
      const pairs: [Buffer, number][] = []
      for (let i = 0; i < a.length; i += 2) pairs.push([a[i], parseScore(a[i + 1].toString())])
      return {type, value: pairs, ...base}
    }
  }
  throw new Error(`key ${JSON.stringify(key.toString())} has unknown type ${type}`)
}
