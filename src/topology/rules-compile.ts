import CRC32 from 'crc-32'
import {KetamaRing} from './ketama.js'
import {type ConfigKind, type DbGroup, type DbUnit, type RefType, RouteError, type Rule, RuleConfigError, type RulesConfig, type Shard, type ShardType} from './rules-model.js'
import {normalizeDbGroup, normalizeDbUnit, normalizeRule, normalizeShard} from './rules-normalize.js'

/** Compilation of a whole rules config (its validation as one) and the routing of a key through it. Pure. */

interface CompiledRule {
  rule: Rule
  re: RegExp
}

type CompiledShard =
  | {shard: Shard; type: 'hash' | 'mod'; byRemainder?: Map<string, number>}
  | {shard: Shard; type: 'range'; ranges: {start: bigint; end: bigint; index: number}[]}
  | {shard: Shard; type: 'ketama_hash'; ring: KetamaRing}

export interface ShardStep {
  shard: string
  shardType: ShardType
  /** Index of the chosen item in the shard's shardMap. */
  index: number
  shardStr: string
  refType: RefType
  refName: string
}

/** The path a key takes through the rules. */
export interface RoutePath {
  rule: string
  order: number
  /** The shard key (capture group hashSlot, or the whole key). */
  capture: string
  hashSlot: number
  chain: ShardStep[]
  dbgroup: string
}

export interface ReadableMember {
  unit: string
  weight: number
}

export class CompiledRules {
  readonly units = new Map<string, DbUnit>()
  readonly groups = new Map<string, DbGroup>()
  readonly shards = new Map<string, CompiledShard>()
  /** Sorted by order, then name. */
  readonly rules: CompiledRule[] = []

  constructor(readonly config: RulesConfig) {}

  /** True when the product routes by rules at all (any rule exists). */
  get requiresRules(): boolean {
    return this.rules.length > 0
  }

  /** The first rule (by order, then name) whose regexp matches the whole key, or undefined. */
  match(key: string | Buffer): {rule: Rule; capture: string} | undefined {
    const text = keyText(key)
    for (const cr of this.rules) {
      const m = cr.re.exec(text)
      if (!m) continue
      const cap = m[cr.rule.hashSlot]
      if (cap === undefined) {
        throw new RouteError(`key matches rule ${cr.rule.name} but its capture group ${cr.rule.hashSlot} took part in no match`)
      }
      return {rule: cr.rule, capture: cap}
    }
    return undefined
  }

  /** The route of key, or undefined when no rule matches. Throws RouteError when a rule matches but the shards cannot place it. */
  route(key: string | Buffer): RoutePath | undefined {
    const m = this.match(key)
    if (!m) return undefined
    return this.routeCapture(m.rule, m.capture)
  }

  /** Routes a shard key through a rule's shard tree. */
  routeCapture(rule: Rule, capture: string): RoutePath {
    const chain: ShardStep[] = []
    let shardName = rule.shardName
    for (;;) {
      const cs = this.shards.get(shardName)
      if (!cs) throw new RouteError(`shard ${shardName} does not exist`)
      if (chain.length > this.shards.size) throw new RouteError(`shard nesting loops at ${shardName}`)
      const index = pickShardItem(cs, capture)
      const item = cs.shard.shardMap[index]
      chain.push({shard: cs.shard.name, shardType: cs.shard.shardType, index, shardStr: item.shardStr, refType: item.refType, refName: item.refName})
      if (item.refType === 'dbgroup') {
        return {rule: rule.name, order: rule.order, capture, hashSlot: rule.hashSlot, chain, dbgroup: item.refName}
      }
      shardName = item.refName
    }
  }

  /** Members of a group that serve reads: enabled units with readWeight > 0. */
  readable(groupName: string): ReadableMember[] {
    const g = this.groups.get(groupName)
    if (!g) return []
    return g.items.filter((it) => it.readWeight > 0 && this.units.get(it.name)?.enable).map((it) => ({unit: it.name, weight: it.readWeight}))
  }

  /** The unit a read goes to, chosen by readWeight (rand in [0,1)); undefined when none is readable. */
  readUnit(groupName: string, rand: () => number = Math.random): string | undefined {
    return pickWeighted(this.readable(groupName), rand)
  }

  /** The units a write goes to, by the group's replicate mode (enabled masters only). */
  writeUnits(groupName: string): string[] {
    const g = this.groups.get(groupName)
    if (!g) return []
    const masters = g.items.filter((it) => it.isMaster && this.units.get(it.name)?.enable).map((it) => it.name)
    switch (g.replicateMode) {
      case 'writeall':
        return masters
      case 'writeone':
        return masters.slice(0, 1)
      case 'discard':
        return []
    }
  }
}

/** Picks one member with probability weight/total; weight 0 is never picked. */
export function pickWeighted(members: ReadableMember[], rand: () => number = Math.random): string | undefined {
  let total = 0
  for (const m of members) total += m.weight
  if (total <= 0) return undefined
  let r = Math.floor(rand() * total) // integer in [0, total)
  for (const m of members) {
    if (r < m.weight) return m.unit
    r -= m.weight
  }
  // only reachable if rand() returned 1: the last member that can be read
  for (let i = members.length - 1; i >= 0; i--) if (members[i].weight > 0) return members[i].unit
  return undefined
}

/** The key as text for regex matching: UTF-8 when it is valid UTF-8, else latin1 (one char per byte). */
export function keyText(key: string | Buffer): string {
  if (typeof key === 'string') return key
  const s = key.toString('utf8')
  return Buffer.byteLength(s) === key.length && !s.includes('\uFFFD') ? s : key.toString('latin1')
}

const INT_RE = /^-?\d+$/

function integerKey(capture: string, shard: Shard): bigint {
  if (!INT_RE.test(capture)) throw new RouteError(`shard ${shard.name} (${shard.shardType}) needs an integer shard key, got '${capture}'`)
  return BigInt(capture)
}

function pickShardItem(cs: CompiledShard, capture: string): number {
  const n = cs.shard.shardMap.length
  switch (cs.type) {
    case 'hash':
      return (CRC32.str(capture) >>> 0) % n
    case 'mod': {
      if (!cs.byRemainder) throw new RouteError(`shard ${cs.shard.name} is not compiled`)
      const k = integerKey(capture, cs.shard)
      const nn = BigInt(n)
      const rem = ((k % nn) + nn) % nn
      const idx = cs.byRemainder.get(rem.toString())
      if (idx === undefined) throw new RouteError(`shard ${cs.shard.name}: no item for remainder ${rem}`)
      return idx
    }
    case 'range': {
      const k = integerKey(capture, cs.shard)
      for (const r of cs.ranges) if (k >= r.start && k < r.end) return r.index
      const first = cs.ranges[0]
      const last = cs.ranges[cs.ranges.length - 1]
      throw new RouteError(`shard ${cs.shard.name}: shard key ${k} is outside its ranges [${first.start}, ${last.end})`)
    }
    case 'ketama_hash': {
      const idx = cs.ring.lookup(Buffer.from(capture))
      if (idx < 0) throw new RouteError(`shard ${cs.shard.name} has no items`)
      return idx
    }
  }
}

const RANGE_RE = /^\s*(-?\d+)\s*-\s*(-?\d+)\s*$/

function compileShard(s: Shard): CompiledShard {
  const what = `shard ${s.name}`
  const seen = new Set<string>()
  for (const it of s.shardMap) {
    const id = `${it.refType}:${it.refName}`
    if (s.shardType !== 'range' && seen.has(id)) throw new RuleConfigError('duplicate', `${what}: ${it.refType} ${it.refName} is listed twice`)
    seen.add(id)
  }
  switch (s.shardType) {
    case 'hash':
      return {shard: s, type: 'hash'}
    case 'mod': {
      const byRemainder = new Map<string, number>()
      const n = s.shardMap.length
      s.shardMap.forEach((it, i) => {
        const t = it.shardStr.trim()
        if (!/^\d+$/.test(t) || Number(t) >= n) {
          throw new RuleConfigError('bad-shard-str', `${what}: a mod item's shardStr is its remainder, 0 to ${n - 1} (got '${it.shardStr}')`)
        }
        const key = String(Number(t))
        if (byRemainder.has(key)) throw new RuleConfigError('duplicate', `${what}: remainder ${key} is listed twice`)
        byRemainder.set(key, i)
      })
      return {shard: s, type: 'mod', byRemainder}
    }
    case 'range': {
      const ranges = s.shardMap.map((it, index) => {
        const m = RANGE_RE.exec(it.shardStr)
        if (!m) throw new RuleConfigError('bad-shard-str', `${what}: a range item's shardStr is "start-end" (half-open, integers), got '${it.shardStr}'`)
        const start = BigInt(m[1])
        const end = BigInt(m[2])
        if (end <= start) throw new RuleConfigError('bad-shard-str', `${what}: range '${it.shardStr}' is empty or reversed (start must be < end; the end is excluded)`)
        return {start, end, index}
      })
      ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
      for (let i = 1; i < ranges.length; i++) {
        const prev = ranges[i - 1]
        const cur = ranges[i]
        const ps = s.shardMap[prev.index].shardStr
        const cs = s.shardMap[cur.index].shardStr
        if (cur.start < prev.end) throw new RuleConfigError('range-overlap', `${what}: ranges '${ps}' and '${cs}' overlap (ranges are half-open [start, end))`)
        if (cur.start > prev.end) throw new RuleConfigError('range-gap', `${what}: ranges '${ps}' and '${cs}' leave a gap [${prev.end}, ${cur.start})`)
      }
      return {shard: s, type: 'range', ranges}
    }
    case 'ketama_hash': {
      const items = s.shardMap.map((it) => {
        const t = it.shardStr.trim()
        if (t !== '' && !/^\d+$/.test(t)) throw new RuleConfigError('bad-shard-str', `${what}: a ketama_hash item's shardStr is its weight (an integer >= 1, empty = 1), got '${it.shardStr}'`)
        const weight = t === '' ? 1 : Number(t)
        if (weight < 1 || weight > 1000) throw new RuleConfigError('bad-shard-str', `${what}: ketama weight must be 1 to 1000, got '${it.shardStr}'`)
        return {name: `${it.refType}:${it.refName}`, weight}
      })
      return {shard: s, type: 'ketama_hash', ring: new KetamaRing(items)}
    }
  }
}

function compileRegex(r: Rule): RegExp {
  let re: RegExp
  try {
    re = new RegExp(`^(?:${r.regexp})$`)
  } catch (err) {
    throw new RuleConfigError('bad-regex', `rule ${r.name}: bad regexp ${JSON.stringify(r.regexp)}: ${(err as Error).message}`)
  }
  // number of capture groups: an empty alternative always matches the empty string
  const groups = new RegExp(`${r.regexp}|`).exec('')!.length - 1
  if (r.hashSlot > groups) {
    throw new RuleConfigError('bad-field', `rule ${r.name}: hashSlot ${r.hashSlot} but the regexp has ${groups} capture group${groups === 1 ? '' : 's'} (0 = whole key)`)
  }
  return re
}

function uniqueNames<T extends {name: string}>(list: T[], kind: string): Map<string, T> {
  const m = new Map<string, T>()
  for (const x of list) {
    if (m.has(x.name)) throw new RuleConfigError('duplicate', `two ${kind}s are named ${x.name}`)
    m.set(x.name, x)
  }
  return m
}

/**
 * Validates the whole configuration and returns it ready to route. Throws RuleConfigError naming the
 * first problem: bad fields, unknown references, type mismatches, cycles of nested shards, overlapping
 * or gapped ranges, bad regexps, an example that its rule does not match or cannot route.
 */
export function compileRules(input: RulesConfig): CompiledRules {
  const cfg: RulesConfig = {
    dbunits: input.dbunits.map(normalizeDbUnit),
    dbgroups: input.dbgroups.map(normalizeDbGroup),
    shards: input.shards.map(normalizeShard),
    rules: input.rules.map(normalizeRule),
  }
  const c = new CompiledRules(cfg)
  for (const [k, v] of uniqueNames(cfg.dbunits, 'dbunit')) c.units.set(k, v)
  for (const [k, v] of uniqueNames(cfg.dbgroups, 'dbgroup')) c.groups.set(k, v)
  const shards = uniqueNames(cfg.shards, 'shard')
  const rules = uniqueNames(cfg.rules, 'rule')

  for (const g of cfg.dbgroups) {
    const what = `dbgroup ${g.name}`
    const seen = new Set<string>()
    for (const it of g.items) {
      const u = c.units.get(it.name)
      if (!u) throw new RuleConfigError('unknown-ref', `${what}: dbunit ${it.name} does not exist`)
      if (u.type !== g.type) throw new RuleConfigError('type-mismatch', `${what} is ${g.type} but its item ${it.name} is a ${u.type} unit`)
      if (seen.has(it.name)) throw new RuleConfigError('duplicate', `${what}: dbunit ${it.name} is listed twice`)
      seen.add(it.name)
    }
    if (g.cache !== undefined) {
      const u = c.units.get(g.cache)
      if (!u) throw new RuleConfigError('unknown-ref', `${what}: cache dbunit ${g.cache} does not exist`)
      if (u.type !== 'redis') throw new RuleConfigError('type-mismatch', `${what}: the cache must be a redis unit, ${g.cache} is ${u.type}`)
      if (seen.has(g.cache)) throw new RuleConfigError('bad-field', `${what}: ${g.cache} cannot be both a member and the cache`)
    }
    if (g.enable) {
      if (g.replicateMode !== 'discard' && !g.items.some((it) => it.isMaster)) {
        throw new RuleConfigError('no-master', `${what}: replicateMode ${g.replicateMode} needs at least one item with isMaster`)
      }
      if (!g.items.some((it) => it.readWeight > 0)) throw new RuleConfigError('no-reader', `${what}: no item has readWeight > 0, so nothing could be read`)
    }
  }

  for (const s of cfg.shards) {
    for (const it of s.shardMap) {
      if (it.refType === 'dbgroup' && !c.groups.has(it.refName)) throw new RuleConfigError('unknown-ref', `shard ${s.name}: dbgroup ${it.refName} does not exist`)
      if (it.refType === 'shard' && !shards.has(it.refName)) throw new RuleConfigError('unknown-ref', `shard ${s.name}: shard ${it.refName} does not exist`)
    }
    c.shards.set(s.name, compileShard(s))
  }
  // cycles: depth-first search over shard -> shard references
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]): void => {
    const st = state.get(name)
    if (st === 'done') return
    if (st === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name]
      throw new RuleConfigError('cycle', `shards nest in a cycle: ${cycle.join(' -> ')}`)
    }
    state.set(name, 'visiting')
    for (const it of shards.get(name)!.shardMap) if (it.refType === 'shard') visit(it.refName, [...path, name])
    state.set(name, 'done')
  }
  for (const s of cfg.shards) visit(s.name, [])

  for (const r of cfg.rules) {
    if (!shards.has(r.shardName)) throw new RuleConfigError('unknown-ref', `rule ${r.name}: shard ${r.shardName} does not exist`)
    c.rules.push({rule: r, re: compileRegex(r)})
  }
  c.rules.sort((a, b) => a.rule.order - b.rule.order || (a.rule.name < b.rule.name ? -1 : a.rule.name > b.rule.name ? 1 : 0))
  void rules

  // every example must match its own rule and route to a db group
  for (const {rule, re} of c.rules) {
    const m = re.exec(rule.example)
    if (!m) throw new RuleConfigError('example-mismatch', `rule ${rule.name}: example '${rule.example}' does not match its regexp ${JSON.stringify(rule.regexp)} (the whole key must match)`)
    const cap = m[rule.hashSlot]
    if (cap === undefined) throw new RuleConfigError('example-unroutable', `rule ${rule.name}: in example '${rule.example}' capture group ${rule.hashSlot} matches nothing`)
    try {
      c.routeCapture(rule, cap)
    } catch (err) {
      if (err instanceof RouteError) throw new RuleConfigError('example-unroutable', `rule ${rule.name}: example '${rule.example}' cannot be routed: ${err.message}`)
      throw err
    }
  }
  return c
}

/** What references a config object (for refusing to remove something still in use). */
export function referencesTo(cfg: RulesConfig, kind: ConfigKind, name: string): string[] {
  const out: string[] = []
  if (kind === 'dbunit') {
    for (const g of cfg.dbgroups) {
      if (g.items.some((it) => it.name === name)) out.push(`dbgroup ${g.name}`)
      else if (g.cache === name) out.push(`dbgroup ${g.name} (cache)`)
    }
  } else if (kind === 'dbgroup' || kind === 'shard') {
    for (const s of cfg.shards) if (s.shardMap.some((it) => it.refType === kind && it.refName === name)) out.push(`shard ${s.name}`)
    if (kind === 'shard') for (const r of cfg.rules) if (r.shardName === name) out.push(`rule ${r.name}`)
  }
  return out
}

export function emptyRulesConfig(): RulesConfig {
  return {dbunits: [], dbgroups: [], shards: [], rules: []}
}
