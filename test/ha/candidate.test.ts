// Sentinel's candidate rule (docs/agent.md "Failover"): priority 0 never, stale links skipped,
// lowest priority first, then the highest offset, then the address.
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {chooseCandidate} from '../../src/ha/candidate.js'

const r = (addr: string, offset: number, priority = 100, linkDownSec = 0) => ({addr, offset, priority, linkDownSec})

test('the lowest non-zero priority wins over a higher offset; priority 0 is never chosen', () => {
  const c = chooseCandidate([r('a:1', 900, 100), r('b:1', 500, 10), r('c:1', 9999, 0)], 3000, 3000)
  assert.equal(c.best?.addr, 'b:1')
  assert.deepEqual(c.skipped, ['c:1: replica-priority 0 (never promoted)'])
})

test('same priority: the highest offset, then the lowest address', () => {
  assert.equal(chooseCandidate([r('a:1', 100), r('b:1', 200)], 3000, 3000).best?.addr, 'b:1')
  assert.equal(chooseCandidate([r('b:1', 200), r('a:1', 200)], 3000, 3000).best?.addr, 'a:1')
})

test('a replica cut off long before the master went down is skipped; none left means no candidate', () => {
  // Allowed: the master's down time plus ten down-after periods = 3 + 30 s.
  const c = chooseCandidate([r('a:1', 999, 100, 40), r('b:1', 10, 100, 33)], 3000, 3000)
  assert.equal(c.best?.addr, 'b:1')
  assert.match(c.skipped[0]!, /^a:1: its link to the master has been down for 40 s/)
  const none = chooseCandidate([r('a:1', 1, 0)], 3000, 3000)
  assert.equal(none.best, null)
  assert.equal(none.skipped.length, 1)
})
