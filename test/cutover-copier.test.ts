// CutoverCopier orders concurrent copies of one key (real Redis on both sides): coalesced within one
// copier, and a copy from another proxy that lands late with an older value is repaired.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {openStore} from '../src/backends/index.js'
import type {KeySnapshot, KeyStore} from '../src/backends/types.js'
import {CutoverCopier, type CopySides} from '../src/proxy/cutover-copier.js'
import {startRedis, type RedisServer} from './harness/redis.js'
import {startAll} from './harness/process.js'

let primaryServer: RedisServer
let secondaryServer: RedisServer
let primary: KeyStore
let secondary: KeyStore

before(async () => {
  ;[primaryServer, secondaryServer] = await startAll([startRedis(), startRedis()] as const)
  primary = await openStore(`redis://${primaryServer.addr}`)
  secondary = await openStore(`redis://${secondaryServer.addr}`)
})
after(async () => {
  await primary?.close()
  await secondary?.close()
  await Promise.all([primaryServer?.stop(), secondaryServer?.stop()])
})

const hget = async (s: KeyStore, key: string) => {
  const snap = await s.readKey(Buffer.from(key))
  return snap?.type === 'hash' ? snap.value.map(([f, v]) => `${f}=${v}`).join(',') : String(snap?.type)
}

/** The secondary store, with its writes counted and optionally held until a gate opens. */
function gatedSecondary(gate?: Promise<void>): {store: KeyStore; writes: () => number; written: Promise<void>} {
  let writes = 0
  let markWritten!: () => void
  const written = new Promise<void>((r) => (markWritten = r))
  const store = Object.create(secondary) as KeyStore
  store.writeKey = async (key: Buffer, snap: KeySnapshot) => {
    writes++
    markWritten()
    if (gate) await gate
    return secondary.writeKey(key, snap)
  }
  return {store, writes: () => writes, written}
}

const TAG = {cutover: 'c', step: 'double-write'}

/** A caller's copy resolves before the round's closing check of the primary: wait for that too. */
async function settled(copier: CutoverCopier): Promise<void> {
  const t0 = Date.now()
  while (copier.inProgress && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5))
  assert.equal(copier.inProgress, 0, 'copies still running after 5 s')
}

describe('CutoverCopier', () => {
  test('a copy from another proxy that read an older value and lands last is copied again', async () => {
    const key = Buffer.from('race:h')
    await primary.execute(['HINCRBY', 'race:h', 'f', '1'].map((x) => Buffer.from(x)))
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const slow = gatedSecondary(gate)
    const proxyA = new CutoverCopier()
    const proxyB = new CutoverCopier()
    // A reads f=1 and its write to the secondary is held back
    const copyA = proxyA.copy('c\0race:h', TAG, key, async (): Promise<CopySides> => ({from: primary, to: [slow.store]}))
    await slow.written
    // meanwhile another proxy applies f=2 and copies it first
    await primary.execute(['HINCRBY', 'race:h', 'f', '1'].map((x) => Buffer.from(x)))
    await proxyB.copy('c\0race:h', TAG, key, async () => ({from: primary, to: [secondary]}))
    assert.equal(await hget(secondary, 'race:h'), 'f=2')
    // A's older value lands now; its check sees the primary changed and copies again
    open()
    await copyA
    await settled(proxyA)
    assert.equal(slow.writes(), 2, 'the stale copy was followed by a second round')
    assert.equal(await hget(secondary, 'race:h'), 'f=2')
  })

  test('concurrent copies of one key in one proxy are coalesced and every caller waits for a read after its write', async () => {
    const key = Buffer.from('hot:h')
    const counted = gatedSecondary()
    const copier = new CutoverCopier()
    const sides = async (): Promise<CopySides> => ({from: primary, to: [counted.store]})
    const writers = Array.from({length: 20}, async (_, w) => {
      for (let i = 0; i < 25; i++) {
        await primary.execute(['HINCRBY', 'hot:h', `w${w}`, '1'].map((x) => Buffer.from(x)))
        await copier.copy('c\0hot:h', TAG, key, sides)
        // this writer's own increments are on the secondary once its copy resolves
        const snap = await secondary.readKey(key)
        const mine = snap?.type === 'hash' ? Number(snap.value.find(([f]) => f.toString() === `w${w}`)?.[1]) : 0
        assert.ok(mine >= i + 1, `writer ${w}: ${mine} on the secondary after ${i + 1} increments`)
      }
    })
    await Promise.all(writers)
    await settled(copier)
    assert.ok(counted.writes() < 500, `${counted.writes()} copies for 500 writes: coalesced`)
    assert.deepEqual(await secondary.readKey(key), await primary.readKey(key))
  })

  test('a key deleted on the primary is deleted on the secondary; a failed copy rejects its callers', async () => {
    const key = Buffer.from('gone:s')
    const copier = new CutoverCopier()
    await secondary.execute(['SET', 'gone:s', 'old'].map((x) => Buffer.from(x)))
    await copier.copy('c\0gone:s', TAG, key, async () => ({from: primary, to: [secondary]}))
    assert.equal(await secondary.readKey(key), null)
    const broken = Object.create(secondary) as KeyStore
    broken.execute = async () => {
      throw new Error('connection refused')
    }
    await assert.rejects(copier.copy('c\0gone:s', TAG, key, async () => ({from: primary, to: [broken]})), /connection refused/)
    await settled(copier)
  })
})
