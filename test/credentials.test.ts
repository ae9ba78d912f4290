// Unit tests of the backend credential settings (no servers).
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {adminSecurity, authArgs, migrateAuthArgs, parseServerUrl, redact} from '../src/resp/credentials.js'
import {ValidationError} from '../src/errors.js'
import {removeDir, tempDir} from './harness/process.js'

test('admin credential from env, password from a file (trailing newline dropped)', () => {
  const dir = tempDir('cred')
  try {
    writeFileSync(join(dir, 'pw'), 's3cret\n')
    const sec = adminSecurity({RSTORE_BACKEND_USER: 'admin', RSTORE_BACKEND_PASSWORD_FILE: join(dir, 'pw')})
    assert.deepEqual(sec, {user: 'admin', password: 's3cret', tls: undefined})
    assert.deepEqual(authArgs(sec), ['AUTH', 'admin', 's3cret'])
    assert.deepEqual(migrateAuthArgs(sec), ['AUTH2', 'admin', 's3cret'])
    assert.throws(() => adminSecurity({RSTORE_BACKEND_PASSWORD_FILE: join(dir, 'missing')}), ValidationError)
    assert.equal(authArgs({}), undefined)
  } finally {
    removeDir(dir)
  }
})

test('server URLs: host:port recorded, URL credential used, TLS scheme must match the setting', () => {
  assert.deepEqual(parseServerUrl('127.0.0.1:6379', {}), {addr: '127.0.0.1:6379', security: {}})
  assert.deepEqual(parseServerUrl('redis://u:p%40ss@10.0.0.1:7000', {}), {addr: '10.0.0.1:7000', security: {user: 'u', password: 'p@ss'}})
  assert.throws(() => parseServerUrl('rediss://10.0.0.1:7000', {}), /RSTORE_BACKEND_TLS/)
  assert.throws(() => parseServerUrl('redis://10.0.0.1:7000', {tls: {}}), /use rediss/)
  assert.equal(parseServerUrl('rediss://10.0.0.1:7000', {tls: {}}).security.tls !== undefined, true)
  assert.throws(() => parseServerUrl('redis://u:secret@10.0.0.1', {}), (e: Error) => !e.message.includes('secret'))
  assert.equal(redact('redis://u:secret@h:1'), 'redis://u:***@h:1')
})
