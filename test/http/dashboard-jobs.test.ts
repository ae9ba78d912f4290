/**
 * Jobs over the API (docs/dashboard.md): a migration started by the CLI is listed with its progress,
 * paused, resumed and cancelled through POST /api/jobs/:id/...; a slot set on its slots is a 409
 * while it runs; a request for a finished or unknown job is refused and changes nothing.
 */
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {startMover, until} from '../migrate/helpers.js'
import {spawnDashboard, writeDashboardConfig, type Dashboard} from './dashboard-helpers.js'

interface JobRow {
  id: string
  state: string
  running: boolean
  progress: {slotsDone: number}
}

let c: Cluster
let d: Dashboard
before(async () => {
  c = await startCluster({groups: 2, proxies: 1, slots: 'group1'})
  d = await spawnDashboard(c, writeDashboardConfig(c))
})
after(async () => {
  await d?.proc.stop()
  await c?.stop()
})

async function job(id: string): Promise<JobRow | undefined> {
  return ((await d.call('GET', '/api/jobs')).body as JobRow[]).find((j) => j.id === id)
}

test('pause, resume and cancel a running migration; 409 on its slots and on a finished job', {timeout: 120_000}, async () => {
  assert.equal((await d.call('POST', '/api/jobs/nope/pause')).status, 404)
  const r = c.proxies[0]!.client()
  const pipe = r.pipeline()
  for (let i = 0; i < 2000; i++) pipe.set(`job:k${i}`, String(i))
  await pipe.exec()

  // Slow enough to be caught running: 200 keys/s over about 400 keys.
  const m = startMover(c, ['migrate', '0', '200', '2', '--rate', '200', '--lock-ttl', '2'])
  const running = await until('the job to run', async () => ((await d.call('GET', '/api/jobs')).body as JobRow[]).find((j) => j.state === 'running' && j.running && j.progress.slotsDone >= 1), 30_000)
  const id = running.id

  const at = (await d.call('GET', '/api/slots')).body.epoch
  const busy = await d.call('POST', '/api/slots/range-set', {body: {from: 150, to: 200, group: 2, status: 'online', force: true}})
  assert.equal(busy.status, 409, JSON.stringify(busy.body))
  assert.equal(busy.body.error.code, 'ECONFLICT')

  const pause = await d.call('POST', `/api/jobs/${id}/pause`)
  assert.equal(pause.status, 202, JSON.stringify(pause.body))
  assert.deepEqual(pause.body, {job: id, requested: 'pause'})
  const paused = await until('the job to pause', async () => {
    const j = await job(id)
    return j?.state === 'paused' ? j : undefined
  }, 20_000)

  assert.equal((await d.call('POST', `/api/jobs/${id}/resume`)).status, 202)
  await until('the job to continue', async () => {
    const j = await job(id)
    return j?.state === 'running' && j.progress.slotsDone > paused.progress.slotsDone
  }, 30_000)

  assert.equal((await d.call('POST', `/api/jobs/${id}/cancel`)).status, 202)
  assert.equal(await m.exited, 0, m.output())
  const done = (await job(id))!
  assert.equal(done.state, 'cancelled')
  assert.ok(done.progress.slotsDone > paused.progress.slotsDone && done.progress.slotsDone < 201, `some slots moved, not all (${done.progress.slotsDone})`)

  const again = await d.call('POST', `/api/jobs/${id}/resume`)
  assert.equal(again.status, 409)
  assert.match(again.body.error.message, /already cancelled/)
  assert.equal((await job(id))!.state, 'cancelled')
  assert.ok((await d.call('GET', '/api/slots')).body.epoch > at)
  // Every key still reads back through the proxy.
  for (const i of [0, 777, 1999]) assert.equal(await r.get(`job:k${i}`), String(i))
})

test('POST /api/jobs/migrate runs a migration in the dashboard; a second one is a 409', {timeout: 120_000}, async () => {
  const bad = await d.call('POST', '/api/jobs/migrate', {body: {from: 201, to: 5000, group: 2}})
  assert.equal(bad.status, 400)
  assert.equal((await d.call('POST', '/api/jobs/migrate', {token: 'read-secret-0123456789', body: {from: 201, to: 300, group: 2}})).status, 403)
  const before = ((await d.call('GET', '/api/jobs')).body as JobRow[]).length

  const start = await d.call('POST', '/api/jobs/migrate', {body: {from: 201, to: 300, group: 2, rate: 300}})
  assert.equal(start.status, 202, JSON.stringify(start.body))
  const id = start.body.job as string
  const second = await d.call('POST', '/api/jobs/migrate', {body: {from: 400, to: 410, group: 2}})
  assert.equal(second.status, 409, JSON.stringify(second.body))
  assert.equal(second.body.error.code, 'ECONFLICT')
  assert.match(second.body.error.message, new RegExp(`another migration job is unfinished: ${id}`))
  assert.equal(((await d.call('GET', '/api/jobs')).body as JobRow[]).length, before + 1, 'the refused job was not created')

  const live = (await job(id)) as JobRow & {keysPerSecond?: number}
  assert.equal(live.running, true)
  assert.equal(typeof live.keysPerSecond, 'number')
  await until('the job to finish', async () => (await job(id))?.state === 'done', 60_000)
  const slots = (await d.call('GET', '/api/slots')).body.ranges as {from: number; to: number; group: number; state: string}[]
  assert.ok(slots.some((r) => r.from <= 201 && r.to >= 300 && r.group === 2 && r.state === 'online'), JSON.stringify(slots))
  const r = c.proxies[0]!.client()
  for (let i = 0; i < 2000; i += 37) assert.equal(await r.get(`job:k${i}`), String(i))

  // Nothing to move: answered at once with the summary, no job.
  const none = await d.call('POST', '/api/jobs/migrate', {body: {from: 250, to: 260, group: 2}})
  assert.equal(none.status, 200)
  assert.equal(none.body.state, 'nothing-to-do')
})
