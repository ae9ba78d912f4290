/**
 * One active dashboard per product (`locks/dashboard`, docs/dashboard.md "Lock"): a second one is
 * refused with one line and a non-zero exit; after `kill -9` of the first, another takes over once the
 * first's lease (--lock-ttl 2) expires; a clean stop frees the lock at once. On both coordinators.
 */
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {exited, spawnDashboard, waitListening, writeDashboardConfig} from './dashboard-helpers.js'

const TTL_MS = 2000

let c: Cluster
let cfg: string
before(async () => {
  c = await startCluster({groups: 1, proxies: 0, slots: 'group1'})
  cfg = writeDashboardConfig(c)
})
after(async () => {
  await c?.stop()
})

test('a second dashboard is refused; kill -9 of the first lets another take over within the lease TTL (embedded)', () => takeOver(c, cfg))

test('the same on etcd', async () => {
  const e = await startCluster({groups: 1, proxies: 0, slots: 'group1', coordinator: 'etcd'})
  try {
    await takeOver(e, writeDashboardConfig(e))
  } finally {
    await e.stop()
  }
})

async function takeOver(c: Cluster, cfg: string): Promise<void> {
  const first = await spawnDashboard(c, cfg)
  try {
    assert.equal((await first.call('GET', '/api/overview')).status, 200)

    const second = await spawnDashboard(c, cfg, {wait: false})
    const code = await exited(second.proc)
    assert.notEqual(code, 0)
    const errors = second.proc.output().split('\n').filter((l) => l.trim())
    assert.equal(errors.length, 1, second.proc.output())
    assert.match(errors[0]!, new RegExp(`^Error: another dashboard of this product is running on ${first.addr.replace(/\./g, '\\.')} \\(pid ${first.proc.child.pid}\\)`))
    // The first one still serves.
    assert.equal((await first.call('GET', '/api/slots')).status, 200)

    await first.proc.stop('SIGKILL')
    const killedAt = Date.now()
    const third = await spawnDashboard(c, cfg, {wait: false})
    try {
      await waitListening(third, 20000)
      const took = Date.now() - killedAt
      // The lease ends TTL after the last keep-alive; the rest is the CLI's start-up and one reap.
      assert.ok(took < TTL_MS + 4000, `took over after ${took} ms`)
      assert.match(third.proc.output(), /waiting for its lease to expire/)
      const ov = await third.call('GET', '/api/overview')
      assert.equal(ov.status, 200)
      assert.equal(ov.body.slotCounts['1'].online, 1024)

      // A clean stop (SIGTERM) frees the lock at once: the next one starts without waiting.
      await third.proc.stop('SIGTERM')
      assert.equal(third.proc.child.exitCode, 0, third.proc.output())
      const fourth = await spawnDashboard(c, cfg)
      try {
        assert.doesNotMatch(fourth.proc.output(), /waiting/)
        assert.equal((await fourth.call('GET', '/api/slots')).status, 200)
      } finally {
        await fourth.proc.stop()
      }
    } finally {
      await third.proc.stop()
    }
  } finally {
    await first.proc.stop('SIGKILL')
  }
}

test('a dashboard without any admin token refuses to start, naming where tokens come from', async () => {
  const bare = writeDashboardConfig(c).replace(/dash\.ini$/, 'bare.ini')
  const {writeFileSync} = await import('node:fs')
  writeFileSync(bare, 'checkpoint_dir = ./checkpoints\n')
  const d = await spawnDashboard(c, bare, {wait: false})
  assert.equal(await exited(d.proc), 1)
  assert.match(d.proc.output(), /^Error: the dashboard has no admin token; set RSTORE_ADMIN_TOKEN or put one in the file named by admin_token_file/)
})
