// The topology store's cached snapshot and per-record parse cache, and the proxy's one list() per
// epoch: what another writer (another store instance, another process's coordinator handle) changes is
// always seen; nothing a caller does to a returned topology reaches the cache; rules config changes
// reach a proxy, and an invalid one is refused exactly as before.
import assert from 'node:assert/strict'
import {after, before, beforeEach, describe, test} from 'node:test'
import {join} from 'node:path'
import {Redis} from 'ioredis'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {CorruptError, TopologyStore} from '../src/coord/topology-store.js'
import type {Coordinator} from '../src/coord/types.js'
import {addConfig, loadRulesConfig, parseRulesConfig} from '../src/service/rules-config.js'
import {DEFAULT_PROXY_OPTIONS, Proxy} from '../src/proxy/proxy.js'
import {RuleRouter} from '../src/proxy/rule-route.js'
import type {DispatchContext} from '../src/proxy/dispatch.js'
import {removeDir, tempDir, waitFor} from './harness/process.js'

let dir: string
let coord: EmbeddedCoordinator
/** A second handle on the same SQLite file: what another process sees and writes. */
let other: EmbeddedCoordinator
let n = 0
let product: string

before(async () => {
  dir = tempDir('topocache')
  coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
  other = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
})
after(async () => {
  await coord.close()
  await other.close()
  removeDir(dir)
})
beforeEach(() => {
  product = `cache${++n}`
})

/** The coordinator with its list() and get() calls counted. */
function counting(inner: Coordinator): {coord: Coordinator; lists: () => number; gets: () => number} {
  let lists = 0
  let gets = 0
  const coord = new globalThis.Proxy(inner, {
    get(target, prop, recv) {
      if (prop === 'list') return (prefix: string) => (lists++, target.list(prefix))
      if (prop === 'listWithRevision') return (prefix: string) => (lists++, target.listWithRevision(prefix))
      if (prop === 'get') return (key: string) => (gets++, target.get(key))
      const v = Reflect.get(target, prop, recv) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
  return {coord, lists: () => lists, gets: () => gets}
}

const master = (addr: string) => [{addr, role: 'master' as const}]

async function setUp(store: TopologyStore): Promise<void> {
  await store.update(() => ({
    groups: [
      {id: 1, servers: master('10.0.0.1:6379')},
      {id: 2, servers: master('10.0.0.2:6379')},
    ],
  }))
  await store.update(() => ({slots: Array.from({length: 1024}, (_, id) => ({id, state: 'online' as const, group: id < 512 ? 1 : 2}))}))
}

describe('TopologyStore snapshot cache', () => {
  test('load() and update() reuse the snapshot (one get, no list) while nobody else wrote', async () => {
    const c = counting(coord)
    const store = new TopologyStore(c.coord, product)
    await setUp(store)
    const lists = c.lists()
    const e = await store.update((topo) => ({slots: [{id: 3, state: 'online', group: topo.slots[3]!.group === 1 ? 2 : 1}]}))
    const topo = await store.load()
    assert.equal(topo.epoch, e)
    assert.deepEqual(topo.slots[3], {id: 3, state: 'online', group: 2})
    assert.equal(c.lists(), lists, 'no list() after its own writes')
    // What was applied to the snapshot equals what a fresh store reads.
    const fresh = await new TopologyStore(coord, product).loadWithMeta()
    assert.deepEqual(await store.loadWithMeta(), fresh)
    assert.equal(c.lists(), lists)
  })

  test("another process's changes are seen by load() and update()", async () => {
    const c = counting(coord)
    const mine = new TopologyStore(c.coord, product)
    const theirs = new TopologyStore(other, product)
    await setUp(mine)
    assert.equal((await mine.load()).slots[7]!.group, 1)

    await theirs.update(() => ({slots: [{id: 7, state: 'online', group: 2}], groups: [{id: 3, servers: master('10.0.0.3:6379')}]}))
    let lists = c.lists()
    const seen = await mine.load()
    assert.equal(c.lists(), lists + 1, 'the epoch moved: one list()')
    assert.deepEqual(seen.slots[7], {id: 7, state: 'online', group: 2})
    assert.deepEqual([...seen.groups.keys()], [1, 2, 3])

    await theirs.update(() => ({slots: [{id: 8, state: 'online', group: 3}], deleteGroups: []}))
    lists = c.lists()
    let calls = 0
    const e = await mine.update((topo) => {
      calls++
      assert.deepEqual(topo.slots[8], {id: 8, state: 'online', group: 3}, 'change() sees the other write')
      return {slots: [{id: 9, state: 'online', group: 3}]}
    })
    assert.equal(calls, 1)
    assert.equal(c.lists(), lists + 1)
    const back = await theirs.load()
    assert.equal(back.epoch, e)
    assert.deepEqual(back.slots[8], {id: 8, state: 'online', group: 3})
    assert.deepEqual(back.slots[9], {id: 9, state: 'online', group: 3})

    // A concurrent change between mine's read and its txn: retried on the new topology, as before.
    calls = 0
    await mine.update((topo) => {
      if (++calls === 1) {
        // (the embedded txn runs synchronously: it is committed before mine's txn)
        void other.txn([], [
          {type: 'put', key: mine.keys.slot(10), value: JSON.stringify({id: 10, state: 'offline', group: 0})},
          {type: 'put', key: mine.keys.epoch, value: JSON.stringify(topo.epoch + 1)},
        ])
      } else assert.deepEqual(topo.slots[10], {id: 10, state: 'offline', group: 0})
      return {slots: [{id: 11, state: 'online', group: 2}]}
    })
    assert.equal(calls, 2)
    assert.deepEqual((await theirs.load()).slots[11], {id: 11, state: 'online', group: 2})
    assert.deepEqual(await mine.loadWithMeta(), await new TopologyStore(coord, product).loadWithMeta())
  })

  test('a deleted group and a re-initialized product are seen', async () => {
    const mine = new TopologyStore(coord, product)
    const theirs = new TopologyStore(other, product)
    await setUp(mine)
    await mine.update(() => ({groups: [{id: 4, servers: []}]}))
    assert.ok((await theirs.load()).groups.has(4))
    await theirs.update(() => ({deleteGroups: [4]}))
    assert.equal((await mine.load()).groups.has(4), false)
    await mine.update(() => ({groups: [{id: 4, servers: master('10.0.0.4:6379')}]}))
    assert.deepEqual((await theirs.load()).groups.get(4), {id: 4, servers: master('10.0.0.4:6379')})
    await mine.update(() => ({deleteGroups: [4]}))
    assert.equal((await theirs.load()).groups.has(4), false)

    // Everything deleted behind its back (the epoch key too), then written again.
    await other.txn([], [{type: 'deletePrefix', prefix: mine.prefix}])
    const empty = await mine.loadWithMeta()
    assert.equal(empty.topo.epoch, 0)
    assert.equal(empty.meta.initialized, false)
    assert.equal(empty.topo.groups.size, 0)
    assert.deepEqual(empty.topo.slots[0], {id: 0, state: 'offline', group: 0})
    await setUp(theirs)
    assert.deepEqual(await mine.loadWithMeta(), await theirs.loadWithMeta())
  })

  test('a corrupt record written with an epoch bump is still reported', async () => {
    const mine = new TopologyStore(coord, product)
    await setUp(mine)
    await mine.load()
    const ek = mine.keys.epoch
    const cur = (await other.get(ek))!
    await other.txn([], [
      {type: 'put', key: mine.keys.slot(5), value: '{"state":"flying","group":1}'},
      {type: 'put', key: ek, value: String(Number(cur.value) + 1)},
    ])
    await assert.rejects(mine.load(), (err: Error) => err instanceof CorruptError && /slots\/5 is not a slot record/.test(err.message))
    await assert.rejects(mine.update(() => ({})), CorruptError)
  })

  test('returned topologies are the caller\'s: changing one does not reach the next read', async () => {
    const store = new TopologyStore(coord, product)
    await setUp(store)
    const a = await store.load()
    assert.throws(() => {
      ;(a.slots[0] as {group: number}).group = 2
    }, TypeError, 'slot records are frozen')
    assert.throws(() => {
      a.groups.get(1)!.servers.push({addr: 'x:1', role: 'slave'})
    }, TypeError, 'group records are frozen')
    a.slots[0] = {id: 0, state: 'offline', group: 0}
    a.slots.length = 3
    a.groups.delete(1)
    a.epoch = 99
    const b = await store.load()
    assert.equal(b.slots.length, 1024)
    assert.deepEqual(b.slots[0], {id: 0, state: 'online', group: 1})
    assert.ok(b.groups.has(1))
    assert.notEqual(b.epoch, 99)

    // change() may scribble on the topology it is given; the stored result is only what it returned.
    const e = await store.update((topo, meta) => {
      topo.slots[1] = {id: 1, state: 'offline', group: 0}
      topo.groups.delete(2)
      meta.epochRevision = 1
      return {slots: [{id: 2, state: 'online', group: 2}]}
    })
    const c = await store.load()
    assert.equal(c.epoch, e)
    assert.deepEqual(c.slots[1], {id: 1, state: 'online', group: 1})
    assert.deepEqual(c.slots[2], {id: 2, state: 'online', group: 2})
    assert.ok(c.groups.has(2))
    assert.deepEqual(await store.loadWithMeta(), await new TopologyStore(coord, product).loadWithMeta())
  })

  test('parseKvs parses only records whose stored text changed', async () => {
    const store = new TopologyStore(coord, product)
    await setUp(store)
    const kvs1 = await coord.list(store.prefix)
    const t1 = store.parseKvs(kvs1).topo
    await store.update(() => ({slots: [{id: 600, state: 'online', group: 1}]}))
    const t2 = store.parseKvs(await coord.list(store.prefix)).topo
    assert.equal(t2.slots[599], t1.slots[599], 'unchanged record reused')
    assert.equal(t2.groups.get(1), t1.groups.get(1))
    assert.notEqual(t2.slots[600], t1.slots[600])
    assert.deepEqual(t2.slots[600], {id: 600, state: 'online', group: 1})
    assert.notEqual(t2.slots, t1.slots, 'a new array per call')
    // An older list parses to what it says (the cache is keyed by the stored text).
    assert.deepEqual(store.parseKvs(kvs1).topo.slots[600], {id: 600, state: 'online', group: 2})
  })

  test('rules config written through update() extraOps is read back fresh', async () => {
    const store = new TopologyStore(coord, product)
    const theirs = new TopologyStore(other, product)
    await setUp(store)
    await store.load()
    await addConfig(theirs, 'dbunit', {name: 'u1', type: 'redis', server: '127.0.0.1', port: 1})
    assert.deepEqual((await loadRulesConfig(store)).config.dbunits.map((u) => u.name), ['u1'])
    await addConfig(store, 'dbunit', {name: 'u2', type: 'redis', server: '127.0.0.1', port: 2})
    assert.deepEqual((await loadRulesConfig(theirs)).config.dbunits.map((u) => u.name).sort(), ['u1', 'u2'])
    assert.deepEqual((await loadRulesConfig(store)).config.dbunits.map((u) => u.name).sort(), ['u1', 'u2'])
    assert.equal((await store.load()).epoch, (await theirs.load()).epoch)
  })
})

describe('parseRulesConfig', () => {
  test('reads exactly the config, cutover and epoch keys of its product', () => {
    const store = new TopologyStore(coord, 'p')
    const kv = (key: string, value: unknown, modRevision = 1) => ({key, value: JSON.stringify(value), createRevision: 1, modRevision})
    const kvs = [
      kv('/rstore/p/cutovers/c1', {name: 'c1', rule: 'r1', from: 'g1', to: 'g2', step: 'double-write'}),
      kv('/rstore/p/dbgroups/g1', {name: 'g1'}),
      kv('/rstore/p/dbunits/u1', {name: 'u1'}),
      kv('/rstore/p/epoch', 7, 42),
      kv('/rstore/p/groups/1', {servers: []}),
      kv('/rstore/p/rules/r1', {name: 'r1'}),
      kv('/rstore/p/rulesets/x', {name: 'not a rule'}),
      kv('/rstore/p/shards/s1', {name: 's1'}),
      kv('/rstore/p/slots/0', {state: 'offline', group: 0}),
      kv('/rstore/q/rules/r9', {name: 'another product'}),
      kv('/rstore/p/r', 1),
      kv('/rstore/p/', 1),
    ]
    const got = parseRulesConfig(store, kvs)
    assert.deepEqual(got.config, {dbunits: [{name: 'u1'}], dbgroups: [{name: 'g1'}], shards: [{name: 's1'}], rules: [{name: 'r1'}]})
    assert.deepEqual(got.cutovers.map((c) => c.name), ['c1'])
    assert.deepEqual([got.epoch, got.epochRevision], [7, 42])
    // The source changes with any config or cutover key, not with slots or the epoch.
    const slotMoved = kvs.map((x) => (x.key.endsWith('/slots/0') ? kv(x.key, {state: 'online', group: 1}) : x.key.endsWith('/epoch') ? kv(x.key, 8, 43) : x))
    assert.equal(parseRulesConfig(store, slotMoved).source, got.source)
    const ruleChanged = kvs.map((x) => (x.key.endsWith('/rules/r1') ? kv(x.key, {name: 'r1', order: 2}) : x))
    assert.notEqual(parseRulesConfig(store, ruleChanged).source, got.source)
  })
})

describe('RuleRouter.fromKvs', () => {
  const cfg = {
    dbunits: [{name: 'u1', type: 'redis', server: '127.0.0.1', port: 1}],
    dbgroups: [{name: 'g1', type: 'redis', replicateMode: 'writeone', items: [{name: 'u1', isMaster: true, readWeight: 1}]}],
    shards: [{name: 's1', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'g1'}]}],
    rules: [{name: 'r1', order: 1, regexp: 'a:.*', hashSlot: 0, shardName: 's1', example: 'a:1'}],
  }

  test('reuses the compiled rules while the config keys are unchanged, recompiles when one changes', async () => {
    const store = new TopologyStore(coord, product)
    await setUp(store)
    for (const kind of ['dbunit', 'dbgroup', 'shard', 'rule'] as const) for (const x of cfg[`${kind}s`]) await addConfig(store, kind, x)
    const r1 = RuleRouter.fromKvs(store, await coord.list(store.prefix), RuleRouter.empty())
    assert.equal(r1.requiresRules, true)
    const e = await store.update(() => ({slots: [{id: 0, state: 'online', group: 2}]}))
    const r2 = RuleRouter.fromKvs(store, await coord.list(store.prefix), r1)
    assert.equal(r2.rules, r1.rules, 'same compiled rules')
    assert.equal(r2.epoch, e)
    assert.equal(r2.route(Buffer.from('a:x')).kind, 'dbgroup')
    assert.equal(r2.route(Buffer.from('b:x')).kind, 'unregistered')

    await addConfig(store, 'rule', {name: 'r2', order: 2, regexp: 'b:.*', hashSlot: 0, shardName: 's1', example: 'b:1'})
    const r3 = RuleRouter.fromKvs(store, await coord.list(store.prefix), r2)
    assert.notEqual(r3.rules, r2.rules)
    assert.equal(r3.route(Buffer.from('b:x')).kind, 'dbgroup')
    // The same as load() (its own list) reads.
    assert.deepEqual(r3.rules, (await RuleRouter.load(store)).rules)
  })
})

describe('Proxy: no list() per epoch', () => {
  test('slot changes and rules config changes are applied from the watched mirror, not a list(); an invalid config is refused', async () => {
    const c = counting(coord)
    const store = new TopologyStore(coord, product)
    await setUp(store)
    const p = new Proxy(c.coord, product, {...DEFAULT_PROXY_OPTIONS, id: 'p1', host: '127.0.0.1', port: 0, httpAddr: '127.0.0.1:0'})
    await p.start()
    const ctx = (p as unknown as {ctx: DispatchContext}).ctx
    const r = new Redis({port: p.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false})
    try {
      await store.coord.txn([], [{type: 'put', key: store.keys.proxyControl('p1'), value: JSON.stringify({state: 'online'})}])
      await waitFor('proxy online', async () => p.status().state === 'online', 5000)
      await r.connect()

      // Slot changes: applied from the proxy's mirror of the product's keys (kept by its watch).
      for (let i = 0; i < 5; i++) {
        const lists = c.lists()
        const e = await store.update((topo) => ({slots: [{id: 0, state: 'online', group: topo.slots[0]!.group === 1 ? 2 : 1}]}))
        await waitFor(`epoch ${e} applied`, async () => p.table.epoch === e, 5000)
        assert.equal(c.lists() - lists, 0, 'no list() for the epoch')
        const group = (await store.load()).slots[0]!.group
        assert.equal(p.table.slots[0]!.master, group === 1 ? '10.0.0.1:6379' : '10.0.0.2:6379', 'slot 0 routed to its new group')
      }
      const router0 = ctx.rules.router
      assert.equal(router0.requiresRules, false)

      // A rules config: every key must now match a rule.
      for (const kind of ['dbunit', 'dbgroup', 'shard'] as const) {
        const x = {
          dbunit: {name: 'u1', type: 'redis', server: '127.0.0.1', port: 1},
          dbgroup: {name: 'g1', type: 'redis', replicateMode: 'writeone', items: [{name: 'u1', isMaster: true, readWeight: 1}]},
          shard: {name: 's1', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'g1'}]},
        }[kind]
        await addConfig(store, kind, x)
      }
      const {epoch: ruleEpoch} = await addConfig(store, 'rule', {name: 'r1', order: 1, regexp: 'a:.*', hashSlot: 0, shardName: 's1', example: 'a:1'})
      await waitFor('rules applied', async () => p.table.epoch === ruleEpoch, 5000)
      assert.equal(ctx.rules.router.requiresRules, true)
      await assert.rejects(r.get('zzz'), /key not registered/)

      // A slot change keeps the compiled rules.
      const router1 = ctx.rules.router
      const e1 = await store.update(() => ({slots: [{id: 1, state: 'online', group: 2}]}))
      await waitFor(`epoch ${e1} applied`, async () => p.table.epoch === e1, 5000)
      assert.equal(ctx.rules.router.rules, router1.rules)
      assert.equal(ctx.rules.router.epoch, e1)

      // An invalid config (written around the validation) is refused; the last good one is served.
      const ek = store.keys.epoch
      const cur = (await coord.get(ek))!
      const bad = Number(cur.value) + 1
      await coord.txn([{key: ek, modRevision: cur.modRevision}], [
        {type: 'put', key: store.keys.config('rule', 'r2'), value: JSON.stringify({name: 'r2', order: 2, regexp: 'b:.*', hashSlot: 0, shardName: 'nope', example: 'b:1'})},
        {type: 'put', key: ek, value: JSON.stringify(bad)},
      ])
      await waitFor('refused', async () => /rules config at epoch/.test(p.topologyError), 5000)
      assert.match(p.topologyError, new RegExp(`^refused rules config at epoch ${bad}: .*nope.*; serving epoch ${e1}$`))
      assert.equal(p.table.epoch, e1)
      assert.equal(ctx.rules.router.rules, router1.rules)
      await assert.rejects(r.get('b:1'), /key not registered/)

      // Fixed: applied.
      const fixed = (await addConfig(store, 'shard', {name: 'nope', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'g1'}]})).epoch
      await waitFor('fixed config applied', async () => p.table.epoch === fixed, 5000)
      assert.equal(p.topologyError, '')
      assert.equal(ctx.rules.router.route(Buffer.from('b:1')).kind, 'dbgroup')
    } finally {
      r.disconnect()
      await p.stop()
    }
  })
})
