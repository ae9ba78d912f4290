// The migration barrier (docs/architecture.md rule 4) through ProxyAcks, against real proxies on both
// coordinators: every proxy acknowledges a topology change and wait() returns; a SIGSTOPped proxy makes
// it time out naming that proxy; a proxy whose lease expires is no longer waited for. And ProxyAcks
// keeps working when its watch fails (a compacted revision on the embedded coordinator).
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {TopologyStore} from '../src/coord/topology-store.js'
import {BarrierTimeoutError, ProxyAcks, waitForProxies} from '../src/migrate/barrier.js'
import type {ProxyInfo} from '../src/topology/model.js'
import {startCluster} from './harness/cluster.js'
import {removeDir, tempDir, waitFor} from './harness/process.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Moves slot 0 to the other group (an empty slot: as `slot set --force` does). Returns the new epoch. */
function flip(store: TopologyStore): Promise<number> {
  return store.update((topo) => ({slots: [{id: 0, state: 'online', group: topo.slots[0]!.group === 1 ? 2 : 1}]}))
}

function median(xs: number[]): number {
  return xs.slice().sort((a, b) => a - b)[xs.length >> 1]!
}

for (const coordinator of ['embedded', 'etcd'] as const) {
  describe(`barrier through ProxyAcks (${coordinator})`, () => {
    test('acknowledged by every proxy; a stopped proxy times the wait out by name; an expired one is not waited for', {timeout: 120_000}, async (t) => {
      const c = await startCluster({groups: 2, proxies: 0, coordinator})
      try {
        // Long leases: a stopped proxy stays registered, so the barrier must wait for it.
        for (let i = 0; i < 2; i++) await c.startProxy({args: ['--lease-ttl', '30']})
        const store = await c.openStore()
        const acks = new ProxyAcks(store)
        try {
          // --- every proxy acknowledges ---
          const ms: number[] = []
          for (let i = 0; i < 30; i++) {
            const epoch = await flip(store)
            const t0 = performance.now()
            const waited = await acks.wait(epoch, {timeoutMs: 10_000})
            ms.push(performance.now() - t0)
            assert.ok(waited >= 0)
            const records = await store.proxies()
            assert.deepEqual(records.map((p) => p.id), ['proxy_1', 'proxy_2'])
            for (const p of records) assert.ok(p.appliedEpoch >= epoch, `${p.id} at ${p.appliedEpoch} < ${epoch} after wait()`)
          }
          assert.equal(acks.watching, true)
          t.diagnostic(`barrier with 2 proxies: median ${median(ms).toFixed(2)} ms, max ${Math.max(...ms).toFixed(2)} ms over ${ms.length}`)
          // Concurrent waits, and the one-off function.
          let epoch = await flip(store)
          await Promise.all([acks.wait(epoch, {timeoutMs: 10_000}), acks.wait(epoch, {timeoutMs: 10_000})])
          epoch = await flip(store)
          assert.ok((await waitForProxies(store, epoch, {timeoutMs: 10_000})) >= 0)

          // --- proxy_2 stopped: the wait times out naming it (and only it) ---
          const stopped = c.proxies[1]!
          stopped.proc.child.kill('SIGSTOP')
          try {
            epoch = await flip(store)
            const logs: string[] = []
            const t0 = Date.now()
            await assert.rejects(acks.wait(epoch, {timeoutMs: 1500, log: (l) => logs.push(l), resumeHint: 'Run it again.'}), (err: Error) => {
              assert.ok(err instanceof BarrierTimeoutError, String(err))
              assert.match(
                err.message,
                new RegExp(`^barrier timeout: proxy proxy_2 \\(127\\.0\\.0\\.1:${stopped.port}, pid \\d+, applied epoch ${epoch - 1} < ${epoch}\\) did not acknowledge topology epoch ${epoch} within 2 s; stopped cleanly\\. Run it again\\.$`),
              )
              assert.deepEqual(err.proxies.map((p: ProxyInfo) => p.id), ['proxy_2'])
              return true
            })
            const took = Date.now() - t0
            assert.ok(took >= 1500 && took < 5000, `timed out after ${took} ms`)
            assert.ok(logs.some((l) => /^waiting for proxy proxy_2 \(.*\) to apply epoch \d+ \(1\.\d s\)$/.test(l)), logs.join('\n'))
            assert.ok(logs.every((l) => !l.includes('proxy_1')), logs.join('\n'))
            // check() is called while waiting and may abort it.
            let checks = 0
            await assert.rejects(
              acks.wait(epoch, {
                timeoutMs: 10_000,
                check: () => {
                  if (++checks > 3) throw new Error('stop asked')
                },
              }),
              /stop asked/,
            )
          } finally {
            stopped.proc.child.kill('SIGCONT')
          }
          // Resumed, it catches up and acknowledges.
          await acks.wait(epoch, {timeoutMs: 10_000})

          // --- a proxy whose lease expires (stopped, short lease) is fenced and no longer waited for ---
          const short = await c.startProxy({args: ['--lease-ttl', '2']})
          epoch = await flip(store)
          await acks.wait(epoch, {timeoutMs: 10_000})
          short.proc.child.kill('SIGSTOP')
          try {
            epoch = await flip(store)
            const t0 = Date.now()
            const waited = await acks.wait(epoch, {timeoutMs: 20_000})
            const took = Date.now() - t0
            t.diagnostic(`waited ${took} ms for the stopped proxy's 2 s lease to expire`)
            assert.ok(waited < 10_000 && took < 10_000, `took ${took} ms`)
            assert.deepEqual((await store.proxies()).map((p) => p.id), ['proxy_1', 'proxy_2'])
          } finally {
            short.proc.child.kill('SIGKILL')
          }
        } finally {
          await acks.close()
        }
        assert.equal(acks.watching, false)
      } finally {
        await c.stop()
      }
    })
  })
}

test('ProxyAcks: a failed watch (compacted revision) falls back to reading, then watches again', {timeout: 60_000}, async () => {
  const dir = tempDir('acks')
  const coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'))
  try {
    const store = new TopologyStore(coord, 't')
    const record = (appliedEpoch: number, n = 0): ProxyInfo & {n: number} => ({
      id: 'p1',
      addr: '127.0.0.1:1',
      httpAddr: '127.0.0.1:2',
      state: 'online',
      appliedEpoch,
      pid: 1,
      startedAt: 0,
      n,
    })
    const put = (appliedEpoch: number, n = 0) => coord.txn([], [{type: 'put', key: store.keys.proxy('p1'), value: JSON.stringify(record(appliedEpoch, n))}])
    await put(1)
    const acks = new ProxyAcks(store)
    assert.equal(await acks.wait(1, {timeoutMs: 5000}) < 1000, true)
    assert.equal(acks.watching, true)
    assert.equal(acks.watchStarts, 1)

    const pending = acks.wait(2, {timeoutMs: 20_000})
    await sleep(20)
    // Two commits and a compaction past them before the watch polls again: it fails (CompactedError).
    const burst = [put(1, 1), put(1, 2)]
    await coord.compact((await Promise.all(burst))[1]!.revision)
    // The waiting wait() reads the store meanwhile and starts a new watch (from the current revision).
    await waitFor('the watch to fail and start again', () => acks.watchStarts === 2 && acks.watching, 5000, 5)
    await put(2)
    assert.ok((await pending) < 20_000)
    await put(3)
    await acks.wait(3, {timeoutMs: 5000})
    assert.equal(acks.watching, true)
    assert.equal(acks.watchStarts, 2)
    const later = acks.wait(4, {timeoutMs: 5000})
    await sleep(20)
    await put(4)
    await later
    await acks.close()
  } finally {
    await coord.close()
    removeDir(dir)
  }
})
