// Unit tests of the topology store and the slot/server admin logic, in-process against the embedded
// coordinator (a temp SQLite file) with a stubbed RedisOps (no real servers).
import assert from 'node:assert/strict'
import {after, before, beforeEach, describe, test} from 'node:test'
import {join} from 'node:path'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {PreconditionFailedError, TopologyStore} from '../src/coord/topology-store.js'
import {ConflictError, errorLine, NotFoundError, RstoreError, UnreachableError, ValidationError} from '../src/errors.js'
import {compactSlots, initSlots, listSlots, setSlot, setSlotRange, slotInfo} from '../src/service/slots.js'
import {slotIdsText} from '../src/topology/slots.js'
import {addGroup, addServer, listServers, promoteServer, removeGroup, removeServer} from '../src/service/servers.js'
import type {RedisOps, ReplicationState} from '../src/backends/redis-ops.js'
import {removeDir, tempDir} from './harness/process.js'

/** A fake fleet of Redis servers: records every command, answers from a table. */
class FakeRedis implements RedisOps {
  servers = new Map<string, {up: boolean; master?: string; offset: number; paused?: boolean}>()
  calls: string[] = []
  lag = 0

  add(addr: string, master?: string): void {
    this.servers.set(addr, {up: true, master, offset: 100})
  }
  private get(addr: string) {
    const s = this.servers.get(addr)
    if (!s || !s.up) throw new UnreachableError(`server ${addr} does not answer: connection refused`)
    return s
  }
  async ping(addr: string): Promise<void> {
    this.get(addr)
  }
  async replication(addr: string): Promise<ReplicationState> {
    const s = this.get(addr)
    if (!s.master) return {role: 'master', offset: s.offset}
    return {role: 'slave', masterAddr: s.master, linkState: 'connected', offset: s.offset - this.lag}
  }
  async replicaOf(addr: string, master: string | null): Promise<void> {
    const s = this.get(addr)
    this.calls.push(`${addr} REPLICAOF ${master ?? 'NO ONE'}`)
    s.master = master ?? undefined
  }
  async pauseWrites(addr: string): Promise<void> {
    this.get(addr).paused = true
    this.calls.push(`${addr} PAUSE`)
  }
  async unpause(addr: string): Promise<void> {
    this.get(addr).paused = false
    this.calls.push(`${addr} UNPAUSE`)
  }
}

let dir: string
let coord: EmbeddedCoordinator
let store: TopologyStore
let redis: FakeRedis
let n = 0

before(async () => {
  dir = tempDir('admin')
  coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
})
after(async () => {
  await coord.close()
  removeDir(dir)
})
beforeEach(() => {
  store = new TopologyStore(coord, `unit${++n}`)
  redis = new FakeRedis()
  for (const a of ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379', '10.0.0.4:6379']) redis.add(a)
})

/** Every stored key of the product with its modRevision: equal dumps mean nothing was written. */
async function dump(): Promise<string> {
  return JSON.stringify((await coord.list(store.prefix)).map((kv) => [kv.key, kv.value, kv.modRevision]))
}

async function refused(fn: () => Promise<unknown>, type: new (...a: never[]) => Error, re: RegExp): Promise<void> {
  const before = await dump()
  await assert.rejects(fn, (err: Error) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err.name}: ${err.message}`)
    // What the user reads: the message and its hint (the CLI's one line).
    const text = err instanceof RstoreError ? errorLine(err) : err.message
    assert.match(text, re)
    assert.ok(!text.includes('\n'), 'one line')
    return true
  })
  assert.equal(await dump(), before, 'stored state unchanged')
}

async function twoGroups(): Promise<void> {
  await initSlots(store)
  await addServer(store, 1, '10.0.0.1:6379', 'master', {redis})
  await addServer(store, 2, '10.0.0.2:6379', 'master', {redis})
}

describe('TopologyStore', () => {
  test('keys, load of an empty product, and the slot table after init', async () => {
    assert.equal(store.keys.slot(7), `/rstore/${store.product}/slots/7`)
    assert.equal(store.keys.migrationLock, `/rstore/${store.product}/locks/migration`)
    const empty = await store.load()
    assert.equal(empty.epoch, 0)
    assert.equal(empty.slots.length, 1024)
    assert.deepEqual(empty.slots[9], {id: 9, state: 'offline', group: 0})
    assert.equal(await store.slotsInitialized(), false)
    const res = await initSlots(store)
    assert.deepEqual(res, {epoch: 1, slots: 1024, reset: false})
    assert.equal(await store.slotsInitialized(), true)
    assert.equal((await coord.list(store.keys.slotsPrefix)).length, 1024)
  })

  test('update writes records and epoch+1 in one txn; an empty change writes nothing', async () => {
    await addGroup(store, 3)
    const rev = await coord.revision()
    const e = await store.update((topo) => ({groups: [{id: 3, servers: [{addr: 'h:1', role: 'master'}]}], slots: [{id: 4, state: 'online', group: 3}]}))
    assert.equal(e, 2)
    assert.equal(await coord.revision(), rev + 1, 'one transaction')
    const topo = await store.load()
    assert.equal(topo.epoch, 2)
    assert.deepEqual(topo.slots[4], {id: 4, state: 'online', group: 3})
    assert.equal(await store.update(() => ({})), 2)
    assert.equal(await coord.revision(), rev + 1)
  })

  test('update retries on a concurrent change and re-runs change() on the new topology', async () => {
    await addGroup(store, 1)
    let calls = 0
    const e = await store.update((topo) => {
      calls++
      if (calls === 1) {
        // A concurrent writer bumps the epoch between our read and our txn.
        void coord.txn([], [{type: 'put', key: store.keys.epoch, value: JSON.stringify(topo.epoch + 1)}])
      }
      return {groups: [{id: 5, servers: []}]}
    })
    assert.equal(calls, 2)
    assert.equal(e, 3)
  })

  test('update refuses a result a proxy would refuse, and reports failed extra compares', async () => {
    await addGroup(store, 1)
    await addGroup(store, 2)
    await refused(() => store.update(() => ({slots: [{id: 1, state: 'online', group: 9}]})), ConflictError, /group 9, which does not exist/)
    await refused(
      () =>
        store.update(() => ({
          slots: [
            {id: 1, state: 'migrating', group: 2, from: 1},
            {id: 2, state: 'migrating', group: 2, from: 1},
          ],
        })),
      ConflictError,
      /at most one may migrate/,
    )
    // A held slot (next in line in a migration) must be online, and only one may be held.
    await refused(
      () => store.update(() => ({slots: [{id: 3, state: 'migrating', group: 2, from: 1, hold: true}]})),
      ConflictError,
      /slot 3 is migrating and held; only an online slot may be held/,
    )
    await refused(
      () =>
        store.update(() => ({
          slots: [
            {id: 4, state: 'online', group: 1, pending: true, hold: true},
            {id: 5, state: 'online', group: 1, pending: true, hold: true},
          ],
        })),
      ConflictError,
      /2 held slots \(4, 5\); at most one may be held/,
    )
    await store.update(() => ({slots: [{id: 4, state: 'online', group: 1, pending: true, hold: true}]}))
    assert.deepEqual((await store.load()).slots[4], {id: 4, state: 'online', group: 1, pending: true, hold: true}, 'the hold flag is stored and read back')
    await store.update(() => ({slots: [{id: 4, state: 'online', group: 1}]}))
    await refused(
      () => store.update(() => ({groups: [{id: 1, servers: [{addr: 'a:1', role: 'master'}, {addr: 'b:1', role: 'master'}]}]})),
      ValidationError,
      /two masters/,
    )
    await coord.txn([], [{type: 'put', key: store.keys.migrationLock, value: '{"job":"x"}'}])
    await refused(
      () => store.update(() => ({groups: [{id: 3, servers: []}]}), [{key: store.keys.migrationLock, modRevision: 0}]),
      PreconditionFailedError,
      /no longer holds/,
    )
  })

  test('pending and from survive a round trip; watch fires on routing changes only', async () => {
    await addGroup(store, 1)
    await addGroup(store, 2)
    let fired = 0
    const w = await store.watch(() => fired++)
    await store.update(() => ({slots: [{id: 8, state: 'online', group: 1, pending: true}, {id: 9, state: 'migrating', group: 2, from: 1}]}))
    const topo = await store.load()
    assert.deepEqual(topo.slots[8], {id: 8, state: 'online', group: 1, pending: true})
    assert.deepEqual(topo.slots[9], {id: 9, state: 'migrating', group: 2, from: 1})
    await waitUntil(() => fired === 1)
    await coord.txn([], [{type: 'put', key: store.keys.proxy('p1'), value: JSON.stringify({id: 'p1'})}])
    await new Promise((r) => setTimeout(r, 150))
    assert.equal(fired, 1, 'a proxies/ change does not fire')
    assert.deepEqual((await store.proxies()).map((p) => p.id), ['p1'])
    await w.close()
  })
})

describe('slot admin', () => {
  test('init refuses a second init without force, and any init while a migration runs', async () => {
    await initSlots(store)
    await refused(() => initSlots(store), ConflictError, /already initialized.*--force/)
    const r = await initSlots(store, {force: true})
    assert.equal(r.reset, true)
    await coord.txn([], [{type: 'put', key: store.keys.migrationLock, value: JSON.stringify({job: 'migrate 0-9 to 2', host: 'h', pid: 42})}])
    await refused(() => initSlots(store, {force: true}), ConflictError, /migrate 0-9 to 2 \(h, pid 42\) is running/)
  })

  test('set and range-set: assignments, no-op, and every refusal', async () => {
    await refused(() => setSlot(store, 1, 1, 'online'), ConflictError, /not initialized/)
    await twoGroups()
    await addGroup(store, 3)
    const r = await setSlotRange(store, '0', '511', '1', 'online')
    assert.deepEqual({changed: r.changed, epoch: r.epoch}, {changed: 512, epoch: 5})
    assert.equal((await setSlotRange(store, 0, 511, 1, 'online')).changed, 0)
    await setSlotRange(store, 512, 1023, 2, 'online')

    await refused(() => setSlot(store, '1024', 1, 'online'), ValidationError, /invalid slot '1024'/)
    await refused(() => setSlot(store, '-1', 1, 'online'), ValidationError, /invalid slot/)
    await refused(() => setSlotRange(store, 10, 5, 1, 'online'), ValidationError, /range 10-5/)
    await refused(() => setSlot(store, 1, 0, 'online'), ValidationError, /group id/)
    await refused(() => setSlot(store, 1, 1, 'up'), ValidationError, /online or offline/)
    await refused(() => setSlot(store, 1, 1, 'migrating'), ValidationError, /rstore migrate/)
    await refused(() => setSlot(store, 1, 9, 'offline'), NotFoundError, /group 9 does not exist/)
    await refused(() => setSlot(store, 1, 3, 'online'), ConflictError, /group 3 has no master/)
    await refused(() => setSlotRange(store, 500, 520, 2, 'online'), ConflictError, /slots 500-511 are online in group 1.*rstore migrate 500 520 2/)

    await store.update(() => ({slots: [{id: 700, state: 'migrating', group: 1, from: 2}]}))
    await refused(() => setSlotRange(store, 690, 710, 2, 'online'), ConflictError, /slot 700 is migrating from group 2 to group 1/)
    await store.update(() => ({slots: [{id: 700, state: 'online', group: 1}, {id: 800, state: 'online', group: 2, pending: true}]}))
    await refused(() => setSlot(store, 800, 2, 'offline'), ConflictError, /pending/)

    // Offline in the same group is fine; an offline slot moves freely; --force moves online slots.
    assert.equal((await setSlot(store, 5, 1, 'offline')).changed, 1)
    assert.equal((await setSlot(store, 5, 2, 'online')).changed, 1)
    assert.equal((await setSlotRange(store, 6, 7, 2, 'online', {force: true})).changed, 2)
    const info = await slotInfo(store, 6)
    assert.deepEqual(info.slot, {id: 6, state: 'online', group: 2})
    assert.equal(info.master, '10.0.0.2:6379')
    const list = await listSlots(store)
    assert.deepEqual(
      list.ranges.slice(0, 4).map((x) => [x.from, x.to, x.state, x.group]),
      [
        [0, 4, 'online', 1],
        [5, 7, 'online', 2],
        [8, 511, 'online', 1],
        [512, 699, 'online', 2],
      ],
    )
  })

  test('compact ranges and slot id formatting', () => {
    const slots = [
      {id: 0, state: 'online' as const, group: 1},
      {id: 1, state: 'online' as const, group: 1},
      {id: 2, state: 'migrating' as const, group: 2, from: 1},
      {id: 3, state: 'offline' as const, group: 0},
    ]
    assert.deepEqual(compactSlots(slots), [
      {from: 0, to: 1, count: 2, state: 'online', group: 1},
      {from: 2, to: 2, count: 1, state: 'migrating', group: 2, fromGroup: 1},
      {from: 3, to: 3, count: 1, state: 'offline', group: 0},
    ])
    assert.equal(slotIdsText([1, 2, 3, 7, 9, 10]), '1-3,7,9-10')
  })
})

describe('server admin', () => {
  test('add: creates the group, PING check, second master, duplicates, slave replication', async () => {
    const a = await addServer(store, 1, '10.0.0.1:6379', 'master', {redis})
    assert.equal(a.createdGroup, true)
    const b = await addServer(store, 1, '10.0.0.2:6379', 'slave', {redis})
    assert.equal(b.replicaOf, '10.0.0.1:6379')
    assert.deepEqual(redis.calls, ['10.0.0.2:6379 REPLICAOF 10.0.0.1:6379'])
    redis.calls = []
    await refused(() => addServer(store, 1, '10.0.0.3:6379', 'master', {redis}), ConflictError, /already has a master \(10.0.0.1:6379\)/)
    await refused(() => addServer(store, 1, '10.0.0.2:6379', 'slave', {redis}), ConflictError, /already in group 1/)
    await refused(() => addServer(store, 2, '10.0.0.2:6379', 'master', {redis}), ConflictError, /already belongs to group 1/)
    await refused(() => addServer(store, 2, '10.9.9.9:6379', 'master', {redis}), UnreachableError, /10.9.9.9:6379 does not answer/)
    await refused(() => addServer(store, 2, 'nohost', 'master', {redis}), ValidationError, /host:port/)
    await refused(() => addServer(store, 2, '10.0.0.3:6379', 'boss', {redis}), ValidationError, /master or slave/)
    redis.servers.get('10.0.0.4:6379')!.master = '10.0.0.9:6379'
    await refused(() => addServer(store, 2, '10.0.0.4:6379', 'master', {redis}), ConflictError, /is a replica of 10.0.0.9:6379/)
    assert.deepEqual(redis.calls, [], 'no server touched by a refusal')

    // A slave added to a group without master waits; the master added later is followed.
    await addServer(store, 3, '10.0.0.3:6379', 'slave', {redis})
    redis.servers.get('10.0.0.4:6379')!.master = undefined
    const m = await addServer(store, 3, '10.0.0.4:6379', 'master', {redis})
    assert.deepEqual(m.repointed, ['10.0.0.3:6379'])
    const list = await listServers(store)
    assert.deepEqual(
      list.groups.map((g) => [g.id, g.master, g.servers.length]),
      [
        [1, '10.0.0.1:6379', 2],
        [3, '10.0.0.4:6379', 2],
      ],
    )
  })

  test('remove-group and remove refuse while the group serves slots', async () => {
    await twoGroups()
    await addServer(store, 1, '10.0.0.3:6379', 'slave', {redis})
    await setSlotRange(store, 0, 9, 1, 'online')
    await refused(() => removeGroup(store, 1), ConflictError, /group 1 serves slots 0-9/)
    await refused(() => removeGroup(store, 7), NotFoundError, /group 7 does not exist/)
    await refused(() => removeServer(store, 1, '10.0.0.1:6379'), ConflictError, /master of group 1, which serves slots 0-9.*promote/)
    await refused(() => removeServer(store, 1, '10.0.0.2:6379'), NotFoundError, /not in group 1/)
    await store.update(() => ({slots: [{id: 20, state: 'migrating', group: 1, from: 2}]}))
    await refused(() => removeGroup(store, 2), ConflictError, /group 2 serves slot 20/)
    assert.equal((await removeServer(store, 1, '10.0.0.3:6379')).role, 'slave')
    await store.update(() => ({slots: [{id: 20, state: 'online', group: 1}]}))
    await addGroup(store, 5)
    await refused(() => addGroup(store, 5), ConflictError, /already exists/)
    await removeGroup(store, 5)
    await removeServer(store, 2, '10.0.0.2:6379') // master of a group that serves nothing
    await removeGroup(store, 2)
    assert.deepEqual((await listServers(store)).groups.map((g) => g.id), [1])
  })

  test('promote: pause, catch-up, REPLICAOF NO ONE, one record switch, repoint; refusals touch nothing', async () => {
    await initSlots(store)
    await addServer(store, 1, '10.0.0.1:6379', 'master', {redis})
    await addServer(store, 1, '10.0.0.2:6379', 'slave', {redis})
    await addServer(store, 1, '10.0.0.3:6379', 'slave', {redis})
    redis.calls = []
    await refused(() => promoteServer(store, 1, '10.0.0.1:6379', {redis}), ConflictError, /already the master/)
    await refused(() => promoteServer(store, 1, '10.0.0.4:6379', {redis}), NotFoundError, /not in group 1/)
    await refused(() => promoteServer(store, 2, '10.0.0.4:6379', {redis}), NotFoundError, /group 2 does not exist/)
    redis.lag = 10
    await refused(() => promoteServer(store, 1, '10.0.0.2:6379', {redis, catchUpTimeoutMs: 100}), ConflictError, /10 bytes behind.*nothing was changed/)
    assert.deepEqual(redis.calls, ['10.0.0.1:6379 PAUSE', '10.0.0.1:6379 UNPAUSE'])
    redis.lag = 0
    redis.calls = []
    const res = await promoteServer(store, 1, '10.0.0.2:6379', {redis})
    assert.deepEqual(redis.calls, [
      '10.0.0.1:6379 PAUSE',
      '10.0.0.2:6379 REPLICAOF NO ONE',
      '10.0.0.1:6379 REPLICAOF 10.0.0.2:6379',
      '10.0.0.1:6379 UNPAUSE',
      '10.0.0.3:6379 REPLICAOF 10.0.0.2:6379',
    ])
    assert.deepEqual(res.repointed, ['10.0.0.1:6379', '10.0.0.3:6379'])
    const g = (await store.load()).groups.get(1)!
    assert.deepEqual(g.servers, [
      {addr: '10.0.0.1:6379', role: 'slave'},
      {addr: '10.0.0.2:6379', role: 'master'},
      {addr: '10.0.0.3:6379', role: 'slave'},
    ])
    // Failover: the master is down; promote goes on without it and says so.
    redis.servers.get('10.0.0.2:6379')!.up = false
    const f = await promoteServer(store, 1, '10.0.0.3:6379', {redis})
    assert.match(f.warnings.join(), /old master 10.0.0.2:6379 does not answer/)
    assert.equal(masterAddr(await store.load(), 1), '10.0.0.3:6379')
  })
})

function masterAddr(topo: Awaited<ReturnType<TopologyStore['load']>>, g: number): string | undefined {
  return topo.groups.get(g)?.servers.find((s) => s.role === 'master')?.addr
}

async function waitUntil(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
