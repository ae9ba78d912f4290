/**
 * The import directions of docs/architecture.md, checked on the sources: a module may import its own
 * folder and the folders of lower layers, never a higher layer or a peer of its own layer.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {dirname, join, normalize, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

/** Layer of each top-level part of src/ (lower numbers are lower layers); keep in step with docs/architecture.md. */
export const LAYERS: Record<string, number> = {
  errors: 0,
  topology: 1,
  config: 1,
  resp: 2,
  coord: 3,
  backends: 4,
  proxy: 5,
  migrate: 5,
  service: 6,
  cli: 7,
  http: 7,
  ha: 7,
  commands: 8,
}

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src')

function sources(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...sources(p))
    else if (name.endsWith('.ts')) out.push(p)
  }
  return out
}

/** The part of src/ a path is in: its first folder, or the file's name for top-level files. */
const partOf = (file: string) => relative(SRC, file).split(/[\\/]/)[0]!.replace(/\.[jt]s$/, '')

/** Imports (static, type-only and dynamic) of one source file that run against the layers. */
export function violations(file: string, text: string): string[] {
  const from = partOf(file)
  const out: string[] = []
  for (const m of text.matchAll(/(?:from\s+|import\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = normalize(join(dirname(file), m[1]!))
    if (relative(SRC, target).startsWith('..')) continue
    const to = partOf(target)
    if (to === from) continue
    const a = LAYERS[from]
    const b = LAYERS[to]
    if (a === undefined || b === undefined) out.push(`${relative(SRC, file)}: '${from}' or '${to}' has no layer in LAYERS`)
    else if (b >= a) out.push(`${relative(SRC, file)} imports ${m[1]} (${from} may not import ${to})`)
  }
  return out
}

test('every import in src/ runs down the layers of docs/architecture.md', () => {
  const found = sources(SRC).flatMap((f) => violations(f, readFileSync(f, 'utf8')))
  assert.deepEqual(found, [])
})

test('the layering check catches an import that runs the wrong way', () => {
  // A planted import, as a real one would look: the proxy reaching up into the service layer.
  const planted = "import {withTopologyStore} from '../service/context.js'\n"
  assert.deepEqual(violations(join(SRC, 'proxy', 'proxy.ts'), planted), ["proxy/proxy.ts imports ../service/context.js (proxy may not import service)"])
  assert.deepEqual(violations(join(SRC, 'migrate', 'mover.ts'), "import type {Proxy} from '../proxy/proxy.js'"), ["migrate/mover.ts imports ../proxy/proxy.js (migrate may not import proxy)"])
  assert.deepEqual(violations(join(SRC, 'cli', 'table.ts'), "import {x} from '../topology/model.js'"), [])
})

test('docs/architecture.md lists every layer of the check', () => {
  const doc = readFileSync(join(SRC, '..', 'docs', 'architecture.md'), 'utf8')
  for (const part of Object.keys(LAYERS)) assert.match(doc, new RegExp('`src/' + part + '(/|\\.ts)`'), `docs/architecture.md does not mention src/${part}`)
})
