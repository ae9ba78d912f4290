import assert from 'node:assert/strict'
import {test} from 'node:test'
import {unpackKeys} from '../src/migrate/migration-store.js'
import {BUCKET_ROW_KEYS, ScanBuckets} from '../src/migrate/scan-buckets.js'
import {encodeValue} from '../src/proxy/resp.js'
import {slotOf} from '../src/topology/slots.js'

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
