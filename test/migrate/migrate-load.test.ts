// `rstore migrate 0 511 2` under a checked concurrent load through two proxies, with both
// coordinators: zero client errors, zero wrong replies, every key read back through both proxies
// with its last value and TTL, no key of slots 0-511 left on group 1, no internal key left behind.
import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {strandedKeys, Workload} from './workload.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls a proxy's /metrics until the mover's progress shows up there. */
async function watchMetrics(c: Cluster, stop: () => boolean): Promise<string> {
  while (!stop()) {
    try {
      const {body} = await c.proxies[1]!.http('/metrics')
      const line = body.split('\n').find((l) => l.startsWith('rstore_migration{field="slots_total"}'))
      if (line) return line
    } catch {
      // the proxy may be busy
    }
    await sleep(200)
  }
  return ''
}

for (const coordinator of (process.env.RSTORE_TEST_COORD ? [process.env.RSTORE_TEST_COORD] : ['embedded', 'etcd']) as ('embedded' | 'etcd')[]) {
  describe(`migrate under load (${coordinator} coordinator)`, () => {
    test('migrate 0 511 2 loses nothing and leaves nothing behind', {timeout: 300_000}, async (t) => {
      const c = await startCluster({groups: 2, proxies: 2, slots: 'group1', coordinator})
      let w: Workload | undefined
  try {
        w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 1000, growPerKind: 300, writers: 6})
        await w.populate()
        w.start()
        await sleep(300)
        let running = true
        const metrics = watchMetrics(c, () => !running)
        const t0 = Date.now()
        const out = await c.cli(['migrate', '0', '511', '2', '--lock-ttl', '2'], {timeoutMs: 280_000})
        running = false
        await sleep(300)
        await w.stop()
        t.diagnostic(`migrate took ${((Date.now() - t0) / 1000).toFixed(1)} s; ${w.ops} writes, ${w.reads} read-backs, ${w.written()} keys`)
        t.diagnostic(out.stdout.trim().split('\n').slice(0, 3).join(' | '))
        assert.equal(out.code, 0, `migrate failed:\n${out.stderr}\n${out.stdout}`)
        assert.match(out.stdout, /512\/512 slot\(s\) moved/)
        const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
        assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []}, 'client errors, wrong replies, final read-back through both proxies')
        assert.ok(w.ops > 1000, `the load ran (${w.ops} writes)`)
        const g1 = await strandedKeys(c.groups[0]!.client(), 0, 511)
        assert.deepEqual(g1.stranded.slice(0, 10), [], 'keys of slots 0-511 left on group 1')
        assert.deepEqual(g1.internal, [], 'internal keys left on group 1')
        const g2 = await strandedKeys(c.groups[1]!.client(), 512, 1023)
        assert.deepEqual(g2.stranded.slice(0, 10), [], 'keys of slots 512-1023 on group 2')
        assert.deepEqual(g2.internal, [], 'internal keys on group 2')

        const slots = await c.cliOk(['slot', 'list', '--json'])
        const ranges = JSON.parse(slots).ranges as {from: number; to: number; state: string; group: number; pending?: boolean}[]
        assert.deepEqual(
          ranges.map((r) => [r.from, r.to, r.state, r.group, !!r.pending]),
          [[0, 511, 'online', 2, false], [512, 1023, 'online', 1, false]],
        )
        const jobs = JSON.parse(await c.cliOk(['jobs', '--json'])) as {kind: string; state: string; progress: {slotsDone: number}}[]
        assert.equal(jobs[0]!.state, 'done')
        assert.equal(jobs[0]!.progress.slotsDone, 512)
        assert.match(await metrics, /rstore_migration\{field="slots_total"\} 512/, "the proxies' /metrics showed the progress")
        // Running the same command again: nothing left to move.
        const again = await c.cliOk(['migrate', '0', '511', '2'])
        assert.match(again, /already in group 2: nothing to move/)
      } finally {
        await w?.stop()
        await c.stop()
      }
    })
  })
}
