/** The one error table: each code's exit status and HTTP status, as docs/architecture.md lists them. */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {ConflictError, dispositionOf, ERROR_TABLE, errorLine, NotFoundError, RstoreError, ValidationError} from '../src/errors.js'
import {BarrierTimeoutError} from '../src/migrate/barrier.js'

const DOC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'architecture.md')

test("docs/architecture.md's error table is ERROR_TABLE", () => {
  const rows = new Map<string, {exit: number; http: number}>()
  for (const m of readFileSync(DOC, 'utf8').matchAll(/^\| `(E[A-Z]+)` \| (\d+) \| (\d+) \|/gm)) rows.set(m[1]!, {exit: Number(m[2]), http: Number(m[3])})
  const table = Object.fromEntries(Object.entries(ERROR_TABLE).map(([code, d]) => [code, {exit: d.exit, http: d.http}]))
  assert.deepEqual(Object.fromEntries(rows), table)
})

test('errors carry their disposition and a hint rendered apart from the message', () => {
  const e = new ConflictError('slot 7 is migrating', "finish it with 'rstore migrate 7 7 2'")
  assert.equal(e.exitCode, 1)
  assert.equal(e.httpStatus, 409)
  assert.deepEqual(e.toJSON(), {code: 'ECONFLICT', message: 'slot 7 is migrating', hint: "finish it with 'rstore migrate 7 7 2'"})
  assert.equal(errorLine(e), "slot 7 is migrating; finish it with 'rstore migrate 7 7 2'")
  assert.equal(new ValidationError('bad slot').httpStatus, 400)
  assert.equal(new NotFoundError('no group 9').httpStatus, 404)
  assert.deepEqual(new NotFoundError('no group 9').toJSON(), {code: 'ENOTFOUND', message: 'no group 9'})
  assert.equal(new BarrierTimeoutError('proxy p1 did not acknowledge', []).exitCode, 3)
  assert.equal(new RstoreError('ESTOPPED', 'stopped').exitCode, 130)
  assert.deepEqual(dispositionOf('ENOSUCHCODE'), {exit: 1, http: 500, meaning: 'unexpected error'})
})
