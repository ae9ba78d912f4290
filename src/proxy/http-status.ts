import {createServer, type Server} from 'node:http'
import {listenRefused} from '../errors.js'

export interface StatusSource {
  status(): Record<string, unknown>
  renderMetrics(): string
}

/** The proxy's HTTP endpoint: /status (JSON) and /metrics (Prometheus text). */
export function startProxyHttp(source: StatusSource, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const known = path === '/status' || path === '/metrics'
    // Read-only endpoints: anything but GET/HEAD is refused, as RFC 9110 section 15.5.6 asks (405 + Allow).
    if (known && req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, {'content-type': 'text/plain', allow: 'GET, HEAD'})
      res.end(`method ${req.method} not allowed on ${path}: use GET or HEAD\n`)
    } else if (path === '/status') {
      res.writeHead(200, {'content-type': 'application/json'})
      res.end(JSON.stringify(source.status()))
    } else if (path === '/metrics') {
      res.writeHead(200, {'content-type': 'text/plain; version=0.0.4'})
      res.end(source.renderMetrics())
    } else {
      res.writeHead(404, {'content-type': 'text/plain'})
      res.end('not found: try /status or /metrics\n')
    }
  })
  return new Promise((resolve, reject) => {
    const refused = (err: NodeJS.ErrnoException) => reject(listenRefused('--http-addr', `${host}:${port}`, err))
    server.once('error', refused)
    server.listen(port, host, () => {
      server.off('error', refused)
      resolve(server)
    })
  })
}
