import assert from 'node:assert/strict'
import {test} from 'node:test'
import {unpackKeys} from '../src/migrate/migration-store.js'
import {BUCKET_ROW_KEYS, laneNext, lanesFrom, lanesText, ScanBuckets} from '../src/migrate/scan-buckets.js'
import {encodeValue} from '../src/resp/resp.js'
import {slotOf} from '../src/topology/slots.js'
import {startRedis} from './harness/redis.js'

/** A SCAN reply as Redis sends it: [cursor, [key...]]. */
function scanReply(cursor: string, keys: Buffer[]): Buffer {
  return encodeValue([Buffer.from(cursor), keys])
}

test('ScanBuckets buckets the wanted slots of raw SCAN pages as slotOf does, in packed rows', () => {
  const keys: Buffer[] = []
  for (let i = 0; i < 5000; i++) keys.push(Buffer.from(`user:${i}`))
  // Hash tags, binary bytes (CR/LF inside a key), an empty key, and rstore's own keys.
  keys.push(Buffer.from('{user:7}.followers'), Buffer.from([0, 13, 10, 255, 36]), Buffer.alloc(0))
  keys.push(Buffer.from('__rstore:pending:3'), Buffer.from('__rstore:x'))
  // Many keys of one slot: its bucket splits into rows of BUCKET_ROW_KEYS.
  for (let i = 0; i < 2500; i++) keys.push(Buffer.from(`{crowded}:${i}`))
  const wanted = (slot: number) => slot < 512 || slot === slotOf('{crowded}')

  const b = new ScanBuckets(wanted)
  const page1 = b.addPage(scanReply('1234', keys.slice(0, 3000)))
  const page2 = b.addPage(scanReply('0', keys.slice(3000)))
  assert.deepEqual(page1, {cursor: '1234', keys: 3000})
  assert.deepEqual(page2, {cursor: '0', keys: keys.length - 3000})

  const expected = new Map<number, string[]>()
  for (const k of keys) {
    if (k.toString('latin1').startsWith('__rstore:')) continue
    const slot = slotOf(k)
    if (!wanted(slot)) continue
    expected.set(slot, [...(expected.get(slot) ?? []), k.toString('latin1')])
  }
  const total = [...expected.values()].reduce((n, l) => n + l.length, 0)
  assert.equal(b.pending, total)

  const rows = b.take()
  assert.equal(b.pending, 0)
  assert.deepEqual([...rows.keys()].sort((x, y) => x - y), [...expected.keys()].sort((x, y) => x - y))
  for (const [slot, list] of rows) {
    for (const r of list) {
      assert.ok(r.count <= BUCKET_ROW_KEYS)
      assert.equal(unpackKeys(r.blob).length, r.count)
    }
    const got = list.flatMap((r) => unpackKeys(r.blob).map((k) => k.toString('latin1')))
    assert.deepEqual(got, expected.get(slot), `slot ${slot}`)
  }
  assert.equal(rows.get(slotOf('{crowded}'))!.length, Math.ceil(expected.get(slotOf('{crowded}'))!.length / BUCKET_ROW_KEYS))
  assert.equal(b.take().size, 0)
})

test('ScanBuckets refuses a reply that is not a SCAN page', () => {
  const b = new ScanBuckets(() => true)
  assert.throws(() => b.addPage(Buffer.from('+OK\r\n')), /malformed SCAN reply/)
  assert.throws(() => b.addPage(Buffer.from('*2\r\n$1\r\n0\r\n*1\r\n$3\r\nab')), /malformed SCAN reply|cut short/)
})

test('lanesFrom / lanesText / laneNext: two halves of the cursor space, an older single cursor kept', () => {
  const fresh = lanesFrom(null)
  assert.deepEqual(fresh, [{cursor: '0', firstHalf: true}, {cursor: '1', firstHalf: false}])
  assert.equal(lanesText(fresh), '0/1')
  assert.equal(laneNext(fresh[0]!, '96'), '96')
  assert.equal(laneNext(fresh[0]!, '97'), null, 'lane 0 ends at an odd cursor')
  assert.equal(laneNext(fresh[0]!, '0'), null)
  assert.equal(laneNext(fresh[1]!, '97'), '97')
  assert.equal(laneNext(fresh[1]!, '0'), null)
  assert.deepEqual(lanesFrom('-/4097'), [{cursor: null, firstHalf: true}, {cursor: '4097', firstHalf: false}])
  assert.equal(lanesText([{cursor: null, firstHalf: true}, {cursor: null, firstHalf: false}]), '-/-')
  assert.deepEqual(lanesFrom('1234'), [{cursor: '1234', firstHalf: false}], 'a scan recorded by an older mover: one lane')
})

test('two SCAN lanes on a real redis-server see every key, also while the table grows', {timeout: 60_000}, async () => {
  const server = await startRedis()
  const r = server.client()
  try {
    const all = new Set<string>()
    for (let i = 0; i < 30_000; i += 5000) {
      const p = r.pipeline()
      for (let j = i; j < i + 5000; j++) p.set(`k:${j}`, '1')
      await p.exec()
    }
    for (let j = 0; j < 30_000; j++) all.add(`k:${j}`)
    const seen = new Set<string>()
    let grown = 0
    const lanes = lanesFrom(null)
    await Promise.all(
      lanes.map(async (lane) => {
        while (lane.cursor !== null) {
          const [next, keys] = await r.scan(lane.cursor, 'COUNT', 200)
          for (const k of keys) seen.add(k)
          lane.cursor = laneNext(lane, next)
          // Keys added meanwhile make Redis grow (rehash) its table under the two cursors.
          if (grown < 40_000) {
            const p = r.pipeline()
            for (let j = 0; j < 2000; j++) p.set(`new:${grown++}`, '1')
            await p.exec()
          }
        }
      }),
    )
    const missed = [...all].filter((k) => !seen.has(k))
    assert.deepEqual(missed.slice(0, 5), [], `${missed.length} keys present throughout were not seen`)
  } finally {
    r.disconnect()
    await server.stop()
  }
})
