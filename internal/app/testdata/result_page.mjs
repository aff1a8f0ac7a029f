// Opens mcpidp's result pages in headless Chromium (Debian's, driven by playwright-core) at phone
// size, as a person would, and reports what it saw as JSON lines on stdout for the Go test to check:
//
//   {"event":"done", ...}        the finished task's page (answer, tool block, images, injections)
//   {"event":"login", ...}       the page of a task waiting for a login, before and after the login
//   {"event":"live-ready", ...}  the running task's page is open; the Go test now lets the task finish
//   {"event":"live", ...}        what that page showed once it updated by itself
//   {"event":"nojs-ready", ...}  another running task's page is open with JavaScript off; the Go test
//                                now lets that task finish
//   {"event":"nojs", ...}        what that page showed once it reloaded itself
//
// Environment: NODE_DIR (internal/testenv/node), CHROMIUM (its path), CHROMIUM_ARGS (space-separated),
// USER_DATA_DIR (fresh, empty), DONE_URL, LOGIN_URL, LIVE_URL, NOJS_URL, SHOT (screenshot path, PNG), and
// optionally SHOT_DIR for more screenshots for a person to look at.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const emit = (event, data) => process.stdout.write(JSON.stringify({ event, ...data }) + '\n');

const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: process.env.CHROMIUM_ARGS.split(' '),
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 1,
  isMobile: true,
  hasTouch: true,
  colorScheme: 'light',
});

// Every page records Content-Security-Policy violations and console errors: the page's own style
// and script must run under its policy, and nothing else may.
await context.addInitScript(() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});

async function open(url) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const res = await page.goto(url, { waitUntil: 'load' });
  return { page, errors, status: res.status(), csp: res.headers()['content-security-policy'] || '' };
}

// What every page reports: status badge, whether injected code ran, CSP violations, styles applied.
async function common(page) {
  return page.evaluate(() => {
    const badge = document.querySelector('[data-status]');
    return {
      status: badge && badge.dataset.status,
      badge: badge && badge.textContent.trim(),
      title: document.title,
      pwned: window.pwned === undefined ? null : String(window.pwned),
      violations: window.__violations,
      scripts: document.querySelectorAll('script').length,
      live: document.documentElement.dataset.live || null,
      // The inline style applied (its nonce was accepted): main is centred with a max width.
      styled: getComputedStyle(document.querySelector('main')).maxWidth !== 'none',
      scrollWidth: document.documentElement.scrollWidth,
    };
  });
}

// 1. The finished task.
{
  const { page, errors, status, csp } = await open(process.env.DONE_URL);
  const before = await common(page);
  const tool = page.locator('details.tool').first();
  const closed = !(await tool.evaluate((d) => d.open));
  const outputHiddenWhileClosed = !(await tool.locator('[data-output]').isVisible());
  await tool.locator('summary').tap();
  const opened = await tool.evaluate((d) => d.open);
  const outputVisible = await tool.locator('[data-output]').isVisible();
  const img = tool.locator('img').first();
  await img.scrollIntoViewIfNeeded();
  await page.waitForFunction((el) => el.complete, await img.elementHandle(), { timeout: 10000 });
  const image = await img.evaluate((el) => ({ src: el.getAttribute('src'), width: el.naturalWidth, height: el.naturalHeight }));
  const answerImg = await page.locator('[data-answer] img').evaluateAll((els) => els.map((e) => e.outerHTML));
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: process.env.SHOT });
  if (process.env.SHOT_DIR) await page.screenshot({ path: path.join(process.env.SHOT_DIR, 'done-full.png'), fullPage: true });
  emit('done', {
    httpStatus: status, csp, errors, ...before, after: await common(page),
    answer: await page.locator('[data-answer]').innerText(),
    answerImg,
    tools: await page.locator('details.tool').count(),
    closed, outputHiddenWhileClosed, opened, outputVisible,
    toolName: await tool.locator('.tool-name').innerText(),
    output: await tool.locator('[data-output]').innerText(),
    image,
    refresh: await page.locator('meta[http-equiv="refresh"]').count(),
  });
  await page.close();
}

// 2. The task waiting for a login: its button leads through the login, and the page, left open,
//    turns to completed once the task has resumed.
{
  const { page, errors, status } = await open(process.env.LOGIN_URL);
  const button = page.locator('a[data-login]');
  const box = await button.boundingBox();
  if (process.env.SHOT_DIR) await page.screenshot({ path: path.join(process.env.SHOT_DIR, 'login.png') });
  const before = {
    httpStatus: status, ...(await common(page)),
    headline: await page.locator('h1').innerText(),
    logins: await button.count(),
    href: await button.getAttribute('href'),
    text: await button.innerText(),
    buttonWidth: box ? Math.round(box.width) : 0,
    buttonHeight: box ? Math.round(box.height) : 0,
  };
  // The user opens the link in another tab of the same browser and logs in.
  const tab = await context.newPage();
  await tab.goto(before.href, { waitUntil: 'load' });
  const callback = await tab.locator('h1').innerText();
  await tab.close();
  let reached = true;
  try {
    await page.waitForSelector('[data-status="completed"]', { timeout: 45000 });
  } catch {
    reached = false;
  }
  const after = await common(page);
  emit('login', {
    ...before, errors, callback, reached, afterStatus: after.status, afterViolations: after.violations,
    afterLogins: await page.locator('a[data-login]').count(),
    answer: reached ? await page.locator('[data-answer]').innerText() : '',
  });
  await page.close();
}

// 3. The running task: the page must reach "completed" by itself, in the same document.
{
  const { page, errors, status } = await open(process.env.LIVE_URL);
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  emit('live-ready', { httpStatus: status, ...(await common(page)) });
  let reached = true;
  try {
    await page.waitForSelector('[data-status="completed"]', { timeout: 45000 });
  } catch {
    reached = false;
  }
  emit('live', {
    reached, errors, ...(await common(page)),
    sameDocument: await page.evaluate(() => window.__sameDocument || null),
    answer: reached ? await page.locator('[data-answer]').innerText() : '',
    tools: await page.locator('details.tool').count(),
    working: await page.locator('[data-working]').count(),
  });
  await page.close();
}

// 4. Without JavaScript, the running task's page reloads itself (meta refresh) until it is completed.
{
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setScriptExecutionDisabled', { value: true });
  let loads = 0;
  page.on('load', () => loads++);
  const res = await page.goto(process.env.NOJS_URL, { waitUntil: 'load' });
  const first = await page.locator('[data-status]').getAttribute('data-status');
  emit('nojs-ready', { httpStatus: res.status(), status: first,
    refresh: await page.locator('meta[http-equiv="refresh"]').count() });
  let reached = true;
  try {
    await page.waitForSelector('[data-status="completed"]', { timeout: 45000 });
  } catch {
    reached = false;
  }
  emit('nojs', {
    reached, loads,
    status: await page.locator('[data-status]').getAttribute('data-status'),
    live: await page.evaluate(() => document.documentElement.dataset.live || null).catch(() => 'no-eval'),
    answer: reached ? await page.locator('[data-answer]').innerText() : '',
    refresh: await page.locator('meta[http-equiv="refresh"]').count(),
  });
  await page.close();
}

await context.close();
