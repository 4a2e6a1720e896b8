#!/usr/bin/env node
// Drives the real Backstage frontend in headless Chromium and writes down what it shows.
//
//   node tests/e2e/driver.js PLAN.json
//
// PLAN.json: {appUrl, out, resultFile, appDir, chromium, timeout, catalogPrefixes, steps}
// Each step opens appUrl + step.path in a fresh page load, performs its actions through the
// UI, waits until no catalog request is in flight, reads the page and screenshots it:
//   {type: "table", name, path, actions: [{select|pick: LABEL, option: TEXT}], pages}
//       the catalog table: its title ("All Components (47)") and the rows of every page
//       (Next Page is clicked until disabled, or `pages` were read), cells by column header.
//       select = a Kind/Type dropdown; pick = an Owner/Lifecycle/Tags/Namespace autocomplete
//   {type: "entity", name, path}  the About card's fields, every card's text, the Relations graph
//   {type: "graph", name, path}   the catalog-graph page: nodes (entity ref, label) and edges
// It writes out/resultFile: each step's data or error, every /api/ request with its status
// (and the bodies of failures), and the browser's console errors. It judges nothing:
// tests/e2e/test_backstage_ui.py compares that with the sample catalog.
// Exit status: 0 when the result was written; 2 on a usage error or a browser that won't start.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CHROMIUM_ARGS = [
  // Without these Chromium dials out (updates, QUIC, sync) and this machine's closed
  // network refuses it; --no-sandbox is needed as root in containers.
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const QUIET_MS = 500; // no catalog request for this long = the page has what it will get
const PAGE_SIZE = 20; // rows per catalog table page (the app's default)

function loadPlaywright(appDir) {
  const paths = [appDir, __dirname].filter(Boolean);
  try {
    return require(require.resolve('playwright-core', { paths }));
  } catch {
    console.error(`driver.js: no playwright-core under ${paths.join(', ')} (setup.sh installs it)`);
    process.exit(2);
  }
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node driver.js PLAN.json');
    process.exit(2);
  }
  const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const timeout = plan.timeout ?? 20000;
  const { chromium } = loadPlaywright(plan.appDir);
  fs.mkdirSync(plan.out, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pycatalog-e2e-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: plan.chromium || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: plan.viewport ?? { width: 1440, height: 900 },
      deviceScaleFactor: 1,
    });
  } catch (e) {
    console.error(`driver.js: cannot start Chromium: ${e.message}`);
    process.exit(2);
  }

  const isCatalog = url => {
    const p = new URL(url).pathname;
    return /\/api\/(catalog|catalog-graph)(\/|$)/.test(p) || p.includes('/api/proxy/') ||
      (plan.catalogPrefixes ?? []).some(x => url.startsWith(x));
  };
  const requests = [];
  const pendingBodies = [];
  const consoleErrors = [];
  let inflight = 0;
  let sent = 0; // catalog requests sent so far
  let lastActivity = Date.now();
  let step = null;

  const stepOf = new WeakMap(); // a request belongs to the step that sent it
  context.on('request', r => {
    stepOf.set(r, step);
    if (!isCatalog(r.url())) return;
    inflight += 1;
    sent += 1;
    lastActivity = Date.now();
  });
  // Counts the request as finished; records it (the same object, so a failure's response
  // body can be added later) when it is an /api/ call.
  const done = (r, record) => {
    if (isCatalog(r.url())) {
      inflight = Math.max(0, inflight - 1);
      lastActivity = Date.now();
    }
    if (!r.url().includes('/api/')) return;
    requests.push(record);
    const body = r.postData();
    Object.assign(record, { step: stepOf.get(r) ?? step, method: r.method(), url: r.url() });
    if (body) record.body = body.slice(0, 4000);
  };
  context.on('requestfinished', async r => {
    const response = await r.response();
    const rec = { status: response ? response.status() : null };
    done(r, rec);
    if (response && response.status() >= 400) {
      pendingBodies.push(response.text().then(t => { rec.response = t.slice(0, 1000); }, () => {}));
    }
  });
  context.on('requestfailed', r => done(r, { failed: r.failure()?.errorText ?? 'failed' }));

  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('console', m => {
    if (m.type() === 'error') consoleErrors.push({ step, text: m.text().slice(0, 500) });
  });

  // After a UI action: give the app a moment to send its requests, then wait for quiet.
  async function settle(action) {
    if (action) {
      const before = sent;
      await action();
      const until = Date.now() + 1500;
      while (sent === before && Date.now() < until) await page.waitForTimeout(50);
    }
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      const busy = inflight > 0 || (await page.locator('[role="progressbar"]').count()) > 0;
      if (busy) lastActivity = Date.now();
      else if (Date.now() - lastActivity >= QUIET_MS) return;
      await page.waitForTimeout(100);
    }
    throw new Error(`catalog requests still in flight after ${timeout} ms`);
  }

  const results = [];
  for (const s of plan.steps) {
    step = s.name;
    const t0 = Date.now();
    const result = { name: s.name, type: s.type, path: s.path, error: null, data: null };
    try {
      lastActivity = Date.now();
      await page.goto(plan.appUrl + s.path, { waitUntil: 'domcontentloaded' });
      if (s.type === 'table') result.data = await table(page, s, settle, timeout);
      else if (s.type === 'entity') result.data = await entity(page, settle);
      else if (s.type === 'graph') result.data = await graph(page, settle);
      else throw new Error(`unknown step type ${s.type}`);
    } catch (e) {
      result.error = e.message.split('\n')[0];
    }
    result.url = page.url();
    result.ms = Date.now() - t0;
    result.screenshot = path.join(plan.out, `${s.name}.png`);
    await page.screenshot({ path: result.screenshot, fullPage: true }).catch(() => {});
    if (s.docShot) {
      // A viewport-sized picture for the README (the full-page one can be very tall).
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: s.docShot, fullPage: false }).catch(() => {});
    }
    results.push(result);
    console.log(`${result.error ? 'FAIL' : 'ok  '} ${s.name} (${result.ms} ms)` +
      (result.error ? `: ${result.error}` : ''));
  }
  step = null;
  await Promise.all(pendingBodies);
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  fs.writeFileSync(path.join(plan.out, plan.resultFile ?? 'result.json'),
    JSON.stringify({ appUrl: plan.appUrl, steps: results, requests, consoleErrors }, null, 2));
}

// ---- the catalog table --------------------------------------------------------------------

async function table(page, s, settle, timeout) {
  const title = page.locator('h2').filter({ hasText: /\(\d+\)\s*$/ }).first();
  await title.waitFor();
  await settle();
  const options = {};
  for (const action of s.actions ?? []) {
    const label = action.select ?? action.pick;
    const choose = action.select ? select : action.pick ? pick : null;
    if (!choose) throw new Error(`unknown action ${JSON.stringify(action)}`);
    await settle(async () => { options[label] = await choose(page, label, action.option); });
  }
  // The count in the title and the rows come from different requests: read once they agree.
  await page.waitForFunction(pageSize => {
    const h2 = [...document.querySelectorAll('h2')].find(h => /\(\d+\)\s*$/.test(h.innerText));
    const total = Number(/\((\d+)\)\s*$/.exec(h2?.innerText ?? '')?.[1] ?? NaN);
    const shown = [...document.querySelectorAll('table tbody tr')]
      .filter(tr => tr.children.length > 1).length;
    return shown === Math.min(total, pageSize);
  }, PAGE_SIZE, { timeout }).catch(() => {}); // a mismatch is then the test's to report
  const rows = [];
  for (let n = 0; ; n++) {
    await page.locator('table tbody tr').first().waitFor();
    rows.push(...(await stableRows(page, settle)));
    const next = page.locator('button[aria-label="Next Page"]');
    if ((await next.count()) === 0 || (await next.isDisabled()) || n + 1 === s.pages) break;
    if (n > 50) throw new Error('more than 50 table pages');
    const first = await page.locator('table tbody tr').first().innerText();
    await settle(() => next.click());
    // The page is not redrawn until its rows arrive; wait for the first row to change.
    await page.waitForFunction(
      old => document.querySelector('table tbody tr')?.innerText !== old, first, { timeout });
  }
  return { title: (await title.innerText()).trim(), url: page.url(), options, rows };
}

// Rows first show owners and systems as refs; the app resolves their titles in batches
// afterwards (POST /entities/by-refs). Read until two reads a moment apart agree.
async function stableRows(page, settle) {
  let last = null;
  for (let i = 0; i < 30; i++) {
    await settle();
    const rows = await readRows(page);
    const key = JSON.stringify(rows);
    if (key === last) return rows;
    last = key;
    await page.waitForTimeout(300);
  }
  throw new Error('the table rows kept changing');
}

async function readRows(page) {
  return page.evaluate(() => {
    const headers = [...document.querySelectorAll('table thead th')]
      .map(th => th.textContent.trim());
    return [...document.querySelectorAll('table tbody tr')]
      .filter(tr => tr.children.length === headers.length) // not the "No records" row
      .map(tr => {
        const row = {};
        [...tr.children].forEach((td, i) => {
          if (!headers[i] || headers[i] === 'Actions') return;
          row[headers[i]] = td.innerText.trim();
          if (headers[i] === 'Tags') {
            row.Tags = [...td.querySelectorAll('span')].map(x => x.innerText.trim())
              .filter(Boolean);
          }
          const a = td.querySelector('a[href]');
          if (headers[i] === 'Name' && a) row.href = a.getAttribute('href');
        });
        return row;
      });
  });
}

// A MUI select (Kind, Type): open it, note the options, click the wanted one.
async function select(page, label, option) {
  await page.locator(`[data-testid="select"][aria-label="${label}"] [role="button"]`).click();
  const list = page.getByRole('option');
  await list.first().waitFor();
  const offered = (await list.allInnerTexts()).map(t => t.trim());
  if (!offered.includes(option)) {
    throw new Error(`the ${label} dropdown offers ${JSON.stringify(offered)}, not "${option}"`);
  }
  await page.getByRole('option', { name: option, exact: true }).click();
  await page.waitForFunction(
    ([l, o]) => document.querySelector(`[data-testid="select"][aria-label="${l}"] [role="button"]`)
      ?.innerText.trim() === o, [label, option], { timeout: 5000 },
  ).catch(() => {
    throw new Error(`the ${label} dropdown does not show "${option}" after choosing it`);
  });
  return offered;
}

// A MUI autocomplete (Owner, Lifecycle, Tags, Namespace): open it and click the option whose
// label is exactly the wanted text, scrolling the list (the Owner list is virtualised: only
// the visible options exist). Typing is no help: Owner matches what is typed against refs.
async function pick(page, label, option) {
  const input = page
    .locator('label', { has: page.locator('span', { hasText: new RegExp(`^${label}$`) }) })
    .locator('input');
  await input.click();
  const listbox = page.getByRole('listbox').first();
  await listbox.waitFor();
  const exactly = new RegExp(`^\\s*${escapeRegex(option)}\\s*$`);
  const wanted = page.getByRole('option').filter({ hasText: exactly });
  const offered = new Set();
  for (;;) {
    for (const t of await page.getByRole('option').allInnerTexts()) offered.add(t.trim());
    if ((await wanted.count()) === 1) break;
    const moved = await listbox.evaluate(e => {
      const before = e.scrollTop;
      e.scrollTop += Math.max(e.clientHeight / 2, 1);
      return e.scrollTop !== before;
    });
    if (!moved) {
      const list = JSON.stringify([...offered]);
      throw new Error(`the ${label} filter offers ${list}, not "${option}"`);
    }
    await page.waitForTimeout(50);
  }
  // The list re-renders as option titles arrive, which can swallow a click: check that the
  // option got selected, and click again if not.
  for (let attempt = 1; ; attempt++) {
    await wanted.click();
    const selected = await page.waitForFunction(
      el => el?.getAttribute('aria-selected') === 'true', await wanted.elementHandle(),
      { timeout: 2000 },
    ).then(() => true, () => false);
    if (selected) break;
    if (attempt === 3) {
      throw new Error(`clicking "${option}" in the ${label} filter did not select it`);
    }
  }
  await page.keyboard.press('Escape');
  return [...offered];
}

function escapeRegex(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- entity page and graphs ---------------------------------------------------------------

async function entity(page, settle) {
  await page.locator('article h3', { hasText: /^About$/ }).first().waitFor();
  await settle();
  // The Relations card draws its graph after the entities arrive.
  await page.locator('article', { has: page.locator('h3', { hasText: /^Relations$/ }) })
    .locator('g[data-testid="node"]').first().waitFor();
  await settle();
  const cards = await page.evaluate(() => {
    const out = {};
    for (const article of document.querySelectorAll('article')) {
      const h3 = article.querySelector('h3');
      if (h3) out[h3.innerText.trim()] = article.innerText;
    }
    return out;
  });
  const about = await page.evaluate(() => {
    const article = [...document.querySelectorAll('article')]
      .find(a => a.querySelector('h3')?.innerText.trim() === 'About');
    const fields = {};
    for (const h2 of article.querySelectorAll('h2')) {
      const box = h2.parentElement;
      const label = h2.textContent.trim();
      const text = box.innerText;
      const value = text.slice(text.indexOf(h2.innerText) + h2.innerText.length).trim();
      const lines = value.split('\n').map(x => x.trim()).filter(Boolean);
      const links = [...box.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
      fields[label] = { text: value, lines, links };
    }
    return fields;
  });
  const card = page.locator('article', { has: page.locator('h3', { hasText: /^Relations$/ }) });
  const svg = card.locator('svg', { has: page.locator('g[data-testid="node"]') }).first();
  const relations = await readGraph(svg);
  return { title: await page.title(), about, cards, relations };
}

async function graph(page, settle) {
  await page.locator('svg#dependency-graph g[data-testid="node"]').first().waitFor();
  await settle();
  await page.waitForTimeout(300); // the layout is debounced by 100 ms
  return readGraph(page.locator('svg#dependency-graph'));
}

// Nodes carry their entity ref in <title>; an edge is a <path> followed by its label.
// Its ends are matched to the nearest node box, so edges come out as from -> to.
async function readGraph(svg) {
  return svg.evaluate(root => {
    const nodes = [...root.querySelectorAll('g[data-testid="node"]')].map(g => {
      const translate = /translate\(\s*([-\d.]+)[ ,]+([-\d.]+)\s*\)/;
      const m = translate.exec(g.getAttribute('transform') || '');
      const rect = g.querySelector('rect');
      return {
        ref: g.querySelector('title')?.textContent ?? null,
        label: g.querySelector('text')?.textContent ?? null,
        x: m ? Number(m[1]) : 0, y: m ? Number(m[2]) : 0,
        w: Number(rect?.getAttribute('width') ?? 0), h: Number(rect?.getAttribute('height') ?? 0),
      };
    });
    const nearest = ([px, py]) => {
      let best = null;
      let bestDistance = Infinity;
      for (const n of nodes) {
        const dx = Math.max(n.x - px, 0, px - (n.x + n.w));
        const dy = Math.max(n.y - py, 0, py - (n.y + n.h));
        const d = Math.hypot(dx, dy);
        if (d < bestDistance) [best, bestDistance] = [n.ref, d];
      }
      return best;
    };
    const edges = [...root.querySelectorAll('path[data-testid="edge"]')].map(p => {
      const nums = (p.getAttribute('d') || '').match(/-?\d+(?:\.\d+)?/g)?.map(Number) ?? [];
      const label = p.nextElementSibling?.getAttribute('data-testid') === 'label'
        ? p.nextElementSibling.textContent : null;
      return {
        from: nums.length >= 4 ? nearest([nums[0], nums[1]]) : null,
        to: nums.length >= 4 ? nearest(nums.slice(-2)) : null,
        label,
      };
    });
    return { nodes: nodes.map(({ ref, label }) => ({ ref, label })), edges };
  });
}

main().catch(e => {
  console.error(e);
  process.exit(2);
});
