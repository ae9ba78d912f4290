// retryTransaction, the retry loop both SQL drivers share: which failures rerun, and how often.
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {retryTransaction} from '../src/backends/sql-driver.js'

const deadlock = () => Object.assign(new Error('deadlock'), {errno: 1213})
const isDeadlock = (e: unknown) => (e as {errno?: number}).errno === 1213

test('a retryable failure runs the attempt again until it succeeds', async () => {
  let calls = 0
  const out = await retryTransaction(async () => {
    if (++calls < 3) throw deadlock()
    return 'done'
  }, isDeadlock)
  assert.equal(out, 'done')
  assert.equal(calls, 3)
})

test('another failure is thrown at once', async () => {
  let calls = 0
  const boom = new Error('syntax')
  await assert.rejects(
    retryTransaction(async () => {
      calls++
      throw boom
    }, isDeadlock),
    (e) => e === boom,
  )
  assert.equal(calls, 1)
})

test('a failure that keeps coming back is thrown after the last retry', async () => {
  let calls = 0
  await assert.rejects(
    retryTransaction(async () => {
      calls++
      throw deadlock()
    }, isDeadlock, 3),
    /deadlock/,
  )
  assert.equal(calls, 4)
})
