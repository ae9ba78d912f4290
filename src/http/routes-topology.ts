/**
 * Slots and groups/servers (docs/dashboard.md "API"): each route validates its input by schema and
 * calls the service function behind the matching `rstore slot ...` / `rstore server ...` command.
 */
import type {FastifyInstance} from 'fastify'
import {addGroup, addServer, listServers, promoteServer, removeGroup, removeServer} from '../service/servers.js'
import {initSlots, listSlots, setSlot, setSlotRange, slotInfo} from '../service/slots.js'
import type {DashboardContext} from './server.js'

const slotId = {type: 'integer', minimum: 0, maximum: 1023} as const
const groupId = {type: 'integer', minimum: 1, maximum: 9999} as const
const status = {type: 'string', enum: ['online', 'offline']} as const
const force = {type: 'boolean', default: false} as const

/** Body schemas take exactly the fields named: a typo is a 400, not a silently ignored field. */
function body(properties: Record<string, unknown>, required: string[] = []) {
  return {type: 'object', additionalProperties: false, properties, required} as const
}

export function registerTopologyRoutes(app: FastifyInstance, {store}: DashboardContext): void {
  app.get('/api/slots', {schema: {summary: 'the slot table as ranges (rstore slot list)', tags: ['slots']}}, () => listSlots(store))

  app.get<{Params: {id: number}}>(
    '/api/slots/:id',
    {schema: {summary: 'one slot (rstore slot info)', tags: ['slots'], params: {type: 'object', properties: {id: slotId}, required: ['id']}}},
    (req) => slotInfo(store, req.params.id),
  )

  app.post<{Body: {force?: boolean} | undefined}>(
    '/api/slots/init',
    {schema: {summary: 'create the 1024 slots, all offline (rstore slot init)', tags: ['slots'], body: body({force})}},
    (req) => initSlots(store, {force: req.body?.force}),
  )

  app.put<{Params: {id: number}; Body: {group: number; status: string; force?: boolean}}>(
    '/api/slots/:id',
    {
      schema: {
        summary: 'assign one empty or offline slot (rstore slot set)',
        tags: ['slots'],
        params: {type: 'object', properties: {id: slotId}, required: ['id']},
        body: body({group: groupId, status, force}, ['group', 'status']),
      },
    },
    (req) => setSlot(store, req.params.id, req.body.group, req.body.status, {force: req.body.force}),
  )

  app.post<{Body: {from: number; to: number; group: number; status: string; force?: boolean}}>(
    '/api/slots/range-set',
    {schema: {summary: 'assign slots from..to (rstore slot range-set)', tags: ['slots'], body: body({from: slotId, to: slotId, group: groupId, status, force}, ['from', 'to', 'group', 'status'])}},
    (req) => setSlotRange(store, req.body.from, req.body.to, req.body.group, req.body.status, {force: req.body.force}),
  )

  app.get('/api/groups', {schema: {summary: 'groups, servers and slot counts (rstore server list)', tags: ['groups']}}, () => listServers(store))

  app.post<{Body: {group: number}}>(
    '/api/groups',
    {schema: {summary: 'create an empty group (rstore server add-group)', tags: ['groups'], body: body({group: groupId}, ['group'])}},
    async (req, reply) => reply.status(201).send(await addGroup(store, req.body.group)),
  )

  const groupParams = {type: 'object', properties: {id: groupId}, required: ['id']} as const
  const serverParams = {type: 'object', properties: {id: groupId, addr: {type: 'string', minLength: 3, maxLength: 300}}, required: ['id', 'addr']} as const

  app.delete<{Params: {id: number}}>(
    '/api/groups/:id',
    {schema: {summary: 'remove an empty group (rstore server remove-group)', tags: ['groups'], params: groupParams}},
    (req) => removeGroup(store, req.params.id),
  )

  app.post<{Params: {id: number}; Body: {addr: string; role: string}}>(
    '/api/groups/:id/servers',
    {
      schema: {
        summary: 'add a server to a group (rstore server add)',
        tags: ['groups'],
        params: groupParams,
        body: body({addr: {type: 'string', minLength: 3, maxLength: 300}, role: {type: 'string', enum: ['master', 'slave']}}, ['addr', 'role']),
      },
    },
    async (req, reply) => reply.status(201).send(await addServer(store, req.params.id, req.body.addr, req.body.role)),
  )

  app.delete<{Params: {id: number; addr: string}}>(
    '/api/groups/:id/servers/:addr',
    {schema: {summary: 'remove a server record from its group (rstore server remove)', tags: ['groups'], params: serverParams}},
    (req) => removeServer(store, req.params.id, req.params.addr),
  )

  app.post<{Params: {id: number; addr: string}; Body: {force?: boolean; catchUpTimeoutMs?: number} | undefined}>(
    '/api/groups/:id/servers/:addr/promote',
    {
      schema: {
        summary: 'make a slave the master of its group (rstore server promote)',
        tags: ['groups'],
        params: serverParams,
        body: body({force, catchUpTimeoutMs: {type: 'integer', minimum: 100, maximum: 600_000}}),
      },
    },
    (req) => promoteServer(store, req.params.id, req.params.addr, {force: req.body?.force, catchUpTimeoutMs: req.body?.catchUpTimeoutMs}),
  )
}
