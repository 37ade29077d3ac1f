// Runs graphql-http's GraphQL-over-HTTP server audits against a running gateway.
//
//   GATEWAY_URL=http://127.0.0.1:8080 GATEWAY_TOKEN=eyJ… node ci/graphql-http-audit.mjs
//
// Exits 1 when any MUST or SHOULD audit fails (each is printed with its id, name and
// reason); MAY audits are only reported. The gateway wants a bearer token on every
// GraphQL request, which the audits know nothing about, so the fetch they use adds it.
import { serverAudits } from 'graphql-http';

const base = process.env.GATEWAY_URL;
const token = process.env.GATEWAY_TOKEN;
if (!base || !token) {
  console.error('graphql-http audit: set GATEWAY_URL and GATEWAY_TOKEN');
  process.exit(2);
}
const url = new URL('/graphql', base).href;

// A hung answer must fail the audit, not the CI run's time budget.
const PER_REQUEST_TIMEOUT_MS = 15_000;

function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set('Authorization', `Bearer ${token}`);
  return fetch(input, {
    ...init,
    headers,
    signal: init.signal ?? AbortSignal.timeout(PER_REQUEST_TIMEOUT_MS),
  });
}

const audits = serverAudits({ url, fetchFn: fetchWithToken });
const failed = [];
let passed = 0;
let notices = 0;
for (const audit of audits) {
  let result;
  try {
    result = await audit.fn();
  } catch (e) {
    // graphql-http throws only on fatal errors (e.g. the server cannot be reached).
    result = { id: audit.id, name: audit.name, status: 'error', reason: `audit threw: ${e}` };
  }
  if (result.status === 'ok') {
    passed += 1;
    continue;
  }
  // The level is the first word of the name ("MUST …", "SHOULD …", "MAY …").
  const level = result.name.split(' ', 1)[0];
  if (level === 'MAY') {
    notices += 1;
    console.log(`note (MAY, not required): ${result.id} ${result.name}: ${result.reason}`);
  } else {
    failed.push(result);
  }
}

// What the gateway answered, for whoever fixes it: status, content type, start of the body
// (when the audit has not read the body already).
async function answer(response) {
  if (!response) return 'no response';
  const type = response.headers.get('content-type') ?? 'no content-type';
  const body = await response.text().then(
    (text) => ` ${JSON.stringify(text.slice(0, 160))}`,
    () => '',
  );
  return `${response.status} ${type}${body}`;
}

for (const result of failed) {
  console.log(`FAILED ${result.id} ${result.name}`);
  console.log(`       reason: ${result.reason}`);
  console.log(`       answer: ${await answer(result.response)}`);
}
console.log(
  `graphql-http audit of ${url}: ${audits.length} audits, ${passed} ok, ` +
    `${failed.length} MUST/SHOULD failed, ${notices} MAY not met`,
);
process.exit(failed.length === 0 ? 0 : 1);
