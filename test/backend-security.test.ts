// The proxy's backend connections run as a Redis ACL user that cannot run the refused administrative
// commands, even from a script (bug 4); backends with passwords and TLS work for the proxy, the mover
// and the admin commands; the proxy serves TLS to its clients. Real redis-server processes.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {Redis} from 'ioredis'
import {slotOf} from '../src/topology/slots.js'
import {startCluster, type Cluster} from './harness/cluster.js'
import {freePort, waitFor} from './harness/process.js'
import {startRedis, type RedisServer} from './harness/redis.js'

/** A key whose slot is in [from, to]. */
function keyIn(from: number, to: number, prefix = 'k'): string {
  for (let i = 0; ; i++) {
    const s = slotOf(`${prefix}${i}`)
    if (s >= from && s <= to) return `${prefix}${i}`
  }
}

const REFUSED_BY_ACL = /can't run this command|NOPERM/

describe('EVAL cannot run what the proxy refuses (bug 4)', () => {
  let c: Cluster
  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
  })
  after(async () => {
    await c?.stop()
  })

  test('FLUSHALL, FLUSHDB, SWAPDB, SELECT, MOVE, KEYS, MIGRATE elsewhere inside a script get NOPERM; the data stays', async () => {
    const r = c.proxies[0]!.client()
    const key = keyIn(0, 511)
    assert.equal(c.groupOf(key), 1)
    await r.set(key, 'v1')
    await r.set(keyIn(512, 1023), 'v2')
    const scripts = [
      "return redis.call('FLUSHALL')",
      "return redis.call('FLUSHDB')",
      "return redis.call('SWAPDB', 0, 1)",
      "return redis.call('SELECT', 1)",
      "return redis.call('MOVE', KEYS[1], 1)",
      "return redis.call('KEYS', '*')",
      "return redis.call('MIGRATE', '10.255.255.1', '6379', KEYS[1], 0, 100)",
    ]
    for (const lua of scripts) {
      await assert.rejects(r.eval(lua, 1, key), REFUSED_BY_ACL, lua)
    }
    assert.equal(await r.get(key), 'v1')
    const direct = c.groups[0]!.client()
    assert.equal(await direct.dbsize(), 1, 'group 1 still has its key')
    assert.equal(await direct.get(key), 'v1')
    assert.equal(await c.groups[1]!.client().dbsize(), 1, 'group 2 still has its key')
    // Ordinary scripts still work, writes included.
    assert.equal(await r.eval("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])", 1, key, 'v3'), 'v3')
  })

  test('server add sets the user up idempotently; the proxy logs in as it', async () => {
    const direct = c.groups[0]!.client()
    const users = (await direct.call('ACL', 'USERS')) as string[]
    assert.ok(users.includes('rstore-proxy'), users.join(','))
    const clients = String(await direct.call('CLIENT', 'LIST'))
    assert.match(clients, /user=rstore-proxy/)
    // A second `server add` of the same kind (a slave on a fresh server) reapplies the same rules.
    const s = await startRedis()
    try {
      await c.cliOk(['server', 'add', '1', s.addr, 'slave'])
      const rules = (await s.client().call('ACL', 'GETUSER', 'rstore-proxy')) as unknown[]
      assert.ok(rules.length > 0)
      await c.cliOk(['server', 'remove', '1', s.addr])
    } finally {
      await s.stop()
    }
  })

  test('a key read during a migration still moves on access (the user may MIGRATE to group hosts)', async () => {
    const r = c.proxies[0]!.client()
    const keys = Array.from({length: 200}, (_, i) => `mk${i}`).filter((k) => slotOf(k) <= 40)
    for (const k of keys) await r.set(k, k)
    const reads = (async () => {
      for (let round = 0; round < 20; round++) for (const k of keys) assert.equal(await r.get(k), k)
    })()
    await c.cliOk(['migrate', '0', '40', '2', '--json'], {timeoutMs: 60_000})
    await reads
    for (const k of keys) assert.equal(await r.get(k), k)
    assert.equal(await c.groups[1]!.client().exists(...keys), keys.length)
    // A slot left migrating with no mover: the proxy itself MIGRATEs the key (as rstore-proxy) on access.
    const key = keyIn(600, 1023, 'onaccess')
    await r.set(key, 'v')
    const store = await c.openStore()
    const epoch = await store.update(() => ({slots: [{id: slotOf(key), state: 'migrating', group: 1, from: 2}]}))
    await waitFor('proxy applies the migrating slot', async () => Number((await c.proxies[0]!.status()).epoch) >= epoch, 5000)
    assert.equal(await r.get(key), 'v')
    assert.equal(await c.groups[0]!.client().get(key), 'v', 'moved to group 1 by the proxy')
    assert.equal(await c.groups[1]!.client().exists(key), 0)
  })
})

describe('password-protected backends', () => {
  let c: Cluster
  const servers: RedisServer[] = []
  const admin = (s: RedisServer) => {
    const r = new Redis({host: s.host, port: s.port, username: 'admin', password: 'adminpw', maxRetriesPerRequest: 1})
    r.on('error', () => {})
    return r
  }
  before(async () => {
    c = await startCluster({groups: 0, proxies: 0, slots: 'none'})
    for (let i = 0; i < 2; i++) {
      const s = await startRedis(['--user', 'admin', 'on', '>adminpw', '~*', '&*', '+@all'])
      servers.push(s)
      // From now on nothing gets in without a password.
      await s.client().call('ACL', 'SETUSER', 'default', 'off')
    }
    const pwFile = join(c.dir, 'backend.pass')
    writeFileSync(pwFile, 'adminpw\n', {mode: 0o600})
    process.env.RSTORE_BACKEND_USER = 'admin'
    process.env.RSTORE_BACKEND_PASSWORD_FILE = pwFile
  })
  after(async () => {
    delete process.env.RSTORE_BACKEND_USER
    delete process.env.RSTORE_BACKEND_PASSWORD_FILE
    await c?.stop()
    for (const s of servers) await s.stop()
  })

  test('a wrong password is one readable line and a non-zero exit', async () => {
    const res = await c.cli(['server', 'add', '1', `redis://admin:wrong@${servers[0]!.addr}`, 'master'])
    assert.notEqual(res.code, 0)
    const lines = res.stderr.trim().split('\n')
    assert.equal(lines.length, 1, res.stderr)
    assert.match(lines[0]!, /WRONGPASS/)
    assert.doesNotMatch(res.stderr, /wrong/, 'the password is not echoed')
  })

  test('server add, slots, the proxy and the mover work with the password from a file', async () => {
    await c.cliOk(['server', 'add', '1', servers[0]!.addr, 'master'])
    await c.cliOk(['server', 'add', '2', `redis://admin:adminpw@${servers[1]!.addr}`, 'master'])
    await c.cliOk(['slot', 'range-set', '0', '511', '1', 'online'])
    await c.cliOk(['slot', 'range-set', '512', '1023', '2', 'online'])
    const p = await c.startProxy()
    const r = p.client()
    const keys = Array.from({length: 300}, (_, i) => `pk${i}`)
    for (const k of keys) await r.set(k, k)
    await assert.rejects(r.eval("return redis.call('FLUSHALL')", 1, keys[0]!), REFUSED_BY_ACL)
    await c.cliOk(['migrate', '0', '100', '2', '--json'], {timeoutMs: 60_000})
    for (const k of keys) assert.equal(await r.get(k), k)
    const moved = keys.filter((k) => slotOf(k) <= 100)
    assert.ok(moved.length > 0)
    const a2 = admin(servers[1]!)
    try {
      assert.equal(await a2.exists(...moved), moved.length, 'moved keys are on group 2')
    } finally {
      a2.disconnect()
    }
  })
})

describe('TLS backends and a TLS proxy', () => {
  let c: Cluster
  const servers: RedisServer[] = []
  let ca = ''
  const tlsPorts: number[] = []
  before(async () => {
    c = await startCluster({groups: 0, proxies: 0, slots: 'none'})
    ca = join(c.dir, 'ca.pem')
    const o = (...args: string[]) => execFileSync('openssl', args, {cwd: c.dir, stdio: 'pipe'})
    o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=rstore test CA')
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1')
    writeFileSync(join(c.dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    o('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'san.ext')
    for (let i = 0; i < 2; i++) {
      const tlsPort = await freePort()
      tlsPorts.push(tlsPort)
      servers.push(
        await startRedis([
          '--tls-port', String(tlsPort), '--tls-cert-file', join(c.dir, 'srv.pem'), '--tls-key-file', join(c.dir, 'srv.key'),
          '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no',
        ]),
      )
    }
    process.env.RSTORE_BACKEND_TLS_CA = ca
  })
  after(async () => {
    delete process.env.RSTORE_BACKEND_TLS_CA
    await c?.stop()
    for (const s of servers) await s.stop()
  })

  test('rediss:// servers: admin, proxy (serving TLS itself) and mover', async () => {
    // Plain redis:// while TLS is configured is refused before anything is written.
    const plain = await c.cli(['server', 'add', '1', `redis://127.0.0.1:${tlsPorts[0]}`, 'master'])
    assert.notEqual(plain.code, 0)
    assert.match(plain.stderr, /use rediss:\/\//)
    await c.cliOk(['server', 'add', '1', `rediss://127.0.0.1:${tlsPorts[0]}`, 'master'])
    await c.cliOk(['server', 'add', '2', `rediss://127.0.0.1:${tlsPorts[1]}`, 'master'])
    await c.cliOk(['slot', 'range-set', '0', '511', '1', 'online'])
    await c.cliOk(['slot', 'range-set', '512', '1023', '2', 'online'])
    const p = await c.startProxy({args: ['--tls-cert', join(c.dir, 'srv.pem'), '--tls-key', join(c.dir, 'srv.key')]})
    const {readFileSync} = await import('node:fs')
    const r = new Redis({host: '127.0.0.1', port: p.port, tls: {ca: readFileSync(ca)}, maxRetriesPerRequest: 1})
    r.on('error', () => {})
    try {
      const keys = Array.from({length: 200}, (_, i) => `tk${i}`)
      for (const k of keys) await r.set(k, k)
      await assert.rejects(r.eval("return redis.call('FLUSHALL')", 1, keys[0]!), REFUSED_BY_ACL)
      await c.cliOk(['migrate', '0', '100', '2', '--json'], {timeoutMs: 60_000})
      for (const k of keys) assert.equal(await r.get(k), k)
      // The proxy's own connections to the servers are the TLS ones (recorded port = TLS port).
      const list = String(await servers[1]!.client().call('CLIENT', 'LIST'))
      assert.match(list, /user=rstore-proxy/)
    } finally {
      r.disconnect()
    }
    // A plain-TCP client to the TLS proxy does not get served.
    const plainClient = new Redis({host: '127.0.0.1', port: p.port, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 1000})
    plainClient.on('error', () => {})
    await assert.rejects(plainClient.ping())
    plainClient.disconnect()
  })
})

describe('an ACL user the operator names', () => {
  let c: Cluster
  let s: RedisServer
  before(async () => {
    c = await startCluster({groups: 0, proxies: 0, slots: 'none'})
    s = await startRedis()
    await s.client().call('ACL', 'SETUSER', 'ops', 'on', '>opspw', '~*', '&*', '+@all', '-flushall')
    process.env.RSTORE_PROXY_BACKEND_USER = 'ops'
    process.env.RSTORE_PROXY_BACKEND_PASSWORD = 'opspw'
  })
  after(async () => {
    delete process.env.RSTORE_PROXY_BACKEND_USER
    delete process.env.RSTORE_PROXY_BACKEND_PASSWORD
    await c?.stop()
    await s?.stop()
  })

  test('server add checks it logs in and leaves it alone; the proxy runs as it', async () => {
    await c.cliOk(['server', 'add', '1', s.addr, 'master'])
    await c.cliOk(['slot', 'range-set', '0', '1023', '1', 'online'])
    const users = (await s.client().call('ACL', 'USERS')) as string[]
    assert.deepEqual(users.sort(), ['default', 'ops'])
    const r = (await c.startProxy()).client()
    await r.set('a', '1')
    await assert.rejects(r.eval("return redis.call('FLUSHALL')", 1, 'a'), REFUSED_BY_ACL)
    assert.equal(await s.client().get('a'), '1')
    assert.match(String(await s.client().call('CLIENT', 'LIST')), /user=ops/)
    // A wrong password for the named user: server add refuses, one line.
    process.env.RSTORE_PROXY_BACKEND_PASSWORD = 'nope'
    const s2 = await startRedis()
    try {
      await s2.client().call('ACL', 'SETUSER', 'ops', 'on', '>opspw', '~*', '+@all')
      const res = await c.cli(['server', 'add', '2', s2.addr, 'master'])
      assert.notEqual(res.code, 0)
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr)
      assert.match(res.stderr, /WRONGPASS/)
    } finally {
      process.env.RSTORE_PROXY_BACKEND_PASSWORD = 'opspw'
      await s2.stop()
    }
  })
})

// Needs src/proxy/dispatch.ts to send `...conn.migrateAuth()` before KEYS in its on-access MIGRATE
// (moveKeysThen); until then the source cannot log in to a password-protected target.
describe('password-protected backends: a key read during a migration', {todo: 'dispatch.ts on-access MIGRATE sends no AUTH2 yet'}, () => {
  let c: Cluster
  const servers: RedisServer[] = []
  before(async () => {
    c = await startCluster({groups: 0, proxies: 0, slots: 'none'})
    for (let i = 0; i < 2; i++) {
      const s = await startRedis(['--user', 'admin', 'on', '>adminpw', '~*', '&*', '+@all'])
      servers.push(s)
      await s.client().call('ACL', 'SETUSER', 'default', 'off')
    }
    process.env.RSTORE_BACKEND_USER = 'admin'
    process.env.RSTORE_BACKEND_PASSWORD = 'adminpw'
  })
  after(async () => {
    delete process.env.RSTORE_BACKEND_USER
    delete process.env.RSTORE_BACKEND_PASSWORD
    await c?.stop()
    for (const s of servers) await s.stop()
  })

  test('moves on access', async () => {
    await c.cliOk(['server', 'add', '1', servers[0]!.addr, 'master'])
    await c.cliOk(['server', 'add', '2', servers[1]!.addr, 'master'])
    await c.cliOk(['slot', 'range-set', '0', '1023', '1', 'online'])
    const r = (await c.startProxy()).client()
    const key = keyIn(0, 1023, 'ak')
    await r.set(key, 'v')
    // The slot turns migrating 1 -> 2 with no mover: the proxy moves the key itself when it is read.
    const store = await c.openStore()
    await store.update(() => ({slots: [{id: slotOf(key), state: 'migrating', group: 2, from: 1}]}))
    const epoch = (await store.load()).epoch
    await waitFor('proxy applies the migrating slot', async () => Number((await c.proxies[0]!.status()).epoch) >= epoch, 5000)
    assert.equal(await r.get(key), 'v')
  })
})
