// Bad input and refusals of migrate / rebalance / jobs (nothing changes), and a small migration's
// JSON summary and job listing.
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {slotOf} from '../../src/topology/slots.js'
import {jobs, slotRanges} from './helpers.js'

let c: Cluster

before(async () => {
  c = await startCluster({groups: 2, proxies: 1, slots: 'none'})
  await c.cliOk(['slot', 'range-set', '0', '899', '1', 'online'])
})
after(async () => {
  await c?.stop()
})

async function refused(args: string[], re: RegExp, code?: number): Promise<void> {
  const r = await c.cli(args)
  assert.notEqual(r.code, 0, `${args.join(' ')} should fail:\n${r.stdout}`)
  if (code !== undefined) assert.equal(r.code, code)
  assert.match(r.stderr, re)
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
}

test('refusals name the reason and change nothing', async () => {
  const before = JSON.stringify(await slotRanges(c))
  await refused(['migrate', '5', '3', '2'], /invalid slot range 5-3/)
  await refused(['migrate', '0', '1024', '2'], /invalid slot '1024'/)
  await refused(['migrate', '0', '10', 'x'], /invalid group id 'x'/)
  await refused(['migrate', '0', '10', '9'], /group 9 does not exist/)
  await refused(['migrate', '890', '910', '2'], /slots 900-910 are offline/)
  await refused(['migrate'], /give FROM TO GROUP.*--resume/)
  await refused(['migrate', '0', '10'], /give FROM TO GROUP/)
  await refused(['migrate', '--resume'], /no unfinished migration job/)
  await refused(['migrate', '0', '10', '2', '--batch', '0'], /batch/)
  await refused(['migrate', '0', '10', '2', '--nice', '20'], /nice/)
  await refused(['rebalance', '--by', 'keys'], /Expected --by=keys to be one of: memory, slots/)
  await refused(['rebalance', '--by', 'slots', '--dry-run'], /every slot must be online.*900-1023/)
  await refused(['jobs', 'pause', 'nope'], /no job 'nope'|no checkpoint file/)
  await refused(['jobs', 'cancel', 'nope'], /no job 'nope'|no checkpoint file/)
  assert.equal(JSON.stringify(await slotRanges(c)), before, 'nothing changed')
  assert.deepEqual(await jobs(c), [], 'no job was created')
})

test('a small migration: JSON summary, job listing, nothing left to do afterwards', async () => {
  const r = c.proxies[0]!.client()
  const names = Array.from({length: 3000}, (_, i) => `k${i}`).filter((k) => slotOf(k) < 900).slice(0, 500)
  for (const k of names) await r.set(k, `v-${k}`)
  const out = await c.cliOk(['migrate', '0', '9', '2', '--json'])
  const s = JSON.parse(out) as {state: string; slotsDone: number; slotsTotal: number; keysMoved: number; job: string}
  assert.equal(s.state, 'done')
  assert.equal(s.slotsDone, 10)
  const [job] = await jobs(c)
  assert.equal(job!.id, s.job)
  assert.equal(job!.state, 'done')
  assert.equal(job!.progress.keysMoved, s.keysMoved)
  const list = await c.cliOk(['jobs'])
  assert.match(list, new RegExp(`${s.job}\\s+migrate\\s+0-9 -> group 2\\s+done\\s+10/10 slots`))
  for (const k of names) assert.equal(await r.get(k), `v-${k}`)
  // the same range again, and the alias: nothing to move
  assert.match(await c.cliOk(['slot', 'migrate', '0', '9', '2']), /already in group 2: nothing to move/)
  // pause of a finished job is refused
  await refused(['jobs', 'pause', s.job], /already done/)
})

test('--delay sleeps after each key, --rate caps keys per second', async () => {
  const r = c.proxies[0]!.client()
  const inSlots = (from: number, to: number, n: number) =>
    Array.from({length: 20_000}, (_, i) => `t${i}`).filter((k) => slotOf(k) >= from && slotOf(k) <= to).slice(0, n)
  const slow = inSlots(20, 29, 40)
  for (const k of slow) await r.set(k, k)
  const delayed = JSON.parse(await c.cliOk(['migrate', '20', '29', '2', '--delay=25', '--json'])) as {keysMoved: number; seconds: number}
  // (the earlier test's keys of these slots move too)
  assert.ok(delayed.keysMoved >= slow.length)
  assert.ok(delayed.seconds >= (delayed.keysMoved * 25) / 1000, `${delayed.keysMoved} keys with --delay=25 took ${delayed.seconds} s`)
  const rated = inSlots(30, 39, 60)
  for (const k of rated) await r.set(k, k)
  const capped = JSON.parse(await c.cliOk(['migrate', '30', '39', '2', '--rate', '40', '--json'])) as {keysMoved: number; seconds: number}
  assert.ok(capped.keysMoved >= rated.length)
  assert.ok(capped.seconds >= (capped.keysMoved - 4) / 40, `${capped.keysMoved} keys at --rate 40 took ${capped.seconds} s`)
  for (const k of [...slow, ...rated]) assert.equal(await r.get(k), k)
})
