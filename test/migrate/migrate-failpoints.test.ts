// The mover killed (SIGKILL) at each named point between its steps (src/migrate/failpoints.ts), then
// resumed, under a checked load through two proxies: every window a random kill reaches only by luck
// is hit on purpose. Each point gets its own 32-slot range; the ranges move from group 1 to group 2
// one after another while the same workload runs, and everything is read back at the end.
import assert from 'node:assert/strict'
import {cpSync, mkdtempSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import Database from 'better-sqlite3'
import {FAILPOINTS, type Failpoint} from '../../src/migrate/failpoints.js'
import {startCluster} from '../harness/cluster.js'
import {jobs, slotRanges, startMover} from './helpers.js'
import {strandedKeys, Workload} from './workload.js'

const EXTRA_KEYS = 120_000
/**
 * The migration lock's lease TTL (s): short, so each resume waits little for the killed mover's lease.
 * Not 1 or 2: etcd3 keeps a lease alive every TTL/3 and gives up after one TTL without an answer, so
 * at a load of 8-9 on 2 cores a 1 s and once a 2 s lease were lost and the mover stopped on purpose
 * (ELOCKLOST); a lost lease during a resume is resumed again below.
 */
const LOCK_TTL = '3'

/** Each failpoint, the hit to kill at, and extra flags (--hold-ms 0: the MIGRATE path). */
const CASES: {point: Failpoint; hit: number; flags?: string[]}[] = [
  {point: 'after-mark', hit: 1},
  {point: 'scan-chunk', hit: 1},
  {point: 'after-migrating-change', hit: 4},
  {point: 'held-after-restore', hit: 3},
  {point: 'held-after-unlink', hit: 3},
  {point: 'after-online-change', hit: 5},
  {point: 'after-done', hit: 5},
  {point: 'after-release', hit: 3, flags: ['--hold-ms', '0']},
  {point: 'online-after-migrate', hit: 3, flags: ['--hold-ms', '0']},
]

for (const coordinator of ['embedded', 'etcd'] as const) {
  test(`the mover SIGKILLed at every failpoint resumes with nothing lost (${coordinator})`, {timeout: 300_000}, async (t) => {
    assert.deepEqual(CASES.map((c) => c.point).sort(), [...FAILPOINTS].sort(), 'every failpoint has a case')
    const c = await startCluster({groups: 2, proxies: 2, slots: 'group1', coordinator})
    let w: Workload | undefined
    // Kept when the test fails: every mover's and proxy's output and the cluster's files.
    const log: string[] = []
    try {
      w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 1500, growPerKind: 300, writers: 6})
      await w.populate()
      // Enough keys for a scan of several recorded chunks (one per 50k keys): 'scan-chunk' stops it
      // after the first, and the resume goes on from each lane's recorded cursor.
      const g1 = c.groups[0]!.client()
      for (let i = 0; i < EXTRA_KEYS; i += 10_000) {
        const p = g1.pipeline()
        for (let j = i; j < i + 10_000; j++) p.set(`x:${j}`, `v${j}`)
        await p.exec()
      }
      w.start()
      for (const [i, k] of CASES.entries()) {
        const from = i * 32
        const to = from + 31
        const args = ['migrate', String(from), String(to), '2', '--lock-ttl', LOCK_TTL, ...(k.flags ?? [])]
        const m = startMover(c, args, {RSTORE_FAILPOINT: `${k.point}:${k.hit}`})
        const exit = await m.exited
        log.push(`== ${k.point}:${k.hit} mover (${exit}):\n${m.output()}`)
        assert.equal(exit, 'SIGKILL', `${k.point}: the mover should have died there, it ended with ${exit}:\n${m.output()}`)
        const job = (await jobs(c)).find((j) => j.state === 'interrupted')
        assert.ok(job, `${k.point}: the job is left unfinished`)
        if (k.point === 'scan-chunk') {
          // Killed mid-scan: both lanes' cursors recorded, the scan not done.
          const dir = join(c.dir, 'checkpoints')
          const db = new Database(join(dir, readdirSync(dir).find((f) => f.endsWith('.db'))!), {readonly: true})
          const scans = db.prepare('SELECT cursor, done FROM migration_scans').all() as {cursor: string; done: number}[]
          db.close()
          assert.ok(scans.some((r) => /^(\d+|-)\/(\d+|-)$/.test(r.cursor) && r.done === 0), `a two-lane scan stopped midway: ${JSON.stringify(scans)}`)
        }
        let resumed = await c.cli(['migrate', '--resume', '--lock-ttl', LOCK_TTL, ...(k.flags ?? [])], {timeoutMs: 120_000})
        log.push(`== ${k.point}:${k.hit} resume (exit ${resumed.code}):\n${resumed.stdout}${resumed.stderr}`)
        // A mover starved of CPU long enough for its lock lease to expire stops on purpose (fencing,
        // ELOCKLOST) and says to run it again: do what it says, a bounded number of times.
        for (let again = 0; again < 3 && resumed.code !== 0 && /lost the migration lock/.test(resumed.stderr); again++) {
          t.diagnostic(`${k.point}: the resume lost its lease under load (ELOCKLOST); resuming again`)
          resumed = await c.cli(['migrate', '--resume', '--lock-ttl', LOCK_TTL, ...(k.flags ?? [])], {timeoutMs: 120_000})
          log.push(`== ${k.point}:${k.hit} resume after ELOCKLOST (exit ${resumed.code}):\n${resumed.stdout}${resumed.stderr}`)
        }
        assert.equal(resumed.code, 0, `${k.point}: resume failed:\n${resumed.stderr}\n${resumed.stdout}`)
        assert.match(resumed.stdout, /done \(resumed\): 32\/32 slot/, k.point)
        t.diagnostic(`${k.point}:${k.hit} killed (${job.progress.phase}, ${job.progress.slotsDone} done), resumed: ${resumed.stdout.trim().split('\n')[0]}`)
        const stranded = await strandedKeys(c.groups[0]!.client(), from, to)
        assert.deepEqual(stranded.stranded.slice(0, 5), [], `${k.point}: keys of ${from}-${to} left on group 1`)
      }
      await w.stop()
      // The extra keys, read back through a proxy.
      const r = c.proxies[0]!.client()
      const wrongExtra: string[] = []
      for (let i = 0; i < EXTRA_KEYS; i += 1000) {
        const keys = Array.from({length: 1000}, (_, j) => `x:${i + j}`)
        const values = await r.mget(...keys)
        values.forEach((v, j) => v !== `v${i + j}` && wrongExtra.push(`${keys[j]}=${v}`))
      }
      assert.deepEqual(wrongExtra.slice(0, 5), [], 'extra keys read back through the proxy')
      const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
      assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []}, 'client errors, wrong replies, final read-back through both proxies')
      const moved = CASES.length * 32 - 1
      const ranges = await slotRanges(c)
      assert.deepEqual(ranges.map((r) => [r.from, r.to, r.state, r.group, !!r.pending, !!r.hold]), [
        [0, moved, 'online', 2, false, false],
        [moved + 1, 1023, 'online', 1, false, false],
      ])
      assert.deepEqual((await strandedKeys(c.groups[0]!.client(), 0, moved)).internal, [], 'no pending set left on group 1')
      assert.deepEqual((await strandedKeys(c.groups[1]!.client(), 0, 1023)).internal, [], 'no pending set left on group 2')
      t.diagnostic(`${w.ops} writes, ${w.keys.size} keys`)
    } catch (err) {
      const dir = mkdtempSync(join(tmpdir(), `rstore-failpoints-${coordinator}-`))
      for (const p of c.proxies) log.push(`== proxy ${p.id}:\n${p.proc.output()}`)
      log.push(`== workload: ${JSON.stringify({errors: w?.errors.slice(0, 50), wrong: w?.wrong.slice(0, 50)})}`)
      log.push(`== slots: ${JSON.stringify(await slotRanges(c).catch((e: Error) => e.message))}`)
      writeFileSync(join(dir, 'log.txt'), log.join('\n'))
      cpSync(c.dir, join(dir, 'cluster'), {recursive: true})
      ;(err as Error).message += `\n(evidence kept in ${dir})`
      throw err
    } finally {
      await w?.stop()
      await c.stop()
    }
  })
}
