import {type ConfigKind, type DbGroup, type DbUnit, REF_TYPES, REPLICATE_MODES, type Rule, RuleConfigError, type Shard, SHARD_TYPES, UNIT_TYPES, type UnitType} from './rules-model.js'

/** Normalization of rules-config input (JSON from the CLI, the API or the coordinator) into the model. */

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$/

/** Accepts camelCase and the Go schema's PascalCase ("ShardMap") keys. */
function camelKeys(input: unknown, what: string): Record<string, unknown> {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw new RuleConfigError('bad-field', `${what} must be a JSON object`)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
    out[k.length ? k[0].toLowerCase() + k.slice(1) : k] = v
  }
  return out
}

function allowOnly(o: Record<string, unknown>, allowed: string[], what: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new RuleConfigError('bad-field', `${what}: unknown field '${k}' (known: ${allowed.join(', ')})`)
  }
}

export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new RuleConfigError('bad-name', `${what}: name ${JSON.stringify(name)} is not valid (1-100 of letters, digits, _ . : -, not starting with a symbol)`)
  }
  return name
}

function str(o: Record<string, unknown>, k: string, what: string, def?: string): string {
  const v = o[k]
  if (v === undefined || v === null) {
    if (def !== undefined) return def
    throw new RuleConfigError('bad-field', `${what}: ${k} is required`)
  }
  if (typeof v !== 'string') throw new RuleConfigError('bad-field', `${what}: ${k} must be a string`)
  return v
}

function int(o: Record<string, unknown>, k: string, what: string, def: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
  let v = o[k]
  if (v === undefined || v === null) {
    if (def !== undefined) return def
    throw new RuleConfigError('bad-field', `${what}: ${k} is required`)
  }
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) v = Number(v)
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RuleConfigError('bad-field', `${what}: ${k} must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`)
  }
  return v
}

function bool(o: Record<string, unknown>, k: string, what: string, def: boolean): boolean {
  const v = o[k]
  if (v === undefined || v === null) return def
  if (v === 'true') return true
  if (v === 'false') return false
  if (typeof v !== 'boolean') throw new RuleConfigError('bad-field', `${what}: ${k} must be true or false`)
  return v
}

function oneOf<T extends string>(o: Record<string, unknown>, k: string, allowed: readonly T[], what: string, def?: T): T {
  const v = o[k] ?? def
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new RuleConfigError('bad-field', `${what}: ${k} must be one of ${allowed.join(', ')}${v === undefined ? '' : ` (got ${JSON.stringify(v)})`}`)
  }
  return v as T
}

const URL_SCHEMES: Record<UnitType, string[]> = {redis: ['redis:'], mysql: ['mysql:', 'mariadb:'], postgres: ['postgres:', 'postgresql:']}

export function normalizeDbUnit(input: unknown): DbUnit {
  const o = camelKeys(input, 'dbunit')
  const name = checkName(o.name, 'dbunit')
  const what = `dbunit ${name}`
  allowOnly(o, ['name', 'type', 'enable', 'server', 'port', 'url', 'maxIdle', 'maxOpen', 'maxLifetime', 'mark'], what)
  const type = oneOf(o, 'type', UNIT_TYPES, what)
  const u: DbUnit = {
    name,
    type,
    enable: bool(o, 'enable', what, true),
    maxIdle: int(o, 'maxIdle', what, 10, 0),
    maxOpen: int(o, 'maxOpen', what, 10, 1),
    maxLifetime: int(o, 'maxLifetime', what, 60, 0),
    mark: str(o, 'mark', what, ''),
  }
  const url = o.url === undefined || o.url === null || o.url === '' ? undefined : str(o, 'url', what)
  const server = o.server === undefined || o.server === null || o.server === '' ? undefined : str(o, 'server', what)
  if (url !== undefined) {
    if (server !== undefined || o.port !== undefined) throw new RuleConfigError('bad-field', `${what}: give either url or server/port, not both`)
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new RuleConfigError('bad-field', `${what}: url '${url}' is not a URL (e.g. ${exampleUrl(type)})`)
    }
    if (!URL_SCHEMES[type].includes(parsed.protocol)) {
      throw new RuleConfigError('type-mismatch', `${what}: a ${type} unit needs a ${URL_SCHEMES[type].join(' or ')}// url (e.g. ${exampleUrl(type)})`)
    }
    if (!parsed.hostname) throw new RuleConfigError('bad-field', `${what}: url '${url}' has no host`)
    if (type !== 'redis' && parsed.pathname.replace(/^\//, '') === '') throw new RuleConfigError('bad-field', `${what}: url '${url}' names no database`)
    u.url = url
  } else if (type === 'redis') {
    if (server === undefined) throw new RuleConfigError('bad-field', `${what}: a redis unit needs server (and port) or url`)
    let host = server
    let port = o.port === undefined || o.port === null ? undefined : int(o, 'port', what, undefined, 1, 65535)
    const m = /^(.+):(\d{1,5})$/.exec(server)
    if (m && port === undefined) {
      host = m[1]
      port = Number(m[2])
    }
    if (port === undefined) port = 6379
    if (port < 1 || port > 65535 || host.length < 1) throw new RuleConfigError('bad-field', `${what}: bad server '${server}'`)
    u.server = host
    u.port = port
  } else {
    throw new RuleConfigError('bad-field', `${what}: a ${type} unit needs url (e.g. ${exampleUrl(type)})`)
  }
  return u
}

function exampleUrl(type: UnitType): string {
  return type === 'redis' ? 'redis://127.0.0.1:6379' : type === 'mysql' ? 'mysql://user:pass@127.0.0.1:3306/db' : 'postgres://user:pass@127.0.0.1:5432/db'
}

/** The store URL of a unit (with its pool settings as query parameters), for src/backends openStore(). */
export function unitStoreUrl(u: DbUnit): string {
  const base = u.url ?? `redis://${u.server?.includes(':') ? `[${u.server}]` : u.server}:${u.port}`
  if (u.type === 'redis') return base
  const url = new URL(base)
  url.searchParams.set('maxIdle', String(u.maxIdle))
  url.searchParams.set('maxOpen', String(u.maxOpen))
  url.searchParams.set('maxLifetime', String(u.maxLifetime))
  return url.toString()
}

export function normalizeDbGroup(input: unknown): DbGroup {
  const o = camelKeys(input, 'dbgroup')
  const name = checkName(o.name, 'dbgroup')
  const what = `dbgroup ${name}`
  allowOnly(o, ['name', 'type', 'enable', 'replicateMode', 'items', 'cache', 'mark'], what)
  const items = o.items
  if (!Array.isArray(items) || !items.length) throw new RuleConfigError('bad-field', `${what}: items must be a non-empty list of {name, isMaster, readWeight}`)
  const g: DbGroup = {
    name,
    type: oneOf(o, 'type', UNIT_TYPES, what),
    enable: bool(o, 'enable', what, true),
    replicateMode: oneOf(o, 'replicateMode', REPLICATE_MODES, what, 'writeall'),
    items: items.map((it, i) => {
      const io = camelKeys(it, `${what} item ${i + 1}`)
      const iw = `${what} item ${i + 1}`
      allowOnly(io, ['name', 'isMaster', 'readWeight'], iw)
      return {name: checkName(io.name, iw), isMaster: bool(io, 'isMaster', iw, true), readWeight: int(io, 'readWeight', iw, 1, 0, 1_000_000)}
    }),
    mark: str(o, 'mark', what, ''),
  }
  if (o.cache !== undefined && o.cache !== null && o.cache !== '') g.cache = checkName(o.cache, `${what} cache`)
  return g
}

export function normalizeShard(input: unknown): Shard {
  const o = camelKeys(input, 'shard')
  const name = checkName(o.name, 'shard')
  const what = `shard ${name}`
  allowOnly(o, ['name', 'shardType', 'shardMap', 'mark'], what)
  const map = o.shardMap
  if (!Array.isArray(map) || !map.length) throw new RuleConfigError('bad-field', `${what}: shardMap must be a non-empty list of {refType, refName, shardStr}`)
  return {
    name,
    shardType: oneOf(o, 'shardType', SHARD_TYPES, what, 'hash'),
    shardMap: map.map((it, i) => {
      const io = camelKeys(it, `${what} item ${i + 1}`)
      const iw = `${what} item ${i + 1}`
      allowOnly(io, ['refType', 'refName', 'shardStr'], iw)
      const shardStr = io.shardStr
      return {
        refType: oneOf(io, 'refType', REF_TYPES, iw, 'dbgroup'),
        refName: checkName(io.refName, iw),
        shardStr: typeof shardStr === 'number' ? String(shardStr) : str(io, 'shardStr', iw, ''),
      }
    }),
    mark: str(o, 'mark', what, ''),
  }
}

export function normalizeRule(input: unknown): Rule {
  const o = camelKeys(input, 'rule')
  const name = checkName(o.name, 'rule')
  const what = `rule ${name}`
  allowOnly(o, ['name', 'order', 'regexp', 'hashSlot', 'shardName', 'example', 'mark'], what)
  const r: Rule = {
    name,
    order: int(o, 'order', what, 0, -1_000_000_000, 1_000_000_000),
    regexp: str(o, 'regexp', what),
    hashSlot: int(o, 'hashSlot', what, 0, 0, 99),
    shardName: checkName(o.shardName, `${what} shardName`),
    example: str(o, 'example', what),
    mark: str(o, 'mark', what, ''),
  }
  if (!r.regexp.length) throw new RuleConfigError('bad-regex', `${what}: regexp is empty`)
  if (!r.example.length) throw new RuleConfigError('example-mismatch', `${what}: example is required (a key the rule must match)`)
  return r
}

export function normalize(kind: ConfigKind, input: unknown): DbUnit | DbGroup | Shard | Rule {
  switch (kind) {
    case 'dbunit':
      return normalizeDbUnit(input)
    case 'dbgroup':
      return normalizeDbGroup(input)
    case 'shard':
      return normalizeShard(input)
    case 'rule':
      return normalizeRule(input)
  }
}
