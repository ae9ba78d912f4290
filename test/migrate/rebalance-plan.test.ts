// The rebalance planner against hand-computed plans (pure, no servers).
import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {ConflictError} from '../../src/errors.js'
import {checkRebalanceable, planRebalance, targetCounts} from '../../src/migrate/rebalance-plan.js'
import type {GroupInfo, SlotInfo, Topology} from '../../src/topology/model.js'

const MB = 1024 * 1024

function topo(ranges: [number, number, number][], groups: number[], opts: {noMaster?: number[]} = {}): Topology {
  const slots: SlotInfo[] = []
  for (let id = 0; id < 1024; id++) slots.push({id, state: 'offline', group: 0})
  for (const [from, to, g] of ranges) for (let id = from; id <= to; id++) slots[id] = {id, state: 'online', group: g}
  const gm = new Map<number, GroupInfo>()
  for (const id of groups) {
    gm.set(id, {id, servers: opts.noMaster?.includes(id) ? [{addr: `10.0.0.${id}:6380`, role: 'slave'}] : [{addr: `10.0.0.${id}:6379`, role: 'master'}]})
  }
  return {epoch: 7, slots, groups: gm}
}

describe('rebalance plan', () => {
  test('by memory, uneven maxmemory 1:2:1, everything on group 1', () => {
    const plan = planRebalance(topo([[0, 1023, 1]], [1, 2, 3]), 'memory', new Map([[1, 100 * MB], [2, 200 * MB], [3, 100 * MB]]))
    assert.deepEqual(plan.groups.map((g) => [g.group, g.current, g.target]), [[1, 1024, 256], [2, 0, 512], [3, 0, 256]])
    assert.equal(plan.moves.length, 768)
    // group 1 keeps its lowest slots; the given slots fill group 2 then group 3, in slot order
    assert.deepEqual(
      plan.ranges.map((r) => [r.from, r.to, r.fromGroup, r.toGroup]),
      [[256, 767, 1, 2], [768, 1023, 1, 3]],
    )
  })

  test('by memory, 1 GB : 2 GB : 3 GB over a 2-group split', () => {
    // shares 170.67, 341.33, 512 -> floors 170+341+512 = 1023; the one extra slot goes to a group
    // that would otherwise give one away, largest remainder first: group 1 (0.67) -> 171.
    const plan = planRebalance(topo([[0, 511, 1], [512, 1023, 2]], [1, 2, 3]), 'memory', new Map([[1, 1024 * MB], [2, 2048 * MB], [3, 3072 * MB]]))
    assert.deepEqual(plan.groups.map((g) => [g.group, g.current, g.target]), [[1, 512, 171], [2, 512, 341], [3, 0, 512]])
    assert.equal(plan.moves.length, 341 + 171)
    assert.deepEqual(
      plan.ranges.map((r) => [r.from, r.to, r.fromGroup, r.toGroup]),
      [[171, 511, 1, 3], [853, 1023, 2, 3]],
    )
  })

  test('by memory, a bigger group already holding more keeps it (fewest moves)', () => {
    // 3:1 with group 1 at 800 and group 2 at 224: targets 768 / 256 -> 32 slots move 1 -> 2.
    const plan = planRebalance(topo([[0, 799, 1], [800, 1023, 2]], [1, 2]), 'memory', new Map([[1, 3000 * MB], [2, 1000 * MB]]))
    assert.deepEqual(plan.groups.map((g) => g.target), [768, 256])
    assert.deepEqual(plan.ranges.map((r) => [r.from, r.to, r.fromGroup, r.toGroup]), [[768, 799, 1, 2]])
  })

  test('by slots: equal shares, already balanced moves nothing', () => {
    const t = topo([[0, 511, 1], [512, 1023, 2]], [1, 2])
    assert.equal(planRebalance(t, 'slots').moves.length, 0)
    const three = planRebalance(topo([[0, 1023, 1]], [1, 2, 3]), 'slots')
    // 341.33 each: group 1 holds more than 341, so it keeps the extra slot
    assert.deepEqual(three.groups.map((g) => g.target), [342, 341, 341])
    assert.deepEqual(three.ranges.map((r) => [r.from, r.to, r.fromGroup, r.toGroup]), [[342, 682, 1, 2], [683, 1023, 1, 3]])
  })

  test('targets stay within one slot of the exact share and sum to 1024', () => {
    for (const weights of [[1, 1, 1], [3, 5, 7, 11], [1, 1000], [7, 7, 7, 7, 7, 7, 7]]) {
      const groups = weights.map((w, i) => ({group: i + 1, weight: w, current: i === 0 ? 1024 : 0}))
      const t = targetCounts(groups)
      assert.equal(t.reduce((a, g) => a + g.target, 0), 1024)
      for (const g of t) assert.ok(Math.abs(g.target - g.share) < 1, `${g.target} vs ${g.share}`)
    }
  })

  test('refusals name the reason', () => {
    const weights = new Map([[1, MB], [2, MB]])
    assert.throws(() => checkRebalanceable(topo([[0, 511, 1], [512, 1023, 2]], [1, 2]), 'memory', new Map([[1, MB], [2, 0]])), (e: Error) => {
      assert.ok(e instanceof ConflictError)
      assert.match(e.message, /maxmemory/)
      assert.match(e.message, /10\.0\.0\.2:6379 \(group 2\)/)
      return true
    })
    assert.throws(() => checkRebalanceable(topo([[0, 500, 1], [512, 1023, 2]], [1, 2]), 'memory', weights), /every slot must be online.*501-511/)
    assert.throws(() => checkRebalanceable(topo([[0, 511, 1], [512, 1023, 2]], [1, 2], {noMaster: [2]}), 'slots'), /every group must have a master.*group 2/)
    const migrating = topo([[0, 511, 1], [512, 1023, 2]], [1, 2])
    migrating.slots[3] = {id: 3, state: 'migrating', group: 2, from: 1}
    assert.throws(() => checkRebalanceable(migrating, 'slots'), /slot 3 is migrating/)
    const pending = topo([[0, 511, 1], [512, 1023, 2]], [1, 2])
    pending.slots[9] = {id: 9, state: 'online', group: 1, pending: true}
    assert.throws(() => checkRebalanceable(pending, 'slots'), /pending/)
  })
})
