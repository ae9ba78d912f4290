/**
 * Dashboard tokens (docs/dashboard.md "Auth"): the token file's format and its errors, the config
 * keys, and `dashboard_open_reads = true` over real HTTP (reads open, writes still need the admin token).
 */
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, test} from 'node:test'
import {loadConfig} from '../../src/config.js'
import {RstoreError} from '../../src/errors.js'
import {loadTokens, parseTokenFile} from '../../src/http/auth.js'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {freePort, tempDir, removeDir} from '../harness/process.js'
import {READ, spawnDashboard, writeDashboardConfig, type Dashboard} from './dashboard-helpers.js'

test('parseTokenFile: roles, names, a bare secret is the admin token, bad lines are EINVAL', () => {
  assert.deepEqual(parseTokenFile('# c\nadmin:alice aaaaaaaaaa\nread bbbbbbbbbb\ncccccccccc\n', 't'), [
    {name: 'alice', role: 'admin', secret: 'aaaaaaaaaa'},
    {name: 'read', role: 'read', secret: 'bbbbbbbbbb'},
    {name: 'admin', role: 'admin', secret: 'cccccccccc'},
  ])
  for (const bad of ['root:x aaaaaaaaaa', 'admin short', 'admin a b c']) {
    assert.throws(() => parseTokenFile(bad, 't'), (e: unknown) => e instanceof RstoreError && e.code === 'EINVAL' && /^t:1: /.test(e.message), bad)
  }
})

test('config: admin_token_file is taken relative to the config file; dashboard_open_reads must be true or false', () => {
  const dir = tempDir('dash-cfg')
  try {
    const ini = join(dir, 'c.ini')
    writeFileSync(ini, 'admin_token_file = tok.txt\ndashboard_open_reads = true\n')
    writeFileSync(join(dir, 'tok.txt'), 'admin:ops 0123456789ab\n')
    const cfg = loadConfig(ini)
    assert.equal(cfg.adminTokenFile, join(dir, 'tok.txt'))
    assert.equal(cfg.dashboardOpenReads, true)
    assert.deepEqual(loadTokens(cfg, {RSTORE_READ_TOKEN: 'rrrrrrrrrr'}).map((t) => `${t.role}:${t.name}`), ['read:env-read', 'admin:ops'])
    writeFileSync(ini, 'dashboard_open_reads = yes\n')
    assert.throws(() => loadConfig(ini), /invalid dashboard_open_reads 'yes'/)
    writeFileSync(ini, 'admin_token_file = missing.txt\n')
    assert.throws(() => loadTokens(loadConfig(ini), {}), /cannot read admin_token_file/)
  } finally {
    removeDir(dir)
  }
})

let c: Cluster
let d: Dashboard
before(async () => {
  c = await startCluster({groups: 1, proxies: 0, slots: 'group1'})
  // No --addr: the dashboard listens on the config's dashboard_addr.
  const port = await freePort()
  d = await spawnDashboard(c, writeDashboardConfig(c, `dashboard_open_reads = true\ndashboard_addr = 127.0.0.1:${port}\n`), {port, addrFlag: false})
})
after(async () => {
  await d?.proc.stop()
  await c?.stop()
})

test('dashboard_open_reads: GET needs no token, a write still does', async () => {
  assert.match(d.proc.output(), new RegExp(`listening on http://${d.addr.replace(/\./g, '\\.')}`))
  const ov = await d.call('GET', '/api/overview', {token: null})
  assert.equal(ov.status, 200)
  assert.equal(ov.body.slotCounts['1'].online, 1024)
  // A token that is sent must still be valid.
  assert.equal((await d.call('GET', '/api/slots', {token: 'not-a-token-000'})).status, 401)
  const at = (await d.call('GET', '/api/slots', {token: null})).body.epoch
  assert.equal((await d.call('PUT', '/api/slots/1', {token: null, body: {group: 1, status: 'offline'}})).status, 401)
  assert.equal((await d.call('PUT', '/api/slots/1', {token: READ, body: {group: 1, status: 'offline'}})).status, 403)
  assert.equal((await d.call('GET', '/api/slots', {token: null})).body.epoch, at)
  const audit = await d.call('GET', '/api/audit', {token: null})
  assert.deepEqual(audit.body.map((e: {status: number; token: string}) => `${e.status} ${e.token}`), ['403 viewer', '401 -'])
})
