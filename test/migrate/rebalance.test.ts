// `rstore rebalance` on real servers: --dry-run plans for uneven maxmemory match hand-computed ones,
// refusals name their reason, and a real rebalance across three groups under load ends balanced
// with nothing lost.
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {startCluster} from '../harness/cluster.js'
import {jobs, misplacedKeys, owners, slotRanges} from './helpers.js'
import {Workload} from './workload.js'

const MB = 1024 * 1024
const coordinator = (process.env.RSTORE_TEST_COORD as 'embedded' | 'etcd' | undefined) ?? 'embedded'

interface PlanJson {
  by: string
  groups: {group: number; weight: number; current: number; target: number}[]
  ranges: {from: number; to: number; count: number; fromGroup: number; toGroup: number}[]
  moves: unknown[]
}

test(`rebalance --dry-run by maxmemory, then a real rebalance over three groups (${coordinator})`, {timeout: 240_000}, async (t) => {
  // split over 3 groups: 0-340 -> 1, 341-681 -> 2, 682-1023 -> 3
  const c = await startCluster({groups: 3, proxies: 2, slots: 'split', coordinator})
  let w: Workload | undefined
  try {
    const masters = c.groups.map((g) => g.client())
    const setMax = (i: number, bytes: number) => masters[i]!.config('SET', 'maxmemory', String(bytes))

    // No maxmemory anywhere: refused, naming the masters; --by slots plans equal shares.
    const refused = await c.cli(['rebalance', '--dry-run'])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /every master must have maxmemory set.*\(group 1\).*\(group 2\).*\(group 3\).*--by slots/)
    const even = JSON.parse(await c.cliOk(['rebalance', '--by', 'slots', '--dry-run', '--json'])) as PlanJson
    // 341.33 each: the group holding 342 keeps its extra slot: nothing to move
    assert.deepEqual(even.groups.map((g) => [g.current, g.target]), [[341, 341], [341, 341], [342, 342]])
    assert.equal(even.moves.length, 0)

    // 100 MB : 100 MB : 200 MB -> 256 : 256 : 512. Groups 1 and 2 keep their lowest 256 slots and give
    // 256-340 and 597-681 to group 3.
    await setMax(0, 100 * MB)
    await setMax(1, 100 * MB)
    await setMax(2, 200 * MB)
    const plan = JSON.parse(await c.cliOk(['rebalance', '--dry-run', '--json'])) as PlanJson
    assert.deepEqual(plan.groups.map((g) => [g.group, g.weight, g.current, g.target]), [[1, 100 * MB, 341, 256], [2, 100 * MB, 341, 256], [3, 200 * MB, 342, 512]])
    assert.deepEqual(plan.ranges.map((r) => [r.from, r.to, r.count, r.fromGroup, r.toGroup]), [[256, 340, 85, 1, 3], [597, 681, 85, 2, 3]])
    // 300 : 100 : 100 -> 614.4, 204.8, 204.8 -> floors 614+204+204 = 1022; the two extra slots go to
    // groups 2 and 3, which would otherwise give slots away (group 1 receives): 614, 205, 205.
    await setMax(0, 300 * MB)
    await setMax(2, 100 * MB)
    const plan2 = JSON.parse(await c.cliOk(['rebalance', '--dry-run', '--json'])) as PlanJson
    assert.deepEqual(plan2.groups.map((g) => g.target), [614, 205, 205])
    assert.deepEqual(plan2.ranges.map((r) => [r.from, r.to, r.fromGroup, r.toGroup]), [[546, 681, 2, 1], [887, 1023, 3, 1]])
    const text = await c.cliOk(['rebalance', '--dry-run'])
    assert.match(text, /plan: move 273 slot\(s\)/)
    assert.match(text, /546-681\s+136\s+2\s+1/)
    assert.equal((await slotRanges(c)).length, 3, 'a dry run changes nothing')

    // Real rebalance (100 : 100 : 200) under load.
    await setMax(0, 100 * MB)
    await setMax(2, 200 * MB)
    w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 600, growPerKind: 200, writers: 6})
    await w.populate()
    w.start()
    const res = await c.cli(['rebalance', '--lock-ttl', '2'], {timeoutMs: 220_000})
    await w.stop()
    t.diagnostic(res.stdout.trim().split('\n').slice(0, 3).join(' | '))
    assert.equal(res.code, 0, res.stderr + res.stdout)
    assert.match(res.stderr, /plan: move 170 slot\(s\)/)
    assert.match(res.stdout, /170\/170 slot\(s\) moved/)
    const owner = owners(await slotRanges(c))
    assert.deepEqual([1, 2, 3].map((g) => owner.filter((x) => x === g).length), [256, 256, 512])
    const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
    assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []}, 'client errors, wrong replies, final read-back through both proxies')
    assert.deepEqual(await misplacedKeys(masters, owner), [])
    assert.equal((await jobs(c))[0]!.kind, 'rebalance')
    // Balanced now: nothing to do.
    assert.match(await c.cliOk(['rebalance', '--dry-run']), /already balanced/)
  } finally {
    await w?.stop()
    await c.stop()
  }
})
