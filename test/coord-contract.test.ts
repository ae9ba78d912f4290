/**
 * The coordinator contract: one suite, run against both implementations (a real etcd started by the
 * harness, and the embedded SQLite file in a temp dir). Whatever passes here may be relied on by the
 * proxy, the migrator and the CLI whichever coordinator they run on.
 */
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {fileURLToPath} from 'node:url'
import Database from 'better-sqlite3'
import etcd3 from 'etcd3'
import {UnreachableError, ValidationError} from '../src/errors.js'
import {EmbeddedCoordinator} from '../src/coord/embedded.js'
import {EtcdCoordinator} from '../src/coord/etcd.js'
import {CompactedError, CoordinatorClosedError, LeaseNotFoundError} from '../src/coord/keys.js'
import {PrefixMirror} from '../src/coord/prefix-mirror.js'
import type {Coordinator, KeyValue, Op, WatchEvent} from '../src/coord/types.js'
import {startEtcd, type EtcdServer} from './harness/etcd.js'
import {freePort, removeDir, tempDir, waitFor} from './harness/process.js'

const CHILD = fileURLToPath(new URL('./fixtures/coord-child.js', import.meta.url))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** What the suite needs from one implementation. */
interface Target {
  kind: 'embedded' | 'etcd'
  /** File path or endpoint, as the child processes take it. */
  addr: string
  open(): Promise<Coordinator>
  /** Drops history up to revision. */
  compact(c: Coordinator, revision: number): Promise<void>
  /** Ends a lease behind its holder's back (as if the holder had stalled past its TTL). */
  expireLeaseBehindHoldersBack(id: string): Promise<void>
  stop(): Promise<void>
}

// ---- child processes ----

const children = new Set<ChildProcess>()
function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
}
process.on('exit', killChildren)
// A child left running (a failed test) must not keep this test process alive.
after(killChildren)

interface Child {
  proc: ChildProcess
  lines: string[]
  stderr(): string
  /** Resolves with the first stdout line matching re. */
  line(re: RegExp, timeoutMs?: number): Promise<string>
  exited(timeoutMs: number): Promise<{code: number | null; signal: NodeJS.Signals | null}>
}

function child(args: string[]): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], {stdio: ['pipe', 'pipe', 'pipe']})
  children.add(proc)
  const lines: string[] = []
  let err = ''
  let buf = ''
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) =>
    proc.on('exit', (code, signal) => {
      children.delete(proc)
      resolve({code, signal})
    }),
  )
  return {
    proc,
    lines,
    stderr: () => err,
    async line(re, timeoutMs = 15000) {
      let found: string | undefined
      await waitFor(`child ${args.join(' ')} to print ${re} (stderr: ${err})`, () => {
        found = lines.find((l) => re.test(l))
        if (!found && proc.exitCode !== null) throw new Error(`child exited with ${proc.exitCode}: ${err}`)
        return found !== undefined
      }, timeoutMs, 10)
      return found!
    },
    exited: (timeoutMs) =>
      Promise.race([
        exit,
        sleep(timeoutMs).then(() => {
          throw new Error(`child ${args.join(' ')} did not exit within ${timeoutMs} ms (stderr: ${err})`)
        }),
      ]),
  }
}

// ---- the contract ----

function contract(name: string, makeTarget: () => Promise<Target>): void {
  describe(`coordinator contract: ${name}`, {concurrency: 1}, () => {
    let t: Target
    let c: Coordinator
    const opened: Coordinator[] = []
    let n = 0
    /** A fresh key prefix per test, so tests never see each other's keys. */
    const fresh = () => `/rstore-test/${name}/${++n}-${Date.now()}/`
    const open = async () => {
      const x = await t.open()
      opened.push(x)
      return x
    }

    before(async () => {
      t = await makeTarget()
      c = await open()
    })
    after(async () => {
      for (const x of opened) await x.close()
      if (t) await t.stop()
    })

    test('get, put, list sorted by key, delete, deletePrefix', async () => {
      const p = fresh()
      assert.equal(await c.get(`${p}missing`), null)
      assert.deepEqual(await c.list(p), [])
      const r1 = await c.txn([], [
        {type: 'put', key: `${p}b`, value: '{"x":2}'},
        {type: 'put', key: `${p}a`, value: 'ä ☃ "quoted"'},
        {type: 'put', key: `${p}c/d`, value: ''},
      ])
      assert.equal(r1.succeeded, true)
      // A sibling that shares the prefix's text but not the prefix itself is not listed.
      await c.txn([], [{type: 'put', key: p.slice(0, -1) + 'x', value: 'outside'}])
      const a = await c.get(`${p}a`)
      assert.deepEqual(a, {key: `${p}a`, value: 'ä ☃ "quoted"', createRevision: r1.revision, modRevision: r1.revision})
      assert.equal(a!.lease, undefined)
      const listed = await c.list(p)
      assert.deepEqual(listed.map((kv) => kv.key), [`${p}a`, `${p}b`, `${p}c/d`])
      assert.deepEqual(listed.map((kv) => kv.value), ['ä ☃ "quoted"', '{"x":2}', ''])

      // An update keeps createRevision and moves modRevision.
      const r2 = await c.txn([], [{type: 'put', key: `${p}a`, value: 'A2'}])
      assert.ok(r2.revision > r1.revision)
      assert.deepEqual(await c.get(`${p}a`), {key: `${p}a`, value: 'A2', createRevision: r1.revision, modRevision: r2.revision})

      const r3 = await c.txn([], [{type: 'delete', key: `${p}b`}])
      assert.equal(r3.revision, r2.revision + 1)
      assert.equal(await c.get(`${p}b`), null)
      const r4 = await c.txn([], [{type: 'deletePrefix', prefix: `${p}c/`}])
      assert.equal(r4.revision, r3.revision + 1)
      assert.deepEqual((await c.list(p)).map((kv) => kv.key), [`${p}a`])
      // A key created again starts a new life: new createRevision.
      const r5 = await c.txn([], [{type: 'put', key: `${p}b`, value: 'again'}])
      assert.equal((await c.get(`${p}b`))!.createRevision, r5.revision)
      // list of a prefix that ends mid-name includes the whole family; '' lists everything.
      assert.ok((await c.list(p.slice(0, -1))).some((kv) => kv.value === 'outside'))
      assert.ok((await c.list('')).length >= 3)
    })

    test('keys beyond ASCII (and a NUL byte) come back as written, listed in UTF-8 byte order', async () => {
      const p = fresh()
      // UTF-8 byte order, not JavaScript's UTF-16 order: U+FF21 (EF BC A1) sorts before U+1F600 (F0 ...).
      const names = ['a', 'a\u0000b', 'ä', '☃', '\uff21', '😀']
      const r = await c.txn([], names.reverse().map((n) => ({type: 'put' as const, key: p + n, value: n})))
      names.reverse()
      const listed = await c.list(p)
      assert.deepEqual(listed.map((kv) => kv.key), names.map((n) => p + n))
      assert.deepEqual(listed.map((kv) => kv.value), names)
      for (const n of names) assert.deepEqual(await c.get(p + n), {key: p + n, value: n, createRevision: r.revision, modRevision: r.revision})
      const evs: WatchEvent[] = []
      const w = await c.watch(p, r.revision - 1, (ev) => evs.push(ev))
      await waitFor('the events', () => evs.length === names.length, 5000, 5)
      assert.deepEqual(evs.map((e) => e.key).sort(), names.map((n) => p + n).sort())
      await w.close()
    })

    test('revisions increase by exactly one per changing txn; no-op txns do not bump', async () => {
      const p = fresh()
      const r0 = await c.revision()
      const r1 = await c.txn([], [
        {type: 'put', key: `${p}1`, value: '1'},
        {type: 'put', key: `${p}2`, value: '2'},
        {type: 'put', key: `${p}3`, value: '3'},
      ])
      assert.equal(r1.revision, r0 + 1, 'three puts in one txn are one revision')
      for (const kv of await c.list(p)) assert.equal(kv.modRevision, r1.revision)
      assert.equal(await c.revision(), r1.revision)
      const revs = [r1.revision]
      for (let i = 0; i < 5; i++) revs.push((await c.txn([], [{type: 'put', key: `${p}1`, value: `v${i}`}])).revision)
      for (let i = 1; i < revs.length; i++) assert.equal(revs[i], revs[i - 1] + 1)
      // Deleting nothing and an empty txn change nothing, so the revision stays (as etcd).
      const noop = await c.txn([], [{type: 'delete', key: `${p}nothing`}, {type: 'deletePrefix', prefix: `${p}none/`}])
      assert.deepEqual(noop, {succeeded: true, revision: revs.at(-1)})
      assert.deepEqual(await c.txn([], []), {succeeded: true, revision: revs.at(-1)})
      assert.equal(await c.revision(), revs.at(-1))
      // A deletePrefix of three keys is one revision too.
      const rd = await c.txn([], [{type: 'deletePrefix', prefix: p}])
      assert.equal(rd.revision, revs.at(-1)! + 1)
      assert.deepEqual(await c.list(p), [])
    })

    test('compares: modRevision, absent via 0, value; a failed txn changes nothing', async () => {
      const p = fresh()
      const k = `${p}k`
      const created = await c.txn([{key: k, modRevision: 0}], [{type: 'put', key: k, value: 'one'}])
      assert.equal(created.succeeded, true)
      const again = await c.txn([{key: k, modRevision: 0}], [{type: 'put', key: k, value: 'two'}, {type: 'put', key: `${p}side`, value: 's'}])
      assert.deepEqual(again, {succeeded: false, revision: created.revision}, 'create-only on an existing key fails')
      assert.equal((await c.get(k))!.value, 'one')
      assert.equal(await c.get(`${p}side`), null, 'no op of a failed txn is applied')
      assert.equal(await c.revision(), created.revision)

      // modRevision must match exactly.
      assert.equal((await c.txn([{key: k, modRevision: created.revision - 1}], [{type: 'put', key: k, value: 'x'}])).succeeded, false)
      const swapped = await c.txn([{key: k, modRevision: created.revision}], [{type: 'put', key: k, value: 'two'}])
      assert.equal(swapped.succeeded, true)
      assert.equal((await c.txn([{key: k, modRevision: created.revision}], [{type: 'delete', key: k}])).succeeded, false, 'stale modRevision')

      // value compares: equal holds, different fails, absent key fails even against ''.
      assert.equal((await c.txn([{key: k, value: 'two'}], [{type: 'put', key: `${p}v`, value: '1'}])).succeeded, true)
      assert.equal((await c.txn([{key: k, value: 'one'}], [{type: 'put', key: `${p}v`, value: '2'}])).succeeded, false)
      assert.equal((await c.txn([{key: `${p}absent`, value: ''}], [{type: 'put', key: `${p}v`, value: '3'}])).succeeded, false)
      assert.equal((await c.get(`${p}v`))!.value, '1')

      // All compares must hold.
      const before = await c.revision()
      const mixed = await c.txn(
        [{key: k, value: 'two'}, {key: `${p}absent`, modRevision: 0}, {key: `${p}v`, value: 'wrong'}],
        [{type: 'deletePrefix', prefix: p}],
      )
      assert.deepEqual(mixed, {succeeded: false, revision: before})
      assert.equal((await c.list(p)).length, 2)
      const all = await c.txn([{key: k, value: 'two'}, {key: `${p}absent`, modRevision: 0}], [{type: 'deletePrefix', prefix: p}])
      assert.equal(all.succeeded, true)
      assert.deepEqual(await c.list(p), [])
      // Absent after delete: modRevision 0 holds again.
      assert.equal((await c.txn([{key: k, modRevision: 0}], [{type: 'put', key: k, value: 'reborn'}])).succeeded, true)
    })

    test('a txn that puts one key twice, or puts and deletes it, is refused on both stores', async () => {
      const p = fresh()
      await assert.rejects(c.txn([], [{type: 'put', key: `${p}a`, value: '1'}, {type: 'put', key: `${p}a`, value: '2'}]), ValidationError)
      await assert.rejects(c.txn([], [{type: 'deletePrefix', prefix: p}, {type: 'put', key: `${p}a`, value: '2'}]), ValidationError)
      await assert.rejects(c.txn([], [{type: 'delete', key: `${p}a`}, {type: 'put', key: `${p}a`, value: '2'}]), ValidationError)
      assert.equal(await c.get(`${p}a`), null)
      // Overlapping deletes are fine.
      assert.equal((await c.txn([], [{type: 'delete', key: `${p}a`}, {type: 'deletePrefix', prefix: p}])).succeeded, true)
    })

    test('watch: revision order, resume after a revision, none missed, none duplicated', async () => {
      const p = fresh()
      const revs: number[] = []
      for (let i = 0; i < 10; i++) {
        revs.push((await c.txn([], [{type: 'put', key: `${p}k${i % 3}`, value: `v${i}`}])).revision)
        await c.txn([], [{type: 'put', key: `${p.slice(0, -1)}-other/${i}`, value: 'noise'}])
      }
      const evs: WatchEvent[] = []
      const errors: Error[] = []
      const w = await c.watch(p, revs[4], (ev) => evs.push(ev), (err) => errors.push(err))
      await waitFor('5 replayed events', () => evs.length >= 5, 5000, 10)
      await sleep(150)
      assert.deepEqual(evs.map((e) => e.revision), revs.slice(5), 'only events after the revision, in order')
      assert.deepEqual(evs.map((e) => e.value), ['v5', 'v6', 'v7', 'v8', 'v9'])
      assert.deepEqual(evs.map((e) => e.key), [5, 6, 7, 8, 9].map((i) => `${p}k${i % 3}`))
      assert.ok(evs.every((e) => e.type === 'put'))

      // Live events: a multi-key txn delivers each key at the same revision, then a delete event.
      const live = await c.txn([], [{type: 'put', key: `${p}m1`, value: 'a'}, {type: 'put', key: `${p}m2`, value: 'b'}])
      const del = await c.txn([], [{type: 'delete', key: `${p}k0`}])
      const dp = await c.txn([], [{type: 'deletePrefix', prefix: `${p}m`}])
      await waitFor('live events', () => evs.length >= 10, 5000, 10)
      await sleep(150)
      assert.deepEqual(evs.slice(5), [
        {type: 'put', key: `${p}m1`, value: 'a', revision: live.revision},
        {type: 'put', key: `${p}m2`, value: 'b', revision: live.revision},
        {type: 'delete', key: `${p}k0`, value: '', revision: del.revision},
        {type: 'delete', key: `${p}m1`, value: '', revision: dp.revision},
        {type: 'delete', key: `${p}m2`, value: '', revision: dp.revision},
      ])
      await w.close()

      // After close: nothing more is delivered.
      await c.txn([], [{type: 'put', key: `${p}after-close`, value: '1'}])
      await sleep(150)
      assert.equal(evs.length, 10)

      // Resume from the last revision seen: exactly the events after it, once.
      const resumed: WatchEvent[] = []
      const w2 = await c.watch(p, evs.at(-1)!.revision, (ev) => resumed.push(ev), (err) => errors.push(err))
      await waitFor('resumed event', () => resumed.length >= 1, 5000, 10)
      const more = await c.txn([], [{type: 'put', key: `${p}more`, value: '2'}])
      await waitFor('second resumed event', () => resumed.length >= 2, 5000, 10)
      await sleep(150)
      assert.deepEqual(resumed.map((e) => [e.key, e.value]), [[`${p}after-close`, '1'], [`${p}more`, '2']])
      assert.equal(resumed[1].revision, more.revision)
      await w2.close()
      assert.deepEqual(errors, [])
    })

    test('watch from a future revision and from now', async () => {
      const p = fresh()
      const now = await c.revision()
      const evs: WatchEvent[] = []
      const w = await c.watch(p, now + 2, (ev) => evs.push(ev))
      const w2evs: WatchEvent[] = []
      const w2 = await c.watch(p, now, (ev) => w2evs.push(ev))
      await c.txn([], [{type: 'put', key: `${p}a`, value: '1'}]) // now + 1: before the first watch's start
      await c.txn([], [{type: 'put', key: `${p}a`, value: '2'}]) // now + 2: still before
      await c.txn([], [{type: 'put', key: `${p}a`, value: '3'}]) // now + 3
      await waitFor('events', () => evs.length >= 1 && w2evs.length >= 3, 5000, 10)
      await sleep(100)
      assert.deepEqual(evs.map((e) => e.value), ['3'])
      assert.deepEqual(w2evs.map((e) => e.value), ['1', '2', '3'])
      await w.close()
      await w2.close()
    })

    test('watch sees changes made by another coordinator instance', async () => {
      const p = fresh()
      const other = await open()
      const evs: WatchEvent[] = []
      const w = await c.watch(p, await c.revision(), (ev) => evs.push(ev))
      const r = await other.txn([], [{type: 'put', key: `${p}x`, value: 'from-other'}])
      await waitFor('event from the other instance', () => evs.length >= 1, 5000, 10)
      assert.deepEqual(evs, [{type: 'put', key: `${p}x`, value: 'from-other', revision: r.revision}])
      assert.deepEqual(await c.get(`${p}x`), {key: `${p}x`, value: 'from-other', createRevision: r.revision, modRevision: r.revision})
      // And the other way round.
      const back: WatchEvent[] = []
      const w2 = await other.watch(p, r.revision, (ev) => back.push(ev))
      const r2 = await c.txn([{key: `${p}x`, modRevision: r.revision}], [{type: 'delete', key: `${p}x`}])
      await waitFor('event back', () => back.length >= 1, 5000, 10)
      assert.deepEqual(back, [{type: 'delete', key: `${p}x`, value: '', revision: r2.revision}])
      await w.close()
      await w2.close()
    })

    test('listWithRevision: the keys and the revision of one snapshot; a watch from there misses nothing', async () => {
      const p = fresh()
      const r1 = await c.txn([], [{type: 'put', key: `${p}b`, value: '1'}, {type: 'put', key: `${p}a`, value: '2'}])
      const snap = await c.listWithRevision(p)
      assert.deepEqual(snap.kvs, await c.list(p))
      assert.deepEqual(snap.kvs.map((kv) => kv.key), [`${p}a`, `${p}b`])
      assert.ok(snap.revision >= r1.revision, `${snap.revision} >= ${r1.revision}`)
      const evs: WatchEvent[] = []
      const w = await c.watch(p, snap.revision, (ev) => evs.push(ev))
      const r2 = await c.txn([], [{type: 'delete', key: `${p}a`}])
      await waitFor('the delete event', () => evs.length >= 1, 5000, 10)
      assert.deepEqual(evs, [{type: 'delete', key: `${p}a`, value: '', revision: r2.revision}])
      assert.deepEqual(await c.listWithRevision(`${p}zz/`), {kvs: [], revision: await c.revision()})
      await w.close()
    })

    test('PrefixMirror: the same keys as list() after every transaction, changes reported once per transaction', async () => {
      const p = fresh()
      await c.txn([], [{type: 'put', key: `${p}k/0`, value: 'init'}, {type: 'put', key: `${p}other`, value: 'x'}])
      let changes = 0
      const m = await PrefixMirror.start(c, p, () => changes++, (key) => key.startsWith(`${p}k/`))
      const other = await open()
      const strip = (kvs: KeyValue[]) => kvs.map(({key, value, createRevision, modRevision}) => ({key, value, createRevision, modRevision}))
      assert.deepEqual(strip(m.snapshot()), strip(await c.list(p)))
      let relevantTxns = 0
      let lastRevision = m.revision
      for (let i = 0; i < 40; i++) {
        // Writes from another instance too: the mirror follows the store, not its own coordinator.
        const who = i % 3 === 0 ? other : c
        const ops: Op[] = []
        const keys = new Set<string>()
        for (let j = 0; j < 1 + (i % 4); j++) {
          const key = `${p}k/${(i * 7 + j * 3) % 12}`
          if (keys.has(key)) continue
          keys.add(key)
          ops.push(i % 5 === 4 && j === 0 ? {type: 'delete', key} : {type: 'put', key, value: `v${i}.${j}`})
        }
        if (i % 13 === 12) ops.splice(0, ops.length, {type: 'deletePrefix', prefix: `${p}k/1`})
        if (i % 11 === 10) ops.splice(0, ops.length, {type: 'put', key: `${p}other`, value: `o${i}`})
        const r = await who.txn([], ops)
        if (r.revision === lastRevision) continue // a delete of nothing: no new revision
        lastRevision = r.revision
        await waitFor(`the mirror at revision ${r.revision}`, () => m.revision >= r.revision, 5000, 5)
        await sleep(5) // the change report comes on the next turn
        if (!ops.every((op) => op.type === 'put' && op.key === `${p}other`)) relevantTxns++
        assert.deepEqual(strip(m.snapshot()), strip(await c.list(p)), `after txn ${i}`)
        assert.equal(changes, relevantTxns, `one change report per transaction touching ${p}k/ (txn ${i})`)
      }
      assert.ok(m.snapshot().length > 3)
      await m.close()
      await c.txn([], [{type: 'put', key: `${p}k/late`, value: '1'}])
      await sleep(50)
      assert.equal(changes, relevantTxns, 'no report after close')
    })

    test('a watch from a compacted revision fails with CompactedError', async () => {
      const p = fresh()
      const first = await c.txn([], [{type: 'put', key: `${p}a`, value: '1'}])
      await c.txn([], [{type: 'put', key: `${p}a`, value: '2'}])
      const last = await c.txn([], [{type: 'put', key: `${p}a`, value: '3'}])
      await t.compact(c, last.revision)
      const errs: Error[] = []
      const evs: WatchEvent[] = []
      await c.watch(p, first.revision, (ev) => evs.push(ev), (err) => errs.push(err))
      await waitFor('the watch error', () => errs.length === 1, 5000, 10)
      assert.ok(errs[0] instanceof CompactedError, String(errs[0]))
      assert.equal(evs.length, 0)
      // Watching from the compaction point onwards works.
      const ok: WatchEvent[] = []
      const w = await c.watch(p, last.revision, (ev) => ok.push(ev), (err) => errs.push(err))
      await c.txn([], [{type: 'put', key: `${p}a`, value: '4'}])
      await waitFor('event after compaction', () => ok.length === 1, 5000, 10)
      assert.equal(ok[0].value, '4')
      assert.equal(errs.length, 1)
      await w.close()
    })

    test('leases: bound keys live while kept alive, vanish after release, at once after revoke', async () => {
      const p = fresh()
      // 2 s, not 1: keep-alives go every ttl/3, and a loaded 2-core CI machine can stall a process
      // for more than 1/3 s (the 1 s version failed there now and then, keep-alive working).
      const lease = await c.grantLease(2)
      assert.ok(lease.id && lease.id !== '0')
      assert.ok(lease.ttlSeconds >= 2)
      let lost = 0
      lease.onLost(() => lost++)
      await c.txn([], [{type: 'put', key: `${p}held`, value: 'h', lease: lease.id}, {type: 'put', key: `${p}free`, value: 'f'}])
      assert.equal((await c.get(`${p}held`))!.lease, lease.id)
      const evs: WatchEvent[] = []
      const w = await c.watch(p, await c.revision(), (ev) => evs.push(ev))
      // Kept alive well past the TTL.
      await sleep(lease.ttlSeconds * 1000 + 1500)
      assert.equal((await c.get(`${p}held`))?.value, 'h', 'kept alive past its TTL')
      lease.release()
      const releasedAt = Date.now()
      await waitFor('the released lease to expire', async () => (await c.get(`${p}held`)) === null, 5000, 50)
      assert.ok(Date.now() - releasedAt <= lease.ttlSeconds * 1000 + 2000)
      assert.equal((await c.get(`${p}free`))?.value, 'f', 'keys without the lease stay')
      await waitFor('the delete event', () => evs.length >= 1, 5000, 10)
      assert.deepEqual(evs.map((e) => [e.type, e.key]), [['delete', `${p}held`]])
      assert.equal(lost, 0, 'release is not a loss')
      await assert.rejects(c.txn([], [{type: 'put', key: `${p}late`, value: 'x', lease: lease.id}]), LeaseNotFoundError)
      assert.equal(await c.get(`${p}late`), null)

      // revoke: every bound key goes at once, at one revision.
      const l2 = await c.grantLease(5)
      await c.txn([], [{type: 'put', key: `${p}r1`, value: '1', lease: l2.id}, {type: 'put', key: `${p}r2`, value: '2', lease: l2.id}])
      const before = await c.revision()
      await l2.revoke()
      assert.deepEqual(await c.list(`${p}r`), [])
      assert.equal(await c.revision(), before + 1)
      await waitFor('revoke events', () => evs.filter((e) => e.revision > before).length >= 2, 5000, 10)
      assert.deepEqual(
        evs.filter((e) => e.revision > before).map((e) => [e.type, e.key, e.revision]),
        [['delete', `${p}r1`, before + 1], ['delete', `${p}r2`, before + 1]],
      )
      // A put without a lease detaches the key from its lease.
      const l3 = await c.grantLease(5)
      await c.txn([], [{type: 'put', key: `${p}d`, value: '1', lease: l3.id}])
      await c.txn([], [{type: 'put', key: `${p}d`, value: '2'}])
      await l3.revoke()
      assert.equal((await c.get(`${p}d`))?.value, '2')
      await w.close()
    })

    test('onLost fires when the lease ends behind its holder\'s back', async () => {
      const p = fresh()
      const lease = await c.grantLease(1)
      let lost = 0
      const gotLost = new Promise<void>((resolve) => lease.onLost(() => (lost++, resolve())))
      await c.txn([], [{type: 'put', key: `${p}x`, value: '1', lease: lease.id}])
      await t.expireLeaseBehindHoldersBack(lease.id)
      const started = Date.now()
      await Promise.race([gotLost, sleep(4000).then(() => assert.fail('onLost did not fire within 4 s'))])
      assert.ok(Date.now() - started < 4000)
      await waitFor('the lost lease\'s key to vanish', async () => (await c.get(`${p}x`)) === null, 4000, 50)
      await sleep(50)
      assert.equal(lost, 1, 'onLost fires once')
      // A callback registered after the loss is still called.
      await new Promise<void>((resolve) => lease.onLost(resolve))
    })

    test('two processes racing a create-only put: exactly one wins', async () => {
      const p = fresh()
      const kids = [child(['cas', t.kind, t.addr, 'A']), child(['cas', t.kind, t.addr, 'B'])]
      await Promise.all(kids.map((x) => x.line(/^ready$/)))
      const rounds = 10
      for (let round = 0; round < rounds; round++) {
        const k = `${p}race${round}`
        // Both children get the go at the same moment and race for the same absent key.
        for (const x of kids) x.proc.stdin!.write(`go ${k}\n`)
        const results = await Promise.all(
          kids.map(async (x) => JSON.parse(await x.line(new RegExp(`^\\{"key":"${k}"`))) as {succeeded: boolean; revision: number}),
        )
        const winners = results.filter((r) => r.succeeded)
        assert.equal(winners.length, 1, `exactly one winner in round ${round}: ${JSON.stringify(results)}`)
        const kv = await c.get(k)
        assert.equal(kv?.value, results[0].succeeded ? 'A' : 'B')
        assert.equal(kv?.modRevision, winners[0].revision)
        assert.equal(kv?.createRevision, winners[0].revision)
      }
      for (const x of kids) x.proc.stdin!.end()
      for (const x of kids) assert.equal((await x.exited(5000)).code, 0, x.stderr())
    })

    test('two processes incrementing one key by compare-and-swap lose no update; a watcher sees each once', async () => {
      const p = fresh()
      const key = `${p}counter`
      const per = 25
      const start = await c.revision()
      const evs: WatchEvent[] = []
      const w = await c.watch(p, start, (ev) => evs.push(ev))
      const kids = [child(['incr', t.kind, t.addr, key, String(per)]), child(['incr', t.kind, t.addr, key, String(per)])]
      await Promise.all(kids.map((x) => x.line(/^ready$/)))
      for (const x of kids) x.proc.stdin!.end('go\n')
      const results = await Promise.all(kids.map(async (x) => JSON.parse(await x.line(/^\{/, 30000)) as {done: number; conflicts: number}))
      for (const x of kids) assert.equal((await x.exited(5000)).code, 0, x.stderr())
      assert.deepEqual(results.map((r) => r.done), [per, per])
      assert.equal((await c.get(key))?.value, String(2 * per))
      await waitFor('every increment watched', () => evs.length >= 2 * per, 5000, 10)
      await sleep(150)
      assert.deepEqual(evs.map((e) => e.value), Array.from({length: 2 * per}, (_, i) => String(i + 1)))
      for (let i = 1; i < evs.length; i++) assert.ok(evs[i].revision > evs[i - 1].revision)
      await w.close()
    })

    test('a lease expires after its holder process is killed with SIGKILL', async () => {
      const p = fresh()
      const key = `${p}holder`
      const evs: WatchEvent[] = []
      const w = await c.watch(p, await c.revision(), (ev) => evs.push(ev))
      const holder = child(['lease', t.kind, t.addr, key, '2'])
      const ready = await holder.line(/^ready /)
      const leaseId = ready.split(' ')[1]
      const kv = await c.get(key)
      assert.equal(kv?.value, String(holder.proc.pid))
      assert.equal(kv?.lease, leaseId)
      // Alive past its TTL while the holder runs.
      await sleep(2500)
      assert.equal((await c.get(key))?.value, String(holder.proc.pid))
      holder.proc.kill('SIGKILL')
      const killedAt = Date.now()
      assert.equal((await holder.exited(5000)).signal, 'SIGKILL')
      await waitFor('the dead holder\'s key to vanish', async () => (await c.get(key)) === null, 2000 + 2000 + 500, 50)
      assert.ok(Date.now() - killedAt <= 4500, `gone after ${Date.now() - killedAt} ms`)
      await waitFor('the delete event', () => evs.some((e) => e.type === 'delete'), 3000, 10)
      assert.deepEqual(evs.map((e) => [e.type, e.key]), [['put', key], ['delete', key]])
      await w.close()
    })

    test('a closed coordinator leaves nothing keeping its process alive', async () => {
      const x = child(['close', t.kind, t.addr])
      await x.line(/^closed$/)
      const res = await x.exited(3000)
      assert.equal(res.code, 0, x.stderr())
    })

    test('operations after close are refused', async () => {
      const x = await t.open()
      await x.close()
      await x.close() // twice is fine
      await assert.rejects(x.get('/a'), CoordinatorClosedError)
      await assert.rejects(x.txn([], []), CoordinatorClosedError)
    })
  })
}

// ---- the two implementations (run side by side to keep the file fast; each suite is sequential) ----

describe('coordinator contract', {concurrency: 3}, () => {
  contract('embedded', async () => {
    const dir = tempDir('coord')
    // A folder that does not exist yet: open() creates it.
    const file = join(dir, 'nested', 'meta.db')
    return {
      kind: 'embedded',
      addr: file,
      open: () => EmbeddedCoordinator.open(file, {pollIntervalMs: 20}),
      compact: (c, rev) => (c as EmbeddedCoordinator).compact(rev),
      async expireLeaseBehindHoldersBack(id) {
        const db = new Database(file, {timeout: 10000})
        db.prepare('UPDATE leases SET expires_at_ms = 0 WHERE id = ?').run(Number(id))
        db.close()
      },
      async stop() {
        removeDir(dir)
      },
    }
  })

  contract('etcd', async () => {
    const srv: EtcdServer = await startEtcd()
    const raw = new etcd3.Etcd3({hosts: srv.endpoint})
    return {
      kind: 'etcd',
      addr: srv.endpoint,
      open: () => EtcdCoordinator.connect([srv.endpoint]),
      compact: (c, rev) => (c as EtcdCoordinator).compact(rev),
      async expireLeaseBehindHoldersBack(id) {
        await raw.leaseClient.leaseRevoke({ID: id})
      },
      async stop() {
        raw.close()
        await srv.stop()
      },
    }
  })

  describe('coordinator specifics', {concurrency: 1}, () => {
    test('etcd: connect fails fast with UnreachableError naming the endpoint', async () => {
      // Nothing listening.
      const port = await freePort()
      const refused = `http://127.0.0.1:${port}`
      let started = Date.now()
      await assert.rejects(EtcdCoordinator.connect([refused]), (err: Error) => {
        assert.ok(err instanceof UnreachableError, String(err))
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
        return true
      })
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`)

      // Something listening that never answers.
      const sockets: Socket[] = []
      const silent: Server = createServer((s) => sockets.push(s))
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
      const silentAddr = `http://127.0.0.1:${(silent.address() as {port: number}).port}`
      started = Date.now()
      await assert.rejects(EtcdCoordinator.connect([silentAddr]), (err: Error) => {
        assert.ok(err instanceof UnreachableError, String(err))
        assert.ok(err.message.includes(silentAddr.replace('http://', '')), err.message)
        return true
      })
      const took = Date.now() - started
      assert.ok(took >= 2500 && took < 4500, `took ${took} ms`)
      for (const s of sockets) s.destroy()
      await new Promise((r) => silent.close(r))
    })

    test('etcd: when etcd dies, operations fail with UnreachableError and a lease is lost within its TTL', async () => {
      const srv = await startEtcd()
      let c: EtcdCoordinator | undefined
      try {
        c = await EtcdCoordinator.connect([srv.endpoint], {requestTimeoutMs: 2000})
        const lease = await c.grantLease(1)
        const lost = new Promise<number>((resolve) => lease.onLost(() => resolve(Date.now())))
        const watchErrors: Error[] = []
        await c.watch('/x/', await c.revision(), () => {}, (err) => watchErrors.push(err))
        await c.txn([], [{type: 'put', key: '/x/a', value: '1', lease: lease.id}])
        await sleep(300)
        await srv.proc.stop('SIGKILL')
        const killedAt = Date.now()
        await assert.rejects(c.get('/x/a'), UnreachableError)
        // The holder must behave as if the lease were gone once etcd may have expired it: at most a TTL
        // after the last confirmed keep-alive (which was before the kill).
        const lostAt = await Promise.race([lost, sleep(3000).then(() => assert.fail('onLost did not fire within 3 s'))])
        assert.ok(lostAt - killedAt <= 1500, `lost ${lostAt - killedAt} ms after the kill`)
        assert.deepEqual(watchErrors, [], 'a disconnected watch waits to reconnect: no error')
      } finally {
        await c?.close()
        await srv.stop()
      }
    })

    test('embedded: several processes may open one new file at once', async () => {
      const dir = tempDir('coord-open')
      try {
        const file = join(dir, 'a', 'b', 'meta.db')
        const kids = Array.from({length: 4}, (_, i) => child(['cas', 'embedded', file, `p${i}`]))
        await Promise.all(kids.map((x) => x.line(/^ready$/)))
        for (const x of kids) x.proc.stdin!.end('go /race/open\n')
        const results = await Promise.all(kids.map(async (x) => JSON.parse(await x.line(/^\{/)) as {succeeded: boolean}))
        assert.equal(results.filter((r) => r.succeeded).length, 1)
        await Promise.all(kids.map((x) => x.exited(5000)))
      } finally {
        removeDir(dir)
      }
    })

    /**
     * Runs n puts in a child process, one at a time, and returns how long after each one the watch
     * (already set up on `watcher` under /wake/) delivered it: from the start of the child's txn and
     * from its return (commit visible), in ms.
     */
    async function crossProcessLatency(watcher: EmbeddedCoordinator, file: string, n: number, beforeEach?: (i: number) => void) {
      const seen = new Map<number, number>()
      let wake: (() => void) | undefined
      const w = await watcher.watch('/wake/', await watcher.revision(), (ev) => {
        seen.set(Number(ev.value), performance.timeOrigin + performance.now())
        wake?.()
      })
      const kid = child(['puts', 'embedded', file, '/wake/'])
      const fromStart: number[] = []
      const fromEnd: number[] = []
      try {
        await kid.line(/^ready$/)
        for (let i = 0; i < n; i++) {
          beforeEach?.(i)
          const arrived = new Promise<void>((resolve) => (wake = () => seen.has(i) && resolve()))
          kid.proc.stdin!.write(`go ${i}\n`)
          await Promise.race([arrived, sleep(5000).then(() => assert.fail(`put ${i} not delivered within 5 s`))])
          const done = JSON.parse(await kid.line(new RegExp(`^\\{"n":${i},`))) as {start: number; end: number}
          fromStart.push(seen.get(i)! - done.start)
          fromEnd.push(seen.get(i)! - done.end)
          await sleep(2 + Math.random() * 8) // not in step with any timer
        }
        kid.proc.stdin!.end()
        await kid.exited(5000)
      } finally {
        await w.close()
      }
      assert.deepEqual([...seen.keys()], Array.from({length: n}, (_, i) => i), 'each put delivered once, in order')
      const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!
      const max = (xs: number[]) => Math.max(...xs)
      return {
        fromStart: median(fromStart),
        fromEnd: median(fromEnd),
        text: `median ${median(fromStart).toFixed(2)} ms from the txn's start, ${median(fromEnd).toFixed(2)} ms from its return (max ${max(fromEnd).toFixed(2)})`,
      }
    }

    test('embedded: a watch wakes within a few ms of another process\'s commit (fs.watch on the folder)', async (t) => {
      const dir = tempDir('coord-wake')
      try {
        const file = join(dir, 'meta.db')
        // A 1 s backup poll: quick deliveries can only come from the folder watch.
        const c = await EmbeddedCoordinator.open(file, {fsWatchPollIntervalMs: 1000})
        assert.equal(c.fileWatchActive, false, 'no folder watch without watches')
        const noise = join(dir, 'checkpoints.db-wal')
        const res = await crossProcessLatency(c, file, 50, (i) => writeFileSync(noise, String(i))) // other files: ignored
        t.diagnostic(`fs.watch wake-up over 50 commits: ${res.text}`)
        assert.ok(res.fromEnd < 8, `median ${res.fromEnd} ms after the commit: the folder watch did not wake the watch`)
        // The folder watch lives as long as some watch does.
        const w = await c.watch('/other/', await c.revision(), () => {})
        assert.equal(c.fileWatchActive, true)
        await w.close()
        assert.equal(c.fileWatchActive, false, 'folder watch closed with the last watch')
        await c.close()
      } finally {
        removeDir(dir)
      }
    })

    test('embedded: without fs.watch (useFsWatch: false), or with no wake-up signal, the timer poll delivers every commit', async (t) => {
      const dir = tempDir('coord-nowake')
      try {
        const file = join(dir, 'meta.db')
        const timerOnly = await EmbeddedCoordinator.open(file, {useFsWatch: false, pollIntervalMs: 10})
        const w = await timerOnly.watch('/x/', 0, () => {})
        assert.equal(timerOnly.fileWatchActive, false)
        await w.close()
        const a = await crossProcessLatency(timerOnly, file, 20)
        t.diagnostic(`useFsWatch false, 10 ms poll: ${a.text}`)
        assert.ok(a.fromEnd < 100, a.text)
        await timerOnly.close()

        // The folder is watched but the writer cannot signal (its `-wake` file cannot be opened: a
        // folder is in the way): the 25 ms backup poll still delivers everything.
        const file2 = join(dir, 'nosignal', 'meta.db')
        mkdirSync(`${file2}-wake`, {recursive: true})
        const watched = await EmbeddedCoordinator.open(file2, {fsWatchPollIntervalMs: 25})
        const b = await crossProcessLatency(watched, file2, 20)
        t.diagnostic(`fs.watch on, no signal, 25 ms backup poll: ${b.text}`)
        assert.ok(b.fromEnd < 200, b.text)
        assert.ok(b.fromEnd > 3, `${b.text}: quicker than the backup poll, so not what this test means to check`)
        await watched.close()
      } finally {
        removeDir(dir)
      }
    })

    test('embedded: the change log is trimmed, and a watch behind the trim fails', async () => {
      const dir = tempDir('coord-trim')
      try {
        const c = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {changelogKeepRows: 10, changelogKeepMs: 0, trimEveryRevisions: 5})
        const start = await c.revision()
        for (let i = 0; i < 30; i++) await c.txn([], [{type: 'put', key: `/trim/${i}`, value: String(i)}])
        const errs: Error[] = []
        await c.watch('/trim/', start, () => {}, (err) => errs.push(err))
        await waitFor('compaction error', () => errs.length === 1, 3000, 10)
        assert.ok(errs[0] instanceof CompactedError)
        // The newest rows are kept: a recent watch replays them.
        const evs: WatchEvent[] = []
        const w = await c.watch('/trim/', (await c.revision()) - 3, (ev) => evs.push(ev), (err) => errs.push(err))
        await waitFor('recent events', () => evs.length === 3, 3000, 10)
        assert.deepEqual(evs.map((e) => e.value), ['27', '28', '29'])
        await w.close()
        await c.close()
      } finally {
        removeDir(dir)
      }
    })
  })
})
