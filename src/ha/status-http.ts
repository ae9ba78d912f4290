/**
 * The agent's `--http-addr` endpoint (docs/agent.md "HTTP"): GET /status, the supervised processes
 * (and the leader with --ha) as JSON, on plain node:http.
 */
import {createServer, type Server} from 'node:http'
import {ValidationError} from '../errors.js'

export function parseHostPort(addr: string, what: string): {host: string; port: number} {
  const m = /^(.+):(\d{1,5})$/.exec(addr)
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new ValidationError(`${what} '${addr}' is not host:port`)
  return {host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port}
}

export async function startStatusHttp(addr: string, status: () => unknown): Promise<Server> {
  const {host, port} = parseHostPort(addr, '--http-addr')
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/status') {
      res.writeHead(200, {'content-type': 'application/json'})
      res.end(JSON.stringify(status()))
      return
    }
    res.writeHead(404, {'content-type': 'application/json'})
    res.end(JSON.stringify({error: {code: 'ENOTFOUND', message: `no ${req.method} ${path}: the agent serves GET /status`}}))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ValidationError(`cannot listen on --http-addr ${addr}: ${err.message}`)))
    server.listen(port, host, () => resolve())
  })
  return server
}
