/*
 * The Worksible dashboard: a person pastes an API key and sees the
 * company's requests (plots of GET /v1/request_logs/stats, the log of
 * GET /v1/request_logs with its filters and cursors), the rate limit
 * against the plan (the RateLimit headers of every answer), and the API
 * keys (create, revoke) as far as the key's scopes allow.
 *
 * Same origin as the API. The key lives in sessionStorage only. Everything
 * shown goes through textContent (a path or a user agent can hold HTML);
 * nothing is loaded from another origin (the page's
 * Content-Security-Policy forbids it anyway).
 */

(function () {
    'use strict';

    var API = '/v1';
    var STORE = 'worksible_key';
    var PAGE = 20;
    var RANGES = {
        '1h': { seconds: 3600, interval: '1m' },
        '24h': { seconds: 86400, interval: '1h' },
        '7d': { seconds: 7 * 86400, interval: '1h' },
        '30d': { seconds: 30 * 86400, interval: '1d' }
    };
    var CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];
    var COLORS = { '1xx': '#7b61a8', '2xx': '#2e7d32', '3xx': '#1e6fb8',
                   '4xx': '#c77700', '5xx': '#b3261e' };

    /* what the page holds; tests read it (window.worksibleDashboard) */
    var state = {
        key: null,
        scopes: null,          /* this key's scopes, once the key list says */
        filters: {},
        range: '24h',
        page: null,            /* the log page shown: {data, has_more, dir} */
        stats: null,
        statsGen: 0,           /* the latest stats and log requests: an */
        logsGen: 0,            /* answer to an older one is dropped */
        charts: { requests: null, latency: null },
        usage: null
    };
    window.worksibleDashboard = state;

    function $(id) {
        return document.getElementById(id);
    }

    function clear(node) {
        while (node.firstChild) {
            node.removeChild(node.firstChild);
        }
    }

    /* a table cell with text, labelled for the narrow (card) layout */
    function cell(label, text, cls) {
        var td = el('td', text, cls);
        td.setAttribute('data-label', label);
        return td;
    }

    /* an element with text (never parsed as HTML) */
    function el(tag, text, cls) {
        var e = document.createElement(tag);
        if (text !== undefined && text !== null) {
            e.textContent = String(text);
        }
        if (cls) {
            e.className = cls;
        }
        return e;
    }

    function message(id, text) {
        $(id).textContent = text || '';
    }

    function isoSeconds(date) {
        return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
    }

    function query(params) {
        var parts = [];
        Object.keys(params).forEach(function (k) {
            var v = params[k];
            if (v !== undefined && v !== null && v !== '') {
                parts.push(encodeURIComponent(k).replace(/%5B/g, '[').replace(/%5D/g, ']')
                           + '=' + encodeURIComponent(v));
            }
        });
        return parts.length ? '?' + parts.join('&') : '';
    }

    /*
     * One API call with the key: {status, json, problem}. status 0: the
     * API was not reached. Every answer updates the rate-limit usage.
     */
    function api(method, path, body, extra) {
        var headers = { 'Authorization': 'Bearer ' + state.key, 'Accept': 'application/json' };
        var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };

        if (body !== undefined) {
            headers['Content-Type'] = 'application/json';
            init.body = JSON.stringify(body);
        }
        Object.keys(extra || {}).forEach(function (h) { headers[h] = extra[h]; });

        return fetch(API + path, init).then(function (res) {
            usage(res.headers);
            return res.text().then(function (text) {
                var json = null;
                try {
                    json = text ? JSON.parse(text) : null;
                } catch (e) {
                    json = null;
                }
                return {
                    status: res.status,
                    json: json,
                    problem: res.ok ? null : (json || { detail: 'The API answered ' + res.status + '.' })
                };
            });
        }, function () {
            return { status: 0, json: null,
                     problem: { detail: 'The API could not be reached.' } };
        });
    }

    /* a refusal as a sentence, naming the scope a section needs */
    function refusal(r, what, scope) {
        var p = r.problem || {};
        if (r.status === 403 && p.code === 'insufficient_scope') {
            return 'This key cannot ' + what + ': it needs the ' + scope + ' scope.';
        }
        return (p.title ? p.title + ': ' : '') + (p.detail || 'The API answered ' + r.status + '.')
               + (p.request_id ? ' (request ' + p.request_id + ')' : '');
    }

    /* --- the rate limit, from RateLimit-Policy and RateLimit --------------- */

    function usage(headers) {
        var policy = headers.get('RateLimit-Policy');
        var limit = headers.get('RateLimit');
        var p, l, used, reset;

        if (!policy || !limit) {
            return;
        }

        p = /^"([^"]*)";q=(\d+);w=(\d+)/.exec(policy);
        l = /^"([^"]*)";r=(\d+);t=(\d+)/.exec(limit);
        if (!p || !l) {
            return;
        }

        state.usage = { plan: p[1], limit: +p[2], window: +p[3], remaining: +l[2],
                        seconds: +l[3], reset: +(headers.get('X-RateLimit-Reset') || 0) };
        used = state.usage.limit - state.usage.remaining;
        reset = state.usage.reset
                ? ' The whole budget is back at ' + new Date(state.usage.reset * 1000)
                      .toISOString().slice(11, 19) + ' UTC.'
                : '';

        $('usage-text').textContent = 'Plan "' + state.usage.plan + '": '
            + state.usage.remaining + ' of ' + state.usage.limit + ' requests left (per '
            + state.usage.window + ' s, shared by all the company\'s keys); '
            + used + ' used.' + reset;
        $('usage-meter').max = state.usage.limit;
        $('usage-meter').value = used;
    }

    /* --- opening with a key --------------------------------------------------- */

    function open(key) {
        state.key = key;
        message('signin-error', '');

        return api('GET', '/companies/me').then(function (me) {
            if (me.status === 401 || me.status === 0) {
                state.key = null;
                sessionStorage.removeItem(STORE);
                message('signin-error', 'This key was refused: ' + (me.problem.detail || ''));
                $('key').focus();
                return;
            }

            sessionStorage.setItem(STORE, key);
            $('signin').hidden = true;
            $('app').hidden = false;
            $('forget').hidden = false;
            $('company').textContent = me.status === 200
                ? me.json.name + ' (' + me.json.id + ')'
                : 'Key ' + key.slice(0, 21) + '...';

            return Promise.all([loadTraffic(), loadKeys()]);
        });
    }

    function forget() {
        sessionStorage.removeItem(STORE);
        window.location.reload();
    }

    /* --- the plots and the log ----------------------------------------------- */

    function readFilters() {
        var f = $('filters').elements;
        state.range = f.range.value;
        state.filters = {
            status: f.status.value,
            method: f.method.value,
            api_key_id: f.api_key_id.value.trim(),
            path: f.path.value
        };
    }

    function loadTraffic() {
        return Promise.all([loadStats(), loadLogs({})]);
    }

    function loadStats() {
        var range = RANGES[state.range];
        var params = Object.assign({
            'created_at[gte]': isoSeconds(new Date(Date.now() - range.seconds * 1000)),
            'interval': range.interval
        }, state.filters);

        var gen = ++state.statsGen;

        return api('GET', '/request_logs/stats' + query(params)).then(function (r) {
            if (gen !== state.statsGen) {
                return;     /* a newer request replaced this one */
            }
            if (r.status !== 200) {
                state.stats = null;
                message('traffic-error', refusal(r, 'read the request log', 'request_logs:read'));
                $('charts').hidden = true;
                return;
            }
            message('traffic-error', '');
            $('charts').hidden = false;
            state.stats = r.json;
            drawStats(r.json);
        });
    }

    function drawStats(s) {
        var xs = s.data.map(function (b) { return Date.parse(b.start) / 1000; });
        var cells = $('class-totals').tBodies[0].rows[0].cells;
        var requests = [xs], latency = [xs];

        CLASSES.forEach(function (c) {
            requests.push(s.data.map(function (b) { return b.status_classes[c]; }));
        });
        ['p50', 'p95', 'p99'].forEach(function (p) {
            latency.push(s.data.map(function (b) { return b.latency_ms[p]; }));
        });

        CLASSES.concat(['401', '403', '429']).forEach(function (c, i) {
            cells[i].textContent = i < 5 ? s.total.status_classes[c] : s.total.refused[c];
        });

        state.charts.requests = chart('chart-requests', state.charts.requests, requests,
            CLASSES.map(function (c) {
                return { label: c, stroke: COLORS[c], width: 2 };
            }), 'requests');
        state.charts.latency = chart('chart-latency', state.charts.latency, latency, [
            { label: 'p50', stroke: '#1e6fb8', width: 2 },
            { label: 'p95', stroke: '#c77700', width: 2 },
            { label: 'p99', stroke: '#b3261e', width: 2 }
        ], 'ms');
    }

    function chart(id, old, data, series, unit) {
        var box = $(id);

        if (old) {
            old.destroy();
        }
        clear(box);

        return new uPlot({
            width: Math.max(box.clientWidth, 200),
            height: 220,
            tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'); },
            scales: { x: { time: true } },
            series: [{ label: 'UTC' }].concat(series.map(function (s) {
                s.points = { show: data[0].length <= 32 };
                s.spanGaps = false;
                return s;
            })),
            axes: [{}, { label: unit, size: 56 }]
        }, data, box);
    }

    function resize() {
        ['requests', 'latency'].forEach(function (name) {
            var c = state.charts[name];
            if (c) {
                c.setSize({ width: Math.max($('chart-' + name).clientWidth, 200), height: 220 });
            }
        });
    }

    /* cursor: {} (newest), {starting_after: id} or {ending_before: id} */
    function loadLogs(cursor) {
        var params = Object.assign({ limit: PAGE }, state.filters, cursor);
        var gen = ++state.logsGen;

        return api('GET', '/request_logs' + query(params)).then(function (r) {
            var body = $('logs').tBodies[0];

            if (gen !== state.logsGen) {
                return;     /* a newer request replaced this one */
            }

            clear(body);
            if (r.status !== 200) {
                message('traffic-error', refusal(r, 'read the request log', 'request_logs:read'));
                state.page = null;
                $('older').disabled = $('newer').disabled = true;
                return;
            }

            state.page = { data: r.json.data, has_more: r.json.has_more,
                           dir: cursor.ending_before ? 'newer'
                                : cursor.starting_after ? 'older' : 'first' };
            r.json.data.forEach(function (log) {
                body.appendChild(logRow(log));
            });
            $('logs-empty').hidden = r.json.data.length > 0;

            /* a page reached by going older has newer ones, and so on */
            $('older').disabled = !(state.page.dir === 'newer' || r.json.has_more);
            $('newer').disabled = !(state.page.dir === 'older'
                                    || (state.page.dir === 'newer' && r.json.has_more));
        });
    }

    function logRow(log) {
        var tr = el('tr', null, 's' + String(log.status).charAt(0));
        var first = cell('Request');
        var id = el('button', log.id, 'id');

        id.type = 'button';
        id.setAttribute('aria-label', 'Details of request ' + log.id);
        id.addEventListener('click', function (ev) {
            ev.stopPropagation();
            detail(log, id);
        });
        first.appendChild(id);
        tr.appendChild(first);
        tr.appendChild(cell('Time', log.created_at, 'time'));
        tr.appendChild(cell('Method', log.method));
        tr.appendChild(cell('Path', log.path, 'path'));
        tr.appendChild(cell('Status', log.status, 'status num'));
        tr.appendChild(cell('ms', log.latency_ms, 'num'));
        tr.appendChild(cell('Key', log.api_key_id || ''));
        tr.addEventListener('click', function () { detail(log, id); });
        return tr;
    }

    var shown = null;     /* the request in the dialog, and where focus was */

    function detail(log, from) {
        var dl = $('detail-fields');

        clear(dl);
        Object.keys(log).forEach(function (k) {
            var v = log[k];
            dl.appendChild(el('dt', k));
            dl.appendChild(el('dd', v === null ? 'null' : typeof v === 'object' ? JSON.stringify(v) : v));
        });
        shown = { log: log, from: from };
        message('detail-copied', '');
        $('detail').showModal();
        $('detail-copy').focus();
    }

    function copy(text, done) {
        var fallback = function () {
            var t = el('textarea');
            t.value = text;
            t.setAttribute('readonly', '');
            document.body.appendChild(t);
            t.select();
            try {
                document.execCommand('copy');
                done('Copied.');
            } catch (e) {
                done('Select and copy it by hand.');
            }
            document.body.removeChild(t);
        };

        if (navigator.clipboard && navigator.clipboard.writeText) {
            navigator.clipboard.writeText(text).then(function () { done('Copied.'); }, fallback);
        } else {
            fallback();
        }
    }

    /* --- the keys ----------------------------------------------------------------- */

    var keyPages = [];

    function loadKeys(after) {
        return api('GET', '/api_keys' + query({ limit: 100, starting_after: after })).then(function (r) {
            var mine, prefix = state.key.split('_').slice(0, 3).join('_');

            if (r.status !== 200) {
                message('keys-error', refusal(r, 'list the API keys', 'api_keys:read'));
                $('key-table').hidden = true;
                $('create-key').hidden = true;
                return;
            }
            message('keys-error', '');
            $('key-table').hidden = false;
            keyPages = after ? keyPages.concat(r.json.data) : r.json.data;
            $('keys-more').hidden = !r.json.has_more;

            mine = keyPages.filter(function (k) { return k.prefix === prefix; })[0];
            if (mine) {
                state.scopes = mine.scopes;
                drawKeys(mine);
                return;
            }
            if (after) {
                drawKeys(null);
                return;
            }
            /* the page's own key is older than the first page: look for it */
            return findMine(prefix, r.json.has_more ? r.json.data[r.json.data.length - 1].id : null);
        });
    }

    /* the pages after `after` until the key with prefix: its scopes decide */
    function findMine(prefix, after) {
        if (!after) {
            state.scopes = null;
            drawKeys(null);
            return null;
        }
        return api('GET', '/api_keys' + query({ limit: 100, starting_after: after })).then(function (r) {
            var mine;

            if (r.status !== 200) {
                state.scopes = null;
                drawKeys(null);
                return;
            }
            mine = r.json.data.filter(function (k) { return k.prefix === prefix; })[0];
            if (mine) {
                state.scopes = mine.scopes;
                drawKeys(mine);
                return;
            }
            return findMine(prefix, r.json.has_more ? r.json.data[r.json.data.length - 1].id : null);
        });
    }

    function canWriteKeys() {
        return !!state.scopes && state.scopes.indexOf('api_keys:write') >= 0;
    }

    function keyState(k) {
        if (k.revoked_at) {
            return 'revoked ' + k.revoked_at;
        }
        if (k.expires_at && Date.parse(k.expires_at) <= Date.now()) {
            return 'expired ' + k.expires_at;
        }
        return k.expires_at ? 'active, expires ' + k.expires_at : 'active';
    }

    function drawKeys(mine) {
        var body = $('key-table').tBodies[0];
        var ids = $('key-ids');

        clear(body);
        clear(ids);
        keyPages.forEach(function (k) {
            var tr = el('tr');
            var act = cell('');
            var opt = el('option', k.name || k.prefix);

            opt.value = k.id;
            ids.appendChild(opt);

            tr.appendChild(cell('Name', k.name || '(no name)'));
            tr.appendChild(cell('Prefix', k.prefix));
            tr.appendChild(cell('Scopes', k.scopes.join(' ')));
            tr.appendChild(cell('Last used', k.last_used_at || 'never'));
            tr.appendChild(cell('State', keyState(k)));
            if (k === mine) {
                act.textContent = 'this key';
            } else if (canWriteKeys() && !k.revoked_at
                       && !(k.expires_at && Date.parse(k.expires_at) <= Date.now())) {
                act.appendChild(revokeButton(k));
            }
            tr.appendChild(act);
            tr.dataset.id = k.id;
            body.appendChild(tr);
        });

        $('create-key').hidden = !canWriteKeys();
        if (canWriteKeys()) {
            drawScopes();
        }
    }

    function revokeButton(k) {
        var b = el('button', 'Revoke', 'danger');

        b.type = 'button';
        b.setAttribute('aria-label', 'Revoke ' + (k.name || k.prefix));
        b.addEventListener('click', function () {
            if (!window.confirm('Revoke the key "' + (k.name || '') + '" (' + k.prefix
                                + ')? Every request with it will be refused.')) {
                return;
            }
            b.disabled = true;
            api('POST', '/api_keys/' + encodeURIComponent(k.id) + '/revoke').then(function (r) {
                if (r.status !== 200) {
                    b.disabled = false;
                    message('keys-error', refusal(r, 'revoke API keys', 'api_keys:write'));
                    return;
                }
                message('keys-error', '');
                return loadKeys();
            });
        });
        return b;
    }

    /* the scopes a new key may have: this key's, and the read of each write */
    function drawScopes() {
        var box = $('new-scopes');
        var legend = box.querySelector('legend');
        var all = [];

        state.scopes.forEach(function (s) {
            var read = s.replace(/:write$/, ':read');
            if (all.indexOf(read) < 0) {
                all.push(read);
            }
            if (all.indexOf(s) < 0) {
                all.push(s);
            }
        });

        clear(box);
        box.appendChild(legend);
        all.forEach(function (s) {
            var label = el('label');
            var input = el('input');
            input.type = 'checkbox';
            input.name = 'scope';
            input.value = s;
            label.appendChild(input);
            label.appendChild(document.createTextNode(' ' + s));
            box.appendChild(label);
        });
    }

    function createKey(ev) {
        var f = $('create-key');
        var button = f.querySelector('button[type=submit]');
        var body = {
            scopes: Array.prototype.filter.call(f.elements.scope || [], function (i) {
                return i.checked;
            }).map(function (i) { return i.value; })
        };

        ev.preventDefault();
        if (f.elements.name.value.trim()) {
            body.name = f.elements.name.value.trim();
        }
        if (f.elements.expires_at.value) {
            body.expires_at = f.elements.expires_at.value.length === 16
                ? f.elements.expires_at.value + ':00Z' : f.elements.expires_at.value + 'Z';
        }
        if (body.scopes.length === 0) {
            message('keys-error', 'Choose at least one scope.');
            return;
        }

        button.disabled = true;
        api('POST', '/api_keys', body, { 'Idempotency-Key': 'dashboard-' + Date.now() + '-'
                                         + Math.random().toString(36).slice(2) })
            .then(function (r) {
                button.disabled = false;
                if (r.status !== 201) {
                    message('keys-error', refusal(r, 'create API keys', 'api_keys:write'));
                    return;
                }
                message('keys-error', '');
                f.reset();
                f.hidden = true;
                $('created-key').textContent = r.json.key;
                $('created').hidden = false;
                $('created-copy').focus();
                return loadKeys();
            });
    }

    function createdDone() {
        $('created-key').textContent = '';
        message('keys-error', '');
        $('created').hidden = true;
        $('create-key').hidden = !canWriteKeys();
    }

    /* --- wiring ------------------------------------------------------------------------ */

    document.addEventListener('DOMContentLoaded', function () {
        var saved = sessionStorage.getItem(STORE);

        $('key-form').addEventListener('submit', function (ev) {
            ev.preventDefault();
            open($('key').value.trim());
            $('key').value = '';
        });
        $('forget').addEventListener('click', forget);
        $('filters').addEventListener('submit', function (ev) {
            ev.preventDefault();
            readFilters();
            loadTraffic();
        });
        $('older').addEventListener('click', function () {
            var d = state.page.data;
            loadLogs({ starting_after: d[d.length - 1].id });
        });
        $('newer').addEventListener('click', function () {
            loadLogs({ ending_before: state.page.data[0].id });
        });
        $('detail-copy').addEventListener('click', function () {
            copy(shown.log.id, function (m) { message('detail-copied', m); });
        });
        $('detail-close').addEventListener('click', function () { $('detail').close(); });
        $('detail').addEventListener('close', function () {
            if (shown && shown.from) {
                shown.from.focus();
            }
        });
        $('keys-more').addEventListener('click', function () {
            loadKeys(keyPages[keyPages.length - 1].id);
        });
        $('create-key').addEventListener('submit', createKey);
        $('created-copy').addEventListener('click', function () {
            copy($('created-key').textContent, function (m) { message('keys-error', m); });
        });
        $('created-done').addEventListener('click', createdDone);
        window.addEventListener('resize', resize);

        if (saved) {
            open(saved);
        } else {
            $('key').focus();
        }
    });
}());
