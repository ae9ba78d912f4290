import type {TopologyStore} from './topology-store.js'
import type {KeyValue} from './types.js'
import {RstoreError, ValidationError} from '../errors.js'
import {compileRules, CONFIG_KINDS, type CompiledRules, type ConfigKind, type DbGroup, type DbUnit, type Rule, type RulesConfig, type Shard} from '../topology/rules.js'
import {parseCutover, type Cutover} from '../topology/cutover.js'
import {CONFIG_DIRS} from './layout.js'

/**
 * The rstore routing config objects in the coordinator: `/rstore/<product>/{dbunits,dbgroups,shards,rules}/<name>`
 * (JSON). Every change is validated against the WHOLE resulting configuration (compileRules: refs,
 * cycles, ranges, regexps, each rule's example routed) and written in ONE transaction that also bumps
 * the topology epoch (TopologyStore.update with extraOps), so proxies watching the epoch reload it
 * live and two concurrent edits can never combine into an invalid configuration.
 */

export type ConfigObject = DbUnit | DbGroup | Shard | Rule

export const DIRS = CONFIG_DIRS
export function parseKind(text: string): ConfigKind {
  if (!(CONFIG_KINDS as readonly string[]).includes(text)) throw new ValidationError(`unknown config kind '${text}' (${CONFIG_KINDS.join(', ')})`)
  return text as ConfigKind
}

export function configKey(store: TopologyStore, kind: ConfigKind, name: string): string {
  return store.keys.config(kind, name)
}

export interface LoadedRulesConfig {
  config: RulesConfig
  epoch: number
  /** modRevision of the epoch key when read (every config change bumps it). */
  epochRevision: number
  /** Cutover records (`cutovers/<name>`), active or not. */
  cutovers: Cutover[]
  /** The stored keys and values config and cutovers were read from: an equal source reads the same. */
  source: string
}

/** Reads the configuration as one snapshot (one list() of the product prefix). Not validated. */
export async function loadRulesConfig(store: TopologyStore): Promise<LoadedRulesConfig> {
  return parseRulesConfig(store, await store.coord.list(store.prefix))
}

/** Builds the configuration from the product's stored keys (e.g. a proxy's own list()). */
export function parseRulesConfig(store: TopologyStore, kvs: KeyValue[]): LoadedRulesConfig {
  const config: RulesConfig = {dbunits: [], dbgroups: [], shards: [], rules: []}
  let epoch = 0
  let epochRevision = 0
  const cutovers: Cutover[] = []
  const epochKey = store.keys.epoch
  const cutoverPrefix = store.keys.cutoversPrefix
  const kinds = CONFIG_KINDS.map((kind) => ({list: config[DIRS[kind]] as unknown[], prefix: store.keys.configPrefix(kind)}))
  const source: string[] = []
  // A cheap first test: the two characters after the product prefix (skips the 1024 slots/ keys).
  const at = store.prefix.length
  const head = (key: string) => key.charCodeAt(at) * 0x10000 + key.charCodeAt(at + 1)
  const heads = new Set([epochKey, cutoverPrefix, ...kinds.map((k) => k.prefix)].map(head))
  for (const kv of kvs) {
    if (!heads.has(head(kv.key))) continue
    if (kv.key.startsWith(cutoverPrefix)) {
      source.push(kv.key, kv.value)
      cutovers.push(parseCutover(storedJson(kv), kv.key))
      continue
    }
    if (kv.key === epochKey) {
      epoch = Number(JSON.parse(kv.value))
      epochRevision = kv.modRevision
      continue
    }
    for (const {list, prefix} of kinds) {
      if (!kv.key.startsWith(prefix)) continue
      source.push(kv.key, kv.value)
      list.push(storedJson(kv))
    }
  }
  return {config, epoch, epochRevision, cutovers, source: source.join('\0')}
}

/** The stored configuration, validated (a stored config that fails validation is reported, not served). */
export async function loadCompiledRules(store: TopologyStore): Promise<{rules: CompiledRules; epoch: number}> {
  const {config, epoch} = await loadRulesConfig(store)
  return {rules: compileRules(config), epoch}
}


/** A stored value as JSON; a value that is not JSON was written by something else (ECORRUPT). */
function storedJson(kv: KeyValue): unknown {
  try {
    return JSON.parse(kv.value)
  } catch {
    throw new RstoreError('ECORRUPT', `stored ${kv.key} is not JSON: ${kv.value.slice(0, 80)}`)
  }
}
