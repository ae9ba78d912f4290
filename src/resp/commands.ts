/**
 * The proxy's command table: how each command is served and where its keys are. Arity and key
 * positions follow Redis 7's COMMAND output (arity > 0: exact argument count including the name;
 * arity < 0: at least -arity).
 */

export type CommandKind =
  /** Answered by the proxy itself. */
  | 'local'
  /** One key at keyIndex: goes to the master of the key's slot. */
  | 'single'
  /** Several keys, split by slot and reassembled (MGET, MSET, DEL, ...). */
  | 'split'
  /** Several keys that must all live on one group (RENAME, SINTERSTORE, EVAL, ...). */
  | 'multi'
  /** Sent to every group's master, replies merged (SCAN, KEYS, FLUSHDB, CONFIG; src/proxy/fanout.ts). */
  | 'fanout'
  /** Refused with a clear error (MULTI, blocking, pub/sub, admin). */
  | 'unsupported'

export interface CommandSpec {
  name: string
  kind: CommandKind
  arity: number
  /** May create or change a key (pending-set tracking during migration, double-write). */
  write: boolean
  /** For single: index of the key. For multi: first key index. */
  firstKey: number
  /** Last key index (negative counts from the end: -1 = last argument). */
  lastKey: number
  step: number
  /** Index of a numkeys argument; keys follow it (ZUNIONSTORE, EVAL, SINTERCARD, ...). */
  numkeysIndex?: number
  /** Reason shown for unsupported commands. */
  why?: string
}

const table = new Map<string, CommandSpec>()

function add(kind: CommandKind, write: boolean, spec: string, extra: Partial<CommandSpec> = {}): void {
  for (const line of spec.trim().split(/\n/)) {
    const parts = line.trim().split(/\s+/)
    if (!parts[0]) continue
    const [name, arity, first, last, step] = parts
    table.set(name!, {
      name: name!,
      kind,
      arity: Number(arity),
      write,
      firstKey: Number(first ?? 1),
      lastKey: Number(last ?? 1),
      step: Number(step ?? 1),
      ...extra,
    })
  }
}

// Single-key reads.
add('single', false, `
get 2
getrange 4
substr 4
strlen 2
type 2
ttl 2
pttl 2
expiretime 2
pexpiretime 2
dump 2
hget 3
hmget -3
hgetall 2
hkeys 2
hvals 2
hlen 2
hexists 3
hstrlen 3
hrandfield -2
hscan -3
lrange 4
lindex 3
llen 2
lpos -3
scard 2
sismember 3
smismember -3
smembers 2
srandmember -2
sscan -3
zcard 2
zcount 4
zlexcount 4
zrange -4
zrangebyscore -4
zrangebylex -4
zrevrange -4
zrevrangebyscore -4
zrevrangebylex -4
zrank -3
zrevrank -3
zscore 3
zmscore -3
zrandmember -2
zscan -3
getbit 3
bitcount -2
bitpos -3
bitfield_ro -2
geodist -4
geohash -2
geopos -2
georadius_ro -6
georadiusbymember_ro -5
geosearch -7
xlen 2
xrange -4
xrevrange -4
`)
add('single', false, `
object -2 2 2
memory -2 2 2
xinfo -2 2 2
`)

// Single-key writes.
add('single', true, `
set -3
setnx 3
setex 4
psetex 4
getset 3
getdel 2
getex -2
append 3
setrange 4
incr 2
decr 2
incrby 3
decrby 3
incrbyfloat 3
expire -3
pexpire -3
expireat -3
pexpireat -3
persist 2
restore -4
hset -4
hsetnx 4
hmset -4
hdel -3
hincrby 4
hincrbyfloat 4
lpush -3
rpush -3
lpushx -3
rpushx -3
lpop -2
rpop -2
lset 4
linsert 5
lrem 4
ltrim 4
sadd -3
srem -3
spop -2
zadd -4
zincrby 4
zrem -3
zremrangebyscore 4
zremrangebyrank 4
zremrangebylex 4
zpopmin -2
zpopmax -2
setbit 4
bitfield -2
pfadd -2
geoadd -5
xadd -5
xdel -3
xtrim -4
`)

// Split by slot, reassembled.
add('split', false, `
mget -2 1 -1 1
exists -2 1 -1 1
touch -2 1 -1 1
`)
add('split', true, `
del -2 1 -1 1
unlink -2 1 -1 1
mset -3 1 -1 2
`)

// Multi-key, one group only.
add('multi', true, `
msetnx -3 1 -1 2
rename 3 1 2 1
renamenx 3 1 2 1
copy -3 1 2 1
smove 4 1 2 1
rpoplpush 3 1 2 1
lmove 5 1 2 1
sinterstore -3 1 -1 1
sunionstore -3 1 -1 1
sdiffstore -3 1 -1 1
bitop -4 2 -1 1
pfmerge -2 1 -1 1
geosearchstore -8 1 2 1
zrangestore -5 1 2 1
`)
add('multi', false, `
sinter -2 1 -1 1
lcs -3 1 2 1
sunion -2 1 -1 1
sdiff -2 1 -1 1
pfcount -2 1 -1 1
`)
add('multi', true, `
zunionstore -4 1 1 1
zinterstore -4 1 1 1
zdiffstore -4 1 1 1
`, {numkeysIndex: 2})
add('multi', false, `
zunion -3 0 0 1
zinter -3 0 0 1
zdiff -3 0 0 1
sintercard -3 0 0 1
zintercard -3 0 0 1
`, {numkeysIndex: 1})
add('multi', true, `
lmpop -4 0 0 1
zmpop -4 0 0 1
`, {numkeysIndex: 1})
add('multi', true, `
eval -3 0 0 1
evalsha -3 0 0 1
eval_ro -3 0 0 1
evalsha_ro -3 0 0 1
`, {numkeysIndex: 2})

// Sent to every group, replies merged (docs/proxy-fanout.md).
add('fanout', false, `
scan -2 0 0 0
keys 2 0 0 0
randomkey 1 0 0 0
lastsave 1 0 0 0
config -2 0 0 0
script -2 0 0 0
`)
add('fanout', true, `
flushdb -1 0 0 0
flushall -1 0 0 0
`)

// Answered by the proxy.
add('local', false, `
ping -1
echo 2
quit -1
auth -2
select 2
hello -1
client -2
command -1
info -1
dbsize 1
time 1
readonly 1
readwrite 1
reset 1
`)

const unsupported: [string, string][] = [
  ['multi', 'transactions cannot span groups'],
  ['exec', 'transactions cannot span groups'],
  ['discard', 'transactions cannot span groups'],
  ['watch', 'transactions cannot span groups'],
  ['unwatch', 'transactions cannot span groups'],
  ['blpop', 'blocking commands would hold a shared backend connection'],
  ['brpop', 'blocking commands would hold a shared backend connection'],
  ['brpoplpush', 'blocking commands would hold a shared backend connection'],
  ['blmove', 'blocking commands would hold a shared backend connection'],
  ['blmpop', 'blocking commands would hold a shared backend connection'],
  ['bzpopmin', 'blocking commands would hold a shared backend connection'],
  ['bzpopmax', 'blocking commands would hold a shared backend connection'],
  ['bzmpop', 'blocking commands would hold a shared backend connection'],
  ['xread', 'blocking stream reads are not proxied'],
  ['xreadgroup', 'blocking stream reads are not proxied'],
  ['wait', 'replication acknowledgement is per server'],
  ['subscribe', 'pub/sub is not proxied'],
  ['psubscribe', 'pub/sub is not proxied'],
  ['ssubscribe', 'pub/sub is not proxied'],
  ['unsubscribe', 'pub/sub is not proxied'],
  ['punsubscribe', 'pub/sub is not proxied'],
  ['sunsubscribe', 'pub/sub is not proxied'],
  ['publish', 'pub/sub is not proxied'],
  ['spublish', 'pub/sub is not proxied'],
  ['pubsub', 'pub/sub is not proxied'],
  ['shutdown', 'administrative command'],
  ['debug', 'administrative command'],
  ['migrate', 'administrative command: use rstore migrate'],
  ['replicaof', 'administrative command: use rstore server promote'],
  ['slaveof', 'administrative command: use rstore server promote'],
  ['save', 'administrative command'],
  ['bgsave', 'administrative command'],
  ['bgrewriteaof', 'administrative command'],
  ['sync', 'administrative command'],
  ['psync', 'administrative command'],
  ['monitor', 'administrative command'],
  ['cluster', 'administrative command'],
  ['acl', 'administrative command'],
  ['slowlog', 'administrative command'],
  ['latency', 'administrative command'],
  ['module', 'administrative command'],
  ['failover', 'administrative command'],
  ['swapdb', 'only database 0 exists'],
  ['move', 'only database 0 exists'],
  ['function', 'functions are not proxied'],
  ['fcall', 'functions are not proxied'],
  ['fcall_ro', 'functions are not proxied'],
  ['georadius', 'its STORE option writes a key that may live on another group; use GEOSEARCH/GEOSEARCHSTORE'],
  ['georadiusbymember', 'its STORE option writes a key that may live on another group; use GEOSEARCH/GEOSEARCHSTORE'],
  ['sort', 'SORT ... BY/GET/STORE may touch keys on other groups'],
  ['sort_ro', 'SORT ... BY/GET may touch keys on other groups'],
  ['lolwut', 'administrative command'],
  ['pfdebug', 'administrative command'],
  ['pfselftest', 'administrative command'],
  ['xgroup', 'consumer groups are not proxied'],
  ['xack', 'consumer groups are not proxied'],
  ['xclaim', 'consumer groups are not proxied'],
  ['xautoclaim', 'consumer groups are not proxied'],
  ['xpending', 'consumer groups are not proxied'],
  ['xsetid', 'administrative command'],
]
for (const [name, why] of unsupported) {
  table.set(name, {name, kind: 'unsupported', arity: -1, write: false, firstKey: 0, lastKey: 0, step: 0, why})
}

/** Looks a command up by its lower-case name. */
export function lookupCommand(lowerName: string): CommandSpec | undefined {
  return table.get(lowerName)
}

export function allCommands(): CommandSpec[] {
  return [...table.values()]
}

/** The names refused with '-ERR unsupported command' (for the README and COMMAND). */
export function unsupportedCommands(): {name: string; why: string}[] {
  return [...table.values()].filter((c) => c.kind === 'unsupported').map((c) => ({name: c.name, why: c.why ?? ''}))
}

/** Whether the argument count fits the command's arity. */
export function arityOk(spec: CommandSpec, argc: number): boolean {
  return spec.arity >= 0 ? argc === spec.arity : argc >= -spec.arity
}

/**
 * The indexes of the key arguments of a multi or split command, or a string error in Redis's words
 * when a numkeys argument is bad.
 */
export function keyIndexes(spec: CommandSpec, args: Buffer[]): number[] | string {
  const out: number[] = []
  if (spec.numkeysIndex !== undefined) {
    const n = Number(args[spec.numkeysIndex]?.toString())
    if (!Number.isInteger(n) || n < 0) return 'ERR numkeys should be greater than 0'
    if (spec.numkeysIndex + n > args.length - 1) {
      return spec.name.startsWith('eval')
        ? "ERR Number of keys can't be greater than number of args"
        : 'ERR syntax error'
    }
    if (spec.firstKey > 0) out.push(spec.firstKey)
    for (let i = 1; i <= n; i++) out.push(spec.numkeysIndex + i)
    return out
  }
  const last = spec.lastKey < 0 ? args.length + spec.lastKey : spec.lastKey
  for (let i = spec.firstKey; i <= last; i += spec.step) out.push(i)
  return out
}
