// The key-management console. Plain browser JavaScript, no framework and no build step: the page
// is small, and what it shows comes from the management routes as they answer anyone else.
// Everything the server sends is put on the page as text (textContent, never parsed as markup), and no
// key text is kept anywhere but in the one element that shows a new key once.
'use strict'
;(function () {
  const SVG = 'http://www.w3.org/2000/svg'
  const CSRF_HEADER = 'x-keygate-csrf'
  const consolePath = document.body.dataset.consolePath
  const $ = (id) => document.getElementById(id)

  /** Who is signed in and what the page may offer them; null before sign-in. */
  let session = null
  let auditCursor = null

  // ---- talking to the server ------------------------------------------------------------------

  class ApiError extends Error {
    constructor (message, status) {
      super(message)
      this.status = status
    }
  }

  /** One call; JSON in and out. Every failure becomes an ApiError whose message a person can read. */
  async function call (method, url, body) {
    const headers = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (method !== 'GET' && session !== null && session.csrfToken !== null) headers[CSRF_HEADER] = session.csrfToken
    let response
    try {
      response = await fetch(url, { method, headers, credentials: 'same-origin', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) })
    } catch {
      throw new ApiError('Could not reach the server. Check the connection and try again.', 0)
    }
    if (response.status === 204) return null
    const text = await response.text()
    let data = null
    try { data = text === '' ? null : JSON.parse(text) } catch { data = null }
    if (!response.ok) {
      const message = data !== null && typeof data.message === 'string' ? data.message : `The server answered ${response.status} ${response.statusText}.`
      throw new ApiError(message, response.status)
    }
    return data
  }

  const route = (path) => session.settings.routePrefix + path
  const keyPath = (name, suffix) => route('/' + encodeURIComponent(name) + suffix)

  /** A failed call: said in words; a 401 means the session is over, so back to the sign-in form. */
  function failed (error, where) {
    const message = error instanceof ApiError ? error.message : 'Something went wrong: ' + String(error && error.message)
    if (error instanceof ApiError && error.status === 401 && session !== null) {
      showSignIn('Your session has ended, or its key no longer works (' + message + '). Sign in again.')
      return
    }
    // In an open dialog the error shows there, where the person is looking; elsewhere at the top.
    if (where !== undefined) {
      where.textContent = message
      where.hidden = false
      return
    }
    say(message)
  }

  function say (message) {
    const status = $('status')
    status.textContent = message
    status.hidden = message === ''
  }

  // ---- permissions, as the routes judge them ----------------------------------------------------

  function holds (scope) {
    const held = session.signedIn.scopes
    if (held.includes('*') || held.includes(scope)) return true
    return held.some((h) => h.endsWith(':*') && scope.startsWith(h.slice(0, -1)))
  }

  // ---- small builders ------------------------------------------------------------------------

  function el (tag, text, className) {
    const node = document.createElement(tag)
    if (text !== undefined && text !== null) node.textContent = text
    if (className !== undefined) node.className = className
    return node
  }

  function cell (row, text, className) {
    const td = el('td', text, className)
    row.append(td)
    return td
  }

  function when (iso) {
    if (iso === null || iso === undefined) return null
    const date = new Date(iso)
    return Number.isNaN(date.getTime()) ? String(iso) : date.toISOString().slice(0, 16).replace('T', ' ') + ' UTC'
  }

  function option (select, value, text, selected) {
    const node = el('option', text)
    node.value = value
    // The default too: a form's reset() goes back to it.
    node.defaultSelected = node.selected = selected === true
    select.append(node)
  }

  /** Opens a dialog, remembering what had focus; focus goes back there when it closes. */
  function open (dialog, focus) {
    const opener = document.activeElement
    dialog.addEventListener('close', () => {
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus()
    }, { once: true })
    for (const error of dialog.querySelectorAll('.dialog-error')) { error.hidden = true; error.textContent = '' }
    dialog.showModal()
    if (focus) focus.focus()
  }

  /** A form's submit, one at a time: a second press while the server answers does nothing. */
  function submitting (form, handler) {
    let busy = false
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      if (busy) return
      busy = true
      try {
        await handler()
      } finally {
        busy = false
      }
    })
  }

  for (const cancel of document.querySelectorAll('dialog .cancel')) {
    cancel.addEventListener('click', () => cancel.closest('dialog').close())
  }

  // ---- sign-in and out -----------------------------------------------------------------------

  function showSignIn (message) {
    session = null
    $('workspace').hidden = true
    $('who').hidden = true
    $('keys-body').replaceChildren()
    $('audit-body').replaceChildren()
    $('sign-in').hidden = false
    say(message || '')
    $('sign-in-key').focus()
  }

  function enter (answer) {
    session = answer
    const who = answer.signedIn
    $('who-text').textContent = who.user !== undefined
      ? 'Signed in as ' + who.user + ' (tenant ' + who.tenant + ')'
      : 'Signed in with ' + who.identifier + ' (' + who.name + ', tenant ' + who.tenant + ')'
    // The host's sign-in is signed out of where it was signed in.
    $('sign-out').hidden = who.user !== undefined
    $('who').hidden = false
    $('sign-in').hidden = true
    $('workspace').hidden = false
    $('create-open').hidden = !holds('keys:write')
    $('tab-audit').hidden = !holds('audit:read')
    $('audit-export').hidden = !holds('audit:export')
    fillChoices()
    say('')
    showView('keys')
  }

  submitting($('sign-in-form'), async () => {
    const input = $('sign-in-key')
    // Read once, then gone from the page: the server keeps it, sealed in an HttpOnly cookie.
    const apiKey = input.value.trim()
    input.value = ''
    try {
      enter(await call('POST', consolePath + '/session', { apiKey }))
    } catch (error) {
      failed(error)
      input.focus()
    }
  })

  $('sign-out').addEventListener('click', async () => {
    try {
      await call('DELETE', consolePath + '/session')
      showSignIn('Signed out.')
    } catch (error) {
      failed(error)
    }
  })

  // ---- keys ------------------------------------------------------------------------------------

  function permissionsText (scopes) {
    return scopes.includes('*') ? 'Full access' : scopes.join(', ')
  }

  async function loadKeys () {
    try {
      const keys = await call('GET', route('/list'))
      renderKeys(keys)
    } catch (error) {
      failed(error)
    }
  }

  function renderKeys (keys) {
    const body = $('keys-body')
    const canWrite = holds('keys:write')
    body.replaceChildren()
    for (const key of keys) {
      const row = el('tr')
      const name = cell(row, key.name, 'name')
      if (key.rotationDue) name.append(' ', el('span', 'rotation due', 'badge'))
      cell(row, key.identifier, 'mono')
      cell(row, key.for)
      cell(row, permissionsText(key.scopes))
      cell(row, key.plan)
      cell(row, when(key.created))
      cell(row, when(key.lastUsed) || 'Never')
      cell(row, when(key.expires) || 'Never')
      cell(row, key.owner === null ? 'Service account' : key.owner)
      const actions = cell(row, null, 'actions')
      actions.append(button('Usage', key.name, () => showUsage(key)))
      if (canWrite) {
        actions.append(button('Rotate', key.name, () => askRotate(key)))
        actions.append(button('Revoke', key.name, () => askRevoke(key), 'danger'))
      }
      body.append(row)
    }
    $('keys-empty').hidden = keys.length > 0
  }

  function button (text, keyName, onClick, className) {
    const node = el('button', text, className)
    node.type = 'button'
    node.setAttribute('aria-label', text + ' ' + keyName)
    node.addEventListener('click', onClick)
    return node
  }

  $('refresh').addEventListener('click', () => { void loadKeys() })

  // ---- create ----------------------------------------------------------------------------------

  let choicesFilled = false
  function fillChoices () {
    if (choicesFilled) return
    choicesFilled = true
    const settings = session.settings
    for (const type of settings.keyTypes) option($('create-type'), type, type, type === 'GENERIC')
    for (const plan of settings.plans) option($('create-plan'), plan, plan, plan === settings.defaultPlan)
    const scopes = $('create-scopes')
    scopes.append(scopeBox('*', 'Full access', true))
    for (const scope of settings.scopes) scopes.append(scopeBox(scope, scope, false))
    const graces = [[0, 'None: the old key stops at once'], [3600, '1 hour'], [86400, '1 day'], [604800, '7 days']]
    for (const [seconds, text] of graces) {
      if (seconds <= settings.maxGracePeriodSeconds) option($('rotate-grace'), String(seconds), text, seconds === 0)
    }
    for (const action of settings.auditActions) option($('audit-action'), action, action, false)
  }

  function scopeBox (value, text, checked) {
    const id = 'scope-' + value.replace(/[^a-z0-9]/g, '_').replace(/^_$/, 'all')
    const wrap = el('div', null, 'check')
    const box = el('input')
    box.type = 'checkbox'
    box.id = id
    box.value = value
    box.defaultChecked = box.checked = checked
    box.addEventListener('change', () => {
      // Full access and single permissions exclude each other.
      if (!box.checked) return
      for (const other of $('create-scopes').querySelectorAll('input')) {
        if (other !== box && (value === '*' || other.value === '*')) other.checked = false
      }
    })
    const label = el('label', text)
    label.htmlFor = id
    wrap.append(box, label)
    return wrap
  }

  $('create-open').addEventListener('click', () => {
    $('create-form').reset()
    open($('create-dialog'), $('create-name'))
  })

  submitting($('create-form'), async () => {
    const dialog = $('create-dialog')
    const error = dialog.querySelector('.dialog-error')
    const scopes = [...$('create-scopes').querySelectorAll('input:checked')].map((box) => box.value)
    if (scopes.length === 0) {
      error.textContent = 'Choose at least one permission, or Full access.'
      error.hidden = false
      return
    }
    const body = { name: $('create-name').value, keyFor: $('create-type').value, scopes, plan: $('create-plan').value }
    const expires = $('create-expires').value
    if (expires !== '') body.expiresAt = expires + 'T23:59:59Z'
    try {
      const created = await call('POST', route('/create'), body)
      dialog.close()
      showSecret('Key created: ' + created.name, created.apiKey)
      void loadKeys()
    } catch (thrown) {
      failed(thrown, error)
    }
  })

  // ---- a new key, shown once -------------------------------------------------------------------

  function showSecret (title, keyText) {
    const dialog = $('secret-dialog')
    $('secret-title').textContent = title
    const shown = el('code', keyText, 'secret')
    shown.id = 'secret-value'
    $('secret-slot').replaceChildren(shown)
    $('secret-copied').textContent = ''
    // Closed by Done or Escape alike: the key leaves the page with the dialog.
    dialog.addEventListener('close', () => {
      $('secret-slot').replaceChildren()
      $('secret-copied').textContent = ''
    }, { once: true })
    open(dialog, $('secret-copy'))
  }

  $('secret-copy').addEventListener('click', async () => {
    const shown = $('secret-value')
    if (shown === null) return
    try {
      await navigator.clipboard.writeText(shown.textContent)
      $('secret-copied').textContent = 'Copied.'
    } catch {
      // No clipboard (an insecure origin, a refused permission): select it for Ctrl+C instead.
      const range = document.createRange()
      range.selectNodeContents(shown)
      const selection = window.getSelection()
      selection.removeAllRanges()
      selection.addRange(range)
      $('secret-copied').textContent = 'Selected: press Ctrl+C (or Cmd+C) to copy.'
    }
  })

  $('secret-done').addEventListener('click', () => $('secret-dialog').close())

  // ---- rotate and revoke ---------------------------------------------------------------------

  let acting = null

  function askRotate (key) {
    acting = key
    $('rotate-text').textContent = 'Rotate “' + key.name + '” (' + key.identifier + ')? A new key is made for it; the old one works for the grace period chosen here, then stops.'
    open($('rotate-dialog'), $('rotate-grace'))
  }

  submitting($('rotate-form'), async () => {
    const dialog = $('rotate-dialog')
    try {
      const rotated = await call('POST', keyPath(acting.name, '/rotate'), { gracePeriodSeconds: Number($('rotate-grace').value) })
      dialog.close()
      showSecret('Key rotated: ' + rotated.name, rotated.apiKey)
      void loadKeys()
    } catch (error) {
      failed(error, dialog.querySelector('.dialog-error'))
    }
  })

  function askRevoke (key) {
    acting = key
    $('revoke-text').textContent = 'Revoke “' + key.name + '” (' + key.identifier + ')? Anything using it is refused from its next request. This cannot be undone.'
    open($('revoke-dialog'), $('revoke-dialog').querySelector('.cancel'))
  }

  submitting($('revoke-form'), async () => {
    const dialog = $('revoke-dialog')
    try {
      await call('DELETE', keyPath(acting.name, '/delete'))
      dialog.close()
      say('Revoked “' + acting.name + '”.')
      void loadKeys()
    } catch (error) {
      failed(error, dialog.querySelector('.dialog-error'))
    }
  })

  // ---- usage -----------------------------------------------------------------------------------

  async function showUsage (key) {
    try {
      const usage = await call('GET', keyPath(key.name, '/usage?days=30'))
      renderUsage(key, usage.days)
    } catch (error) {
      failed(error)
    }
  }

  function renderUsage (key, days) {
    const total = days.reduce((sum, day) => sum + day.requests, 0)
    const busiest = days.reduce((best, day) => (day.requests > best.requests ? day : best), days[0])
    $('usage-title').textContent = 'Usage of “' + key.name + '”: daily requests, last 30 days'
    $('usage-summary').textContent = total === 0
      ? 'No requests in the last 30 days.'
      : total + ' requests in the last 30 days; the busiest day was ' + busiest.date + ' with ' + busiest.requests + '.'
    const width = 600
    const height = 140
    const max = Math.max(1, ...days.map((day) => day.requests))
    const slot = width / days.length
    const svg = document.createElementNS(SVG, 'svg')
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + (height + 20))
    svg.setAttribute('role', 'img')
    svg.setAttribute('aria-labelledby', 'usage-summary')
    svg.classList.add('chart')
    days.forEach((day, i) => {
      const bar = document.createElementNS(SVG, 'rect')
      const h = Math.round((day.requests / max) * height)
      bar.setAttribute('x', String(i * slot + 2))
      bar.setAttribute('y', String(height - h))
      bar.setAttribute('width', String(slot - 4))
      bar.setAttribute('height', String(Math.max(h, 1)))
      bar.classList.add(day.requests === 0 ? 'bar-empty' : 'bar')
      const title = document.createElementNS(SVG, 'title')
      title.textContent = day.date + ': ' + day.requests + ' requests'
      bar.append(title)
      svg.append(bar)
    })
    for (const [i, anchor] of [[0, 'start'], [days.length - 1, 'end']]) {
      const label = document.createElementNS(SVG, 'text')
      label.setAttribute('x', String(anchor === 'start' ? 0 : width))
      label.setAttribute('y', String(height + 15))
      label.setAttribute('text-anchor', anchor)
      label.textContent = days[i].date
      svg.append(label)
    }
    $('usage-chart').replaceChildren(svg)
    $('usage').hidden = false
  }

  // ---- audit log -------------------------------------------------------------------------------

  function auditQuery () {
    const query = new URLSearchParams()
    const action = $('audit-action').value
    const target = $('audit-target').value.trim()
    const since = $('audit-since').value
    const until = $('audit-until').value
    if (action !== '') query.set('action', action)
    if (target !== '') query.set('target', target)
    // datetime-local is the person's local time; the route takes ISO 8601 with a zone.
    if (since !== '') query.set('since', new Date(since).toISOString())
    if (until !== '') query.set('until', new Date(until).toISOString())
    return query
  }

  function actorText (actor) {
    if (actor.identifier !== undefined) return 'key ' + actor.identifier
    if (actor.user !== undefined) return 'user ' + actor.user
    return actor.system !== undefined ? actor.system : JSON.stringify(actor)
  }

  async function loadAudit (more) {
    const query = auditQuery()
    query.set('limit', '50')
    if (more && auditCursor !== null) query.set('cursor', auditCursor)
    try {
      const page = await call('GET', route('/audit?' + query.toString()))
      const body = $('audit-body')
      if (!more) body.replaceChildren()
      for (const event of page.events) {
        const row = el('tr')
        cell(row, when(event.at))
        cell(row, event.action, 'mono')
        cell(row, actorText(event.actor))
        const target = event.target
        cell(row, target === null ? '' : [target.name, target.identifier].filter((part) => part !== null && part !== undefined).join(' · '))
        cell(row, event.ip === null ? '' : event.ip)
        body.append(row)
      }
      auditCursor = page.next
      $('audit-more').hidden = page.next === null
      $('audit-empty').hidden = body.children.length > 0
    } catch (error) {
      failed(error)
    }
  }

  $('audit-filters').addEventListener('submit', (event) => {
    event.preventDefault()
    void loadAudit(false)
  })
  $('audit-more').addEventListener('click', () => { void loadAudit(true) })

  /** Fetched with the session, then saved from a blob: the URL carries filters, never a key. */
  async function exportAudit (format) {
    const query = auditQuery()
    query.set('format', format)
    let response
    try {
      response = await fetch(route('/audit/export?' + query.toString()), { credentials: 'same-origin', cache: 'no-store' })
    } catch {
      say('Could not reach the server. Check the connection and try again.')
      return
    }
    if (!response.ok) {
      let message = 'The export failed: the server answered ' + response.status + '.'
      try { message = (await response.json()).message || message } catch {}
      failed(new ApiError(message, response.status))
      return
    }
    const blob = await response.blob()
    const link = el('a')
    link.href = URL.createObjectURL(blob)
    link.download = 'audit-log.' + (format === 'csv' ? 'csv' : 'ndjson')
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
  }

  $('export-csv').addEventListener('click', () => { void exportAudit('csv') })
  $('export-ndjson').addEventListener('click', () => { void exportAudit('ndjson') })

  // ---- views -----------------------------------------------------------------------------------

  function showView (name) {
    say('')
    $('keys-view').hidden = name !== 'keys'
    $('audit-view').hidden = name !== 'audit'
    $('tab-keys').setAttribute('aria-pressed', String(name === 'keys'))
    $('tab-audit').setAttribute('aria-pressed', String(name === 'audit'))
    if (name === 'keys') void loadKeys()
    else void loadAudit(false)
  }

  $('tab-keys').addEventListener('click', () => showView('keys'))
  $('tab-audit').addEventListener('click', () => showView('audit'))

  // ---- start -----------------------------------------------------------------------------------

  ;(async function start () {
    try {
      enter(await call('GET', consolePath + '/session'))
    } catch (error) {
      // Nobody signed in (401), or a key that may not use the console (403): the form, and why.
      showSignIn(error instanceof ApiError && error.status === 401 ? '' : error.message)
    }
  })()
})()
