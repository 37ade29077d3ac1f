// Drives the gateway's GraphiQL page in headless Chromium the way a person would: put the
// bearer token into the headers pane, run the org-chart query, and read the answer; then
// run a subscription (over the WebSocket) and see a new mail arrive.
//
//   GATEWAY_URL=http://127.0.0.1:8080 GATEWAY_TOKEN=eyJ… EXPECT_NAME='Tamsin Greaves' \
//     node ci/graphiql-browser.mjs
//
// Optional: CHROMIUM (default /usr/bin/chromium, Debian's package: playwright-core ships
// no browser and none can be downloaded here), SCREENSHOT (default target/graphiql.png).
// Exits 1 with the reason when the page does not start, the query fails or the answer
// lacks EXPECT_NAME; the screenshot is taken either way, so a failure can be looked at.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.GATEWAY_URL;
const token = process.env.GATEWAY_TOKEN;
const expectName = process.env.EXPECT_NAME;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.SCREENSHOT || 'target/graphiql.png';
if (!base || !token || !expectName) {
  console.error('graphiql browser test: set GATEWAY_URL, GATEWAY_TOKEN and EXPECT_NAME');
  process.exit(2);
}
const origin = new URL(base).origin;
const STEP_TIMEOUT_MS = 30_000;

// What the headers pane should hold once the "person" has typed it.
const headersText = `{"Authorization": "Bearer ${token}"}`;

class Failure extends Error {}

// The CodeMirror 5 instance behind an editor element (GraphiQL 4 keeps it on the DOM node).
// Used only to read what an editor holds, or to check what typing produced.
async function editorValue(page, selector) {
  return page.locator(selector).first().evaluate((el) => {
    const cm = el.querySelector('.CodeMirror')?.CodeMirror ?? el.closest('.CodeMirror')?.CodeMirror;
    if (!cm) throw new Error('no CodeMirror editor here');
    return cm.getValue();
  });
}

async function run(page) {
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  const response = await page.goto(new URL('/graphiql', origin).href, { waitUntil: 'load' });
  if (!response || response.status() !== 200) {
    throw new Failure(`GET /graphiql answered ${response ? response.status() : 'nothing'}`);
  }
  try {
    await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ timeout: STEP_TIMEOUT_MS });
  } catch {
    const shown = (await page.locator('#graphiql').innerText().catch(() => '')).slice(0, 300);
    throw new Failure(
      `GraphiQL did not start within ${STEP_TIMEOUT_MS / 1000}s; the page shows: ${JSON.stringify(shown)}` +
        (pageErrors.length ? `; script errors: ${pageErrors.join(' | ')}` : ''),
    );
  }

  // The headers pane: open it (the embedded default opens it already), then replace what
  // it holds with our token, typed key by key.
  const headersTab = page.getByRole('button', { name: 'Headers', exact: true });
  const headersEditor = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden)');
  if (!(await headersEditor.isVisible())) {
    await headersTab.click();
  }
  await headersEditor.locator('.CodeMirror').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  await headersEditor.locator('.CodeMirror-code').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  // CodeMirror's auto-closed brackets and quotes are typed over, so the text comes out as typed.
  await page.keyboard.type(headersText);
  const typed = await editorValue(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)');
  if (typed.trim() !== headersText) {
    throw new Failure(`the headers pane holds ${JSON.stringify(typed)} after typing, not the header`);
  }

  // The org-chart query is the page's default; a person would just press run.
  const query = await editorValue(page, '.graphiql-query-editor');
  if (!query.includes('directReports')) {
    throw new Failure(`the query editor does not hold the org-chart query: ${JSON.stringify(query)}`);
  }

  // The run must send what was typed, not the page's pre-filled header.
  const sent = page.waitForRequest(
    (r) => r.url() === new URL('/graphql', origin).href && r.method() === 'POST' &&
      !(r.postData() || '').includes('IntrospectionQuery'),
  );
  await page.locator('.graphiql-execute-button').click();
  const authorization = (await sent).headers()['authorization'];
  if (authorization !== `Bearer ${token}`) {
    throw new Failure(`the query was sent with Authorization ${JSON.stringify(authorization)}, not the typed token`);
  }

  // The answer pane shows the name once the query has run (CodeMirror renders the lines in
  // view; `me` is at the top of the answer).
  const result = page.locator('.graphiql-response');
  try {
    await page.waitForFunction(
      (name) => document.querySelector('.graphiql-response')?.textContent.includes(name),
      expectName,
      { timeout: STEP_TIMEOUT_MS },
    );
  } catch {
    const shown = (await result.innerText().catch(() => '')).slice(0, 500);
    throw new Failure(`the result pane does not show "${expectName}" within ${STEP_TIMEOUT_MS / 1000}s; it shows: ${shown}`);
  }

  // The whole answer, not just what is in view: data for everyone and no errors.
  const answerText = await editorValue(page, '.graphiql-response');
  let answer;
  try {
    answer = JSON.parse(answerText);
  } catch {
    throw new Failure(`the result pane holds no JSON: ${answerText.slice(0, 500)}`);
  }
  if (answer.errors) {
    throw new Failure(`the query answered errors: ${JSON.stringify(answer.errors).slice(0, 500)}`);
  }
  const people = answer.data?.users?.nodes ?? [];
  if (answer.data?.me?.displayName !== expectName || people.length === 0) {
    throw new Failure(`unexpected answer: ${answerText.slice(0, 500)}`);
  }
  const reports = people.reduce((n, p) => n + (p.directReports?.nodes?.length ?? 0), 0);
  const live = await subscription(page);
  if (pageErrors.length) {
    throw new Failure(`script errors on the page: ${pageErrors.join(' | ')}`);
  }
  return `me = ${answer.data.me.displayName}, ${people.length} users with ${reports} direct reports; ${live}`;
}

// A GraphQL subscription from GraphiQL over the WebSocket: watch the shared mailbox (REST,
// from here), run `mailboxChanges` in the page, send a mail, and see it arrive in the pane.
const SHARED = 'orders@kestrelridge.example';
async function rest(path, body) {
  const response = await fetch(new URL(path, origin), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Failure(`POST ${path} answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  }
}

async function subscription(page) {
  await rest('/api/v1/subscriptions', { resource: { mailbox: SHARED, folder: 'inbox' }, change_types: ['created'] });
  await page.locator('.graphiql-query-editor .CodeMirror-code').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.type(`subscription Orders { mailboxChanges(mailbox: "${SHARED}") { changeType message { subject } } }`);
  // GraphiQL parses the editor after a short pause; the fetcher tells a subscription (sent
  // over the WebSocket) from a query by that parse.
  await page.waitForTimeout(1000);
  await page.locator('.graphiql-execute-button').click();
  // The socket opens and the subscription starts listening; then the mail goes out.
  await page.waitForTimeout(1500);
  const subject = `Browser order ${Date.now()}`;
  await rest('/api/v1/users/me/send-mail', { message: { to: [SHARED], subject, body: 'Total: 1.00 EUR' } });
  try {
    await page.waitForFunction(
      (s) => document.querySelector('.graphiql-response')?.textContent.includes(s),
      subject,
      { timeout: STEP_TIMEOUT_MS },
    );
  } catch {
    const shown = (await page.locator('.graphiql-response').innerText().catch(() => '')).slice(0, 500);
    throw new Failure(`the subscription did not show the new mail within ${STEP_TIMEOUT_MS / 1000}s; the pane shows: ${shown}`);
  }
  return 'a mailboxChanges subscription showed the new mail';
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // /dev/shm is small in containers; Chromium falls back to /tmp with this.
  args: ['--disable-dev-shm-usage'],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // Nothing but the gateway: the page must work with no other host (its CSP says so too).
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort(),
  );
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  try {
    console.log(`GraphiQL in Chromium: ${await run(page)}`);
  } catch (e) {
    exitCode = 1;
    console.error(`GraphiQL browser test FAILED: ${e instanceof Failure ? e.message : e.stack || e}`);
  } finally {
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot }).catch((e) => console.error(`no screenshot: ${e}`));
    console.log(`screenshot: ${screenshot}`);
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
