import assert from 'node:assert/strict'
import {test} from 'node:test'
import CRC32 from 'crc-32'
import {hashTag, slotOf, SLOT_COUNT} from '../src/topology/slots.js'

test('slotOf is crc32 of the whole key mod 1024 when there is no tag', () => {
  // Known IEEE CRC-32 value: crc32("123456789") = 0xCBF43926.
  assert.equal(slotOf('123456789'), 0xcbf43926 % SLOT_COUNT)
  assert.equal(slotOf(Buffer.from('foo')), (CRC32.str('foo') >>> 0) % 1024)
})

test('hash tags follow the Redis Cluster rule', () => {
  assert.equal(hashTag(Buffer.from('{user1000}.following')).toString(), 'user1000')
  assert.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'))
  assert.equal(hashTag(Buffer.from('foo{}{bar}')).toString(), 'foo{}{bar}')
  assert.equal(hashTag(Buffer.from('foo{{bar}}zap')).toString(), '{bar')
  assert.equal(hashTag(Buffer.from('foo{bar}{zap}')).toString(), 'bar')
  assert.equal(hashTag(Buffer.from('no-close{')).toString(), 'no-close{')
})

test('binary keys hash by bytes', () => {
  const key = Buffer.from([0xff, 0x00, 0x7b, 0x01, 0x7d, 0x80])
  assert.equal(slotOf(key), (CRC32.buf(Buffer.from([0x01])) >>> 0) % 1024)
  for (let i = 0; i < 1000; i++) {
    const s = slotOf(`key:${i}`)
    assert.ok(s >= 0 && s < SLOT_COUNT)
  }
})
