import assert from 'node:assert/strict'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {after, test} from 'node:test'
import {DEFAULT_CONFIG, loadConfig, parseIni, proxyPassword} from '../src/config.js'
import {ValidationError} from '../src/errors.js'
import {removeDir, tempDir} from './harness/process.js'

const dir = tempDir('config')
const startCwd = process.cwd()
after(() => {
  process.chdir(startCwd)
  removeDir(dir)
})

test('parseIni: key=value lines, comments, sections ignored', () => {
  const cfg = parseIni(
    [
      '# a comment',
      '; another',
      '[rstore]',
      'product = shop   # trailing comment',
      'coordinator=etcd',
      'coordinator_addr=http://10.0.0.1:2379,http://10.0.0.2:2379',
      'dashboard_addr=0.0.0.0:18087',
      'checkpoint_dir=/var/lib/rstore',
      '',
    ].join('\n'),
    'x.ini',
  )
  assert.deepEqual(cfg, {
    product: 'shop',
    coordinator: 'etcd',
    coordinatorAddr: 'http://10.0.0.1:2379,http://10.0.0.2:2379',
    dashboardAddr: '0.0.0.0:18087',
    checkpointDir: '/var/lib/rstore',
  })
})

test('parseIni: an unknown key or a line without = is an error naming file and line', () => {
  assert.throws(() => parseIni('product=a\nprodcut=b\n', 'c.ini'), (e: Error) => e instanceof ValidationError && /c\.ini:2: unknown setting 'prodcut'/.test(e.message))
  assert.throws(() => parseIni('product\n', 'c.ini'), /c\.ini:1: expected key=value/)
})

test('loadConfig: defaults without a file; ./config.ini when present; -c FILE; flags override', () => {
  const empty = join(dir, 'empty')
  mkdirSync(empty)
  process.chdir(empty)
  const d = loadConfig(undefined)
  assert.equal(d.product, DEFAULT_CONFIG.product)
  assert.equal(d.coordinator, 'embedded')
  assert.equal(d.coordinatorAddr, resolve(empty, 'checkpoints/meta.db'))

  const withIni = join(dir, 'cwd')
  mkdirSync(withIni)
  writeFileSync(join(withIni, 'config.ini'), 'product=fromcwd\ncoordinator_addr=meta/m.db\n')
  process.chdir(withIni)
  const c = loadConfig(undefined)
  assert.equal(c.product, 'fromcwd')
  assert.equal(c.coordinatorAddr, join(withIni, 'meta/m.db'))

  // -c FILE: relative paths are relative to the file's folder, not the working directory.
  const other = join(dir, 'other')
  mkdirSync(other)
  writeFileSync(join(other, 'rs.ini'), 'product=fromfile\ncheckpoint_dir=cp\ncoordinator=etcd\ncoordinator_addr=http://127.0.0.1:2379\n')
  const f = loadConfig(join(other, 'rs.ini'))
  assert.equal(f.product, 'fromfile')
  assert.equal(f.coordinator, 'etcd')
  assert.equal(f.coordinatorAddr, 'http://127.0.0.1:2379')
  assert.equal(f.checkpointDir, join(other, 'cp'))

  const o = loadConfig(join(other, 'rs.ini'), {product: 'flag', coordinator: 'embedded', coordinatorAddr: '/tmp/x.db', checkpointDir: undefined})
  assert.equal(o.product, 'flag')
  assert.equal(o.coordinator, 'embedded')
  assert.equal(o.coordinatorAddr, '/tmp/x.db')
  assert.equal(o.checkpointDir, join(other, 'cp'), 'an undefined override keeps the file value')
})

test('loadConfig: bad values are refused with a readable error', () => {
  const p = join(dir, 'bad.ini')
  writeFileSync(p, 'coordinator=zookeeper\n')
  assert.throws(() => loadConfig(p), /invalid coordinator 'zookeeper': use embedded or etcd/)
  writeFileSync(p, 'product=a/b\n')
  assert.throws(() => loadConfig(p), /invalid product 'a\/b'/)
  writeFileSync(p, 'colour=blue\n')
  assert.throws(() => loadConfig(p), /unknown setting 'colour'/)
  assert.throws(() => loadConfig(join(dir, 'missing.ini')), /config file .*missing\.ini' does not exist/)
})

test('proxyPassword: --proxy-auth (warned), else RSTORE_PROXY_AUTH, else proxy_auth_file (relative to the config file)', () => {
  const sub = join(dir, 'auth')
  mkdirSync(sub, {recursive: true})
  writeFileSync(join(sub, 'pw.txt'), 's3cret\n')
  writeFileSync(join(sub, 'empty.txt'), '')
  writeFileSync(join(sub, 'config.ini'), 'proxy_auth_file=pw.txt\n')
  const cfg = loadConfig(join(sub, 'config.ini'))
  assert.equal(cfg.proxyAuthFile, join(sub, 'pw.txt'))
  const warned: string[] = []
  const warn = (l: string) => warned.push(l)
  assert.equal(proxyPassword(cfg, undefined, warn, {}), 's3cret', 'from the file, its newline dropped')
  assert.equal(proxyPassword(cfg, undefined, warn, {RSTORE_PROXY_AUTH: 'env-pw'}), 'env-pw', 'the environment wins over the file')
  assert.deepEqual(warned, [])
  assert.equal(proxyPassword(cfg, 'flag-pw', warn, {RSTORE_PROXY_AUTH: 'env-pw'}), 'flag-pw')
  assert.match(warned[0]!, /ps/)
  assert.equal(proxyPassword({...DEFAULT_CONFIG}, undefined, warn, {}), undefined, 'none: no AUTH')
  assert.throws(() => proxyPassword({...cfg, proxyAuthFile: join(sub, 'empty.txt')}, undefined, warn, {}), (e: unknown) => e instanceof ValidationError && /is empty/.test(e.message))
  assert.throws(() => proxyPassword({...cfg, proxyAuthFile: join(sub, 'nope.txt')}, undefined, warn, {}), (e: unknown) => e instanceof ValidationError && /cannot read proxy_auth_file/.test(e.message))
})
