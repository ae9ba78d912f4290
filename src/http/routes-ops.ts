/**
 * Overview, proxies, jobs, the rules config reads, route explain and the audit log (docs/dashboard.md
 * "API"), each calling the service function behind the matching CLI command.
 */
import type {FastifyInstance} from 'fastify'
import type {ConfigKind} from '../topology/rules.js'
import {requestRunningJob, jobViews, type JobRequestKind} from '../service/jobs.js'
import {listProxies, setProxyState} from '../service/proxies.js'
import {routeKey} from '../service/route.js'
import {addConfig, listConfig, removeConfig, showConfig, updateConfig} from '../service/rules-config.js'
import {listServers} from '../service/servers.js'
import {listSlots, migrationLock} from '../service/slots.js'
import {DEFAULT_MOVE_OPTIONS} from '../migrate/move-options.js'
import {AUDIT_KEEP, readAudit} from './audit.js'
import type {DashboardContext} from './server.js'

/** The URL folder of each rules config kind. */
const CONFIG_PATHS: Record<string, ConfigKind> = {dbunits: 'dbunit', dbgroups: 'dbgroup', shards: 'shard', rules: 'rule'}

export function registerOpsRoutes(app: FastifyInstance, ctx: DashboardContext): void {
  const {store, cfg} = ctx

  app.get('/api/overview', {schema: {summary: 'epoch, slot counts per group and state, groups, proxies, jobs', tags: ['overview']}}, async () => {
    const [slots, groups, proxies, lock] = await Promise.all([listSlots(store), listServers(store), listProxies(store), migrationLock(store)])
    const slotCounts: Record<string, Record<string, number>> = {}
    for (const r of slots.ranges) {
      const g = String(r.group || 0)
      slotCounts[g] ??= {}
      slotCounts[g][r.state] = (slotCounts[g][r.state] ?? 0) + r.count
    }
    return {epoch: slots.epoch, initialized: slots.initialized, slotCounts, groups: groups.groups, proxies, migrationLock: lock ?? null, jobs: jobViews(cfg)}
  })

  app.get('/api/proxies', {schema: {summary: 'registered proxies (rstore proxy list)', tags: ['proxies']}}, () => listProxies(store))
  app.post<{Params: {id: string; state: 'online' | 'offline'}}>(
    '/api/proxies/:id/:state',
    {
      schema: {
        summary: 'put a proxy online or offline (rstore proxy online|offline)',
        tags: ['proxies'],
        params: {type: 'object', properties: {id: {type: 'string', pattern: '^[A-Za-z0-9_.-]{1,100}$'}, state: {type: 'string', enum: ['online', 'offline']}}, required: ['id', 'state']},
      },
    },
    (req) => setProxyState(store, req.params.id, req.params.state),
  )

  app.get('/api/jobs', {schema: {summary: 'jobs of the checkpoint file with their progress (rstore jobs)', tags: ['jobs']}}, () =>
    jobViews(cfg).map((j) => {
      const r = ctx.runner.reports.get(j.id)
      return r && j.running ? {...j, keysPerSecond: r.keysPerSecond, etaSeconds: Number.isFinite(r.etaSeconds) ? r.etaSeconds : null} : j
    }),
  )

  app.post<{Body: {from: number; to: number; group: number; delayMs?: number; rate?: number; batch?: number}}>(
    '/api/jobs/migrate',
    {
      schema: {
        summary: 'start a migration of slots from..to to a group in the dashboard process (rstore migrate)',
        tags: ['jobs'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['from', 'to', 'group'],
          properties: {
            from: {type: 'integer', minimum: 0, maximum: 1023},
            to: {type: 'integer', minimum: 0, maximum: 1023},
            group: {type: 'integer', minimum: 1, maximum: 9999},
            delayMs: {type: 'integer', minimum: 0, maximum: 60_000},
            rate: {type: 'integer', minimum: 0, maximum: 10_000_000},
            batch: {type: 'integer', minimum: 1, maximum: 100_000},
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body
      const delayMs = b.delayMs ?? 0
      // The same defaults as the CLI's flags: --delay moves one key per MIGRATE (Reborn).
      const opts = {...DEFAULT_MOVE_OPTIONS, delayMs, rate: b.rate ?? 0, batch: b.batch ?? (delayMs > 0 ? 1 : DEFAULT_MOVE_OPTIONS.batch)}
      const res = await ctx.runner.start({kind: 'migrate', from: b.from, to: b.to, group: b.group}, opts)
      return res.started ? reply.status(202).send({job: res.job, state: 'running'}) : reply.status(200).send(res.summary)
    },
  )
  app.post<{Params: {id: string; action: JobRequestKind}}>(
    '/api/jobs/:id/:action',
    {
      schema: {
        summary: 'pause, resume or cancel a running job (rstore jobs pause|resume|cancel)',
        tags: ['jobs'],
        params: {type: 'object', properties: {id: {type: 'string', pattern: '^[A-Za-z0-9_.-]{1,100}$'}, action: {type: 'string', enum: ['pause', 'resume', 'cancel']}}, required: ['id', 'action']},
      },
    },
    async (req, reply) => reply.status(202).send(await requestRunningJob(cfg, store, req.params.id, req.params.action)),
  )

  const nameParams = {type: 'object', properties: {name: {type: 'string', minLength: 1, maxLength: 200}}, required: ['name']} as const
  // One literal route per kind (not /api/:kind), so that an unknown path stays a 404.
  for (const [path, kind] of Object.entries(CONFIG_PATHS)) {
    app.get(`/api/${path}`, {schema: {summary: `list the ${path} of the rules config (rstore ${kind} list)`, tags: ['rules']}}, () => listConfig(store, kind))
    app.get<{Params: {name: string}}>(
      `/api/${path}/:name`,
      {
        schema: {
          summary: `one ${kind} and what uses it (rstore ${kind} show)`,
          tags: ['rules'],
          params: {type: 'object', properties: {name: {type: 'string', minLength: 1, maxLength: 200}}, required: ['name']},
        },
      },
      (req) => showConfig(store, kind, req.params.name),
    )
    // Writes take the object as `rstore ${kind} add/update` stores it; the service validates it whole.
    app.post<{Body: Record<string, unknown>}>(
      `/api/${path}`,
      {schema: {summary: `add a ${kind} (rstore ${kind} add)`, tags: ['rules'], body: {type: 'object'}}},
      async (req, reply) => reply.status(201).send(await addConfig(store, kind, req.body)),
    )
    app.put<{Params: {name: string}; Body: Record<string, unknown>}>(
      `/api/${path}/:name`,
      {schema: {summary: `update fields of a ${kind} (rstore ${kind} update)`, tags: ['rules'], params: nameParams, body: {type: 'object'}}},
      (req) => updateConfig(store, kind, req.params.name, req.body),
    )
    app.delete<{Params: {name: string}}>(
      `/api/${path}/:name`,
      {schema: {summary: `remove a ${kind} nothing uses (rstore ${kind} remove)`, tags: ['rules'], params: nameParams}},
      (req) => removeConfig(store, kind, req.params.name),
    )
  }

  app.get<{Querystring: {key: string}}>(
    '/api/route',
    {schema: {summary: "the path a key takes (rstore route)", tags: ['rules'], querystring: {type: 'object', properties: {key: {type: 'string', minLength: 1, maxLength: 65536}}, required: ['key']}}},
    (req) => routeKey(store, req.query.key),
  )

  app.get<{Querystring: {limit?: number}}>(
    '/api/audit',
    {schema: {summary: 'the newest audit entries first', tags: ['audit'], querystring: {type: 'object', properties: {limit: {type: 'integer', minimum: 1, maximum: AUDIT_KEEP}}}}},
    (req) => readAudit(store, req.query.limit),
  )
}
