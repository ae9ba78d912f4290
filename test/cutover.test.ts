// Double-write cutover of a rule's key space from one Redis db group to another (and its steps through
// the coordinator, the checkpoint database and a live-reloading executor), plus the CLI status.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {join} from 'node:path'
import {formatReply} from '../src/backends/reply.js'
import {abortCutover, cutoverStatus, finishCutover, startCutover, switchCutover} from '../src/service/cutover.js'
import {addConfig, loadRulesConfig, removeConfig} from '../src/service/rules-config.js'
import type {RstoreConfig} from '../src/config.js'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {TopologyStore} from '../src/coord/topology-store.js'
import {ConflictError, RstoreError} from '../src/errors.js'
import {findJobs, openCheckpoints} from '../src/migrate/checkpoints.js'
import type {Cutover} from '../src/topology/cutover.js'
import {openStore} from '../src/backends/index.js'
import {unitStoreUrl, type DbUnit} from '../src/topology/rules.js'
import {lookupCommand} from '../src/resp/commands.js'
import {DbGroupExecutor} from '../src/proxy/dbgroup-exec.js'
import {RuleRouter} from '../src/proxy/rule-route.js'
import {removeDir, startAll, tempDir} from './harness/process.js'
import {startRedis, type RedisServer} from './harness/redis.js'

let oldR: RedisServer
let newR: RedisServer
let dir: string
let coord: EmbeddedCoordinator
let store: TopologyStore
let cfg: RstoreConfig
let exec: DbGroupExecutor
let closeWatch: () => Promise<void>

before(async () => {
  ;[oldR, newR] = await startAll([startRedis(), startRedis()] as const)
  dir = tempDir('cutover')
  coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
  store = new TopologyStore(coord, 'cut')
  cfg = {product: 'cut', coordinator: 'embedded', coordinatorAddr: join(dir, 'meta.db'), checkpointDir: join(dir, 'cp')} as RstoreConfig
  await addConfig(store, 'dbunit', {name: 'old', type: 'redis', server: oldR.addr})
  await addConfig(store, 'dbunit', {name: 'new', type: 'redis', server: newR.addr})
  await addConfig(store, 'dbgroup', {name: 'gold', type: 'redis', items: [{name: 'old'}]})
  await addConfig(store, 'dbgroup', {name: 'gnew', type: 'redis', items: [{name: 'new'}]})
  await addConfig(store, 'shard', {name: 's', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'gold'}]})
  await addConfig(store, 'rule', {name: 'c', regexp: 'c:.*', shardName: 's', example: 'c:1'})
  exec = new DbGroupExecutor(await RuleRouter.load(store))
  const w = await store.watch(() => void RuleRouter.load(store).then((r) => exec.setRouter(r)))
  closeWatch = () => w.close()
})
after(async () => {
  await closeWatch?.()
  await exec?.close()
  await coord?.close()
  await Promise.all([oldR?.stop(), newR?.stop()])
  removeDir(dir)
})

async function run(...argv: (string | number)[]): Promise<string> {
  const args = argv.map((a) => Buffer.from(String(a)))
  const spec = lookupCommand(String(argv[0]).toLowerCase())!
  const route = exec.router.route(args[spec.firstKey]!)
  if (route.kind !== 'dbgroup') throw new Error(`not routed: ${JSON.stringify(route)}`)
  return formatReply(await exec.execute(route, spec.write, args, args[spec.firstKey]))
}

async function applied(epoch: number): Promise<void> {
  const t0 = Date.now()
  while (exec.router.epoch < epoch && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5))
  assert.ok(exec.router.epoch >= epoch, `executor at epoch ${exec.router.epoch}, want ${epoch}`)
}

describe('cutover', () => {
  test('start -> double-write with resulting values -> switch after verify -> abort loses nothing -> again -> finish', async () => {
    const o = oldR.client()
    const n = newR.client()
    // before the cutover
    assert.equal(await run('SET', 'c:s', 'before'), '+OK')
    assert.equal(await run('INCRBY', 'c:n', 10), ':10')
    assert.equal(await run('RPUSH', 'c:l', 'a'), ':1')
    assert.equal(await n.exists('c:s', 'c:n', 'c:l'), 0)

    // refusals
    await assert.rejects(startCutover(store, cfg, 'x', 'c', 'gold'), /already routes to dbgroup gold/)
    await assert.rejects(startCutover(store, cfg, 'x', 'nope', 'gnew'), /rule nope does not exist/)
    await assert.rejects(switchCutover(store, cfg, 'x'), /cutover x does not exist/)

    const st = await startCutover(store, cfg, 'x', 'c', 'gnew')
    assert.equal(st.cutover.step, 'double-write')
    await applied(st.epoch)
    await assert.rejects(removeConfig(store, 'dbgroup', 'gnew').then(() => undefined), Error) // in use by the cutover
    await assert.rejects(startCutover(store, cfg, 'y', 'c', 'gnew'), /already being cut over by x/)

    // double-write: old answers, new receives the resulting value (a key not yet copied is copied whole)
    assert.equal(await run('INCR', 'c:n'), ':11')
    assert.equal(await n.get('c:n'), '11')
    assert.equal(await run('RPUSH', 'c:l', 'b'), ':2')
    assert.deepEqual(await n.lrange('c:l', 0, -1), ['a', 'b'])
    assert.equal(await run('HINCRBY', 'c:h', 'f', 3), ':3')
    assert.equal(await n.hget('c:h', 'f'), '3')
    assert.equal(await run('SET', 'c:ttl', 'v', 'EX', 100), '+OK')
    const ttl = await n.pttl('c:ttl')
    assert.ok(ttl > 90_000 && ttl <= 100_000, `ttl ${ttl}`)
    assert.equal(await run('SET', 'c:gone', 'v'), '+OK')
    assert.equal(await run('DEL', 'c:gone'), ':1')
    assert.equal(await n.exists('c:gone'), 0)
    await n.set('c:n', 'tampered') // reads still come from the old side
    assert.equal(await run('GET', 'c:n'), '"11"')
    await n.set('c:n', '11')

    // switch refuses while c:s is not backfilled; a backfill (set-if-absent) fixes it
    await assert.rejects(switchCutover(store, cfg, 'x'), (e: Error) => e instanceof ConflictError && /1 difference\(s\).*c:s/.test(e.message))
    await n.set('c:s', 'before', 'NX')
    const sw = await switchCutover(store, cfg, 'x')
    assert.equal(sw.verify?.different, 0)
    assert.ok((sw.verify?.compared ?? 0) >= 5)
    await applied(sw.epoch)

    // switched: reads from the new side, writes new first then copied to the old side
    await n.set('c:probe', 'new-side')
    assert.equal(await run('GET', 'c:probe'), '"new-side"')
    assert.equal(await run('INCR', 'c:n'), ':12')
    assert.equal(await o.get('c:n'), '12')
    assert.equal(await run('RPUSH', 'c:l', 'c'), ':3')
    assert.deepEqual(await o.lrange('c:l', 0, -1), ['a', 'b', 'c'])

    // abort after switch: back to the old side, nothing lost
    const ab = await abortCutover(store, cfg, 'x')
    await applied(ab.epoch)
    assert.equal(await run('GET', 'c:n'), '"12"')
    assert.equal(await run('LRANGE', 'c:l', 0, -1), '["a", "b", "c"]')
    assert.equal(await run('INCR', 'c:n'), ':13')
    assert.equal(await n.get('c:n'), '12') // no longer double-written
    const status = await cutoverStatus(store, cfg, 'x')
    assert.equal(status.cutover.step, 'aborted')
    assert.equal(status.job?.state, 'cancelled')
    // abort from switched holds the writes, moves reads back (double-write), then aborts
    assert.deepEqual(status.cutover.history.map((h) => h.step), ['double-write', 'switched', 'double-write', 'aborted'])
    assert.equal(status.cutover.hold, undefined)

    // again, to the end
    const st2 = await startCutover(store, cfg, 'x', 'c', 'gnew')
    await applied(st2.epoch)
    assert.equal(await run('INCR', 'c:n'), ':14')
    assert.equal(await n.get('c:n'), '14')
    await assert.rejects(finishCutover(store, cfg, 'x'), /at step double-write; this needs switched/)
    const sw2 = await switchCutover(store, cfg, 'x', {force: true})
    assert.equal(sw2.verify, undefined)
    const fin = await finishCutover(store, cfg, 'x')
    await applied(fin.epoch)
    assert.equal(await run('INCR', 'c:n'), ':15')
    assert.equal(await o.get('c:n'), '14') // the old side is not written any more
    const {config} = await loadRulesConfig(store)
    assert.equal(config.rules.find((r) => r.name === 'c')?.shardName, 'cutover.x')
    const s2 = await cutoverStatus(store, cfg, 'x')
    assert.equal(s2.cutover.step, 'finished')
    assert.equal(s2.job?.state, 'done')
  })

  test('while a cutover is held a write waits and then runs on the side that answers next; reads go on', async () => {
    // rule c is on gnew now (cutover x finished): cut it over back to gold
    const st = await startCutover(store, cfg, 'y', 'c', 'gold')
    await applied(st.epoch)
    assert.equal(await run('SET', 'c:held', '1'), '+OK')
    // the hold a switch sets before the answering side changes (as if the switch stopped there)
    const y = (await loadRulesConfig(store)).cutovers.find((c) => c.name === 'y')!
    const heldEpoch = await store.update(() => ({}), [], [{type: 'put', key: store.keys.cutover('y'), value: JSON.stringify({...y, hold: true})}])
    await applied(heldEpoch)
    assert.match((await cutoverStatus(store, cfg, 'y')).cutover.hold ? 'held' : '', /held/)
    let answered = false
    const write = run('INCR', 'c:held').finally(() => (answered = true))
    assert.equal(await run('GET', 'c:held'), '"1"')
    const impatient = new DbGroupExecutor(exec.router, {parkMaxMs: 100})
    try {
      const route = impatient.router.route(Buffer.from('c:held'))
      assert.ok(route.kind === 'dbgroup')
      const reply = await impatient.execute(route, true, ['INCR', 'c:held'].map((x) => Buffer.from(x)), Buffer.from('c:held'))
      assert.match(formatReply(reply), /cutover y is changing the side that answers and did not finish within 100 ms/)
    } finally {
      await impatient.close()
    }
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(answered, false, 'the write waits while the cutover is held')
    // switch finds the hold already set: straight to switched (no verify), and the write runs on gold first
    const sw = await switchCutover(store, cfg, 'y')
    assert.equal(sw.verify, undefined)
    assert.equal(sw.cutover.step, 'switched')
    assert.equal(sw.cutover.hold, undefined)
    assert.equal(await write, ':2')
    const [o, n] = [oldR.client(), newR.client()]
    assert.equal(await o.get('c:held'), '2')
    assert.equal(await n.get('c:held'), '2')
    const ab = await abortCutover(store, cfg, 'y')
    await applied(ab.epoch)
    assert.equal(await run('INCR', 'c:held'), ':3')
    assert.equal(await n.get('c:held'), '3')
    assert.equal(await o.get('c:held'), '2')
  })

  test('a switch stopped during its verify changes nothing; a step asked to stop before it starts writes nothing', async () => {
    const st = await startCutover(store, cfg, 'w', 'c', 'gold')
    await applied(st.epoch)
    const ctl = new AbortController()
    // The stop arrives once verify has opened its stores (what Ctrl-C or a server's cancel does).
    const openAndStop = async (u: DbUnit) => {
      const s = await openStore(unitStoreUrl(u))
      ctl.abort()
      return s
    }
    await assert.rejects(switchCutover(store, cfg, 'w', {signal: ctl.signal, openStore: openAndStop}), (e: Error) => e instanceof RstoreError && e.code === 'ESTOPPED' && /nothing changed/.test(e.message))
    const after1 = await cutoverStatus(store, cfg, 'w')
    assert.equal(after1.cutover.step, 'double-write')
    assert.equal(after1.cutover.hold, undefined, 'no hold was set')
    assert.equal(after1.epoch, st.epoch, 'no step was written')
    await assert.rejects(abortCutover(store, cfg, 'w', {signal: AbortSignal.abort()}), (e: Error) => e instanceof RstoreError && e.code === 'ESTOPPED')
    assert.equal((await cutoverStatus(store, cfg, 'w')).cutover.step, 'double-write')
    const ab = await abortCutover(store, cfg, 'w')
    assert.equal(ab.cutover.step, 'aborted')
  })

  test('a step whose proxies barrier times out is written and recorded in the checkpoint file', async () => {
    await addConfig(store, 'rule', {name: 'd', regexp: 'd:.*', shardName: 's', example: 'd:1'})
    // What a proxy stopped with SIGSTOP leaves: an online record at an old epoch that never moves.
    const stuck = store.keys.proxy('stuck')
    await coord.txn([], [{type: 'put', key: stuck, value: JSON.stringify({id: 'stuck', addr: '127.0.0.1:1', state: 'online', appliedEpoch: 0, pid: process.pid, startedAt: Date.now()})}])
    try {
      await assert.rejects(startCutover(store, cfg, 't', 'd', 'gnew', {barrierTimeoutMs: 300}), (e: Error) => /stuck/.test(e.message) && /the step is recorded/.test(e.message))
      const st = await cutoverStatus(store, cfg, 't')
      assert.equal(st.cutover.step, 'double-write', 'the step stays written in the coordinator')
      const db = openCheckpoints(cfg.checkpointDir, cfg.product)
      try {
        const jobs = findJobs<Cutover>(db, 'cutover', {args: {name: 't'}})
        assert.equal(jobs.length, 1)
        assert.equal(jobs[0]!.progress.step, 'double-write', 'and recorded in the checkpoint file')
        assert.equal(jobs[0]!.state, 'running')
      } finally {
        db.close()
      }
    } finally {
      await coord.txn([], [{type: 'delete', key: stuck}])
    }
    assert.equal((await abortCutover(store, cfg, 't')).cutover.step, 'aborted')
  })
})
