import {Flags} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {runProxy} from '../../proxy/run.js'
import {DEFAULT_LIMITS} from '../../resp/resp.js'
import {DEFAULT_BACKEND_TIMEOUT_MS} from '../../resp/backend.js'
import {DEFAULT_CLIENT_LIMITS} from '../../proxy/session.js'
import {DEFAULT_MAXMEMORY_CLIENTS} from '../../proxy/proxy.js'
import {proxyPassword} from '../../config.js'
import {parseDenyCommands} from '../../proxy/deny-commands.js'

export default class ProxyStart extends RstoreCommand<typeof ProxyStart> {
  static override description = `Start a Redis-protocol proxy that routes by slot to the server groups.
The proxy registers itself offline; open it with 'rstore proxy online <id>'. It follows slot and group
changes live and runs until SIGTERM or Ctrl-C.`

  static override examples = [
    '<%= config.bin %> proxy start --addr 127.0.0.1:19000 --http-addr 127.0.0.1:11000 --id proxy_1',
    'RSTORE_PROXY_AUTH=secret <%= config.bin %> proxy start -c config.ini --cpu 2',
  ]

  static override flags = {
    addr: Flags.string({description: 'listen address for Redis clients', default: '127.0.0.1:19000'}),
    'http-addr': Flags.string({description: 'address of /status and /metrics', default: '127.0.0.1:11000'}),
    id: Flags.string({description: 'proxy id, unique in the product', default: 'proxy_1'}),
    'proxy-auth': Flags.string({description: 'password clients must AUTH with (shows in ps: prefer RSTORE_PROXY_AUTH or proxy_auth_file)'}),
    cpu: Flags.integer({description: 'worker processes sharing the port', default: 1, min: 1, max: 64}),
    'max-clients': Flags.integer({description: 'most client connections', default: 10000, min: 1}),
    'idle-timeout': Flags.integer({description: 'close clients idle this many seconds (0 = never)', default: 0, min: 0}),
    'max-bulk-length': Flags.integer({description: 'largest bulk string in a request, bytes', default: DEFAULT_LIMITS.maxBulkLength, min: 1}),
    'max-args': Flags.integer({description: 'most arguments in one request', default: DEFAULT_LIMITS.maxArgs, min: 1}),
    'client-query-buffer-limit': Flags.integer({
      description: "close a client whose unfinished request holds more than this many bytes (Redis's client-query-buffer-limit)",
      default: DEFAULT_CLIENT_LIMITS.queryBufferLimit,
      min: 1024,
    }),
    'client-output-buffer-limit': Flags.integer({
      description: 'close a client whose unread replies pass this many bytes (reading it stops at 4 MiB)',
      default: DEFAULT_CLIENT_LIMITS.outputBufferLimit,
      min: 1024,
    }),
    'maxmemory-clients': Flags.integer({
      description: 'bytes all clients together may hold in the proxy; past it the biggest are closed (0 = no ceiling)',
      default: DEFAULT_MAXMEMORY_CLIENTS,
      min: 0,
    }),
    'backend-connections': Flags.integer({description: 'pipelined connections per backend server', default: 2, min: 1, max: 64}),
    'backend-timeout': Flags.integer({
      description: 'fail a backend request with no reply after this many ms and mark its server down until it answers PING (0 = wait forever)',
      default: DEFAULT_BACKEND_TIMEOUT_MS,
      min: 0,
    }),
    'tls-cert': Flags.string({description: 'PEM certificate: serve clients over TLS (with --tls-key)', dependsOn: ['tls-key']}),
    'tls-key': Flags.string({description: 'PEM private key of --tls-cert', dependsOn: ['tls-cert']}),
    'deny-commands': Flags.string({description: 'comma-separated commands refused to clients, e.g. flushdb,flushall,config'}),
    'lease-ttl': Flags.integer({description: 'coordinator lease TTL, seconds (fencing delay)', default: 5, min: 2}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const denyCommands = parseDenyCommands(f['deny-commands'])
    await runProxy(
      this.cfg,
      {
        id: f.id,
        addr: f.addr,
        httpAddr: f['http-addr'],
        password: proxyPassword(this.cfg, f['proxy-auth'], (line) => this.warn(line)),
        clientLimits: {...DEFAULT_CLIENT_LIMITS, queryBufferLimit: f['client-query-buffer-limit'], outputBufferLimit: f['client-output-buffer-limit']},
        maxMemoryClients: f['maxmemory-clients'],
        cpu: f.cpu,
        maxClients: f['max-clients'],
        idleTimeoutSec: f['idle-timeout'],
        backendConnections: f['backend-connections'],
        backendTimeoutMs: f['backend-timeout'],
        leaseTtlSec: f['lease-ttl'],
        denyCommands,
        tlsCert: f['tls-cert'],
        tlsKey: f['tls-key'],
        limits: {...DEFAULT_LIMITS, maxBulkLength: f['max-bulk-length'], maxArgs: f['max-args']},
      },
      (line) => this.log(line),
    )
  }
}
