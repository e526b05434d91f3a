// The hosted sign-in page.  Tokens live in this closure's memory only: never in
// localStorage, sessionStorage or cookies, so another script, a browser
// extension reading storage or a later visitor of the machine finds nothing.
// A reload signs the person out; that is the price (docs/ui.md).
(() => {
  'use strict';

  const app = document.getElementById('app');
  const API = app.dataset.api || '';
  const session = { access: null, refresh: null, user: null };
  let pendingEmail = '';
  let mfaToken = null; // the second step's token, from /login: memory only, like the session's
  let enrolToken = null; // under MFA_POLICY=required: the token that may only set up an authenticator app
  let flash = null; // a message to show on the next view

  const $ = (id) => document.getElementById(id);
  const views = ['signin', 'mfa', 'enrol', 'signup', 'verify', 'forgot', 'reset', 'account'];
  const needsSession = new Set(['account']);
  const needsEmail = new Set(['verify', 'reset']);

  // ---- talking to the API ------------------------------------------------------

  async function send(method, path, body, withToken) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (withToken && session.access) headers.Authorization = 'Bearer ' + session.access;
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch (err) {
      return { ok: false, status: 0, data: { error: 'Network error', message: 'The service could not be reached. Check your connection and try again.' } };
    }
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    return { ok: response.ok, status: response.status, data };
  }

  async function api(method, path, body, withToken) {
    let answer = await send(method, path, body, withToken);
    if (withToken && answer.status === 401 && session.refresh && (await refreshTokens())) {
      answer = await send(method, path, body, withToken);
    }
    if (withToken && answer.status === 401) {
      forget();
      flash = { error: 'Your session has ended. Please sign in again.' };
      go('signin');
    }
    return answer;
  }

  async function refreshTokens() {
    const answer = await send('POST', '/token/refresh', { refresh: session.refresh }, false);
    if (!answer.ok) return false;
    session.access = answer.data.access;
    session.refresh = answer.data.refresh;
    return true;
  }

  function keep(data) {
    session.access = data.access;
    session.refresh = data.refresh;
    if (data.user) session.user = data.user;
  }

  function forget() {
    session.access = null;
    session.refresh = null;
    session.user = null;
    $('who').hidden = true;
    $('who').textContent = '';
    forgetEnrolment();
    $('twostep-recovery').hidden = true;
    $('twostep-recovery-list').replaceChildren();
  }

  // ---- messages and field errors --------------------------------------------------

  function say(kind, text) {
    const other = kind === 'notice' ? 'error' : 'notice';
    $(other).hidden = true;
    const box = $(kind);
    box.textContent = text;
    box.hidden = !text;
  }

  function clearMessages(form) {
    say('notice', '');
    say('error', '');
    if (!form) return;
    form.querySelectorAll('.field-error').forEach((p) => p.remove());
    form.querySelectorAll('[aria-invalid]').forEach((input) => {
      input.removeAttribute('aria-invalid');
      const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && !id.endsWith('-error'));
      if (ids.length) input.setAttribute('aria-describedby', ids.join(' ')); else input.removeAttribute('aria-describedby');
    });
  }

  // The API's own words: {"error", "message"}, or {"field": ["reason", ...]}.
  function showProblem(form, answer) {
    const data = answer.data || {};
    if (typeof data.message === 'string') {
      let text = data.message;
      if (answer.status === 429 && data.retry_after) text += ` (try again in ${data.retry_after} s)`;
      say('error', text);
      return;
    }
    const unplaced = [];
    let first = null;
    for (const [name, reasons] of Object.entries(data)) {
      const text = Array.isArray(reasons) ? reasons.join(' ') : String(reasons);
      const input = form && form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!input) { unplaced.push(text); continue; }
      const note = document.createElement('p');
      note.className = 'field-error';
      note.id = `${input.id}-error`;
      note.textContent = text;
      input.closest('.field').appendChild(note);
      input.setAttribute('aria-invalid', 'true');
      const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
      input.setAttribute('aria-describedby', [...ids, note.id].join(' '));
      first = first || input;
    }
    say('error', unplaced.length ? unplaced.join(' ') : 'Please correct the highlighted fields.');
    if (first) first.focus();
  }

  function fields(form) {
    const out = {};
    new FormData(form).forEach((value, name) => { out[name] = typeof value === 'string' ? value : ''; });
    return out;
  }

  function busy(form, on) {
    form.querySelectorAll('button').forEach((b) => { b.disabled = on; });
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  function onSubmit(id, handler) {
    const form = $(id);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearMessages(form);
      busy(form, true);
      try { await handler(form, fields(form)); } finally { busy(form, false); }
    });
  }

  function onClick(id, handler) {
    const button = $(id);
    button.addEventListener('click', async () => {
      clearMessages(null);
      button.disabled = true;
      try { await handler(); } finally { button.disabled = false; }
    });
  }

  // ---- views ----------------------------------------------------------------

  function go(view) {
    if (location.hash !== '#' + view) location.hash = view; else show(view);
  }

  function show(view) {
    if (!views.includes(view)) view = session.access ? 'account' : 'signin';
    if (needsSession.has(view) && !session.access) view = 'signin';
    if (needsEmail.has(view) && !pendingEmail) view = view === 'reset' ? 'forgot' : 'signin';
    if (view === 'mfa' && !mfaToken) view = 'signin';
    if (view === 'enrol' && !enrolToken) view = 'signin';
    if (view === 'signin' && session.access) view = 'account';
    if (location.hash !== '#' + view) history.replaceState(null, '', '#' + view);
    for (const name of views) $('view-' + name).hidden = name !== view;
    document.querySelectorAll('[data-pending-email]').forEach((el) => { el.textContent = pendingEmail; });
    say('notice', flash && flash.notice ? flash.notice : '');
    if (flash && flash.error) say('error', flash.error);
    flash = null;
    const title = $('view-' + view).querySelector('h1');
    document.title = `${title.textContent} · ${app.dataset.service}`;
    title.focus();
    if (view === 'account') loadAccount();
  }

  window.addEventListener('hashchange', () => show(location.hash.slice(1)));

  // ---- sign-up and the emailed code ---------------------------------------------------

  onSubmit('form-signup', async (form, data) => {
    const answer = await api('POST', '/register', data);
    if (!answer.ok) return showProblem(form, answer);
    pendingEmail = data.email.trim().toLowerCase();
    form.reset();
    flash = { notice: answer.data.message };
    go('verify');
  });

  onSubmit('form-verify', async (form, data) => {
    const answer = await api('POST', '/verify-otp', { email: pendingEmail, otp: data.otp.trim() });
    if (!answer.ok) return showProblem(form, answer);
    form.reset();
    $('signin-email').value = pendingEmail;
    flash = { notice: 'Your email is verified. You can sign in now.' };
    go('signin');
  });

  onClick('verify-resend', async () => {
    const answer = await api('POST', '/resend-otp', { email: pendingEmail, context: 'registration' });
    if (!answer.ok) return showProblem($('form-verify'), answer);
    say('notice', answer.data.message);
  });

  // ---- sign-in ----------------------------------------------------------------

  async function signedIn(data) {
    keep(data);
    $('form-signin').reset();
    go('account');
  }

  onSubmit('form-signin', async (form, data) => {
    const answer = await api('POST', '/login', data);
    if (answer.ok && answer.data.mfa_required) {
      // The password was right; the account has a second factor.
      mfaToken = answer.data.mfa_token;
      $('form-signin').reset();
      return go('mfa');
    }
    if (answer.ok && answer.data.mfa_enrollment_required) {
      // The password was right; the service requires a second factor this account has not set up yet.
      const setup = await api('POST', '/mfa/totp/setup', { mfa_token: answer.data.mfa_token });
      if (!setup.ok) return showProblem(form, setup);
      enrolToken = answer.data.mfa_token;
      $('form-signin').reset();
      $('enrol-qr').src = 'data:image/svg+xml;base64,' + btoa(setup.data.qr_svg);
      $('enrol-secret').textContent = setup.data.secret;
      return go('enrol');
    }
    if (answer.ok) return signedIn(answer.data);
    if (answer.status === 403 && answer.data.can_resend_otp) {
      pendingEmail = (answer.data.email || data.email).trim().toLowerCase();
      const resent = await api('POST', '/resend-otp', { email: pendingEmail, context: 'registration' });
      flash = { notice: resent.ok ? 'Your email is not verified yet: we sent you a new code.' : answer.data.message };
      return go('verify');
    }
    showProblem(form, answer);
  });

  onSubmit('form-mfa', async (form, data) => {
    const answer = await api('POST', '/login/mfa', { mfa_token: mfaToken, code: data.code.trim() });
    if (!answer.ok) return showProblem(form, answer);
    mfaToken = null;
    form.reset();
    signedIn(answer.data);
  });

  function forgetEnrolToken() {
    enrolToken = null;
    $('enrol-qr').removeAttribute('src');
    $('enrol-secret').textContent = '';
  }

  onSubmit('form-enrol', async (form, data) => {
    const answer = await api('POST', '/mfa/totp/confirm', { mfa_token: enrolToken, code: data.code.trim() });
    if (!answer.ok) return showProblem(form, answer);
    forgetEnrolToken();
    form.reset();
    showRecoveryCodes(answer.data.recovery_codes);
    flash = { notice: 'Two-step sign-in is on. Save your recovery codes now: they are not shown again.' };
    signedIn(answer.data);
  });

  onClick('passkey-signin', async () => {
    const form = $('form-signin');
    const email = $('signin-email').value.trim();
    const options = await api('POST', '/webauthn/login/options', email ? { email } : {});
    if (!options.ok) return showProblem(form, options);
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.data) });
    } catch (err) {
      return say('error', passkeyProblem(err));
    }
    const answer = await api('POST', '/webauthn/login/verify', { credential: credentialJSON(credential) });
    if (!answer.ok) return showProblem(form, answer);
    signedIn(answer.data);
  });

  // ---- forgot password -> code -> new password ---------------------------------------------

  onSubmit('form-forgot', async (form, data) => {
    const answer = await api('POST', '/forgot-password', data);
    if (!answer.ok) return showProblem(form, answer);
    pendingEmail = data.email.trim().toLowerCase();
    form.reset();
    flash = { notice: answer.data.message };
    go('reset');
  });

  onSubmit('form-reset', async (form, data) => {
    const answer = await api('POST', '/reset-password', { email: pendingEmail, ...data, otp: data.otp.trim() });
    if (!answer.ok) return showProblem(form, answer);
    form.reset();
    $('signin-email').value = pendingEmail;
    flash = { notice: 'Your password is changed and every device was signed out. Sign in with the new one.' };
    go('signin');
  });

  onClick('reset-resend', async () => {
    const answer = await api('POST', '/resend-password-reset-otp', { email: pendingEmail });
    if (!answer.ok) return showProblem($('form-reset'), answer);
    say('notice', answer.data.message);
  });

  // ---- the account -----------------------------------------------------------------

  function fillProfile(user) {
    session.user = user;
    const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
    const values = {
      email: user.email,
      name: name || '—',
      phone_number: user.phone_number || '—',
      date_joined: new Date(user.date_joined).toLocaleDateString(undefined, { year: 'numeric', month: 'long', day: 'numeric' }),
    };
    document.querySelectorAll('[data-user]').forEach((el) => { el.textContent = values[el.dataset.user]; });
    $('profile-first-name').value = user.first_name || '';
    $('profile-last-name').value = user.last_name || '';
    $('profile-phone').value = user.phone_number || '';
    $('who').textContent = user.email;
    $('who').hidden = false;
  }

  async function loadAccount() {
    if (session.user) fillProfile(session.user);
    const profile = await api('GET', '/profile', undefined, true);
    if (profile.ok) fillProfile(profile.data);
    await loadSessions();
    await loadPasskeys();
    await loadTwoStep();
  }

  onSubmit('form-profile', async (form, data) => {
    const answer = await api('PUT', '/profile', data, true);
    if (!answer.ok) return showProblem(form, answer);
    fillProfile(answer.data);
    $('profile-edit').open = false;
    say('notice', 'Your profile is saved.');
  });

  onSubmit('form-password', async (form, data) => {
    if (!data.code) delete data.code;
    const answer = await api('POST', '/change-password', data, true);
    if (!answer.ok) return showProblem(form, answer);
    keep(answer.data);
    form.reset();
    $('password-change').open = false;
    say('notice', answer.data.message);
  });

  // ---- email change: password and new address, then the code sent there -------------------

  let newEmail = '';

  function emailStep(second) {
    $('form-email').hidden = second;
    $('form-email-code').hidden = !second;
    document.querySelectorAll('[data-new-email]').forEach((el) => { el.textContent = newEmail; });
    (second ? $('email-code') : $('email-new')).focus();
  }

  onSubmit('form-email', async (form, data) => {
    const answer = await api('POST', '/change-email', data, true);
    if (!answer.ok) return showProblem(form, answer);
    newEmail = data.new_email.trim().toLowerCase();
    form.reset();
    say('notice', answer.data.message);
    emailStep(true);
  });

  onSubmit('form-email-code', async (form, data) => {
    const answer = await api('POST', '/change-email/verify', { otp: data.otp.trim() }, true);
    if (!answer.ok) return showProblem(form, answer);
    keep(answer.data);
    form.reset();
    newEmail = '';
    emailStep(false);
    $('email-change').open = false;
    if (session.user) fillProfile({ ...session.user, email: answer.data.email });
    await loadSessions();
    say('notice', `Your email is now ${answer.data.email}. Other devices were signed out.`);
  });

  onClick('email-restart', async () => {
    $('form-email-code').reset();
    newEmail = '';
    emailStep(false);
  });

  // ---- sessions ----------------------------------------------------------------------

  // A readable name for a user agent: "Firefox on Windows"; the full string stays in the meta line.
  function deviceName(agent) {
    if (!agent) return 'Unknown device';
    const browsers = [[/Edg\//, 'Edge'], [/OPR\/|Opera/, 'Opera'], [/Firefox\//, 'Firefox'], [/Chrom(e|ium)\//, 'Chrome'], [/Safari\//, 'Safari']];
    const systems = [[/Android/, 'Android'], [/iPhone|iPad|iPod/, 'iOS'], [/Windows/, 'Windows'], [/Mac OS X|Macintosh/, 'macOS'], [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux']];
    const browser = (browsers.find(([pattern]) => pattern.test(agent)) || [])[1];
    const system = (systems.find(([pattern]) => pattern.test(agent)) || [])[1];
    if (browser && system) return `${browser} on ${system}`;
    return browser || system || agent.slice(0, 40);
  }

  async function loadSessions() {
    const answer = await api('GET', '/sessions', undefined, true);
    if (!answer.ok) return;
    const list = $('session-list');
    list.replaceChildren();
    // This device first, then the others, newest first (the API's order).
    const sessions = [...answer.data.sessions].sort((a, b) => Number(b.current) - Number(a.current));
    for (const one of sessions) {
      const item = document.createElement('li');
      const text = document.createElement('div');
      const name = document.createElement('div');
      name.className = 'item-name';
      const device = deviceName(one.user_agent);
      name.textContent = device;
      if (one.current) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = 'this device';
        name.append(' ', tag);
      }
      const meta = document.createElement('div');
      meta.className = 'item-meta';
      meta.textContent = `${one.ip || 'unknown address'} · last used ${when(one.last_used_at)} · signed in ${when(one.created_at)}`;
      const agent = document.createElement('div');
      agent.className = 'item-meta agent';
      agent.textContent = one.user_agent || '';
      text.append(name, meta, agent);
      item.append(text);
      if (!one.current) {
        const end = document.createElement('button');
        end.type = 'button';
        end.className = 'danger';
        end.textContent = 'End';
        end.setAttribute('aria-label', `End the session on ${device} (${one.ip || 'unknown address'})`);
        end.addEventListener('click', async () => {
          clearMessages(null);
          end.disabled = true;
          const gone = await api('DELETE', '/sessions/' + encodeURIComponent(one.id), undefined, true);
          if (!gone.ok && gone.status !== 404) { end.disabled = false; return showProblem(null, gone); }
          say('notice', `The session on ${device} is ended: it is signed out.`);
          loadSessions();
        });
        item.append(end);
      }
      list.append(item);
    }
  }

  onClick('sessions-reload', () => loadSessions());

  async function signOut(all) {
    await api('POST', '/logout', { all }, true);
    forget();
    flash = { notice: all ? 'You are signed out on every device.' : 'You are signed out.' };
    go('signin');
  }

  onClick('signout', () => signOut(false));
  onClick('signout-all', () => signOut(true));

  // ---- two-step sign-in (an authenticator app) -----------------------------------

  async function loadTwoStep() {
    const answer = await api('GET', '/mfa', undefined, true);
    if (!answer.ok) return;
    const on = answer.data.totp_enabled;
    $('twostep-state').textContent = on
      ? `On: signing in asks for a code from your authenticator app. Recovery codes left: ${answer.data.recovery_codes_left}.`
      : 'Off: your password alone signs you in. An authenticator app adds a second step.';
    $('twostep-add').hidden = on;
    $('password-code-field').hidden = !on;
  }

  function forgetEnrolment() {
    $('twostep-enrol').hidden = true;
    $('twostep-qr').removeAttribute('src');
    $('twostep-secret').textContent = '';
  }

  onSubmit('form-twostep-setup', async (form, data) => {
    const answer = await api('POST', '/mfa/totp/setup', { password: data.password }, true);
    if (!answer.ok) return showProblem(form, answer);
    form.reset();
    // An <img> of the SVG: the markup is never put into the page, and the CSP allows data: images only.
    $('twostep-qr').src = 'data:image/svg+xml;base64,' + btoa(answer.data.qr_svg);
    $('twostep-secret').textContent = answer.data.secret;
    $('twostep-enrol').hidden = false;
    $('twostep-code').focus();
  });

  onSubmit('form-twostep-confirm', async (form, data) => {
    const answer = await api('POST', '/mfa/totp/confirm', { code: data.code.trim() }, true);
    if (!answer.ok) return showProblem(form, answer);
    form.reset();
    forgetEnrolment();
    $('twostep-add').open = false;
    showRecoveryCodes(answer.data.recovery_codes);
    say('notice', 'Two-step sign-in is on. Save your recovery codes now: they are not shown again.');
    loadTwoStep();
  });

  function showRecoveryCodes(codes) {
    const list = $('twostep-recovery-list');
    list.replaceChildren();
    for (const code of codes) {
      const item = document.createElement('li');
      item.textContent = code;
      list.append(item);
    }
    $('twostep-recovery').hidden = false;
  }

  // ---- passkeys -------------------------------------------------------------------

  const b64url = {
    encode(buffer) {
      const bytes = new Uint8Array(buffer);
      let text = '';
      for (const b of bytes) text += String.fromCharCode(b);
      return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    },
    decode(text) {
      const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
      return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer;
    },
  };

  function creationOptions(o) {
    return {
      ...o,
      challenge: b64url.decode(o.challenge),
      user: { ...o.user, id: b64url.decode(o.user.id) },
      excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
    };
  }

  function requestOptions(o) {
    return {
      ...o,
      challenge: b64url.decode(o.challenge),
      allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
    };
  }

  function credentialJSON(credential) {
    const r = credential.response;
    const out = {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: b64url.encode(r.clientDataJSON) },
    };
    if (credential.authenticatorAttachment) out.authenticatorAttachment = credential.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = b64url.encode(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    }
    if (r.authenticatorData) {
      out.response.authenticatorData = b64url.encode(r.authenticatorData);
      out.response.signature = b64url.encode(r.signature);
      if (r.userHandle) out.response.userHandle = b64url.encode(r.userHandle);
    }
    return out;
  }

  function passkeyProblem(err) {
    if (err && err.name === 'NotAllowedError') return 'The passkey request was cancelled or timed out.';
    if (err && err.name === 'InvalidStateError') return 'This device already holds a passkey for your account.';
    if (err && err.name === 'SecurityError') return 'Passkeys do not work on this address. Open the page on its configured domain.';
    return 'Your browser could not use a passkey here.';
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : 'never';
  }

  async function loadPasskeys() {
    const answer = await api('GET', '/webauthn/credentials', undefined, true);
    if (!answer.ok) return;
    const list = $('passkey-list');
    list.replaceChildren();
    for (const key of answer.data.credentials) {
      const item = document.createElement('li');
      const text = document.createElement('div');
      const name = document.createElement('div');
      name.className = 'item-name';
      name.textContent = key.name;
      if (key.backed_up) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = 'synced';
        name.append(' ', tag);
      }
      const meta = document.createElement('div');
      meta.className = 'item-meta';
      meta.textContent = `Added ${when(key.created_at)} · last used ${when(key.last_used_at)}`;
      text.append(name, meta);
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'danger';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove the passkey ${key.name}`);
      remove.addEventListener('click', async () => {
        clearMessages(null);
        remove.disabled = true;
        const gone = await api('DELETE', '/webauthn/credentials/' + encodeURIComponent(key.id), undefined, true);
        if (!gone.ok) { remove.disabled = false; return showProblem(null, gone); }
        say('notice', `The passkey “${key.name}” is removed.`);
        loadPasskeys();
      });
      item.append(text, remove);
      list.append(item);
    }
    $('passkey-none').hidden = answer.data.credentials.length > 0;
  }

  onSubmit('form-passkey', async (form, data) => {
    const options = await api('POST', '/webauthn/register/options', { password: data.password }, true);
    if (!options.ok) return showProblem(form, options);
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: creationOptions(options.data) });
    } catch (err) {
      return say('error', passkeyProblem(err));
    }
    const answer = await api('POST', '/webauthn/register/verify', { credential: credentialJSON(credential), name: data.name.trim() }, true);
    if (!answer.ok) return showProblem(form, answer);
    form.reset();
    $('passkey-add').open = false;
    say('notice', `Passkey “${answer.data.credential.name}” added. You can sign in with it from now on.`);
    loadPasskeys();
  });

  // ---- start ------------------------------------------------------------------------

  if (!window.PublicKeyCredential) {
    document.querySelectorAll('[data-needs-passkeys]').forEach((el) => {
      el.disabled = true;
      el.title = 'This browser does not support passkeys.';
    });
  }
  show(location.hash.slice(1));
})();
