// Runs every compiled test file with Node's built-in runner (Node 20 takes no globs).
import {spawnSync} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'

function findTests(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...findTests(p))
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}

const filter = process.argv.slice(2)
let files = findTests('dist/test').sort()
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)))
if (!files.length) {
  console.error('no test files found under dist/test')
  process.exit(1)
}
// A test without its own timeout that hangs fails after 10 minutes instead of holding up the run.
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', '--test-reporter=spec', ...files], {stdio: 'inherit'})
process.exit(res.status ?? 1)
