/**
 * The agent's `--http-addr` endpoint (docs/agent.md "HTTP"), on plain node:http: GET /status (the
 * supervised processes, and with --ha the leader, the agents and the failovers) as JSON, GET /metrics
 * for Prometheus, and with --ha GET /check?addr=host:port, this agent's answer to the leader's "do
 * you see that master down?" (only for servers recorded in the product's groups).
 */
import {createServer, type ServerResponse, type Server} from 'node:http'
import {dispositionOf, RstoreError, ValidationError} from '../errors.js'
import type {CheckAnswer} from './confirm.js'

export function parseHostPort(addr: string, what: string): {host: string; port: number} {
  const m = /^(.+):(\d{1,5})$/.exec(addr)
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new ValidationError(`${what} '${addr}' is not host:port`)
  return {host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port}
}

export interface AgentRoutes {
  status: () => Promise<unknown>
  metrics: () => Promise<{contentType: string; body: string}>
  /** With --ha; throws an RstoreError (answered 400/404) for an address that is not a recorded server. */
  check?: (addr: string) => Promise<CheckAnswer>
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {'content-type': 'application/json'})
  res.end(JSON.stringify(body))
}

export async function startStatusHttp(addr: string, routes: AgentRoutes): Promise<Server> {
  const {host, port} = parseHostPort(addr, '--http-addr')
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent')
    const path = url.pathname
    const answer = async () => {
      if (req.method === 'GET' && path === '/status') return json(res, 200, await routes.status())
      if (req.method === 'GET' && path === '/metrics') {
        const m = await routes.metrics()
        res.writeHead(200, {'content-type': m.contentType})
        return void res.end(m.body)
      }
      if (req.method === 'GET' && path === '/check' && routes.check) {
        const target = url.searchParams.get('addr')
        if (!target) return json(res, 400, {error: {code: 'EINVAL', message: 'GET /check needs ?addr=host:port, a server of the product'}})
        return json(res, 200, await routes.check(target))
      }
      json(res, 404, {error: {code: 'ENOTFOUND', message: `no ${req.method} ${path}: the agent serves GET /status, /metrics${routes.check ? ', /check?addr=' : ''}`}})
    }
    answer().catch((err: Error) => {
      const code = err instanceof RstoreError ? err.code : 'EINTERNAL'
      if (!res.headersSent) json(res, dispositionOf(code).http, {error: {code, message: err.message}})
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ValidationError(`cannot listen on --http-addr ${addr}: ${err.message}`)))
    server.listen(port, host, () => resolve())
  })
  return server
}
