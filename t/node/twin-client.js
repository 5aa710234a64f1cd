#!/usr/bin/env node
'use strict';

// A small command-line client around the unmodified azure-iothub service SDK,
// for t/sdk.t: it runs twin operations exactly as a backend using the SDK
// would, against whatever HostName the connection string names (the gateway).
//
// Input: one JSON scenario (or a JSON array of them, run in order over one
// Registry per credential, so keep-alive and per-request tokens are
// exercised) from argv[2] or, without an argument, from stdin:
//
//   {
//     "connectionString": "HostName=...;SharedAccessKeyName=...;SharedAccessKey=...",
//     "sharedAccessSignature": "SharedAccessSignature sr=...",  (instead of
//                            connectionString: Registry.fromSharedAccessSignature)
//     "op": "getTwin" | "getModuleTwin" | "updateTwin" | "updateModuleTwin"
//           | "twinUpdate",    (getTwin/getModuleTwin, then twin.update(patch))
//     "deviceId": "...", "moduleId": "...", "patch": {...}, "etag": "*",
//     "pauseMs": 1100      (optional: wait this long first, e.g. so that the
//                           SDK's next token has another expiry)
//   }
//
// Output: one JSON line per scenario,
//   {"ok":true,"statusCode":200,"result":<the SDK's Twin as JSON>}
//   {"ok":false,"name":"<error class>","message":"...","statusCode":412,
//    "errorCode":"<iothub-errorcode header>"}
// Exit status 0 either way; non-zero only when this script itself fails
// (bad input, a crash).
//
// The gateway's test certificate is trusted the standard way:
// NODE_EXTRA_CA_CERTS=<repo>/build/certs/ca.pem.

const path = require('path');
const { Registry } = require(path.join(__dirname, 'node_modules', 'azure-iothub'));

const OPS = ['getTwin', 'getModuleTwin', 'updateTwin', 'updateModuleTwin',
             'twinUpdate'];

function readInput() {
  if (process.argv.length > 2) {
    return Promise.resolve(process.argv[2]);
  }
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => { text += chunk; });
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

function check(s) {
  if (s === null || typeof s !== 'object' || Array.isArray(s)) {
    throw new Error('a scenario must be a JSON object');
  }
  if (!OPS.includes(s.op)) {
    throw new Error(`unknown op ${JSON.stringify(s.op)}; one of ${OPS.join(', ')}`);
  }
  if (!s.connectionString === !s.sharedAccessSignature) {
    throw new Error('give connectionString or sharedAccessSignature');
  }
}

const registries = new Map();

function registryFor(s) {
  const key = s.connectionString ? 'cs:' + s.connectionString
                                 : 'sas:' + s.sharedAccessSignature;
  if (!registries.has(key)) {
    registries.set(key, s.connectionString
      ? Registry.fromConnectionString(s.connectionString)
      : Registry.fromSharedAccessSignature(s.sharedAccessSignature));
  }
  return registries.get(key);
}

// the SDK's callback API: (err, twin, httpResponse)
function call(fn) {
  return new Promise((resolve, reject) => {
    fn((err, twin, response) => (err ? reject(err) : resolve({ twin, response })));
  });
}

async function run(s) {
  const registry = registryFor(s);
  const etag = s.etag === undefined ? '*' : s.etag;

  switch (s.op) {
  case 'getTwin':
    return call((cb) => registry.getTwin(s.deviceId, cb));
  case 'getModuleTwin':
    return call((cb) => registry.getModuleTwin(s.deviceId, s.moduleId, cb));
  case 'updateTwin':
    return call((cb) => registry.updateTwin(s.deviceId, s.patch, etag, cb));
  case 'updateModuleTwin':
    return call((cb) => registry.updateModuleTwin(s.deviceId, s.moduleId,
                                                  s.patch, etag, cb));
  case 'twinUpdate': {
    const fetched = await call((cb) => (s.moduleId
      ? registry.getModuleTwin(s.deviceId, s.moduleId, cb)
      : registry.getTwin(s.deviceId, cb)));
    return call((cb) => fetched.twin.update(s.patch, cb));
  }
  }
  throw new Error('unreachable');
}

function outcome(result) {
  return { ok: true, statusCode: result.response && result.response.statusCode,
           result: result.twin };
}

function failure(err) {
  const response = err && err.response;
  const out = {
    ok: false,
    name: err && err.constructor ? err.constructor.name : typeof err,
    message: err && err.message !== undefined ? err.message : String(err),
    statusCode: response ? response.statusCode : undefined,
  };
  if (response && response.headers && response.headers['iothub-errorcode']) {
    out.errorCode = response.headers['iothub-errorcode'];
  }
  if (!response && err && err.code) {
    out.code = err.code;        // a transport error: ECONNREFUSED, a TLS code
  }
  return out;
}

async function main() {
  const input = JSON.parse(await readInput());
  const scenarios = Array.isArray(input) ? input : [input];
  scenarios.forEach(check);

  for (const s of scenarios) {
    if (s.pauseMs) {
      await new Promise((resolve) => setTimeout(resolve, s.pauseMs));
    }
    let line;
    try {
      line = outcome(await run(s));
    } catch (err) {
      if (err instanceof ReferenceError || err instanceof TypeError) {
        throw err;              // our input or a bug, not an answer
      }
      line = failure(err);
    }
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}

main().then(
  () => { process.exitCode = 0; },
  (err) => {
    process.stderr.write(`twin-client: ${err && err.stack || err}\n`);
    process.exitCode = 2;
  });
