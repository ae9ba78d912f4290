// The slot-table transitions of a migration job, on topologies built in memory (no Redis, no coordinator).
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {ConflictError} from '../../src/errors.js'
import type {SlotInfo, Topology} from '../../src/topology/model.js'
import type {SlotRow, SlotRowState} from '../../src/migrate/migration-store.js'
import {advance, cancelMarks, markPending, reconcile, releaseHold, releaseStrays, startMoving} from '../../src/migrate/transitions.js'

/** 1024 slots online in group 1, then the given records. */
function topo(...slots: SlotInfo[]): Topology {
  const all: SlotInfo[] = Array.from({length: 1024}, (_, id) => ({id, state: 'online', group: 1}))
  for (const s of slots) all[s.id] = s
  return {epoch: 7, slots: all, groups: new Map()}
}

function row(slot: number, state: SlotRowState = 'queued', source = 1, target = 2): SlotRow {
  return {seq: slot, slot, source, target, state, step: 'bucket', bucketSeq: -1, pendingCursor: '0', bucketKeys: 0, keysMoved: 0, bytesMoved: 0, epoch: null}
}

function conflict(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConflictError, String(err))
    assert.equal(err.message, message)
    return true
  })
}

test('markPending marks each slot still online at its source, keeping its other fields', () => {
  const t = topo({id: 4, state: 'online', group: 1, hold: true})
  assert.deepEqual(markPending(t, [row(3), row(4)]), [
    {id: 3, state: 'online', group: 1, pending: true},
    {id: 4, state: 'online', group: 1, hold: true, pending: true},
  ])
  assert.equal(t.slots[3]!.pending, undefined, 'the topology itself is not changed')
})

test('markPending refuses a slot changed meanwhile', () => {
  conflict(() => markPending(topo({id: 3, state: 'online', group: 5}), [row(3)]), 'slot 3 changed meanwhile (now online in group 5); run the command again')
  conflict(() => markPending(topo({id: 3, state: 'migrating', group: 2, from: 1}), [row(3)]), 'slot 3 changed meanwhile (now migrating in group 2); run the command again')
})

test('advance: finishing goes online at its target, moving turns migrating + pending, next gets the hold', () => {
  const t = topo({id: 1, state: 'migrating', group: 2, from: 1})
  const out = advance(t, {finishing: row(1, 'migrating'), moving: row(2), next: row(3)})
  assert.deepEqual(out, [
    {id: 1, state: 'online', group: 2},
    {id: 2, state: 'migrating', group: 2, from: 1, pending: true},
    {id: 3, state: 'online', group: 1, hold: true},
  ])
})

test('advance writes nothing for a slot already migrating or a next slot already held', () => {
  const t = topo({id: 2, state: 'migrating', group: 2, from: 1, pending: true}, {id: 3, state: 'online', group: 1, pending: true, hold: true})
  assert.deepEqual(advance(t, {finishing: null, moving: row(2, 'migrating'), next: row(3)}), [])
  assert.deepEqual(advance(t, {finishing: null, moving: null, next: null}), [])
})

test('advance: the first slot of a job, nothing finishing', () => {
  assert.deepEqual(advance(topo({id: 9, state: 'online', group: 1, pending: true}), {finishing: null, moving: row(9), next: null}), [
    {id: 9, state: 'migrating', group: 2, from: 1, pending: true},
  ])
})

test('advance refuses a finishing slot no longer migrating to its target', () => {
  conflict(
    () => advance(topo(), {finishing: row(1, 'migrating'), moving: null, next: null}),
    'slot 1 is no longer migrating to group 2 (now online in group 1)',
  )
  conflict(
    () => advance(topo({id: 1, state: 'migrating', group: 3, from: 1}), {finishing: row(1, 'migrating'), moving: null, next: null}),
    'slot 1 is no longer migrating to group 2 (now migrating in group 3)',
  )
})

test('advance refuses a moving or next slot no longer online at its source', () => {
  conflict(() => advance(topo({id: 2, state: 'online', group: 4}), {finishing: null, moving: row(2), next: null}), 'slot 2 is no longer online in group 1 (now online in group 4)')
  conflict(() => advance(topo({id: 3, state: 'offline', group: 1}), {finishing: null, moving: row(2), next: row(3)}), 'slot 3 is no longer online in group 1 (now offline in group 1)')
})

test('advance refuses a second migrating slot (rule 3), but not the one finishing in the same change', () => {
  const t = topo({id: 50, state: 'migrating', group: 3, from: 1})
  conflict(() => advance(t, {finishing: null, moving: row(2), next: null}), 'slot 50 is migrating (from group 1 to group 3); only one slot may migrate at a time')
  const f = topo({id: 1, state: 'migrating', group: 2, from: 1})
  assert.equal(advance(f, {finishing: row(1, 'migrating'), moving: row(2), next: null}).length, 2)
})

test('releaseHold drops the hold of the held slot, nothing when it has none', () => {
  const t = topo({id: 3, state: 'online', group: 1, pending: true, hold: true})
  assert.deepEqual(releaseHold(t, 3), [{id: 3, state: 'online', group: 1, pending: true, hold: false}])
  assert.deepEqual(releaseHold(t, 4), [])
})

test('releaseStrays drops the hold of every stray slot', () => {
  const t = topo({id: 5, state: 'online', group: 1, pending: true, hold: true})
  assert.deepEqual(releaseStrays(t, [row(5)]), [{id: 5, state: 'online', group: 1, pending: true, hold: false}])
})

test('startMoving clears pending on the migrating slot, nothing when already cleared', () => {
  assert.deepEqual(startMoving(topo({id: 2, state: 'migrating', group: 2, from: 1, pending: true}), row(2, 'migrating')), [{id: 2, state: 'migrating', group: 2, from: 1}])
  assert.deepEqual(startMoving(topo({id: 2, state: 'migrating', group: 2, from: 1}), row(2, 'migrating')), [])
})

test('startMoving refuses a slot no longer migrating from its source to its target', () => {
  conflict(() => startMoving(topo(), row(2, 'migrating')), 'slot 2 is no longer migrating from group 1 to group 2 (now online in group 1)')
  conflict(
    () => startMoving(topo({id: 2, state: 'migrating', group: 2, from: 3}), row(2, 'migrating')),
    'slot 2 is no longer migrating from group 1 to group 2 (now migrating in group 2)',
  )
})

test('cancelMarks clears pending and hold of the slots left', () => {
  const t = topo({id: 6, state: 'online', group: 1, pending: true, hold: true}, {id: 7, state: 'online', group: 1, pending: true})
  assert.deepEqual(cancelMarks(t, [row(6), row(7)]), [
    {id: 6, state: 'online', group: 1, pending: false, hold: false},
    {id: 7, state: 'online', group: 1, pending: false, hold: false},
  ])
})

test('reconcile classifies landed, inflight and queued rows and skips finished ones', () => {
  const t = topo({id: 1, state: 'online', group: 2}, {id: 2, state: 'migrating', group: 2, from: 1, pending: true}, {id: 3, state: 'online', group: 1, pending: true})
  const rows = [row(0, 'done'), row(1, 'migrating'), row(2, 'migrating'), row(3), row(4), row(8, 'cancelled')]
  const rec = reconcile({id: 'j1'}, t, rows)
  assert.deepEqual(rec.landed.map((r) => r.slot), [1])
  assert.equal(rec.inflight?.slot, 2)
  assert.deepEqual(rec.queued.map((r) => r.slot), [3, 4])
})

test('reconcile: a queued row whose slot is migrating is in flight (killed before its checkpoint)', () => {
  const rec = reconcile({id: 'j1'}, topo({id: 2, state: 'migrating', group: 2, from: 1, pending: true}), [row(2, 'queued')])
  assert.equal(rec.inflight?.slot, 2)
  assert.equal(rec.inflight?.state, 'queued')
})

test('reconcile refuses a slot changed outside the job', () => {
  conflict(
    () => reconcile({id: 'j1'}, topo({id: 3, state: 'online', group: 4}), [row(3)]),
    "job j1: slot 3 is online in group 4, but the job has it queued (group 1 -> 2); the slot table was changed outside the job. Put the slot back ('rstore slot info 3') or cancel the job ('rstore jobs cancel j1')",
  )
  conflict(
    () => reconcile({id: 'j1'}, topo({id: 3, state: 'migrating', group: 4, from: 1}), [row(3, 'migrating')]),
    "job j1: slot 3 is migrating from group 1 in group 4, but the job has it migrating (group 1 -> 2); the slot table was changed outside the job. Put the slot back ('rstore slot info 3') or cancel the job ('rstore jobs cancel j1')",
  )
  // Recorded queued but online at the target: not something the job did.
  conflict(
    () => reconcile({id: 'j1'}, topo({id: 3, state: 'online', group: 2}), [row(3)]),
    "job j1: slot 3 is online in group 2, but the job has it queued (group 1 -> 2); the slot table was changed outside the job. Put the slot back ('rstore slot info 3') or cancel the job ('rstore jobs cancel j1')",
  )
})

test('reconcile refuses a migrating slot outside the job', () => {
  conflict(
    () => reconcile({id: 'j1'}, topo({id: 900, state: 'migrating', group: 3, from: 1}), [row(3)]),
    'slot 900 is migrating from group 1 to group 3 outside job j1; only one slot may migrate at a time',
  )
  // The job's own migrating slot is not "outside".
  const rec = reconcile({id: 'j1'}, topo({id: 3, state: 'migrating', group: 2, from: 1}), [row(3, 'migrating')])
  assert.equal(rec.inflight?.slot, 3)
})
