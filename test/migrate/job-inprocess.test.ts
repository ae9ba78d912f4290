/**
 * A migration run the way a server process (the admin API, the HA agent) runs it: in-process, with no
 * CLI code, through runMigrationJob with an AbortSignal and a ProgressSink. Started, watched through the
 * sink, paused and resumed through the checkpoint's control row, stopped with the signal and resumed,
 * then cancelled, under a checked load through two proxies.
 */
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {openCheckpoints} from '../../src/migrate/checkpoints.js'
import {MigrationStore} from '../../src/migrate/migration-store.js'
import {runMigrationJob} from '../../src/migrate/job.js'
import {StoppedError, type JobSummary} from '../../src/migrate/job-result.js'
import {DEFAULT_MOVE_OPTIONS} from '../../src/migrate/move-options.js'
import type {ProgressReport, ProgressSink} from '../../src/migrate/progress.js'
import {startCluster} from '../harness/cluster.js'
import {tempDir, removeDir} from '../harness/process.js'
import {misplacedKeys, owners, sleep, slotRanges, until} from './helpers.js'
import {Workload} from './workload.js'

/** A sink that keeps what a server would show: the last report and the log. */
class Recorder implements ProgressSink {
  last: ProgressReport | undefined
  readonly phases = new Set<string>()
  readonly lines: string[] = []
  stopped = 0
  update(r: ProgressReport): void {
    this.last = r
    this.phases.add(r.phase)
  }
  log(line: string): void {
    this.lines.push(line)
  }
  stop(): void {
    this.stopped++
  }
}

test('a server process starts, watches, pauses, stops and cancels a migration in-process', {timeout: 240_000}, async () => {
  const c = await startCluster({groups: 2, proxies: 2, slots: 'group1'})
  const cpDir = tempDir('inproc-checkpoints')
  const db = openCheckpoints(cpDir, c.product)
  const store = await c.openStore()
  const w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 300, growPerKind: 100, writers: 2})
  try {
    await w.populate()
    w.start()
    const opts = {...DEFAULT_MOVE_OPTIONS, lockTtlSec: 3, rate: 400}
    const ms = new MigrationStore(db)
    const sink = new Recorder()
    const ctl = new AbortController()
    const first = runMigrationJob(store, db, {kind: 'migrate', from: 0, to: 300, group: 2}, opts, sink, ctl.signal)
    const id = await until('the job to start moving', async () => sink.last?.phase === 'moving' && sink.last.job)

    // Pause through the control row (what `rstore jobs pause` and the API write) and watch it take.
    ms.setControl(id, 'pause')
    await until('the job to pause', async () => sink.last?.phase === 'paused')
    const pausedAt = sink.last!.slotsDone
    await sleep(1500)
    assert.equal(sink.last!.slotsDone, pausedAt, 'a paused job moved slots')
    ms.setControl(id, 'run')
    await until('the job to continue', async () => sink.last!.slotsDone > pausedAt)

    // Stop with the signal (a server shutting down): StoppedError, the job resumable.
    ctl.abort()
    await assert.rejects(first, (e: unknown) => e instanceof StoppedError && e.code === 'ESTOPPED' && e.exitCode === 130)
    assert.ok(sink.stopped >= 1, 'the sink was told the job is over')
    const stoppedAt = ms.job(id)!
    assert.ok(stoppedAt.progress.slotsDone < 301, `stopped too late: ${stoppedAt.progress.slotsDone}`)

    // Resume in-process, then cancel through the control row: the slot in flight finishes.
    const sink2 = new Recorder()
    const second = runMigrationJob(store, db, {kind: 'resume', job: id}, opts, sink2)
    await until('the resumed job to move', async () => sink2.last?.phase === 'moving' && sink2.last.slotsDone > stoppedAt.progress.slotsDone)
    ms.setControl(id, 'cancel')
    const summary: JobSummary = await second
    assert.equal(summary.state, 'cancelled')
    assert.equal(summary.resumed, true)
    assert.ok(summary.slotsDone > 0 && summary.slotsDone < 301, `slots done ${summary.slotsDone}`)
    assert.equal(ms.job(id)!.state, 'cancelled')
    assert.ok(sink2.phases.has('cancelling') || sink2.phases.has('cancelled'), [...sink2.phases].join(','))

    await sleep(200)
    await w.stop()
    // Every slot online on one group; every key where its slot is; every written key reads back.
    const owner = owners(await slotRanges(c))
    assert.equal(owner.filter((g, s) => s <= 300 && g === 2).length, summary.slotsDone)
    assert.deepEqual(await misplacedKeys([c.groups[0]!.client(), c.groups[1]!.client()], owner), [])
    const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
    assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []})
  } finally {
    await w.stop()
    db.close()
    removeDir(cpDir)
    await c.stop()
  }
})
