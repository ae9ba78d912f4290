import {setTimeout as sleep} from 'node:timers/promises'
import {PreconditionFailedError, type TopologyStore} from '../coord/topology-store.js'
import type {Compare, Op} from '../coord/types.js'
import {ConflictError, NotFoundError, ValidationError} from '../errors.js'
import {checkName, compileRules, normalize, referencesTo, type ConfigKind, type Rule, type RulesConfig} from '../topology/rules.js'
import {validateCutovers} from '../topology/cutover.js'

export {configKey, DIRS, loadCompiledRules, loadRulesConfig, parseKind, parseRulesConfig, type ConfigObject, type LoadedRulesConfig} from '../coord/rules-store.js'
import {configKey, DIRS, loadRulesConfig, type ConfigObject} from '../coord/rules-store.js'

/** Retries of a change that lost a race with another edit. */
const ATTEMPTS = 8

export interface ConfigChangeResult {
  kind: ConfigKind
  name: string
  action: 'added' | 'updated' | 'removed'
  epoch: number
  value?: ConfigObject
}

function find(cfg: RulesConfig, kind: ConfigKind, name: string): ConfigObject | undefined {
  return (cfg[DIRS[kind]] as ConfigObject[]).find((x) => x.name === name)
}

/**
 * Applies one change optimistically: read the config, compute the next one, validate it whole, write
 * the object plus epoch+1 in one transaction that fails if the epoch moved since the read; retried.
 */
async function change(
  store: TopologyStore,
  kind: ConfigKind,
  name: string,
  action: ConfigChangeResult['action'],
  next: (cfg: RulesConfig, current: ConfigObject | undefined) => ConfigObject | null,
): Promise<ConfigChangeResult> {
  for (let attempt = 1; ; attempt++) {
    const {config, epochRevision, cutovers} = await loadRulesConfig(store)
    const current = find(config, kind, name)
    const value = next(config, current)
    const list = (config[DIRS[kind]] as ConfigObject[]).filter((x) => x.name !== name)
    if (value) list.push(value)
    const nextCfg: RulesConfig = {...config, [DIRS[kind]]: list}
    validateCutovers(compileRules(nextCfg), cutovers) // throws RuleConfigError with the first problem
    const key = configKey(store, kind, name)
    const ops: Op[] = value ? [{type: 'put', key, value: JSON.stringify(value)}] : [{type: 'delete', key}]
    const compares: Compare[] = [{key: store.keys.epoch, modRevision: epochRevision}]
    try {
      const epoch = await store.update(() => ({}), compares, ops)
      const res: ConfigChangeResult = {kind, name, action, epoch}
      if (value) res.value = value
      return res
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= ATTEMPTS) {
        if (err instanceof PreconditionFailedError) throw new ConflictError(`the configuration kept changing while this ${kind} was saved (${attempt} attempts); try again`)
        throw err
      }
      await sleep(5 + Math.random() * 20 * attempt)
    }
  }
}

/** Adds a new object (refused if the name exists). */
export async function addConfig(store: TopologyStore, kind: ConfigKind, input: unknown): Promise<ConfigChangeResult> {
  const value = normalize(kind, input)
  return change(store, kind, value.name, 'added', (_cfg, current) => {
    if (current) throw new ConflictError(`${kind} ${value.name} already exists (use '${kind} update')`)
    return value
  })
}

/** Updates an existing object: the given fields replace the stored ones (a partial object is merged). */
export async function updateConfig(store: TopologyStore, kind: ConfigKind, name: string, patch: Record<string, unknown>): Promise<ConfigChangeResult> {
  checkName(name, kind)
  if (patch.name !== undefined && patch.name !== name) throw new ValidationError(`${kind} ${name}: the name cannot be changed (add a new one and remove this one)`)
  return change(store, kind, name, 'updated', (_cfg, current) => {
    if (!current) throw new NotFoundError(`${kind} ${name} does not exist`)
    return normalize(kind, {...current, ...patch, name})
  })
}

/** Removes an object; refused while anything references it. */
export async function removeConfig(store: TopologyStore, kind: ConfigKind, name: string): Promise<ConfigChangeResult> {
  checkName(name, kind)
  return change(store, kind, name, 'removed', (cfg, current) => {
    if (!current) throw new NotFoundError(`${kind} ${name} does not exist`)
    const refs = referencesTo(cfg, kind, name)
    if (refs.length) throw new ConflictError(`${kind} ${name} is still used by ${refs.join(', ')}; change those first`)
    return null
  })
}

export async function listConfig(store: TopologyStore, kind: ConfigKind): Promise<{epoch: number; items: ConfigObject[]}> {
  const {config, epoch} = await loadRulesConfig(store)
  const items = (config[DIRS[kind]] as ConfigObject[]).slice()
  if (kind === 'rule') (items as Rule[]).sort((a, b) => a.order - b.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  else items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return {epoch, items}
}

export async function showConfig(store: TopologyStore, kind: ConfigKind, name: string): Promise<{item: ConfigObject; usedBy: string[]}> {
  checkName(name, kind)
  const {config} = await loadRulesConfig(store)
  const item = find(config, kind, name)
  if (!item) throw new NotFoundError(`${kind} ${name} does not exist`)
  return {item, usedBy: referencesTo(config, kind, name)}
}
