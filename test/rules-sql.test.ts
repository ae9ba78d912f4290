// Db groups on MariaDB and PostgreSQL through the key stores: writeall over two databases, reads,
// non-idempotent commands, a Redis cache in front of SQL, unsupported commands answered with -ERR.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {formatReply} from '../src/backends/reply.js'
import {lookupCommand} from '../src/resp/commands.js'
import {DbGroupExecutor} from '../src/proxy/dbgroup-exec.js'
import {RuleRouter} from '../src/proxy/rule-route.js'
import type {RulesConfig} from '../src/topology/rules.js'
import {startMariaDb, type MariaDbServer} from './harness/mariadb.js'
import {startPostgres, type PostgresServer} from './harness/postgres.js'
import {startRedis, type RedisServer} from './harness/redis.js'
import {startAll} from './harness/process.js'

let my: MariaDbServer
let pg: PostgresServer
let cache: RedisServer
let exec: DbGroupExecutor
let my2: string

before(async () => {
  ;[my, pg, cache] = await startAll([startMariaDb(), startPostgres(), startRedis()] as const)
  my2 = await my.createDatabase('second')
  const cfg = {
    dbunits: [
      {name: 'my1', type: 'mysql', url: my.url, maxOpen: 4},
      {name: 'my2', type: 'mysql', url: my2, maxOpen: 4},
      {name: 'pg', type: 'postgres', url: pg.url},
      {name: 'cache', type: 'redis', server: cache.addr},
    ],
    dbgroups: [
      {name: 'gm', type: 'mysql', replicateMode: 'writeall', items: [{name: 'my1', isMaster: true, readWeight: 1}, {name: 'my2', isMaster: true, readWeight: 1}]},
      {name: 'gp', type: 'postgres', replicateMode: 'writeone', items: [{name: 'pg', isMaster: true, readWeight: 1}], cache: 'cache'},
    ],
    shards: [
      {name: 's', shardType: 'range', shardMap: [{refType: 'dbgroup', refName: 'gm', shardStr: '0-100'}, {refType: 'dbgroup', refName: 'gp', shardStr: '100-200'}]},
    ],
    rules: [{name: 'u', order: 1, regexp: 'u:(\\d+):.*', hashSlot: 1, shardName: 's', example: 'u:1:x'}],
  } as unknown as RulesConfig
  exec = new DbGroupExecutor(RuleRouter.fromConfig(cfg), {cacheTtlMs: 20_000})
})
after(async () => {
  await exec?.close()
  await Promise.all([my?.stop(), pg?.stop(), cache?.stop()])
})

async function run(...argv: (string | number)[]): Promise<string> {
  const args = argv.map((a) => Buffer.from(String(a)))
  const spec = lookupCommand(String(argv[0]).toLowerCase())!
  const route = exec.router.route(args[spec.firstKey]!)
  if (route.kind !== 'dbgroup') throw new Error(`not routed: ${JSON.stringify(route)}`)
  return formatReply(await exec.execute(route, spec.write, args, args[spec.firstKey]))
}

describe('db groups on SQL', () => {
  test('mysql writeall: both databases written, replies as Redis', async () => {
    assert.equal(await run('SET', 'u:1:s', 'v'), '+OK')
    assert.equal(await run('INCR', 'u:2:n'), ':1')
    assert.equal(await run('INCRBY', 'u:2:n', 5), ':6')
    assert.equal(await run('HINCRBY', 'u:3:h', 'f', 2), ':2')
    assert.equal(await run('RPUSH', 'u:4:l', 'a', 'b'), ':2')
    for (let i = 0; i < 10; i++) {
      assert.equal(await run('GET', 'u:2:n'), '"6"') // either member answers the same
      assert.equal(await run('LRANGE', 'u:4:l', 0, -1), '["a", "b"]')
    }
    const {openStore} = await import('../src/backends/index.js')
    for (const url of [my.url, my2]) {
      const s = await openStore(url)
      assert.equal(formatReply(await s.command('GET', 'u:2:n')), '"6"')
      assert.equal(formatReply(await s.command('HGET', 'u:3:h', 'f')), '"2"')
      await s.close()
    }
  })

  test('postgres with a redis cache: miss, hit, invalidate', async () => {
    const c = cache.client()
    assert.equal(await run('HSET', 'u:150:h', 'a', '1', 'b', '2'), ':2')
    assert.equal(await run('HGET', 'u:150:h', 'a'), '"1"')
    assert.equal(await c.hget('u:150:h', 'b'), '2') // the whole key was cached
    assert.equal(await run('HINCRBY', 'u:150:h', 'a', 10), ':11')
    assert.equal(await c.exists('u:150:h'), 0)
    assert.equal(await run('HGET', 'u:150:h', 'a'), '"11"')
    assert.equal(await run('GET', 'u:199:none'), '(nil)')
  })

  test('unsupported commands on SQL answer a clear -ERR', async () => {
    assert.match(await run('SETRANGE', 'u:5:x', 0, 'abc').catch((e: Error) => `-${e.message}`), /^(-ERR|:)/)
    assert.match(await run('OBJECT', 'ENCODING', 'u:5:x').catch((e: Error) => `-${e.message}`), /^-ERR/)
  })
})
