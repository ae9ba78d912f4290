/**
 * The fastify app of `rstore dashboard` (docs/dashboard.md): auth on every /api call, the audit
 * entry of every mutating one, errors in one shape, and the OpenAPI document built from the route
 * schemas. The routes themselves are in routes-*.ts and call the same src/service/ functions as the CLI.
 */
import Fastify, {type FastifyInstance, type FastifyRequest} from 'fastify'
import swagger from '@fastify/swagger'
import type {RstoreConfig} from '../config.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {appendAudit} from './audit.js'
import {authorize, identify, type Token} from './auth.js'
import {HttpError, renderError} from './errors.js'
import {registerTopologyRoutes} from './routes-topology.js'
import {registerOpsRoutes} from './routes-ops.js'
import type {JobRunner} from './job-runner.js'

export interface DashboardContext {
  cfg: RstoreConfig
  store: TopologyStore
  tokens: Token[]
  openReads: boolean
  /** The migrations this process runs (POST /api/jobs/migrate). */
  runner: JobRunner
}

declare module 'fastify' {
  interface FastifyRequest {
    token?: Token
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** The call's arguments for the audit log, with the password of any URL (a db unit's) masked. */
function auditArgs(req: FastifyRequest): unknown {
  const args: Record<string, unknown> = {}
  if (req.params && Object.keys(req.params as object).length) args.params = req.params
  if (req.query && Object.keys(req.query as object).length) args.query = req.query
  if (req.body !== undefined && req.body !== null) args.body = req.body
  return JSON.parse(JSON.stringify(args, (_k, v: unknown) => (typeof v === 'string' ? v.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, '$1***@') : v)))
}

export async function buildServer(ctx: DashboardContext): Promise<FastifyInstance> {
  // removeAdditional off: an unknown body field is a 400, never silently dropped.
  const app = Fastify({logger: false, bodyLimit: 1 << 20, ajv: {customOptions: {removeAdditional: false}}})
  await app.register(swagger, {
    openapi: {
      info: {title: 'rstore dashboard API', version: '1'},
      components: {securitySchemes: {bearer: {type: 'http', scheme: 'bearer'}}},
      security: [{bearer: []}],
    },
  })

  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/api/') || req.url.startsWith('/api/openapi.json')) return
    // Identified first, so that the audit entry of a refused call still names the token.
    req.token = identify(ctx.tokens, req.headers.authorization)
    authorize(req.token, req.headers.authorization, MUTATING.has(req.method), ctx.openReads)
  })

  // Written before the reply leaves, so that a client that reads /api/audit next sees its own call.
  app.addHook('onSend', async (req, reply, payload) => {
    if (!MUTATING.has(req.method) || !req.url.startsWith('/api/')) return payload
    await appendAudit(ctx.store, {
      time: new Date().toISOString(),
      token: req.token?.name ?? '-',
      client: req.ip,
      method: req.method,
      path: req.url,
      args: auditArgs(req),
      status: reply.statusCode,
    }).catch(() => {})
    return payload
  })

  app.setErrorHandler(async (err, _req, reply) => {
    const {status, body} = renderError(err)
    return reply.status(status).send(body)
  })
  app.setNotFoundHandler(async (req, reply) => {
    const {status, body} = renderError(new HttpError(404, 'ENOTFOUND', `no such API route: ${req.method} ${req.url.split('?')[0]}`, 'see GET /api/openapi.json'))
    return reply.status(status).send(body)
  })

  app.get('/api/openapi.json', {schema: {hide: true}}, async () => app.swagger())
  registerTopologyRoutes(app, ctx)
  registerOpsRoutes(app, ctx)
  return app
}
