// The browser half of t/dashboard.t: Debian's chromium, headless, driven by
// playwright-core (dashboard/package-lock.json; NODE_PATH points at
// dashboard/node_modules). It does what a person does on the dashboard
// and prints what it saw as one JSON object; t/dashboard.t asserts it and
// checks the API's side. Screenshots go to $DASHBOARD_SHOTS.
//
// Input, the JSON in $DASHBOARD_TEST: {origin, admin, traffic_key_id,
// noscope, victim_id, chromium}.

'use strict';

const { chromium } = require('playwright-core');
const path = require('path');

const cfg = JSON.parse(process.env.DASHBOARD_TEST);
const shots = process.env.DASHBOARD_SHOTS;
const out = { console: [], foreign: [], dialogs: [] };
const TIMEOUT = 15000;

function watch(page) {
    page.setDefaultTimeout(TIMEOUT);
    page.on('console', (m) => {
        const url = (m.location() || {}).url || '';
        // the API's refusals the test asks for (401, 403) are no fault
        if ((m.type() === 'error' || m.type() === 'warning')
            && !(/^Failed to load resource: the server responded with a status of 40[13]\b/
                   .test(m.text()) && url.startsWith(cfg.origin + '/v1/'))) {
            out.console.push(m.text() + (url ? ' (' + url + ')' : ''));
        }
    });
    page.on('pageerror', (e) => out.console.push('pageerror: ' + e.message));
    page.on('request', (r) => {
        if (!r.url().startsWith(cfg.origin + '/')) {
            out.foreign.push(r.url());
        }
    });
    page.on('dialog', (d) => {
        out.dialogs.push(d.message());
        d.accept();
    });
}

// clicks, then waits for the stats and the list the page asks for
async function applyFilters(page, click) {
    await Promise.all([
        page.waitForResponse((r) => r.url().includes('/v1/request_logs/stats')),
        page.waitForResponse((r) => /\/v1\/request_logs\?/.test(r.url())),
        click(),
    ]);
    await page.waitForTimeout(100);
}

async function logIds(page) {
    return page.$$eval('#logs tbody button.id', (bs) => bs.map((b) => b.textContent));
}

async function main() {
    const browser = await chromium.launch({
        executablePath: cfg.chromium,
        headless: true,
        // root in CI: chromium's sandbox needs an unprivileged user
        args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cfg.origin });
    const page = await ctx.newPage();
    watch(page);

    // --- a key that is refused, then the admin key, with the keyboard only ---
    await page.goto(cfg.origin + '/dashboard/');
    out.focus_at_start = await page.evaluate(() => document.activeElement.id);
    await page.keyboard.type('wsk_live_000000000000_' + 'A'.repeat(32));
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('signin-error').textContent !== '');
    out.bad_key_message = await page.textContent('#signin-error');
    out.bad_key_stored = await page.evaluate(() => sessionStorage.getItem('worksible_key'));

    await page.keyboard.type(cfg.admin);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#app:not([hidden])');
    await page.waitForFunction(() => document.querySelectorAll('#key-table tbody tr').length > 0);
    out.company = await page.textContent('#company');
    out.session_key = await page.evaluate(() => sessionStorage.getItem('worksible_key'));
    out.local_storage = await page.evaluate(() => localStorage.length);
    out.cookies = (await ctx.cookies()).length;

    // --- the traffic key's requests of the last hour ---
    await page.selectOption('#filters select[name=range]', '1h');
    await page.fill('#filters input[name=api_key_id]', cfg.traffic_key_id);
    await applyFilters(page, () => page.click('#filters button[type=submit]'));
    out.plot = await page.evaluate(() => {
        const c = window.worksibleDashboard.charts.requests;
        const sums = {};
        c.series.slice(1).forEach((s, i) => {
            sums[s.label] = c.data[i + 1].reduce((a, b) => a + (b || 0), 0);
        });
        return { sums: sums, buckets: c.data[0].length, width: c.width };
    });
    out.latency_series = await page.evaluate(() =>
        window.worksibleDashboard.charts.latency.series.slice(1).map((s) => s.label));
    out.totals = await page.$$eval('#class-totals tbody td', (tds) => tds.map((t) => t.textContent));
    out.usage = await page.textContent('#usage-text');
    await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });

    // --- paging to the oldest row, and back ---
    out.pages = [await logIds(page)];
    out.older_at_first = await page.isDisabled('#older') ? 'disabled' : 'enabled';
    out.newer_at_first = await page.isDisabled('#newer') ? 'disabled' : 'enabled';
    for (let i = 0; i < 10 && !(await page.isDisabled('#older')); i++) {
        await Promise.all([
            page.waitForResponse((r) => r.url().includes('starting_after=')),
            page.click('#older'),
        ]);
        await page.waitForTimeout(50);
        out.pages.push(await logIds(page));
    }
    out.newer_at_last = await page.isDisabled('#newer') ? 'disabled' : 'enabled';
    await Promise.all([
        page.waitForResponse((r) => r.url().includes('ending_before=')),
        page.click('#newer'),
    ]);
    await page.waitForTimeout(50);
    out.back = await logIds(page);

    // --- 4xx only ---
    await page.selectOption('#filters select[name=status]', '4xx');
    await applyFilters(page, () => page.click('#filters button[type=submit]'));
    out.refused = await logIds(page);
    out.refused_statuses = await page.$$eval('#logs tbody td.status', (tds) => tds.map((t) => t.textContent));
    out.plot_4xx = await page.evaluate(() => {
        const c = window.worksibleDashboard.charts.requests;
        return c.data.slice(1).map((d) => d.reduce((a, b) => a + (b || 0), 0));
    });

    // --- HTML in a path and in a user agent is text ---
    out.paths = await page.$$eval('#logs tbody td.path', (tds) => tds.map((t) => t.textContent));
    out.scripts_in_table = await page.$$eval('#logs script, #logs img', (e) => e.length);
    out.pwned = await page.evaluate(() => String(window.pwned));

    // --- a row's fields, by keyboard; its id copied ---
    const row = await page.$$eval('#logs tbody tr', (trs, ua) => trs.findIndex((tr) =>
        tr.querySelector('td.path').textContent === ua), cfg.ua_path);
    const button = page.locator('#logs tbody button.id').nth(row);
    await button.focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#detail[open]');
    out.detail = await page.$$eval('#detail-fields dt', (dts) => {
        const o = {};
        dts.forEach((dt) => { o[dt.textContent] = dt.nextElementSibling.textContent; });
        return o;
    });
    out.detail_imgs = await page.$$eval('#detail img, #detail script', (e) => e.length);
    await page.screenshot({ path: path.join(shots, 'dashboard-detail.png') });
    await page.keyboard.press('Enter');     // the focused "Copy request id"
    await page.waitForFunction(() => document.getElementById('detail-copied').textContent !== '');
    out.copied_message = await page.textContent('#detail-copied');
    out.clipboard = await page.evaluate(() => navigator.clipboard.readText());
    await page.keyboard.press('Escape');
    await page.waitForSelector('#detail:not([open])', { state: 'attached' });
    out.focus_after_close = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));

    // --- keys: last_used_at, revoke, create ---
    out.keys = await page.$$eval('#key-table tbody tr', (trs) => trs.map((tr) => ({
        id: tr.dataset.id,
        cells: Array.from(tr.cells).map((c) => c.textContent),
        revoke: !!tr.querySelector('button'),
    })));
    await Promise.all([
        page.waitForResponse((r) => r.url().includes('/revoke')),
        page.click(`#key-table tr[data-id="${cfg.victim_id}"] button`),
    ]);
    await page.waitForFunction((id) => {
        const tr = document.querySelector(`#key-table tr[data-id="${id}"]`);
        return tr && /^revoked/.test(tr.cells[4].textContent);
    }, cfg.victim_id);
    out.victim_after = await page.$eval(`#key-table tr[data-id="${cfg.victim_id}"]`,
        (tr) => ({ state: tr.cells[4].textContent, revoke: !!tr.querySelector('button') }));

    out.new_scopes = await page.$$eval('#new-scopes input', (is) => is.map((i) => i.value));
    await page.fill('#new-name', 'made in the browser');
    await page.check('#new-scopes input[value="company:read"]');
    await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/v1/api_keys') && r.request().method() === 'POST'),
        page.click('#create-key button[type=submit]'),
    ]);
    await page.waitForSelector('#created:not([hidden])');
    out.created_key = await page.textContent('#created-key');
    await page.screenshot({ path: path.join(shots, 'dashboard-keys.png'), fullPage: true });
    await page.click('#created-done');
    out.created_after_done = await page.textContent('#created-key');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#key-table td'))
        .some((td) => td.textContent === 'made in the browser'));
    out.page_text_has_key = await page.evaluate((k) => document.body.innerText.includes(k),
                                                out.created_key);

    // --- 360 px wide, the key kept by the tab's session ---
    await page.setViewportSize({ width: 360, height: 780 });
    await page.reload();
    await page.waitForSelector('#app:not([hidden])');
    await page.waitForFunction(() => window.worksibleDashboard.charts.requests !== null);
    await page.waitForTimeout(200);
    out.narrow = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        chart: window.worksibleDashboard.charts.requests.width,
    }));
    await page.screenshot({ path: path.join(shots, 'dashboard-360.png'), fullPage: true });
    await page.screenshot({ path: path.join(shots, 'dashboard-360-top.png') });
    await page.locator('#logs').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(shots, 'dashboard-360-log.png') });

    // --- forget the key ---
    await page.click('#forget');
    await page.waitForSelector('#signin:not([hidden])');
    out.after_forget = await page.evaluate(() => sessionStorage.getItem('worksible_key'));

    // --- a key without request_logs:read ---
    const other = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const p2 = await other.newPage();
    watch(p2);
    await p2.goto(cfg.origin + '/dashboard/');
    await p2.fill('#key', cfg.noscope);
    await p2.click('#key-form button');
    await p2.waitForFunction(() => document.getElementById('traffic-error').textContent !== ''
                             && document.getElementById('keys-error').textContent !== '');
    // the log's refusal may come before the plots' (both are asked at once)
    await p2.waitForSelector('#charts', { state: 'hidden', timeout: 5000 }).catch(() => {});
    out.noscope_message = await p2.textContent('#traffic-error');
    out.noscope_keys_message = await p2.textContent('#keys-error');
    out.noscope_charts_hidden = await p2.isHidden('#charts');
    await p2.screenshot({ path: path.join(shots, 'dashboard-noscope.png'), fullPage: true });

    // --- a key with api_keys:write whose own row is past the first 100 keys ---
    const third = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p3 = await third.newPage();
    watch(p3);
    await p3.goto(cfg.origin + '/dashboard/');
    await p3.fill('#key', cfg.many_admin);
    await Promise.all([
        p3.waitForResponse((r) => /\/v1\/api_keys\?/.test(r.url())),
        p3.click('#key-form button'),
    ]);
    await p3.waitForFunction(() => document.querySelectorAll('#key-table tbody tr').length > 0);
    await p3.waitForTimeout(300);
    out.many = await p3.evaluate(() => ({
        rows: document.querySelectorAll('#key-table tbody tr').length,
        create_visible: !document.getElementById('create-key').hidden,
        revoke_buttons: document.querySelectorAll('#key-table tbody button').length,
    }));
    await p3.screenshot({ path: path.join(shots, 'dashboard-many-keys.png'), fullPage: true });

    // --- two filters applied one after the other, the first answered last ---
    const fourth = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p4 = await fourth.newPage();
    p4.setDefaultTimeout(TIMEOUT);
    await p4.goto(cfg.origin + '/dashboard/');
    await p4.fill('#key', cfg.admin);
    await p4.click('#key-form button');
    await p4.waitForSelector('#app:not([hidden])');
    await p4.waitForFunction(() => window.worksibleDashboard.stats !== null);
    // the API is slower for the 4xx filter's two calls (1.5 s more)
    await p4.route(/\/v1\/request_logs(\/stats)?\?.*status=4xx/, async (route) => {
        await new Promise((r) => setTimeout(r, 1500));
        await route.continue();
    });
    await p4.selectOption('#filters select[name=status]', '4xx');
    await p4.click('#filters button[type=submit]');
    await p4.selectOption('#filters select[name=status]', '2xx');
    await applyFilters(p4, () => p4.click('#filters button[type=submit]'));
    await p4.waitForTimeout(2500);      // the 4xx answers have come by now
    out.race = await p4.evaluate(() => ({
        filter: document.querySelector('#filters select[name=status]').value,
        totals: Array.from(document.querySelectorAll('#class-totals tbody td'))
            .map((t) => t.textContent),
        statuses: Array.from(document.querySelectorAll('#logs tbody td.status'))
            .map((t) => t.textContent),
    }));

    await browser.close();
}

main().then(() => {
    process.stdout.write(JSON.stringify(out) + '\n');
}, (e) => {
    process.stdout.write(JSON.stringify(out) + '\n');
    process.stderr.write((e && e.stack) || String(e));
    process.exit(1);
});
