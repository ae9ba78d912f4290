// The barrier with a proxy that does not acknowledge (SIGSTOP): the mover waits naming it, stops
// cleanly after --barrier-timeout, and a later resume (after SIGCONT) finishes. Then `rstore jobs
// pause / resume / cancel` act on a running job from another shell.
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {startCluster} from '../harness/cluster.js'
import {jobs, misplacedKeys, owners, sleep, slotRanges, startMover, until} from './helpers.js'
import {Workload} from './workload.js'

const coordinator = (process.env.RSTORE_TEST_COORD as 'embedded' | 'etcd' | undefined) ?? 'embedded'

test(`barrier timeout on a stopped proxy, resume, then jobs pause/resume/cancel (${coordinator})`, {timeout: 240_000}, async (t) => {
  // A long proxy lease: a stopped proxy stays registered, so the barrier must wait for it.
  const c = await startCluster({groups: 2, proxies: 2, slots: 'group1', coordinator, proxyArgs: ['--lease-ttl', '60']})
  let w: Workload | undefined
  try {
    w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 300, growPerKind: 100, writers: 2})
    await w.populate()

    // --- barrier: proxy_2 stopped ---
    c.proxies[1]!.proc.child.kill('SIGSTOP')
    let stopped = true
    try {
      const t0 = Date.now()
      const res = await c.cli(['migrate', '0', '15', '2', '--barrier-timeout', '3', '--lock-ttl', '2'], {timeoutMs: 60_000})
      const out = res.stdout + res.stderr
      t.diagnostic(`barrier timeout after ${Date.now() - t0} ms: ${res.stderr.trim().split('\n').pop()}`)
      assert.equal(res.code, 3, out)
      assert.match(out, /waiting for proxy proxy_2 \(/)
      assert.match(res.stderr, /barrier timeout: proxy proxy_2 .* did not acknowledge topology epoch \d+ within 3 s; stopped cleanly\. .*resumable.*rstore migrate --resume/)
      const [job] = await jobs(c)
      assert.equal(job!.state, 'failed')
      assert.match(job!.progress.error ?? '', /barrier timeout/)
      // The routing is consistent meanwhile: slots 0-15 online at group 1, marked pending.
      const r = (await slotRanges(c)).find((x) => x.from === 0)!
      assert.deepEqual([r.to, r.state, r.group, r.pending], [15, 'online', 1, true])
    } finally {
      if (stopped) c.proxies[1]!.proc.child.kill('SIGCONT')
      stopped = false
    }
    w.start()
    const resumed = await c.cli(['migrate', '--resume', '--lock-ttl', '2'], {timeoutMs: 120_000})
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout)
    assert.match(resumed.stdout, /done \(resumed\): 16\/16 slot/)

    // --- jobs pause / resume / cancel on a running job ---
    const m = startMover(c, ['migrate', '16', '400', '2', '--lock-ttl', '2'])
    const id = await until('the job to move slots', async () => {
      const j = (await jobs(c)).find((x) => x.state === 'running' && x.running && x.progress.slotsDone >= 3)
      return j?.id
    }, 60_000, 100)
    await c.cliOk(['jobs', 'pause', id])
    const paused = await until('the job to pause', async () => (await jobs(c)).find((x) => x.id === id && x.state === 'paused'), 20_000)
    assert.match(m.output(), new RegExp(`job ${id} paused`))
    await sleep(1500)
    const still = (await jobs(c)).find((x) => x.id === id)!
    assert.equal(still.progress.slotsDone, paused.progress.slotsDone, 'no slot finished while paused')
    // pause of a job that is not running is refused; pause/resume of an unknown job too
    assert.match((await c.cli(['jobs', 'pause', 'nope'])).stderr, /no job 'nope'/)
    await c.cliOk(['jobs', 'resume', id])
    await until('the job to continue', async () => {
      const j = (await jobs(c)).find((x) => x.id === id)!
      return j.state === 'running' && j.progress.slotsDone > still.progress.slotsDone
    }, 30_000)
    await c.cliOk(['jobs', 'cancel', id])
    const code = await m.exited
    assert.equal(code, 0, m.output())
    assert.match(m.output(), new RegExp(`job ${id} cancelled`))
    await sleep(200)
    await w.stop()
    const done = (await jobs(c)).find((x) => x.id === id)!
    assert.equal(done.state, 'cancelled')
    assert.ok(done.progress.slotsDone > still.progress.slotsDone && done.progress.slotsDone < 385, `some slots moved, not all (${done.progress.slotsDone})`)
    // Every slot online on exactly one group, none pending or migrating; every key where its slot is.
    const owner = owners(await slotRanges(c))
    assert.equal(owner.filter((g, s) => s >= 16 && s <= 400 && g === 2).length, done.progress.slotsDone)
    assert.deepEqual(await misplacedKeys([c.groups[0]!.client(), c.groups[1]!.client()], owner), [])
    const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
    assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []}, 'client errors, wrong replies, final read-back through both proxies')
    // A cancelled job is finished: a new migration may start (and is not refused).
    const next = await c.cli(['migrate', '401', '401', '2', '--lock-ttl', '2'], {timeoutMs: 60_000})
    assert.equal(next.code, 0, next.stderr)
  } finally {
    await w?.stop()
    await c.stop()
  }
})
