/**
 * The same behaviour cases against every key store (Redis, MariaDB, PostgreSQL), each reply compared
 * with what a real redis-server answers to the same command sequence.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {openStore, RedisStore, SqlStore, parseStoreUrl, type KeyStore, type KeySnapshot, type Reply} from '../src/backends/index.js'
import {formatReply} from '../src/backends/reply.js'
import {startMariaDb, type MariaDbServer} from './harness/mariadb.js'
import {startPostgres, type PostgresServer} from './harness/postgres.js'
import {type RedisServer} from './harness/redis.js'
import {startRedis} from './harness/redis.js'
import {startAll} from './harness/process.js'

type Arg = string | Buffer
/** A command, optionally with a reply normalization: unordered members, unordered pairs, or a TTL. */
type Step = Arg[] | {cmd: Arg[]; norm: 'set' | 'pairs' | 'ttl' | 'pttl'}

let redis: RedisServer
let maria: MariaDbServer
let postgres: PostgresServer
let reference: KeyStore
const stores: Record<string, KeyStore> = {}

before(async () => {
  ;[redis, maria, postgres] = await startAll([startRedis(), startMariaDb(), startPostgres()] as const)
  reference = await openStore(`redis://127.0.0.1:${redis.port}/0`)
  stores.redis = await openStore(`redis://127.0.0.1:${redis.port}/1`)
  stores.mysql = await openStore(`${maria.url}?maxOpen=16`, {reapIntervalMs: 100})
  stores.postgres = await openStore(`${postgres.url}?maxOpen=16`, {reapIntervalMs: 100})
})

after(async () => {
  await Promise.all([reference, ...Object.values(stores)].map((s) => s?.close().catch(() => {})))
  await Promise.all([redis?.stop(), maria?.stop(), postgres?.stop()])
})

const KINDS = ['redis', 'mysql', 'postgres'] as const

function normalize(r: Reply, norm?: string): unknown {
  if (norm === 'set' && r.type === 'array' && r.value) return r.value.map(formatReply).sort()
  if (norm === 'pairs' && r.type === 'array' && r.value) {
    const pairs: string[] = []
    for (let i = 0; i < r.value.length; i += 2) pairs.push(`${formatReply(r.value[i])}=${formatReply(r.value[i + 1])}`)
    return pairs.sort()
  }
  return formatReply(r)
}

async function runScript(kind: string, steps: Step[]): Promise<void> {
  const store = stores[kind]
  for (const step of steps) {
    const {cmd, norm} = Array.isArray(step) ? {cmd: step, norm: undefined} : step
    const argv = cmd.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(a)))
    const want = await reference.execute(argv)
    const got = await store.execute(argv)
    const what = `${kind}: ${cmd.map((a) => (Buffer.isBuffer(a) ? `<${a.toString('hex')}>` : a)).join(' ')}`
    if ((norm === 'ttl' || norm === 'pttl') && want.type === 'integer' && got.type === 'integer' && Number(want.value) >= 0) {
      const slack = norm === 'ttl' ? 1 : 1000
      assert.ok(Math.abs(Number(want.value) - Number(got.value)) <= slack, `${what}: got ${formatReply(got)}, redis says ${formatReply(want)}`)
      continue
    }
    assert.deepEqual(normalize(got, norm), normalize(want, norm), `${what}: got ${formatReply(got)}, redis says ${formatReply(want)}`)
  }
}

/** Runs the script on every store, keys prefixed per family so families never collide. */
function family(name: string, steps: (p: string) => Step[]): void {
  describe(name, () => {
    for (const kind of KINDS) test(kind, () => runScript(kind, steps(`${name}:${kind}:`)))
  })
}

family('expiry', (p) => [
  ['SET', `${p}a`, 'v'], ['EXPIREAT', `${p}a`, String(Math.floor(Date.now() / 1000) + 1000)], {cmd: ['TTL', `${p}a`], norm: 'ttl'},
  ['EXPIRETIME', `${p}none`], ['SET', `${p}b`, 'v'], ['EXPIRETIME', `${p}b`], ['PEXPIRETIME', `${p}b`],
  ['PEXPIREAT', `${p}b`, String(Date.now() + 1_000_000)], {cmd: ['PTTL', `${p}b`], norm: 'pttl'}, ['EXPIREAT', `${p}b`, '1', 'GT'],
  ['PEXPIREAT', `${p}b`, '100', 'NX'], ['EXPIREAT', `${p}b`, 'x'], ['EXPIREAT', `${p}none`, '100'], ['EXPIREAT', `${p}b`, '100', 'BOGUS'],
  ['EXPIREAT', `${p}b`, '1'], ['EXISTS', `${p}b`], ['PEXPIREAT', `${p}a`, '9223372036854775807'],
  ['SET', `${p}c`, 'v'], ['PEXPIREAT', `${p}c`, '4102444800000'], ['PEXPIRETIME', `${p}c`], ['EXPIRETIME', `${p}c`],
  ['TOUCH', `${p}c`, `${p}none`, `${p}c`], ['TOUCH', `${p}none`], ['TOUCH'],
])

family('strings', (p) => [
  ['SET', `${p}s1`, 'hello'], ['GET', `${p}s1`], ['SET', `${p}s1`, 'world', 'XX'], ['SET', `${p}s1`, 'x', 'NX'], ['GET', `${p}s1`],
  ['SET', `${p}s2`, 'v', 'NX'], ['SET', `${p}s3`, 'v', 'XX'], ['GET', `${p}s3`], ['SET', `${p}s1`, 'new', 'GET'], ['GET', `${p}s1`],
  ['SET', `${p}s1`, 'a', 'EX', '0'], ['SET', `${p}s1`, 'a', 'EX', 'abc'], ['SET', `${p}s1`, 'a', 'NX', 'XX'], ['SET', `${p}s1`, 'a', 'BOGUS'],
  ['SET', `${p}s1`, 'a', 'PX', '100000'], {cmd: ['PTTL', `${p}s1`], norm: 'pttl'}, ['SET', `${p}s1`, 'b', 'KEEPTTL'],
  {cmd: ['TTL', `${p}s1`], norm: 'ttl'}, ['SET', `${p}s1`, 'c'], ['TTL', `${p}s1`], ['SET', `${p}s1`, 'd', 'EX', '100', 'PX', '100'],
  ['SETNX', `${p}s4`, 'a'], ['SETNX', `${p}s4`, 'b'], ['GET', `${p}s4`],
  ['INCR', `${p}n1`], ['INCRBY', `${p}n1`, '10'], ['DECR', `${p}n1`], ['DECRBY', `${p}n1`, '5'], ['INCRBY', `${p}n1`, 'abc'],
  ['INCRBY', `${p}n1`, '-20'], ['GET', `${p}n1`], ['INCR', `${p}s1`], ['SET', `${p}big`, '9223372036854775807'], ['INCR', `${p}big`],
  ['DECRBY', `${p}big`, '-1'], ['SET', `${p}n2`, ' 1'], ['INCR', `${p}n2`], ['SET', `${p}n3`, '007'], ['INCR', `${p}n3`],
  ['SET', `${p}n4`, '-5'], ['INCRBY', `${p}n4`, '5'], ['GET', `${p}n4`],
  ['INCRBYFLOAT', `${p}f1`, '10.5'], ['INCRBYFLOAT', `${p}f1`, '0.1'], ['INCRBYFLOAT', `${p}f2`, '0.1'], ['INCRBYFLOAT', `${p}f2`, '0.2'],
  ['INCRBYFLOAT', `${p}f1`, 'abc'], ['INCRBYFLOAT', `${p}f1`, '5.0e3'], ['INCRBYFLOAT', `${p}f1`, '-5010.6'], ['SET', `${p}f3`, '3'],
  ['INCRBYFLOAT', `${p}f3`, '1.5'], ['INCRBYFLOAT', `${p}s1`, '1'], ['INCRBYFLOAT', `${p}f1`, 'inf'],
  ['INCRBYFLOAT', `${p}f4`, '1e-20'], ['INCRBYFLOAT', `${p}f4`, '123456789.123456789'], ['INCRBYFLOAT', `${p}f4`, '-1.5e300'],
  ['INCRBYFLOAT', `${p}f5`, '-0.0'], ['INCRBYFLOAT', `${p}f5`, '3.3333333333333333333'], ['INCRBYFLOAT', `${p}f5`, '.5'],
  ['APPEND', `${p}a1`, 'hello'], ['APPEND', `${p}a1`, ' world'], ['GET', `${p}a1`], ['STRLEN', `${p}a1`], ['STRLEN', `${p}none`],
  ['GET', `${p}none`], ['GET'], ['SET', `${p}s1`], ['INCR', `${p}a`, 'b'],
  ['SETEX', `${p}e1`, '100', 'v'], {cmd: ['TTL', `${p}e1`], norm: 'ttl'}, ['GET', `${p}e1`], ['SETEX', `${p}e1`, '0', 'v'], ['SETEX', `${p}e1`, 'x', 'v'],
  ['PSETEX', `${p}e2`, '100000', 'w'], {cmd: ['PTTL', `${p}e2`], norm: 'pttl'}, ['PSETEX', `${p}e2`, '-1', 'w'], ['SETEX', `${p}e1`, '10'],
  ['GETSET', `${p}e1`, 'nv'], ['TTL', `${p}e1`], ['GETSET', `${p}gs`, 'first'], ['GET', `${p}gs`],
  ['GETDEL', `${p}gs`], ['GETDEL', `${p}gs`], ['EXISTS', `${p}gs`],
  ['MSET', `${p}m1`, 'a', `${p}m2`, 'b', `${p}m1`, 'c'], ['MGET', `${p}m1`, `${p}m2`, `${p}none`, `${p}m1`], ['MSET', `${p}m1`], ['MGET'],
  ['SET', `${p}r`, 'Hello World'], ['GETRANGE', `${p}r`, '0', '4'], ['GETRANGE', `${p}r`, '-5', '-1'], ['GETRANGE', `${p}r`, '-1', '-5'],
  ['GETRANGE', `${p}r`, '5', '1'], ['GETRANGE', `${p}r`, '0', '100'], ['GETRANGE', `${p}r`, '-100', '2'], ['GETRANGE', `${p}none`, '0', '1'],
  ['GETRANGE', `${p}r`, 'a', '1'], ['SETRANGE', `${p}r`, '6', 'Redis'], ['GET', `${p}r`], ['SETRANGE', `${p}r`, '15', '!'], ['GET', `${p}r`],
  ['SETRANGE', `${p}nr`, '2', 'x'], ['GET', `${p}nr`], ['SETRANGE', `${p}nr2`, '3', ''], ['EXISTS', `${p}nr2`], ['SETRANGE', `${p}r`, '-1', 'x'],
  ['SETRANGE', `${p}r`, '0', ''], ['SETRANGE', `${p}r`, '536870912', 'x'],
  ['HSET', `${p}hh`, 'f', 'v'], ['MGET', `${p}hh`, `${p}r`], ['GETDEL', `${p}hh`], ['GETSET', `${p}hh`, 'x'], ['GETRANGE', `${p}hh`, '0', '1'],
  ['SETRANGE', `${p}hh`, '0', 'x'], ['MSET', `${p}hh`, 'now-a-string'], ['GET', `${p}hh`],
])

family('hashes', (p) => [
  ['HSET', `${p}h`, 'f1', 'v1', 'f2', 'v2'], ['HSET', `${p}h`, 'f1', 'x', 'f3', 'y'], ['HSET', `${p}h`, 'f4', 'a', 'f4', 'b'],
  ['HGET', `${p}h`, 'f1'], ['HGET', `${p}h`, 'f4'], ['HGET', `${p}h`, 'nof'], ['HGET', `${p}none`, 'f'],
  {cmd: ['HGETALL', `${p}h`], norm: 'pairs'}, ['HLEN', `${p}h`], ['HDEL', `${p}h`, 'f1', 'f1', 'nof'], ['HLEN', `${p}h`],
  ['HINCRBY', `${p}h`, 'cnt', '5'], ['HINCRBY', `${p}h`, 'cnt', '-12'], ['HINCRBY', `${p}h`, 'f2', '1'], ['HINCRBY', `${p}h`, 'cnt', 'x'],
  ['HINCRBY', `${p}h2`, 'c', '1'], ['HDEL', `${p}h`, 'f2', 'f3', 'cnt', 'f4'], ['EXISTS', `${p}h`], ['HLEN', `${p}h`], ['HDEL', `${p}h`, 'x'],
  ['HSET', `${p}h`, 'a'], ['HSET', `${p}h`, 'a', 'b', 'c'], ['HGETALL', `${p}none`], ['HLEN', `${p}none`],
  ['HMSET', `${p}m`, 'a', '1', 'b', '2', 'a', '3'], ['HMGET', `${p}m`, 'a', 'nof', 'b', 'a'], ['HMGET', `${p}none`, 'a', 'b'],
  ['HMSET', `${p}m`, 'a'], ['HMGET', `${p}m`], ['HEXISTS', `${p}m`, 'a'], ['HEXISTS', `${p}m`, 'z'], ['HEXISTS', `${p}none`, 'a'],
  {cmd: ['HKEYS', `${p}m`], norm: 'set'}, {cmd: ['HVALS', `${p}m`], norm: 'set'}, ['HKEYS', `${p}none`], ['HVALS', `${p}none`],
  ['HSETNX', `${p}m`, 'a', 'x'], ['HSETNX', `${p}m`, 'c', 'new'], ['HGET', `${p}m`, 'c'], ['HSETNX', `${p}n2`, 'f', 'v'], ['HLEN', `${p}n2`],
  ['HSTRLEN', `${p}m`, 'c'], ['HSTRLEN', `${p}m`, 'nof'], ['HSTRLEN', `${p}none`, 'f'],
  ['HINCRBYFLOAT', `${p}m`, 'fl', '10.5'], ['HINCRBYFLOAT', `${p}m`, 'fl', '0.1'], ['HINCRBYFLOAT', `${p}m`, 'fl', '-5.0e3'],
  ['HINCRBYFLOAT', `${p}m`, 'c', '1'], ['HINCRBYFLOAT', `${p}m`, 'a', 'abc'], ['HINCRBYFLOAT', `${p}m`, 'a', '1.5'], ['HGET', `${p}m`, 'a'],
  ['HINCRBYFLOAT', `${p}nf`, 'f', 'abc'], ['EXISTS', `${p}nf`], ['HINCRBYFLOAT', `${p}m`, 'fl', 'inf'],
  ['SET', `${p}str`, 'x'], ['HMGET', `${p}str`, 'a'], ['HEXISTS', `${p}str`, 'a'], ['HKEYS', `${p}str`], ['HVALS', `${p}str`],
  ['HSETNX', `${p}str`, 'a', 'b'], ['HSTRLEN', `${p}str`, 'a'], ['HINCRBYFLOAT', `${p}str`, 'a', '1'], ['HMSET', `${p}str`, 'a', 'b'],
])

family('sets', (p) => [
  ['SADD', `${p}s`, 'a', 'b', 'c', 'a'], ['SADD', `${p}s`, 'c', 'd'], {cmd: ['SMEMBERS', `${p}s`], norm: 'set'}, ['SCARD', `${p}s`],
  ['SISMEMBER', `${p}s`, 'a'], ['SISMEMBER', `${p}s`, 'z'], ['SISMEMBER', `${p}none`, 'a'], ['SREM', `${p}s`, 'a', 'z', 'a'],
  ['SCARD', `${p}s`], ['SREM', `${p}s`, 'b', 'c', 'd'], ['EXISTS', `${p}s`], ['SMEMBERS', `${p}none`], ['SCARD', `${p}none`],
  ['SREM', `${p}none`, 'a'], ['SADD', `${p}s`],
])

family('zsets', (p) => [
  ['ZADD', `${p}z`, '1', 'a', '2', 'b', '3', 'c'], ['ZADD', `${p}z`, '1.5', 'a'], ['ZADD', `${p}z`, 'CH', '2', 'a', '5', 'd'],
  ['ZADD', `${p}z`, 'NX', '10', 'a', '6', 'e'], ['ZADD', `${p}z`, 'XX', '7', 'e', '8', 'f'], ['ZADD', `${p}z`, 'GT', '1', 'a'],
  ['ZADD', `${p}z`, 'LT', 'CH', '1', 'a'], ['ZADD', `${p}z`, 'INCR', '2.5', 'b'], ['ZADD', `${p}z`, 'INCR', 'NX', '1', 'b'],
  ['ZADD', `${p}z`, 'INCR', '1', 'a', '2', 'b'], ['ZADD', `${p}z`, 'NX', 'XX', '1', 'a'], ['ZADD', `${p}z`, 'GT', 'LT', '1', 'a'],
  ['ZADD', `${p}z`, 'abc', 'a'], ['ZADD', `${p}z`, '1'], ['ZSCORE', `${p}z`, 'a'], ['ZSCORE', `${p}z`, 'nope'], ['ZSCORE', `${p}none`, 'a'],
  ['ZCARD', `${p}z`], ['ZRANGE', `${p}z`, '0', '-1'], ['ZRANGE', `${p}z`, '0', '-1', 'WITHSCORES'], ['ZRANGE', `${p}z`, '-2', '-1'],
  ['ZRANGE', `${p}z`, '5', '10'], ['ZRANGE', `${p}z`, '(1', '5', 'BYSCORE'], ['ZRANGE', `${p}z`, '-inf', '+inf', 'BYSCORE', 'WITHSCORES'],
  ['ZRANGE', `${p}z`, '5', '(1', 'BYSCORE', 'REV'], ['ZRANGE', `${p}z`, '0', '-1', 'REV'], ['ZRANGE', `${p}z`, '-inf', '+inf', 'BYSCORE', 'LIMIT', '1', '2'],
  ['ZRANGE', `${p}z`, '0', '-1', 'LIMIT', '0', '1'], ['ZRANGE', `${p}z`, 'a', 'b', 'BYSCORE'], ['ZRANGE', `${p}z`, 'x', '1'],
  ['ZADD', `${p}z`, '-inf', 'm1', '+inf', 'm2', '0.1', 'dec', '-0', 'zero'], ['ZRANGE', `${p}z`, '0', '-1', 'WITHSCORES'], ['ZSCORE', `${p}z`, 'dec'],
  ['ZADD', `${p}z`, '2', 'tie1', '2', 'tie0'], ['ZRANGE', `${p}z`, '2', '2', 'BYSCORE'],
  ['ZREM', `${p}z`, 'a', 'nope'], ['ZCARD', `${p}z`], ['ZADD', `${p}zx`, 'XX', '1', 'a'], ['EXISTS', `${p}zx`], ['ZRANGE', `${p}none`, '0', '-1'],
  ['ZREM', `${p}z`, 'b', 'c', 'd', 'e', 'm1', 'm2', 'dec', 'zero', 'tie1', 'tie0'], ['EXISTS', `${p}z`],
])

family('lists', (p) => [
  ['RPUSH', `${p}l`, 'a', 'b', 'c'], ['LPUSH', `${p}l`, 'x', 'y'], ['LRANGE', `${p}l`, '0', '-1'], ['LRANGE', `${p}l`, '1', '2'],
  ['LRANGE', `${p}l`, '-2', '-1'], ['LRANGE', `${p}l`, '5', '10'], ['LRANGE', `${p}l`, '-100', '100'], ['LRANGE', `${p}l`, '3', '1'], ['LLEN', `${p}l`],
  ['LPOP', `${p}l`], ['RPOP', `${p}l`], ['LPOP', `${p}l`, '2'], ['RPOP', `${p}l`, '5'], ['LPOP', `${p}l`], ['LLEN', `${p}l`], ['EXISTS', `${p}l`],
  ['LPOP', `${p}none`], ['LPOP', `${p}none`, '2'], ['RPUSH', `${p}l2`, 'a'], ['LPOP', `${p}l2`, '0'], ['LPOP', `${p}l2`, '-1'],
  ['LRANGE', `${p}l2`, 'a', 'b'], ['LRANGE', `${p}none`, '0', '-1'], ['LLEN', `${p}none`], ['RPUSH', `${p}l2`],
])

family('generic', (p) => [
  ['SET', `${p}g1`, 'v'], ['HSET', `${p}g2`, 'f', 'v'], ['DEL', `${p}g1`, `${p}g2`, `${p}g3`, `${p}g1`], ['EXISTS', `${p}g1`, `${p}g2`],
  ['SET', `${p}g1`, 'v'], ['EXISTS', `${p}g1`, `${p}g1`, `${p}none`], ['TYPE', `${p}g1`], ['TYPE', `${p}none`],
  ['EXPIRE', `${p}g1`, '100'], {cmd: ['TTL', `${p}g1`], norm: 'ttl'}, {cmd: ['PTTL', `${p}g1`], norm: 'pttl'}, ['PERSIST', `${p}g1`],
  ['TTL', `${p}g1`], ['PERSIST', `${p}g1`], ['EXPIRE', `${p}none`, '10'], ['TTL', `${p}none`], ['PTTL', `${p}none`],
  ['EXPIRE', `${p}g1`, '100', 'NX'], ['EXPIRE', `${p}g1`, '200', 'NX'], ['EXPIRE', `${p}g1`, '50', 'GT'], ['EXPIRE', `${p}g1`, '300', 'GT'],
  ['EXPIRE', `${p}g1`, '100', 'LT'], {cmd: ['TTL', `${p}g1`], norm: 'ttl'}, ['EXPIRE', `${p}g1`, '100', 'NX', 'XX'], ['EXPIRE', `${p}g1`, 'abc'],
  ['PEXPIRE', `${p}g1`, '100000'], {cmd: ['PTTL', `${p}g1`], norm: 'pttl'}, ['EXPIRE', `${p}g1`, '0'], ['EXISTS', `${p}g1`],
  ['SET', `${p}g1`, 'v'], ['EXPIRE', `${p}g1`, '-5'], ['GET', `${p}g1`], ['PERSIST', `${p}none`],
  ['SET', `${p}w`, 'v'], ['HGET', `${p}w`, 'f'], ['HSET', `${p}w`, 'f', 'v'], ['SADD', `${p}w`, 'm'], ['ZADD', `${p}w`, '1', 'm'],
  ['LPUSH', `${p}w`, 'x'], ['LRANGE', `${p}w`, '0', '-1'], ['SMEMBERS', `${p}w`], ['HGETALL', `${p}w`], ['ZRANGE', `${p}w`, '0', '-1'],
  ['ZSCORE', `${p}w`, 'm'], ['HLEN', `${p}w`], ['SCARD', `${p}w`], ['LLEN', `${p}w`], ['ZCARD', `${p}w`], ['SISMEMBER', `${p}w`, 'm'],
  ['HINCRBY', `${p}w`, 'f', '1'], ['LPOP', `${p}w`], ['SREM', `${p}w`, 'm'], ['ZREM', `${p}w`, 'm'], ['HDEL', `${p}w`, 'f'],
  ['HSET', `${p}wh`, 'f', 'v'], ['GET', `${p}wh`], ['INCR', `${p}wh`], ['INCRBYFLOAT', `${p}wh`, '1'], ['APPEND', `${p}wh`, 'x'],
  ['STRLEN', `${p}wh`], ['SET', `${p}wh`, 'x', 'GET'], ['SETNX', `${p}wh`, 'x'], ['SET', `${p}wh`, 's'], ['GET', `${p}wh`], ['TYPE', `${p}wh`],
  ['HGETALL', `${p}wh`], ['FOOBAR', 'a', 'b'], ['EXPIRE', `${p}wh`],
])

const bin = (...bytes: number[]) => Buffer.from(bytes)
const ALL_BYTES = Buffer.from(Array.from({length: 256}, (_, i) => i))

family('binary', (p) => {
  const k = (s: string) => Buffer.concat([Buffer.from(p), bin(0, 1, 0xff, 13, 10), Buffer.from(s), bin(0x80, 0xc3)])
  return [
    ['SET', k('s'), ALL_BYTES], ['GET', k('s')], ['APPEND', k('s'), bin(0, 0xff, 0)], ['STRLEN', k('s')], ['GET', k('s')],
    ['HSET', k('h'), bin(0, 0xfe), ALL_BYTES, bin(0xff), bin(0)], {cmd: ['HGETALL', k('h')], norm: 'pairs'}, ['HGET', k('h'), bin(0xff)],
    ['SADD', k('set'), bin(0), bin(0, 0), bin(0xff, 0xfe), ALL_BYTES], {cmd: ['SMEMBERS', k('set')], norm: 'set'}, ['SISMEMBER', k('set'), bin(0, 0)],
    ['ZADD', k('z'), '1', bin(0xff), '1', bin(0), '1', bin(0x7f), '0', ALL_BYTES], ['ZRANGE', k('z'), '0', '-1', 'WITHSCORES'],
    ['RPUSH', k('l'), bin(0), ALL_BYTES, bin(13, 10)], ['LRANGE', k('l'), '0', '-1'], ['TYPE', k('l')], ['EXISTS', k('s'), k('h'), k('l')],
    ['DEL', k('s'), k('h')], ['EXISTS', k('s'), k('h'), k('l')],
  ]
})

describe('TTL expiry', () => {
  for (const kind of KINDS) {
    test(kind, async () => {
      const s = stores[kind]
      const p = `ttl:${kind}:`
      await s.command('SET', `${p}s`, 'v', 'PX', '700')
      await s.command('HSET', `${p}h`, 'f', 'v')
      await s.command('PEXPIRE', `${p}h`, '700')
      await s.command('RPUSH', `${p}l`, 'a', 'b')
      await s.command('PEXPIRE', `${p}l`, '700')
      await s.command('SET', `${p}keep`, 'v', 'EX', '100')
      assert.deepEqual(await s.command('GET', `${p}s`), {type: 'bulk', value: Buffer.from('v')})
      await new Promise((r) => setTimeout(r, 800))
      assert.deepEqual(await s.command('GET', `${p}s`), {type: 'bulk', value: null})
      assert.deepEqual(await s.command('EXISTS', `${p}s`, `${p}h`, `${p}l`, `${p}keep`), {type: 'integer', value: 1})
      assert.deepEqual(await s.command('TTL', `${p}h`), {type: 'integer', value: -2})
      assert.deepEqual(await s.command('HGETALL', `${p}h`), {type: 'array', value: []})
      assert.deepEqual(await s.command('LRANGE', `${p}l`, '0', '-1'), {type: 'array', value: []})
      assert.deepEqual(await s.command('TYPE', `${p}l`), {type: 'simple', value: 'none'})
      assert.equal(await s.readKey(Buffer.from(`${p}s`)), null)
      // An expired key is absent for writers too: RPUSH starts a new list, SET NX succeeds, no TTL carried over.
      assert.deepEqual(await s.command('RPUSH', `${p}l`, 'c'), {type: 'integer', value: 1})
      assert.deepEqual(await s.command('TTL', `${p}l`), {type: 'integer', value: -1})
      assert.deepEqual(await s.command('SET', `${p}s`, 'w', 'NX'), {type: 'simple', value: 'OK'})
      if (s instanceof SqlStore) {
        // The reaper removes the rows of expired keys in the background.
        await s.command('SET', `${p}gone`, 'v', 'PX', '50')
        await s.command('SADD', `${p}gone2`, 'a', 'b')
        await s.command('PEXPIRE', `${p}gone2`, '50')
        const rowsOf = async (k: string) => {
          const q = s.kind === 'mysql' ? 'SELECT (SELECT COUNT(*) FROM rstore_keys WHERE k = ?) + (SELECT COUNT(*) FROM rstore_set WHERE k = ?) + (SELECT COUNT(*) FROM rstore_strings WHERE k = ?) AS n' : 'SELECT (SELECT COUNT(*) FROM rstore_keys WHERE k = ?) + (SELECT COUNT(*) FROM rstore_set WHERE k = ?) + (SELECT COUNT(*) FROM rstore_strings WHERE k = ?) AS n'
          const b = Buffer.from(k)
          return Number((await s.db.query(q, [b, b, b])).rows[0].n)
        }
        assert.ok((await rowsOf(`${p}gone2`)) > 0)
        const deadline = Date.now() + 5000
        while (((await rowsOf(`${p}gone`)) > 0 || (await rowsOf(`${p}gone2`)) > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
        assert.equal(await rowsOf(`${p}gone`), 0)
        assert.equal(await rowsOf(`${p}gone2`), 0)
      }
    })
  }
})

describe('concurrent writes from many connections sum correctly', () => {
  for (const kind of KINDS) {
    test(kind, async () => {
      // A second store object = a second pool, as another proxy process would have.
      const other = await openStore(kind === 'redis' ? `redis://127.0.0.1:${redis.port}/1` : `${kind === 'mysql' ? maria.url : postgres.url}?maxOpen=16`, {reapIntervalMs: 0})
      try {
        const p = `conc:${kind}:`
        const n = 400
        const ops: Promise<Reply>[] = []
        for (let i = 0; i < n; i++) {
          const s = i % 2 ? stores[kind] : other
          ops.push(s.command('INCR', `${p}fresh`)) // created concurrently
          ops.push(s.command('INCRBY', `${p}n`, '3'))
          ops.push(s.command('HINCRBY', `${p}h`, 'f', '2'))
          ops.push(s.command('RPUSH', `${p}l`, String(i)))
          ops.push(s.command('SADD', `${p}s`, String(i % 100)))
          ops.push(s.command('APPEND', `${p}a`, 'x'))
        }
        const replies = await Promise.all(ops)
        for (const r of replies) assert.notEqual(r.type, 'error', formatReply(r))
        const s = stores[kind]
        assert.deepEqual(await s.command('GET', `${p}fresh`), {type: 'bulk', value: Buffer.from(String(n))})
        assert.deepEqual(await s.command('GET', `${p}n`), {type: 'bulk', value: Buffer.from(String(3 * n))})
        assert.deepEqual(await s.command('HGET', `${p}h`, 'f'), {type: 'bulk', value: Buffer.from(String(2 * n))})
        assert.deepEqual(await s.command('LLEN', `${p}l`), {type: 'integer', value: n})
        assert.deepEqual(await s.command('SCARD', `${p}s`), {type: 'integer', value: 100})
        assert.deepEqual(await s.command('STRLEN', `${p}a`), {type: 'integer', value: n})
        // Every INCR reply is distinct: each saw the previous one's result.
        const incrs = replies.filter((_, i) => i % 6 === 0).map((r) => Number(r.value)).sort((a, b) => a - b)
        assert.deepEqual(incrs, Array.from({length: n}, (_, i) => i + 1))
        const added = replies.filter((_, i) => i % 6 === 4).reduce((a, r) => a + Number(r.value), 0)
        assert.equal(added, 100)
      } finally {
        await other.close()
      }
    })
  }
})

function sortSnap(s: KeySnapshot | null): unknown {
  if (!s) return null
  const v = s.type === 'set' ? [...s.value].sort(Buffer.compare) : s.type === 'hash' ? [...s.value].sort((a, b) => Buffer.compare(a[0], b[0])) : s.value
  return {type: s.type, value: v, ttl: s.pttl === -1 ? -1 : Math.round(s.pttl / 10000)}
}

describe('whole-key copies: readKey, writeKeyIfAbsent, writeKey, scan', () => {
  for (const kind of KINDS) {
    test(kind, async () => {
      const s = stores[kind]
      const p = `copy:${kind}:`
      const k = (x: string) => Buffer.from(p + x)
      const snaps: [Buffer, KeySnapshot][] = [
        [k('str'), {type: 'string', value: ALL_BYTES, pttl: -1}],
        [k('hash'), {type: 'hash', value: [[bin(0), bin(1)], [Buffer.from('f'), ALL_BYTES]], pttl: 60000}],
        [k('set'), {type: 'set', value: [bin(0xff), Buffer.from('m')], pttl: -1}],
        [k('list'), {type: 'list', value: [Buffer.from('b'), Buffer.from('a'), Buffer.from('b')], pttl: 90000}],
        [k('zset'), {type: 'zset', value: [[Buffer.from('lo'), -Infinity], [Buffer.from('mid'), 0.1], [Buffer.from('hi'), Infinity]], pttl: -1}],
      ]
      const written = await s.writeKeysIfAbsent(snaps.map(([key, snap]) => ({key, snap})))
      assert.deepEqual(written, [true, true, true, true, true])
      const read = await s.readKeys(snaps.map(([key]) => key))
      assert.deepEqual(read.map(sortSnap), snaps.map(([, snap]) => sortSnap(snap)))
      assert.deepEqual(await s.command('LRANGE', k('list'), '0', '-1'), {type: 'array', value: ['b', 'a', 'b'].map((x) => ({type: 'bulk', value: Buffer.from(x)}))})
      // Present keys are never overwritten, whatever their type.
      await s.command('SET', k('present'), 'mine')
      assert.deepEqual(await s.writeKeysIfAbsent([
        {key: k('present'), snap: {type: 'hash', value: [[bin(1), bin(2)]], pttl: -1}},
        {key: k('str'), snap: {type: 'string', value: bin(9), pttl: -1}},
        {key: k('new'), snap: {type: 'string', value: bin(9), pttl: 5000}},
      ]), [false, false, true])
      assert.deepEqual(await s.command('GET', k('present')), {type: 'bulk', value: Buffer.from('mine')})
      // An expired key counts as absent.
      await s.command('SET', k('exp'), 'old', 'PX', '30')
      await new Promise((r) => setTimeout(r, 60))
      assert.equal(await s.writeKeyIfAbsent(k('exp'), {type: 'set', value: [bin(1)], pttl: -1}), true)
      assert.deepEqual(await s.command('TYPE', k('exp')), {type: 'simple', value: 'set'})
      // writeKey replaces.
      await s.writeKey(k('present'), {type: 'list', value: [bin(7)], pttl: 30000})
      assert.deepEqual(sortSnap(await s.readKey(k('present'))), sortSnap({type: 'list', value: [bin(7)], pttl: 30000}))
      // scan with a pattern finds exactly these keys.
      const found: string[] = []
      let cursor = '0'
      do {
        const page = await s.scan(cursor, `${p}*`, 3)
        found.push(...page.keys.map((x) => x.toString('latin1')))
        cursor = page.cursor
      } while (cursor !== '0')
      assert.deepEqual([...new Set(found)].sort(), ['exp', 'hash', 'list', 'new', 'present', 'set', 'str', 'zset'].map((x) => p + x).sort())
    })
  }
})

describe('deleteIfSame and existing: undo a copy only while the key still holds it', () => {
  for (const kind of KINDS) {
    test(kind, async () => {
      const s = stores[kind]
      const k = (x: string) => Buffer.from(`undo:${kind}:${x}`)
      // The source's snapshot, as backfill reads it (with the DUMP payload when the target is Redis).
      await reference.command('HSET', k('h'), 'f', 'v', 'g', ALL_BYTES)
      await reference.command('PEXPIRE', k('h'), '60000')
      const snap = (await reference.readKey(k('h'), {dump: kind === 'redis'}))!
      assert.equal(await s.writeKeyIfAbsent(k('h'), snap), true)
      assert.equal(await s.deleteIfSame(k('h'), snap), true)
      assert.equal(await s.readKey(k('h')), null)
      // changed since the copy (a newer write landed): kept
      assert.equal(await s.writeKeyIfAbsent(k('h'), snap), true)
      await s.command('HSET', k('h'), 'f', 'newer')
      assert.equal(await s.deleteIfSame(k('h'), snap), false)
      assert.equal(formatReply(await s.command('HGET', k('h'), 'f')), '"newer"')
      // another type under the key, or no key: kept / nothing to do
      await s.command('DEL', k('h'))
      await s.command('SET', k('h'), 'v')
      assert.equal(await s.deleteIfSame(k('h'), snap), false)
      assert.equal(await s.deleteIfSame(k('absent'), snap), false)
      // large (not listpack-encoded) sets and zsets, whose element order is not kept by a copy
      const members = Array.from({length: 300}, (_, i) => `m${i}`)
      await reference.command('SADD', k('s'), ...members)
      await reference.command('ZADD', k('z'), ...members.flatMap((m, i) => [i === 0 ? '+inf' : String(i / 10), m]))
      for (const key of [k('s'), k('z')]) {
        const whole = (await reference.readKey(key, {dump: kind === 'redis'}))!
        assert.equal(await s.writeKeyIfAbsent(key, whole), true)
        assert.equal(await s.deleteIfSame(key, whole), true, `${key} equal after the copy`)
        assert.equal(await s.readKey(key), null)
      }
      // existing(): what backfill asks of the source after a copy
      await s.command('SET', k('gone'), 'x', 'PX', '20')
      await new Promise((r) => setTimeout(r, 40))
      assert.deepEqual(await s.existing([k('h'), k('absent'), k('gone'), k('h')]), [true, false, false, true])
    })
  }
})

describe('opening stores', () => {
  test('a table of the wrong shape is refused at open, and nothing is created', async () => {
    await maria.sql('CREATE TABLE rstore.bad_strings (k INT PRIMARY KEY, val TEXT)')
    await postgres.sql('CREATE TABLE bad_hash (k BYTEA, f BYTEA)')
    await assert.rejects(openStore(`${maria.url}?prefix=bad_`), /table bad_strings has the wrong shape \(k int, val text\)/)
    await assert.rejects(openStore(`${postgres.url}?prefix=bad_`), /table bad_hash has the wrong shape/)
    assert.deepEqual(await maria.sql(`SHOW TABLES FROM rstore LIKE 'bad_%'`), [{'Tables_in_rstore (bad_%)': 'bad_strings'}])
    assert.equal((await postgres.sql(`SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'bad_%'`)).rowCount, 1)
  })

  test('bad URLs and unreachable servers are clear errors', async () => {
    assert.throws(() => parseStoreUrl('nonsense'), /bad store URL 'nonsense'/)
    assert.throws(() => parseStoreUrl('oracle://h/db'), /unknown scheme 'oracle'/)
    assert.throws(() => parseStoreUrl('mysql://h:3306'), /name the database/)
    assert.throws(() => parseStoreUrl('mysql://h/db?maxOpen=x'), /maxOpen must be a whole number/)
    await assert.rejects(openStore('mysql://u:p@127.0.0.1:1/db'), /cannot reach mysql at 127.0.0.1:1/)
    await assert.rejects(openStore('postgres://u:p@127.0.0.1:1/db'), /cannot reach postgres at 127.0.0.1:1/)
    await assert.rejects(RedisStore.open({...parseStoreUrl('redis://127.0.0.1:1')}), /cannot reach redis at 127.0.0.1:1/)
    await assert.rejects(openStore(maria.url.replace(/\/rstore$/, '/nodb')), /database 'nodb' does not exist/)
  })

  test('pool settings come from the URL', () => {
    const u = parseStoreUrl('postgres://a:b@h:5/db?maxIdle=2&maxOpen=3&maxLifetime=4')
    assert.deepEqual(u.pool, {maxIdle: 2, maxOpen: 3, maxLifetime: 4})
    assert.equal(u.display, 'postgres://a@h:5/db')
  })
})
