/**
 * Backfill benchmark: 500k keys (90% strings, 6% hashes of 5 fields, 4% sets of 5 members) from a
 * redis-server into MariaDB and into PostgreSQL (both started locally by the test harness, with
 * relaxed durability), through the same core as `rstore backfill`. Prints keys/s and rows/s.
 *
 *   npm run build && node dist/bench/backfill/run.js [keys] [concurrency] [batch] [strings]
 *
 * With a fifth argument `strings`, only string keys are seeded and only the strings-only runs are made.
 */
import {backfill} from '../../src/migrate/backfill.js'
import {startMariaDb} from '../../test/harness/mariadb.js'
import {startPostgres} from '../../test/harness/postgres.js'
import {removeDir, tempDir} from '../../test/harness/process.js'
import {startRedis} from '../../test/harness/redis.js'

const total = Number(process.argv[2] ?? 500_000)
const concurrency = Number(process.argv[3] ?? 8)
const batch = Number(process.argv[4] ?? 1000)
const stringsOnly = process.argv[5] === 'strings'

const redis = await startRedis()
const [maria, postgres] = await Promise.all([startMariaDb(), startPostgres()])
const cp = tempDir('bench-checkpoints')
try {
  const r = redis.client()
  const hashes = stringsOnly ? 0 : Math.floor(total * 0.06)
  const sets = stringsOnly ? 0 : Math.floor(total * 0.04)
  const strings = total - hashes - sets
  let t = Date.now()
  for (let i = 0; i < total; i += 10_000) {
    const p = r.pipeline()
    for (let j = i; j < Math.min(total, i + 10_000); j++) {
      if (j < strings) p.set(`bench:s:${j}`, `value-${j}-${'x'.repeat(32)}`)
      else if (j < strings + hashes) p.hset(`bench:h:${j}`, 'name', `n${j}`, 'age', String(j % 90), 'city', 'c', 'score', String(j), 'flag', '1')
      else p.sadd(`bench:set:${j}`, 'a', 'b', 'c', 'd', `m${j}`)
    }
    await p.exec()
  }
  const rows = strings * 2 + hashes * 6 + sets * 6
  console.log(`seeded ${total} keys (${strings} strings, ${hashes} hashes x5 fields, ${sets} sets x5 members) in ${((Date.now() - t) / 1000).toFixed(1)}s; ${rows} SQL rows to write`)
  console.log(`concurrency ${concurrency}, batch ${batch}, machine: ${(await import('node:os')).cpus().length} cores (redis-server, the database and this process share them)`)
  for (const [name, url] of stringsOnly ? [] : ([['mariadb', maria.url], ['postgres', postgres.url]] as const)) {
    t = Date.now()
    const res = await backfill({
      from: 'redis', to: name === 'mariadb' ? 'mysql' : 'postgres', source: redis.addr, target: `${url}?maxOpen=${concurrency + 2}`,
      match: '*', concurrency, rate: 0, delay: 0, batch, checkpointDir: cp, product: `bench-${name}`,
    })
    const secs = (Date.now() - t) / 1000
    console.log(`${name.padEnd(8)}: ${res.copied} keys copied in ${secs.toFixed(1)}s = ${Math.round(res.copied / secs)} keys/s, ${Math.round(rows / secs)} rows/s (failed ${res.failed})`)
  }
  // Strings only, the target figure.
  for (const [name, url] of [['mariadb', await maria.createDatabase('strings_only')], ['postgres', await postgres.createDatabase('strings_only')]] as const) {
    t = Date.now()
    const res = await backfill({
      from: 'redis', to: name === 'mariadb' ? 'mysql' : 'postgres', source: redis.addr, target: `${url}?maxOpen=${concurrency + 2}`,
      match: 'bench:s:*', concurrency, rate: 0, delay: 0, batch, checkpointDir: cp, product: `bench-strings-${name}`,
    })
    const secs = (Date.now() - t) / 1000
    console.log(`${name.padEnd(8)} strings only: ${res.copied} keys in ${secs.toFixed(1)}s = ${Math.round(res.copied / secs)} keys/s, ${Math.round((2 * res.copied) / secs)} rows/s`)
  }
} finally {
  await Promise.all([redis.stop(), maria.stop(), postgres.stop()])
  removeDir(cp)
}
