import {test} from 'node:test'
import assert from 'node:assert/strict'
import {setTimeout as sleep} from 'node:timers/promises'
import {ControlPoll} from '../../src/migrate/control-poll.js'

test('ControlPoll reads the control row at most once per window, the last value standing in between', async () => {
  let row = 'run'
  let reads = 0
  const poll = new ControlPoll(() => {
    reads++
    return row
  }, 'run', 50)
  assert.equal(poll.latest(), 'run')
  assert.equal(reads, 1, 'the first call reads')
  row = 'pause'
  assert.equal(poll.latest(), 'run', 'within the window the last value read stands')
  assert.equal(reads, 1)
  assert.equal(poll.latest(true), 'pause', 'a forced read sees the new row at once')
  assert.equal(reads, 2)
  row = 'cancel'
  await sleep(60)
  assert.equal(poll.latest(), 'cancel', 'after the window the row is read again')
  assert.equal(reads, 3)
})
