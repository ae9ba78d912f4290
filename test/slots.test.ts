import assert from 'node:assert/strict'
import {test} from 'node:test'
import CRC32 from 'crc-32'
import {hashTag, slotOf, slotOfRange, SLOT_COUNT} from '../src/topology/slots.js'

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

test('slotOfRange equals slotOf of the subarray, hash tags and all bytes included', () => {
  const keys = ['', 'a', '123456789', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}', 'no-close{', '{}', '{a}', 'x{', '}{x}']
  let seed = 7
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff)
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.alloc(rnd() % 40)
    for (let j = 0; j < b.length; j++) b[j] = rnd() % 5 === 0 ? [0x7b, 0x7d][rnd() % 2]! : rnd() % 256
    keys.push(b.toString('latin1'))
  }
  for (const k of keys) {
    const key = Buffer.from(k, 'latin1')
    // The key inside a bigger buffer, as in a SCAN reply.
    const before = Buffer.from('$9\r\n{junk}')
    const raw = Buffer.concat([before, key, Buffer.from('}\r\n{x}')])
    assert.equal(slotOfRange(raw, before.length, before.length + key.length), slotOf(key), JSON.stringify(k))
  }
})
