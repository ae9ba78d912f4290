import assert from 'node:assert/strict'
import {test} from 'node:test'
import {showKey} from '../src/topology/key-text.js'

test('a printable UTF-8 key is shown as is; any other as 0x and hex, which gives the bytes back', () => {
  assert.equal(showKey(Buffer.from('user:{42}:name')), 'user:{42}:name')
  assert.equal(showKey(Buffer.from('clé')), 'clé')
  const bin = Buffer.from([0x61, 0x00, 0xff, 0x0d, 0x0a])
  const shown = showKey(bin)
  assert.equal(shown, '0x6100ff0d0a')
  assert.deepEqual(Buffer.from(shown.slice(2), 'hex'), bin)
  // Invalid UTF-8 (a lone continuation byte) is not decoded into a replacement character.
  assert.equal(showKey(Buffer.from([0x80, 0x41])), '0x8041')
})

test('a long key is cut to the width asked for, with an ellipsis; no width keeps it whole', () => {
  const long = Buffer.from('k'.repeat(200))
  assert.equal(showKey(long).length, 200)
  assert.equal(showKey(long, 80), `${'k'.repeat(77)}...`)
  assert.equal(showKey(Buffer.from('short'), 80), 'short')
})
