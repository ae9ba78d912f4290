/**
 * `rstore backfill` and `rstore verify` through the built binary, against real redis-server, MariaDB
 * and PostgreSQL: a mixed data set copied while a writer changes keys on the target, SIGKILL and
 * resume, Redis -> Redis with a slot range, and bad input (one stderr line, non-zero exit, nothing written).
 */
import assert from 'node:assert/strict'
import {execFile, spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {after, before, describe, test} from 'node:test'
import Database from 'better-sqlite3'
import type {Redis} from 'ioredis'
import {openStore, parseStoreUrl, type KeyStore} from '../src/backends/index.js'
import {createJob, openCheckpoints} from '../src/migrate/checkpoints.js'
import {slotOf} from '../src/topology/slots.js'
import {startMariaDb, type MariaDbServer} from './harness/mariadb.js'
import {startPostgres, type PostgresServer} from './harness/postgres.js'
import {removeDir, startAll, tempDir} from './harness/process.js'
import {type RedisServer} from './harness/redis.js'
import {startRedis} from './harness/redis.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const BIN = join(ROOT, 'bin/run.js')

interface Run {
  code: number
  stdout: string
  stderr: string
}

function rstore(args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], {cwd: ROOT, timeout: 120_000, env: {...process.env, NO_COLOR: '1'}, maxBuffer: 16 << 20}, (err, stdout, stderr) => {
      const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : 99) : 0
      res({code, stdout, stderr})
    })
  })
}

let src: RedisServer
let dst: RedisServer
let maria: MariaDbServer
let postgres: PostgresServer
let cpDir: string
let product = 0
const nextProduct = () => `bf${process.pid}-${++product}`
/** Keys of the mixed data set, by name (latin1 for binary ones). */
const KEYS: Buffer[] = []

async function seed(r: Redis): Promise<void> {
  const p = r.pipeline()
  const add = (k: string | Buffer) => KEYS.push(Buffer.isBuffer(k) ? k : Buffer.from(k))
  for (let i = 0; i < 1000; i++) {
    p.set(`mix:str:${i}`, `value-${i}`)
    if (i % 10 === 0) p.expire(`mix:str:${i}`, 3600)
    add(`mix:str:${i}`)
  }
  for (let i = 0; i < 150; i++) {
    p.hset(`mix:hash:${i}`, 'a', String(i), 'b', 'x'.repeat(i), `f${i}`, Buffer.from([0, 255, i]))
    add(`mix:hash:${i}`)
  }
  for (let i = 0; i < 100; i++) {
    p.sadd(`mix:set:${i}`, 'a', 'b', `m${i}`)
    if (i % 5 === 0) p.pexpire(`mix:set:${i}`, 7_200_000)
    add(`mix:set:${i}`)
  }
  for (let i = 0; i < 60; i++) {
    p.zadd(`mix:zset:${i}`, 1, 'one', 2.5, 'two', i, `m${i}`, '-inf', 'low')
    add(`mix:zset:${i}`)
  }
  for (let i = 0; i < 40; i++) {
    p.rpush(`mix:list:${i}`, 'a', 'b', 'a', String(i))
    add(`mix:list:${i}`)
  }
  for (let i = 0; i < 10; i++) {
    const k = Buffer.concat([Buffer.from('mix:bin:'), Buffer.from([0, 255, 13, 10, i])])
    p.set(k, Buffer.from([i, 0, 255, 128]))
    add(k)
  }
  await p.exec()
}

before(async () => {
  ;[src, dst, maria, postgres] = await startAll([startRedis(), startRedis(), startMariaDb(), startPostgres()] as const)
  cpDir = tempDir('checkpoints')
  await seed(src.client())
})

after(async () => {
  await Promise.all([src?.stop(), dst?.stop(), maria?.stop(), postgres?.stop()])
  if (cpDir) removeDir(cpDir)
})

const base = (prod: string) => ['--checkpoint-dir', cpDir, '--product', prod]

function checkpoint(prod: string): {state: string; progress: Record<string, number | string>}[] {
  const db = new Database(join(cpDir, `${prod}.db`), {readonly: true})
  try {
    return (db.prepare('SELECT state, progress FROM jobs ORDER BY created_at').all() as {state: string; progress: string}[]).map((r) => ({state: r.state, progress: JSON.parse(r.progress)}))
  } finally {
    db.close()
  }
}

async function targetUrl(kind: 'mysql' | 'postgres', db: string): Promise<string> {
  return kind === 'mysql' ? maria.createDatabase(db) : postgres.createDatabase(db)
}

for (const kind of ['mysql', 'postgres'] as const) {
  test(`backfill into ${kind} while a writer changes keys on the target; verify names exactly the written keys`, async () => {
    const url = await targetUrl(kind, `mixed_${kind}`)
    const target = await openStore(url, {reapIntervalMs: 0})
    const prod = nextProduct()
    try {
      // The writer (double-write) owns these keys on the target: strings it SETs, sets it SADDs to.
      const written = new Map<string, string>()
      const writtenSets = new Set<string>()
      let stop = false
      let writes = 0
      const writer = (async () => {
        while (!stop || writes < 40) {
          const i = (writes * 37) % 200
          if (writes % 4 === 3) {
            const k = `mix:set:${i % 100}`
            await target.command('SADD', k, 'writer')
            writtenSets.add(k)
          } else {
            const k = `mix:str:${i * 5}`
            const v = `writer-${writes}`
            await target.command('SET', k, v)
            written.set(k, v)
          }
          writes++
          await new Promise((r) => setTimeout(r, 2))
        }
      })()
      const res = await rstore(['backfill', '--to', kind, '--source', src.addr, '--target', url, '--batch', '40', '--concurrency', '4', '--rate', '2500', '--json', ...base(prod)])
      stop = true
      await writer
      assert.equal(res.code, 0, res.stderr)
      const sum = JSON.parse(res.stdout)
      assert.equal(sum.state, 'done')
      assert.equal(sum.scanned, KEYS.length)
      assert.equal(sum.copied + sum.skipped + sum.expired + sum.failed, KEYS.length)
      assert.equal(sum.failed, 0)
      assert.ok(sum.skipped <= written.size + writtenSets.size, `skipped ${sum.skipped}`)
      // Every key the writer wrote keeps the writer's value.
      for (const [k, v] of written) assert.deepEqual(await target.command('GET', k), {type: 'bulk', value: Buffer.from(v)}, k)
      for (const k of writtenSets) assert.deepEqual(await target.command('SISMEMBER', k, 'writer'), {type: 'integer', value: 1}, k)
      // Every untouched key equals the source, TTL included; verify names exactly the written keys.
      const ver = await rstore(['verify', '--to', kind, '--source', src.addr, '--target', url, '--rounds', '2', '--interval', '0.1', '--max-keys', '1000', '--json', ...base(prod)])
      assert.equal(ver.code, 1, ver.stderr)
      const v = JSON.parse(ver.stdout)
      const names = [...written.keys(), ...writtenSets].sort()
      assert.deepEqual(v.keys.map((k: {key: string}) => k.key).sort(), names)
      assert.equal(v.compared, KEYS.length)
      assert.equal(v.different, names.length)
      assert.equal(v.missing, 0)
      assert.equal(v.equal, KEYS.length - names.length)
      // A TTL came across.
      const ttl = await target.command('TTL', 'mix:str:10')
      assert.ok(written.has('mix:str:10') || (Number(ttl.value) > 3500 && Number(ttl.value) <= 3600), `ttl ${JSON.stringify(ttl)}`)
      // Verify restricted to untouched keys is clean (exit 0).
      const clean = await rstore(['verify', '--to', kind, '--source', src.addr, '--target', url, '--match', 'mix:[hzlb]*', ...base(prod)])
      assert.equal(clean.code, 0, clean.stdout + clean.stderr)
      assert.match(clean.stdout, /0 different, 0 missing/)
    } finally {
      await target.close()
    }
  })
}

test('SIGKILL during backfill, then the same command resumes from the checkpoint', async () => {
  const url = await targetUrl('postgres', 'killed')
  const prod = nextProduct()
  const args = ['backfill', '--to', 'postgres', '--source', src.addr, '--target', url, '--batch', '20', '--concurrency', '2', ...base(prod)]
  const child = spawn(process.execPath, [BIN, ...args, '--rate', '600'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  // Kill once a few pages are committed.
  const deadline = Date.now() + 20000
  for (;;) {
    await new Promise((r) => setTimeout(r, 100))
    if (existsSync(join(cpDir, `${prod}.db`))) {
      // The file exists a moment before its tables do: a read that fails then is simply retried.
      let jobs: ReturnType<typeof checkpoint> = []
      try {
        jobs = checkpoint(prod)
      } catch {}
      if (jobs.length && Number(jobs[0].progress.scanned) >= 300) break
    }
    assert.ok(Date.now() < deadline && child.exitCode === null, `backfill did not progress: ${err}`)
  }
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  const mid = checkpoint(prod)
  assert.equal(mid.length, 1)
  assert.equal(mid[0].state, 'running')
  const doneBefore = Number(mid[0].progress.scanned)
  assert.ok(doneBefore < KEYS.length, `killed too late: ${doneBefore}`)

  const res = await rstore([...args, '--json'])
  assert.equal(res.code, 0, res.stderr)
  const sum = JSON.parse(res.stdout)
  assert.equal(sum.resumed, true)
  assert.equal(sum.state, 'done')
  assert.equal(sum.scanned, KEYS.length)
  assert.equal(sum.copied + sum.skipped + sum.expired + sum.failed, KEYS.length)
  assert.equal(sum.failed, 0)
  // At most the batches in flight at the kill were copied twice (found present on the re-run).
  assert.ok(sum.skipped <= 2 * 20 * 4 + 200, `skipped ${sum.skipped}`)
  const after = checkpoint(prod)
  assert.equal(after.length, 1)
  assert.equal(after[0].state, 'done')
  // No key missing.
  const ver = await rstore(['verify', '--to', 'postgres', '--source', src.addr, '--target', url, '--json', ...base(prod)])
  assert.equal(ver.code, 0, ver.stdout + ver.stderr)
  assert.equal(JSON.parse(ver.stdout).compared, KEYS.length)
  // A second run of a finished job is a new job that finds everything present.
  const again = JSON.parse((await rstore([...args, '--json', '--match', 'mix:list:*'])).stdout)
  assert.deepEqual([again.copied, again.skipped, again.resumed], [0, 40, false])
})

test('rstore jobs pause, resume and cancel a running backfill from another shell; a stopped one is cancelled or refused', async () => {
  const url = await targetUrl('postgres', 'controlled')
  const prod = nextProduct()
  const args = ['backfill', '--to', 'postgres', '--source', src.addr, '--target', url, '--match', 'mix:str:*', '--batch', '10', '--concurrency', '2', '--rate', '150', ...base(prod)]
  const child = spawn(process.execPath, [BIN, ...args, '--json'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)))
  const job = (): {id: string; state: string; scanned: number} => {
    const db = new Database(join(cpDir, `${prod}.db`), {readonly: true})
    try {
      const r = db.prepare('SELECT id, state, progress FROM jobs').get() as {id: string; state: string; progress: string}
      return {id: r.id, state: r.state, scanned: Number(JSON.parse(r.progress).scanned)}
    } finally {
      db.close()
    }
  }
  const waitFor = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 20000
    for (;;) {
      try {
        if (ok()) return
      } catch {} // the checkpoint file appears a moment before its tables
      assert.ok(Date.now() < deadline && child.exitCode === null, `${what}: ${err}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  // Copies show on the target before their page is committed (a page is ~1000 keys): wait for those.
  const probe = await openStore(parseStoreUrl(url), {reapIntervalMs: 0})
  try {
    for (const deadline = Date.now() + 20000; !existsSync(join(cpDir, `${prod}.db`)) || (await probe.dbsize()) < 100; ) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `backfill did not progress: ${err}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await probe.close()
  }
  await waitFor('the job row', () => !!job().id)
  const {id} = job()
  const pause = await rstore(['jobs', 'pause', id, ...base(prod)])
  assert.equal(pause.code, 0, pause.stderr)
  assert.match(pause.stdout, new RegExp(`pause requested: job ${id}`))
  // Paused in place: after the batches in flight nothing more is scanned or copied.
  await new Promise((r) => setTimeout(r, 1000))
  const target = await openStore(parseStoreUrl(url), {reapIntervalMs: 0})
  try {
    const [scannedPaused, keysPaused] = [job().scanned, await target.dbsize()]
    await new Promise((r) => setTimeout(r, 1500))
    assert.deepEqual([job().scanned, await target.dbsize()], [scannedPaused, keysPaused], 'a paused backfill kept copying')
    assert.ok(scannedPaused < 1000, `paused too late: ${scannedPaused}`)
    assert.equal(child.exitCode, null, 'a paused backfill waits in place')
    const resume = await rstore(['jobs', 'resume', id, ...base(prod)])
    assert.equal(resume.code, 0, resume.stderr)
    // (A page is committed once all its batches are copied: the target shows the progress first.)
    for (const deadline = Date.now() + 20000; (await target.dbsize()) <= keysPaused; ) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the resumed backfill did not continue: ${err}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const cancel = await rstore(['jobs', 'cancel', id, ...base(prod)])
    assert.equal(cancel.code, 0, cancel.stderr)
    assert.equal(await exited, 0, err)
    const res = JSON.parse(out)
    assert.equal(res.state, 'cancelled')
    assert.ok(res.scanned < 1000, `cancelled too late: ${res.scanned}`)
    const after = job()
    assert.equal(after.state, 'cancelled')
    // Every key the checkpoint counts is on the target (a cancel loses no committed copy; the copies
    // of a page cut short by the cancel stay too, uncounted: set-if-absent copies are harmless).
    const onTarget = await target.dbsize()
    assert.ok(onTarget >= res.copied + res.skipped && onTarget < 1000, `${onTarget} keys on the target, ${res.copied} + ${res.skipped} counted`)
  } finally {
    await target.close()
  }
  // A finished job takes no more requests; a backfill that is not running is cancelled here, or refused a resume.
  const again = await rstore(['jobs', 'pause', id, ...base(prod)])
  assert.equal(again.code, 1)
  assert.match(again.stderr, new RegExp(`^Error: job ${id} is already cancelled\n$`))
  const db = openCheckpoints(cpDir, prod)
  const stale = createJob(db, 'backfill', {from: 'redis', to: 'postgres', source: src.addr, target: parseStoreUrl(url).display, match: 'mix:set:*'}, {scanned: 5, copied: 5, skipped: 0, expired: 0, failed: 0, cursor: '17', pages: 1, pid: 1, host: 'elsewhere'}, 'paused')
  db.close()
  const resumeStale = await rstore(['jobs', 'resume', stale.id, ...base(prod)])
  assert.equal(resumeStale.code, 1)
  assert.equal(resumeStale.stderr.trim().split('\n').length, 1, resumeStale.stderr)
  assert.match(resumeStale.stderr, /is not running \(paused\).*finish it first by re-running the same command: rstore backfill --from redis --to postgres/)
  const cancelStale = await rstore(['jobs', 'cancel', stale.id, '--json', ...base(prod)])
  assert.equal(cancelStale.code, 0, cancelStale.stderr)
  assert.deepEqual(JSON.parse(cancelStale.stdout), {job: stale.id, state: 'cancelled'})
  const list = await rstore(['jobs', '--json', ...base(prod)])
  assert.deepEqual(JSON.parse(list.stdout).map((j: {id: string; state: string}) => [j.id, j.state]).sort(), [[id, 'cancelled'], [stale.id, 'cancelled']].sort())
})

test('redis -> redis backfill (RESTORE without REPLACE) and verify by slot range with --repair', async () => {
  const prod = nextProduct()
  const c = dst.client()
  await c.set('mix:str:1', 'newer') // present on the target: never overwritten
  const res = await rstore(['backfill', '--to', 'redis', '--source', src.addr, '--target', `redis://${dst.addr}`, '--json', ...base(prod)])
  assert.equal(res.code, 0, res.stderr)
  const sum = JSON.parse(res.stdout)
  assert.deepEqual([sum.copied, sum.skipped], [KEYS.length - 1, 1])
  assert.equal(await c.get('mix:str:1'), 'newer')
  assert.ok((await c.ttl('mix:str:10')) > 3500)
  const lo = KEYS.filter((k) => slotOf(k) <= 511)
  const diffKey = lo.find((k) => k.toString().startsWith('mix:str:') && k.toString() !== 'mix:str:1')!
  const s1 = slotOf('mix:str:1')
  const v = async (...extra: string[]) => rstore(['verify', '--to', 'redis', '--source', src.addr, '--target', dst.addr, '--slots', '0-511', '--json', ...extra, ...base(prod)])
  const first = await v()
  const r1 = JSON.parse(first.stdout)
  assert.equal(r1.compared, lo.length)
  assert.deepEqual(r1.keys.map((k: {key: string}) => k.key), s1 <= 511 ? ['mix:str:1'] : [])
  await c.set(diffKey, 'changed')
  await c.hset('mix:hash:7', 'extra', '1')
  const second = await v()
  assert.equal(second.code, 1)
  const names = JSON.parse(second.stdout).keys.map((k: {key: string}) => k.key).sort()
  const expect = [diffKey.toString(), ...(s1 <= 511 ? ['mix:str:1'] : []), ...(slotOf('mix:hash:7') <= 511 ? ['mix:hash:7'] : [])].sort()
  assert.deepEqual(names, expect)
  const repaired = await v('--repair')
  assert.equal(repaired.code, 0, repaired.stdout)
  assert.equal(JSON.parse(repaired.stdout).repaired, expect.length)
  assert.equal((await v()).code, 0)
  assert.equal(await c.get(diffKey), (await src.client().get(diffKey)))
})

test('a key that cannot be copied is retried, recorded and reported, never dropped', async () => {
  const url = await targetUrl('mysql', 'failing')
  const prod = nextProduct()
  const r = src.client()
  await r.set(`long:${'k'.repeat(1100)}`, 'v')
  await r.set('long:short', 'v')
  try {
    const res = await rstore(['backfill', '--to', 'mysql', '--source', src.addr, '--target', url, '--match', 'long:*', ...base(prod)])
    assert.equal(res.code, 1)
    assert.match(res.stdout, /copied 1, skipped \(present on target\) 0, expired\/deleted 0, failed 1/)
    assert.match(res.stdout, /failed key long:kkkk.*longer than 1024 bytes/)
    assert.match(res.stderr, /1 key\(s\) could not be copied/)
    const db = new Database(join(cpDir, `${prod}.db`), {readonly: true})
    const rows = db.prepare('SELECT key, error FROM backfill_failed').all() as {key: Buffer}[]
    db.close()
    assert.equal(rows.length, 1)
    assert.equal(rows[0].key.toString(), `long:${'k'.repeat(1100)}`)
  } finally {
    await r.del(`long:${'k'.repeat(1100)}`, 'long:short')
  }
})

test('a different backfill while one is unfinished is refused, naming it and how to finish it (docs/architecture.md, "Jobs and checkpoints")', async () => {
  const url = await targetUrl('postgres', 'unfinished')
  const prod = nextProduct()
  // An interrupted backfill of mix:str:1* (as left by Ctrl-C: paused, nothing copied yet).
  const args = {from: 'redis', to: 'postgres', source: src.addr, target: parseStoreUrl(url).display, match: 'mix:str:1*'}
  const db = openCheckpoints(cpDir, prod)
  const job = createJob(db, 'backfill', args, {scanned: 0, copied: 0, skipped: 0, expired: 0, failed: 0, cursor: '0', pages: 0, pid: 1, host: 'elsewhere'}, 'paused')
  db.close()
  const other = await rstore(['backfill', '--to', 'postgres', '--source', src.addr, '--target', url, '--match', 'mix:set:*', ...base(prod)])
  assert.notEqual(other.code, 0, other.stdout)
  const lines = other.stderr.trim().split('\n')
  assert.equal(lines.length, 1, other.stderr)
  assert.match(lines[0], new RegExp(`backfill job ${job.id} is unfinished \\(paused; 0 keys scanned, 0 copied\\)`))
  assert.match(lines[0], /finish it first by re-running the same command: rstore backfill --from redis --to postgres --source \S+ --target postgres:\/\/\S+\/unfinished --match 'mix:str:1\*'/)
  const target = await openStore(parseStoreUrl(url), {reapIntervalMs: 0})
  try {
    assert.equal(await target.dbsize(), 0, 'the refused backfill wrote nothing')
    // Finishing the unfinished one (the same command) resumes it; then the other one runs.
    const finish = await rstore(['backfill', '--to', 'postgres', '--source', src.addr, '--target', url, '--match', 'mix:str:1*', '--json', ...base(prod)])
    assert.equal(finish.code, 0, finish.stderr)
    const f = JSON.parse(finish.stdout)
    assert.equal(f.job, job.id)
    assert.equal(f.resumed, true)
    assert.equal(f.state, 'done')
    assert.equal(f.copied, 111)
    const next = await rstore(['backfill', '--to', 'postgres', '--source', src.addr, '--target', url, '--match', 'mix:set:*', '--json', ...base(prod)])
    assert.equal(next.code, 0, next.stderr)
    assert.equal(JSON.parse(next.stdout).copied, 100)
  } finally {
    await target.close()
  }
})

test('--group N reads the source from the coordinator: the master of that server group', async () => {
  const url = await targetUrl('mysql', 'by_group')
  const prod = nextProduct()
  const coord = ['--coordinator', 'embedded', '--coordinator-addr', join(cpDir, `${prod}-meta.db`)]
  for (const args of [['slot', 'init'], ['server', 'add', '1', src.addr, 'master'], ['server', 'add-group', '2']]) {
    const r = await rstore([...args, ...coord, ...base(prod)])
    assert.equal(r.code, 0, r.stderr)
  }
  const bf = (...extra: string[]) => rstore(['backfill', '--to', 'mysql', '--target', url, '--match', 'mix:list:*', ...coord, ...base(prod), ...extra])
  const missing = await bf('--group', '7')
  assert.notEqual(missing.code, 0)
  assert.match(missing.stderr, /group 7 does not exist \(groups: 1, 2\)/)
  const empty = await bf('--group', '2')
  assert.notEqual(empty.code, 0)
  assert.match(empty.stderr, /group 2 has no master/)
  const both = await bf('--group', '1', '--source', src.addr)
  assert.notEqual(both.code, 0)
  assert.match(both.stderr, /--group|--source/)
  assert.equal(existsSync(join(cpDir, `${prod}.db`)), false, 'nothing checkpointed by refused runs')
  const res = await bf('--group', '1', '--json')
  assert.equal(res.code, 0, res.stderr)
  const out = JSON.parse(res.stdout)
  assert.equal(out.state, 'done')
  assert.equal(out.copied, 40)
  const ver = await rstore(['verify', '--to', 'mysql', '--group', '1', '--target', url, '--match', 'mix:list:*', '--json', ...coord, ...base(prod)])
  assert.equal(ver.code, 0, ver.stdout + ver.stderr)
  assert.equal(JSON.parse(ver.stdout).equal, 40)
  const verMissing = await rstore(['verify', '--to', 'mysql', '--group', '7', '--target', url, ...coord, ...base(prod)])
  assert.equal(verMissing.code, 2)
  assert.match(verMissing.stderr, /group 7 does not exist/)
  const target = await openStore(parseStoreUrl(url), {reapIntervalMs: 0})
  try {
    const [a, b] = await Promise.all([src.client().lrange('mix:list:7', 0, -1), target.readKey(Buffer.from('mix:list:7'))])
    assert.deepEqual((b?.value as Buffer[]).map(String), a)
  } finally {
    await target.close()
  }
})

describe('bad input: one clear stderr line, non-zero exit, nothing written', () => {
  const refused = async (args: string[], message: RegExp, prod: string) => {
    const res = await rstore(args)
    assert.notEqual(res.code, 0, res.stdout)
    const lines = res.stderr.trim().split('\n')
    assert.equal(lines.length, 1, res.stderr)
    assert.match(lines[0], message)
    assert.equal(existsSync(join(cpDir, `${prod}.db`)), false, 'checkpoint file written')
  }
  const tablesOf = async (kind: 'mysql' | 'postgres', db: string) =>
    kind === 'mysql'
      ? ((await maria.sql('SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [db])) as unknown[]).length
      : (await postgres.sql(`SELECT datname FROM pg_database WHERE datname = $1`, [db])).rowCount && (await (async () => {
          const pg = await import('pg')
          const c = new pg.default.Client({host: '127.0.0.1', port: postgres.port, user: 'postgres', database: db})
          await c.connect()
          const n = (await c.query(`SELECT 1 FROM information_schema.tables WHERE table_schema = 'public'`)).rowCount
          await c.end()
          return n ?? 0
        })())

  for (const kind of ['mysql', 'postgres'] as const) {
    test(kind, async () => {
      const url = await targetUrl(kind, `bad_${kind}`)
      const p = nextProduct()
      const bf = (...extra: string[]) => ['backfill', '--to', kind, ...base(p), ...extra]
      await refused(bf('--source', '127.0.0.1:1', '--target', url), /cannot reach redis at 127\.0\.0\.1:1/, p)
      await refused(bf('--source', src.addr, '--target', kind === 'mysql' ? 'mysql://u:p@127.0.0.1:1/x' : 'postgres://u:p@127.0.0.1:1/x'), new RegExp(`cannot reach ${kind} at 127\\.0\\.0\\.1:1`), p)
      await refused(bf('--source', src.addr, '--target', 'not a url'), /bad store URL 'not a url'/, p)
      await refused(bf('--source', 'nohostport', '--target', url), /bad --source 'nohostport': use host:port/, p)
      await refused(bf('--source', src.addr, '--target', kind === 'mysql' ? postgres.url : maria.url), /is a (postgres|mysql) URL but --to is/, p)
      await refused(bf('--source', src.addr, '--target', url, '--match', 'nothing:matches:*'), /no key on redis .* matches 'nothing:matches:\*'/, p)
      assert.equal(await tablesOf(kind, `bad_${kind}`), 0)
      // A table of the wrong shape: refused, and the other tables are not created.
      if (kind === 'mysql') await maria.sql(`CREATE TABLE bad_mysql.rstore_hash (k VARCHAR(10) PRIMARY KEY, v TEXT)`)
      else {
        const pg = await import('pg')
        const c = new pg.default.Client({host: '127.0.0.1', port: postgres.port, user: 'postgres', database: `bad_${kind}`})
        await c.connect()
        await c.query('CREATE TABLE rstore_hash (k TEXT PRIMARY KEY, v TEXT)')
        await c.end()
      }
      await refused(bf('--source', src.addr, '--target', url), /table rstore_hash has the wrong shape/, p)
      assert.equal(await tablesOf(kind, `bad_${kind}`), 1)
      // verify: errors exit 2.
      const ver = await rstore(['verify', '--to', kind, '--source', '127.0.0.1:1', '--target', url, ...base(p)])
      assert.equal(ver.code, 2)
      assert.match(ver.stderr.trim(), /^Error: cannot reach redis at 127\.0\.0\.1:1/)
      const ver2 = await rstore(['verify', '--to', kind, '--source', src.addr, '--target', url, '--slots', '9-2', ...base(p)])
      assert.equal(ver2.code, 2)
      assert.match(ver2.stderr, /bad --slots '9-2'/)
    })
  }

  test('db init creates the tables, and refuses a wrong shape', async () => {
    const url = await targetUrl('postgres', 'init_me')
    const ok = await rstore(['db', 'init', url])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /tables ready in postgres:\/\/rstore@127\.0\.0\.1:\d+\/init_me: rstore_keys, rstore_strings/)
    assert.equal(await tablesOf('postgres', 'init_me'), 6)
    const again = await rstore(['db', 'init', url])
    assert.equal(again.code, 0)
    const bad = await rstore(['db', 'init', 'redis://127.0.0.1:6379'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /is a Redis URL/)
  })
})
