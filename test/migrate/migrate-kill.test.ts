// The mover SIGKILLed three times at random moments under load, resumed each time: nothing lost,
// nothing left behind. While it runs (and after each kill) a different migration is refused naming
// the job, and `slot set` of the migrating slot is refused.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {test} from 'node:test'
import {startCluster} from '../harness/cluster.js'
import {jobs, sleep, slotRanges, startMover, until} from './helpers.js'
import {strandedKeys, Workload} from './workload.js'

/** A running process's nice value (field 19 of /proc/<pid>/stat). */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
}

const coordinator = (process.env.RSTORE_TEST_COORD as 'embedded' | 'etcd' | undefined) ?? 'embedded'

test(`migrate 0 511 2 killed with SIGKILL three times and resumed (${coordinator})`, {timeout: 300_000}, async (t) => {
  const c = await startCluster({groups: 2, proxies: 2, slots: 'group1', coordinator})
  let w: Workload | undefined
  try {
    w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 800, growPerKind: 300, writers: 6})
    await w.populate()
    w.start()
    const args = ['migrate', '0', '511', '2', '--lock-ttl', '2']
    let jobId = ''
    for (let round = 1; round <= 3; round++) {
      const m = startMover(c, round === 3 ? ['migrate', '--resume', '--lock-ttl', '2'] : args)
      // Kill 1 lands early (marking / scanning / first slots), kills 2 and 3 at random later moments.
      if (round === 1) await until('the mover to mark the slots pending', async () => /marked \d+ slot/.test(m.output()) || m.child.exitCode !== null, 30_000, 20)
      else await until('the mover to resume', async () => /resuming job/.test(m.output()) || m.child.exitCode !== null, 30_000, 20)
      await sleep(round === 1 ? Math.random() * 300 : 300 + Math.random() * 1000)
      assert.equal(m.child.exitCode, null, `the mover ended before the kill:\n${m.output()}`)

      if (round === 1) {
        // Early kill (marking / scanning / first slots): no other command in between.
        m.child.kill('SIGKILL')
        await m.exited
        jobId = (await jobs(c)).find((j) => j.kind === 'migrate')!.id
        t.diagnostic(`kill 1: ${JSON.stringify((await jobs(c))[0]!.progress)}`)
        continue
      }
      if (round === 2) {
        // Paused first (its mover alive, the job unfinished), so these checks cannot race its end.
        await c.cliOk(['jobs', 'pause', jobId])
        await until('the job to pause', async () => (await jobs(c)).find((j) => j.id === jobId && j.state === 'paused'), 30_000)
        const running = (await jobs(c)).find((j) => j.kind === 'migrate')!
        assert.equal(running.id, jobId)
        assert.equal(running.running, true)
        assert.ok(niceOf(m.child.pid!) >= 10, 'the mover runs at nice 10 (or lower priority) by default')
        // A second migrate while one runs is refused, naming the job.
        const second = await c.cli(['migrate', '512', '600', '2'])
        assert.notEqual(second.code, 0)
        assert.match(second.stderr, new RegExp(`another migration job is unfinished: ${jobId}`))
        const same = await c.cli(args)
        assert.notEqual(same.code, 0)
        assert.match(same.stderr, /already running/)
        // Paused, the slot in flight stays migrating: `slot set` of it is refused; no slot is held.
        const ranges = await slotRanges(c)
        const migrating = ranges.find((r) => r.state === 'migrating')
        assert.ok(migrating, 'a slot is migrating while the job is paused')
        assert.equal(ranges.filter((r) => r.hold).length, 0, 'a paused job holds no slot next in line')
        const set = await c.cli(['slot', 'set', String(migrating.from), '1', 'online'])
        assert.notEqual(set.code, 0, 'slot set of a migrating slot must be refused')
        assert.match(set.stderr, new RegExp(`slot ${migrating.from} is migrating from group 1 to group 2`))
        await c.cliOk(['jobs', 'resume', jobId])
        await sleep(Math.random() * 1000)
      } else {
        const running = (await jobs(c)).find((j) => j.kind === 'migrate')!
        assert.equal(running.id, jobId)
        assert.equal(running.running, true)
      }
      assert.equal(m.child.exitCode, null, `the mover ended before the kill:\n${m.output()}`)

      m.child.kill('SIGKILL')
      await m.exited
      console.error(`kill ${round}: ${JSON.stringify((await jobs(c))[0]!.progress)}`)

      // While it is unfinished, a different migration is refused with the way to finish it.
      const other = await c.cli(['migrate', '600', '700', '2'])
      assert.notEqual(other.code, 0)
      assert.match(other.stderr, new RegExp(`another migration job is unfinished: ${jobId}.*--resume`))
      assert.equal((await jobs(c))[0]!.state, 'interrupted')
    }
    const final = await c.cli(args, {timeoutMs: 280_000})
    await sleep(300)
    await w.stop()
    t.diagnostic(final.stdout.trim().split('\n').slice(0, 3).join(' | '))
    assert.equal(final.code, 0, `resume failed:\n${final.stderr}\n${final.stdout}`)
    assert.match(final.stdout, /done \(resumed\): 512\/512 slot/)
    const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
    assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []}, 'client errors, wrong replies, final read-back through both proxies')
    const g1 = await strandedKeys(c.groups[0]!.client(), 0, 511)
    assert.deepEqual([g1.stranded.slice(0, 10), g1.internal], [[], []])
    assert.deepEqual((await strandedKeys(c.groups[1]!.client(), 512, 1023)).internal, [])
    const ranges = await slotRanges(c)
    assert.deepEqual(ranges.map((r) => [r.from, r.to, r.state, r.group, !!r.pending]), [[0, 511, 'online', 2, false], [512, 1023, 'online', 1, false]])
    const job = (await jobs(c)).find((j) => j.id === jobId)!
    assert.equal(job.state, 'done')
    assert.equal(job.progress.slotsDone, 512)
  } finally {
    await w?.stop()
    await c.stop()
  }
})
