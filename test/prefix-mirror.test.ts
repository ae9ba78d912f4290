// PrefixMirror's recovery: a watch that fails (a compacted revision on the embedded coordinator) is
// replaced by a fresh list and watch, a change is reported, and the mirror matches the store again.
// (Its contract with both coordinators is in coord-contract.test.ts.)
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {PrefixMirror} from '../src/coord/prefix-mirror.js'
import {removeDir, tempDir, waitFor} from './harness/process.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('PrefixMirror lists again after its watch fails (compacted revision) and keeps following', {timeout: 60_000}, async () => {
  const dir = tempDir('mirror')
  const coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'))
  try {
    const put = (k: string, v: string) => coord.txn([], [{type: 'put', key: `/m/${k}`, value: v}])
    await put('a', '1')
    let changes = 0
    const m = await PrefixMirror.start(coord, '/m/', () => changes++)
    assert.equal(m.resyncs, 1)
    assert.deepEqual(m.snapshot().map((kv) => [kv.key, kv.value]), [['/m/a', '1']])
    // Two commits and a compaction past them before the watch polls: it fails (CompactedError).
    const burst = [put('b', '2'), put('a', '3')]
    await coord.compact((await Promise.all(burst))[1]!.revision)
    await waitFor('the mirror to list again', () => m.resyncs === 2 && changes >= 1, 5000, 5)
    assert.deepEqual(m.snapshot().map((kv) => [kv.key, kv.value]), [['/m/a', '3'], ['/m/b', '2']])
    const r = await coord.txn([], [{type: 'delete', key: '/m/b'}, {type: 'put', key: '/m/c', value: '4'}])
    await waitFor('the next change', () => m.revision === r.revision, 5000, 5)
    await sleep(5)
    assert.deepEqual(m.snapshot().map((kv) => [kv.key, kv.value]), [['/m/a', '3'], ['/m/c', '4']])
    assert.equal(m.resyncs, 2)
    await m.close()
  } finally {
    await coord.close()
    removeDir(dir)
  }
})
