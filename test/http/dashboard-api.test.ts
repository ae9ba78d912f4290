/**
 * The dashboard's REST API over real HTTP against a real cluster (docs/dashboard.md): reads, a slot
 * set, 400 / 404 / 409 with nothing changed, 401 / 403, the audit log and the OpenAPI document.
 */
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {slotOf} from '../../src/topology/slots.js'
import {startRedis} from '../harness/redis.js'
import {until} from '../migrate/helpers.js'
import {READ, spawnDashboard, writeDashboardConfig, type Dashboard} from './dashboard-helpers.js'

let c: Cluster
let d: Dashboard
before(async () => {
  c = await startCluster({groups: 2, proxies: 1})
  d = await spawnDashboard(c, writeDashboardConfig(c), {env: {RSTORE_READ_TOKEN: 'env-read-token-42'}})
})
after(async () => {
  await d?.proc.stop()
  await c?.stop()
})

async function epoch(): Promise<number> {
  return (await d.call('GET', '/api/slots')).body.epoch
}

test('reads: overview, slots, groups, proxies, jobs, rules, route', async () => {
  const ov = await d.call('GET', '/api/overview', {token: READ})
  assert.equal(ov.status, 200)
  assert.equal(typeof ov.body.epoch, 'number')
  assert.deepEqual(ov.body.slotCounts, {'1': {online: 512}, '2': {online: 512}})
  assert.deepEqual(ov.body.groups.map((g: {id: number}) => g.id), [1, 2])
  assert.deepEqual(ov.body.proxies.map((p: {id: string}) => p.id), ['proxy_1'])
  assert.deepEqual(ov.body.jobs, [])

  const slot = await d.call('GET', '/api/slots/700', {token: 'env-read-token-42'})
  assert.equal(slot.status, 200)
  assert.equal(slot.body.slot.group, 2)
  assert.equal(slot.body.master, c.groups[1]!.addr)

  const groups = await d.call('GET', '/api/groups', {token: READ})
  assert.deepEqual(groups.body.groups[0].servers, [{addr: c.groups[0]!.addr, role: 'master'}])

  const proxies = await d.call('GET', '/api/proxies', {token: READ})
  assert.equal(proxies.body[0].addr, c.proxies[0]!.addr)
  assert.equal(proxies.body[0].state, 'online')

  assert.deepEqual((await d.call('GET', '/api/jobs', {token: READ})).body, [])
  for (const kind of ['rules', 'dbunits', 'dbgroups', 'shards']) {
    const r = await d.call('GET', `/api/${kind}`, {token: READ})
    assert.equal(r.status, 200, kind)
    assert.deepEqual(r.body.items, [])
  }
  const missing = await d.call('GET', '/api/rules/nope', {token: READ})
  assert.equal(missing.status, 404)
  assert.equal(missing.body.error.code, 'ENOTFOUND')

  const route = await d.call('GET', `/api/route?key=${encodeURIComponent('user:{42}:name')}`, {token: READ})
  assert.equal(route.status, 200)
  assert.equal(route.body.kind, 'slot')
  assert.equal(route.body.slot, slotOf('user:{42}:name'))
  assert.equal(route.body.group, slotOf('user:{42}:name') < 512 ? 1 : 2)
})

test('PUT /api/slots/:id changes the slot table the CLI reads', async () => {
  const before = await epoch()
  const off = await d.call('PUT', '/api/slots/7', {body: {group: 1, status: 'offline'}})
  assert.equal(off.status, 200, JSON.stringify(off.body))
  assert.equal(off.body.changed, 1)
  assert.ok(off.body.epoch > before)
  const moved = await d.call('PUT', '/api/slots/7', {body: {group: 2, status: 'online'}})
  assert.equal(moved.status, 200)
  const info = JSON.parse(await c.cliOk(['slot', 'info', '7', '--json']))
  assert.equal(info.slot.group, 2)
  assert.equal(info.slot.state, 'online')

  const range = await d.call('POST', '/api/slots/range-set', {body: {from: 7, to: 7, group: 1, status: 'online', force: true}})
  assert.equal(range.status, 200)
  assert.equal((await d.call('GET', '/api/slots/7')).body.slot.group, 1)
})

test('bad input is a 400 {error} and changes nothing; an unknown route is a 404', async () => {
  const at = await epoch()
  const bad: [string, string, {body?: unknown; rawBody?: string}][] = [
    ['PUT', '/api/slots/1024', {body: {group: 1, status: 'offline'}}],
    ['PUT', '/api/slots/abc', {body: {group: 1, status: 'offline'}}],
    ['PUT', '/api/slots/3', {body: {group: 'x', status: 'offline'}}],
    ['PUT', '/api/slots/3', {body: {group: 1, status: 'migrating'}}],
    ['PUT', '/api/slots/3', {body: {group: 1, status: 'offline', grup: 2}}],
    ['PUT', '/api/slots/3', {body: {status: 'offline'}}],
    ['PUT', '/api/slots/3', {rawBody: '{"group": 1, "status": '}],
    ['POST', '/api/slots/range-set', {body: {from: 10, to: 5000, group: 1, status: 'offline'}}],
    ['POST', '/api/slots/range-set', {body: {from: 10, to: 5, group: 1, status: 'offline'}}],
    ['POST', '/api/groups/1/servers', {body: {addr: 'not-an-address', role: 'slave'}}],
  ]
  for (const [method, path, o] of bad) {
    const r = await d.call(method, path, o)
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(o)}: ${JSON.stringify(r.body)}`)
    assert.equal(r.body.error.code, 'EINVAL')
    assert.equal(typeof r.body.error.message, 'string')
  }
  const unknown = await d.call('GET', '/api/nothing-here')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error.code, 'ENOTFOUND')
  const noGroup = await d.call('PUT', '/api/slots/3', {body: {group: 99, status: 'offline'}})
  assert.equal(noGroup.status, 404)
  assert.equal(await epoch(), at, 'no refused call changed the topology')
  assert.equal((await d.call('GET', '/api/slots/3')).body.slot.state, 'online')
})

test('a refusal because of state is a 409 and changes nothing', async () => {
  const at = await epoch()
  // Slot 8 is online in group 1: moving it by hand would strand its keys.
  const r = await d.call('PUT', '/api/slots/8', {body: {group: 2, status: 'online'}})
  assert.equal(r.status, 409)
  assert.equal(r.body.error.code, 'ECONFLICT')
  assert.match(r.body.error.message, /strand/)
  const g = await d.call('DELETE', '/api/groups/1')
  assert.equal(g.status, 409)
  const init = await d.call('POST', '/api/slots/init', {body: {}})
  assert.equal(init.status, 409, JSON.stringify(init.body))
  const job = await d.call('POST', '/api/jobs/nope/pause')
  assert.equal(job.status, 404)
  assert.equal(await epoch(), at)
  assert.equal((await d.call('GET', '/api/slots/8')).body.slot.group, 1)
})

test('groups and proxies: create and remove a group, proxy offline and online', async () => {
  const add = await d.call('POST', '/api/groups', {body: {group: 3}})
  assert.equal(add.status, 201)
  assert.ok((await d.call('GET', '/api/groups')).body.groups.some((g: {id: number}) => g.id === 3))
  assert.equal((await d.call('DELETE', '/api/groups/3')).status, 200)
  assert.ok(!(await d.call('GET', '/api/groups')).body.groups.some((g: {id: number}) => g.id === 3))

  const off = await d.call('POST', '/api/proxies/proxy_1/offline')
  assert.equal(off.status, 200, JSON.stringify(off.body))
  assert.equal(off.body[0].state, 'offline')
  const on = await d.call('POST', '/api/proxies/proxy_1/online')
  assert.equal(on.body[0].state, 'online')
  const r = c.proxies[0]!.client()
  assert.equal(await r.set('dash:k', 'v'), 'OK')
})

test('auth: 401 without or with a bad token, 403 for the read token on a write', async () => {
  const at = await epoch()
  const none = await d.call('GET', '/api/overview', {token: null})
  assert.equal(none.status, 401)
  assert.equal(none.body.error.code, 'EAUTH')
  assert.equal((await d.call('GET', '/api/slots', {token: 'wrong-token-123'})).status, 401)
  assert.equal((await d.call('PUT', '/api/slots/9', {token: null, body: {group: 1, status: 'offline'}})).status, 401)
  const ro = await d.call('PUT', '/api/slots/9', {token: READ, body: {group: 1, status: 'offline'}})
  assert.equal(ro.status, 403)
  assert.equal(ro.body.error.code, 'EFORBIDDEN')
  assert.equal(await epoch(), at)
  assert.equal((await d.call('GET', '/api/slots/9')).body.slot.state, 'online')
})

test('audit: every mutating call with its token, client, arguments and status', async () => {
  const res = await d.call('GET', '/api/audit?limit=1000', {token: READ})
  assert.equal(res.status, 200)
  const entries = res.body as {token: string; client: string; method: string; path: string; args: {body?: unknown}; status: number; time: string}[]
  assert.ok(entries.every((e) => e.method !== 'GET'), 'reads are not audited')
  const set = entries.find((e) => e.path === '/api/slots/7' && e.status === 200 && (e.args.body as {status?: string}).status === 'offline')
  assert.ok(set, 'the slot set is in the audit log')
  assert.equal(set.token, 'ops')
  assert.equal(set.client, '127.0.0.1')
  assert.ok(!Number.isNaN(Date.parse(set.time)))
  assert.ok(entries.some((e) => e.path === '/api/slots/9' && e.status === 403 && e.token === 'viewer'))
  assert.ok(entries.some((e) => e.path === '/api/slots/8' && e.status === 409))
  assert.ok(entries.some((e) => e.path === '/api/slots/1024' && e.status === 400))
  // Newest first.
  const times = entries.map((e) => Date.parse(e.time))
  assert.deepEqual(times, [...times].sort((a, b) => b - a))
})

test('GET /api/openapi.json lists the API paths', async () => {
  const res = await d.call('GET', '/api/openapi.json', {token: null})
  assert.equal(res.status, 200)
  assert.match(res.body.openapi, /^3\./)
  for (const p of ['/api/overview', '/api/slots', '/api/slots/{id}', '/api/slots/range-set', '/api/groups/{id}/servers/{addr}/promote', '/api/jobs/{id}/{action}', '/api/route', '/api/audit']) {
    assert.ok(res.body.paths[p], `openapi.json lists ${p}`)
  }
  assert.ok(res.body.paths['/api/slots/{id}'].put.requestBody, 'the slot set documents its body')
})

test('rules config writes: add, update, refuse a duplicate or a bad object, remove; the audit masks URL passwords', async () => {
  const unit = {name: 'm1', type: 'mysql', url: 'mysql://app:hunter2@127.0.0.1:3306/shop'}
  const add = await d.call('POST', '/api/dbunits', {body: unit})
  assert.equal(add.status, 201, JSON.stringify(add.body))
  assert.equal(add.body.action, 'added')
  const dup = await d.call('POST', '/api/dbunits', {body: unit})
  assert.equal(dup.status, 409)
  const badType = await d.call('POST', '/api/dbunits', {body: {name: 'm2', type: 'oracle', url: 'x'}})
  assert.equal(badType.status, 400, JSON.stringify(badType.body))
  assert.equal((await d.call('GET', '/api/dbunits/m2')).status, 404, 'the refused unit was not stored')
  const upd = await d.call('PUT', '/api/dbunits/m1', {body: {mark: 'orders db'}})
  assert.equal(upd.status, 200, JSON.stringify(upd.body))
  const shown = await d.call('GET', '/api/dbunits/m1')
  assert.equal(shown.body.item.mark, 'orders db')
  // The CLI sees the same object.
  assert.match(await c.cliOk(['dbunit', 'show', 'm1']), /orders db/)
  assert.equal((await d.call('PUT', '/api/dbunits/nope', {body: {mark: 'x'}})).status, 404)
  assert.equal((await d.call('DELETE', '/api/dbunits/m1')).status, 200)
  assert.deepEqual((await d.call('GET', '/api/dbunits')).body.items, [])

  const audit = JSON.stringify((await d.call('GET', '/api/audit')).body)
  assert.ok(!audit.includes('hunter2'), 'no password in the audit log')
  assert.match(audit, /mysql:\/\/app:\*\*\*@127\.0\.0\.1:3306\/shop/)
})

test('servers: add a slave, promote it, remove the old master, all through the API', {timeout: 60_000}, async () => {
  const extra = await startRedis()
  try {
    const r = c.proxies[0]!.client()
    const key = 'dash:{srv}'
    await r.set(key, 'before')
    const g = c.groupOf(key)
    const old = c.groups[g - 1]!.addr
    const add = await d.call('POST', `/api/groups/${g}/servers`, {body: {addr: extra.addr, role: 'slave'}})
    assert.equal(add.status, 201, JSON.stringify(add.body))
    assert.equal(add.body.replicaOf, old)
    const twice = await d.call('POST', `/api/groups/${g}/servers`, {body: {addr: extra.addr, role: 'slave'}})
    assert.equal(twice.status, 409)
    const promote = await d.call('POST', `/api/groups/${g}/servers/${encodeURIComponent(extra.addr)}/promote`, {body: {catchUpTimeoutMs: 10_000}})
    assert.equal(promote.status, 200, JSON.stringify(promote.body))
    assert.equal(promote.body.master, extra.addr)
    const del = await d.call('DELETE', `/api/groups/${g}/servers/${encodeURIComponent(old)}`)
    assert.equal(del.status, 200, JSON.stringify(del.body))
    const group = ((await d.call('GET', '/api/groups')).body.groups as {id: number; servers: {addr: string; role: string}[]}[]).find((x) => x.id === g)!
    assert.deepEqual(group.servers, [{addr: extra.addr, role: 'master'}])
    // The proxy follows: the key written before reads back from the new master, and writes work.
    assert.equal(await extra.client().get(key), 'before', 'the new master has the key it replicated')
    await until('the proxy to serve from the new master', async () => (await r.set(key, 'after').catch(() => undefined)) === 'OK', 10_000)
    assert.equal(await r.get(key), 'after')
    assert.equal(await extra.client().get(key), 'after')
  } finally {
    await extra.stop()
  }
})
