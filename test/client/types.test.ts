import t from 'tap'
import type * as client from '../../lib/client/index.js'
import type * as server from '../../lib/index.js'

// The client has its own types so that it needs none of the server's code; these checks, made by
// the type-check of the suite, keep the two in step: a field added, removed or retyped on either
// side fails `tsc` here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Wire<T> = { [K in keyof T]: Exclude<T[K], Date> }

const checks: Array<true> = [
  true as Same<client.KeyInfo, server.KeyInfo>,
  true as Same<client.CreatedKey, server.CreatedKey>,
  true as Same<client.KeyUsage, server.KeyUsage>,
  true as Same<client.AuditEvent, server.AuditEvent>,
  true as Same<client.AuditPage, server.AuditPage>,
  true as Same<client.AuditAction, server.AuditAction>,
  true as Same<client.KeyType, server.KeyType>,
  true as Same<client.RotateKeyInput, server.RotateKeyInput>,
  // What the client sends is what the routes take: the server's input, less what only code may give.
  true as Same<Wire<client.CreateKeyInput>, Omit<server.CreateKeyInput, 'tenant'>>,
  true as Same<Wire<client.UpdateKeyInput>, server.UpdateKeyInput>
]

t.equal(checks.length, 10, 'the client mirrors the server\'s JSON types')
