/**
 * Double-write benchmark: INCR through one DbGroupExecutor (the proxy's rule path) on a key space
 * with no cutover, then during a redis -> redis cutover (double-write), on distinct keys and on a few
 * hot keys. Shows what a cutover costs the proxy per write. Two rounds, to see the machine's drift.
 *
 *   npm run build && node dist/bench/cutover/run.js [clients] [ops per client]
 */
import {join} from 'node:path'
import {startCutover} from '../../src/service/cutover.js'
import {addConfig} from '../../src/service/rules-config.js'
import type {RstoreConfig} from '../../src/config.js'
import {EmbeddedCoordinator} from '../../src/coord/embedded.js'
import {TopologyStore} from '../../src/coord/topology-store.js'
import {DbGroupExecutor} from '../../src/proxy/dbgroup-exec.js'
import {RuleRouter} from '../../src/proxy/rule-route.js'
import {removeDir, startAll, tempDir} from '../../test/harness/process.js'
import {startRedis} from '../../test/harness/redis.js'

const clients = Number(process.argv[2] ?? 32)
const ops = Number(process.argv[3] ?? 1000)

const [a, b] = await startAll([startRedis(), startRedis()] as const)
const dir = tempDir('bench-cutover')
const coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {pollIntervalMs: 10})
const execs: DbGroupExecutor[] = []
try {
  const store = new TopologyStore(coord, 'bench')
  const cfg = {product: 'bench', coordinator: 'embedded', coordinatorAddr: join(dir, 'meta.db'), checkpointDir: join(dir, 'cp')} as RstoreConfig
  await addConfig(store, 'dbunit', {name: 'a', type: 'redis', server: a.addr})
  await addConfig(store, 'dbunit', {name: 'b', type: 'redis', server: b.addr})
  await addConfig(store, 'dbgroup', {name: 'ga', type: 'redis', items: [{name: 'a'}]})
  await addConfig(store, 'dbgroup', {name: 'gb', type: 'redis', items: [{name: 'b'}]})
  await addConfig(store, 'shard', {name: 's', shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: 'ga'}]})
  await addConfig(store, 'rule', {name: 'k', regexp: 'k:.*', shardName: 's', example: 'k:1'})
  const plain = new DbGroupExecutor(await RuleRouter.load(store))
  execs.push(plain)
  await startCutover(store, cfg, 'c', 'k', 'gb')
  const doubled = new DbGroupExecutor(await RuleRouter.load(store))
  execs.push(doubled)

  /** INCRs per second: `clients` clients, `ops` each, keys named by keyOf(client, i). */
  const run = async (exec: DbGroupExecutor, keyOf: (c: number, i: number) => string): Promise<number> => {
    const t0 = performance.now()
    await Promise.all(
      Array.from({length: clients}, async (_, c) => {
        for (let i = 0; i < ops; i++) {
          const k = Buffer.from(keyOf(c, i))
          const route = exec.router.route(k)
          if (route.kind !== 'dbgroup') throw new Error(`key ${k} is not routed to a db group`)
          const reply = await exec.execute(route, true, [Buffer.from('INCR'), k], k)
          if (reply.type === 'error') throw new Error(`INCR ${k}: ${reply.value}`)
        }
      }),
    )
    return (clients * ops) / ((performance.now() - t0) / 1000)
  }
  console.log(`${clients} clients x ${ops} INCR each, one executor, redis -> redis`)
  for (let round = 1; round <= 2; round++) {
    const base = await run(plain, (c, i) => `k:p${round}:${c}:${i}`)
    const distinct = await run(doubled, (c, i) => `k:d${round}:${c}:${i}`)
    const hot = await run(doubled, (_, i) => `k:h${round}:${i % 4}`)
    const f = (x: number) => `${Math.round(x)} ops/s`
    console.log(
      `round ${round}: no cutover ${f(base)}; double-write, distinct keys ${f(distinct)} (x${(distinct / base).toFixed(2)}); double-write, 4 hot keys ${f(hot)} (x${(hot / base).toFixed(2)})`,
    )
  }
} finally {
  for (const e of execs) await e.close()
  await coord.close()
  await Promise.all([a.stop(), b.stop()])
  removeDir(dir)
}
