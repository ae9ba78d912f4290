// End to end: the slot and server commands through the built binary (node bin/run.js), once with the
// embedded coordinator (a temp SQLite file) and once with a real etcd, against real redis-servers.
// Every refusal must exit non-zero with ONE readable stderr line and leave the stored state unchanged.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import type {RstoreConfig} from '../src/config.js'
import {openCoordinator} from '../src/coord/index.js'
import {TopologyStore} from '../src/coord/topology-store.js'
import type {Coordinator} from '../src/coord/types.js'
import {startEtcd, type EtcdServer} from './harness/etcd.js'
import {runCli, type CliResult} from './harness/cluster.js'
import {freePort, removeDir, tempDir, waitFor} from './harness/process.js'
import {startRedis, type RedisServer} from './harness/redis.js'


type Run = CliResult

function run(args: string[], cwd: string): Promise<Run> {
  return runCli(args, {cwd, timeoutMs: 60_000, env: {...process.env, NO_COLOR: '1'}})
}

/** Runs fns with at most `limit` at a time (the binary costs ~0.5 s of CPU per call). */
async function limited<T>(limit: number, fns: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(fns.length)
  let next = 0
  await Promise.all(
    Array.from({length: Math.min(limit, fns.length)}, async () => {
      while (next < fns.length) {
        const i = next++
        out[i] = await fns[i]!()
      }
    }),
  )
  return out
}

for (const kind of ['embedded', 'etcd'] as const) {
  describe(`slot and server commands (${kind} coordinator)`, () => {
    let dir: string
    let etcd: EtcdServer | undefined
    let coord: Coordinator
    let store: TopologyStore
    let a: RedisServer
    let b: RedisServer
    let c: RedisServer
    let flags: string[]
    const product = `cli${kind}${process.pid}`

    /** Runs `rstore <args>` with this suite's product and coordinator; the command must succeed. */
    async function ok(...args: string[]): Promise<string> {
      const r = await run([...args, ...flags], dir)
      assert.equal(r.code, 0, `rstore ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
      return r.stdout
    }
    async function okJson<T = any>(...args: string[]): Promise<T> {
      return JSON.parse(await ok(...args, '--json')) as T
    }

    /** Every stored key with its value and modRevision: equal dumps mean nothing was written. */
    async function dump(): Promise<string> {
      return JSON.stringify((await coord.list(store.prefix)).map((kv) => [kv.key, kv.value, kv.modRevision]))
    }

    /** Runs refusals (concurrently, a few at a time) and checks each and that nothing was stored. */
    async function refusals(cases: [string[], RegExp, number?][]): Promise<void> {
      const before = await dump()
      const results = await limited(3, cases.map(([args]) => () => run([...args, ...flags], dir)))
      results.forEach((r, i) => {
        const [args, re, code] = cases[i]!
        const what = `rstore ${args.join(' ')}`
        assert.equal(r.code, code ?? 1, `${what} should exit ${code ?? 1}; stderr: ${r.stderr}`)
        assert.equal(r.stdout, '', `${what} prints nothing on stdout`)
        const lines = r.stderr.trimEnd().split('\n')
        assert.equal(lines.length, 1, `${what}: one stderr line, got:\n${r.stderr}`)
        assert.match(lines[0]!, /^Error: /, what)
        assert.match(lines[0]!, re, what)
      })
      assert.equal(await dump(), before, 'refusals leave the stored state unchanged')
    }

    before(async () => {
      dir = tempDir(`cli-${kind}`)
      const cfg: RstoreConfig = {
        product,
        coordinator: kind,
        coordinatorAddr: join(dir, 'meta.db'),
        dashboardAddr: '127.0.0.1:0',
        checkpointDir: join(dir, 'cp'),
      }
      if (kind === 'etcd') {
        etcd = await startEtcd()
        cfg.coordinatorAddr = etcd.endpoint
      }
      flags = ['--product', product, '--coordinator', kind, '--coordinator-addr', cfg.coordinatorAddr]
      // One at a time, each assigned at once, so that after() stops whatever was started.
      a = await startRedis()
      b = await startRedis()
      c = await startRedis()
      coord = await openCoordinator(cfg, {create: true})
      store = new TopologyStore(coord, product)
    })

    after(async () => {
      await coord?.close()
      await Promise.all([a?.stop(), b?.stop(), c?.stop(), etcd?.stop()])
      if (dir) removeDir(dir)
    })

    test('slot init, then refused twice; groups and servers with real replication', async () => {
      const init = await okJson('slot', 'init')
      assert.deepEqual(init, {epoch: 1, slots: 1024, reset: false})
      await refusals([[['slot', 'init'], /already initialized.*--force/]])

      assert.match(await ok('server', 'add', '1', a.addr, 'master'), new RegExp(`${a.addr} added to new group 1 as master, epoch 2`))
      const addB = await okJson('server', 'add', '1', b.addr, 'slave')
      assert.equal(addB.replicaOf, a.addr)
      await ok('server', 'add', '2', c.addr, 'master')
      await ok('server', 'add-group', '3')
      const dead = `127.0.0.1:${await freePort()}`
      await refusals([
        [['server', 'add', '1', dead, 'master'], new RegExp(`group 1 already has a master \\(${a.addr}\\)`)],
        [['server', 'add', '4', dead, 'master'], new RegExp(`server ${dead} does not answer: connection refused`)],
        [['server', 'add', '3', b.addr, 'slave'], /already belongs to group 1/],
      ])
      const roleB = (await b.client().call('ROLE')) as unknown[]
      assert.equal(roleB[0], 'slave')
      assert.equal(roleB[2], a.port, 'the slave was told REPLICAOF its master')
    })

    test('range-set assigns slots; every slot refusal leaves the table unchanged', async () => {
      assert.match(await ok('slot', 'range-set', '0', '511', '1', 'online'), /slots 0-511 -> group 1 online \(512 changed\), epoch 6/)
      const r2 = await okJson('slot', 'range-set', '512', '1023', '2', 'online')
      assert.deepEqual(r2, {epoch: 7, from: 512, to: 1023, group: 2, state: 'online', changed: 512})
      // Slot 600 is migrating (as `rstore migrate` would leave it).
      await store.update(() => ({slots: [{id: 600, state: 'migrating', group: 1, from: 2}]}))
      await refusals([
        [['slot', 'set', '1024', '1', 'online'], /invalid slot '1024': a slot is an integer from 0 to 1023/],
        [['slot', 'range-set', '10', '5', '1', 'online'], /invalid slot range 10-5/],
        [['slot', 'set', '1', '9', 'online'], /group 9 does not exist/],
        [['slot', 'set', '1', '3', 'online'], /group 3 has no master/],
        [['slot', 'set', '5', '2', 'online'], /slot 5 is online in group 1: moving it to group 2 would strand its keys: that is the job of 'rstore migrate 5 5 2'/],
        [['slot', 'set', '600', '1', 'online'], /slot 600 is migrating from group 2 to group 1/],
        [['server', 'remove-group', '2'], /group 2 serves slots 512-1023/],
        [['server', 'remove', '1', a.addr], /master of group 1, which serves slots 0-511,600; promote another server first/],
        [['slot', 'set', '1'], /Missing 2 required args: group, status/, 2],
      ])
      await store.update(() => ({slots: [{id: 600, state: 'online', group: 2}]}))
      assert.match(await ok('slot', 'set', '5', '2', 'online', '--force'), /slot 5 -> group 2 online, epoch 10/)
      assert.match(await ok('slot', 'set', '6', '1', 'offline'), /slot 6 -> group 1 offline/)
    })

    test('slot info, slot list, server list (human and --json); remove-group of an idle group', async () => {
      await ok('server', 'remove-group', '3')
      const [info, list, listJson, servers, serversJson] = await limited(3, [
        () => ok('slot', 'info', '5'),
        () => ok('slot', 'list'),
        () => okJson('slot', 'list'),
        () => ok('server', 'list'),
        () => okJson('server', 'list'),
      ])
      assert.match(info as string, /^slot\s+5\nstate\s+online\ngroup\s+2\nmaster\s+127\.0\.0\.1:\d+\nepoch\s+12$/m)
      const lines = (list as string).trim().split('\n')
      assert.deepEqual(lines[0]!.split(/\s+/), ['SLOTS', 'COUNT', 'STATE', 'GROUP', 'FROM'])
      assert.deepEqual(
        lines.slice(1, -1).map((l) => l.split(/\s+/).slice(0, 4).join(' ')),
        ['0-4 5 online 1', '5 1 online 2', '6 1 offline 1', '7-511 505 online 1', '512-1023 512 online 2'],
      )
      assert.equal(lines.at(-1), 'epoch 12')
      assert.equal((listJson as {ranges: unknown[]}).ranges.length, 5)
      assert.match(servers as string, new RegExp(`1\\s+${a.addr}\\s+master\\s+510\\n1\\s+${b.addr}\\s+slave\\s+510\\n2\\s+${c.addr}\\s+master\\s+513`))
      assert.deepEqual(
        (serversJson as {groups: {id: number; master: string; slots: number}[]}).groups.map((g) => [g.id, g.master, g.slots]),
        [
          [1, a.addr, 510],
          [2, c.addr, 513],
        ],
      )
    })

    test('server promote switches a real master/replica pair; then remove the old master', async () => {
      const ca = a.client()
      await ca.set('promote:key', 'v1')
      const res = await okJson('server', 'promote', '1', b.addr)
      assert.equal(res.master, b.addr)
      assert.equal(res.previousMaster, a.addr)
      assert.deepEqual(res.repointed, [a.addr])
      const roleB = (await b.client().call('ROLE')) as unknown[]
      assert.equal(roleB[0], 'master')
      const roleA = (await a.client().call('ROLE')) as unknown[]
      assert.equal(roleA[0], 'slave')
      assert.equal(roleA[1], '127.0.0.1')
      assert.equal(roleA[2], b.port)
      assert.equal(await b.client().get('promote:key'), 'v1', 'the write made before the promote is on the new master')
      const cb = b.client()
      await cb.set('promote:key', 'v2')
      await waitFor('the old master to replicate from the new one', async () => (await ca.get('promote:key')) === 'v2', 10_000)

      const topo = await store.load()
      assert.deepEqual(topo.groups.get(1)!.servers, [
        {addr: a.addr, role: 'slave'},
        {addr: b.addr, role: 'master'},
      ])
      await refusals([
        [['server', 'promote', '1', b.addr], /already the master of group 1/],
        [['server', 'remove', '1', b.addr], /master of group 1/],
      ])
      assert.match(await ok('server', 'remove', '1', a.addr), new RegExp(`${a.addr} \\(slave\\) removed from group 1`))
      assert.deepEqual((await store.load()).groups.get(1)!.servers, [{addr: b.addr, role: 'master'}])
    })
  })
}
