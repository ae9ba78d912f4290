/**
 * The proxy end to end: the built binary (`rstore proxy start`) over real redis-servers, driven by
 * redis-cli, ioredis 5 with its default options, and raw sockets.
 */
import assert from 'node:assert/strict'
import {execFile, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createServer} from 'node:net'
import {after, before, describe, test} from 'node:test'
import {Redis} from 'ioredis'
import {slotOf} from '../src/topology/slots.js'
import {startCluster, type Cluster, type ClusterProxy} from './harness/cluster.js'
import {freePort, waitFor} from './harness/process.js'
import {cmd, exchange, RawClient, ReplyError, type Reply} from './harness/raw.js'

function redisCli(port: number, args: string[], stdin?: string): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    const child = execFile('redis-cli', ['-p', String(port), ...args], {encoding: 'utf8', timeout: 10000}, (err, stdout, stderr) => {
      resolve({code: err ? ((err as {code?: number}).code ?? 1) : 0, stdout, stderr})
    })
    if (stdin !== undefined) child.stdin!.end(stdin)
  })
}

/** A key (prefix + n) that the cluster routes to group g. */
function keyIn(c: Cluster, g: number, prefix = 'k'): string {
  for (let i = 0; ; i++) if (c.groupOf(`${prefix}${i}`) === g) return `${prefix}${i}`
}

/** A hash tag '{...}' whose slot belongs to group g. */
function tagIn(c: Cluster, g: number): string {
  for (let i = 0; ; i++) if (c.groupOf(`{t${i}}`) === g) return `{t${i}}`
}

function isErr(r: Reply, re: RegExp): boolean {
  return r instanceof ReplyError && re.test(r.message)
}

function str(r: Reply): string {
  if (Buffer.isBuffer(r)) return r.toString()
  if (r instanceof ReplyError) return `-${r.message}`
  return String(r)
}

describe('proxy over two groups (embedded coordinator)', () => {
  let c: Cluster
  let p: ClusterProxy
  let g1: Redis
  let g2: Redis

  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
    p = c.proxies[0]!
    g1 = c.groups[0]!.client()
    g2 = c.groups[1]!.client()
  })
  after(async () => {
    await c?.stop()
  })

  test('redis-cli with RESP arguments, stdin lines and --pipe (inline)', async () => {
    assert.equal((await redisCli(p.port, ['SET', 'cli:a', 'hello world'])).stdout.trim(), 'OK')
    assert.equal((await redisCli(p.port, ['GET', 'cli:a'])).stdout.trim(), 'hello world')
    const lines = await redisCli(p.port, [], 'SET cli:b 2\nINCR cli:b\nMGET cli:a cli:b cli:none\n')
    assert.deepEqual(lines.stdout.split('\n'), ['OK', '3', 'hello world', '3', '', ''])
    // --pipe sends the bytes as they are: inline commands, then its own ECHO check.
    const pipe = await redisCli(p.port, ['--pipe'], 'SET cli:c 1\r\nINCRBY cli:c 41\r\nGET cli:c\r\n')
    assert.match(pipe.stdout, /errors: 0, replies: 3/)
    assert.equal(await g1.get('cli:c') ?? await g2.get('cli:c'), '42')
  })

  test('inline commands over a raw socket, with quoting, LF-only lines and split writes', async () => {
    const r = await RawClient.connect(p.port)
    try {
      r.write('PING\r\n')
      assert.deepEqual(await r.read(1), ['PONG'])
      r.write('SET "in line" "a\\x41\\r\\nb"\r\nGET "in line"\nECHO \'it\\\'s\'\r\n')
      const [ok, val, echo] = await r.read(3)
      assert.equal(ok, 'OK')
      assert.equal(str(val!), 'aA\r\nb')
      assert.equal(str(echo!), "it's")
      for (const ch of 'ECHO split\r\n') r.write(ch)
      assert.equal(str((await r.read(1))[0]!), 'split')
      r.write('\r\n\r\n   \r\nPING\r\n') // empty lines are skipped, as in Redis
      assert.deepEqual(await r.read(1), ['PONG'])
    } finally {
      r.close()
    }
  })

  test('ioredis 5 with default options (CLIENT SETINFO and INFO on connect)', async () => {
    const r = new Redis({host: '127.0.0.1', port: p.port})
    try {
      await r.set('io:1', 'v1')
      assert.equal(r.status, 'ready')
      assert.equal(await r.get('io:1'), 'v1')
      await r.hset('io:h', {a: '1', b: '2'})
      assert.deepEqual(await r.hgetall('io:h'), {a: '1', b: '2'})
      await r.rpush('io:l', 'x', 'y', 'z')
      assert.deepEqual(await r.lrange('io:l', 0, -1), ['x', 'y', 'z'])
      await r.zadd('io:z', 1, 'one', 2, 'two')
      assert.deepEqual(await r.zrange('io:z', 0, -1, 'WITHSCORES'), ['one', '1', 'two', '2'])
      const res = await r.pipeline().incr('io:n').incr('io:n').get('io:n').exec()
      assert.deepEqual(res?.map((x) => x[1]), [1, 2, '2'])
      assert.equal(await r.client('SETNAME', 'tester'), 'OK')
      assert.equal(await r.client('GETNAME'), 'tester')
      assert.match(await r.info(), /redis_version:/)
      await assert.rejects(r.lpush('io:1', 'x'), /WRONGTYPE Operation against a key holding the wrong kind of value/)
    } finally {
      r.disconnect()
    }
  })

  test('keys land on the group that slotOf assigns (checked on the servers)', async () => {
    const r = p.client()
    const keys = Array.from({length: 300}, (_, i) => `place:${i}`)
    await Promise.all(keys.map((k) => r.set(k, k)))
    const counts = [0, 0]
    for (const k of keys) {
      const g = slotOf(k) < 512 ? 1 : 2
      assert.equal(c.groupOf(k), g)
      counts[g - 1]!++
      assert.equal(await (g === 1 ? g1 : g2).get(k), k, `${k} (slot ${slotOf(k)}) on group ${g}`)
      assert.equal(await (g === 1 ? g2 : g1).exists(k), 0, `${k} not on the other group`)
    }
    assert.ok(counts[0]! > 100 && counts[1]! > 100, `keys spread over both groups: ${counts}`)
  })

  test('MGET, MSET, DEL, EXISTS, UNLINK, TOUCH across groups, reassembled in order', async () => {
    const r = p.client()
    const keys = Array.from({length: 20}, (_, i) => keyIn(c, (i % 2) + 1, `cross:${i}:`))
    assert.equal(await r.mset(...keys.flatMap((k, i) => [k, `v${i}`])), 'OK')
    for (const [i, k] of keys.entries()) assert.equal(await (c.groupOf(k) === 1 ? g1 : g2).get(k), `v${i}`)
    const k = (i: number) => keys[i]!
    const wanted = [k(3), 'nope:1', k(0), k(19), 'nope:2', k(3)]
    assert.deepEqual(await r.mget(...wanted), ['v3', null, 'v0', 'v19', null, 'v3'])
    assert.equal(await r.exists(k(1), k(2), 'nope', k(1)), 3)
    assert.equal(await r.touch(k(1), k(2), 'nope'), 2)
    // MSET keeps the last value of a repeated key.
    await r.mset(k(0), 'a', k(1), 'b', k(0), 'c')
    assert.deepEqual(await r.mget(k(0), k(1)), ['c', 'b'])
    assert.equal(await r.del(k(0), k(1), 'nope', k(2)), 3)
    assert.equal(await r.unlink(...keys.slice(3, 10), 'nope'), 7)
    assert.equal(await r.exists(...keys), 10)
    assert.equal((await g1.exists(...keys)) + (await g2.exists(...keys)), 10)
  })

  test('MSET / MGET / DEL of 100,000 keys over both groups in one command', async () => {
    const r = p.client()
    const n = 100_000
    const keys = Array.from({length: n}, (_, i) => `huge:${i}`)
    const args: string[] = []
    for (const k of keys) args.push(k, `v:${k}`)
    assert.equal(await r.call('MSET', args), 'OK')
    const values = (await r.call('MGET', keys)) as string[]
    assert.equal(values.length, n)
    values.forEach((v, i) => assert.equal(v, `v:${keys[i]}`))
    assert.equal((await g1.dbsize()) + (await g2.dbsize()) >= n, true)
    assert.equal(await r.call('DEL', keys), n)
  })

  test('100 concurrent clients share the backend connections without crossed replies', async () => {
    const clients = Array.from({length: 100}, () => p.client())
    await Promise.all(
      clients.map(async (r, ci) => {
        for (let round = 0; round < 5; round++) {
          const pl = r.pipeline()
          for (let j = 0; j < 40; j++) {
            pl.set(`cc:${ci}:${j}`, `${ci}/${j}/${round}`).get(`cc:${ci}:${j}`).incr(`cc:counter:${j % 4}`)
            pl.mget(`cc:${ci}:${j}`, `cc:${(ci + 1) % 100}:none`)
          }
          const res = (await pl.exec())!
          for (let j = 0; j < 40; j++) {
            assert.equal(res[j * 4]![1], 'OK')
            assert.equal(res[j * 4 + 1]![1], `${ci}/${j}/${round}`)
            assert.deepEqual(res[j * 4 + 3]![1], [`${ci}/${j}/${round}`, null])
          }
        }
      }),
    )
    const counters = await clients[0]!.mget('cc:counter:0', 'cc:counter:1', 'cc:counter:2', 'cc:counter:3')
    assert.deepEqual(counters, ['5000', '5000', '5000', '5000'])
  })

  test('multi-key commands: CROSSSLOT across groups, served within one group', async () => {
    const r = p.client()
    const a = keyIn(c, 1, 'ra')
    const b = keyIn(c, 2, 'rb')
    await r.set(a, '1')
    await assert.rejects(r.rename(a, b), /^ReplyError: CROSSSLOT Keys in request don't hash to the same group/)
    await assert.rejects(r.sinterstore(a, b), /CROSSSLOT/)
    await assert.rejects(r.eval('return 1', 2, a, b), /CROSSSLOT/)
    await assert.rejects(r.msetnx(a, '1', b, '2'), /CROSSSLOT/)
    assert.equal(await r.get(a), '1', 'nothing changed')
    for (const g of [1, 2]) {
      const t = tagIn(c, g)
      await r.set(`${t}:src`, 'moved')
      assert.equal(await r.rename(`${t}:src`, `${t}:dst`), 'OK')
      assert.equal(await (g === 1 ? g1 : g2).get(`${t}:dst`), 'moved')
      await r.sadd(`${t}:s1`, 'x', 'y')
      await r.sadd(`${t}:s2`, 'y', 'z')
      assert.equal(await r.sinterstore(`${t}:s3`, `${t}:s1`, `${t}:s2`), 1)
      assert.equal(await r.eval("return redis.call('get', KEYS[1])", 1, `${t}:dst`), 'moved')
      assert.equal(await r.msetnx(`${t}:n1`, '1', `${t}:n2`, '2'), 1)
    }
    // Two keys of one group but different slots: allowed (the group is the unit).
    const a2 = keyIn(c, 1, 'rc')
    assert.notEqual(slotOf(a), slotOf(a2))
    assert.equal(await r.rename(a, a2), 'OK')
    assert.equal(await g1.get(a2), '1')
  })

  test('binary keys and values', async () => {
    const r = p.client()
    const pairs: [Buffer, Buffer][] = []
    for (let i = 0; i < 200; i++) {
      const key = Buffer.concat([randomBytes(1 + (i % 40)), Buffer.from([0, 13, 10, 0x7b, i & 0xff, 0x7d])])
      pairs.push([key, randomBytes(i * 7)])
    }
    await Promise.all(pairs.map(([k, v]) => r.set(k, v)))
    for (const [k, v] of pairs) {
      assert.deepEqual(await r.getBuffer(k), v)
      assert.deepEqual(await (slotOf(k) < 512 ? g1 : g2).getBuffer(k), v)
    }
    const got = await r.mgetBuffer(...pairs.map(([k]) => k))
    assert.deepEqual(got, pairs.map(([, v]) => v))
  })

  test('a 64 MB value in and out', async () => {
    const r = p.client()
    const big = randomBytes(64 * 1024 * 1024)
    assert.equal(await r.set('big:1', big), 'OK')
    assert.equal(await r.strlen('big:1'), big.length)
    const back = await r.getBuffer('big:1')
    assert.ok(back && back.equals(big), 'value round-trips')
    assert.equal(await r.del('big:1'), 1)
  })

  test('a 10,000-deep pipeline in one write gets every reply in order', async () => {
    const raw = await RawClient.connect(p.port)
    try {
      const parts: Buffer[] = []
      const n = 10_000
      for (let i = 0; i < n; i++) {
        if (i % 4 === 0) parts.push(cmd('SET', `pipe:${i}`, `val${i}`))
        else if (i % 4 === 1) parts.push(cmd('GET', `pipe:${i - 1}`))
        else if (i % 4 === 2) parts.push(cmd('ECHO', `e${i}`))
        else parts.push(cmd('MGET', `pipe:${i - 3}`, `pipe:${i - 7}`, 'pipe:none'))
      }
      raw.write(Buffer.concat(parts))
      const replies = await raw.read(n, 30000)
      for (let i = 0; i < n; i++) {
        const rep = replies[i]!
        if (i % 4 === 0) assert.equal(rep, 'OK')
        else if (i % 4 === 1) assert.equal(str(rep), `val${i - 1}`, `reply ${i}`)
        else if (i % 4 === 2) assert.equal(str(rep), `e${i}`)
        else {
          assert.ok(Array.isArray(rep))
          assert.deepEqual(rep.map((x) => (x === null ? null : str(x))), [`val${i - 3}`, i >= 7 ? `val${i - 7}` : null, null])
        }
      }
    } finally {
      raw.close()
    }
  })

  test('errors are Redis’s own texts (compared with redis-server)', async () => {
    const t = tagIn(c, 1)
    const direct = await RawClient.connect(c.groups[0]!.port)
    const proxied = await RawClient.connect(p.port)
    try {
      await direct.call('SET', `${t}str`, 'abc')
      await direct.call('DEL', `${t}z`, `${t}k`)
      const cases: string[][] = [
        ['FOO', 'bar', 'baz'],
        ['foo'],
        ['NOPE', 'x'.repeat(200), 'y'],
        ['nope', 'a\r\nb', 'c\x00d', 'x'.repeat(100), 'y'.repeat(100)],
        ['nope', ...Array.from({length: 30}, (_, i) => `arg${i}`)],
        ['GET'],
        ['GET', 'a', 'b'],
        ['SET', 'k'],
        ['HSET', 'k', 'f'],
        ['MGET'],
        ['MSET', 'a'],
        ['MSET', 'a', '1', 'b'],
        ['DEL'],
        ['EXISTS'],
        ['RENAME', 'a'],
        ['ECHO'],
        ['ECHO', 'a', 'b'],
        ['PING', 'a', 'b'],
        ['SELECT'],
        ['SELECT', 'abc'],
        ['DBSIZE', 'x'],
        ['AUTH', 'pw'],
        ['HELLO', 'abc'],
        ['LPUSH', `${t}str`, 'x'],
        ['INCR', `${t}str`],
        ['SET', `${t}k`, 'v', 'EX', 'abc'],
        ['SET', `${t}k`, 'v', 'XX', 'NX'],
        ['EXPIRE', `${t}str`, 'abc'],
        ['ZADD', `${t}z`, 'x', 'y'],
        ['EVAL', 'return 1', 'abc'],
        ['EVAL', 'return 1', '-1'],
        ['EVAL', 'return 1', '5', `${t}k`],
        ['ZUNIONSTORE', `${t}d`, 'abc', `${t}z`],
        ['ZUNIONSTORE', `${t}d`, '3', `${t}z`],
        ['ZUNIONSTORE', `${t}d`, '0', `${t}z`],
        ['SINTERCARD', 'abc', `${t}z`],
        ['LMPOP', '-1', `${t}z`, 'LEFT'],
        ['OBJECT', 'ENCODING'],
        ['OBJECT', 'HELP'],
        ['OBJECT', 'NOPE'],
        ['XINFO', 'HELP'],
        ['MEMORY', 'USAGE'],
        ['EVAL', 'return 1', '99999999999999999999', 'a'],
        ['ZUNIONSTORE', `${t}d`, '-1', `${t}z`],
        ['ZUNION', 'abc', `${t}z`],
        ['ZUNION', '0', `${t}z`],
        ['ZINTER', '3', `${t}z`],
        ['SINTERCARD', '0', `${t}z`],
        ['SINTERCARD', '5', `${t}z`],
        ['ZINTERCARD', '0', `${t}z`],
        ['LMPOP', '0', `${t}z`, 'LEFT'],
        ['LMPOP', '5', `${t}z`, 'LEFT'],
        ['ZMPOP', 'x', `${t}z`, 'MIN'],
        ['CLIENT', 'SETNAME'],
        ['CLIENT', 'SETNAME', 'a b'],
      ]
      const diffs: string[] = []
      for (const args of cases) {
        const want = str(await direct.call(...args))
        const got = str(await proxied.call(...args))
        if (got !== want) diffs.push(`${args.join(' ').slice(0, 60)}\n  redis: ${want}\n  proxy: ${got}`)
      }
      assert.deepEqual(diffs, [])
    } finally {
      direct.close()
      proxied.close()
    }
  })

  test('protocol errors: the same error as Redis, then the connection closes', async () => {
    const direct = c.groups[0]!.port
    const inputs: string[] = [
      '*1\r\n$abc\r\n',
      '*abc\r\n',
      '*1\r\nfoo\r\n',
      '*2\r\n$3\r\nGET\r\n:1\r\n',
      '*1\r\n$-1\r\n',
      '*1\r\n$600000000\r\n',
      'SET "a b\r\n',
      "SET 'a\r\n",
      'PING\r\nECHO\r\nGET\r\n*1\r\n$x\r\n',
      '*-5\r\nPING\r\n*0\r\nPING\r\n',
      'PING\r\nQUIT\r\n*1\r\n$x\r\n',
      cmd('GET', 'pe:1').toString() + 'SET "x\r\n',
    ]
    for (const input of inputs) {
      const [want, got] = await Promise.all([exchange(direct, input, 800), exchange(p.port, input, 800)])
      assert.equal(got.data.toString('latin1'), want.data.toString('latin1'), JSON.stringify(input))
      assert.equal(got.closed, want.closed, `closed after ${JSON.stringify(input)}`)
    }
    const huge = await exchange(p.port, 'x'.repeat(70 * 1024), 1500)
    assert.equal(huge.data.toString(), '-ERR Protocol error: too big inline request\r\n')
    assert.ok(huge.closed)
    const manyArgs = await exchange(p.port, '*2000000\r\n', 1500)
    assert.equal(manyArgs.data.toString(), '-ERR Protocol error: invalid multibulk length\r\n')
    assert.ok(manyArgs.closed)
    // The proxy is fine afterwards.
    assert.equal(await p.client().ping(), 'PONG')
  })

  test('unsupported commands are refused clearly and the connection is kept', async () => {
    const r = await RawClient.connect(p.port)
    try {
      const refused = [
        ['MULTI'], ['EXEC'], ['WATCH', 'k'], ['BLPOP', 'k', '0'], ['BRPOP', 'k', '1'],
        ['SUBSCRIBE', 'ch'], ['PUBLISH', 'ch', 'm'],
        ['SHUTDOWN'], ['DEBUG', 'SLEEP', '0'], ['MIGRATE', '127.0.0.1', '1', 'k', '0', '1'], ['REPLICAOF', 'NO', 'ONE'],
        ['SLAVEOF', 'NO', 'ONE'], ['SAVE'], ['SELECT', '1'], ['MONITOR'],
      ]
      for (const args of refused) {
        const rep = await r.call(...args)
        assert.ok(isErr(rep, new RegExp(`^ERR unsupported command '${args[0]!.toLowerCase()}'`)), `${args.join(' ')}: ${str(rep)}`)
        assert.equal(await r.call('PING'), 'PONG')
      }
      assert.equal(await g1.dbsize() + await g2.dbsize() > 0, true, 'nothing was flushed')
    } finally {
      r.close()
    }
  })

  test('HELLO 3 is refused cleanly, HELLO 2 works; SELECT 0 / 1; COMMAND; INFO; DBSIZE summed', async () => {
    const r = await RawClient.connect(p.port)
    try {
      assert.ok(isErr(await r.call('HELLO', '3'), /^NOPROTO/))
      assert.equal(await r.call('PING'), 'PONG')
      const hello = (await r.call('HELLO', '2')) as Reply[]
      const h = new Map<string, Reply>()
      for (let i = 0; i < hello.length; i += 2) h.set(str(hello[i]!), hello[i + 1]!)
      assert.equal(h.get('proto'), 2)
      assert.equal(str(h.get('server')!), 'redis')
      assert.equal(await r.call('SELECT', '0'), 'OK')
      assert.ok(isErr(await r.call('SELECT', '1'), /^ERR unsupported command 'select'/))
      const count = (await r.call('COMMAND', 'COUNT')) as number
      assert.ok(count > 100, `COMMAND COUNT ${count}`)
      assert.equal(((await r.call('COMMAND')) as Reply[]).length, count)
      assert.ok(Array.isArray(await r.call('COMMAND', 'DOCS')))
      const info = (await r.call('COMMAND', 'INFO', 'get', 'multi')) as Reply[]
      assert.equal(str((info[0] as Reply[])[0]!), 'get')
      assert.equal(info[1], null)
      const text = str(await r.call('INFO'))
      for (const want of ['# Server', 'redis_version:', '# Clients', 'connected_clients:', '# Stats', 'total_commands_processed:']) {
        assert.ok(text.includes(want), `INFO has ${want}`)
      }
      const sum = (await g1.dbsize()) + (await g2.dbsize())
      // INFO's keyspace is summed over the groups (docs/proxy-fanout.md).
      assert.equal(Number(/^db0:keys=(\d+)/m.exec(text)?.[1] ?? 0), sum)
      assert.equal(await r.call('DBSIZE'), sum)
      assert.equal(str(await r.call('ECHO', 'x')), 'x')
      assert.equal(await r.call('CLIENT', 'SETINFO', 'LIB-NAME', 'raw'), 'OK')
      assert.equal(typeof (await r.call('CLIENT', 'ID')), 'number')
      r.write(cmd('QUIT'))
      const rest = await r.readAll(2000)
      assert.equal(rest.data.toString(), '+OK\r\n')
      assert.ok(rest.closed)
    } finally {
      r.close()
    }
  })

  test('/status and /metrics over HTTP', async () => {
    await p.client().get('metrics:probe')
    const st = await p.status()
    assert.equal(st.id, p.id)
    assert.equal(st.state, 'online')
    assert.equal(typeof st.epoch, 'number')
    assert.equal(typeof st.clients, 'number')
    const backends = st.backends as {addr: string; state: string}[]
    assert.deepEqual(backends.map((b) => b.addr).sort(), c.groups.map((g) => g.addr).sort())
    assert.ok(backends.every((b) => b.state === 'up'))
    const m = await p.http('/metrics')
    assert.equal(m.status, 200)
    for (const re of [
      /^rstore_commands_total\{command="get"\} \d+$/m,
      /^rstore_command_errors_total \d+$/m,
      /^rstore_command_latency_ms_bucket\{le="\+Inf"\} \d+$/m,
      /^rstore_command_latency_ms_count \d+$/m,
      /^rstore_connections \d+$/m,
      /^rstore_backend_up\{addr="127\.0\.0\.1:\d+"\} 1$/m,
      /^rstore_topology_epoch \d+$/m,
    ]) {
      assert.match(m.body, re)
    }
    assert.equal((await p.http('/nope')).status, 404)
  })

  test('AUTH with --proxy-auth: NOAUTH before, WRONGPASS, then OK', async () => {
    const ap = await c.startProxy({id: 'auth_proxy', args: ['--proxy-auth', 's3cret']})
    try {
      const r = await RawClient.connect(ap.port)
      try {
        assert.ok(isErr(await r.call('GET', 'k'), /^NOAUTH Authentication required\.$/))
        // As in Redis, an unknown command or a wrong arity is reported before authentication.
        assert.ok(isErr(await r.call('GET'), /^ERR wrong number of arguments for 'get' command$/))
        assert.ok(isErr(await r.call('NOPE'), /^ERR unknown command 'NOPE'/))
        assert.ok(isErr(await r.call('KEYS', '*'), /^NOAUTH/))
        assert.ok(isErr(await r.call('HELLO', '2'), /^NOAUTH/))
        assert.ok(isErr(await r.call('AUTH', 'wrong'), /^WRONGPASS invalid username-password pair/))
        assert.ok(isErr(await r.call('AUTH', 'other', 's3cret'), /^WRONGPASS/))
        assert.ok(isErr(await r.call('SET', 'k', 'v'), /^NOAUTH/))
        assert.equal(await r.call('AUTH', 's3cret'), 'OK')
        assert.equal(await r.call('SET', 'auth:k', 'v'), 'OK')
        assert.equal(str(await r.call('GET', 'auth:k')), 'v')
      } finally {
        r.close()
      }
      const r2 = await RawClient.connect(ap.port)
      assert.equal(await r2.call('AUTH', 'default', 's3cret'), 'OK')
      r2.close()
      const io = new Redis({host: '127.0.0.1', port: ap.port, password: 's3cret'})
      try {
        assert.equal(await io.get('auth:k'), 'v')
      } finally {
        io.disconnect()
      }
    } finally {
      await ap.stop()
    }
  })

  test('max clients: the connection over the limit gets an error and is closed', async () => {
    const mp = await c.startProxy({id: 'maxc_proxy', args: ['--max-clients', '2']})
    try {
      const a = await RawClient.connect(mp.port)
      const b = await RawClient.connect(mp.port)
      assert.equal(await a.call('PING'), 'PONG')
      assert.equal(await b.call('PING'), 'PONG')
      const over = await exchange(mp.port, cmd('PING'), 1500)
      assert.equal(over.data.toString(), '-ERR max number of clients reached\r\n')
      assert.ok(over.closed)
      a.close()
      await waitFor('a slot is free again', async () => {
        const again = await RawClient.connect(mp.port)
        try {
          return (await again.call('PING')) === 'PONG'
        } catch {
          return false
        } finally {
          again.close()
        }
      }, 5000)
      assert.equal(await b.call('PING'), 'PONG')
      b.close()
      assert.match((await mp.http('/metrics')).body, /^rstore_rejected_connections_total [1-9]/m)
    } finally {
      await mp.stop()
    }
  })

  test('--cpu 2 workers share the port and register apart; --idle-timeout closes idle clients; SIGTERM stops all', async () => {
    const mp = await c.startProxy({id: 'multi', args: ['--cpu', '2', '--idle-timeout', '1']})
    let stopped = false
    try {
      const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; state: string}[]
      assert.deepEqual(list.filter((x) => x.id.startsWith('multi')).map((x) => [x.id, x.state]), [['multi-1', 'online'], ['multi-2', 'online']])
      const ids = new Set<string>()
      for (let i = 0; i < 8 && ids.size < 2; i++) {
        const r = await RawClient.connect(mp.port)
        ids.add(/proxy_id:(\S+)/.exec(str(await r.call('INFO')))![1]!)
        assert.equal(await r.call('SET', `multi:${i}`, 'x'), 'OK')
        r.close()
      }
      assert.deepEqual([...ids].sort(), ['multi-1', 'multi-2'])
      const idle = await RawClient.connect(mp.port)
      const busy = await RawClient.connect(mp.port)
      assert.equal(await idle.call('PING'), 'PONG')
      const t0 = Date.now()
      while (Date.now() - t0 < 2200) {
        assert.equal(await busy.call('PING'), 'PONG', 'an active client is kept')
        await new Promise((r) => setTimeout(r, 250))
      }
      const rest = await idle.readAll(2000)
      assert.ok(rest.closed, 'the idle client was closed')
      busy.close()
      const t = Date.now()
      await mp.stop()
      stopped = true
      assert.ok(Date.now() - t < 4500, `stopped in ${Date.now() - t} ms (the harness SIGKILLs after 5 s)`)
      assert.equal(mp.proc.child.signalCode, null, 'exited by itself')
      await waitFor('worker records gone', async () => {
        const now = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string}[]
        return !now.some((x) => x.id.startsWith('multi'))
      }, 10000, 200)
    } finally {
      if (!stopped) await mp.stop()
    }
  })

  test('--cpu 2: a worker killed with kill -9 is started again under its number, online, and serves', async () => {
    const mp = await c.startProxy({id: 'respawn', args: ['--cpu', '2']})
    try {
      type Rec = {id: string; state: string; pid: number}
      const workers = async () => (JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as Rec[]).filter((x) => x.id.startsWith('respawn-'))
      const before = await workers()
      const dead = before.find((x) => x.id === 'respawn-1')!
      process.kill(dead.pid, 'SIGKILL')
      await waitFor('respawn-1 registered again with a new pid, online', async () => {
        const now = (await workers()).find((x) => x.id === 'respawn-1')
        return now !== undefined && now.pid !== dead.pid && now.state === 'online'
      }, 20_000, 200)
      assert.match(mp.proc.output(), /worker 1 \(pid \d+\) exited \(SIGKILL\): starting it again/)
      const ids = new Set<string>()
      for (let i = 0; i < 12 && ids.size < 2; i++) {
        const r = await RawClient.connect(mp.port)
        ids.add(/proxy_id:(\S+)/.exec(str(await r.call('INFO')))![1]!)
        assert.equal(await r.call('SET', `respawn:${i}`, 'x'), 'OK')
        r.close()
      }
      assert.deepEqual([...ids].sort(), ['respawn-1', 'respawn-2'], 'both workers serve')
    } finally {
      await mp.stop()
    }
  })

  test('--cpu 2 on a port already taken: the proxy exits non-zero instead of restarting its workers forever', async () => {
    const taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()))
    const port = (taken.address() as {port: number}).port
    try {
      const t0 = Date.now()
      const r = await c.cli(['proxy', 'start', '--id', 'busy', '--cpu', '2', '--addr', `127.0.0.1:${port}`, '--http-addr', `127.0.0.1:${await freePort()}`], {timeoutMs: 20_000})
      assert.notEqual(r.code, 0, r.stdout + r.stderr)
      assert.match(r.stdout + r.stderr, /before it listened: stopping the proxy/)
      assert.match(r.stderr, new RegExp(`^Error: cannot listen on 127.0.0.1:${port} \\(--addr\\): address already in use`, 'm'))
      assert.ok(Date.now() - t0 < 15_000)
    } finally {
      taken.close()
    }
  })

  test('offline refuses routed commands, online serves again', async () => {
    const r = await RawClient.connect(p.port)
    try {
      await c.cliOk(['proxy', 'offline', p.id])
      assert.ok(isErr(await r.call('GET', 'k'), /^ERR proxy is offline$/))
      assert.ok(isErr(await r.call('MGET', 'a', 'b'), /^ERR proxy is offline$/))
      assert.equal(await r.call('PING'), 'PONG', 'local commands still answer')
      const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; state: string}[]
      assert.equal(list.find((x) => x.id === p.id)?.state, 'offline')
      assert.equal((await p.status()).state, 'offline')
      await c.cliOk(['proxy', 'online', p.id])
      assert.equal(await r.call('SET', 'onl:k', '1'), 'OK')
    } finally {
      r.close()
    }
  })

  test('slot range-set --force moves a range; the proxy serves it from the new group without restart', async () => {
    const r = p.client()
    const key = keyIn(c, 1, 'mv')
    const s = String(slotOf(key))
    await g1.set(key, 'on-group-1')
    await g2.set(key, 'on-group-2')
    assert.equal(await r.get(key), 'on-group-1')
    const before = (await p.status()).epoch as number
    try {
      await c.cliOk(['slot', 'range-set', s, s, '2', 'online', '--force'])
      await waitFor('proxy reads the key from group 2', async () => (await r.get(key)) === 'on-group-2', 10000)
      assert.ok(((await p.status()).epoch as number) > before)
      await r.set(key, 'written-via-proxy')
      assert.equal(await g2.get(key), 'written-via-proxy')
      assert.equal(await g1.get(key), 'on-group-1')
      const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; appliedEpoch: number}[]
      assert.equal(list.find((x) => x.id === p.id)?.appliedEpoch, (await p.status()).epoch)
    } finally {
      await c.cliOk(['slot', 'range-set', s, s, '1', 'online', '--force'])
    }
    await waitFor('back on group 1', async () => (await r.get(key)) === 'on-group-1', 10000)
  })

  test('a topology with two migrating slots is refused; the proxy keeps serving the last good one', async () => {
    const store = await c.openStore()
    const r = p.client()
    const k1 = keyIn(c, 1, 'two')
    const k2 = keyIn(c, 2, 'two')
    await r.set(k1, 'one')
    await r.set(k2, 'two')
    const good = (await p.status()).epoch as number
    const writeRaw = async (slots: object[]) => {
      const ek = store.keys.epoch
      const cur = (await store.coord.get(ek))!
      const epoch = (JSON.parse(cur.value) as number) + 1
      const ops = slots.map((s) => ({type: 'put' as const, key: store.keys.slot((s as {id: number}).id), value: JSON.stringify(s)}))
      ops.push({type: 'put', key: ek, value: JSON.stringify(epoch)})
      const res = await store.coord.txn([{key: ek, modRevision: cur.modRevision}], ops)
      assert.ok(res.succeeded)
      return epoch
    }
    const s1 = slotOf(k1)
    const s2 = slotOf(k2)
    // TopologyStore.update refuses this topology itself, so it is written around it.
    await assert.rejects(store.update(() => ({slots: [{id: s1, state: 'migrating', group: 2, from: 1}, {id: s2, state: 'migrating', group: 1, from: 2}]})), /migrating/)
    const bad = await writeRaw([{id: s1, state: 'migrating', group: 2, from: 1}, {id: s2, state: 'migrating', group: 1, from: 2}])
    try {
      await waitFor('proxy list reports the refusal', async () => {
        const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; error?: string; appliedEpoch: number}[]
        const me = list.find((x) => x.id === p.id)
        return Boolean(me?.error && /2 migrating slots/.test(me.error) && me.appliedEpoch === good)
      }, 10000)
      const st = await p.status()
      assert.equal(st.epoch, good)
      assert.match(String(st.topologyError), new RegExp(`epoch ${bad} has 2 migrating slots`))
      assert.equal(await r.get(k1), 'one', 'still served by the old routing')
      assert.equal(await r.get(k2), 'two')
      assert.equal(await g2.exists(k1), 0, 'no key was moved')
    } finally {
      await writeRaw([{id: s1, state: 'online', group: 1}, {id: s2, state: 'online', group: 2}])
    }
    await waitFor('proxy applies the repaired topology', async () => {
      const st = await p.status()
      return st.epoch === bad + 1 && !st.topologyError
    }, 10000)
    const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; error?: string}[]
    assert.equal(list.find((x) => x.id === p.id)?.error, undefined)
    assert.equal(await r.get(k1), 'one')
  })

  test('a killed backend: clients get -ERR backend ... unavailable, the proxy stays up and recovers', async () => {
    const r = await RawClient.connect(p.port)
    const k1 = keyIn(c, 1, 'kill')
    const k2 = keyIn(c, 2, 'kill')
    const addr2 = c.groups[1]!.addr
    try {
      assert.equal(await r.call('SET', k2, 'x'), 'OK')
      await c.killGroup(2)
      const errRe = new RegExp(`^ERR backend ${addr2.replace(/\./g, '\\.')} unavailable`)
      await waitFor('group 2 reported unavailable', async () => isErr(await r.call('GET', k2), errRe), 5000)
      // Many requests in flight and queued meanwhile: each gets an answer.
      r.write(Buffer.concat(Array.from({length: 200}, (_, i) => cmd('SET', i % 2 ? k1 : k2, 'v'))))
      const replies = await r.read(200)
      replies.forEach((rep, i) => assert.ok(i % 2 ? rep === 'OK' : isErr(rep, errRe), `reply ${i}: ${str(rep)}`))
      assert.ok(isErr(await r.call('MGET', k1, k2), errRe))
      assert.equal(str(await r.call('GET', k1)), 'v', 'group 1 still served')
      assert.equal(p.proc.child.exitCode, null, 'proxy is alive')
      const down = (await p.status()).backends as {addr: string; state: string}[]
      assert.notEqual(down.find((b) => b.addr === addr2)?.state, 'up')
      await c.restartGroup(2)
      g2 = c.groups[1]!.client()
      await waitFor('group 2 served again', async () => (await r.call('SET', k2, 'back')) === 'OK', 10000, 100)
      assert.equal(await g2.get(k2), 'back')
      assert.equal(str(await r.call('GET', k2)), 'back')
    } finally {
      r.close()
    }
  })
})

describe('proxy with the etcd coordinator', () => {
  let c: Cluster
  before(async () => {
    c = await startCluster({groups: 2, proxies: 2, coordinator: 'etcd'})
  })
  after(async () => {
    await c?.stop()
  })

  test('routes by slot and splits MGET across groups, through both proxies', async () => {
    const [a, b] = [c.proxies[0]!.client(), c.proxies[1]!.client()]
    const keys = Array.from({length: 40}, (_, i) => `etcd:${i}`)
    await a.mset(...keys.flatMap((k) => [k, k]))
    assert.deepEqual(await b.mget(...keys), keys)
    const g = [c.groups[0]!.client(), c.groups[1]!.client()]
    for (const k of keys) assert.equal(await g[c.groupOf(k) - 1]!.get(k), k)
    const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; state: string}[]
    assert.deepEqual(list.map((x) => [x.id, x.state]), [['proxy_1', 'online'], ['proxy_2', 'online']])
  })

  test('offline/online and a forced range move, live', async () => {
    const p = c.proxies[0]!
    const r = await RawClient.connect(p.port)
    try {
      await c.cliOk(['proxy', 'offline', p.id])
      assert.ok(isErr(await r.call('GET', 'x'), /^ERR proxy is offline$/))
      await c.cliOk(['proxy', 'online', p.id])
      const key = keyIn(c, 2, 'emv')
      const s = String(slotOf(key))
      await c.groups[0]!.client().set(key, 'g1')
      await c.groups[1]!.client().set(key, 'g2')
      assert.equal(str(await r.call('GET', key)), 'g2')
      await c.cliOk(['slot', 'range-set', s, s, '1', 'online', '--force'])
      await waitFor('served from group 1', async () => str(await r.call('GET', key)) === 'g1', 10000)
      const other = await RawClient.connect(c.proxies[1]!.port)
      await waitFor('second proxy too', async () => str(await other.call('GET', key)) === 'g1', 10000)
      other.close()
    } finally {
      r.close()
    }
  })
})
