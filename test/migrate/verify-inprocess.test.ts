/**
 * verify run the way a server process runs it: in-process, with an AbortSignal and a progress
 * callback (no CLI code). It reports after every batch, and a stop ends it after the batch in flight
 * with a result that says 'stopped' and counts only what was compared.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {after, before, test} from 'node:test'
import {verify, type VerifyOptions, type VerifyProgress} from '../../src/migrate/verify.js'
import {startRedis, type RedisServer} from '../harness/redis.js'
import {RSTORE_BIN} from '../harness/cluster.js'

let a: RedisServer
let b: RedisServer
const KEYS = 3000

before(async () => {
  ;[a, b] = await Promise.all([startRedis(), startRedis()])
  for (const s of [a, b]) {
    const p = s.client().pipeline()
    for (let i = 0; i < KEYS; i++) p.set(`v:${i}`, `value-${i}`)
    await p.exec()
  }
  // Ten differences the full run must find.
  for (let i = 0; i < 10; i++) await b.client().set(`v:${i * 7}`, 'changed')
})
after(async () => {
  await Promise.all([a?.stop(), b?.stop()])
})

const options = (o: Partial<VerifyOptions>): VerifyOptions => ({
  from: 'redis', to: 'redis', source: a.addr, target: b.addr, match: 'v:*', ttlTolerance: 2000, rounds: 1, interval: 0, repair: false, rate: 0, batch: 100, maxKeys: 100, ...o,
})

test('verify reports its progress after every batch and finds every difference', async () => {
  const seen: VerifyProgress[] = []
  const r = await verify(options({onProgress: (p) => seen.push(p)}))
  assert.equal(r.state, 'done')
  assert.equal(r.compared, KEYS)
  assert.equal(r.different, 10)
  assert.ok(seen.length >= KEYS / 100, `${seen.length} progress reports for ${KEYS / 100} batches`)
  assert.deepEqual(seen.map((p) => p.compared), seen.map((p) => p.compared).slice().sort((x, y) => x - y), 'compared only grows')
  assert.equal(seen.at(-1)!.compared, KEYS)
  assert.equal(seen.at(-1)!.differences, 10)
})

test('an aborted verify stops after the batch in flight and says so', async () => {
  const ctl = new AbortController()
  const seen: VerifyProgress[] = []
  // 1000 keys/s: the whole run would take 3 s; the stop comes after the first few batches.
  const r = await verify(
    options({
      rate: 1000,
      signal: ctl.signal,
      onProgress: (p) => {
        seen.push(p)
        if (p.compared >= 300) ctl.abort()
      },
    }),
  )
  assert.equal(r.state, 'stopped')
  assert.ok(r.compared >= 300 && r.compared < KEYS, `compared ${r.compared} of ${KEYS} before stopping`)
  assert.equal(r.compared, seen.at(-1)!.compared, 'nothing compared after the last report')
  assert.equal(r.equal + r.different + r.missing, r.compared)
})

test('a stop during the wait between rounds ends it at once with the differences found', async () => {
  const ctl = new AbortController()
  const t0 = Date.now()
  const r = await verify(options({rounds: 3, interval: 30, signal: ctl.signal, onProgress: (p) => p.compared === KEYS && setTimeout(() => ctl.abort(), 100)}))
  assert.equal(r.state, 'stopped')
  assert.equal(r.rounds, 1)
  assert.equal(r.different, 10)
  assert.ok(Date.now() - t0 < 10_000, 'the 30 s wait between rounds was cut short')
})

test('rstore verify stopped by SIGTERM prints what it compared and exits 130', async () => {
  const child = spawn(process.execPath, [RSTORE_BIN, 'verify', '--to', 'redis', '--source', a.addr, '--target', b.addr, '--match', 'v:*', '--rate', '500', '--batch', '50', '--json'], {stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  child.stderr.on('data', (d: Buffer) => (err += d))
  // Started and comparing: at 500 keys/s the 3000 keys take 6 s.
  await new Promise((r) => setTimeout(r, 2500))
  child.kill('SIGTERM')
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
  assert.equal(code, 130, `exit ${code}; stderr: ${err}`)
  assert.match(err, /verify: stopping after the batch in flight/)
  const res = JSON.parse(out) as {state: string; compared: number}
  assert.equal(res.state, 'stopped')
  assert.ok(res.compared > 0 && res.compared < KEYS, `compared ${res.compared}`)
})
