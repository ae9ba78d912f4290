/**
 * The embedded coordinator's file is created by `slot init` only: every other command refuses a
 * missing file with one line and a non-zero exit, and creates nothing (a deleted file or a wrong
 * path would otherwise become a second, empty coordinator beside the one a running proxy still uses).
 */
import assert from 'node:assert/strict'
import {existsSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {runCli, startCluster, type Cluster} from './harness/cluster.js'
import {freePort, removeDir, tempDir} from './harness/process.js'

const MISSING = /^Error: coordinator file (\S+) does not exist; run 'rstore slot init' first, or check --coordinator-addr\n$/

describe('a missing embedded coordinator file', () => {
  let c: Cluster
  let dir: string

  before(async () => {
    c = await startCluster({groups: 1, proxies: 1})
    dir = tempDir('coordfile')
  })
  after(async () => {
    await c?.stop()
    if (dir) removeDir(dir)
  })

  test('deleted under a running proxy: slot list / proxy list refuse it and create no new file', async () => {
    const file = join(c.dir, 'meta.db')
    assert.match(await c.cliOk(['proxy', 'list']), /proxy_1/)
    rmSync(file)
    for (const args of [['slot', 'list'], ['proxy', 'list'], ['server', 'list'], ['proxy', 'offline', 'proxy_1']]) {
      const r = await c.cli(args)
      assert.notEqual(r.code, 0, `${args.join(' ')} must fail`)
      const m = MISSING.exec(r.stderr)
      assert.ok(m, `${args.join(' ')}: one clear line, got ${JSON.stringify(r.stderr)}`)
      assert.equal(m[1], file)
      assert.equal(r.stdout, '')
      assert.equal(existsSync(file), false, `${args.join(' ')} created ${file}`)
    }
    // The proxy keeps the file it opened and keeps serving.
    assert.equal(await c.proxies[0]!.client().set('still', 'served'), 'OK')
  })

  test('a fresh path: server add and proxy start refuse, slot init creates the file (and its folder)', async () => {
    const file = join(dir, 'sub', 'meta.db')
    const flags = ['--coordinator', 'embedded', '--coordinator-addr', file, '--product', 'p']
    const add = await runCli(['server', 'add', '1', '127.0.0.1:1', 'master', ...flags], {cwd: dir})
    assert.notEqual(add.code, 0)
    assert.match(add.stderr, MISSING)
    const [port, httpPort] = [await freePort(), await freePort()]
    const proxy = await runCli(['proxy', 'start', '--addr', `127.0.0.1:${port}`, '--http-addr', `127.0.0.1:${httpPort}`, ...flags], {cwd: dir})
    assert.notEqual(proxy.code, 0)
    assert.match(proxy.stderr, MISSING)
    assert.equal(existsSync(join(dir, 'sub')), false, 'no folder created either')
    const init = await runCli(['slot', 'init', ...flags], {cwd: dir})
    assert.equal(init.code, 0, init.stderr)
    assert.ok(existsSync(file))
    const list = await runCli(['slot', 'list', ...flags], {cwd: dir})
    assert.equal(list.code, 0, list.stderr)
  })
})
