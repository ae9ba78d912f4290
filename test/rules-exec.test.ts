// RuleRouter + DbGroupExecutor against real redis-servers: replicate modes, read weights, the
// read-through cache, split commands, unregistered keys, config edits applied live.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {join} from 'node:path'
import {formatReply, type Reply} from '../src/backends/reply.js'
import {addConfig, updateConfig} from '../src/service/rules-config.js'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {TopologyStore} from '../src/coord/topology-store.js'
import {lookupCommand} from '../src/resp/commands.js'
import {DbGroupExecutor, dispatchByRule} from '../src/proxy/dbgroup-exec.js'
import {KEY_NOT_REGISTERED, RuleRouter} from '../src/proxy/rule-route.js'
import type {ReplySlot, Session} from '../src/proxy/session.js'
import type {RulesConfig} from '../src/topology/rules.js'
import {removeDir, tempDir} from './harness/process.js'
import {startRedis, type RedisServer} from './harness/redis.js'

let servers: RedisServer[] = []
const [M1, M2, S1, CACHE] = [0, 1, 2, 3]

before(async () => {
  servers = await Promise.all([0, 1, 2, 3].map(() => startRedis()))
})
after(async () => {
  await Promise.all(servers.map((s) => s.stop()))
})

function config(mode: string, extra: Partial<RulesConfig> = {}): RulesConfig {
  const u = (name: string, i: number) => ({name, type: 'redis', server: '127.0.0.1', port: servers[i]!.port})
  return {
    dbunits: [u('m1', M1), u('m2', M2), u('s1', S1), u('cache', CACHE)],
    dbgroups: [
      {name: 'g', type: 'redis', replicateMode: mode, items: [{name: 'm1', isMaster: true, readWeight: 1}, {name: 'm2', isMaster: true, readWeight: 0}, {name: 's1', isMaster: false, readWeight: 3}]},
      {name: 'gc', type: 'redis', replicateMode: 'writeone', items: [{name: 'm2', isMaster: true, readWeight: 1}], cache: 'cache'},
    ],
    shards: [
      {name: 'sg', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'g'}]},
      {name: 'sc', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'gc'}]},
    ],
    rules: [
      {name: 'a', order: 1, regexp: 'a:.*', hashSlot: 0, shardName: 'sg', example: 'a:1'},
      {name: 'c', order: 2, regexp: 'c:.*', hashSlot: 0, shardName: 'sc', example: 'c:1'},
    ],
    ...extra,
  } as unknown as RulesConfig
}

const b = (...a: (string | number)[]) => a.map((x) => Buffer.from(String(x)))

async function run(exec: DbGroupExecutor, ...argv: (string | number)[]): Promise<string> {
  const args = b(...argv)
  const spec = lookupCommand(String(argv[0]).toLowerCase())!
  const route = exec.router.route(args[spec.firstKey]!)
  assert.equal(route.kind, 'dbgroup')
  if (route.kind !== 'dbgroup') throw new Error('unreachable')
  return formatReply(await exec.execute(route, spec.write, args, args[spec.firstKey]))
}

/** A stand-in session: records filled replies in order; holds like the real one. */
class FakeSession {
  held: unknown[] | null = null
  replies: (Buffer | null)[] = []
  slots: ReplySlot[] = []
  reserve(): ReplySlot {
    const s = {data: null, started: 0, command: ''} as ReplySlot
    this.slots.push(s)
    return s
  }
  fill(slot: ReplySlot, data: Buffer): void {
    slot.data = data
  }
  release(): void {
    this.held = null
  }
}

async function viaDispatch(exec: DbGroupExecutor, ...argv: (string | number)[]): Promise<string | false> {
  const s = new FakeSession()
  const args = b(...argv)
  const slot = s.reserve()
  const handled = dispatchByRule(exec, s as unknown as Session, lookupCommand(String(argv[0]).toLowerCase())!, args, slot)
  if (!handled) return false
  const t0 = Date.now()
  while (slot.data === null && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 2))
  return slot.data!.toString().replace(/\r\n$/, '')
}

describe('db group executor (redis)', () => {
  test('writeall writes every enabled master; reads by weight never hit weight 0', async () => {
    const exec = new DbGroupExecutor(RuleRouter.fromConfig(config('writeall')))
    try {
      assert.equal(await run(exec, 'SET', 'a:k1', 'v'), '+OK')
      assert.equal(await servers[M1]!.client().get('a:k1'), 'v')
      assert.equal(await servers[M2]!.client().get('a:k1'), 'v')
      assert.equal(await servers[S1]!.client().get('a:k1'), null) // a slave is not written
      assert.equal(await run(exec, 'INCR', 'a:n'), ':1')
      assert.equal(await servers[M2]!.client().get('a:n'), '1')
      // reads: m1 weight 1, s1 weight 3, m2 weight 0 -> tag each copy differently
      await servers[M1]!.client().set('a:w', 'm1')
      await servers[M2]!.client().set('a:w', 'm2')
      await servers[S1]!.client().set('a:w', 's1')
      const counts: Record<string, number> = {}
      for (let i = 0; i < 2000; i++) {
        const r = await run(exec, 'GET', 'a:w')
        counts[r] = (counts[r] ?? 0) + 1
      }
      assert.equal(counts['"m2"'], undefined, JSON.stringify(counts))
      assert.ok(Math.abs(counts['"s1"']! / 2000 - 0.75) < 0.05, JSON.stringify(counts))
    } finally {
      await exec.close()
    }
  })

  test('writeone writes only the first enabled master; discard refuses writes', async () => {
    const exec = new DbGroupExecutor(RuleRouter.fromConfig(config('writeone')))
    try {
      assert.equal(await run(exec, 'SET', 'a:one', 'x'), '+OK')
      assert.equal(await servers[M1]!.client().get('a:one'), 'x')
      assert.equal(await servers[M2]!.client().get('a:one'), null)
      const cfg = config('writeone')
      ;(cfg.dbunits[0] as {enable: boolean}).enable = false
      exec.setRouter(RuleRouter.fromConfig(cfg))
      assert.equal(await run(exec, 'SET', 'a:one2', 'y'), '+OK')
      assert.equal(await servers[M2]!.client().get('a:one2'), 'y')
      exec.setRouter(RuleRouter.fromConfig(config('discard')))
      assert.match(await run(exec, 'SET', 'a:d', 'z'), /^-ERR db group g discards writes/)
      assert.equal(await servers[M1]!.client().get('a:d'), null)
    } finally {
      await exec.close()
    }
  })

  test('cache: miss fills, hit answers from the cache, a write invalidates', async () => {
    const exec = new DbGroupExecutor(RuleRouter.fromConfig(config('writeall')), {cacheTtlMs: 30_000})
    const cache = servers[CACHE]!.client()
    const member = servers[M2]!.client()
    try {
      assert.equal(await run(exec, 'HSET', 'c:h', 'f', 'v1'), ':1')
      assert.equal(await cache.exists('c:h'), 0)
      assert.equal(await run(exec, 'HGET', 'c:h', 'f'), '"v1"') // miss: read from m2, cache filled
      assert.equal(await cache.hget('c:h', 'f'), 'v1')
      const ttl = await cache.pttl('c:h')
      assert.ok(ttl > 0 && ttl <= 30_000, `cache ttl ${ttl}`)
      await member.hset('c:h', 'f', 'behind-the-back')
      assert.equal(await run(exec, 'HGET', 'c:h', 'f'), '"v1"') // hit: answered by the cache
      assert.equal(await run(exec, 'HSET', 'c:h', 'f', 'v2'), ':0') // write invalidates
      assert.equal(await cache.exists('c:h'), 0)
      assert.equal(await run(exec, 'HGET', 'c:h', 'f'), '"v2"')
      assert.equal(await run(exec, 'TTL', 'c:h'), ':-1') // TTL bypasses the (capped) cache
      assert.equal(await run(exec, 'GET', 'c:missing'), '(nil)')
      assert.equal(await cache.exists('c:missing'), 0)
    } finally {
      await exec.close()
    }
  })

  test('dispatch hook: unregistered keys, split commands, cross-group refusal, no rules -> slot', async () => {
    const exec = new DbGroupExecutor(RuleRouter.fromConfig(config('writeone')))
    try {
      assert.equal(await viaDispatch(exec, 'GET', 'zzz'), `-${KEY_NOT_REGISTERED}`)
      assert.equal(await viaDispatch(exec, 'SET', 'a:x1', '1'), '+OK')
      assert.equal(await viaDispatch(exec, 'MSET', 'a:x2', '2', 'c:x3', '3'), '+OK')
      assert.equal(await servers[M2]!.client().get('c:x3'), '3')
      assert.equal(await viaDispatch(exec, 'SET', 'c:x1', '1'), '+OK')
      // (group g's slave s1 does not replicate in this test, so reads of g may miss: use gc's keys)
      assert.equal(await viaDispatch(exec, 'MGET', 'c:x1', 'c:x3', 'c:none'), '*3\r\n$1\r\n1\r\n$1\r\n3\r\n$-1')
      assert.match(String(await viaDispatch(exec, 'MGET', 'a:x1', 'bad')), /^-ERR key not registered: 'bad'$/)
      assert.equal(await viaDispatch(exec, 'EXISTS', 'c:x1', 'c:x3', 'c:none'), ':2')
      assert.equal(await viaDispatch(exec, 'RENAME', 'a:x1', 'c:x9'), "-CROSSSLOT Keys in request don't route to the same db group")
      assert.equal(await viaDispatch(exec, 'RENAME', 'a:x1', 'a:x9'), '+OK')
      assert.equal(await viaDispatch(exec, 'DEL', 'a:x9', 'a:x2', 'c:x3'), ':3')
      exec.setRouter(RuleRouter.empty())
      assert.equal(await viaDispatch(exec, 'GET', 'zzz'), false)
    } finally {
      await exec.close()
    }
  })

  test('config edits in the coordinator are applied live (router reload on the epoch)', async () => {
    const dir = tempDir('rulesexec')
    const coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
    const store = new TopologyStore(coord, 'live')
    const exec = new DbGroupExecutor(await RuleRouter.load(store))
    const w = await store.watch(() => void RuleRouter.load(store).then((r) => exec.setRouter(r)))
    try {
      assert.equal(exec.router.requiresRules, false)
      const cfg = config('writeone')
      for (const u of cfg.dbunits) await addConfig(store, 'dbunit', u)
      for (const g of cfg.dbgroups) await addConfig(store, 'dbgroup', g)
      for (const s of cfg.shards) await addConfig(store, 'shard', s)
      await addConfig(store, 'rule', cfg.rules[0])
      const waitEpoch = async (e: number) => {
        const t0 = Date.now()
        while (exec.router.epoch < e && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10))
        assert.ok(exec.router.epoch >= e, `router at epoch ${exec.router.epoch}, want ${e}`)
      }
      await waitEpoch(7)
      assert.equal(await viaDispatch(exec, 'SET', 'a:live', 'one'), '+OK')
      assert.equal(await servers[M1]!.client().get('a:live'), 'one')
      // point rule a at the cached group gc (master m2) while running
      const {epoch} = await updateConfig(store, 'rule', 'a', {shardName: 'sc'})
      await waitEpoch(epoch)
      assert.equal(await viaDispatch(exec, 'SET', 'a:live', 'two'), '+OK')
      assert.equal(await servers[M2]!.client().get('a:live'), 'two')
      assert.equal(await viaDispatch(exec, 'GET', 'c:whatever'), `-${KEY_NOT_REGISTERED}`)
    } finally {
      await w.close()
      await exec.close()
      await coord.close()
      removeDir(dir)
    }
  })
})

export type {Reply}
