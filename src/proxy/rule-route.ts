import {loadRulesConfig} from '../admin/rules-config.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {compileRules, RouteError, type CompiledRules, type DbGroup, type RoutePath, type RulesConfig} from '../topology/rules.js'

/** Where the proxy sends a key: the slot table (no rules), a db group, or nowhere (refused). */
export type RuleRoute =
  | {kind: 'slot'}
  | {
      kind: 'dbgroup'
      group: DbGroup
      path: RoutePath
      /** A unit to read from, chosen by readWeight among enabled members (undefined: none readable). */
      readUnit(): string | undefined
      /** The units a write goes to, by replicate mode (empty for discard). */
      writeUnits(): string[]
    }
  | {kind: 'unregistered'; error: string}

export const KEY_NOT_REGISTERED = 'ERR key not registered'

/**
 * The proxy's view of the rules, rebuilt on every epoch (config changes bump the epoch). A product
 * "requires rules" as soon as one rule exists: then every key must match one (else
 * `-ERR key not registered`); with no rules every key goes to the slot table as before.
 */
export class RuleRouter {
  constructor(
    readonly rules: CompiledRules,
    readonly epoch = 0,
  ) {}

  /** Validates and compiles a configuration (throws RuleConfigError; keep serving the previous router then). */
  static fromConfig(config: RulesConfig, epoch = 0): RuleRouter {
    return new RuleRouter(compileRules(config), epoch)
  }

  /** Loads the product's configuration from the coordinator. */
  static async load(store: TopologyStore): Promise<RuleRouter> {
    const {config, epoch} = await loadRulesConfig(store)
    return RuleRouter.fromConfig(config, epoch)
  }

  static empty(): RuleRouter {
    return RuleRouter.fromConfig({dbunits: [], dbgroups: [], shards: [], rules: []})
  }

  get requiresRules(): boolean {
    return this.rules.requiresRules
  }

  route(key: Buffer): RuleRoute {
    if (!this.rules.requiresRules) return {kind: 'slot'}
    let path: RoutePath | undefined
    try {
      path = this.rules.route(key)
    } catch (err) {
      if (err instanceof RouteError) return {kind: 'unregistered', error: `ERR key not routable: ${err.message}`}
      throw err
    }
    if (!path) return {kind: 'unregistered', error: KEY_NOT_REGISTERED}
    const group = this.rules.groups.get(path.dbgroup)!
    const rules = this.rules
    return {
      kind: 'dbgroup',
      group,
      path,
      readUnit: () => rules.readUnit(group.name),
      writeUnits: () => rules.writeUnits(group.name),
    }
  }
}
