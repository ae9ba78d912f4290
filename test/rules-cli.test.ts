// The rstore config objects (dbunit, dbgroup, shard, rule) and `rstore route`: core functions in-process
// against the embedded coordinator, and the commands through the built binary (node bin/run.js).
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {addConfig, listConfig, loadRulesConfig, removeConfig, updateConfig} from '../src/service/rules-config.js'
import {routeKey} from '../src/service/route.js'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {TopologyStore} from '../src/coord/topology-store.js'
import {ConflictError, NotFoundError} from '../src/errors.js'
import {RuleConfigError} from '../src/topology/rules.js'
import {slotOf} from '../src/topology/slots.js'
import {runCli, type CliResult} from './harness/cluster.js'
import {removeDir, tempDir} from './harness/process.js'


type Run = CliResult

function run(args: string[]): Promise<Run> {
  return runCli(args, {timeoutMs: 60_000, env: {...process.env, NO_COLOR: '1'}})
}

let dir: string
let coord: EmbeddedCoordinator
let n = 0

before(async () => {
  dir = tempDir('rulescli')
  coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
})
after(async () => {
  await coord.close()
  removeDir(dir)
})

async function dump(store: TopologyStore): Promise<string> {
  return JSON.stringify((await coord.list(store.prefix)).map((kv) => [kv.key, kv.value, kv.modRevision]))
}

async function seed(store: TopologyStore): Promise<void> {
  await addConfig(store, 'dbunit', {name: 'r1', type: 'redis', server: '127.0.0.1:7001'})
  await addConfig(store, 'dbunit', {name: 'r2', type: 'redis', server: '127.0.0.1', port: 7002})
  await addConfig(store, 'dbunit', {name: 'pg', type: 'postgres', url: 'postgres://u:secret@127.0.0.1:5432/db'})
  await addConfig(store, 'dbgroup', {name: 'gr', type: 'redis', replicateMode: 'writeone', items: [{name: 'r1', isMaster: true, readWeight: 1}, {name: 'r2', isMaster: false, readWeight: 2}]})
  await addConfig(store, 'dbgroup', {name: 'gp', type: 'postgres', items: [{name: 'pg'}]})
  await addConfig(store, 'shard', {name: 'inner', shardType: 'mod', shardMap: [{refType: 'dbgroup', refName: 'gr', shardStr: '0'}, {refType: 'dbgroup', refName: 'gp', shardStr: '1'}]})
  await addConfig(store, 'shard', {name: 'top', shardType: 'range', shardMap: [{refType: 'shard', refName: 'inner', shardStr: '0-100'}, {refType: 'dbgroup', refName: 'gp', shardStr: '100-1000'}]})
}

describe('rules config core', () => {
  test('add/update/remove validate the whole config, bump the epoch, refuse with nothing written', async () => {
    const store = new TopologyStore(coord, `core${++n}`)
    await seed(store)
    const before = (await loadRulesConfig(store)).epoch
    const r = await addConfig(store, 'rule', {name: 'u', order: 1, regexp: 'u:(\\d+):\\w+', hashSlot: 1, shardName: 'top', example: 'u:7:a'})
    assert.equal(r.epoch, before + 1)

    const snap = await dump(store)
    const refuse = async (fn: () => Promise<unknown>, type: new (...a: never[]) => Error, re: RegExp) => {
      await assert.rejects(fn, (err: Error) => {
        assert.ok(err instanceof type, `${err.name}: ${err.message}`)
        assert.match(err.message, re)
        return true
      })
      assert.equal(await dump(store), snap, 'a refused change wrote something')
    }
    await refuse(() => addConfig(store, 'rule', {name: 'bad', regexp: 'x(', shardName: 'top', example: 'x'}), RuleConfigError, /bad regexp/)
    await refuse(() => addConfig(store, 'rule', {name: 'b2', regexp: 'b:(\\d+)', hashSlot: 1, shardName: 'top', example: 'b:5000'}), RuleConfigError, /outside its ranges/)
    await refuse(() => addConfig(store, 'rule', {name: 'b3', regexp: 'b:(\\d+)', hashSlot: 1, shardName: 'top', example: 'c:1'}), RuleConfigError, /does not match/)
    await refuse(() => addConfig(store, 'rule', {name: 'u', regexp: 'u', shardName: 'top', example: 'u'}), ConflictError, /already exists/)
    await refuse(() => removeConfig(store, 'dbgroup', 'gr'), ConflictError, /still used by shard inner/)
    await refuse(() => removeConfig(store, 'shard', 'top'), ConflictError, /still used by rule u/)
    await refuse(() => removeConfig(store, 'dbunit', 'r2'), ConflictError, /still used by dbgroup gr/)
    await refuse(() => removeConfig(store, 'dbunit', 'nope'), NotFoundError, /does not exist/)
    // updating the range shard so that the rule's example no longer routes is refused
    await refuse(() => updateConfig(store, 'shard', 'top', {shardMap: [{refType: 'dbgroup', refName: 'gp', shardStr: '50-100'}]}), RuleConfigError, /example 'u:7:a' cannot be routed/)
    // a cycle through an update
    await refuse(
      () => updateConfig(store, 'shard', 'inner', {shardMap: [{refType: 'shard', refName: 'top', shardStr: '0'}, {refType: 'dbgroup', refName: 'gp', shardStr: '1'}]}),
      RuleConfigError,
      /cycle: (inner -> top -> inner|top -> inner -> top)/,
    )
    await refuse(() => updateConfig(store, 'dbgroup', 'gr', {type: 'postgres'}), RuleConfigError, /gr is postgres but its item r1 is a redis unit/)

    const up = await updateConfig(store, 'dbgroup', 'gr', {replicateMode: 'writeall'})
    assert.equal(up.epoch, r.epoch + 1)
    assert.equal((await listConfig(store, 'dbgroup')).items.find((g) => g.name === 'gr')?.name, 'gr')
    await removeConfig(store, 'rule', 'u')
    await removeConfig(store, 'shard', 'top')
    assert.deepEqual((await listConfig(store, 'shard')).items.map((s) => s.name), ['inner'])
  })

  test('concurrent edits cannot combine into an invalid config', async () => {
    const store = new TopologyStore(coord, `core${++n}`)
    await seed(store)
    await addConfig(store, 'dbgroup', {name: 'gx', type: 'redis', items: [{name: 'r1'}]})
    // remove gx while another edit adds a shard referencing it: exactly one may win
    const results = await Promise.allSettled([
      removeConfig(store, 'dbgroup', 'gx'),
      addConfig(store, 'shard', {name: 'sx', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'gx'}]}),
    ])
    const ok = results.filter((r) => r.status === 'fulfilled').length
    assert.equal(ok, 1, JSON.stringify(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))))
    // and the stored config is valid
    const {config} = await loadRulesConfig(store)
    const {compileRules} = await import('../src/topology/rules.js')
    compileRules(config)
  })

  test('a config change is seen by a topology watcher (epoch bump)', async () => {
    const store = new TopologyStore(coord, `core${++n}`)
    let fired = 0
    const w = await store.watch(() => fired++)
    try {
      await addConfig(store, 'dbunit', {name: 'r1', type: 'redis', server: 'h'})
      const t0 = Date.now()
      while (!fired && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10))
      assert.ok(fired > 0)
    } finally {
      await w.close()
    }
  })

  test('route: rule keys, unregistered keys, and slots when there are no rules', async () => {
    const store = new TopologyStore(coord, `core${++n}`)
    const key = 'plain-key'
    const slot = slotOf(key)
    await store.update(() => ({groups: [{id: 3, servers: [{addr: '127.0.0.1:6999', role: 'master'}]}], slots: [{id: slot, state: 'online', group: 3}]}))
    const s = await routeKey(store, key)
    assert.equal(s.kind, 'slot')
    if (s.kind === 'slot') {
      assert.equal(s.slot, slot)
      assert.equal(s.state, 'online')
      assert.equal(s.group, 3)
      assert.equal(s.master, '127.0.0.1:6999')
    }
    await seed(store)
    assert.equal((await routeKey(store, key)).kind, 'slot') // units/groups/shards alone do not require rules
    await addConfig(store, 'rule', {name: 'u', order: 1, regexp: 'u:(\\d+):\\w+', hashSlot: 1, shardName: 'top', example: 'u:7:a'})
    const u = await routeKey(store, key)
    assert.equal(u.kind, 'unregistered')
    const r = await routeKey(store, 'u:4:x')
    assert.equal(r.kind, 'rule')
    if (r.kind === 'rule') {
      assert.deepEqual(r.path.chain.map((c) => `${c.shard}>${c.refName}`), ['top>inner', 'inner>gr'])
      assert.equal(r.group.name, 'gr')
      assert.deepEqual(r.writeUnits, ['r1'])
      assert.deepEqual(r.readUnits, ['r1', 'r2'])
    }
    const p = await routeKey(store, 'u:5:x')
    assert.equal(p.kind === 'rule' && p.path.dbgroup, 'gp')
    if (p.kind === 'rule') assert.doesNotMatch(JSON.stringify(p), /secret/)
    assert.equal((await routeKey(store, 'u:1000:x')).kind, 'unregistered')
  })
})

describe('rules commands through the binary', () => {
  const product = `clirules${process.pid}`
  let flags: string[]
  before(() => {
    flags = ['--product', product, '--coordinator-addr', join(dir, 'meta.db')]
  })
  const ok = async (args: string[]): Promise<string> => {
    const r = await run([...args, ...flags])
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const fails = async (args: string[], re: RegExp): Promise<void> => {
    const r = await run([...args, ...flags])
    assert.notEqual(r.code, 0, `${args.join(' ')} should fail: ${r.stdout}`)
    const lines = r.stderr.trim().split('\n')
    assert.equal(lines.length, 1, r.stderr)
    assert.match(lines[0], re)
  }

  test('add, list, show, update, remove, route', async () => {
    await Promise.all([
      ok(['dbunit', 'add', 'r1', '--type', 'redis', '--server', '127.0.0.1:7001']),
      ok(['dbunit', 'add', 'my', '--json-value', '{"type":"mysql","url":"mysql://root:pw@127.0.0.1:3306/db","maxOpen":4}']),
    ])
    await Promise.all([
      ok(['dbgroup', 'add', 'gr', '--type', 'redis', '--item', 'r1:master:1', '--replicate-mode', 'writeone']),
      ok(['dbgroup', 'add', 'gm', '--type', 'mysql', '--item', 'my']),
    ])
    await ok(['shard', 'add', 'k', '--shard-type', 'ketama_hash', '--item', 'dbgroup:gr:1', '--item', 'dbgroup:gm:2'])
    await fails(['rule', 'add', 'bad', '--regexp', 'a:(\\d+)', '--hash-slot', '1', '--shard', 'k', '--example', 'b:1'], /^Error: rule bad: example 'b:1' does not match/)
    await fails(['rule', 'add', 'bad', '--regexp', 'a:(\\d+', '--shard', 'k', '--example', 'a:1'], /^Error: rule bad: bad regexp/)
    await fails(['dbgroup', 'add', 'gx', '--type', 'redis', '--item', 'nope'], /^Error: dbgroup gx: dbunit nope does not exist/)
    await fails(['dbgroup', 'add', 'gx', '--item', 'r1:boss'], /bad --item/)
    const add = JSON.parse(await ok(['rule', 'add', 'a', '--regexp', 'a:(\\d+):.*', '--hash-slot', '1', '--shard', 'k', '--example', 'a:1:x', '--order', '5', '--json']))
    assert.equal(add.action, 'added')
    assert.ok(add.epoch >= 6)

    const list = await ok(['rule', 'list'])
    assert.match(list, /ORDER\s+NAME\s+REGEXP/)
    assert.match(list, /5\s+a\s+a:\(\\d\+\):\.\*\s+1\s+k\s+a:1:x/)
    const units = JSON.parse(await ok(['dbunit', 'list', '--json']))
    assert.deepEqual(units.items.map((u: {name: string}) => u.name), ['my', 'r1'])
    assert.doesNotMatch(await ok(['dbunit', 'list']), /pw/)
    const show = JSON.parse(await ok(['shard', 'show', 'k', '--json']))
    assert.deepEqual(show.usedBy, ['rule a'])
    assert.equal(show.item.shardMap[1].shardStr, '2')

    const route = JSON.parse(await ok(['route', 'a:42:zz', '--json']))
    assert.equal(route.kind, 'rule')
    assert.equal(route.path.rule, 'a')
    assert.equal(route.path.capture, '42')
    assert.equal(route.path.chain[0].shard, 'k')
    const human = await ok(['route', 'a:42:zz'])
    assert.match(human, /^rule\s+a \(order 5\)$/m)
    assert.match(human, /^capture\s+42 \(group 1\)$/m)
    assert.match(human, /^shards\s+k\[ketama_hash \d\] -> dbgroup g[rm]$/m)
    assert.match(human, /^dbgroup\s+g[rm] \((redis|mysql), write(one|all)\)$/m)
    const unreg = await ok(['route', 'nope'])
    assert.match(unreg, /^route\s+not registered$/m)

    await fails(['shard', 'remove', 'k'], /^Error: shard k is still used by rule a; change those first$/)
    await ok(['dbunit', 'update', 'r1', '--no-enable'])
    assert.equal(JSON.parse(await ok(['dbunit', 'show', 'r1', '--json'])).item.enable, false)
    await fails(['dbunit', 'update', 'r1'], /nothing to update/)
    await fails(['cutover', 'start', 'ca', '--rule', 'a', '--to', 'gm'], /^Error: rule a already routes to dbgroup gm/)
    await fails(['cutover', 'status', 'ca'], /^Error: cutover ca does not exist$/)
    await fails(['cutover', 'switch', 'ca'], /^Error: cutover ca does not exist \(start it with/)
    await ok(['rule', 'remove', 'a'])
    // with no rules left: the slot route
    const slot = JSON.parse(await ok(['route', 'a:42:zz', '--json']))
    assert.equal(slot.kind, 'slot')
    assert.equal(slot.slot, slotOf('a:42:zz'))
    assert.match(await ok(['route', 'a:42:zz']), /^route\s+slot \(no rules configured\)$/m)
  })
})
