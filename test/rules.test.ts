// Unit tests of the pure rule/shard/dbgroup model: validation and routing (no I/O).
import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {KetamaRing} from '../src/topology/ketama.js'
import {
  compileRules,
  normalizeDbUnit,
  pickWeighted,
  referencesTo,
  RouteError,
  RuleConfigError,
  type RulesConfig,
  type RuleProblem,
} from '../src/topology/rules.js'

function unit(name: string, type: 'redis' | 'mysql' | 'postgres' = 'redis', extra: object = {}): object {
  if (type === 'redis') return {name, type, server: '127.0.0.1', port: 6379, ...extra}
  return {name, type, url: `${type}://u:p@127.0.0.1/db`, ...extra}
}
function group(name: string, items: string[], extra: object = {}, type = 'redis'): object {
  return {name, type, replicateMode: 'writeall', items: items.map((n) => ({name: n, isMaster: true, readWeight: 1})), ...extra}
}

/** A config with groups g0..g3 (redis), shards of each type and rules. */
function base(): RulesConfig {
  return {
    dbunits: ['u0', 'u1', 'u2', 'u3'].map((n) => unit(n)),
    dbgroups: ['g0', 'g1', 'g2', 'g3'].map((g, i) => group(g, [`u${i}`])),
    shards: [
      {name: 'h', shardType: 'hash', shardMap: [0, 1, 2].map((i) => ({refType: 'dbgroup', refName: `g${i}`, shardStr: ''}))},
      {name: 'm', shardType: 'mod', shardMap: [{refType: 'dbgroup', refName: 'g1', shardStr: '1'}, {refType: 'dbgroup', refName: 'g0', shardStr: '0'}]},
      {
        name: 'r',
        shardType: 'range',
        shardMap: [
          {refType: 'dbgroup', refName: 'g1', shardStr: '1000-2000'},
          {refType: 'shard', refName: 'm', shardStr: '0-1000'},
        ],
      },
      {name: 'k', shardType: 'ketama_hash', shardMap: [0, 1, 2, 3].map((i) => ({refType: 'dbgroup', refName: `g${i}`, shardStr: '1'}))},
    ],
    rules: [
      {name: 'user', order: 10, regexp: 'user:(\\d+):(\\w+)', hashSlot: 1, shardName: 'r', example: 'user:5:name'},
      {name: 'any-user', order: 20, regexp: 'user:.*', hashSlot: 0, shardName: 'h', example: 'user:x'},
      {name: 'sess', order: 5, regexp: 'sess:(.+)', hashSlot: 1, shardName: 'k', example: 'sess:abc'},
    ],
  } as unknown as RulesConfig
}

function refused(cfg: RulesConfig, problem: RuleProblem, re?: RegExp): void {
  assert.throws(
    () => compileRules(cfg),
    (err: Error) => {
      assert.ok(err instanceof RuleConfigError, `expected RuleConfigError, got ${err.name}: ${err.message}`)
      assert.equal(err.problem, problem, err.message)
      if (re) assert.match(err.message, re)
      return true
    },
  )
}

describe('rules: validation', () => {
  test('the base config is valid', () => {
    const c = compileRules(base())
    assert.equal(c.rules.length, 3)
    assert.deepEqual(c.rules.map((r) => r.rule.name), ['sess', 'user', 'any-user'])
  })
  test('bad regex', () => {
    const cfg = base()
    cfg.rules[0].regexp = 'user:(\\d+'
    refused(cfg, 'bad-regex', /rule user: bad regexp/)
  })
  test('hashSlot beyond the capture groups', () => {
    const cfg = base()
    cfg.rules[0].hashSlot = 3
    refused(cfg, 'bad-field', /hashSlot 3 but the regexp has 2 capture groups/)
  })
  test('unknown refs: rule->shard, shard->dbgroup, shard->shard, dbgroup->unit, cache', () => {
    let cfg = base()
    cfg.rules[0].shardName = 'nope'
    refused(cfg, 'unknown-ref', /rule user: shard nope/)
    cfg = base()
    cfg.shards[0].shardMap[0].refName = 'gx'
    refused(cfg, 'unknown-ref', /dbgroup gx does not exist/)
    cfg = base()
    cfg.shards[2].shardMap[1].refName = 'mm'
    refused(cfg, 'unknown-ref', /shard mm does not exist/)
    cfg = base()
    cfg.dbgroups[0].items[0].name = 'ux'
    refused(cfg, 'unknown-ref', /dbunit ux/)
    cfg = base()
    cfg.dbgroups[0].cache = 'ux'
    refused(cfg, 'unknown-ref', /cache dbunit ux/)
  })
  test('type mismatch between a group and its units; the cache must be redis', () => {
    let cfg = base()
    cfg.dbunits.push(normalizeDbUnit(unit('my', 'mysql')))
    cfg.dbgroups[0].items.push({name: 'my', isMaster: false, readWeight: 1})
    refused(cfg, 'type-mismatch', /g0 is redis but its item my is a mysql unit/)
    cfg = base()
    cfg.dbunits.push(normalizeDbUnit(unit('my', 'mysql')))
    cfg.dbgroups.push(group('gm', ['my'], {type: 'mysql', cache: 'my'}, 'mysql') as never)
    refused(cfg, 'type-mismatch', /cache must be a redis unit/)
  })
  test('cycles in nested shards', () => {
    const cfg = base()
    cfg.shards.push({name: 'a', shardType: 'hash', shardMap: [{refType: 'shard', refName: 'b', shardStr: ''}], mark: ''})
    cfg.shards.push({name: 'b', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'g0', shardStr: ''}, {refType: 'shard', refName: 'a', shardStr: ''}], mark: ''})
    refused(cfg, 'cycle', /a -> b -> a/)
    const self = base()
    self.shards[0].shardMap.push({refType: 'shard', refName: 'h', shardStr: ''})
    refused(self, 'cycle', /h -> h/)
  })
  test('overlapping, gapped, reversed and malformed ranges', () => {
    let cfg = base()
    cfg.shards[2].shardMap[0].shardStr = '999-2000'
    refused(cfg, 'range-overlap', /overlap/)
    cfg = base()
    cfg.shards[2].shardMap[0].shardStr = '1001-2000'
    refused(cfg, 'range-gap', /gap \[1000, 1001\)/)
    cfg = base()
    cfg.shards[2].shardMap[0].shardStr = '2000-1000'
    refused(cfg, 'bad-shard-str', /reversed/)
    cfg = base()
    cfg.shards[2].shardMap[0].shardStr = '1000'
    refused(cfg, 'bad-shard-str', /start-end/)
  })
  test('mod remainders must be 0..n-1 exactly once', () => {
    let cfg = base()
    cfg.shards[1].shardMap[0].shardStr = '2'
    refused(cfg, 'bad-shard-str', /0 to 1/)
    cfg = base()
    cfg.shards[1].shardMap[0].shardStr = '0'
    refused(cfg, 'duplicate', /remainder 0/)
  })
  test('ketama weights', () => {
    const cfg = base()
    cfg.shards[3].shardMap[0].shardStr = 'x'
    refused(cfg, 'bad-shard-str', /weight/)
    cfg.shards[3].shardMap[0].shardStr = '0'
    refused(cfg, 'bad-shard-str', /weight/)
  })
  test('example must match the whole key and be routable', () => {
    let cfg = base()
    cfg.rules[0].example = 'user:5'
    refused(cfg, 'example-mismatch', /does not match/)
    cfg = base()
    cfg.rules[0].example = 'xuser:5:name' // partial match is not a match
    refused(cfg, 'example-mismatch')
    cfg = base()
    cfg.rules[0].example = 'user:2000:name' // outside [0, 2000)
    refused(cfg, 'example-unroutable', /outside its ranges \[0, 2000\)/)
    cfg = base()
    cfg.rules[0].regexp = 'user:(\\d+)(x)?:(\\w+)'
    cfg.rules[0].hashSlot = 2
    refused(cfg, 'example-unroutable', /capture group 2 matches nothing/)
  })
  test('duplicates, bad names, bad fields, groups without master or reader', () => {
    let cfg = base()
    cfg.rules.push({...cfg.rules[0]})
    refused(cfg, 'duplicate', /two rules are named user/)
    cfg = base()
    cfg.rules[0].name = 'a/b'
    refused(cfg, 'bad-name')
    cfg = base()
    ;(cfg.dbgroups[0] as unknown as {replicateMode: string}).replicateMode = 'writesome'
    refused(cfg, 'bad-field', /replicateMode must be one of writeall, writeone, discard/)
    cfg = base()
    cfg.dbgroups[0].items[0].isMaster = false
    refused(cfg, 'no-master')
    cfg.dbgroups[0].replicateMode = 'discard'
    compileRules(cfg)
    cfg.dbgroups[0].items[0].readWeight = 0
    refused(cfg, 'no-reader')
    assert.throws(() => normalizeDbUnit({name: 'x', type: 'mysql', server: 'h'}), /needs url/)
    assert.throws(() => normalizeDbUnit({name: 'x', type: 'mysql', url: 'postgres://a/b'}), /mysql: or mariadb:/)
    assert.throws(() => normalizeDbUnit({name: 'x', type: 'redis', server: 'h', extra: 1}), /unknown field 'extra'/)
    assert.deepEqual(normalizeDbUnit({Name: 'x', Type: 'redis', Server: 'h:7000'}), {
      name: 'x', type: 'redis', enable: true, server: 'h', port: 7000, maxIdle: 10, maxOpen: 10, maxLifetime: 60, mark: '',
    })
  })
  test('referencesTo', () => {
    const cfg = compileRules(base()).config
    assert.deepEqual(referencesTo(cfg, 'dbunit', 'u1'), ['dbgroup g1'])
    assert.deepEqual(referencesTo(cfg, 'dbgroup', 'g1').sort(), ['shard h', 'shard k', 'shard m', 'shard r'])
    assert.deepEqual(referencesTo(cfg, 'shard', 'm'), ['shard r'])
    assert.deepEqual(referencesTo(cfg, 'shard', 'h'), ['rule any-user'])
    assert.deepEqual(referencesTo(cfg, 'rule', 'user'), [])
  })
})

describe('rules: routing', () => {
  const c = compileRules(base())
  test('rule order: lower order first, first full match wins', () => {
    assert.equal(c.route('user:5:name')?.rule, 'user')
    assert.equal(c.route('user:abc')?.rule, 'any-user') // 'user' needs digits
    assert.equal(c.route('sess:1')?.rule, 'sess')
    // same order: ties by name
    const cfg = base()
    cfg.rules[1].order = 10
    cfg.rules[1].regexp = 'user:(\\d+):(\\w+)'
    cfg.rules[1].name = 'a-user'
    cfg.rules[1].example = 'user:1:x'
    assert.equal(compileRules(cfg).route('user:5:name')?.rule, 'a-user')
  })
  test('unregistered keys', () => {
    assert.equal(c.route('other:1'), undefined)
    assert.equal(c.route('xsess:1'), undefined)
    assert.equal(c.route(''), undefined)
    assert.equal(c.requiresRules, true)
    assert.equal(compileRules({dbunits: [], dbgroups: [], shards: [], rules: []}).requiresRules, false)
  })
  test('range (half-open) with a nested mod shard', () => {
    assert.deepEqual(c.route('user:1000:a'), {
      rule: 'user', order: 10, capture: '1000', hashSlot: 1, dbgroup: 'g1',
      chain: [{shard: 'r', shardType: 'range', index: 0, shardStr: '1000-2000', refType: 'dbgroup', refName: 'g1'}],
    })
    assert.equal(c.route('user:1999:a')?.dbgroup, 'g1')
    const p = c.route('user:999:a')!
    assert.deepEqual(p.chain.map((s) => s.shard), ['r', 'm'])
    assert.equal(p.dbgroup, 'g1') // 999 % 2 = 1
    assert.equal(c.route('user:0:a')?.dbgroup, 'g0')
    assert.equal(c.route('user:998:a')?.dbgroup, 'g0')
    assert.throws(() => c.route('user:2000:a'), RouteError)
    assert.throws(() => c.route('user:99999999999999999999999:a'), /outside its ranges/)
  })
  test('mod with big and negative integers', () => {
    const cfg = base()
    cfg.rules.push({name: 'mm', order: 1, regexp: 'm:(-?\\d+)', hashSlot: 1, shardName: 'm', example: 'm:1', mark: ''})
    const cc = compileRules(cfg)
    assert.equal(cc.route('m:12345678901234567891')?.dbgroup, 'g1')
    assert.equal(cc.route('m:-3')?.dbgroup, 'g1')
    assert.equal(cc.route('m:-4')?.dbgroup, 'g0')
  })
  test('range needs an integer key', () => {
    const cfg = base()
    cfg.rules.push({name: 'rr', order: 1, regexp: 'r:(.*)', hashSlot: 1, shardName: 'r', example: 'r:1', mark: ''})
    assert.throws(() => compileRules(cfg).route('r:abc'), /needs an integer shard key, got 'abc'/)
  })
  test('hash: crc32 of the capture mod item count, same capture same group', () => {
    const cfg = base()
    cfg.rules.push({name: 'hh', order: 1, regexp: 'h:(\\w+):.*', hashSlot: 1, shardName: 'h', example: 'h:a:b', mark: ''})
    const cc = compileRules(cfg)
    const counts = new Map<string, number>()
    for (let i = 0; i < 3000; i++) {
      const a = cc.route(`h:${i}:x`)!
      assert.equal(cc.route(`h:${i}:yyy`)!.dbgroup, a.dbgroup) // hash slot group decides
      counts.set(a.dbgroup, (counts.get(a.dbgroup) ?? 0) + 1)
    }
    assert.deepEqual([...counts.keys()].sort(), ['g0', 'g1', 'g2'])
    for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `uneven: ${[...counts.values()]}`)
    // known value: crc32("a") = 0xe8b7be43 -> 3904355907 % 3 = 0
    assert.equal(cc.route('h:a:b')?.dbgroup, 'g0')
  })
  test('binary keys route without throwing', () => {
    assert.equal(c.route(Buffer.from([0x73, 0x65, 0x73, 0x73, 0x3a, 0xff, 0xfe]))?.rule, 'sess')
    assert.equal(c.route(Buffer.from([0xff]))?.rule, undefined)
  })
})

describe('rules: ketama', () => {
  const names = ['a', 'b', 'c', 'd', 'e']
  const keys = Array.from({length: 20000}, (_, i) => Buffer.from(`key:${i}`))
  test('spreads keys about evenly, weights count', () => {
    const ring = new KetamaRing(names.map((name) => ({name, weight: 1})))
    const counts = new Array(names.length).fill(0)
    for (const k of keys) counts[ring.lookup(k)]++
    for (const n of counts) assert.ok(n > 2800 && n < 5200, `uneven: ${counts}`)
    const weighted = new KetamaRing([{name: 'a', weight: 3}, {name: 'b', weight: 1}])
    let a = 0
    for (const k of keys) if (weighted.lookup(k) === 0) a++
    assert.ok(a / keys.length > 0.68 && a / keys.length < 0.82, `a share ${a / keys.length}`)
  })
  test('removing one item moves only its keys; adding one moves keys only onto it', () => {
    const full = new KetamaRing(names.map((name) => ({name, weight: 1 + (name.charCodeAt(0) % 3)})))
    const without = new KetamaRing(full.items.filter((i) => i.name !== 'c'))
    let moved = 0
    for (const k of keys) {
      const before = full.items[full.lookup(k)].name
      const after = without.items[without.lookup(k)].name
      if (before !== 'c') assert.equal(after, before, `key ${k} moved from ${before} to ${after}`)
      else moved++
    }
    assert.ok(moved > 0)
    // order of items does not matter
    const reversed = new KetamaRing([...full.items].reverse())
    for (const k of keys.slice(0, 2000)) assert.equal(reversed.items[reversed.lookup(k)].name, full.items[full.lookup(k)].name)
  })
  test('through a shard: removing a dbgroup from a ketama shard keeps the others', () => {
    const cfg = base()
    const c1 = compileRules(cfg)
    cfg.shards[3].shardMap = cfg.shards[3].shardMap.filter((it) => it.refName !== 'g2')
    const c2 = compileRules(cfg)
    for (let i = 0; i < 5000; i++) {
      const a = c1.route(`sess:${i}`)!.dbgroup
      if (a !== 'g2') assert.equal(c2.route(`sess:${i}`)!.dbgroup, a)
    }
  })
})

describe('rules: db group members', () => {
  function cfgWith(items: {name: string; isMaster: boolean; readWeight: number}[], mode: string, disabled: string[] = []): ReturnType<typeof compileRules> {
    const cfg = base()
    cfg.dbunits.push(...['m1', 'm2', 's1', 's2'].map((n) => normalizeDbUnit(unit(n, 'redis', {enable: !disabled.includes(n)}))))
    cfg.dbgroups.push({name: 'x', type: 'redis', enable: true, replicateMode: mode as never, items, mark: ''})
    return compileRules(cfg)
  }
  const items = [
    {name: 'm1', isMaster: true, readWeight: 1},
    {name: 's1', isMaster: false, readWeight: 3},
    {name: 'm2', isMaster: true, readWeight: 0},
    {name: 's2', isMaster: false, readWeight: 6},
  ]
  test('writeall / writeone / discard', () => {
    assert.deepEqual(cfgWith(items, 'writeall').writeUnits('x'), ['m1', 'm2'])
    assert.deepEqual(cfgWith(items, 'writeone').writeUnits('x'), ['m1'])
    assert.deepEqual(cfgWith(items, 'discard').writeUnits('x'), [])
    assert.deepEqual(cfgWith(items, 'writeone', ['m1']).writeUnits('x'), ['m2']) // first ENABLED master
    assert.deepEqual(cfgWith(items, 'writeall', ['m2']).writeUnits('x'), ['m1'])
  })
  test('read weights: distribution over 10,000 picks, weight 0 never read', () => {
    const c = cfgWith(items, 'writeall')
    const counts: Record<string, number> = {}
    for (let i = 0; i < 10000; i++) {
      const u = c.readUnit('x')!
      counts[u] = (counts[u] ?? 0) + 1
    }
    assert.equal(counts.m2, undefined)
    const tol = 0.03
    assert.ok(Math.abs(counts.m1 / 10000 - 0.1) < tol, JSON.stringify(counts))
    assert.ok(Math.abs(counts.s1 / 10000 - 0.3) < tol, JSON.stringify(counts))
    assert.ok(Math.abs(counts.s2 / 10000 - 0.6) < tol, JSON.stringify(counts))
    // disabled units are never read
    const d = cfgWith(items, 'writeall', ['s2'])
    for (let i = 0; i < 1000; i++) assert.notEqual(d.readUnit('x'), 's2')
  })
  test('pickWeighted has no off-by-one at the edges', () => {
    const m = [{unit: 'a', weight: 1}, {unit: 'b', weight: 0}, {unit: 'c', weight: 2}]
    assert.equal(pickWeighted(m, () => 0), 'a')
    assert.equal(pickWeighted(m, () => 0.333), 'a')
    assert.equal(pickWeighted(m, () => 0.334), 'c')
    assert.equal(pickWeighted(m, () => 0.9999999), 'c')
    assert.equal(pickWeighted([{unit: 'a', weight: 1}, {unit: 'z', weight: 0}], () => 0.9999999), 'a')
    assert.equal(pickWeighted([{unit: 'z', weight: 0}], () => 0.5), undefined)
    assert.equal(pickWeighted([], () => 0.5), undefined)
  })
})
